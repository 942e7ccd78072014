//! The `sqlite` exporter: the embedded session store.
//!
//! Why it exists: a coding-agent session must stay inspectable and replayable on the machine
//! that ran it, even after the agent deleted its own files and without any backend. So the
//! canonical events that leave `dedupe` are kept in one SQLite file (`<root>/agentcol.db`,
//! WAL, mode 0600) together with the lossless archive of every raw observation they were
//! merged from, and `agentcol sessions list|show|replay|export` read it ([`query`]).
//!
//! What it promises:
//! * **Acknowledged after commit.** `consume` writes the batch in one transaction and returns
//!   `Ok` only after `COMMIT` (durable with `synchronous: full`), so a receiver's success
//!   answer means the events are on disk. Locks, I/O errors and a full disk are
//!   [`ConsumeError::Retryable`]; only what can never succeed is permanent.
//! * **Exactly once, replayably.** Every table's content is a function of the set of records
//!   received: the same records twice, in another order, or across a restart leave identical
//!   rows (see [`store`] for the upsert rules and [`derive`] for the derived tables). Nothing
//!   stores arrival time.
//! * **Key states for `dedupe`.** Its input offers the rows as key states
//!   ([`agentcol_component::key_states`], [`Store::key_state`]), so a `dedupe` directly in
//!   front of it with `storage: <this exporter>` keeps no second copy of the events. The same
//!   input takes agent records as records ([`agentcol_component::agent_input`],
//!   [`Store::apply_records`]), so neither side writes a log record only to decode it again.
//! * **Nothing silent.** Plain logs that are not agent events are skipped and counted (or kept
//!   with `keep_other_logs`); unreadable agent records are kept verbatim in `raw_records` and
//!   counted; the rest of their batch is stored.
//!
//! Metrics (counters, label `exporter`): `agentcol_sqlite_events_upserted_total`,
//! `agentcol_sqlite_observations_archived_total`, `agentcol_sqlite_tombstones_total`,
//! `agentcol_sqlite_records_skipped_total{reason}`, `agentcol_sqlite_records_unreadable_total`,
//! `agentcol_sqlite_other_logs_total`; plus the standard `agentcol_exporter_sent_log_records` /
//! `agentcol_exporter_send_failed_log_records`.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use agentcol_component::agent::EventKey;
use agentcol_component::telemetry::{CounterFamily, ExporterTelemetry, Labels};
use agentcol_component::{
    async_trait, erase_exporter, module_name, AgentInput, AgentLogs, AnyExporterFactory, Component,
    ComponentError, ComponentId, ConsumeError, Consumer, Consumers, CreateError, ExporterFactory,
    ExporterInstance, Host, KeyStates, KeyStatesError, Logs, Signal, SignalSet, SignalStability,
    Stability, StatusReporter, StoredKey,
};

pub mod config;
mod derive;
pub mod error;
mod hot;
mod lenient;
pub mod query;
pub mod schema;
pub mod store;

pub use config::{SqliteConfig, Synchronous};
pub use error::StoreError;
pub use store::{Store, StoreOptions, WriteStats};

/// Factory of the `sqlite` exporter.
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteExporterFactory;

impl ExporterFactory for SqliteExporterFactory {
    type Config = SqliteConfig;

    fn type_name(&self) -> &'static str {
        "sqlite"
    }

    fn stability(&self) -> SignalStability {
        SignalStability::logs_only(Stability::Alpha)
    }

    fn create(
        &self,
        host: Host,
        config: SqliteConfig,
        signals: SignalSet,
    ) -> Result<ExporterInstance, CreateError> {
        if let Some(other) = signals.iter().find(|s| *s != Signal::Logs) {
            return Err(CreateError::SignalNotSupported(other));
        }
        let path = config.resolve_path(host.root());
        let options = StoreOptions {
            synchronous: config.synchronous,
            busy_timeout: config.busy_timeout.get(),
            keep_other_logs: config.keep_other_logs,
            ..StoreOptions::default()
        };
        let shared = Arc::new(Shared {
            id: host.id().clone(),
            path,
            options,
            store: Mutex::new(None),
            metrics: Metrics::new(&host),
            exporter: host.telemetry().exporter(host.id()),
            status: host.status().clone(),
        });
        let mut consumers = Consumers::default();
        if signals.contains(Signal::Logs) {
            consumers.logs = Some(Arc::new(SqliteLogs {
                shared: shared.clone(),
            }));
        }
        Ok(ExporterInstance {
            consumers,
            component: Arc::new(SqliteExporter { shared }),
        })
    }
}

