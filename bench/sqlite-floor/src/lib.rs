//! Shared by the two measurements of this crate (`agentcol-sqlite-floor`, `lean-path`):
//! a SQLite file opened the way the `sqlite` exporter opens its store.
#![forbid(unsafe_code)]

use std::path::Path;

use rusqlite::Connection;

/// Opens (creates) `path` with the store writer's pragmas (WAL, `synchronous=full`, 8 KiB
/// pages, 64 MiB page cache, `wal_autocheckpoint` 10,000 pages, temp store in memory), then
/// runs `schema`.
pub fn open_like_store(path: &Path, schema: &str) -> rusqlite::Result<Connection> {
    let c = Connection::open(path)?;
    c.execute_batch(
        "PRAGMA page_size = 8192;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA cache_size = -65536;
         PRAGMA wal_autocheckpoint = 10000;
         PRAGMA temp_store = MEMORY;",
    )?;
    c.execute_batch(schema)?;
    Ok(c)
}
