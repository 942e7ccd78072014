//! The persistent state: one SQLite file per `dedupe` instance.
//!
//! Why SQLite: the state must survive restarts (a channel may deliver an observation hours after
//! another one did, across a collector restart, and it must still be recognised), writes must be
//! atomic per `consume` call (so a refused delivery leaves no trace), and `agentcol status
//! --dedupe` must be able to read it from another process while the collector runs (WAL).
//!
//! Tables:
//!
//! * `keys`: per event key, by a 64-bit row id ([`codec::key_id`](crate::codec::key_id)) with
//!   the key text beside it, the state in the compact binary form of [`crate::codec`] (the
//!   [`Merged`] event, the revision last emitted downstream, the observations not yet emitted
//!   (for `attach_observations`), the provisional keys to tombstone after its next emission,
//!   and the origin (resource + scope) of its first observation), and as columns the pending
//!   mark and due time (settle window). One B-tree insert per new key.
//! * `keys_overflow`: the same, by key text, for a key whose row id is already taken by
//!   another key (a 64-bit hash collision: practically never, but handled).
//! * `aliases`: (agent, session, `~trace:<hex>`) → real turn id. Kept forever (one row per turn).
//! * `provisional`: index of keys whose turn is still an alias, by alias.
//! * `origins`: interned resource + scope templates (protobuf), by hash.
//! * `decision_log`: the last `decisions_kept` decisions, one row per commit holding that
//!   commit's decisions in the binary form of [`crate::codec::encode_log`], keys by row id (one
//!   insert per commit instead of one per observation: the log is written on every request and
//!   read only by `status`); `decision_counts`: totals per decision.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, UNIX_EPOCH};

use agentcol_component::agent::{EventKey, Merged};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::codec;
use agentcol_component::filter::KeyFilter;
use agentcol_component::AttachedHead;

/// Schema version written to `PRAGMA user_version`. 1: `keys` by text with the state as JSON
/// (migrated on open); 2: `keys` by hashed row id with a binary state, `keys_overflow`.
const SCHEMA_VERSION: i64 = 2;

const PAGE_SIZE_PRAGMA: &str = "PRAGMA page_size=16384;";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS keys (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    state BLOB NOT NULL,
    pending INTEGER NOT NULL DEFAULT 0,
    due_ms INTEGER
);
CREATE INDEX IF NOT EXISTS keys_pending ON keys(due_ms) WHERE pending = 1;
CREATE TABLE IF NOT EXISTS keys_overflow (
    key TEXT PRIMARY KEY,
    state BLOB NOT NULL,
    pending INTEGER NOT NULL DEFAULT 0,
    due_ms INTEGER
) WITHOUT ROWID;
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
    rows BLOB NOT NULL
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
    /// The store that holds the key states (`storage`) could not read one.
    #[error("key states: {0}")]
    Storage(#[from] agentcol_component::KeyStatesError),
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
    pub key: std::sync::Arc<str>,
    pub decision: DecisionKind,
    pub revision: Option<u64>,
    pub source: Option<&'static str>,
    pub note: Option<String>,
}

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
    /// What this process knows of each of `unsent` (its digest and archive columns), handed to
    /// the store with them so it does not read them back: one per entry of `unsent`, or none
    /// (never stored: a state read from the file has none, and the store reads the texts).
    pub unsent_heads: Vec<AttachedHead>,
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
            unsent_heads: Vec::new(),
            supersedes: Vec::new(),
            origin,
        }
    }

    /// Adds an observation to `unsent`, with what is known of it.
    pub fn push_unsent(&mut self, json: String, head: AttachedHead) {
        if self.unsent_heads.len() == self.unsent.len() {
            self.unsent_heads.push(head);
        }
        self.unsent.push(json);
    }

    /// Adds `other`'s unsent observations (a provisional key's, re-keyed to this one).
    pub fn extend_unsent(&mut self, other: Vec<String>, heads: Vec<AttachedHead>) {
        let whole = self.unsent_heads.len() == self.unsent.len() && heads.len() == other.len();
        self.unsent.extend(other);
        if whole {
            self.unsent_heads.extend(heads);
        } else {
            self.unsent_heads.clear();
        }
    }

    /// Takes the unsent observations and their heads (none unless one per observation).
    pub fn take_unsent(&mut self) -> (Vec<String>, Vec<AttachedHead>) {
        let mut heads = std::mem::take(&mut self.unsent_heads);
        let unsent = std::mem::take(&mut self.unsent);
        if heads.len() != unsent.len() {
            heads.clear();
        }
        (unsent, heads)
    }

    /// Forgets the unsent observations (emitted, or given up).
    pub fn clear_unsent(&mut self) {
        self.unsent.clear();
        self.unsent_heads.clear();
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

/// An alias's id in [`Store`]'s filter: xxh3-64 of the three parts, each followed by a byte
/// no part holds as text (a unit separator).
fn alias_filter_id(agent: &str, session: &str, alias: &str) -> i64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for part in [agent, session, alias] {
        h.update(part.as_bytes());
        h.update(&[0x1f]);
    }
    h.digest() as i64
}

