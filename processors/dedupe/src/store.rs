//! The persistent state: one SQLite file per `dedupe` instance.
//!
//! Why SQLite: the state must survive restarts (a channel may deliver an observation hours after
//! another one did, across a collector restart, and it must still be recognised), writes must be
//! atomic per `consume` call (so a refused delivery leaves no trace), and `agentcol status
//! --dedupe` must be able to read it from another process while the collector runs (WAL).
//!
//! Tables:
//!
//! * `keys`: per event key, the [`Merged`] state as JSON, the revision last emitted downstream
//!   (`NULL`: never), the pending mark and due time (settle window), the observations not yet
//!   emitted (for `attach_observations`), the provisional keys to tombstone after its next
//!   emission, and the origin (resource + scope) of its first observation.
//! * `aliases`: (agent, session, `~trace:<hex>`) → real turn id. Kept forever (one row per turn).
//! * `provisional`: index of keys whose turn is still an alias, by alias.
//! * `origins`: interned resource + scope templates (protobuf), by hash.
//! * `decision_log`: the last `decisions_kept` decisions, one row per commit holding that
//!   commit's decisions as a JSON array (one insert per commit instead of one per observation:
//!   the log is written on every request and read only by `status`); `decision_counts`: totals
//!   per decision.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, UNIX_EPOCH};

use agentcol_component::agent::{EventKey, Merged};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};

/// Schema version written to `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS keys (
    key TEXT PRIMARY KEY,
    merged TEXT NOT NULL,
    emitted INTEGER,
    pending INTEGER NOT NULL DEFAULT 0,
    due_ms INTEGER,
    unsent TEXT,
    supersedes TEXT,
    origin INTEGER
);
CREATE INDEX IF NOT EXISTS keys_pending ON keys(due_ms) WHERE pending = 1;
CREATE TABLE IF NOT EXISTS aliases (
    agent TEXT NOT NULL,
    session TEXT NOT NULL,
    alias TEXT NOT NULL,
    turn TEXT NOT NULL,
    PRIMARY KEY (agent, session, alias)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS provisional (
    agent TEXT NOT NULL,
    session TEXT NOT NULL,
    alias TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (agent, session, alias, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS origins (
    id INTEGER PRIMARY KEY,
    template BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS decision_log (
    first_seq INTEGER PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    rows TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS decision_counts (
    decision TEXT PRIMARY KEY,
    n INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Why the state database could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// SQLite failed.
    #[error("state database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// Creating the directory or setting permissions failed.
    #[error("state database {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file was written by a newer schema, or holds something unreadable.
    #[error("state database {path}: {reason}")]
    Invalid {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// What a decision was about an observation or an emission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// The first observation of a key.
    Unique,
    /// An exact duplicate of an observation already merged: dropped.
    Duplicate,
    /// A new observation folded into an existing key.
    Merged,
    /// An emission with revision > 0.
    Revised,
    /// An observation or a provisional key moved to its real key through a trace alias.
    Rekeyed,
    /// A tombstone emitted for a provisional key that was replaced by its real key.
    Tombstone,
}

impl DecisionKind {
    /// Every kind, in display order.
    pub const ALL: [DecisionKind; 6] = [
        DecisionKind::Unique,
        DecisionKind::Duplicate,
        DecisionKind::Merged,
        DecisionKind::Revised,
        DecisionKind::Rekeyed,
        DecisionKind::Tombstone,
    ];

    /// `unique`, `duplicate`, `merged`, `revised`, `rekeyed`, `tombstone`.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Unique => "unique",
            DecisionKind::Duplicate => "duplicate",
            DecisionKind::Merged => "merged",
            DecisionKind::Revised => "revised",
            DecisionKind::Rekeyed => "rekeyed",
            DecisionKind::Tombstone => "tombstone",
        }
    }
}

impl fmt::Display for DecisionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DecisionKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        DecisionKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown decision {s:?}"))
    }
}

/// One recorded decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Increasing sequence number.
    pub seq: u64,
    /// When it was committed, Unix milliseconds.
    pub at_unix_ms: i64,
    /// The event key it is about (`agent.event.key`).
    pub key: String,
    /// What was decided.
    pub decision: DecisionKind,
    /// The key's revision after the decision (tombstones: the tombstone's revision).
    pub revision: Option<u64>,
    /// The observation's channel (emissions: the best-ranked channel).
    pub source: Option<String>,
    /// Details (`from <provisional key>`, `superseded by <key>`).
    pub note: Option<String>,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = UNIX_EPOCH + Duration::from_millis(self.at_unix_ms.max(0) as u64);
        write!(
            f,
            "{:>8} {} {:<9} rev={:<3} {:<10} {}",
            self.seq,
            humantime::format_rfc3339_millis(at),
            self.decision.as_str(),
            self.revision
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
            self.source.as_deref().unwrap_or("-"),
            self.key
        )?;
        if let Some(n) = &self.note {
            write!(f, " ({n})")?;
        }
        Ok(())
    }
}

