//! The lean store path, measured: what the store pipeline would cost per event if each event
//! were decoded once and written once (docs/throughput.md, "What 100k needs").
//!
//! A measurement, not a component: it runs, in one thread, what the design in
//! docs/throughput.md would do for `bench/store.sh`'s load (every request a new Codex thread of
//! 250 four-record turns, `agentcol_loadgen::unique_request`), with the real receive code and
//! the real SQLite, and leaves out what that load never exercises (merging a second
//! observation of a key):
//!
//! 1. decode the request's protobuf bytes (what tonic does) and normalise it with the OTLP
//!    receiver's own `normalize_logs`;
//! 2. resolve the request's trace-id aliases up front and re-key the provisional records;
//! 3. per record: its key, the digest of its encoded form, a known-key probe (an in-memory set
//!    standing in for a filter over every stored key), and **one row** holding the normalised
//!    record, protobuf-encoded (the archive, the merge state and the row at once);
//! 4. per turn and per session one upserted summary row; one commit per request, durable
//!    (WAL, `synchronous=full`), with the exporter's pragmas.
//!
//! It prints events per CPU-second for the whole path and for steps 1–3 without SQLite.
//! `cargo run --release -p agentcol-sqlite-floor --bin lean-path -- [REQUESTS] [RECORDS]`
//! (defaults 200 requests of 1000 records).
#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use agentcol_component::agent::{attr, trace_alias, EventKey};
use anyhow::{Context, Result};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value as V, AnyValue};
use prost::Message;
use rusqlite::{params, Connection};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn text(v: &Option<AnyValue>) -> Option<&str> {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(V::StringValue(s)) => Some(s),
        _ => None,
    }
}

/// One row to write: (session, turn, key, digest, payload, time).
type Row = (String, String, String, [u8; 16], Vec<u8>, u64);

/// Steps 1–3: bytes → rows. `known` is the known-key set.
fn prepare(bytes: &[u8], known: &mut HashSet<u64>) -> Result<Vec<Row>> {
    let mut req = ExportLogsServiceRequest::decode(bytes).context("decode")?;
    agentcol_receiver_otlp::agent::normalize_logs(&mut req);
    // Aliases declared in this request: `~trace:<hex>` → the real turn.
    let mut aliases: HashMap<String, String> = HashMap::new();
    for rl in &req.resource_logs {
        for sl in &rl.scope_logs {
            for r in &sl.log_records {
                let mut key = None;
                let mut trace = None;
                for kv in &r.attributes {
                    match kv.key.as_str() {
                        attr::EVENT_KEY => key = text(&kv.value),
                        attr::ALIAS_TRACE_ID => trace = text(&kv.value),
                        _ => {}
                    }
                }
                if let (Some(k), Some(t)) = (key, trace) {
                    if let Ok(k) = k.parse::<EventKey>() {
                        aliases.insert(trace_alias(t), k.turn().to_string());
                    }
                }
            }
        }
    }
    let mut rows = Vec::with_capacity(1000);
    for rl in &mut req.resource_logs {
        for sl in &mut rl.scope_logs {
            for r in &mut sl.log_records {
                let Some(slot) = r.attributes.iter_mut().find(|kv| kv.key == attr::EVENT_KEY)
                else {
                    continue;
                };
                let Some(mut key) = text(&slot.value).and_then(|k| k.parse::<EventKey>().ok())
                else {
                    continue;
                };
                if key.has_alias_turn() {
                    if let Some(turn) = aliases.get(key.turn()) {
                        key = key.with_turn(turn);
                        slot.value = Some(AnyValue {
                            value: Some(V::StringValue(key.to_string())),
                        });
                    }
                }
                let key_text = key.to_string();
                let payload = r.encode_to_vec();
                let digest = xxhash_rust::xxh3::xxh3_128(&payload).to_be_bytes();
                if !known.insert(xxhash_rust::xxh3::xxh3_64(key_text.as_bytes())) {
                    // A key seen before would be merged here; this load has none.
                    continue;
                }
                let time = r.time_unix_nano.max(r.observed_time_unix_nano);
                rows.push((
                    key.session().to_string(),
                    key.turn().to_string(),
                    key_text,
                    digest,
                    payload,
                    time,
                ));
            }
        }
    }
    Ok(rows)
}

fn open(path: &std::path::Path) -> Result<Connection> {
    Ok(agentcol_sqlite_floor::open_like_store(
        path,
        "CREATE TABLE events (session_id TEXT NOT NULL, turn_id TEXT NOT NULL, key TEXT NOT NULL,
    digest BLOB NOT NULL, record BLOB NOT NULL, PRIMARY KEY (session_id, turn_id, key))
    WITHOUT ROWID;
CREATE TABLE turns (session_id TEXT NOT NULL, turn_id TEXT NOT NULL,
    started_ns INTEGER, ended_ns INTEGER, events INTEGER NOT NULL,
    PRIMARY KEY (session_id, turn_id)) WITHOUT ROWID;
CREATE TABLE sessions (session_id TEXT PRIMARY KEY, started_ns INTEGER, ended_ns INTEGER,
    events INTEGER NOT NULL) WITHOUT ROWID;",
    )?)
}

