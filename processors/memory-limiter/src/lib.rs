//! The `memory_limiter` processor: refuses data with a retryable error while the process uses
//! more memory than it should.
//!
//! Same settings as otelcol's (`check_interval`, `limit_mib` / `limit_percentage`,
//! `spike_limit_mib` / `spike_limit_percentage`). A background task started in `start` samples
//! the process's resident set size every `check_interval`. While it is at or above the *soft
//! limit* (limit − spike), `consume` answers [`ConsumeError::throttled`] without touching the
//! data, so OTLP clients get UNAVAILABLE / 503 with a retry hint and keep the data on their side;
//! below it, data passes through unchanged. Put it first in a pipeline, as in otelcol.
//!
//! What it does not do: there is no garbage collector to force above the hard limit, so the
//! hard limit only changes what is logged; otelcol's `min_gc_interval_*` keys are accepted (and
//! checked) for config compatibility but have no effect. Memory is RSS from `/proc` (Linux);
//! where it cannot be read the limiter logs a warning and lets data through.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use agentcol_component::config::ConfigError;
use agentcol_component::lifecycle::{Component, ComponentError};
use agentcol_component::telemetry::{CounterFamily, ProcessorTelemetry};
use agentcol_component::{
    async_trait, erase_processor, module_name, AgentInput, AgentLogs, AnyConsumer,
    AnyProcessorFactory, ComponentConfig, ComponentId, ConsumeError, Consumer, CreateError,
    Duration, Host, ProcessorFactory, ProcessorInstance, SignalData, SignalStability, Stability,
    StatusReporter, Telemetry,
};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const MIB: u64 = 1024 * 1024;
/// The spike limit when none is configured, in percent of the limit (otelcol's default).
const DEFAULT_SPIKE_PERCENT: u64 = 20;
/// The counter of refused items (exposed with the `_total` suffix).
pub const REFUSED_ITEMS_METRIC: &str = "agentcol_processor_memory_limiter_refused_items";

/// The `memory_limiter` processor's settings (otelcol's names and defaults: there are no usable
/// defaults for `check_interval` and the limit, so both must be set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryLimiterConfig {
    /// Time between two measurements of memory usage. Must be greater than zero.
    pub check_interval: Duration,
    /// Hard limit, in MiB. Wins over `limit_percentage` when both are set.
    pub limit_mib: u32,
    /// Headroom below the hard limit, in MiB; the soft limit is `limit_mib - spike_limit_mib`.
    /// `0`: 20% of the limit.
    pub spike_limit_mib: u32,
    /// Hard limit, in percent of the memory available (cgroup limit or physical memory).
    pub limit_percentage: u32,
    /// Headroom below the hard limit, in percent of the memory available. `0`: 20% of the limit.
    pub spike_limit_percentage: u32,
    /// Accepted for compatibility with otelcol configs; has no effect (no garbage collector).
    pub min_gc_interval_when_soft_limited: Duration,
    /// Accepted for compatibility with otelcol configs; has no effect (no garbage collector).
    pub min_gc_interval_when_hard_limited: Duration,
}

impl Default for MemoryLimiterConfig {
    fn default() -> Self {
        MemoryLimiterConfig {
            check_interval: Duration::default(),
            limit_mib: 0,
            spike_limit_mib: 0,
            limit_percentage: 0,
            spike_limit_percentage: 0,
            min_gc_interval_when_soft_limited: Duration::from_secs(10),
            min_gc_interval_when_hard_limited: Duration::default(),
        }
    }
}

