//! Consumers: how data moves from one component to the next, and how it is acknowledged.
//!
//! `Consumer::consume` returns only when the data is safe downstream: every exporter on every
//! pipeline reachable from this point has accepted it (into its sending queue, its persistent
//! queue or its store). The `Result` is the acknowledgement, so:
//!
//! * a receiver answers its client from it — success only after acceptance everywhere;
//! * a processor that buffers (batch) holds its callers' futures until the buffer is delivered;
//! * a future dropped on the way (a panic, a cancelled task) can never look like a success: the
//!   caller either sees the result or sees nothing, and then answers its client with an error.
//!
//! [`ConsumeError`] is closed: it says what the sender should do (retry later, or not at all), and
//! [`ConsumeError::grpc_code`] / [`ConsumeError::http_status`] are the one place that maps that to
//! the wire, as the OTLP specification requires.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::agent_input::AgentInput;
use crate::data::{Logs, Metrics, Signal, SignalData, Traces};
use crate::key_states::KeyStates;

/// Why data was not accepted downstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumeError {
    /// A temporary condition (queue full, memory limit, destination down, shutting down): the
    /// sender should retry, after `retry_after` when given.
    #[error("{reason}")]
    Retryable {
        /// Human-readable cause.
        reason: String,
        /// How long the sender should wait before retrying, when known.
        retry_after: Option<Duration>,
    },
    /// The data can never be accepted (malformed, rejected by the destination): retrying the same
    /// data cannot help.
    #[error("{reason}")]
    Permanent {
        /// Human-readable cause.
        reason: String,
    },
}

/// The `Retry-After` a receiver sends with a retryable refusal when the cause gave none.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

impl ConsumeError {
    /// A retryable refusal without a throttle hint.
    pub fn retryable(reason: impl Into<String>) -> Self {
        ConsumeError::Retryable {
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// A retryable refusal that asks the sender to wait `after`.
    pub fn throttled(reason: impl Into<String>, after: Duration) -> Self {
        ConsumeError::Retryable {
            reason: reason.into(),
            retry_after: Some(after),
        }
    }

    /// A permanent refusal.
    pub fn permanent(reason: impl Into<String>) -> Self {
        ConsumeError::Permanent {
            reason: reason.into(),
        }
    }

    /// Whether a retry can help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ConsumeError::Retryable { .. })
    }

    /// The cause, for logs and error bodies.
    pub fn reason(&self) -> &str {
        match self {
            ConsumeError::Retryable { reason, .. } | ConsumeError::Permanent { reason } => reason,
        }
    }

    /// The `Retry-After` to announce, for retryable errors.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ConsumeError::Retryable { retry_after, .. } => {
                Some(retry_after.unwrap_or(DEFAULT_RETRY_AFTER))
            }
            ConsumeError::Permanent { .. } => None,
        }
    }

    /// The gRPC status code a receiver answers with. Retryable → `UNAVAILABLE` (14), which every
    /// OTLP client retries; a throttle hint is sent as `RetryInfo` by the receiver. Permanent →
    /// `INTERNAL` (13), which no OTLP client retries (as otelcol does).
    pub fn grpc_code(&self) -> i32 {
        match self {
            ConsumeError::Retryable { .. } => 14,
            ConsumeError::Permanent { .. } => 13,
        }
    }

    /// The HTTP status an OTLP/HTTP receiver answers with: 503 (with `Retry-After`) when
    /// retryable, 500 when permanent.
    pub fn http_status(&self) -> u16 {
        match self {
            ConsumeError::Retryable { .. } => 503,
            ConsumeError::Permanent { .. } => 500,
        }
    }

    /// Combines the outcomes of two branches of a fan-out: if any branch can succeed on a retry,
    /// the sender must retry (the other branches will see a duplicate, which is the price of
    /// at-least-once); only when every failure is permanent is the whole refusal permanent.
    pub fn combine(self, other: ConsumeError) -> ConsumeError {
        match (self, other) {
            (
                ConsumeError::Retryable {
                    reason: a,
                    retry_after: ra,
                },
                ConsumeError::Retryable {
                    reason: b,
                    retry_after: rb,
                },
            ) => ConsumeError::Retryable {
                reason: format!("{a}; {b}"),
                retry_after: ra.max(rb),
            },
            (r @ ConsumeError::Retryable { .. }, ConsumeError::Permanent { .. })
            | (ConsumeError::Permanent { .. }, r @ ConsumeError::Retryable { .. }) => r,
            (ConsumeError::Permanent { reason: a }, ConsumeError::Permanent { reason: b }) => {
                ConsumeError::Permanent {
                    reason: format!("{a}; {b}"),
                }
            }
        }
    }
}

