//! The store's schema, its versioned migrations, and how the file is opened.
//!
//! `PRAGMA user_version` is the schema version. [`MIGRATIONS`] is an ordered list; opening a
//! file applies every migration newer than its version, each in its own `BEGIN IMMEDIATE`
//! transaction together with the version bump, so a crash leaves the file at one version or
//! the next, never between. A file whose version is newer than the last migration this binary
//! knows is refused ([`StoreError::TooNew`]): an older binary must not write rows a newer
//! schema interprets differently.
//!
//! Rules every migration keeps (they are what makes the store replayable and comparable):
//! * no column holds arrival time, and no generated id (rowids exist but never appear in a
//!   row's content), so equal inputs give equal rows whatever the order or the restarts;
//! * `sessions`, `turns`, `tool_calls`, `usage` and the attribute columns of `events` (`cwd`,
//!   `git_branch`, `git_commit`, `model`) are derived from `events.record` alone (so is
//!   `sessions.picks`, version 3: which events the session's columns come from) and can be
//!   recomputed at any time ([`crate::Store::rebuild_derived`]); a migration that changes how
//!   they are derived simply rebuilds them.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::config::Synchronous;
use crate::error::StoreError;

/// `PRAGMA application_id` of agentcol stores ("agnt").
pub const APPLICATION_ID: i64 = 0x6167_6e74;

/// The page size of new store files (bytes).
pub const PAGE_SIZE: u32 = 8192;

/// A migration's step in Rust (see [`Migration::then`]).
pub type MigrationStep = fn(&Connection) -> Result<(), StoreError>;

/// One schema step: the SQL that takes version `version - 1` to `version`.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The version after this step.
    pub version: i64,
    /// What it does, for logs.
    pub description: &'static str,
    /// The statements.
    pub sql: &'static str,
    /// What it computes in Rust after the statements, in the same transaction (new columns
    /// whose values SQL cannot write byte for byte as the store does).
    pub then: Option<MigrationStep>,
}

/// Every migration, in order. Never edit a released entry: append a new one.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description:
            "events, observation archive, raw records, derived sessions/turns/tool calls/usage",
        sql: r#"
CREATE TABLE events (
    key          TEXT NOT NULL,
    agent        TEXT NOT NULL,
    session_id   TEXT NOT NULL,
    turn_id      TEXT NOT NULL,
    item_id      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    time_ns      INTEGER NOT NULL,
    revision     INTEGER NOT NULL,
    sources      TEXT NOT NULL,
    key_fallback INTEGER NOT NULL,
    cwd          TEXT,
    git_branch   TEXT,
    git_commit   TEXT,
    model        TEXT,
    record       TEXT NOT NULL,
    state        TEXT,
    PRIMARY KEY (session_id, turn_id, key)
) WITHOUT ROWID;
CREATE INDEX events_session_time ON events(session_id, time_ns, key);
CREATE INDEX events_cwd ON events(session_id, time_ns, key, cwd) WHERE cwd IS NOT NULL;
CREATE INDEX events_git_branch ON events(session_id, time_ns, key, git_branch)
    WHERE git_branch IS NOT NULL;
CREATE INDEX events_git_commit ON events(session_id, time_ns, key, git_commit)
    WHERE git_commit IS NOT NULL;
CREATE INDEX events_model ON events(session_id, time_ns, key, model) WHERE model IS NOT NULL;

CREATE TABLE observations (
    key     TEXT NOT NULL,
    digest  TEXT NOT NULL,
    source  TEXT,
    time_ns INTEGER,
    json    TEXT NOT NULL,
    PRIMARY KEY (key, digest)
) WITHOUT ROWID;

CREATE TABLE raw_records (
    digest TEXT PRIMARY KEY NOT NULL,
    reason TEXT NOT NULL,
    otlp   BLOB NOT NULL
);

CREATE TABLE other_logs (
    digest  TEXT PRIMARY KEY NOT NULL,
    time_ns INTEGER NOT NULL,
    otlp    BLOB NOT NULL
);

CREATE TABLE aliases (
    agent      TEXT NOT NULL,
    session_id TEXT NOT NULL,
    alias      TEXT NOT NULL,
    turn_id    TEXT NOT NULL,
    PRIMARY KEY (agent, session_id, alias)
) WITHOUT ROWID;

CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY NOT NULL,
    agent      TEXT NOT NULL,
    cwd        TEXT,
    git_branch TEXT,
    git_commit TEXT,
    model      TEXT,
    started_ns INTEGER,
    ended_ns   INTEGER,
    status     TEXT NOT NULL,
    turns      INTEGER NOT NULL,
    events     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_started ON sessions(started_ns);

