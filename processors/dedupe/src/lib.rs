//! The `dedupe` processor: one canonical agent event per logical event, whichever channels saw
//! it, in any order, at any delay, across restarts.
//!
//! Input is log records. Records that are not agent records (no `agent.event.key`), agent
//! records that cannot be read (counted), and records that are already merged (they carry a
//! revision or are tombstones: another `dedupe` made them) pass through untouched, in place.
//! Every other agent record is an *observation*: what one channel saw once.
//!
//! Observations are folded per key into a [`Merged`](agentcol_component::agent::Merged) (the
//! component crate's order-independent join semilattice), and the merged record is emitted again
//! with the next revision whenever a new distinct observation arrives. Because the revision is
//! `Merged::revision()` (distinct observations − 1), it does not depend on arrival order, and the
//! processor never emits the same (key, revision) twice. Exact duplicates are dropped.
//!
//! **Aliases.** Codex OTLP logs know their turn only by trace id, so receivers key them with a
//! provisional turn `~trace:<hex>`. A record whose key has a real turn and that carries
//! `agent.alias.trace_id` declares the alias; from then on, observations under the alias are
//! re-keyed before merging, and every state already held under the provisional keys is joined
//! into the real keys. A provisional key that had already been emitted is retired downstream by
//! a tombstone (`agent.event.superseded_by`) right after the real key's emission.
//!
//! **Acknowledgements.** With `settle_window: 0s` the state of a `consume` call is committed only
//! after downstream accepted its output, and the call returns downstream's answer: a refused
//! request leaves no trace, so its retry is not taken for a duplicate. With a window, the call
//! commits its observations to the state database with a pending mark and returns (the commit,
//! fsynced, is the durable hand-off); a flush task emits keys as they fall due, retrying with
//! backoff until downstream accepts, and `shutdown` flushes everything pending within
//! `shutdown_timeout`. What is left stays pending on disk and goes out at the next start.
//!
//! **State.** One SQLite file per instance (`<root>/state/dedupe/<id>.db`, WAL, mode 0600): the
//! merged state of every key, the aliases, the emitted revision and pending marks, and the last
//! decisions ([`recent_decisions`], read by `agentcol status --dedupe`). A bounded cache of hot
//! keys (`cache_keys`) sits in front of it; it is only a read cache, so eviction and restarts
//! lose nothing. With `storage: <sqlite exporter>` (the store pipeline of the default config)
//! the key states are not kept in the file: they are read from the store directly downstream
//! ([`agentcol_component::key_states`]), whose commit makes them durable, and the file keeps
//! aliases, origins and decisions. Such a `dedupe` also hands the store its emissions as
//! records and takes its observations from the `otlp` receiver the same way
//! ([`agentcol_component::agent_input`]). `docs/dedupe.md` has the design notes.
//!
//! Calls are serialised: one batch is staged, delivered and committed at a time, which keeps the
//! state machine simple and is what SQLite does anyway.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod cache;
mod codec;
mod config;
mod engine;
mod store;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentcol_component::lifecycle::{Component, ComponentError};
use agentcol_component::telemetry::ProcessorTelemetry;
use agentcol_component::{
    async_trait, erase_processor, module_name, AgentInput, AgentLogs, AnyConsumer,
    AnyProcessorFactory, ComponentId, ComponentStatus, ConsumeError, Consumer, CreateError, Host,
    KeyedRecord, Logs, ProcessorFactory, ProcessorInstance, SignalData, SignalStability, Stability,
    StatusReporter, Telemetry,
};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{Notify, OwnedMutexGuard};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::DedupeConfig;
pub use engine::SCOPE_NAME;
pub use store::{
    decision_counts, pending_count, recent_decisions, Decision, DecisionKind, StateError,
};

use engine::{Counts, Engine, Prepared, Settings};
use store::Store;

/// Pending keys emitted per flush round.
const FLUSH_LIMIT: usize = 1000;
/// Flush retry backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The folder under the root where every instance keeps its state file.
pub fn state_dir(root: &Path) -> PathBuf {
    root.join("state").join("dedupe")
}

/// `<root>/state/dedupe/<id with / replaced by _>.db`.
pub fn default_state_path(root: &Path, id: &ComponentId) -> PathBuf {
    state_dir(root).join(format!("{}.db", id.to_string().replace('/', "_")))
}

/// Every state file under `<root>/state/dedupe/`, sorted (for `agentcol status --dedupe`).
pub fn state_files(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(state_dir(root))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "db"))
        .collect();
    out.sort();
    out
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