/// A decision before it is committed.
#[derive(Debug, Clone)]
pub(crate) struct DecisionRow {
    pub key: String,
    pub decision: DecisionKind,
    pub revision: Option<u64>,
    pub source: Option<&'static str>,
    pub note: Option<String>,
}

/// One decision in the log's JSON: key, decision, revision, source, note.
type LogRow<'a> = (
    &'a str,
    DecisionKind,
    Option<u64>,
    Option<&'a str>,
    Option<&'a str>,
);
type OwnedLogRow = (
    String,
    DecisionKind,
    Option<u64>,
    Option<String>,
    Option<String>,
);

/// A provisional key to tombstone after the next emission of the key that replaced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Tomb {
    /// The provisional key.
    pub key: EventKey,
    /// The tombstone's revision: one more than the provisional key's last emitted revision.
    pub revision: u64,
    /// The provisional event's time (Unix ns).
    pub time: u64,
}

/// Everything kept per key.
#[derive(Debug, Clone)]
pub(crate) struct KeyState {
    pub merged: Merged,
    /// Revision last accepted downstream; `None`: never emitted.
    pub emitted: Option<u64>,
    /// Waiting for the flush task (settle window > 0).
    pub pending: bool,
    /// When pending: Unix ms from which it may go out.
    pub due_ms: Option<i64>,
    /// Observations (archive JSON) merged since the last emission (`attach_observations`).
    pub unsent: Vec<String>,
    /// Provisional keys to tombstone right after the next emission.
    pub supersedes: Vec<Tomb>,
    /// Origin (resource + scope) of the first observation.
    pub origin: Option<i64>,
}

impl KeyState {
    pub fn new(merged: Merged, origin: Option<i64>) -> Self {
        KeyState {
            merged,
            emitted: None,
            pending: false,
            due_ms: None,
            unsent: Vec::new(),
            supersedes: Vec::new(),
            origin,
        }
    }

    /// Whether downstream has not seen the current revision, or a tombstone is owed.
    pub fn needs_emit(&self) -> bool {
        self.has_new_revision() || !self.supersedes.is_empty()
    }

    /// Whether the current revision was never emitted.
    pub fn has_new_revision(&self) -> bool {
        self.emitted.is_none_or(|e| self.merged.revision() > e)
    }
}

/// One alias: (agent, session, `~trace:<hex>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct AliasId {
    pub agent: &'static str,
    pub session: String,
    pub alias: String,
}

impl AliasId {
    pub fn of(key: &EventKey) -> Self {
        AliasId {
            agent: key.agent().as_str(),
            session: key.session().to_string(),
            alias: key.turn().to_string(),
        }
    }
}

/// What one commit writes, in one transaction.
#[derive(Debug, Default)]
pub(crate) struct Write<'a> {
    pub upserts: Vec<(&'a str, &'a KeyState)>,
    pub deletes: Vec<&'a str>,
    pub aliases: Vec<(&'a AliasId, &'a str)>,
    pub provisional: Vec<(AliasId, &'a str)>,
    pub origins: Vec<(i64, &'a [u8])>,
    pub decisions: &'a [DecisionRow],
    /// Totals per decision in this commit (all of them, also those not kept).
    pub counts: BTreeMap<DecisionKind, u64>,
    pub now_ms: i64,
}

pub(crate) struct Store {
    conn: Connection,
    path: PathBuf,
    decisions_kept: usize,
    next_seq: u64,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Store({})", self.path.display())
    }
}

/// Creates `dir` and its missing ancestors with mode 0700; tightens `dir` itself if it exists.
#[cfg(unix)]
pub(crate) fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    // SQLite gives the -wal and -shm files the database file's mode.
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode != 0o600 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(|_| ())
}

fn json_list<T: Serialize>(v: &[T]) -> Option<String> {
    if v.is_empty() {
        None
    } else {
        serde_json::to_string(v).ok()
    }
}