impl ComponentConfig for MemoryLimiterConfig {
    fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        if self.check_interval.is_zero() {
            errors.push(ConfigError::new(
                "check_interval",
                "'check_interval' must be greater than zero",
            ));
        }
        if self.limit_mib == 0 && self.limit_percentage == 0 {
            errors.push(ConfigError::new(
                "limit_mib",
                "'limit_mib' or 'limit_percentage' must be greater than zero",
            ));
        }
        if self.limit_percentage > 100 || self.spike_limit_percentage > 100 {
            let path = if self.limit_percentage > 100 {
                "limit_percentage"
            } else {
                "spike_limit_percentage"
            };
            errors.push(ConfigError::new(
                path,
                "'limit_percentage' and 'spike_limit_percentage' must be greater than zero and less than or equal to hundred",
            ));
        }
        if self.limit_mib > 0 && self.spike_limit_mib >= self.limit_mib {
            errors.push(ConfigError::new(
                "spike_limit_mib",
                "'spike_limit_mib' must be smaller than 'limit_mib'",
            ));
        }
        if self.limit_percentage > 0 && self.spike_limit_percentage >= self.limit_percentage {
            errors.push(ConfigError::new(
                "spike_limit_percentage",
                "'spike_limit_percentage' must be smaller than 'limit_percentage'",
            ));
        }
        if self.min_gc_interval_when_soft_limited < self.min_gc_interval_when_hard_limited {
            errors.push(ConfigError::new(
                "min_gc_interval_when_soft_limited",
                "'min_gc_interval_when_soft_limited' should be larger than 'min_gc_interval_when_hard_limited'",
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Where the limiter reads memory figures from. The default, [`ProcMemory`], reads `/proc` and
/// the cgroup files; tests substitute their own to drive the limiter.
pub trait MemorySource: Send + Sync + fmt::Debug + 'static {
    /// The process's resident set size, in bytes.
    fn rss_bytes(&self) -> io::Result<u64>;
    /// The memory available to the process (cgroup limit, or physical memory), in bytes. Used
    /// only by `limit_percentage`.
    fn total_bytes(&self) -> io::Result<u64>;
}

/// Memory figures from Linux: RSS from `/proc/self/statm` × the page size (from
/// `/proc/self/auxv`), total from the cgroup v2/v1 limit or `/proc/meminfo`.
#[derive(Debug, Default)]
pub struct ProcMemory {
    page_size: OnceLock<u64>,
}

/// `AT_PAGESZ` in the ELF auxiliary vector.
const AT_PAGESZ: usize = 6;
/// cgroup v1 reports "no limit" as a huge number (close to `i64::MAX`, rounded to pages).
const CGROUP_UNLIMITED: u64 = 1 << 60;

impl ProcMemory {
    fn page_size(&self) -> u64 {
        *self.page_size.get_or_init(|| {
            std::fs::read("/proc/self/auxv")
                .ok()
                .and_then(|bytes| page_size_from_auxv(&bytes))
                .unwrap_or(4096)
        })
    }
}

fn page_size_from_auxv(bytes: &[u8]) -> Option<u64> {
    const WORD: usize = std::mem::size_of::<usize>();
    let mut words = bytes.chunks_exact(WORD).map(|w| {
        let mut buf = [0u8; WORD];
        buf.copy_from_slice(w);
        usize::from_ne_bytes(buf)
    });
    while let (Some(key), Some(value)) = (words.next(), words.next()) {
        match key {
            0 => return None,
            AT_PAGESZ if value > 0 => return Some(value as u64),
            _ => {}
        }
    }
    None
}

fn parse_statm_resident_pages(text: &str) -> io::Result<u64> {
    text.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed /proc/self/statm"))
}

fn parse_meminfo_total(text: &str) -> io::Result<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no MemTotal in /proc/meminfo"))
}

fn parse_cgroup_limit(text: &str) -> Option<u64> {
    let v = text.trim();
    if v == "max" {
        return None;
    }
    v.parse::<u64>()
        .ok()
        .filter(|&n| n > 0 && n < CGROUP_UNLIMITED)
}

impl MemorySource for ProcMemory {
    fn rss_bytes(&self) -> io::Result<u64> {
        let statm = std::fs::read_to_string("/proc/self/statm")?;
        Ok(parse_statm_resident_pages(&statm)? * self.page_size())
    }

    fn total_bytes(&self) -> io::Result<u64> {
        let physical = parse_meminfo_total(&std::fs::read_to_string("/proc/meminfo")?)?;
        let cgroup = [
            "/sys/fs/cgroup/memory.max",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        ]
        .iter()
        .find_map(|p| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|t| parse_cgroup_limit(&t))
        });
        Ok(cgroup.map_or(physical, |c| c.min(physical)))
    }
}

/// The limits in bytes, resolved from the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    hard: u64,
    soft: u64,
}

impl Limits {
    fn resolve(config: &MemoryLimiterConfig, source: &dyn MemorySource) -> Result<Self, String> {
        let (hard, spike) = if config.limit_mib > 0 {
            let hard = u64::from(config.limit_mib) * MIB;
            let spike = match config.spike_limit_mib {
                0 => hard * DEFAULT_SPIKE_PERCENT / 100,
                s => u64::from(s) * MIB,
            };
            (hard, spike)
        } else {
            let total = source.total_bytes().map_err(|e| {
                format!("limit_percentage needs the memory available to the process: {e}")
            })?;
            let hard = total / 100 * u64::from(config.limit_percentage);
            let spike = match config.spike_limit_percentage {
                0 => hard * DEFAULT_SPIKE_PERCENT / 100,
                s => total / 100 * u64::from(s),
            };
            (hard, spike)
        };
        if hard == 0 || spike >= hard {
            return Err(format!(
                "the memory limit ({} MiB) must be larger than its spike limit ({} MiB)",
                hard / MIB,
                spike / MIB
            ));
        }
        Ok(Limits {
            hard,
            soft: hard - spike,
        })
    }
}