/// Factory of the `dedupe` processor.
#[derive(Debug, Clone, Copy, Default)]
pub struct DedupeProcessorFactory;

impl ProcessorFactory for DedupeProcessorFactory {
    type Config = DedupeConfig;

    fn type_name(&self) -> &'static str {
        "dedupe"
    }

    /// Logs only: agent events are log records. Traces and metrics pipelines are refused when
    /// the configuration is checked (and again at create).
    fn stability(&self) -> SignalStability {
        SignalStability::logs_only(Stability::Alpha)
    }

    fn create(
        &self,
        host: Host,
        pipeline: &str,
        config: DedupeConfig,
        next: AnyConsumer,
    ) -> Result<ProcessorInstance, CreateError> {
        let AnyConsumer::Logs(next) = next else {
            return Err(CreateError::SignalNotSupported(next.signal()));
        };
        let p = Arc::new(DedupeProcessor::new(&host, pipeline, &config, next)?);
        Ok(ProcessorInstance {
            consumer: AnyConsumer::Logs(p.clone()),
            component: p,
        })
    }
}

/// The `dedupe` processor factory, erased for the registry.
pub fn factory() -> Arc<dyn AnyProcessorFactory> {
    erase_processor(DedupeProcessorFactory, module_name!())
}

/// State files open in this process: two instances on one file would each believe they own it.
static CLAIMED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

#[derive(Debug)]
struct Claim(PathBuf);

impl Claim {
    fn take(path: &Path) -> Result<Claim, String> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let canonical = std::fs::canonicalize(dir)
            .map(|d| d.join(path.file_name().unwrap_or_default()))
            .unwrap_or_else(|_| path.to_path_buf());
        let mut claimed = CLAIMED.lock().unwrap_or_else(|p| p.into_inner());
        if !claimed.insert(canonical.clone()) {
            return Err(format!(
                "state file {} is already used by another dedupe instance: give each pipeline its own dedupe id (dedupe/store, dedupe/forward) or state_path",
                path.display()
            ));
        }
        Ok(Claim(canonical))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        CLAIMED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.0);
    }
}

/// The decision counters, labelled by processor id.
#[derive(Debug, Clone)]
struct Counters {
    unique: Counter,
    duplicate: Counter,
    merged: Counter,
    revised: Counter,
    rekeyed: Counter,
    tombstone: Counter,
    unreadable: Counter,
    unflushed: Counter,
    dropped: Counter,
}

impl Counters {
    fn new(t: &Telemetry, id: &ComponentId) -> Self {
        let labels = vec![("processor".to_string(), id.to_string())];
        let c = |name: &str, help: &str| t.counter(name, help).get_or_create(&labels).clone();
        Counters {
            unique: c(
                "agentcol_dedupe_unique",
                "Observations that were the first of their key",
            ),
            duplicate: c(
                "agentcol_dedupe_duplicate",
                "Observations dropped as exact duplicates of one already merged",
            ),
            merged: c(
                "agentcol_dedupe_merged",
                "New observations folded into an existing key",
            ),
            revised: c(
                "agentcol_dedupe_revised",
                "Emissions of a key with revision greater than 0",
            ),
            rekeyed: c(
                "agentcol_dedupe_rekeyed",
                "Observations and provisional keys moved to their real key through a trace alias",
            ),
            tombstone: c(
                "agentcol_dedupe_tombstone",
                "Tombstones emitted for provisional keys replaced by their real key",
            ),
            unreadable: c(
                "agentcol_dedupe_unreadable",
                "Agent records with an unreadable key or reserved attribute, passed through",
            ),
            unflushed: c(
                "agentcol_dedupe_unflushed",
                "Keys still pending when shutdown's deadline passed (emitted at the next start)",
            ),
            dropped: c(
                "agentcol_dedupe_dropped",
                "Records refused permanently by downstream during a flush",
            ),
        }
    }

    fn apply(&self, c: &Counts) {
        self.unique.inc_by(c.unique);
        self.duplicate.inc_by(c.duplicate);
        self.merged.inc_by(c.merged);
        self.revised.inc_by(c.revised);
        self.rekeyed.inc_by(c.rekeyed);
        self.tombstone.inc_by(c.tombstone);
        self.unreadable.inc_by(c.unreadable);
    }
}

/// One `dedupe` instance (one pipeline). Created by the factory; also usable directly as a
/// [`Consumer`] and [`Component`].
pub struct DedupeProcessor {
    inner: Arc<Inner>,
}

