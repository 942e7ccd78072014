//! Per-record cost of the agent-record conversions every event goes through several times on
//! the store pipeline (receiver → dedupe → store), on the real load: the request of
//! `bench/loadgen --unique` (what `bench/store.sh` sends), a new Codex thread of 250 turns,
//! four native records each.
//!
//! `cargo bench -p agentcol-receiver-otlp --bench record`
//!
//! Lives here rather than in `agentcol-component` because it needs the receiver's
//! `normalize_logs` to build the records (component cannot depend on the receiver).
//! Timed in process CPU time (the host is shared; the budgets are per core), input set-up and
//! output drops excluded. Every group's throughput is in records, so criterion's `thrpt` is records per second and
//! `time / elements` the per-record time.
//!
//! * `normalize`: `normalize_logs` of the 1000 native records (→ 1250 canonical ones).
//! * `normalize_into_records`: the same, the canonical records taken out as `AgentRecord`s
//!   (`normalize_logs_into_records`, what the receiver hands a `dedupe` in front of its store):
//!   compare with `normalize` + `take_from_log_record`, the way through OTLP.
//! * `take_from_log_record`: the 1250 canonical log records read back, moving (dedupe, store).
//! * `from_log_record`: the same, copying.
//! * `to_log_record`: the 1250 records written as OTLP (dedupe's output).
//! * `into_log_record_keyed`: the same, consuming the records (dedupe's output).
//! * `observation_json_keyed`: their archive JSON (digests, the store's archive).
//! * `record_json`: `serde_json::to_string` of each record (the store's `record` column).
//! * `to_json_keyed`: the same text by `AgentRecord::to_json_keyed`.

use agentcol_component::agent::AgentRecord;
use agentcol_component::opentelemetry_proto::tonic::logs::v1::LogRecord;
use agentcol_receiver_otlp::agent::{normalize_logs, normalize_logs_into_records};
use std::time::Duration;

use agentcol_loadgen::process_cpu_time;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

/// The allocator of the `agentcol` binary, so the numbers are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NATIVE: usize = 1000;

fn canonical() -> Vec<LogRecord> {
    let mut req = agentcol_loadgen::unique_request(NATIVE, 7);
    normalize_logs(&mut req);
    req.resource_logs
        .into_iter()
        .flat_map(|rl| rl.scope_logs)
        .flat_map(|sl| sl.log_records)
        .collect()
}

/// The process CPU time of `iters` runs of `work`, each on a fresh input from `setup`; the
/// setup and the drop of the output are not counted.
fn timed<I, O>(iters: u64, mut setup: impl FnMut() -> I, mut work: impl FnMut(I) -> O) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let input = setup();
        let t = process_cpu_time();
        let out = black_box(work(black_box(input)));
        total += process_cpu_time() - t;
        drop(out);
    }
    total
}

/// Benchmarks `work`, a conversion that reads its input in place (no set-up per run), its
/// output dropped outside the timing.
fn each<T>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    work: impl Fn() -> Vec<T>,
) {
    g.bench_function(name, |b| {
        b.iter_custom(|iters| timed(iters, || (), |()| work()))
    });
}

fn bench(c: &mut Criterion) {
    let raw = agentcol_loadgen::unique_request(NATIVE, 7);
    let logs = canonical();
    let records: Vec<AgentRecord> = logs
        .iter()
        .map(|r| AgentRecord::from_log_record(r).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let keys: Vec<String> = records.iter().map(|r| r.key.to_string()).collect();
    let n = logs.len() as u64;

    let mut g = c.benchmark_group("record");
    g.sample_size(30);

    g.throughput(Throughput::Elements(NATIVE as u64));
    g.bench_function("normalize", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                || raw.clone(),
                |mut req| {
                    normalize_logs(&mut req);
                    req
                },
            )
        })
    });

    g.bench_function("normalize_into_records", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                || raw.clone(),
                |mut req| {
                    let (records, _) = normalize_logs_into_records(&mut req);
                    (req, records)
                },
            )
        })
    });

    g.throughput(Throughput::Elements(n));
    g.bench_function("take_from_log_record", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                || logs.clone(),
                |mut logs| {
                    let out: Vec<AgentRecord> = logs
                        .iter_mut()
                        .filter_map(|r| AgentRecord::take_from_log_record(r, |_| true).ok())
                        .collect();
                    (logs, out)
                },
            )
        })
    });
    each(&mut g, "from_log_record", || {
        logs.iter()
            .filter_map(|r| AgentRecord::from_log_record(r).ok())
            .collect()
    });
    each(&mut g, "to_log_record", || {
        records.iter().map(|r| r.to_log_record()).collect()
    });
    g.bench_function("into_log_record_keyed", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                || (records.clone(), keys.clone()),
                |(records, keys)| {
                    records
                        .into_iter()
                        .zip(keys)
                        .map(|(r, k)| r.into_log_record_keyed(k))
                        .collect::<Vec<_>>()
                },
            )
        })
    });
    each(&mut g, "observation_json_keyed", || {
        records
            .iter()
            .zip(&keys)
            .map(|(r, k)| r.observation_json_keyed(k))
            .collect()
    });
    each(&mut g, "record_json", || {
        records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap_or_default())
            .collect()
    });
    each(&mut g, "to_json_keyed", || {
        records
            .iter()
            .zip(&keys)
            .map(|(r, k)| r.to_json_keyed(k))
            .collect()
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
