//! The resilience layers around a [`Transport`], in a fixed order: queue → retry → timeout →
//! send (the timeout lives in the transport).
//!
//! * The queue is bounded, per signal, in requests. `consume` only enqueues: the sender is
//!   acknowledged once its data is in the queue, and told to retry when the queue is full. This
//!   is how backpressure reaches clients instead of memory growing or data being dropped.
//! * Workers (`num_consumers`) take requests off the queue and retry each until it is delivered,
//!   refused for good, past `max_elapsed_time` (when set), or the shutdown deadline passes.
//!   Every drop is logged at error level with its item count and counted as `send_failed`.
//! * With the queue disabled, `consume` makes one attempt and returns its outcome: the sender
//!   retries, not us.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use agentcol_component::telemetry::ExporterTelemetry;
use agentcol_component::{async_trait, ConsumeError, Consumer, StatusReporter};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{QueueConfig, RetryConfig};
use crate::retry::{backoff, SendError};
use crate::transport::Transport;
use crate::wire::Wire;

/// What every queue of one exporter shares.
pub(crate) struct Sender {
    pub(crate) id: String,
    pub(crate) transport: Transport,
    pub(crate) retry: RetryConfig,
    pub(crate) telemetry: ExporterTelemetry,
    pub(crate) status: StatusReporter,
    /// Cancelled when the shutdown deadline passes: stop retrying, count what is left as failed.
    pub(crate) abort: CancellationToken,
}

impl Sender {
    fn fail<T: Wire>(&self, items: usize, why: &str) {
        self.telemetry.send_failed(T::SIGNAL, items);
        tracing::error!(exporter = %self.id, signal = %T::SIGNAL, dropped_items = items, reason = why, "Exporting failed. Dropping data.");
    }

    /// One attempt, its success accounted.
    async fn attempt<T: Wire>(&self, data: &T) -> Result<(), SendError> {
        let items = data.item_count();
        let (rejected, message) = self.transport.send(data).await?;
        let rejected = (rejected as usize).min(items);
        self.telemetry.sent(T::SIGNAL, items - rejected);
        if rejected > 0 {
            self.telemetry.send_failed(T::SIGNAL, rejected);
            tracing::warn!(exporter = %self.id, signal = %T::SIGNAL, rejected, message = %message, "Partial success response: the destination rejected some items");
        }
        self.status.ok();
        Ok(())
    }

    /// Delivers with retries (see the module docs).
    async fn deliver<T: Wire>(&self, data: T) {
        let items = data.item_count();
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            if self.abort.is_cancelled() {
                self.fail::<T>(items, "shutdown deadline passed before delivery");
                return;
            }
            let err = match self.attempt(&data).await {
                Ok(()) => return,
                Err(e) => e,
            };
            if !err.retryable || !self.retry.enabled {
                self.fail::<T>(items, &format!("{} (not retryable)", err.message));
                return;
            }
            self.status
                .degraded(format!("sending failed, retrying: {}", err.message));
            let wait = backoff(&self.retry, attempt, err.retry_after, fastrand::f64());
            let limit = self.retry.max_elapsed_time.get();
            if !limit.is_zero() && started.elapsed() + wait > limit {
                self.fail::<T>(items, &format!("{} (no more retries left)", err.message));
                return;
            }
            tracing::warn!(exporter = %self.id, signal = %T::SIGNAL, error = %err.message, interval = ?wait, "Exporting failed. Will retry the request after interval.");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.abort.cancelled() => {}
            }
            attempt = attempt.saturating_add(1);
        }
    }
}