/// The `sqlite` exporter factory, erased for the registry.
pub fn factory() -> Arc<dyn AnyExporterFactory> {
    erase_exporter(SqliteExporterFactory, module_name!())
}

/// The exporter's own counters.
#[derive(Debug, Clone)]
struct Metrics {
    labels: Labels,
    upserted: CounterFamily,
    archived: CounterFamily,
    tombstones: CounterFamily,
    skipped: CounterFamily,
    unreadable: CounterFamily,
    other_logs: CounterFamily,
}

impl Metrics {
    fn new(host: &Host) -> Self {
        let t = host.telemetry();
        Metrics {
            labels: vec![("exporter".into(), host.id().to_string())],
            upserted: t.counter(
                "agentcol_sqlite_events_upserted",
                "Event rows inserted or replaced in the store",
            ),
            archived: t.counter(
                "agentcol_sqlite_observations_archived",
                "Raw observations newly added to the store's archive",
            ),
            tombstones: t.counter(
                "agentcol_sqlite_tombstones",
                "Tombstones applied (provisional event rows removed after re-keying)",
            ),
            skipped: t.counter(
                "agentcol_sqlite_records_skipped",
                "Log records not stored, by reason (not_agent, duplicate, older_revision, superseded)",
            ),
            unreadable: t.counter(
                "agentcol_sqlite_records_unreadable",
                "Agent log records that could not be read (kept verbatim in raw_records)",
            ),
            other_logs: t.counter(
                "agentcol_sqlite_other_logs",
                "Plain (non-agent) log records stored because keep_other_logs is on",
            ),
        }
    }

    fn record(&self, s: &WriteStats) {
        let l = &self.labels;
        for (fam, n) in [
            (&self.upserted, s.upserted),
            (&self.archived, s.archived),
            (&self.tombstones, s.tombstones),
            (&self.unreadable, s.unreadable),
            (&self.other_logs, s.other_logs),
        ] {
            if n > 0 {
                fam.get_or_create(l).inc_by(n);
            }
        }
        for (reason, n) in &s.skipped {
            let mut labels = l.clone();
            labels.push(("reason".into(), (*reason).to_string()));
            self.skipped.get_or_create(&labels).inc_by(*n);
        }
    }
}

struct Shared {
    id: ComponentId,
    path: PathBuf,
    options: StoreOptions,
    /// The one writer connection: `None` before `start` and after `shutdown`.
    store: Mutex<Option<Store>>,
    metrics: Metrics,
    exporter: ExporterTelemetry,
    status: StatusReporter,
}

/// What one write holds: OTLP, or records from the `dedupe` in front ([`AgentInput`]).
enum Batch {
    Logs(Logs),
    Records(AgentLogs),
}

impl Shared {
    fn write(&self, batch: Batch) -> Result<WriteStats, StoreError> {
        let mut guard = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let store = guard.as_mut().ok_or(StoreError::NotOpen)?;
        match batch {
            Batch::Logs(logs) => store.apply_owned(logs),
            Batch::Records(records) => store.apply_records(records),
        }
    }