/// Factory of the `memory_limiter` processor.
#[derive(Debug, Clone)]
pub struct MemoryLimiterFactory {
    source: Arc<dyn MemorySource>,
}

impl Default for MemoryLimiterFactory {
    fn default() -> Self {
        MemoryLimiterFactory {
            source: Arc::new(ProcMemory::default()),
        }
    }
}

impl MemoryLimiterFactory {
    /// A factory whose instances read memory from `source` instead of `/proc`.
    pub fn with_source(source: Arc<dyn MemorySource>) -> Self {
        MemoryLimiterFactory { source }
    }
}

impl ProcessorFactory for MemoryLimiterFactory {
    type Config = MemoryLimiterConfig;

    fn type_name(&self) -> &'static str {
        "memory_limiter"
    }

    fn stability(&self) -> SignalStability {
        SignalStability::all(Stability::Beta)
    }

    fn create(
        &self,
        host: Host,
        pipeline: &str,
        config: MemoryLimiterConfig,
        next: AnyConsumer,
    ) -> Result<ProcessorInstance, CreateError> {
        let limits =
            Limits::resolve(&config, self.source.as_ref()).map_err(CreateError::InvalidConfig)?;
        let labels = vec![
            ("processor".to_string(), host.id().to_string()),
            ("pipeline".to_string(), pipeline.to_string()),
        ];
        let shared = Arc::new(Shared {
            id: host.id().clone(),
            pipeline: pipeline.to_string(),
            status: host.status().clone(),
            telemetry: host.telemetry().processor(host.id(), pipeline),
            refused: refused_family(host.telemetry(), &labels),
            labels,
            limits,
            check_interval: config.check_interval.get(),
            source: self.source.clone(),
            level: AtomicU8::new(Level::Normal as u8),
            refusing: AtomicBool::new(false),
            read_failed: AtomicBool::new(false),
            last_rss: AtomicU64::new(0),
            task: Mutex::new(None),
            stop: CancellationToken::new(),
        });
        fn wrap<T: SignalData>(
            shared: Arc<Shared>,
            next: Arc<dyn Consumer<T>>,
        ) -> Arc<MemoryLimiter<T>> {
            Arc::new(MemoryLimiter { shared, next })
        }
        Ok(match next {
            AnyConsumer::Traces(next) => {
                let p = wrap(shared, next);
                ProcessorInstance {
                    consumer: AnyConsumer::Traces(p.clone()),
                    component: p,
                }
            }
            AnyConsumer::Metrics(next) => {
                let p = wrap(shared, next);
                ProcessorInstance {
                    consumer: AnyConsumer::Metrics(p.clone()),
                    component: p,
                }
            }
            AnyConsumer::Logs(next) => {
                let p = wrap(shared, next);
                ProcessorInstance {
                    consumer: AnyConsumer::Logs(p.clone()),
                    component: p,
                }
            }
        })
    }
}

/// The `memory_limiter` processor factory (reading `/proc`), erased for the registry.
pub fn factory() -> Arc<dyn AnyProcessorFactory> {
    erase_processor(MemoryLimiterFactory::default(), module_name!())
}