/// The queue of one signal.
pub(crate) struct SignalQueue<T: Wire> {
    sender: Arc<Sender>,
    config: QueueConfig,
    tx: Mutex<Option<mpsc::Sender<T>>>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<T>>>,
    depth: Arc<AtomicUsize>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl<T: Wire> SignalQueue<T> {
    pub(crate) fn new(sender: Arc<Sender>, config: QueueConfig) -> Self {
        let (tx, rx) = mpsc::channel(config.queue_size.max(1));
        sender.telemetry.queue_capacity(
            T::SIGNAL,
            if config.enabled { config.queue_size } else { 0 },
        );
        sender.telemetry.queue_size(T::SIGNAL, 0);
        SignalQueue {
            sender,
            config,
            tx: Mutex::new(Some(tx)),
            rx: Arc::new(tokio::sync::Mutex::new(rx)),
            depth: Arc::new(AtomicUsize::new(0)),
            workers: Mutex::new(Vec::new()),
        }
    }
}

/// Start and drain, whatever the signal.
#[async_trait]
pub(crate) trait QueueControl: Send + Sync {
    fn start(&self);
    /// Stops taking data; drains until `deadline`; then fails what is left.
    async fn shutdown(&self, deadline: std::time::Duration);
}

#[async_trait]
impl<T: Wire> QueueControl for SignalQueue<T> {
    fn start(&self) {
        if !self.config.enabled {
            return;
        }
        let mut workers = match self.workers.lock() {
            Ok(w) => w,
            Err(p) => p.into_inner(),
        };
        if !workers.is_empty() {
            return;
        }
        for _ in 0..self.config.num_consumers {
            let rx = self.rx.clone();
            let sender = self.sender.clone();
            let depth = self.depth.clone();
            workers.push(tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some(data) = next else { break };
                    let now = depth.fetch_sub(1, Ordering::SeqCst).saturating_sub(1);
                    sender.telemetry.queue_size(T::SIGNAL, now);
                    sender.deliver(data).await;
                }
            }));
        }
    }

    async fn shutdown(&self, deadline: std::time::Duration) {
        // Closing the channel lets the workers finish what is queued, then stop.
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let workers: Vec<JoinHandle<()>> = match self.workers.lock() {
            Ok(mut w) => w.drain(..).collect(),
            Err(p) => p.into_inner().drain(..).collect(),
        };
        let all = futures_join(workers);
        tokio::pin!(all);
        if tokio::time::timeout(deadline, &mut all).await.is_err() {
            let left = self.depth.load(Ordering::SeqCst);
            tracing::error!(exporter = %self.sender.id, signal = %T::SIGNAL, queued_requests = left, "shutdown deadline passed with data still queued");
            self.sender.abort.cancel();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut all).await;
        }
        // Anything never picked up (no workers, or they were stopped) is counted, not lost silently.
        let mut rx = self.rx.lock().await;
        while let Ok(data) = rx.try_recv() {
            self.depth.fetch_sub(1, Ordering::SeqCst);
            self.sender
                .fail::<T>(data.item_count(), "exporter shut down before delivery");
        }
        self.sender.telemetry.queue_size(T::SIGNAL, 0);
    }
}

async fn futures_join(handles: Vec<JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

#[async_trait]
impl<T: Wire> Consumer<T> for SignalQueue<T> {
    async fn consume(&self, data: T) -> Result<(), ConsumeError> {
        if !self.config.enabled {
            return match self.sender.attempt(&data).await {
                Ok(()) => Ok(()),
                Err(e) if e.retryable => Err(ConsumeError::Retryable {
                    reason: format!("exporter {}: {}", self.sender.id, e.message),
                    retry_after: e.retry_after,
                }),
                Err(e) => {
                    self.sender
                        .telemetry
                        .send_failed(T::SIGNAL, data.item_count());
                    Err(ConsumeError::permanent(format!(
                        "exporter {}: {}",
                        self.sender.id, e.message
                    )))
                }
            };
        }
        let tx = match self.tx.lock() {
            Ok(tx) => tx.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let Some(tx) = tx else {
            return Err(ConsumeError::retryable(format!(
                "exporter {} is shutting down",
                self.sender.id
            )));
        };
        let items = data.item_count();
        // Count before sending so a worker's decrement can never underflow.
        let depth = self.depth.fetch_add(1, Ordering::SeqCst) + 1;
        match tx.try_send(data) {
            Ok(()) => {
                self.sender.telemetry.queue_size(T::SIGNAL, depth);
                Ok(())
            }
            Err(e) => {
                self.depth.fetch_sub(1, Ordering::SeqCst);
                self.sender.telemetry.enqueue_failed(T::SIGNAL, items);
                let reason = match e {
                    mpsc::error::TrySendError::Full(_) => {
                        format!("sending queue of exporter {} is full", self.sender.id)
                    }
                    mpsc::error::TrySendError::Closed(_) => {
                        format!("exporter {} is shutting down", self.sender.id)
                    }
                };
                Err(ConsumeError::retryable(reason))
            }
        }
    }
}
