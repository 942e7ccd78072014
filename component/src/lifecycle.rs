//! Start and shutdown, the same for every kind of component.
//!
//! The service starts extensions, then exporters, processors and receivers (so nothing receives
//! before its downstream is ready), and shuts down in the reverse order: receivers stop taking
//! new data and finish in-flight requests, processors flush, exporters drain their queues. A
//! component must accept `shutdown` without `start`, and twice.

use async_trait::async_trait;

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