/// Something that takes data of one signal and acknowledges it through its result.
#[async_trait]
pub trait Consumer<T: SignalData>: Send + Sync {
    /// Hands `data` downstream and resolves once it has been accepted everywhere (see the module
    /// docs). Must not panic on any input.
    async fn consume(&self, data: T) -> Result<(), ConsumeError>;

    /// The key states of the store this consumer is the input of, if it is one that commits
    /// before it answers ([`crate::key_states`]). Only a store's own consumer says yes:
    /// everything between (fan-outs of several branches, processors) answers `None`.
    fn key_states(&self) -> Option<Arc<dyn KeyStates>> {
        None
    }

    /// This consumer's input for agent records, if it takes them as records
    /// ([`crate::agent_input`]): a store's input, a `dedupe` in front of one, and what passes
    /// either through unchanged.
    fn agent_input(&self) -> Option<Arc<dyn AgentInput>> {
        None
    }
}

/// A consumer of any one signal: what a processor is given as its `next`, and returns.
#[derive(Clone)]
pub enum AnyConsumer {
    /// A traces consumer.
    Traces(Arc<dyn Consumer<Traces>>),
    /// A metrics consumer.
    Metrics(Arc<dyn Consumer<Metrics>>),
    /// A logs consumer.
    Logs(Arc<dyn Consumer<Logs>>),
}

impl std::fmt::Debug for AnyConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AnyConsumer({})", self.signal())
    }
}

impl AnyConsumer {
    /// The signal this consumer takes.
    pub fn signal(&self) -> Signal {
        match self {
            AnyConsumer::Traces(_) => Signal::Traces,
            AnyConsumer::Metrics(_) => Signal::Metrics,
            AnyConsumer::Logs(_) => Signal::Logs,
        }
    }
}

/// One optional consumer per signal: what a receiver is created with (the pipelines it feeds,
/// per signal) and what an exporter returns (its input per signal it serves).
#[derive(Clone, Default)]
pub struct Consumers {
    /// Where spans go, if any pipeline takes them.
    pub traces: Option<Arc<dyn Consumer<Traces>>>,
    /// Where metrics go.
    pub metrics: Option<Arc<dyn Consumer<Metrics>>>,
    /// Where logs go.
    pub logs: Option<Arc<dyn Consumer<Logs>>>,
}

impl std::fmt::Debug for Consumers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumers")
            .field("traces", &self.traces.is_some())
            .field("metrics", &self.metrics.is_some())
            .field("logs", &self.logs.is_some())
            .finish()
    }
}

impl Consumers {
    /// The consumer for `signal`, as an [`AnyConsumer`].
    pub fn get(&self, signal: Signal) -> Option<AnyConsumer> {
        match signal {
            Signal::Traces => self.traces.clone().map(AnyConsumer::Traces),
            Signal::Metrics => self.metrics.clone().map(AnyConsumer::Metrics),
            Signal::Logs => self.logs.clone().map(AnyConsumer::Logs),
        }
    }

    /// Sets the consumer of the signal `c` takes.
    pub fn set(&mut self, c: AnyConsumer) {
        match c {
            AnyConsumer::Traces(c) => self.traces = Some(c),
            AnyConsumer::Metrics(c) => self.metrics = Some(c),
            AnyConsumer::Logs(c) => self.logs = Some(c),
        }
    }
}

/// Sends each request to every branch concurrently and acknowledges when all have answered.
///
/// Branches run concurrently, so a slow branch delays the answer but never delays delivery to
/// the others; each exporter's own queue bounds how slow it can be. The request is cloned for
/// all branches but the last.
pub struct Fanout<T: SignalData> {
    branches: Vec<Arc<dyn Consumer<T>>>,
}

