//! Throughput of `dedupe` `consume` with no settle window, 1000-record requests, real SQLite
//! state, a downstream that accepts at once. Measured in process CPU time (all threads), so
//! the figure is records per second per core.
//!
//! `cargo bench -p agentcol-processor-dedupe --bench dedupe`
//!
//! * `unique`: every observation is a new key (first sight of a live session: the common case
//!   of the store pipeline).
//! * `two_channels`: 500 logical events seen by two channels in the same request (merge).
//! * `replay`: a request seen before, every observation a duplicate.
//! * `codex_aliased`: the request of `bench/loadgen --unique` (what `bench/store.sh` sends),
//!   normalised by the otlp receiver: a new Codex thread of 250 turns, four native records each
//!   (1250 observations, 1000 keys); three records per turn know their turn only by trace id
//!   (provisional keys), the fourth declares the alias, so every turn resolves in the request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use agentcol_component::agent::{attr, Agent, AgentRecord, EventKey, Kind, Source};

use agentcol_component::{async_trait, ComponentKind, ConsumeError, Consumer, Host, Logs};
use agentcol_processor_dedupe::{DedupeConfig, DedupeProcessor};
use std::time::Duration;

use criterion::{criterion_group, Criterion, Throughput};

/// The allocator of the `agentcol` binary, so the numbers are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Sink;

#[async_trait]
impl Consumer<Logs> for Sink {
    async fn consume(&self, _: Logs) -> Result<(), ConsumeError> {
        Ok(())
    }
}

static SESSION: AtomicU64 = AtomicU64::new(0);

fn observation(session: &str, turn: &str, i: usize, source: Source) -> AgentRecord {
    let key = EventKey::new(
        Agent::Codex,
        session,
        Some(turn),
        Some(&format!("call_{i}")),
        Kind::ToolResult,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut r = AgentRecord::observation(
        key,
        "agent.tool.result",
        source,
        1_795_356_674_530_000_000 + i as u64,
    );
    r.set(attr::CONVERSATION_ID, session);
    r.set(attr::AGENT_NAME, "codex");
    r.set(attr::TOOL_NAME, "exec_command");
    r.set(attr::TOOL_CALL_ID, format!("call_{i}"));
    r.set(attr::DURATION_MS, 12 + (i % 50) as i64);
    r.set(attr::TOOL_SUCCESS, true);
    r.set("codex.originator", "codex_cli_rs");
    if source == Source::Hook {
        r.set(attr::TOOL_EXIT_CODE, 0);
    }
    r.body = format!("total 48\ndrwxr-xr-x  5 user staff  160 src\n-rw-r--r--  1 user staff 1024 Cargo.toml\n# {i}").into();
    r
}

/// 1000 records in one resource/scope; `channels` observations per logical event.
fn request(channels: usize) -> Logs {
    let s = SESSION.fetch_add(1, Ordering::Relaxed);
    let session = format!("019a7c3e-5b7d-7e21-9f3a-{s:012x}");
    let turn = "019a7c3e-6000-7000-8000-000000000001";
    let sources = [Source::Otlp, Source::Hook];
    let records = (0..1000)
        .map(|n| observation(&session, turn, n / channels, sources[n % channels]).to_log_record())
        .collect();
    agentcol_component::data::logs_from(records)
}

/// `bench/loadgen`'s request (what `bench/store.sh` sends), normalised as the otlp receiver
/// does before `dedupe` sees it.
fn codex_request() -> Logs {
    let seq = SESSION.fetch_add(1, Ordering::Relaxed);
    let mut req = agentcol_loadgen::unique_request(1000, seq);
    agentcol_receiver_otlp::agent::normalize_logs(&mut req);
    req
}

/// Runs `iters` consumes of requests made by `make` (outside the measurement), returning the
/// CPU time they took.
fn cpu_of(
    rt: &tokio::runtime::Runtime,
    p: &DedupeProcessor,
    iters: u64,
    make: &dyn Fn() -> Logs,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let chunk: Vec<Logs> = (0..left.min(8)).map(|_| make()).collect();
        left -= chunk.len() as u64;
        let start = agentcol_loadgen::process_cpu_time();
        for logs in chunk {
            rt.block_on(p.consume(logs))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        total += agentcol_loadgen::process_cpu_time() - start;
    }
    total
}

/// A one-worker runtime and a `dedupe` (default config, state under `dir`) in front of a sink.
fn processor(dir: &std::path::Path) -> (tokio::runtime::Runtime, DedupeProcessor) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let host = Host::for_test(ComponentKind::Processor, "dedupe/bench", dir);
    let p = DedupeProcessor::new(&host, "logs", &DedupeConfig::default(), Arc::new(Sink))
        .unwrap_or_else(|e| panic!("{e}"));
    (rt, p)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (rt, p) = processor(dir.path());
    let mut g = c.benchmark_group("consume_window_0_cpu");
    g.throughput(Throughput::Elements(1000));
    g.sample_size(20);
    for (name, channels) in [("unique", 1usize), ("two_channels", 2)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| cpu_of(&rt, &p, iters, &|| request(channels)))
        });
    }
    g.bench_function("codex_aliased", |b| {
        b.iter_custom(|iters| cpu_of(&rt, &p, iters, &codex_request))
    });
    let seen = request(1);
    rt.block_on(p.consume(seen.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    g.bench_function("replay", |b| {
        b.iter_custom(|iters| cpu_of(&rt, &p, iters, &|| seen.clone()))
    });
    g.finish();
}

/// `DEDUPE_BENCH_FIXED=<n>`: instead of criterion, `n` consumes of `codex_aliased` after 20
/// of warm-up, printing their CPU time; a fixed amount of work, so old and new builds can also
/// be compared by instruction count (`perf stat -e instructions:u`), which the shared
/// machine's load does not move.
fn fixed(n: u64) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (rt, p) = processor(dir.path());
    cpu_of(&rt, &p, 20, &codex_request);
    let cpu = cpu_of(&rt, &p, n, &codex_request);
    println!(
        "codex_aliased fixed: {n} requests, {:.3} s CPU, {:.1}k records/CPU-s",
        cpu.as_secs_f64(),
        n as f64 * 1000.0 / cpu.as_secs_f64() / 1000.0
    );
}

criterion_group!(benches, bench);

fn main() {
    if let Some(n) = std::env::var("DEDUPE_BENCH_FIXED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        fixed(n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