    /// Writes `batch` (`n` items) off the async workers and reports the outcome.
    async fn write_reported(self: &Arc<Self>, batch: Batch, n: usize) -> Result<(), ConsumeError> {
        let shared = self.clone();
        // SQLite calls block: run them off the async workers. If this future is dropped the
        // write still completes (and the sender, having seen no answer, retries: at least once).
        let result = tokio::task::spawn_blocking(move || shared.write(batch)).await;
        let sh = self;
        match result {
            Ok(Ok(stats)) => {
                sh.metrics.record(&stats);
                sh.exporter.sent(Signal::Logs, n);
                sh.status.ok();
                Ok(())
            }
            Ok(Err(e)) => {
                let err = ConsumeError::from(e);
                if err.is_retryable() {
                    sh.status.degraded(err.reason().to_string());
                    tracing::warn!(path = %sh.path.display(), error = %err, "sqlite write refused, retryable");
                } else {
                    sh.exporter.send_failed(Signal::Logs, n);
                    tracing::error!(path = %sh.path.display(), error = %err, "sqlite write failed");
                }
                Err(err)
            }
            Err(join) => {
                sh.exporter.send_failed(Signal::Logs, n);
                tracing::error!(error = %join, "sqlite writer task failed");
                Err(ConsumeError::permanent(format!(
                    "sqlite: the writer task failed: {join}"
                )))
            }
        }
    }
}

struct SqliteLogs {
    shared: Arc<Shared>,
}

fn count(logs: &Logs) -> usize {
    logs.resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum()
}

#[async_trait]
impl Consumer<Logs> for SqliteLogs {
    fn key_states(&self) -> Option<Arc<dyn KeyStates>> {
        Some(Arc::new(StoreLink {
            shared: self.shared.clone(),
        }))
    }

    fn agent_input(&self) -> Option<Arc<dyn AgentInput>> {
        Some(Arc::new(StoreLink {
            shared: self.shared.clone(),
        }))
    }

    async fn consume(&self, data: Logs) -> Result<(), ConsumeError> {
        let n = count(&data);
        self.shared.write_reported(Batch::Logs(data), n).await
    }
}

#[async_trait]
impl AgentInput for StoreLink {
    fn owner(&self) -> &ComponentId {
        &self.shared.id
    }

    async fn consume_agent(&self, batch: AgentLogs) -> Result<(), ConsumeError> {
        let n = batch.item_count();
        self.shared.write_reported(Batch::Records(batch), n).await
    }
}

/// The store's rows as key states, for a `dedupe` with `storage` set to this exporter: read
/// through the writer connection, under the same lock as the writes, so a read sees every
/// committed batch and never a half-written one. The same handle is the store's input for
/// that `dedupe`'s emissions as records.
struct StoreLink {
    shared: Arc<Shared>,
}

impl fmt::Debug for StoreLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreLink({})", self.shared.path.display())
    }
}

impl KeyStates for StoreLink {
    fn owner(&self) -> &ComponentId {
        &self.shared.id
    }

    fn load(&self, key: &EventKey, text: &str) -> Result<Option<StoredKey>, KeyStatesError> {
        let mut guard = self.shared.store.lock().unwrap_or_else(|p| p.into_inner());
        let result = match guard.as_mut() {
            Some(store) => store.key_state(key, text),
            None => Err(StoreError::NotOpen),
        };
        result.map_err(|e| KeyStatesError {
            retryable: e.is_retryable(),
            reason: format!("sqlite {}: {e}", self.shared.path.display()),
        })
    }
}

struct SqliteExporter {
    shared: Arc<Shared>,
}

#[async_trait]
impl Component for SqliteExporter {
    async fn start(&self) -> Result<(), ComponentError> {
        let shared = self.shared.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let mut guard = shared.store.lock().unwrap_or_else(|p| p.into_inner());
            if guard.is_none() {
                *guard = Some(Store::open(&shared.path, shared.options.clone())?);
            }
            Ok::<_, StoreError>(())
        })
        .await
        .map_err(|e| ComponentError::Other(format!("sqlite: opening the store failed: {e}")))?;
        opened.map_err(|e| ComponentError::Other(format!("sqlite: {e}")))?;
        tracing::info!(path = %self.shared.path.display(), "session store open");
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ComponentError> {
        let shared = self.shared.clone();
        // Taking the lock waits for an in-flight batch; dropping the connection checkpoints
        // the WAL.
        let _ = tokio::task::spawn_blocking(move || {
            let store = shared
                .store
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            drop(store);
        })
        .await;
        Ok(())
    }
}