impl fmt::Debug for DedupeProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DedupeProcessor({}, {})",
            self.inner.id,
            self.inner.state_path.display()
        )
    }
}

struct Inner {
    id: ComponentId,
    status: StatusReporter,
    telemetry: ProcessorTelemetry,
    counters: Counters,
    next: Arc<dyn Consumer<Logs>>,
    /// `next` is a store that takes emissions as records (`storage`, [`AgentInput`]).
    agent_input: Option<Arc<dyn AgentInput>>,
    engine: Arc<tokio::sync::Mutex<Engine>>,
    window: Duration,
    shutdown_timeout: Duration,
    closed: AtomicBool,
    /// Earliest due time of a pending key (Unix ms); `i64::MAX` when nothing is pending.
    next_due: Arc<AtomicI64>,
    wake: Arc<Notify>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
    degraded: AtomicBool,
    state_path: PathBuf,
    _claim: Claim,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn state_error(e: StateError) -> ConsumeError {
    ConsumeError::retryable(format!("dedupe state: {e}"))
}

/// Runs `f` on the engine on the blocking pool (SQLite does file I/O), keeping the lock.
async fn on_engine<R: Send + 'static>(
    guard: OwnedMutexGuard<Engine>,
    f: impl FnOnce(&mut Engine) -> R + Send + 'static,
) -> Result<(OwnedMutexGuard<Engine>, R), ConsumeError> {
    tokio::task::spawn_blocking(move || {
        let mut guard = guard;
        let r = f(&mut guard);
        (guard, r)
    })
    .await
    .map_err(|e| ConsumeError::retryable(format!("dedupe state task failed: {e}")))
}

impl DedupeProcessor {
    /// A `dedupe` instance in front of `next`, with its state file opened (created if needed).
    pub fn new(
        host: &Host,
        pipeline: &str,
        config: &DedupeConfig,
        next: Arc<dyn Consumer<Logs>>,
    ) -> Result<Self, CreateError> {
        let state_path = match &config.state_path {
            Some(p) if p.is_absolute() => p.clone(),
            Some(p) => host.root().join(p),
            None => default_state_path(host.root(), host.id()),
        };
        if let Some(dir) = state_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            store::private_dir(dir)
                .map_err(|e| CreateError::Other(format!("cannot create {}: {e}", dir.display())))?;
        }
        let key_states = match &config.storage {
            None => None,
            Some(id) => match next.key_states() {
                Some(ks) if ks.owner().to_string() == *id => Some(ks),
                found => {
                    let found = match found {
                        Some(ks) => format!("the store of exporter {:?}", ks.owner().to_string()),
                        None => "no store (another processor, several exporters, or an exporter that keeps no key states)".into(),
                    };
                    return Err(CreateError::InvalidConfig(format!(
                        "storage: {id:?} needs the sqlite exporter {id:?} directly after this processor, as the pipeline's only exporter (dedupe reads its key states from that store, which must have committed what it was sent before it answers); found {found}"
                    )));
                }
            },
        };
        // The same store takes the emissions as records, when it offers to.
        let agent_input = key_states.as_ref().and_then(|ks| {
            next.agent_input()
                .filter(|input| input.owner() == ks.owner())
        });
        let claim = Claim::take(&state_path).map_err(CreateError::InvalidConfig)?;
        let window = config.settle_window.get();
        let store = Store::open(&state_path, config.decisions_kept)
            .map_err(|e| CreateError::Other(e.to_string()))?;
        let engine = Engine::new(
            store,
            Settings {
                window_ms: window.as_millis().min(i64::MAX as u128) as i64,
                attach: config.attach_observations,
                precedence: config.precedence.clone(),
                cache_keys: config.cache_keys.max(1),
                cache_bytes: config.cache_bytes.max(1),
                key_states,
                records_out: agent_input.is_some(),
            },
        )
        .map_err(|e| CreateError::Other(e.to_string()))?;
        let (pending, due) = engine.pending();
        if pending > 0 {
            tracing::info!(component = %host.id(), pending, "dedupe state has keys pending emission from a previous run");
        }
        Ok(DedupeProcessor {
            inner: Arc::new(Inner {
                id: host.id().clone(),
                status: host.status().clone(),
                telemetry: host.telemetry().processor(host.id(), pipeline),
                counters: Counters::new(host.telemetry(), host.id()),
                next,
                agent_input,
                engine: Arc::new(tokio::sync::Mutex::new(engine)),
                window,
                shutdown_timeout: config.shutdown_timeout.get(),
                closed: AtomicBool::new(false),
                next_due: Arc::new(AtomicI64::new(
                    due.filter(|_| pending > 0).unwrap_or(i64::MAX),
                )),
                wake: Arc::new(Notify::new()),
                stop: CancellationToken::new(),
                task: Mutex::new(None),
                degraded: AtomicBool::new(false),
                state_path,
                _claim: claim,
            }),
        })
    }

    /// The state database file.
    pub fn state_path(&self) -> &Path {
        &self.inner.state_path
    }

    /// How many keys are waiting for their emission (settle window, or downstream refusing).
    pub async fn pending(&self) -> u64 {
        self.inner.engine.lock().await.pending().0
    }
}