CREATE TABLE turns (
    session_id TEXT NOT NULL,
    turn_id    TEXT NOT NULL,
    ordinal    INTEGER,
    started_ns INTEGER,
    ended_ns   INTEGER,
    prompt     TEXT,
    model      TEXT,
    PRIMARY KEY (session_id, turn_id)
) WITHOUT ROWID;

CREATE TABLE tool_calls (
    session_id  TEXT NOT NULL,
    turn_id     TEXT NOT NULL,
    call_id     TEXT NOT NULL,
    tool_name   TEXT,
    input       TEXT,
    output      TEXT,
    exit_code   INTEGER,
    success     INTEGER,
    duration_ms INTEGER,
    started_ns  INTEGER,
    ended_ns    INTEGER,
    PRIMARY KEY (session_id, turn_id, call_id)
) WITHOUT ROWID;

CREATE TABLE usage (
    key                   TEXT NOT NULL,
    session_id            TEXT NOT NULL,
    turn_id               TEXT NOT NULL,
    item_id               TEXT NOT NULL,
    scope                 TEXT NOT NULL,
    model                 TEXT,
    input_tokens          INTEGER,
    output_tokens         INTEGER,
    cache_read_tokens     INTEGER,
    cache_creation_tokens INTEGER,
    reasoning_tokens      INTEGER,
    total_tokens          INTEGER,
    cost_usd              REAL,
    PRIMARY KEY (session_id, turn_id, key)
) WITHOUT ROWID;
"#,
        then: None,
    },
    Migration {
        version: 2,
        description: "implied archive rows: an event row can hold its one observation",
        sql: r#"
ALTER TABLE events ADD COLUMN archive_len INTEGER;
ALTER TABLE events ADD COLUMN archive_digest TEXT;
ALTER TABLE events ADD COLUMN archive_key TEXT;
CREATE VIEW archive (key, digest, source, time_ns, json) AS
    SELECT key, digest, source, time_ns, json FROM observations
    UNION ALL
    SELECT coalesce(archive_key, key), archive_digest, nullif(sources, ''), time_ns,
           CASE WHEN archive_key IS NULL
           THEN CAST(substr(CAST(record AS BLOB), 1, archive_len - 1) AS TEXT) || '}'
           ELSE '{"key":"' || archive_key || CAST(substr(CAST(record AS BLOB),
                    9 + length(CAST(key AS BLOB)),
                    archive_len - 9 - length(CAST(key AS BLOB))) AS TEXT) || '}'
           END
    FROM events WHERE archive_digest IS NOT NULL;
"#,
        then: None,
    },
    Migration {
        version: 3,
        description: "no secondary indexes on events: session rows keep their picks",
        sql: r#"
DROP INDEX events_session_time;
DROP INDEX events_cwd;
DROP INDEX events_git_branch;
DROP INDEX events_git_commit;
DROP INDEX events_model;
ALTER TABLE sessions ADD COLUMN picks TEXT;
"#,
        then: Some(crate::derive::fill_picks),
    },
];

/// The schema version this binary writes.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

/// Every table, with the columns of its primary key (what a deterministic dump orders by).
pub const TABLES: &[(&str, &str)] = &[
    ("events", "session_id, turn_id, key"),
    ("observations", "key, digest"),
    ("raw_records", "digest"),
    ("other_logs", "digest"),
    ("aliases", "agent, session_id, alias"),
    ("sessions", "session_id"),
    ("turns", "session_id, turn_id"),
    ("tool_calls", "session_id, turn_id, call_id"),
    ("usage", "session_id, turn_id, key"),
];

fn user_version(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(StoreError::sql("reading the schema version"))
}

/// Brings `conn` to [`latest_version`], or refuses a newer file.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let latest = latest_version();
    for m in MIGRATIONS {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sql("starting a migration"))?;
        // Read inside the write lock: another process may have migrated meanwhile.
        let current = user_version(&tx)?;
        if current > latest {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found: current,
                supported: latest,
            });
        }
        if current >= m.version {
            continue;
        }
        if current == 0 {
            let app: i64 = tx
                .query_row("PRAGMA application_id", [], |r| r.get(0))
                .map_err(StoreError::sql("reading the application id"))?;
            let tables: i64 = tx
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                .map_err(StoreError::sql("inspecting the file"))?;
            if tables > 0 && app != APPLICATION_ID {
                return Err(StoreError::NotAStore {
                    path: path.to_path_buf(),
                    reason: "it is an SQLite database with other tables".into(),
                });
            }
            tx.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID}"))
                .map_err(StoreError::sql("setting the application id"))?;
        }
        tx.execute_batch(m.sql)
            .map_err(StoreError::sql("applying a schema migration"))?;
        if let Some(then) = m.then {
            then(&tx)?;
        }
        tx.execute_batch(&format!("PRAGMA user_version = {}", m.version))
            .map_err(StoreError::sql("setting the schema version"))?;
        tx.commit()
            .map_err(StoreError::sql("committing a schema migration"))?;
        tracing::info!(path = %path.display(), version = m.version, migration = m.description, "store schema migrated");
    }
    Ok(())
}