/// The refused-items family of `telemetry` (registered once per registry, shared by the
/// instances of every pipeline), with the series `labels` created at zero so it shows from the
/// start.
fn refused_family(telemetry: &Telemetry, labels: &Vec<(String, String)>) -> CounterFamily {
    let family = telemetry.counter(
        REFUSED_ITEMS_METRIC,
        "Items refused because memory usage was above the soft limit",
    );
    drop(family.get_or_create(labels));
    family
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Level {
    Normal = 0,
    Soft = 1,
    Hard = 2,
}

impl Level {
    fn from_u8(v: u8) -> Level {
        match v {
            1 => Level::Soft,
            2 => Level::Hard,
            _ => Level::Normal,
        }
    }
}

/// State shared by the consumer of one pipeline and its sampling task.
struct Shared {
    id: ComponentId,
    pipeline: String,
    status: StatusReporter,
    telemetry: ProcessorTelemetry,
    refused: CounterFamily,
    labels: Vec<(String, String)>,
    limits: Limits,
    check_interval: std::time::Duration,
    source: Arc<dyn MemorySource>,
    level: AtomicU8,
    refusing: AtomicBool,
    read_failed: AtomicBool,
    last_rss: AtomicU64,
    task: Mutex<Option<JoinHandle<()>>>,
    stop: CancellationToken,
}

impl Shared {
    /// Samples memory once and updates the refusing state, logging transitions.
    fn check(&self) {
        let rss = match self.source.rss_bytes() {
            Ok(rss) => {
                if self.read_failed.swap(false, Ordering::Relaxed) {
                    tracing::info!(component = %self.id, pipeline = %self.pipeline, "memory usage can be read again");
                }
                rss
            }
            Err(e) => {
                if !self.read_failed.swap(true, Ordering::Relaxed) {
                    tracing::warn!(component = %self.id, pipeline = %self.pipeline, error = %e, "cannot read memory usage; letting data through");
                }
                self.set_level(Level::Normal, 0);
                return;
            }
        };
        self.last_rss.store(rss, Ordering::Relaxed);
        let level = if rss >= self.limits.hard {
            Level::Hard
        } else if rss >= self.limits.soft {
            Level::Soft
        } else {
            Level::Normal
        };
        self.set_level(level, rss);
    }

    fn set_level(&self, level: Level, rss: u64) {
        self.refusing
            .store(level != Level::Normal, Ordering::Release);
        let before = Level::from_u8(self.level.swap(level as u8, Ordering::AcqRel));
        if before == level {
            return;
        }
        let cur_mem_mib = rss / MIB;
        let soft_limit_mib = self.limits.soft / MIB;
        let hard_limit_mib = self.limits.hard / MIB;
        match level {
            Level::Soft if before == Level::Normal => {
                tracing::warn!(component = %self.id, pipeline = %self.pipeline, cur_mem_mib, soft_limit_mib, "Memory usage is above soft limit. Refusing data.");
            }
            Level::Soft => {
                tracing::warn!(component = %self.id, pipeline = %self.pipeline, cur_mem_mib, hard_limit_mib, "Memory usage is back below the hard limit, still above the soft limit. Refusing data.");
            }
            Level::Hard => {
                tracing::warn!(component = %self.id, pipeline = %self.pipeline, cur_mem_mib, hard_limit_mib, "Memory usage is above hard limit. Refusing data.");
            }
            Level::Normal => {
                tracing::info!(component = %self.id, pipeline = %self.pipeline, cur_mem_mib, soft_limit_mib, "Memory usage back within limits. Resuming normal operation.");
            }
        }
        match level {
            Level::Normal => self.status.ok(),
            _ => self.status.degraded(format!(
                "memory usage {cur_mem_mib} MiB is above the soft limit of {soft_limit_mib} MiB: refusing data"
            )),
        }
    }

    /// Lets `items` through, or refuses them (counted) while memory is above the soft limit.
    fn admit(&self, items: usize) -> Result<(), ConsumeError> {
        self.telemetry.incoming(items);
        if self.refusing.load(Ordering::Acquire) {
            self.refused
                .get_or_create(&self.labels)
                .inc_by(items as u64);
            return Err(self.refusal());
        }
        self.telemetry.outgoing(items);
        Ok(())
    }

    fn refusal(&self) -> ConsumeError {
        ConsumeError::throttled(
            format!(
                "memory usage above soft limit ({} MiB used, soft limit {} MiB): data refused by {}",
                self.last_rss.load(Ordering::Relaxed) / MIB,
                self.limits.soft / MIB,
                self.id
            ),
            self.check_interval,
        )
    }
}

/// One instance (one pipeline, one signal).
struct MemoryLimiter<T: SignalData> {
    shared: Arc<Shared>,
    next: Arc<dyn Consumer<T>>,
}

#[async_trait]
impl<T: SignalData> Consumer<T> for MemoryLimiter<T> {
    async fn consume(&self, data: T) -> Result<(), ConsumeError> {
        self.shared.admit(data.item_count())?;
        self.next.consume(data).await
    }

    /// Records pass the same check as log records do (nothing here buffers or acknowledges
    /// early, so the input after this processor can take them directly).
    fn agent_input(&self) -> Option<Arc<dyn AgentInput>> {
        let next = self.next.agent_input()?;
        Some(Arc::new(LimitedInput {
            shared: self.shared.clone(),
            next,
        }))
    }
}

/// The agent-record input of the consumer after a memory limiter, behind its check.
struct LimitedInput {
    shared: Arc<Shared>,
    next: Arc<dyn AgentInput>,
}

impl fmt::Debug for LimitedInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LimitedInput({} → {:?})", self.shared.id, self.next)
    }
}