impl Store {
    /// Opens (creating) the state database. `durable`: fsync every commit (`synchronous=FULL`),
    /// used when a commit is the acknowledgement (settle window > 0).
    pub fn open(path: &Path, durable: bool, decisions_kept: usize) -> Result<Store, StateError> {
        let io = |source| StateError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            private_dir(dir).map_err(io)?;
        }
        private_file(path).map_err(io)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StateError::Sqlite {
            path: path.to_path_buf(),
            source,
        })?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            decisions_kept,
            next_seq: 1,
        };
        store.init(durable)?;
        Ok(store)
    }

    fn err(&self, source: rusqlite::Error) -> StateError {
        StateError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn init(&mut self, durable: bool) -> Result<(), StateError> {
        let c = &self.conn;
        let r: Result<(), rusqlite::Error> = (|| {
            c.busy_timeout(Duration::from_secs(5))?;
            let _mode: String = c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
            c.execute_batch(if durable {
                "PRAGMA synchronous=FULL;"
            } else {
                "PRAGMA synchronous=NORMAL;"
            })?;
            // A 1000-record request writes ~1.5 MB of state; checkpointing every 1000 pages
            // (the default) would checkpoint on almost every commit, rewriting the same
            // interior pages each time. 16 MB of page cache keeps the key index hot.
            c.execute_batch("PRAGMA wal_autocheckpoint=4000; PRAGMA cache_size=-16384;")?;
            Ok(())
        })();
        r.map_err(|e| self.err(e))?;
        let version: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if version > SCHEMA_VERSION {
            return Err(StateError::Invalid {
                path: self.path.clone(),
                reason: format!(
                    "schema version {version} is newer than this agentcol understands ({SCHEMA_VERSION})"
                ),
            });
        }
        c.execute_batch(SCHEMA).map_err(|e| self.err(e))?;
        if version < SCHEMA_VERSION {
            c.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
                .map_err(|e| self.err(e))?;
        }
        c.execute(
            "INSERT OR REPLACE INTO meta (name, value) VALUES ('decisions_kept', ?1)",
            [self.decisions_kept.min(i64::MAX as usize) as i64],
        )
        .map_err(|e| self.err(e))?;
        let max: Option<i64> = c
            .query_row("SELECT MAX(last_seq) FROM decision_log", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        self.next_seq = max.unwrap_or(0).max(0) as u64 + 1;
        Ok(())
    }

    /// The state of `key`, if any.
    pub fn load_key(&self, key: &str) -> Result<Option<KeyState>, StateError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT merged, emitted, pending, due_ms, unsent, supersedes, origin FROM keys WHERE key = ?1",
            )
            .and_then(|mut st| {
                st.query_row([key], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<i64>>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<i64>>(6)?,
                    ))
                })
                .optional()
            })
            .map_err(|e| self.err(e))?;
        let Some((merged, emitted, pending, due_ms, unsent, supersedes, origin)) = row else {
            return Ok(None);
        };
        let invalid = |what: &str, e: serde_json::Error| StateError::Invalid {
            path: self.path.clone(),
            reason: format!("key {key}: unreadable {what}: {e}"),
        };
        let merged: Merged = serde_json::from_str(&merged).map_err(|e| invalid("state", e))?;
        let unsent: Vec<String> = match unsent {
            Some(s) => serde_json::from_str(&s).map_err(|e| invalid("observations", e))?,
            None => Vec::new(),
        };
        let supersedes: Vec<Tomb> = match supersedes {
            Some(s) => serde_json::from_str(&s).map_err(|e| invalid("tombstones", e))?,
            None => Vec::new(),
        };
        Ok(Some(KeyState {
            merged,
            emitted: emitted.map(|e| e.max(0) as u64),
            pending: pending != 0,
            due_ms,
            unsent,
            supersedes,
            origin,
        }))
    }

    /// The real turn of an alias, if declared.
    pub fn load_alias(&self, id: &AliasId) -> Result<Option<String>, StateError> {
        self.conn
            .prepare_cached(
                "SELECT turn FROM aliases WHERE agent = ?1 AND session = ?2 AND alias = ?3",
            )
            .and_then(|mut st| {
                st.query_row(params![id.agent, id.session, id.alias], |r| r.get(0))
                    .optional()
            })
            .map_err(|e| self.err(e))
    }

    /// The provisional keys waiting for an alias.
    pub fn provisional_keys(&self, id: &AliasId) -> Result<Vec<String>, StateError> {
        self.conn
            .prepare_cached(
                "SELECT key FROM provisional WHERE agent = ?1 AND session = ?2 AND alias = ?3 ORDER BY key",
            )
            .and_then(|mut st| {
                st.query_map(params![id.agent, id.session, id.alias], |r| r.get(0))?
                    .collect()
            })
            .map_err(|e| self.err(e))
    }

    /// An origin template (encoded `ResourceLogs` with one empty `ScopeLogs`).
    pub fn load_origin(&self, id: i64) -> Result<Option<Vec<u8>>, StateError> {
        self.conn
            .prepare_cached("SELECT template FROM origins WHERE id = ?1")
            .and_then(|mut st| st.query_row([id], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))
    }

    /// Pending keys due at `max_due_ms`, earliest first.
    pub fn due_keys(&self, max_due_ms: i64, limit: usize) -> Result<Vec<String>, StateError> {
        self.conn
            .prepare_cached(
                "SELECT key FROM keys WHERE pending = 1 AND COALESCE(due_ms, 0) <= ?1 ORDER BY due_ms, key LIMIT ?2",
            )
            .and_then(|mut st| {
                st.query_map(params![max_due_ms, limit as i64], |r| r.get(0))?
                    .collect()
            })
            .map_err(|e| self.err(e))
    }

    /// How many keys are pending, and the earliest due time.
    pub fn pending_summary(&self) -> Result<(u64, Option<i64>), StateError> {
        self.conn
            .prepare_cached("SELECT COUNT(*), MIN(COALESCE(due_ms, 0)) FROM keys WHERE pending = 1")
            .and_then(|mut st| {
                st.query_row([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?.max(0) as u64,
                        r.get::<_, Option<i64>>(1)?,
                    ))
                })
            })
            .map_err(|e| self.err(e))
    }

    /// Clears the pending mark of a key whose row cannot be used (logged by the caller).
    pub fn clear_pending(&self, key: &str) -> Result<(), StateError> {
        self.conn
            .execute("UPDATE keys SET pending = 0 WHERE key = ?1", [key])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Writes one commit in one transaction.
    pub fn write(&mut self, w: &Write<'_>) -> Result<(), StateError> {
        let first_seq = self.next_seq;
        let kept = w.decisions.len().min(self.decisions_kept);
        let skipped = w.decisions.len() - kept;
        let result: Result<(), rusqlite::Error> = (|| {
            let tx = self.conn.transaction()?;
            {
                let mut up = tx.prepare_cached(
                    "INSERT OR REPLACE INTO keys (key, merged, emitted, pending, due_ms, unsent, supersedes, origin)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                for (key, st) in &w.upserts {
                    let merged = serde_json::to_string(&st.merged)
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                    up.execute(params![
                        key,
                        merged,
                        st.emitted.map(|e| e.min(i64::MAX as u64) as i64),
                        st.pending as i64,
                        st.due_ms,
                        json_list(&st.unsent),
                        json_list(&st.supersedes),
                        st.origin,
                    ])?;
                }
                let mut del = tx.prepare_cached("DELETE FROM keys WHERE key = ?1")?;
                for key in &w.deletes {
                    del.execute([key])?;
                }
                let mut al = tx.prepare_cached(
                    "INSERT OR IGNORE INTO aliases (agent, session, alias, turn) VALUES (?1, ?2, ?3, ?4)",
                )?;
                let mut unprov = tx.prepare_cached(
                    "DELETE FROM provisional WHERE agent = ?1 AND session = ?2 AND alias = ?3",
                )?;
                for (id, turn) in &w.aliases {
                    al.execute(params![id.agent, id.session, id.alias, turn])?;
                    unprov.execute(params![id.agent, id.session, id.alias])?;
                }
                let mut prov = tx.prepare_cached(
                    "INSERT OR IGNORE INTO provisional (agent, session, alias, key) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (id, key) in &w.provisional {
                    prov.execute(params![id.agent, id.session, id.alias, key])?;
                }
                let mut org = tx.prepare_cached(
                    "INSERT OR IGNORE INTO origins (id, template) VALUES (?1, ?2)",
                )?;
                for (id, template) in &w.origins {
                    org.execute(params![id, template])?;
                }
                if kept > 0 {
                    let rows: Vec<LogRow<'_>> = w.decisions[skipped..]
                        .iter()
                        .map(|d| {
                            (
                                d.key.as_str(),
                                d.decision,
                                d.revision,
                                d.source,
                                d.note.as_deref(),
                            )
                        })
                        .collect();
                    let rows = serde_json::to_string(&rows)
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                    let first = first_seq + skipped as u64;
                    let last = first_seq + w.decisions.len() as u64 - 1;
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO decision_log (first_seq, last_seq, at_ms, rows) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![first as i64, last as i64, w.now_ms, rows])?;
                }
                if !w.decisions.is_empty() {
                    let last = first_seq + w.decisions.len() as u64 - 1;
                    // Whole commits older than the last N decisions go; the reader cuts at N.
                    let floor = last.saturating_sub(self.decisions_kept as u64);
                    tx.prepare_cached("DELETE FROM decision_log WHERE last_seq <= ?1")?
                        .execute([floor as i64])?;
                }
                let mut cnt = tx.prepare_cached(
                    "INSERT INTO decision_counts (decision, n) VALUES (?1, ?2)
                     ON CONFLICT(decision) DO UPDATE SET n = n + excluded.n",
                )?;
                for (k, n) in &w.counts {
                    cnt.execute(params![k.as_str(), *n as i64])?;
                }
            }
            tx.commit()
        })();
        result.map_err(|e| self.err(e))?;
        self.next_seq = first_seq + w.decisions.len() as u64;
        Ok(())
    }
}