impl Inner {
    fn closed_error(&self) -> ConsumeError {
        ConsumeError::retryable(format!("processor {} is shut down", self.id))
    }

    fn publish_pending(&self, engine: &Engine) {
        let (n, due) = engine.pending();
        let due = if n == 0 {
            i64::MAX
        } else {
            due.unwrap_or(i64::MAX)
        };
        self.next_due.store(due, Ordering::Release);
    }

    /// Stages `data` and `records` (observations handed over as records, see
    /// [`DedupeInput`]), delivers the emissions, then commits.
    async fn consume(&self, data: Logs, records: Vec<KeyedRecord>) -> Result<(), ConsumeError> {
        let items = data.item_count() + records.len();
        if items == 0 {
            return Ok(());
        }
        self.telemetry.incoming(items);
        let guard = self.engine.clone().lock_owned().await;
        if self.closed.load(Ordering::Acquire) {
            return Err(self.closed_error());
        }
        let now = now_ms();
        let (guard, prepared) = on_engine(guard, move |e| e.ingest(data, records, now)).await?;
        let Prepared {
            output,
            records,
            batch,
        } = prepared.map_err(state_error)?;
        let out = output.item_count() + records.len();
        if out > 0 {
            // With no window this is the emission itself; with one, the pass-through records.
            // Either way the batch is committed only once downstream has them.
            if records.is_empty() {
                self.next.consume(output).await?;
            } else {
                let batch = AgentLogs {
                    records,
                    logs: output,
                };
                match &self.agent_input {
                    Some(input) => input.consume_agent(batch).await?,
                    None => self.next.consume(batch.into_logs()).await?,
                }
            }
            self.telemetry.outgoing(out);
        }
        let (guard, counts) = on_engine(guard, move |e| e.commit(batch, now)).await?;
        let counts = counts.map_err(|e| {
            tracing::error!(component = %self.id, error = %e, "dedupe state commit failed after downstream accepted; the retry will re-emit the same revisions");
            state_error(e)
        })?;
        self.counters.apply(&counts);
        self.publish_pending(&guard);
        drop(guard);
        if !self.window.is_zero() {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Emits one round of due pending keys (all pending keys when `all`). `Ok(false)` when
    /// nothing was due.
    async fn flush_once(&self, all: bool) -> Result<bool, ConsumeError> {
        let guard = self.engine.clone().lock_owned().await;
        let now = now_ms();
        let (guard, prepared) =
            on_engine(guard, move |e| e.take_due(now, all, FLUSH_LIMIT)).await?;
        let Some(Prepared { output, batch, .. }) = prepared.map_err(state_error)? else {
            self.publish_pending(&guard);
            return Ok(false);
        };
        let n = output.item_count();
        if n > 0 {
            match self.next.consume(output).await {
                Ok(()) => self.telemetry.outgoing(n),
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => {
                    // Retrying the same records cannot help and would block every later key.
                    tracing::error!(component = %self.id, records = n, error = %e, "downstream refused pending dedupe records permanently; dropping them");
                    self.counters.dropped.inc_by(n as u64);
                }
            }
        }
        let (guard, counts) = on_engine(guard, move |e| e.commit(batch, now)).await?;
        let counts = counts.map_err(state_error)?;
        self.counters.apply(&counts);
        self.publish_pending(&guard);
        Ok(true)
    }

    fn set_degraded(&self, reason: Option<String>) {
        match reason {
            Some(r) => {
                if !self.degraded.swap(true, Ordering::AcqRel) {
                    self.status.report(ComponentStatus::Degraded(r));
                }
            }
            None => {
                if self.degraded.swap(false, Ordering::AcqRel) {
                    self.status.report(ComponentStatus::Ok);
                }
            }
        }
    }
}

/// Emits pending keys as they fall due. Holds only a weak reference between rounds, so a
/// processor dropped without `shutdown` is not kept alive by its own task.
async fn flush_loop(
    weak: Weak<Inner>,
    next_due: Arc<AtomicI64>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let due = next_due.load(Ordering::Acquire);
        if due == i64::MAX {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = wake.notified() => continue,
            }
        }
        let wait = due.saturating_sub(now_ms());
        if wait > 0 {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = wake.notified() => continue,
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            }
        }
        let Some(inner) = weak.upgrade() else {
            return;
        };
        match inner.flush_once(false).await {
            Ok(_) => {
                inner.set_degraded(None);
                backoff = BACKOFF_MIN;
            }
            Err(e) => {
                let pending = next_due.load(Ordering::Acquire) != i64::MAX;
                tracing::warn!(component = %inner.id, error = %e, retry_in = ?backoff, "pending dedupe records not accepted downstream; retrying");
                if pending {
                    inner.set_degraded(Some(format!("downstream refusing pending records: {e}")));
                }
                let delay = match &e {
                    ConsumeError::Retryable {
                        retry_after: Some(d),
                        ..
                    } => (*d).max(backoff),
                    _ => backoff,
                };
                backoff = (backoff * 2).min(BACKOFF_MAX);
                drop(inner);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

#[async_trait]
impl Consumer<Logs> for DedupeProcessor {
    async fn consume(&self, data: Logs) -> Result<(), ConsumeError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(self.inner.closed_error());
        }
        self.inner.consume(data, Vec::new()).await
    }

    fn agent_input(&self) -> Option<Arc<dyn AgentInput>> {
        self.inner.agent_input.as_ref()?;
        Some(Arc::new(DedupeInput {
            inner: self.inner.clone(),
        }))
    }
}

/// A `dedupe` whose emissions go to its store as records takes its observations as records
/// too (from the `otlp` receiver, [`AgentInput`]): the records it would read from their log
/// records, without the log records.
struct DedupeInput {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DedupeInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DedupeInput({})", self.inner.id)
    }
}

