//! The floor under the store pipeline: what the bundled SQLite alone costs per row.
//!
//! The store pipeline's budget (DESIGN: ≥ 100,000 events/s on one core, durable) is ≤ 10 µs of
//! CPU per event for everything: receive, `dedupe`, the store. This program measures the part no
//! code of ours can remove: inserting rows shaped like the store's (`WITHOUT ROWID`, clustered by
//! session, turn and key text, a payload column), in transactions of `BATCH` rows, with the
//! exporter's pragmas (WAL, `synchronous=full`, 8 KiB pages, 64 MiB page cache,
//! `wal_autocheckpoint` 10,000 pages), through rusqlite with a prepared statement, as the
//! exporter does. It prints rows per CPU-second for payloads from 10 B to 1.8 KB, then the
//! least-squares fit "µs per row + ns per byte". With that fit, the CPU a schema costs per event
//! is (rows written per event) × per-row + (bytes written per event) × per-byte, before any
//! decoding, merging or derivation.
//!
//! `cargo run --release -p agentcol-sqlite-floor -- [ROWS] [BATCH] [DIR]`
//! (defaults 200000, 1000, a temporary directory under $TMPDIR). `FLOOR_LAYOUT=rowid` measures
//! a rowid table with a unique index on the key columns instead of the clustered table
//! (`clustered`, the default); `FLOOR_LAYOUT="clustered rowid"` alternates both.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use anyhow::Result;
use rusqlite::{params, Connection};

/// The table's layout: `clustered` (the store's: one `WITHOUT ROWID` B-tree whose key is the
/// whole row) or `rowid` (a rowid table, rows appended, plus a unique index of the key columns).
fn open(path: &std::path::Path, layout: &str) -> Result<Connection> {
    let schema = match layout {
        "clustered" => {
            "CREATE TABLE ev (session TEXT NOT NULL, turn TEXT NOT NULL, key TEXT NOT NULL,
                 payload BLOB NOT NULL, PRIMARY KEY (session, turn, key)) WITHOUT ROWID;"
        }
        "rowid" => {
            "CREATE TABLE ev (session TEXT NOT NULL, turn TEXT NOT NULL, key TEXT NOT NULL,
                 payload BLOB NOT NULL, UNIQUE (session, turn, key));"
        }
        other => anyhow::bail!("unknown layout {other:?} (clustered | rowid)"),
    };
    Ok(agentcol_sqlite_floor::open_like_store(path, schema)?)
}

/// Rows per CPU-second for `rows` rows of `size`-byte payloads, `batch` per transaction.
fn run(
    dir: &Path,
    layout: &str,
    rows: usize,
    batch: usize,
    size: usize,
    round: usize,
) -> Result<f64> {
    let path = dir.join(format!("floor-{layout}-{size}-{round}.db"));
    let mut c = open(&path, layout)?;
    let payload: Vec<u8> = (0..size).map(|i| b'a' + (i * 7 % 26) as u8).collect();
    let t0 = agentcol_loadgen::process_cpu_time();
    let mut n = 0usize;
    let mut session = 0u64;
    while n < rows {
        session += 1;
        // A new session per transaction, as in bench/store.sh: every request a new thread.
        let s = format!("019a7c3e-{session:04x}-7000-8000-{:012x}", session * 7919);
        let tx = c.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO ev (session, turn, key, payload) VALUES (?, ?, ?, ?)",
            )?;
            for i in 0..batch.min(rows - n) {
                let turn = format!("019a7c3e-{session:04x}-7000-8000-{:012x}", i / 4);
                let key = format!("codex/{s}/{turn}/e{i}");
                st.execute(params![s, turn, key, payload])?;
            }
        }
        tx.commit()?;
        n += batch;
    }
    let cpu = agentcol_loadgen::process_cpu_time() - t0;
    drop(c);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(rows as f64 / cpu.as_secs_f64().max(1e-9))
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let rows: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200_000);
    let batch: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1000)
        .max(1);
    let dir: PathBuf = match args.next() {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir().join(format!("agentcol-sqlite-floor-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    println!(
        "# SQLite {} (bundled) · {rows} rows, {batch} per transaction, WAL, synchronous=full, 8 KiB pages",
        rusqlite::version()
    );
    let layouts = std::env::var("FLOOR_LAYOUT").unwrap_or_else(|_| "clustered".into());
    let layouts: Vec<&str> = layouts.split_whitespace().collect();
    for layout in &layouts {
        // An unknown layout fails here, before any run.
        drop(open(&dir.join("check.db"), layout)?);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.join(format!("check.db{suffix}")));
        }
    }
    // Layouts alternate per payload size, so a change of the host's speed hits both alike.
    let mut points = vec![Vec::new(); layouts.len()];
    for size in [10usize, 200, 400, 900, 1800] {
        for (l, layout) in layouts.iter().enumerate() {
            let mut best: f64 = 0.0;
            for round in 0..2 {
                best = best.max(run(&dir, layout, rows, batch, size, round)?);
            }
            let us = 1e6 / best;
            println!("{layout:9} payload {size:5} B: {best:9.0} rows/CPU-s  ({us:5.2} µs/row)");
            points[l].push((size as f64, us));
        }
    }
    let _ = std::fs::remove_dir(&dir);
    for (layout, points) in layouts.iter().zip(&points) {
        fit(layout, points);
    }
    Ok(())
}

/// Prints the least-squares fit "µs per row + ns per byte" of `points` (bytes, µs).
fn fit(layout: &str, points: &[(f64, f64)]) {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let slope = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum::<f64>()
        / points.iter().map(|(x, _)| (x - mx).powi(2)).sum::<f64>();
    println!(
        "fit ({layout}): {:.2} µs per row + {:.2} ns per payload byte",
        my - slope * mx,
        slope * 1000.0
    );
}