/// Creates the missing parent directories of `path` with mode 0700 (existing ones are left
/// alone: they may be shared, such as the home directory).
fn create_parents(path: &Path) -> Result<(), StoreError> {
    let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(parent).map_err(|source| StoreError::Io {
        context: "cannot create the directory of",
        path: path.to_path_buf(),
        source,
    })
}

/// Makes `path` private to the user (0600) if it exists.
pub(crate) fn restrict(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(StoreError::Io {
                    context: "cannot inspect",
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        if meta.permissions().mode() & 0o777 != 0o600 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
                |source| StoreError::Io {
                    context: "cannot set mode 0600 on",
                    path: path.to_path_buf(),
                    source,
                },
            )?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The WAL and shared-memory files SQLite keeps next to `path`.
pub(crate) fn sidecars(path: &Path) -> [PathBuf; 2] {
    let with = |suffix: &str| {
        let mut s = path.as_os_str().to_os_string();
        s.push(suffix);
        PathBuf::from(s)
    };
    [with("-wal"), with("-shm")]
}

/// Opens (creating if needed) the store for writing: file 0600 in 0700 directories, WAL,
/// the given durability and busy timeout, schema migrated.
pub(crate) fn open_writer(
    path: &Path,
    synchronous: Synchronous,
    busy_timeout: std::time::Duration,
) -> Result<Connection, StoreError> {
    create_parents(path)?;
    {
        // Create the file ourselves so that it is 0600 from its first byte.
        let mut o = std::fs::OpenOptions::new();
        o.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        o.open(path).map_err(|source| StoreError::Io {
            context: "cannot create",
            path: path.to_path_buf(),
            source,
        })?;
    }
    restrict(path)?;
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(StoreError::sql("opening the store"))?;
    conn.busy_timeout(busy_timeout)
        .map_err(StoreError::sql("setting the busy timeout"))?;
    // Only takes effect on a new, empty file (before WAL mode and the first table): an
    // existing file keeps the page size it was created with. 8 KiB rather than the default
    // 4 KiB because `events` and `observations` are `WITHOUT ROWID` tables, whose rows are
    // index cells: a cell larger than about a quarter of a page keeps ~1/8 of a page locally
    // and spills the rest to an overflow page of its own. A typical event row (~1.2 KB) fits
    // an 8 KiB page's limit (~2 KB) but not a 4 KiB one's (~1 KB), where each row cost a
    // mostly empty 4 KiB overflow page: the file and the WAL were twice as large.
    conn.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE}"))
        .map_err(StoreError::sql("setting the page size"))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(StoreError::sql("enabling WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NoWal {
            path: path.to_path_buf(),
            mode,
        });
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {}; PRAGMA foreign_keys = OFF; PRAGMA journal_size_limit = 67108864; PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 10000;",
        synchronous.pragma()
    ))
    .map_err(StoreError::sql("setting pragmas"))?;
    // Every statement of the write path stays prepared (rusqlite keeps 16 by default).
    conn.set_prepared_statement_cache_capacity(128);
    migrate(&mut conn, path)?;
    // SQLite gives its side files the main file's mode; make sure of it.
    for p in sidecars(path) {
        restrict(&p)?;
    }
    Ok(conn)
}

/// Opens an existing store read-only and checks that its schema is one this binary reads.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    if !path.exists() {
        return Err(StoreError::Missing {
            path: path.to_path_buf(),
        });
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(StoreError::sql("opening the store"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(StoreError::sql("setting the busy timeout"))?;
    let version = user_version(&conn)?;
    let latest = latest_version();
    if version > latest {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: version,
            supported: latest,
        });
    }
    if version < latest {
        return Err(StoreError::NotAStore {
            path: path.to_path_buf(),
            reason: if version == 0 {
                "it has no agentcol schema".into()
            } else {
                format!(
                    "its schema version is {version}; run the collector once to migrate it to {latest}"
                )
            },
        });
    }
    Ok(conn)
}
