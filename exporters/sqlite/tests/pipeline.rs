//! Write CPU on the store pipeline's own load (a measurement, not a timed test): `cargo test
//! --release -p agentcol-exporter-sqlite --test pipeline -- --ignored --nocapture`.
//!
//! The store's input in `otlp → dedupe → sqlite` is `dedupe`'s output, so this feeds the
//! store exactly that: `bench/store.sh`'s requests (`agentcol_loadgen::unique_request`, a new
//! Codex thread of 250 four-record turns per request, normalised by the otlp receiver) through
//! a real `dedupe` (window 0, state in a temporary file), captured outside the measurement, then
//! written with [`Store::apply_owned`] one request per transaction. Prints records per
//! CPU-second of the writing thread (all of it, and user time only: the kernel's share is the
//! page cache and fsync, which vary with the host) and bytes written per record.
//! `PIPELINE_REQUESTS` sets the number of 1000-record requests (default 40).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use agentcol_component::{async_trait, ComponentKind, ConsumeError, Consumer, Host, Logs};
use agentcol_exporter_sqlite::{Store, StoreOptions};
use agentcol_processor_dedupe::{DedupeConfig, DedupeProcessor};

/// The allocator of the `agentcol` binary, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keeps what `dedupe` emits.
#[derive(Default)]
struct Capture(Mutex<Vec<Logs>>);

#[async_trait]
impl Consumer<Logs> for Capture {
    async fn consume(&self, logs: Logs) -> Result<(), ConsumeError> {
        self.0.lock().unwrap().push(logs);
        Ok(())
    }
}

/// (total, user) CPU time of this thread so far (`/proc/thread-self/schedstat` in ns, and
/// `/proc/thread-self/stat` utime in clock ticks of 10 ms).
fn thread_cpu() -> (f64, f64) {
    let sched = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    let total: u64 = sched.split_whitespace().next().unwrap().parse().unwrap();
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // Fields after the command name (which is in parentheses): state is field 3, utime 14.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let utime: u64 = after.split_whitespace().nth(11).unwrap().parse().unwrap();
    (total as f64 / 1e9, utime as f64 / 100.0)
}

fn written() -> u64 {
    let s = std::fs::read_to_string("/proc/self/io").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

#[test]
#[ignore = "measurement"]
fn store_pipeline_write_cpu() {
    let requests: u64 = std::env::var("PIPELINE_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let capture = Arc::new(Capture::default());
    let host = Host::for_test(ComponentKind::Processor, "dedupe/store", dir.path());
    let dedupe = DedupeProcessor::new(&host, "logs", &DedupeConfig::default(), capture.clone())
        .unwrap_or_else(|e| panic!("{e}"));
    for seq in 0..requests {
        let mut req = agentcol_loadgen::unique_request(1000, seq);
        agentcol_receiver_otlp::agent::normalize_logs(&mut req);
        rt.block_on(dedupe.consume(req)).unwrap();
    }
    let batches = std::mem::take(&mut *capture.0.lock().unwrap());
    let records: usize = batches
        .iter()
        .flat_map(|l| &l.resource_logs)
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    let mut store = Store::open(&dir.path().join("agentcol.db"), StoreOptions::default()).unwrap();
    let (c0, u0) = thread_cpu();
    let w0 = written();
    let t = Instant::now();
    for b in batches {
        store.apply_owned(b).unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    let (c1, u1) = thread_cpu();
    let n = records as f64;
    println!(
        "store pipeline: {records} records from {requests} requests in {secs:.2}s; CPU {:.2}s = {:.0} records/CPU-s, user {:.2}s = {:.0} records/user-CPU-s, {:.2} KiB written/record",
        c1 - c0,
        n / (c1 - c0),
        u1 - u0,
        n / (u1 - u0).max(0.01),
        (written() - w0) as f64 / 1024.0 / n,
    );
}
