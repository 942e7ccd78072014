//! Start and shutdown, the same for every kind of component.
//!
//! The service starts extensions, then exporters, processors and receivers (so nothing receives
//! before its downstream is ready), and shuts down in the reverse order: receivers stop taking
//! new data and finish in-flight requests, processors flush, exporters drain their queues. A
//! component must accept `shutdown` without `start`, and twice.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Why a component could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComponentError {
    /// Binding a listener failed.
    #[error("cannot listen on {endpoint}: {source}")]
    Bind {
        /// The endpoint as configured.
        endpoint: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Any other I/O failure.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Anything else, in words.
    #[error("{0}")]
    Other(String),
}

/// The lifecycle every component implements.
#[async_trait]
pub trait Component: Send + Sync {
    /// Starts background work (listeners, senders). Called once, after everything downstream
    /// has started.
    async fn start(&self) -> Result<(), ComponentError> {
        Ok(())
    }

    /// Stops taking new work and drains what was accepted. Idempotent; works without `start`.
    async fn shutdown(&self) -> Result<(), ComponentError> {
        Ok(())
    }
}

/// A component with no lifecycle of its own (stateless processors, for example).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoLifecycle;

impl Component for NoLifecycle {}

/// A server or loop running in the background, with the token that asks it to stop gracefully.
/// What listeners keep between `start` and `shutdown`.
#[derive(Debug, Default)]
pub struct BackgroundTask {
    inner: Mutex<Option<(CancellationToken, JoinHandle<()>)>>,
}

impl BackgroundTask {
    /// Records the running task (replacing nothing: a second `set` stops the newer task).
    pub fn set(&self, stop: CancellationToken, task: JoinHandle<()>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.is_some() {
            stop.cancel();
            return;
        }
        *inner = Some((stop, task));
    }

    /// Whether a task is running.
    pub fn is_running(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Asks the task to stop and waits up to `deadline` for it to finish its in-flight work; then
    /// aborts it. Returns whether it finished in time. Idempotent.
    pub async fn stop(&self, deadline: Duration) -> bool {
        let taken = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some((stop, mut task)) = taken else {
            return true;
        };
        stop.cancel();
        if tokio::time::timeout(deadline, &mut task).await.is_ok() {
            return true;
        }
        task.abort();
        false
    }
}