/// One alias: (agent, session, `~trace:<hex>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct AliasId {
    pub agent: &'static str,
    pub session: String,
    pub alias: String,
}

impl AliasId {
    /// Its id in [`Store`]'s filter of declared aliases.
    fn filter_id(&self) -> i64 {
        alias_filter_id(self.agent, &self.session, &self.alias)
    }

    pub fn of(key: &EventKey) -> Self {
        AliasId {
            agent: key.agent().as_str(),
            session: key.session().to_string(),
            alias: key.turn().to_string(),
        }
    }
}

/// Where a key's row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loc {
    /// Not in the database: a new key goes to `keys` at its id, or to `keys_overflow` when
    /// another key holds that id.
    New,
    /// `keys`, at the key's id.
    Primary,
    /// `keys_overflow`.
    Overflow,
}

/// One key's row to write.
#[derive(Debug)]
pub(crate) struct Upsert<'a> {
    pub text: &'a str,
    pub id: i64,
    /// Updated by [`Store::write`] for new keys.
    pub loc: Loc,
    pub state: &'a [u8],
    pub pending: bool,
    pub due_ms: Option<i64>,
}

/// What one commit writes, in one transaction.
#[derive(Debug, Default)]
pub(crate) struct Write<'a> {
    pub upserts: Vec<Upsert<'a>>,
    /// (text, id, where).
    pub deletes: Vec<(&'a str, i64, Loc)>,
    /// (alias, turn, whether `provisional` may hold keys waiting for it, to be deleted).
    pub aliases: Vec<(&'a AliasId, &'a str, bool)>,
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
    /// Rows in `keys_overflow`: while 0 (always, but for a 64-bit hash collision), a key that
    /// is not at its id in `keys` is known to be absent without a second lookup.
    overflow: u64,
    /// Rows in `provisional`: while 0 (no provisional key waits for any alias, as when every
    /// alias arrives in the request of its provisional observations), no alias has keys
    /// waiting, and [`Store::provisional_keys`] answers without a query.
    provisional: u64,
    /// Every row id a key may hold ([`KeyFilter`]): a key whose id it has never seen is absent
    /// without a lookup.
    known: KeyFilter,
    /// The same for `aliases` ([`AliasId::filter_id`]): most aliases asked for are new (every
    /// turn of a Codex thread declares one), and each would otherwise be a lookup.
    aliases_known: KeyFilter,
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

impl Store {
    /// Opens (creating) the state database. Every commit is fsynced (`synchronous=FULL`), with
    /// or without a settle window: see `docs/dedupe.md`, "Durability".
    pub fn open(path: &Path, decisions_kept: usize) -> Result<Store, StateError> {
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
        // Every statement of the write and staging paths stays prepared: there are about 20,
        // and with rusqlite's default 16-entry cache each commit re-prepared most of them.
        conn.set_prepared_statement_cache_capacity(64);
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            decisions_kept,
            next_seq: 1,
            overflow: 0,
            provisional: 0,
            known: KeyFilter::with_capacity(0),
            aliases_known: KeyFilter::with_capacity(0),
        };
        store.init()?;
        Ok(store)
    }

    fn err(&self, source: rusqlite::Error) -> StateError {
        StateError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn init(&mut self) -> Result<(), StateError> {
        let c = &self.conn;
        let r: Result<(), rusqlite::Error> = (|| {
            c.busy_timeout(Duration::from_secs(5))?;
            // Only takes effect on a new (empty) file, before WAL mode is set.
            c.execute_batch(PAGE_SIZE_PRAGMA)?;
            let _mode: String = c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
            // FULL also without a window: with NORMAL, a power loss can roll back the last
            // commits, whose emissions downstream already has; if the observations of a lost
            // commit are not all delivered again, a later observation would reuse a revision
            // number with other content. Downstream idempotence does not cover that.
            c.execute_batch("PRAGMA synchronous=FULL;")?;
            // 16 KiB pages (new files): a 1000-record request writes ~0.4 MB of state, in a
            // quarter of the WAL frames and B-tree pages of 4 KiB ones. Checkpoint every 2000
            // pages (32 MiB): the default 1000 would checkpoint every few commits, rewriting the
            // same interior pages each time. 64 MiB of page cache: the bundled SQLite is built
            // with SQLITE_ENABLE_MEMORY_MANAGEMENT, so every connection of the process (this one
            // and the store's) evicts from one shared LRU; with 16 MiB the collector re-read
            // tens of KB of pages from the WAL per event stored (measured with /proc/<pid>/io).
            c.execute_batch("PRAGMA wal_autocheckpoint=2000; PRAGMA cache_size=-65536;")?;
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
        if version == 1 {
            self.migrate_v1().map_err(|e| self.err(e))?;
        }
        let c = &self.conn;
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
        let overflow: i64 = c
            .query_row("SELECT COUNT(*) FROM keys_overflow", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        self.overflow = overflow.max(0) as u64;
        let provisional: i64 = c
            .query_row("SELECT COUNT(*) FROM provisional", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        self.provisional = provisional.max(0) as u64;
        self.known = self.build_filter(0).map_err(|e| self.err(e))?;
        self.aliases_known = self.build_alias_filter(0).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A filter of every alias in `aliases`, with room for twice as many and at least `min`.
    fn build_alias_filter(&self, min: u64) -> Result<KeyFilter, rusqlite::Error> {
        let c = &self.conn;
        let n: i64 = c.query_row("SELECT COUNT(*) FROM aliases", [], |r| r.get(0))?;
        let mut f = KeyFilter::for_rows(n, min);
        let mut st = c.prepare("SELECT agent, session, alias FROM aliases")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let (agent, session, alias): (String, String, String) =
                (r.get(0)?, r.get(1)?, r.get(2)?);
            f.insert(alias_filter_id(&agent, &session, &alias));
        }
        Ok(f)
    }

    /// A filter of every id in `keys` and every id of a text in `keys_overflow` (an overflow
    /// row's id may no longer be in `keys`), with room for twice as many and at least
    /// `min_keys`.
    fn build_filter(&self, min_keys: u64) -> Result<KeyFilter, rusqlite::Error> {
        let c = &self.conn;
        let n: i64 = c.query_row("SELECT COUNT(*) FROM keys", [], |r| r.get(0))?;
        let mut f = KeyFilter::for_rows(n, min_keys);
        let mut st = c.prepare("SELECT id FROM keys")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            f.insert(r.get(0)?);
        }
        let mut st = c.prepare("SELECT key FROM keys_overflow")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let text: String = r.get(0)?;
            f.insert(codec::key_id(&text));
        }
        Ok(f)
    }

    /// Schema 1 → 2: every `keys` row (state as JSON, by text) is rewritten in the binary form
    /// under its hashed id, in one transaction. Unreadable rows are dropped with an error log,
    /// as they would have been started afresh when next seen.
    fn migrate_v1(&mut self) -> Result<(), rusqlite::Error> {
        let path = self.path.clone();
        let tx = self.conn.transaction()?;
        tx.execute_batch("DROP INDEX IF EXISTS keys_pending; ALTER TABLE keys RENAME TO keys_v1;")?;
        tx.execute_batch(SCHEMA)?;
        {
            let mut rd = tx.prepare(
                "SELECT key, merged, emitted, pending, due_ms, unsent, supersedes, origin FROM keys_v1",
            )?;
            let mut rows = rd.query([])?;
            let mut ins = tx.prepare(
                "INSERT INTO keys (id, key, state, pending, due_ms) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(id) DO NOTHING",
            )?;
            let mut ovf = tx.prepare(
                "INSERT OR REPLACE INTO keys_overflow (key, state, pending, due_ms) VALUES (?1, ?2, ?3, ?4)",
            )?;
            while let Some(r) = rows.next()? {
                let text: String = r.get(0)?;
                let parsed = (|| -> Result<KeyState, String> {
                    let key: EventKey = text.parse().map_err(|e| format!("{e}"))?;
                    let mut merged: Merged =
                        serde_json::from_str(&r.get::<_, String>(1).map_err(|e| e.to_string())?)
                            .map_err(|e| e.to_string())?;
                    merged.key = key;
                    let list = |i: usize| -> Result<Option<String>, String> {
                        r.get::<_, Option<String>>(i).map_err(|e| e.to_string())
                    };
                    Ok(KeyState {
                        merged,
                        emitted: r
                            .get::<_, Option<i64>>(2)
                            .map_err(|e| e.to_string())?
                            .map(|e| e.max(0) as u64),
                        pending: r.get::<_, i64>(3).map_err(|e| e.to_string())? != 0,
                        due_ms: r.get(4).map_err(|e| e.to_string())?,
                        unsent: match list(5)? {
                            Some(s) => serde_json::from_str(&s).map_err(|e| e.to_string())?,
                            None => Vec::new(),
                        },
                        unsent_heads: Vec::new(),
                        supersedes: match list(6)? {
                            Some(s) => serde_json::from_str(&s).map_err(|e| e.to_string())?,
                            None => Vec::new(),
                        },
                        origin: r.get(7).map_err(|e| e.to_string())?,
                    })
                })();
                let st = match parsed {
                    Ok(st) => st,
                    Err(e) => {
                        tracing::error!(path = %path.display(), key = %text, error = %e, "unreadable schema-1 dedupe state dropped in the migration");
                        continue;
                    }
                };
                let blob = codec::encode(&st);
                let pending = st.pending as i64;
                if ins.execute(params![
                    codec::key_id(&text),
                    text,
                    blob,
                    pending,
                    st.due_ms
                ])? == 0
                {
                    ovf.execute(params![text, blob, pending, st.due_ms])?;
                }
            }
        }
        // The log was JSON text; it is only for `agentcol status`, and the totals stay.
        tx.execute_batch("DROP TABLE keys_v1; DELETE FROM decision_log;")?;
        tx.commit()
    }

    /// The state of `key` (`text`, `id`: its text and [`codec::key_id`]), if any, with its
    /// encoded form (put back in the cache as it is when the batch does not change it).
    pub fn load_key(
        &self,
        key: &EventKey,
        text: &str,
        id: i64,
    ) -> Result<Option<(Loc, KeyState, Vec<u8>)>, StateError> {
        type Row = (Vec<u8>, i64, Option<i64>);
        let get = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Row> {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        };
        if !self.known.may_contain(id) {
            return Ok(None);
        }
        let mut found: Option<(Loc, Row)> = None;
        let primary = self
            .conn
            .prepare_cached("SELECT key, state, pending, due_ms FROM keys WHERE id = ?1")
            .and_then(|mut st| {
                st.query_row([id], |r| {
                    let k: rusqlite::types::ValueRef<'_> = r.get_ref(0)?;
                    let same = k.as_str().is_ok_and(|k| k == text);
                    Ok(if same {
                        Some((r.get(1)?, r.get(2)?, r.get(3)?))
                    } else {
                        None
                    })
                })
                .optional()
            })
            .map_err(|e| self.err(e))?;
        if let Some(Some(row)) = primary {
            found = Some((Loc::Primary, row));
        } else if self.overflow > 0 {
            found = self
                .conn
                .prepare_cached("SELECT state, pending, due_ms FROM keys_overflow WHERE key = ?1")
                .and_then(|mut st| st.query_row([text], get).optional())
                .map_err(|e| self.err(e))?
                .map(|row| (Loc::Overflow, row));
        }
        let Some((loc, (blob, pending, due_ms))) = found else {
            return Ok(None);
        };
        let st =
            codec::decode(key, &blob, pending != 0, due_ms).map_err(|e| StateError::Invalid {
                path: self.path.clone(),
                reason: format!("key {text}: unreadable state: {e}"),
            })?;
        Ok(Some((loc, st, blob)))
    }

    /// Opens a read transaction for a run of lookups (staging a batch): without it every
    /// lookup is its own transaction and takes and releases the WAL read lock, a third of the
    /// cost of a lookup that misses. [`Self::end_read`] must follow.
    pub fn begin_read(&self) -> Result<(), StateError> {
        self.conn
            .execute_batch("BEGIN DEFERRED")
            .map_err(|e| self.err(e))
    }

    /// Ends the transaction of [`Self::begin_read`] (a no-op when none is open).
    pub fn end_read(&self) {
        if !self.conn.is_autocommit() {
            if let Err(e) = self.conn.execute_batch("COMMIT") {
                tracing::warn!(path = %self.path.display(), error = %e, "ending a dedupe state read failed");
                let _ = self.conn.execute_batch("ROLLBACK");
            }
        }
    }

    /// Where the row of a key is, whatever it holds.
    pub fn locate(&self, text: &str, id: i64) -> Result<Loc, StateError> {
        let at: Option<String> = self
            .conn
            .prepare_cached("SELECT key FROM keys WHERE id = ?1")
            .and_then(|mut st| st.query_row([id], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?;
        if at.as_deref() == Some(text) {
            return Ok(Loc::Primary);
        }
        let n: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM keys_overflow WHERE key = ?1")
            .and_then(|mut st| st.query_row([text], |r| r.get(0)))
            .map_err(|e| self.err(e))?;
        Ok(if n > 0 { Loc::Overflow } else { Loc::New })
    }

    /// The real turn of an alias, if declared.
    pub fn load_alias(&self, id: &AliasId) -> Result<Option<String>, StateError> {
        if !self.aliases_known.may_contain(id.filter_id()) {
            return Ok(None);
        }
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
        if self.provisional == 0 {
            return Ok(Vec::new());
        }
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
                "SELECT key FROM (
                     SELECT key, due_ms FROM keys WHERE pending = 1 AND COALESCE(due_ms, 0) <= ?1
                     UNION ALL
                     SELECT key, due_ms FROM keys_overflow WHERE pending = 1 AND COALESCE(due_ms, 0) <= ?1
                 ) ORDER BY due_ms, key LIMIT ?2",
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
            .prepare_cached(
                "SELECT COUNT(*), MIN(COALESCE(due_ms, 0)) FROM (
                     SELECT due_ms FROM keys WHERE pending = 1
                     UNION ALL
                     SELECT due_ms FROM keys_overflow WHERE pending = 1
                 )",
            )
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
            .execute(
                "UPDATE keys SET pending = 0 WHERE id = ?1 AND key = ?2",
                params![codec::key_id(key), key],
            )
            .and_then(|_| {
                self.conn
                    .execute("UPDATE keys_overflow SET pending = 0 WHERE key = ?1", [key])
            })
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Writes one commit in one transaction.
    pub fn write(&mut self, w: &mut Write<'_>) -> Result<(), StateError> {
        let first_seq = self.next_seq;
        let kept = w.decisions.len().min(self.decisions_kept);
        let skipped = w.decisions.len() - kept;
        let mut new_overflow = self.overflow;
        let mut new_provisional = self.provisional;
        // Before the transaction: whatever becomes of it, a written row is never "absent".
        for u in &w.upserts {
            if u.loc == Loc::New {
                self.known.insert(u.id);
            }
        }
        let result: Result<(), rusqlite::Error> = (|| {
            let tx = self.conn.transaction()?;
            {
                let mut overflow = self.overflow as i64;
                let mut new = tx.prepare_cached(
                    "INSERT INTO keys (id, key, state, pending, due_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(id) DO NOTHING",
                )?;
                let mut up = tx.prepare_cached(
                    "UPDATE keys SET state = ?2, pending = ?3, due_ms = ?4 WHERE id = ?1",
                )?;
                let mut ovf = tx.prepare_cached(
                    "INSERT OR REPLACE INTO keys_overflow (key, state, pending, due_ms) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for u in &mut w.upserts {
                    let pending = u.pending as i64;
                    match u.loc {
                        Loc::Primary => {
                            up.execute(params![u.id, u.state, pending, u.due_ms])?;
                        }
                        Loc::New => {
                            if new.execute(params![u.id, u.text, u.state, pending, u.due_ms])? == 1
                            {
                                u.loc = Loc::Primary;
                            } else {
                                ovf.execute(params![u.text, u.state, pending, u.due_ms])?;
                                u.loc = Loc::Overflow;
                                overflow += 1;
                            }
                        }
                        Loc::Overflow => {
                            ovf.execute(params![u.text, u.state, pending, u.due_ms])?;
                        }
                    }
                }
                let mut del = tx.prepare_cached("DELETE FROM keys WHERE id = ?1")?;
                let mut delo = tx.prepare_cached("DELETE FROM keys_overflow WHERE key = ?1")?;
                for (text, id, loc) in &w.deletes {
                    match loc {
                        Loc::Primary => {
                            del.execute([id])?;
                        }
                        Loc::Overflow => {
                            overflow -= delo.execute([text])? as i64;
                        }
                        Loc::New => {}
                    }
                }
                new_overflow = overflow.max(0) as u64;
                let mut al = tx.prepare_cached(
                    "INSERT OR IGNORE INTO aliases (agent, session, alias, turn) VALUES (?1, ?2, ?3, ?4)",
                )?;
                let mut unprov = tx.prepare_cached(
                    "DELETE FROM provisional WHERE agent = ?1 AND session = ?2 AND alias = ?3",
                )?;
                let mut provisional = self.provisional as i64;
                for (id, turn, waiting) in &w.aliases {
                    al.execute(params![id.agent, id.session, id.alias, turn])?;
                    // Before the commit: whatever becomes of it, a stored alias is never
                    // reported absent.
                    self.aliases_known.insert(id.filter_id());
                    if *waiting {
                        provisional -=
                            unprov.execute(params![id.agent, id.session, id.alias])? as i64;
                    }
                }
                let mut prov = tx.prepare_cached(
                    "INSERT OR IGNORE INTO provisional (agent, session, alias, key) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (id, key) in &w.provisional {
                    provisional +=
                        prov.execute(params![id.agent, id.session, id.alias, key])? as i64;
                }
                new_provisional = provisional.max(0) as u64;
                let mut org = tx.prepare_cached(
                    "INSERT OR IGNORE INTO origins (id, template) VALUES (?1, ?2)",
                )?;
                for (id, template) in &w.origins {
                    org.execute(params![id, template])?;
                }
                if kept > 0 {
                    // By row id only while every key is at its id in `keys`.
                    let rows = codec::encode_log(&w.decisions[skipped..], overflow == 0);
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
        // On failure the caller drops the batch, locations it was told included.
        result.map_err(|e| self.err(e))?;
        self.overflow = new_overflow;
        self.provisional = new_provisional;
        self.next_seq = first_seq + w.decisions.len() as u64;
        if self.aliases_known.wants_rebuild() {
            match self.build_alias_filter(self.aliases_known.capacity().saturating_mul(2)) {
                Ok(f) => self.aliases_known = f,
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "rebuilding the dedupe alias filter failed")
                }
            }
        }
        if self.known.wants_rebuild() {
            // Full: rebuilt from the file at twice the size. If that fails, the old filter is
            // still right, only less selective.
            match self.build_filter(self.known.capacity().saturating_mul(2)) {
                Ok(f) => self.known = f,
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "rebuilding the dedupe key filter failed")
                }
            }
        }
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
                r.get::<_, Vec<u8>>(2)?,
            ))
        })
        .map_err(sq)?;
    let mut text_of = conn
        .prepare("SELECT key FROM keys WHERE id = ?1")
        .map_err(sq)?;
    let mut out = Vec::new();
    while out.len() < n {
        let Some(commit) = commits.next() else {
            break;
        };
        let (first, at, rows) = commit.map_err(sq)?;
        let rows = codec::decode_log(&rows).map_err(|e| StateError::Invalid {
            path: state_db.to_path_buf(),
            reason: format!("unreadable decision log: {e}"),
        })?;
        for (i, (key, decision, revision, source, note)) in rows.into_iter().enumerate().rev() {
            let seq = first.max(0) as u64 + i as u64;
            if out.len() == n || seq <= floor {
                break;
            }
            let key = match key {
                codec::LogKey::Text(t) => t,
                codec::LogKey::Id(id) => text_of
                    .query_row([id], |r| r.get::<_, String>(0))
                    .optional()
                    .map_err(sq)?
                    .unwrap_or_else(|| format!("#{id}")),
            };
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
    conn.query_row(
        "SELECT (SELECT COUNT(*) FROM keys WHERE pending = 1) + (SELECT COUNT(*) FROM keys_overflow WHERE pending = 1)",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n.max(0) as u64)
    .map_err(|source| StateError::Sqlite {
        path: state_db.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentcol_component::agent::{Agent, AgentRecord, Kind, Precedence, Source};

    #[test]
    fn schema_1_files_are_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let key = EventKey::new(Agent::Codex, "s", Some("u"), Some("c"), Kind::ToolCall).unwrap();
        let mut merged = Merged::new(key.clone());
        let mut o = AgentRecord::observation(key.clone(), "agent.tool.call", Source::Hook, 5);
        o.set("gen_ai.tool.name", "Bash");
        merged.add(&o, &Precedence::default());
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE keys (key TEXT PRIMARY KEY, merged TEXT NOT NULL, emitted INTEGER,
                   pending INTEGER NOT NULL DEFAULT 0, due_ms INTEGER, unsent TEXT, supersedes TEXT,
                   origin INTEGER);
                 CREATE INDEX keys_pending ON keys(due_ms) WHERE pending = 1;
                 CREATE TABLE decision_log (first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL,
                   at_ms INTEGER NOT NULL, rows TEXT NOT NULL);
                 INSERT INTO decision_log VALUES (1, 1, 0, '[]');
                 PRAGMA user_version = 1;",
            )
            .unwrap();
            c.execute(
                "INSERT INTO keys VALUES (?1, ?2, 0, 1, 77, '[\"{}\"]', NULL, 9)",
                params![key.to_string(), serde_json::to_string(&merged).unwrap()],
            )
            .unwrap();
            c.execute(
                "INSERT INTO keys VALUES ('v1|bogus', '{', NULL, 0, NULL, NULL, NULL, NULL)",
                [],
            )
            .unwrap();
        }
        let s = Store::open(&path, 10).unwrap();
        let text = key.to_string();
        let (loc, st, _) = s
            .load_key(&key, &text, codec::key_id(&text))
            .unwrap()
            .unwrap();
        assert_eq!(loc, Loc::Primary);
        assert_eq!(st.merged, merged);
        assert_eq!(
            (st.emitted, st.pending, st.due_ms),
            (Some(0), true, Some(77))
        );
        assert_eq!((st.unsent, st.origin), (vec!["{}".to_string()], Some(9)));
        assert_eq!(s.pending_summary().unwrap(), (1, Some(77)));
        drop(s);
        assert_eq!(pending_count(&path).unwrap(), 1);
        assert!(recent_decisions(&path, 10).unwrap().is_empty());
        let s = Store::open(&path, 10).unwrap();
        assert!(s
            .load_key(&key, &text, codec::key_id(&text))
            .unwrap()
            .is_some());
    }

    #[test]
    fn a_key_whose_id_is_taken_goes_to_the_overflow_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let key = EventKey::new(Agent::Codex, "s", Some("u"), Some("c"), Kind::ToolCall).unwrap();
        let text = key.to_string();
        let id = codec::key_id(&text);
        let mut s = Store::open(&path, 10).unwrap();
        // Another key at the same id: a collision.
        s.conn
            .execute(
                "INSERT INTO keys (id, key, state) VALUES (?1, 'v1|other', x'00')",
                [id],
            )
            .unwrap();
        assert!(s.load_key(&key, &text, id).unwrap().is_none());
        let mut st = KeyState::new(Merged::new(key.clone()), None);
        st.pending = true;
        let blob = codec::encode(&st);
        let mut w = Write::default();
        w.upserts.push(Upsert {
            text: &text,
            id,
            loc: Loc::New,
            state: &blob,
            pending: true,
            due_ms: Some(3),
        });
        s.write(&mut w).unwrap();
        assert_eq!(w.upserts[0].loc, Loc::Overflow);
        let (loc, back, _) = s.load_key(&key, &text, id).unwrap().unwrap();
        assert_eq!((loc, back.due_ms), (Loc::Overflow, Some(3)));
        assert_eq!(s.locate(&text, id).unwrap(), Loc::Overflow);
        assert_eq!(s.due_keys(10, 10).unwrap(), vec![text.clone()]);
        assert_eq!(s.pending_summary().unwrap(), (1, Some(3)));
        s.clear_pending(&text).unwrap();
        assert_eq!(s.pending_summary().unwrap(), (0, None));
        drop(s);
        let mut s = Store::open(&path, 10).unwrap();
        assert_eq!(s.overflow, 1, "counted again on open");
        let mut w = Write::default();
        w.deletes.push((&text, id, Loc::Overflow));
        s.write(&mut w).unwrap();
        assert_eq!(s.overflow, 0);
        assert!(s.load_key(&key, &text, id).unwrap().is_none());
    }
    #[test]
    fn provisional_rows_are_counted_so_an_empty_index_is_not_queried() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let key = EventKey::new(
            Agent::Codex,
            "s",
            Some("~trace:4bf92f3577b34da6a3ce929d0e0e4736"),
            Some("c"),
            Kind::ToolCall,
        )
        .unwrap();
        let text = key.to_string();
        let id = AliasId::of(&key);
        let mut s = Store::open(&path, 10).unwrap();
        assert_eq!(s.provisional, 0);
        assert!(s.provisional_keys(&id).unwrap().is_empty());
        let mut w = Write::default();
        w.provisional.push((id.clone(), &text));
        w.provisional.push((id.clone(), &text));
        s.write(&mut w).unwrap();
        assert_eq!(s.provisional, 1, "a repeated row is not counted twice");
        assert_eq!(s.provisional_keys(&id).unwrap(), vec![text.clone()]);
        drop(s);
        let mut s = Store::open(&path, 10).unwrap();
        assert_eq!(s.provisional, 1, "counted again on open");
        assert_eq!(s.provisional_keys(&id).unwrap(), vec![text.clone()]);
        let mut w = Write::default();
        w.aliases.push((&id, "u", true));
        s.write(&mut w).unwrap();
        assert_eq!(s.provisional, 0);
        assert!(s.provisional_keys(&id).unwrap().is_empty());
        drop(s);
        assert_eq!(Store::open(&path, 10).unwrap().provisional, 0);
    }
}