impl<T: SignalData> std::fmt::Debug for Fanout<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fanout({} branches)", self.branches.len())
    }
}

impl<T: SignalData> Fanout<T> {
    /// A fan-out over `branches`. With a single branch, prefer using it directly.
    pub fn new(branches: Vec<Arc<dyn Consumer<T>>>) -> Self {
        Fanout { branches }
    }

    /// One consumer for `branches`: the branch itself when there is one, a fan-out otherwise.
    pub fn over(mut branches: Vec<Arc<dyn Consumer<T>>>) -> Arc<dyn Consumer<T>> {
        if branches.len() == 1 {
            if let Some(only) = branches.pop() {
                return only;
            }
        }
        Arc::new(Fanout::new(branches))
    }
}

#[async_trait]
impl<T: SignalData> Consumer<T> for Fanout<T> {
    async fn consume(&self, data: T) -> Result<(), ConsumeError> {
        let Some((last, rest)) = self.branches.split_last() else {
            return Ok(());
        };
        let mut futures = Vec::with_capacity(self.branches.len());
        for branch in rest {
            futures.push(branch.consume(data.clone()));
        }
        futures.push(last.consume(data));
        let mut outcome: Result<(), ConsumeError> = Ok(());
        for result in futures::future::join_all(futures).await {
            outcome = match (outcome, result) {
                (Ok(()), r) => r,
                (Err(e), Ok(())) => Err(e),
                (Err(a), Err(b)) => Err(a.combine(b)),
            };
        }
        outcome
    }

    fn key_states(&self) -> Option<Arc<dyn KeyStates>> {
        match self.branches.as_slice() {
            [only] => only.key_states(),
            _ => None,
        }
    }

    fn agent_input(&self) -> Option<Arc<dyn AgentInput>> {
        match self.branches.as_slice() {
            [only] => only.agent_input(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting {
        seen: AtomicUsize,
        answer: Result<(), ConsumeError>,
    }

    #[async_trait]
    impl Consumer<Logs> for Counting {
        async fn consume(&self, data: Logs) -> Result<(), ConsumeError> {
            self.seen.fetch_add(data.item_count() + 1, Ordering::SeqCst);
            self.answer.clone()
        }
    }

    fn counting(answer: Result<(), ConsumeError>) -> Arc<Counting> {
        Arc::new(Counting {
            seen: AtomicUsize::new(0),
            answer,
        })
    }

    #[test]
    fn wire_mapping_follows_the_otlp_table() {
        let r = ConsumeError::retryable("queue full");
        assert_eq!((r.grpc_code(), r.http_status()), (14, 503));
        assert_eq!(r.retry_after(), Some(DEFAULT_RETRY_AFTER));
        let t = ConsumeError::throttled("memory", Duration::from_secs(7));
        assert_eq!(t.retry_after(), Some(Duration::from_secs(7)));
        let p = ConsumeError::permanent("bad");
        assert_eq!((p.grpc_code(), p.http_status()), (13, 500));
        assert_eq!(p.retry_after(), None);
    }

    #[test]
    fn retryable_wins_when_combining() {
        let c = ConsumeError::permanent("a").combine(ConsumeError::retryable("b"));
        assert!(c.is_retryable());
        let c = ConsumeError::permanent("a").combine(ConsumeError::permanent("b"));
        assert_eq!(c, ConsumeError::permanent("a; b"));
    }

    #[tokio::test]
    async fn fanout_delivers_to_every_branch_and_reports_the_worst() {
        let ok = counting(Ok(()));
        let failing = counting(Err(ConsumeError::retryable("down")));
        let fan = Fanout::over(vec![ok.clone(), failing.clone(), ok.clone()]);
        let res = fan.consume(Logs::default()).await;
        assert!(matches!(res, Err(ConsumeError::Retryable { .. })));
        assert_eq!(ok.seen.load(Ordering::SeqCst), 2);
        assert_eq!(failing.seen.load(Ordering::SeqCst), 1);
        let fan = Fanout::over(vec![ok.clone()]);
        assert!(fan.consume(Logs::default()).await.is_ok());
    }
}
