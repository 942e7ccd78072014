//! The `batch` processor, with acknowledgements kept end to end.
//!
//! It groups the requests of many senders into larger batches before handing them to the next
//! consumer, as otelcol's `batch` processor does, with the same settings (`send_batch_size`,
//! `timeout`, `send_batch_max_size`). Unlike otelcol's, it does not answer a sender before its
//! data is delivered: each `consume` call adds its items to the pending batch and resolves with
//! the outcome of the batch (or batches, when `send_batch_max_size` splits it) that carry them.
//! A sender is told `Ok` only when every batch holding its items was accepted downstream;
//! otherwise it gets the combined error and its client retries.
//!
//! Design notes:
//!
//! * One implementation, generic over [`SignalData`]; the factory picks the instantiation from
//!   the `next` consumer it is given.
//! * The pending batch sits behind a short synchronous lock that is never held across an
//!   `.await`; full batches are delivered by their own tasks, so the next batch accumulates
//!   while earlier ones are in flight, and a sender's future being dropped (its client went
//!   away) never stops delivery of the other senders' data in the same batch.
//! * Outcomes travel to the waiting senders over oneshot channels. A delivery task that dies
//!   without an answer (a panic downstream) drops its channels, which its senders see as a
//!   retryable error, never as a success.
//!
//! What it does not do: `metadata_keys` partitioning (rejected by validation), size by bytes,
//! or the otelcol batch-specific metrics (`batch_size_trigger_send`, …).
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use agentcol_component::config::ConfigError;
use agentcol_component::lifecycle::{Component, ComponentError};
use agentcol_component::telemetry::ProcessorTelemetry;
use agentcol_component::{
    async_trait, erase_processor, module_name, AnyConsumer, AnyProcessorFactory, ComponentConfig,
    ComponentId, ComponentStatus, ConsumeError, Consumer, CreateError, Duration, Host,
    ProcessorFactory, ProcessorInstance, SignalData, SignalStability, Stability, StatusReporter,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, Notify};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

/// The `batch` processor's settings (otelcol's names and defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// A batch is sent as soon as it holds this many items. `0` sends every request at once.
    pub send_batch_size: u32,
    /// A batch is sent at the latest this long after its first item arrived. `0` sends every
    /// request at once.
    pub timeout: Duration,
    /// Upper bound on a batch's size: larger requests are split. `0` means no bound.
    pub send_batch_max_size: u32,
    /// Batching per client-metadata value: not supported (must be empty).
    pub metadata_keys: Vec<String>,
    /// Accepted for compatibility with otelcol configs; has no effect without `metadata_keys`.
    pub metadata_cardinality_limit: u32,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            send_batch_size: 8192,
            timeout: Duration::from_millis(200),
            send_batch_max_size: 0,
            metadata_keys: Vec::new(),
            metadata_cardinality_limit: 1000,
        }
    }
}

