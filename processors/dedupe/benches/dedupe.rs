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

use agentcol_component::opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, InstrumentationScope, KeyValue,
};
use agentcol_component::opentelemetry_proto::tonic::logs::v1::{
    LogRecord, ResourceLogs, ScopeLogs,
};
use agentcol_component::opentelemetry_proto::tonic::resource::v1::Resource;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

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

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.to_string())),
        }),
        ..Default::default()
    }
}

/// `bench/loadgen`'s `unique_request(1000, seq)` (kept in step with it by hand), normalised as
/// the otlp receiver does before `dedupe` sees it.
fn codex_request() -> Logs {
    let seq = SESSION.fetch_add(1, Ordering::Relaxed);
    let thread = format!("019a7c3e-0000-7000-8000-{seq:012x}");
    let records = (0..1000usize)
        .map(|i| {
            let turn = i / 4;
            let mut trace = [0u8; 16];
            trace[..8].copy_from_slice(&seq.to_be_bytes());
            trace[8..].copy_from_slice(&(turn as u64 + 1).to_be_bytes());
            let call = format!("call_{seq:x}_{turn}");
            let time = 1_795_000_000_000_000_000 + seq * 1_000_000 + i as u64;
            let mut attrs = vec![
                kv("conversation.id", &thread),
                kv("event.timestamp", "2026-11-22T14:11:14.530Z"),
                kv("model", "gpt-5.5"),
                kv("originator", "codex_exec"),
            ];
            match i % 4 {
                0 => {
                    attrs.push(kv("event.name", "codex.user_prompt"));
                    attrs.push(kv("prompt", "List the files and explain the layout of this crate."));
                }
                1 => {
                    attrs.push(kv("event.name", "codex.tool_decision"));
                    attrs.push(kv("tool_name", "exec_command"));
                    attrs.push(kv("call_id", &call));
                    attrs.push(kv("decision", "approved"));
                }
                2 => {
                    attrs.push(kv("event.name", "codex.tool_result"));
                    attrs.push(kv("tool_name", "exec_command"));
                    attrs.push(kv("call_id", &call));
                    attrs.push(kv("arguments", "{\"cmd\": \"ls -la\", \"yield_time_ms\": 5000}"));
                    attrs.push(kv("duration_ms", "91"));
                    attrs.push(kv("success", "true"));
                    attrs.push(kv("output", "Process exited with code 0\nOutput:\ntotal 48\n-rw-r--r-- 1 dev dev 1320 Cargo.toml\n-rw-r--r-- 1 dev dev 911 README.md\ndrwxr-xr-x 3 dev dev 4096 src\n"));
                }
                _ => {
                    attrs.push(kv("event.name", "codex.agent_response"));
                    attrs.push(kv("turn.id", &format!("019a7c3e-{seq:04x}-7000-8000-{turn:012x}")));
                    attrs.push(kv("item.id", &format!("msg_{seq:x}_{turn}")));
                    attrs.push(kv("response", "The crate has a Cargo.toml, a README and a src folder; src holds the library."));
                }
            }
            LogRecord {
                observed_time_unix_nano: time,
                attributes: attrs,
                trace_id: trace.to_vec(),
                span_id: vec![1; 8],
                ..Default::default()
            }
        })
        .collect();
    let mut req = Logs {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "codex_exec"),
                    kv("service.version", "0.169.0"),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "codex_otel.log_only".into(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    agentcol_receiver_otlp::agent::normalize_logs(&mut req);
    req
}

/// CPU time of the whole process (every thread): the budget is per core, and the wall clock on
/// a shared machine measures the neighbours too.
fn cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes into it.
    #[allow(unsafe_code)]
    unsafe {
        libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts);
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
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
        let start = cpu_now();
        for logs in chunk {
            rt.block_on(p.consume(logs))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        total += cpu_now() - start;
    }
    total
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let host = Host::for_test(ComponentKind::Processor, "dedupe/bench", dir.path());
    let p = DedupeProcessor::new(&host, "logs", &DedupeConfig::default(), Arc::new(Sink))
        .unwrap_or_else(|e| panic!("{e}"));
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

criterion_group!(benches, bench);
criterion_main!(benches);