#[async_trait]
impl AgentInput for LimitedInput {
    fn owner(&self) -> &ComponentId {
        self.next.owner()
    }

    async fn consume_agent(&self, batch: AgentLogs) -> Result<(), ConsumeError> {
        self.shared.admit(batch.item_count())?;
        self.next.consume_agent(batch).await
    }
}

#[async_trait]
impl<T: SignalData> Component for MemoryLimiter<T> {
    async fn start(&self) -> Result<(), ComponentError> {
        let s = &self.shared;
        let mut task = s.task.lock().unwrap_or_else(PoisonError::into_inner);
        if task.is_some() || s.stop.is_cancelled() {
            return Ok(());
        }
        s.check();
        if s.level.load(Ordering::Acquire) == Level::Normal as u8 {
            s.status.ok();
        }
        tracing::debug!(
            component = %s.id,
            pipeline = %s.pipeline,
            hard_limit_mib = s.limits.hard / MIB,
            soft_limit_mib = s.limits.soft / MIB,
            "memory limiter started"
        );
        let weak: Weak<Shared> = Arc::downgrade(s);
        let stop = s.stop.clone();
        let every = s.check_interval;
        *task = Some(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await; // the first tick is immediate: checked above
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stop.cancelled() => return,
                }
                match weak.upgrade() {
                    Some(shared) => shared.check(),
                    None => return,
                }
            }
        }));
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ComponentError> {
        self.shared.stop.cancel();
        let task = self
            .shared
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(u64);

    impl MemorySource for Fixed {
        fn rss_bytes(&self) -> io::Result<u64> {
            Ok(0)
        }
        fn total_bytes(&self) -> io::Result<u64> {
            Ok(self.0)
        }
    }

    fn config(limit_mib: u32, spike_mib: u32, pct: u32, spike_pct: u32) -> MemoryLimiterConfig {
        MemoryLimiterConfig {
            check_interval: Duration::from_secs(1),
            limit_mib,
            spike_limit_mib: spike_mib,
            limit_percentage: pct,
            spike_limit_percentage: spike_pct,
            ..Default::default()
        }
    }

    #[test]
    fn limits_resolve_like_otelcol() {
        let src = Fixed(1000 * MIB);
        let l = Limits::resolve(&config(500, 0, 0, 0), &src).unwrap();
        assert_eq!((l.hard, l.soft), (500 * MIB, 400 * MIB));
        let l = Limits::resolve(&config(500, 50, 0, 0), &src).unwrap();
        assert_eq!(l.soft, 450 * MIB);
        let l = Limits::resolve(&config(0, 0, 50, 10), &src).unwrap();
        assert_eq!((l.hard, l.soft), (500 * MIB, 400 * MIB));
        let l = Limits::resolve(&config(0, 0, 50, 0), &src).unwrap();
        assert_eq!(l.soft, 400 * MIB);
        // limit_mib wins.
        let l = Limits::resolve(&config(100, 0, 50, 0), &src).unwrap();
        assert_eq!(l.hard, 100 * MIB);
    }

    #[test]
    fn proc_parsers() {
        assert_eq!(
            parse_statm_resident_pages("1000 250 30 1 0 200 0").unwrap(),
            250
        );
        assert!(parse_statm_resident_pages("").is_err());
        assert_eq!(
            parse_meminfo_total("MemTotal:       16318480 kB\nMemFree: 1 kB\n").unwrap(),
            16318480 * 1024
        );
        assert_eq!(parse_cgroup_limit("max\n"), None);
        assert_eq!(parse_cgroup_limit("9223372036854771712\n"), None);
        assert_eq!(parse_cgroup_limit("536870912\n"), Some(512 * MIB));
        let mut auxv = Vec::new();
        for v in [3usize, 77, AT_PAGESZ, 16384, 0, 0] {
            auxv.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(page_size_from_auxv(&auxv), Some(16384));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn proc_memory_reads_this_process() {
        let m = ProcMemory::default();
        let rss = m.rss_bytes().unwrap();
        let total = m.total_bytes().unwrap();
        assert!(rss > 0 && rss < total, "rss {rss} total {total}");
        assert!(m.page_size() >= 4096);
    }
}