fn open_read_only(state_db: &Path) -> Result<Connection, StateError> {
    if !state_db.exists() {
        return Err(StateError::Io {
            path: state_db.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let conn = Connection::open_with_flags(
        state_db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StateError::Sqlite {
        path: state_db.to_path_buf(),
        source,
    })?;
    let _ = conn.busy_timeout(Duration::from_secs(2));
    Ok(conn)
}

/// The last `n` decisions recorded in a state database, oldest first. Opens it read-only, so it
/// can be used while the collector runs.
pub fn recent_decisions(state_db: &Path, n: usize) -> Result<Vec<Decision>, StateError> {
    let conn = open_read_only(state_db)?;
    let sq = |source| StateError::Sqlite {
        path: state_db.to_path_buf(),
        source,
    };
    // Commits are trimmed whole; cut at the configured number of decisions here.
    let (kept, last): (Option<i64>, Option<i64>) = conn
        .query_row(
            "SELECT (SELECT value FROM meta WHERE name = 'decisions_kept'), (SELECT MAX(last_seq) FROM decision_log)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(sq)?;
    let n = match kept {
        Some(k) => n.min(k.max(0) as usize),
        None => n,
    };
    let floor = match (kept, last) {
        (Some(k), Some(l)) => l.saturating_sub(k).max(0) as u64,
        _ => 0,
    };
    let mut st = conn
        .prepare("SELECT first_seq, at_ms, rows FROM decision_log ORDER BY first_seq DESC")
        .map_err(sq)?;
    let mut commits = st
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(sq)?;
    let mut out = Vec::new();
    while out.len() < n {
        let Some(commit) = commits.next() else {
            break;
        };
        let (first, at, rows) = commit.map_err(sq)?;
        let rows: Vec<OwnedLogRow> =
            serde_json::from_str(&rows).map_err(|e| StateError::Invalid {
                path: state_db.to_path_buf(),
                reason: format!("unreadable decision log: {e}"),
            })?;
        for (i, (key, decision, revision, source, note)) in rows.into_iter().enumerate().rev() {
            let seq = first.max(0) as u64 + i as u64;
            if out.len() == n || seq <= floor {
                break;
            }
            out.push(Decision {
                seq,
                at_unix_ms: at,
                key,
                decision,
                revision,
                source,
                note,
            });
        }
    }
    out.reverse();
    Ok(out)
}

/// Totals per decision since the state database was created (every kind, zeros included).
pub fn decision_counts(state_db: &Path) -> Result<BTreeMap<DecisionKind, u64>, StateError> {
    let conn = open_read_only(state_db)?;
    let sq = |source| StateError::Sqlite {
        path: state_db.to_path_buf(),
        source,
    };
    let mut out: BTreeMap<DecisionKind, u64> =
        DecisionKind::ALL.into_iter().map(|k| (k, 0)).collect();
    let mut st = conn
        .prepare("SELECT decision, n FROM decision_counts")
        .map_err(sq)?;
    let rows = st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .map_err(sq)?;
    for row in rows {
        let (k, n) = row.map_err(sq)?;
        if let Ok(k) = k.parse::<DecisionKind>() {
            out.insert(k, n.max(0) as u64);
        }
    }
    Ok(out)
}

/// How many keys are pending emission (settle window) in a state database.
pub fn pending_count(state_db: &Path) -> Result<u64, StateError> {
    let conn = open_read_only(state_db)?;
    conn.query_row("SELECT COUNT(*) FROM keys WHERE pending = 1", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n.max(0) as u64)
    .map_err(|source| StateError::Sqlite {
        path: state_db.to_path_buf(),
        source,
    })
}