/// Step 4.
fn write(c: &mut Connection, rows: &[Row]) -> Result<()> {
    let tx = c.transaction()?;
    {
        let mut ev = tx.prepare_cached(
            "INSERT INTO events (session_id, turn_id, key, digest, record) VALUES (?, ?, ?, ?, ?)",
        )?;
        let mut turns: HashMap<(&str, &str), (u64, u64, i64)> = HashMap::new();
        let mut sessions: HashMap<&str, (u64, u64, i64)> = HashMap::new();
        for (s, t, k, d, p, time) in rows {
            ev.execute(params![s, t, k, &d[..], p])?;
            let e = turns.entry((s, t)).or_insert((u64::MAX, 0, 0));
            *e = (e.0.min(*time), e.1.max(*time), e.2 + 1);
            let e = sessions.entry(s).or_insert((u64::MAX, 0, 0));
            *e = (e.0.min(*time), e.1.max(*time), e.2 + 1);
        }
        let mut tu = tx.prepare_cached(
            "INSERT INTO turns VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET
               started_ns = min(started_ns, excluded.started_ns),
               ended_ns = max(ended_ns, excluded.ended_ns), events = events + excluded.events",
        )?;
        for ((s, t), (a, b, n)) in turns {
            tu.execute(params![s, t, a as i64, b as i64, n])?;
        }
        let mut se = tx.prepare_cached(
            "INSERT INTO sessions VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET
               started_ns = min(started_ns, excluded.started_ns),
               ended_ns = max(ended_ns, excluded.ended_ns), events = events + excluded.events",
        )?;
        for (s, (a, b, n)) in sessions {
            se.execute(params![s, a as i64, b as i64, n])?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let requests: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(200);
    let records: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let bodies: Vec<Vec<u8>> = (1..=requests)
        .map(|seq| agentcol_loadgen::unique_request(records, seq).encode_to_vec())
        .collect();
    let events = |rows: usize| rows as f64;

    // Step 1 alone, then steps 1–3.
    let t0 = agentcol_loadgen::process_cpu_time();
    let mut decoded = 0usize;
    for b in &bodies {
        let mut req = ExportLogsServiceRequest::decode(&b[..]).context("decode")?;
        agentcol_receiver_otlp::agent::normalize_logs(&mut req);
        decoded += req
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum::<usize>();
    }
    let normalise = agentcol_loadgen::process_cpu_time() - t0;
    let t0 = agentcol_loadgen::process_cpu_time();
    for b in &bodies {
        let req = ExportLogsServiceRequest::decode(&b[..]).context("decode")?;
        std::hint::black_box(&req);
    }
    let decode = agentcol_loadgen::process_cpu_time() - t0;
    let mut known = HashSet::new();
    let t0 = agentcol_loadgen::process_cpu_time();
    let mut n = 0usize;
    for b in &bodies {
        n += prepare(b, &mut known)?.len();
    }
    let prep = agentcol_loadgen::process_cpu_time() - t0;

    // The whole path, into a fresh file.
    let dir = std::env::temp_dir().join(format!("agentcol-lean-path-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("lean.db");
    let mut c = open(&path)?;
    let mut known = HashSet::new();
    let mut bytes = 0usize;
    let t0 = agentcol_loadgen::process_cpu_time();
    let mut stored = 0usize;
    for b in &bodies {
        let rows = prepare(b, &mut known)?;
        bytes += rows.iter().map(|r| r.4.len()).sum::<usize>();
        write(&mut c, &rows)?;
        stored += rows.len();
    }
    let whole = agentcol_loadgen::process_cpu_time() - t0;
    let count: i64 = c.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
    drop(c);
    let file = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(dir.join("lean.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(count as usize == stored, "stored {stored}, counted {count}");

    println!(
        "# lean path · {requests} requests × {records} records (bench/store.sh's --unique load) · SQLite {}",
        rusqlite::version()
    );
    let per = |d: Duration, n: usize| {
        (
            events(n) / d.as_secs_f64(),
            d.as_secs_f64() * 1e6 / events(n),
        )
    };
    let (a, b) = per(decode, decoded);
    println!("decode (prost):                                    {a:9.0} events/CPU-s ({b:5.2} µs/event)");
    let (a, b) = per(normalise, decoded);
    println!("decode + normalise:                                {a:9.0} events/CPU-s ({b:5.2} µs/event)");
    println!(
        "decode + normalise + alias + key + digest + encode: {:9.0} events/CPU-s ({:5.2} µs/event)",
        events(n) / prep.as_secs_f64(),
        prep.as_secs_f64() * 1e6 / events(n)
    );
    println!(
        "whole path, durable (one row per event):           {:9.0} events/CPU-s ({:5.2} µs/event)",
        events(stored) / whole.as_secs_f64(),
        whole.as_secs_f64() * 1e6 / events(stored)
    );
    println!(
        "record payload {:.0} B/event, file + WAL {:.0} B/event",
        bytes as f64 / events(stored),
        file as f64 / events(stored)
    );
    Ok(())
}