impl ComponentConfig for BatchConfig {
    fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        if self.send_batch_max_size > 0 && self.send_batch_max_size < self.send_batch_size {
            errors.push(ConfigError::new(
                "send_batch_max_size",
                "send_batch_max_size must be greater or equal to send_batch_size",
            ));
        }
        if !self.metadata_keys.is_empty() {
            errors.push(ConfigError::new(
                "metadata_keys",
                "batching by metadata_keys is not supported by agentcol's batch processor; remove metadata_keys",
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Factory of the `batch` processor.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchProcessorFactory;

impl ProcessorFactory for BatchProcessorFactory {
    type Config = BatchConfig;

    fn type_name(&self) -> &'static str {
        "batch"
    }

    fn stability(&self) -> SignalStability {
        SignalStability::all(Stability::Beta)
    }

    fn create(
        &self,
        host: Host,
        pipeline: &str,
        config: BatchConfig,
        next: AnyConsumer,
    ) -> Result<ProcessorInstance, CreateError> {
        fn build<T: SignalData>(
            host: &Host,
            pipeline: &str,
            config: &BatchConfig,
            next: Arc<dyn Consumer<T>>,
        ) -> Arc<BatchProcessor<T>> {
            Arc::new(BatchProcessor::new(
                host.id().clone(),
                host.status().clone(),
                host.telemetry().processor(host.id(), pipeline),
                config,
                next,
            ))
        }
        Ok(match next {
            AnyConsumer::Traces(next) => {
                let p = build(&host, pipeline, &config, next);
                ProcessorInstance {
                    consumer: AnyConsumer::Traces(p.clone()),
                    component: p,
                }
            }
            AnyConsumer::Metrics(next) => {
                let p = build(&host, pipeline, &config, next);
                ProcessorInstance {
                    consumer: AnyConsumer::Metrics(p.clone()),
                    component: p,
                }
            }
            AnyConsumer::Logs(next) => {
                let p = build(&host, pipeline, &config, next);
                ProcessorInstance {
                    consumer: AnyConsumer::Logs(p.clone()),
                    component: p,
                }
            }
        })
    }
}

/// The `batch` processor factory, erased for the registry.
pub fn factory() -> Arc<dyn AnyProcessorFactory> {
    erase_processor(BatchProcessorFactory, module_name!())
}

/// What a batch's delivery told its senders.
type Outcome = Result<(), ConsumeError>;

/// One instance of the batch processor (one pipeline, one signal). Created by the factory; also
/// usable directly as a [`Consumer`] and [`Component`].
pub struct BatchProcessor<T: SignalData> {
    inner: Arc<Inner<T>>,
}

impl<T: SignalData> fmt::Debug for BatchProcessor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BatchProcessor({}, {})", self.inner.id, T::SIGNAL)
    }
}

struct Inner<T: SignalData> {
    id: ComponentId,
    status: StatusReporter,
    telemetry: ProcessorTelemetry,
    next: Arc<dyn Consumer<T>>,
    /// A batch is sent when it holds at least this many items.
    send_batch_size: usize,
    /// Largest batch; `usize::MAX` when unbounded.
    max_batch_size: usize,
    /// Zero: send every request at once.
    timeout: std::time::Duration,
    state: Mutex<State<T>>,
    /// Batches being delivered, so `shutdown` can wait for them.
    in_flight: AtomicUsize,
    idle: Notify,
    /// Cancels the pending-batch timer at shutdown.
    stop: CancellationToken,
}

struct State<T> {
    batch: T,
    items: usize,
    /// One sender per `consume` call with items in `batch`.
    waiters: Vec<oneshot::Sender<Outcome>>,
    /// Incremented each time the pending batch is taken; a timer only fires for its own batch.
    seq: u64,
    timer: Option<AbortHandle>,
    closed: bool,
}

/// A batch taken out of the pending slot, ready to be delivered.
struct Ready<T> {
    batch: T,
    items: usize,
    waiters: Vec<oneshot::Sender<Outcome>>,
}

impl<T: SignalData> State<T> {
    fn take(&mut self) -> Ready<T> {
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
        self.seq = self.seq.wrapping_add(1);
        Ready {
            batch: std::mem::take(&mut self.batch),
            items: std::mem::replace(&mut self.items, 0),
            waiters: std::mem::take(&mut self.waiters),
        }
    }
}

/// Decrements the in-flight count when a delivery task ends, however it ends.
struct InFlight<T: SignalData>(Arc<Inner<T>>);

impl<T: SignalData> Drop for InFlight<T> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl<T: SignalData> BatchProcessor<T> {
    /// A batch processor in front of `next`. `config` should have passed validation.
    pub fn new(
        id: ComponentId,
        status: StatusReporter,
        telemetry: ProcessorTelemetry,
        config: &BatchConfig,
        next: Arc<dyn Consumer<T>>,
    ) -> Self {
        let send_batch_size = config.send_batch_size as usize;
        let max_batch_size = match config.send_batch_max_size as usize {
            0 => usize::MAX,
            // Never below send_batch_size, even if validation was skipped.
            max => max.max(send_batch_size).max(1),
        };
        BatchProcessor {
            inner: Arc::new(Inner {
                id,
                status,
                telemetry,
                next,
                send_batch_size,
                max_batch_size,
                timeout: config.timeout.get(),
                state: Mutex::new(State {
                    batch: T::default(),
                    items: 0,
                    waiters: Vec::new(),
                    seq: 0,
                    timer: None,
                    closed: false,
                }),
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
                stop: CancellationToken::new(),
            }),
        }
    }
}

impl<T: SignalData> Inner<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while the lock is held; recover the state rather than lose it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `data` to the pending batch, taking out every batch that becomes full. Returns the
    /// receivers of the outcomes of the batches that carry `data`, and the batches to deliver.
    #[allow(clippy::type_complexity)]
    fn add(
        self: &Arc<Self>,
        mut data: T,
        items: usize,
    ) -> Result<(Vec<oneshot::Receiver<Outcome>>, Vec<Ready<T>>), ConsumeError> {
        let mut receivers = Vec::new();
        let mut ready = Vec::new();
        let mut st = self.lock();
        if st.closed {
            return Err(ConsumeError::retryable(format!(
                "processor {} is shut down",
                self.id
            )));
        }
        self.telemetry.incoming(items);
        let mut left = items;
        while left > 0 {
            let room = self.max_batch_size.saturating_sub(st.items).max(1);
            let (piece, taken) = if left <= room {
                (std::mem::take(&mut data), left)
            } else {
                let mut piece = data.split_front(room);
                let taken = piece.item_count().min(left);
                if taken == left {
                    // Metrics split by whole metric: keep any item-less remainder with the rest.
                    piece.append(std::mem::take(&mut data));
                }
                (piece, taken)
            };
            left -= taken;
            st.batch.append(piece);
            st.items += taken;
            let (tx, rx) = oneshot::channel();
            st.waiters.push(tx);
            receivers.push(rx);
            if st.items >= self.send_batch_size || st.items >= self.max_batch_size {
                ready.push(st.take());
            }
        }
        if st.items > 0 {
            if self.timeout.is_zero() {
                ready.push(st.take());
            } else if st.timer.is_none() {
                st.timer = Some(self.arm_timer(st.seq));
            }
        }
        Ok((receivers, ready))
    }

