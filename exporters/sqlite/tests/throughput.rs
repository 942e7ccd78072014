//! Write throughput (a measurement, not a timed test): `cargo test --release -p
//! agentcol-exporter-sqlite --test throughput -- --ignored --nocapture`. Prints wall-clock
//! records/s, records per CPU-second of the writing thread (fsync waits excluded; the number to
//! compare on a shared machine) and the bytes written per record.

mod common;

use std::time::Instant;

use agentcol_component::agent::{
    attr, Agent, AgentRecord, EventKey, Kind, Merged, Precedence, Source,
};
use agentcol_exporter_sqlite::{Store, StoreOptions, Synchronous};
use serde_json::json;

/// CPU time of this thread so far (Linux: `/proc/thread-self/schedstat`), if known. The store
/// writes on the calling thread, so this is its CPU cost, fsync waits excluded.
fn thread_cpu() -> Option<std::time::Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = s.split_whitespace().next()?.parse().ok()?;
    Some(std::time::Duration::from_nanos(ns))
}

/// Bytes this process has passed to write calls so far (`/proc/self/io` `wchar`), if known.
fn written() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/io").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
}

fn session(s: usize, events: usize) -> Vec<AgentRecord> {
    let p = Precedence::default();
    let id = format!("019a7c3e-0000-7000-8000-{s:012}");
    let mut out = Vec::with_capacity(events);
    for i in 0..events {
        let turn = format!("019a7c3e-6000-7000-8000-{:012}", i / 20);
        let item = format!("item_{i}");
        let (kind, attrs, body) = match i % 4 {
            0 => (
                Kind::Message,
                vec![],
                json!("Here is what I found in the repository, line after line."),
            ),
            1 => (
                Kind::ToolCall,
                vec![
                    (attr::TOOL_NAME, json!("exec_command")),
                    (attr::TOOL_INPUT, json!("{\"cmd\":\"rg -n foo\"}")),
                ],
                json!(null),
            ),
            2 => (
                Kind::ToolResult,
                vec![
                    (attr::TOOL_EXIT_CODE, json!("0")),
                    (attr::DURATION_MS, json!("12")),
                ],
                json!("src/lib.rs:1: foo\nsrc/main.rs:9: foo"),
            ),
            _ => (
                Kind::Usage,
                vec![
                    (attr::REQUEST_MODEL, json!("gpt-5.1-codex")),
                    (attr::USAGE_INPUT_TOKENS, json!("1200")),
                    (attr::USAGE_OUTPUT_TOKENS, json!("80")),
                ],
                json!(null),
            ),
        };
        let item = if matches!(kind, Kind::ToolCall | Kind::ToolResult) {
            format!("call_{}", i / 4)
        } else {
            item
        };
        let key = EventKey::new(Agent::Codex, &id, Some(&turn), Some(&item), kind).unwrap();
        let mut o = AgentRecord::observation(
            key,
            kind.event_name(),
            Source::Rollout,
            1_795_356_674_000_000_000 + i as u64 * 1_000_000,
        );
        for (k, v) in attrs {
            o.set(k, v);
        }
        o.body = body;
        let mut r = Merged::from_observation(&o, &p).to_record();
        r.observations = vec![o.observation_json()];
        out.push(r);
    }
    out
}

#[test]
#[ignore = "measurement"]
fn write_throughput() {
    for (sync, batch) in [
        (Synchronous::Full, 1000),
        (Synchronous::Normal, 1000),
        (Synchronous::Full, 100),
        (Synchronous::Full, 10),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(
            &dir.path().join("agentcol.db"),
            StoreOptions {
                synchronous: sync,
                ..StoreOptions::default()
            },
        )
        .unwrap();
        // 20 sessions of 5,000 events, interleaved as live traffic would be.
        let sessions: Vec<Vec<AgentRecord>> = (0..20).map(|s| session(s, 5000)).collect();
        let mut all = Vec::new();
        for i in 0..5000 {
            for s in &sessions {
                all.push(s[i].clone());
            }
        }
        let n = if batch < 1000 { 20_000 } else { all.len() };
        let batches: Vec<_> = all[..n].chunks(batch).map(common::logs).collect();
        let t = Instant::now();
        let cpu0 = thread_cpu();
        let w0 = written();
        for b in batches {
            store.apply_owned(b).unwrap();
        }
        let secs = t.elapsed().as_secs_f64();
        let cpu = match (cpu0, thread_cpu()) {
            (Some(a), Some(b)) => {
                let c = (b - a).as_secs_f64();
                format!(", CPU {c:.2}s = {:.0} records/CPU-s", n as f64 / c)
            }
            _ => String::new(),
        };
        let io = match (w0, written()) {
            (Some(a), Some(b)) => format!(
                ", {:.1} KiB written/record",
                (b - a) as f64 / 1024.0 / n as f64
            ),
            _ => String::new(),
        };
        if let Ok(keep) = std::env::var("KEEP_DB") {
            std::fs::copy(dir.path().join("agentcol.db"), keep).unwrap();
        }
        println!("synchronous={sync:?} batch={batch}: {n} merged records in {secs:.2}s = {:.0} records/s{cpu}{io}", n as f64 / secs);
    }
}