#[async_trait]
impl AgentInput for DedupeInput {
    fn owner(&self) -> &ComponentId {
        &self.inner.id
    }

    async fn consume_agent(&self, batch: AgentLogs) -> Result<(), ConsumeError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(self.inner.closed_error());
        }
        self.inner.consume(batch.logs, batch.records).await
    }
}

#[async_trait]
impl Component for DedupeProcessor {
    async fn start(&self) -> Result<(), ComponentError> {
        let mut task = self.inner.task.lock().unwrap_or_else(|p| p.into_inner());
        if task.is_none() && !self.inner.closed.load(Ordering::Acquire) {
            *task = Some(tokio::spawn(flush_loop(
                Arc::downgrade(&self.inner),
                self.inner.next_due.clone(),
                self.inner.wake.clone(),
                self.inner.stop.clone(),
            )));
        }
        self.inner.status.report(ComponentStatus::Ok);
        Ok(())
    }

    /// Refuses new data, then delivers everything pending (settle window) until nothing is left
    /// or `shutdown_timeout` has passed; what is left stays pending on disk.
    async fn shutdown(&self) -> Result<(), ComponentError> {
        let inner = &self.inner;
        if inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        inner.stop.cancel();
        let deadline = tokio::time::Instant::now() + inner.shutdown_timeout;
        let task = inner.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut task) = task {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
            }
        }
        let mut backoff = BACKOFF_MIN;
        while inner.next_due.load(Ordering::Acquire) != i64::MAX {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break;
            }
            match tokio::time::timeout_at(deadline, inner.flush_once(true)).await {
                Ok(Ok(true)) => backoff = BACKOFF_MIN,
                Ok(Ok(false)) => break,
                Ok(Err(e)) => {
                    tracing::warn!(component = %inner.id, error = %e, "pending dedupe records not accepted downstream during shutdown; retrying");
                    tokio::time::sleep_until((now + backoff).min(deadline)).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                Err(_) => break,
            }
        }
        let left = inner.engine.lock().await.pending().0;
        if left > 0 {
            tracing::warn!(component = %inner.id, pending = left, state = %inner.state_path.display(), "shutdown deadline passed with keys still pending; they stay on disk and are emitted at the next start");
            inner.counters.unflushed.inc_by(left);
        }
        Ok(())
    }
}