    /// Sends the pending batch `seq` when `timeout` has passed, unless it has gone by then.
    fn arm_timer(self: &Arc<Self>, seq: u64) -> AbortHandle {
        let inner = Arc::clone(self);
        let handle = tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(inner.timeout) => {}
                _ = inner.stop.cancelled() => return,
            }
            let ready = {
                let mut st = inner.lock();
                if st.seq != seq || st.items == 0 {
                    return;
                }
                st.timer = None;
                st.take()
            };
            inner.dispatch(ready);
        });
        handle.abort_handle()
    }

    /// Delivers a batch on its own task and answers its senders with the outcome.
    fn dispatch(self: &Arc<Self>, ready: Ready<T>) {
        let Ready {
            batch,
            items,
            waiters,
        } = ready;
        if items == 0 && waiters.is_empty() {
            return;
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = InFlight(Arc::clone(self));
        self.telemetry.outgoing(items);
        tokio::spawn(async move {
            let inner = &guard.0;
            let outcome = inner.next.consume(batch).await;
            if let Err(e) = &outcome {
                tracing::debug!(component = %inner.id, items, error = %e, "batch was not accepted downstream");
            }
            for waiter in waiters {
                // A sender that went away no longer needs the answer.
                let _ = waiter.send(outcome.clone());
            }
            drop(guard);
        });
    }

    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[async_trait]
impl<T: SignalData> Consumer<T> for BatchProcessor<T> {
    async fn consume(&self, data: T) -> Result<(), ConsumeError> {
        let items = data.item_count();
        if items == 0 {
            // Nothing to deliver (otelcol drops empty requests the same way), but a closed
            // processor still says so.
            if self.inner.lock().closed {
                return Err(ConsumeError::retryable(format!(
                    "processor {} is shut down",
                    self.inner.id
                )));
            }
            return Ok(());
        }
        let (receivers, ready) = self.inner.add(data, items)?;
        for r in ready {
            self.inner.dispatch(r);
        }
        let mut outcome: Outcome = Ok(());
        for rx in receivers {
            let result = rx.await.unwrap_or_else(|_| {
                Err(ConsumeError::retryable(
                    "batch was abandoned before delivery completed",
                ))
            });
            outcome = match (outcome, result) {
                (Ok(()), r) => r,
                (Err(e), Ok(())) => Err(e),
                (Err(a), Err(b)) => Err(if a == b { a } else { a.combine(b) }),
            };
        }
        outcome
    }
}

#[async_trait]
impl<T: SignalData> Component for BatchProcessor<T> {
    async fn start(&self) -> Result<(), ComponentError> {
        self.inner.status.report(ComponentStatus::Ok);
        Ok(())
    }

    /// Refuses new data, sends what is pending and waits until every batch has been answered.
    async fn shutdown(&self) -> Result<(), ComponentError> {
        let ready = {
            let mut st = self.inner.lock();
            st.closed = true;
            st.take()
        };
        self.inner.stop.cancel();
        self.inner.dispatch(ready);
        self.inner.wait_idle().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentcol_component::config::decode;

    #[test]
    fn defaults_match_otelcol() {
        let c = decode::<BatchConfig>(serde_json::Value::Null).unwrap();
        assert_eq!(c.send_batch_size, 8192);
        assert_eq!(c.timeout, Duration::from_millis(200));
        assert_eq!(c.send_batch_max_size, 0);
        assert!(c.metadata_keys.is_empty());
    }

    #[test]
    fn validation_reports_every_fault_with_its_path() {
        let errs = decode::<BatchConfig>(serde_json::json!({
            "send_batch_size": 100,
            "send_batch_max_size": 10,
            "metadata_keys": ["tenant"],
        }))
        .unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(errs[0].path, "send_batch_max_size");
        assert_eq!(
            errs[0].message,
            "send_batch_max_size must be greater or equal to send_batch_size"
        );
        assert_eq!(errs[1].path, "metadata_keys");
        assert!(errs[1].message.contains("not supported"));
        assert!(decode::<BatchConfig>(serde_json::json!({"bogus": 1})).is_err());
        assert!(decode::<BatchConfig>(serde_json::json!({"timeout": "5"})).is_err());
        let ok = decode::<BatchConfig>(serde_json::json!({
            "send_batch_size": 10, "send_batch_max_size": 10, "timeout": "1s"
        }))
        .unwrap();
        assert_eq!(ok.timeout, Duration::from_secs(1));
    }
}
