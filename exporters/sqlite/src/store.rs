//! The write path: one transaction per batch, and the rules that make the stored content a
//! function of the *set* of records received, never of their order, their repetition or the
//! restarts in between.
//!
//! Per record:
//! * its attached raw observations (and, for a raw observation, itself) go to the archive,
//!   `INSERT OR IGNORE` by digest; every archive column is a function of the observation JSON;
//! * a **merged** record (`revision` set) is upserted by key: a higher revision replaces, a lower
//!   one is ignored, an equal one keeps the record whose JSON text is greater. The stored row is
//!   the maximum under that total order, whatever the arrival order;
//! * a **raw observation** (no `revision`: no `dedupe` in the pipeline) is merged into the
//!   key's stored [`Merged`] state (or the state rebuilt from the archive), and the row is the
//!   state's canonical record; the merge is a join, so the result is order-independent too;
//! * **aliases**: a record with a real turn that declares `agent.alias.trace_id` (and a
//!   tombstone, whose `superseded_by` names the real turn) adds (agent, session, `~trace:…`) →
//!   turn to `aliases`; rows under that provisional turn are then re-keyed (raw path: their
//!   merge state joins the real key's) or deleted (merged path: `dedupe` re-keyed them
//!   upstream), and provisional records arriving later are re-keyed or ignored the same way.
//!   The alias table is the set of declarations received, so it too is order-independent (a
//!   table of tombstones would not be: an ordered delivery never produces one);
//! * a record without `agent.event.key` is a plain log: skipped and counted, or kept in
//!   `other_logs` with `keep_other_logs`; an unreadable agent record goes to `raw_records`
//!   with the reason, and the rest of the batch is stored.
//!
//! Then the derived rows of every scope the batch changed are recomputed from `events`
//! ([`crate::derive`]), and the transaction commits. Only then does `consume` return `Ok`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agentcol_component::agent::merge::digest;
use agentcol_component::agent::{
    attr, Added, AgentRecord, EventKey, Merged, Precedence, RecordError,
};
use agentcol_component::filter::KeyFilter;
use agentcol_component::opentelemetry_proto::tonic::logs::v1::{
    LogRecord, ResourceLogs, ScopeLogs,
};
use agentcol_component::{AgentLogs, AttachedHead, KeyedRecord, Logs, StoredKey};
use prost::Message;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::config::Synchronous;
use crate::derive::{self, Touched};
use crate::error::StoreError;
use crate::hot::{Hot, HotStatements};
use crate::lenient;
use crate::schema;

/// How the store is opened and what it keeps.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `PRAGMA synchronous`.
    pub synchronous: Synchronous,
    /// How long to wait for another connection's lock.
    pub busy_timeout: std::time::Duration,
    /// Keep plain (non-agent) log records in `other_logs`.
    pub keep_other_logs: bool,
    /// The precedence used to merge raw observations (the no-`dedupe` path).
    pub precedence: Precedence,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            synchronous: Synchronous::Full,
            busy_timeout: std::time::Duration::from_secs(5),
            keep_other_logs: false,
            precedence: Precedence::default(),
        }
    }
}

/// Why a record was not stored (the `reason` label of `agentcol_sqlite_records_skipped_total`).
pub mod skip {
    /// A plain log record (no `agent.event.key`) and `keep_other_logs` is off.
    pub const NOT_AGENT: &str = "not_agent";
    /// The stored row has a higher revision (or an equal one with a greater record).
    pub const OLDER_REVISION: &str = "older_revision";
    /// Exactly this record (or observation) is already stored.
    pub const DUPLICATE: &str = "duplicate";
    /// The key was superseded by a tombstone.
    pub const SUPERSEDED: &str = "superseded";
}

/// What one batch did (counted into the exporter's metrics after the commit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Log records in the batch.
    pub records: u64,
    /// Event rows inserted or replaced.
    pub upserted: u64,
    /// Observations newly added to the archive.
    pub archived: u64,
    /// Tombstones applied.
    pub tombstones: u64,
    /// Records that were not readable agent records (stored in `raw_records`).
    pub unreadable: u64,
    /// Plain log records stored in `other_logs`.
    pub other_logs: u64,
    /// Records not stored, by reason ([`skip`]).
    pub skipped: BTreeMap<&'static str, u64>,
}

impl WriteStats {
    fn skip(&mut self, reason: &'static str) {
        *self.skipped.entry(reason).or_default() += 1;
    }
}

/// The session store, open for writing. One per file; not shared between threads (the
/// exporter keeps it behind a mutex).
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    options: StoreOptions,
    /// The ids ([`key_id`]) of every key with an `events` row, and of every provisional turn
    /// with one ([`provisional_turn_id`]), once something asked for a key's state
    /// ([`Store::key_state`]): a key (or turn) it has not seen has no row, without a lookup.
    /// Built by a scan of `events` at the first request (so a store nobody asks pays
    /// nothing), kept by every write, rebuilt bigger when full.
    known: Option<KeyFilter>,
}

/// The id of a key's text in [`Store::known`].
fn key_id(text: &str) -> i64 {
    xxhash_rust::xxh3::xxh3_64(text.as_bytes()) as i64
}

/// The id in [`Store::known`] of a provisional turn (`~trace:…`) that has `events` rows, so
/// that learning its alias looks for its rows only when there may be some (the bulk case, an
/// alias whose provisional records `dedupe` re-keyed before they came here, has none).
fn provisional_turn_id(session: &str, turn: &str) -> i64 {
    let seed = xxhash_rust::xxh3::xxh3_64(session.as_bytes()) ^ 0x7072_6f76;
    xxhash_rust::xxh3::xxh3_64_with_seed(turn.as_bytes(), seed) as i64
}

/// A filter of the keys of every `events` row (and of their provisional turns,
/// [`provisional_turn_id`]), with room for twice as many (at least `min`).
fn build_filter(db: &Connection, min: u64) -> Result<KeyFilter, StoreError> {
    let read = StoreError::sql("reading event keys");
    let n: i64 = db
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .map_err(read)?;
    let mut f = KeyFilter::for_rows(n, min);
    let mut stmt = db.prepare("SELECT key FROM events").map_err(read)?;
    let mut rows = stmt.query([]).map_err(read)?;
    while let Some(r) = rows.next().map_err(read)? {
        if let Ok(k) = r.get_ref(0).and_then(|v| v.as_str().map_err(Into::into)) {
            f.insert(key_id(k));
            if k.contains("|~") {
                if let Ok(key) = k.parse::<EventKey>() {
                    if key.has_alias_turn() {
                        f.insert(provisional_turn_id(key.session(), key.turn()));
                    }
                }
            }
        }
    }
    Ok(f)
}

pub(crate) fn ns(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn bytes_digest(b: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(b))
}

/// The attributes copied to columns of `events` (what `sessions` and `turns` pick from), in
/// column order: `cwd`, `git_branch`, `git_commit`, `model`.
pub(crate) const INDEXED_ATTRS: [&str; 4] = [
    attr::CWD,
    attr::GIT_BRANCH,
    attr::GIT_COMMIT,
    attr::REQUEST_MODEL,
];

/// Writes an `events` row, replacing the stored one of its key.
pub(crate) const EVENT_UPSERT: &str =
    "INSERT OR REPLACE INTO events (key, agent, session_id, turn_id, item_id, kind, name,
         time_ns, revision, sources, key_fallback, cwd, git_branch, git_commit, model,
         record, state, archive_len, archive_digest, archive_key)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
         ?18, ?19, ?20)";

/// Writes an `events` row only if its key has none ([`EVENT_UPSERT`]'s columns; `events` has
/// no unique constraint but its primary key).
pub(crate) const EVENT_INSERT_NEW: &str =
    "INSERT INTO events (key, agent, session_id, turn_id, item_id, kind, name,
         time_ns, revision, sources, key_fallback, cwd, git_branch, git_commit, model,
         record, state, archive_len, archive_digest, archive_key)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
         ?18, ?19, ?20)
     ON CONFLICT DO NOTHING";

/// The columns of an `events` row that come from its record.
struct EventRow<'r> {
    /// The key's text.
    key: &'r str,
    rec: &'r AgentRecord,
    /// The record's JSON (`events.record`).
    json: &'r str,
    rev: i64,
    /// [`indexed_attrs`] of `rec`, computed once for the row and the batch's bookkeeping.
    attrs: &'r [Option<String>; 4],
}

/// The values of [`INDEXED_ATTRS`] of a record (the attribute columns of its `events` row).
fn indexed_attrs(rec: &AgentRecord) -> [Option<String>; 4] {
    INDEXED_ATTRS.map(|name| lenient::text(rec.get(name)))
}

impl Store {
    /// Opens (creating and migrating as needed) the store at `path`.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        let conn = schema::open_writer(path, options.synchronous, options.busy_timeout)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            options,
            known: None,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one batch in one transaction; returns after COMMIT.
    pub fn apply(&mut self, logs: &Logs) -> Result<WriteStats, StoreError> {
        self.apply_owned(logs.clone())
    }

    /// [`Self::apply`] of a batch the caller is done with: the records' strings are moved
    /// into the stored rows instead of copied.
    pub fn apply_owned(&mut self, logs: Logs) -> Result<WriteStats, StoreError> {
        self.apply_batch(Vec::new(), logs)
    }

    /// [`Self::apply_owned`] of a batch whose agent records are already decoded
    /// ([`agentcol_component::AgentInput`]): its records first, in order, then its log
    /// records. The same records as OTLP would be stored the same way.
    pub fn apply_records(&mut self, batch: AgentLogs) -> Result<WriteStats, StoreError> {
        self.apply_batch(batch.records, batch.logs)
    }

    fn apply_batch(
        &mut self,
        records: Vec<KeyedRecord>,
        mut logs: Logs,
    ) -> Result<WriteStats, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sql("beginning a write"))?;
        let mut w = Writer {
            db: HotStatements::new(&tx),
            options: &self.options,
            stats: WriteStats::default(),
            touched: Touched::default(),
            // Every key written is added before the commit, so whatever becomes of the
            // transaction, a key with a row is never "absent".
            known: self.known.as_mut(),
        };
        for KeyedRecord {
            record,
            key,
            archive,
            heads,
        } in records
        {
            w.stats.records += 1;
            w.agent(record, None, Some((key, archive, heads)))?;
        }
        for rl in &mut logs.resource_logs {
            for mut sl in std::mem::take(&mut rl.scope_logs) {
                for mut r in std::mem::take(&mut sl.log_records) {
                    w.stats.records += 1;
                    w.record(rl, &sl, &mut r)?;
                }
            }
        }
        derive::recompute(&w.db, &w.touched)?;
        let stats = std::mem::take(&mut w.stats);
        // Gives the held statements back to the connection's cache before the commit.
        drop(w);
        tx.commit().map_err(StoreError::sql("committing"))?;
        if self.known.as_ref().is_some_and(|f| f.wants_rebuild()) {
            // Full: rebuilt at twice the size. If that fails the old filter is still right,
            // only less selective.
            let min = self
                .known
                .as_ref()
                .map_or(0, |f| f.capacity().saturating_mul(2));
            match build_filter(&self.conn, min) {
                Ok(f) => self.known = Some(f),
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "rebuilding the store's key filter failed")
                }
            }
        }
        Ok(stats)
    }

    /// The state of `key` (`text`: its string form) as this store holds it, for a `dedupe`
    /// that keeps no state of its own ([`agentcol_component::key_states`]): `None` when no
    /// `events` row has the key, else the row's revision and every observation archived for
    /// it, merged: the one the row implies, the explicit archive rows under the key, and those
    /// under each provisional key aliased to its turn (observations `dedupe` re-keyed to it,
    /// archived as they arrived). A row written by the raw path (no `dedupe`) keeps its merge
    /// state, which is used as it is.
    pub fn key_state(
        &mut self,
        key: &EventKey,
        text: &str,
    ) -> Result<Option<StoredKey>, StoreError> {
        if self.known.is_none() {
            self.known = Some(build_filter(&self.conn, 0)?);
        }
        if !self
            .known
            .as_ref()
            .is_some_and(|f| f.may_contain(key_id(text)))
        {
            return Ok(None);
        }
        let db = &self.conn;
        let Some(stored) = stored_row(db, key, text)? else {
            return Ok(None);
        };
        let revision = u64::try_from(stored.revision).unwrap_or(0);
        if let Some(m) = stored
            .state
            .as_deref()
            .and_then(|s| serde_json::from_str::<Merged>(s).ok())
        {
            return Ok(Some(StoredKey {
                merged: m,
                revision,
            }));
        }
        let prec = &self.options.precedence;
        let mut m = Merged::new(key.clone());
        if let Some(i) = &stored.implied {
            // Under the key or under a provisional key of its turn: an observation of it either way.
            let json = i.json(text, &stored.record)?;
            if let Ok(o) = AgentRecord::from_observation_json(&json) {
                m.add_owned(o, i.digest.clone(), prec);
            }
        }
        add_archived(db, text, &mut m, prec)?;
        if !key.turn().is_empty() && !key.has_alias_turn() {
            let aliases = db
                .prepare_cached(Hot::TurnAliases.sql())
                .and_then(|mut s| turn_aliases(&mut s, key))
                .map_err(StoreError::sql("reading aliases"))?;
            for alias in aliases {
                add_archived(db, &key.with_turn(&alias).to_string(), &mut m, prec)?;
            }
        }
        Ok(Some(StoredKey {
            merged: m,
            revision,
        }))
    }

    /// Recomputes every derived row (and the attribute columns of `events`) from
    /// `events.record`, in one transaction.
    /// The result equals what the incremental path maintains; migrations that change a
    /// derivation call this.
    pub fn rebuild_derived(&mut self) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sql("beginning a rebuild"))?;
        tx.execute_batch(
            "DELETE FROM sessions; DELETE FROM turns; DELETE FROM tool_calls; DELETE FROM usage;",
        )
        .map_err(StoreError::sql("clearing derived tables"))?;
        let mut touched = Touched::default();
        {
            let mut stmt = tx
                .prepare("SELECT key, record FROM events ORDER BY key")
                .map_err(StoreError::sql("reading events"))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(StoreError::sql("reading events"))?;
            for row in rows {
                let (key_text, record) = row.map_err(StoreError::sql("reading events"))?;
                let key: EventKey = key_text.parse().map_err(|e| StoreError::Corrupt {
                    what: "event key",
                    reason: format!("{e}"),
                })?;
                let rec: AgentRecord =
                    serde_json::from_str(&record).map_err(|e| StoreError::Corrupt {
                        what: "event record",
                        reason: e.to_string(),
                    })?;
                let [cwd, branch, commit, model] = indexed_attrs(&rec);
                tx.prepare_cached(
                    "UPDATE events SET cwd = ?4, git_branch = ?5, git_commit = ?6, model = ?7
                     WHERE session_id = ?1 AND turn_id = ?2 AND key = ?3
                     AND (cwd IS NOT ?4 OR git_branch IS NOT ?5 OR git_commit IS NOT ?6
                          OR model IS NOT ?7)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        key.session(),
                        key.turn(),
                        key_text,
                        cwd,
                        branch,
                        commit,
                        model
                    ])
                })
                .map_err(StoreError::sql("writing event attributes"))?;
                touched.touch(&key, &key_text);
            }
        }
        derive::recompute(&HotStatements::new(&tx), &touched)?;
        tx.commit().map_err(StoreError::sql("committing a rebuild"))
    }
}

struct Writer<'a> {
    /// The batch's transaction, with its hot statements.
    db: HotStatements<'a>,
    options: &'a StoreOptions,
    stats: WriteStats,
    touched: Touched,
    /// [`Store::known`], when kept.
    known: Option<&'a mut KeyFilter>,
}

impl Writer<'_> {
    /// Stores one record; `rl` and `sl` are its resource and scope without their scopes and
    /// records (`other_logs` copies only the one). `r` may be left gutted (its strings moved into the row), except when it is
    /// a tombstone or unreadable: those may be kept verbatim.
    fn record(
        &mut self,
        rl: &ResourceLogs,
        sl: &ScopeLogs,
        r: &mut LogRecord,
    ) -> Result<(), StoreError> {
        match AgentRecord::take_from_log_record(r, |rec| rec.superseded_by.is_none()) {
            Ok(rec) => self.agent(rec, Some(r), None),
            Err(RecordError::NotAgent) => {
                if self.options.keep_other_logs {
                    self.other_log(rl, sl, r)
                } else {
                    self.stats.skip(skip::NOT_AGENT);
                    Ok(())
                }
            }
            Err(e) => self.raw(r, &e.to_string()),
        }
    }

    /// Stores an agent record: `r` is the log record it was read from (`None`: it came as a
    /// record, with its key's text and which attachment is its archive form,
    /// [`KeyedRecord`]).
    fn agent(
        &mut self,
        mut rec: AgentRecord,
        r: Option<&LogRecord>,
        keyed: Option<(String, Option<usize>, Vec<AttachedHead>)>,
    ) -> Result<(), StoreError> {
        let (keyed, heads) = match keyed {
            Some((key, archive, heads)) => (Some((key, archive)), heads),
            None => (None, Vec::new()),
        };
        let attached = Attached::new(std::mem::take(&mut rec.observations), heads);
        if let Some(host) = &rec.superseded_by {
            self.archive_unless_implied(&attached, &host.clone())?;
        } else if rec.revision.is_none() {
            for i in 0..attached.len() {
                self.archive_attached(&attached, i)?;
            }
        }
        if rec.superseded_by.is_none() && !rec.key.has_alias_turn() {
            if let Some(trace) = rec.get(attr::ALIAS_TRACE_ID).and_then(|v| v.as_str()) {
                let alias = agentcol_component::agent::trace_alias(trace);
                let turn = rec.key.turn().to_string();
                self.learn_alias(&rec.key.clone(), &alias, &turn)?;
            }
        }
        if let Some(new_key) = rec.superseded_by.take() {
            if new_key == rec.key {
                const REASON: &str = "bad agent.event.superseded_by: the record supersedes itself";
                return match r {
                    Some(r) => self.raw(r, REASON),
                    None => {
                        // Its OTLP form, as it would have come.
                        rec.superseded_by = Some(new_key);
                        rec.observations = attached.texts;
                        self.raw(&rec.into_log_record(), REASON)
                    }
                };
            }
            return self.tombstone(&rec.key, &new_key);
        }
        if rec.revision.is_some() {
            self.merged(rec, keyed, &attached)
        } else {
            let json = rec.observation_json();
            let d = digest(&json);
            self.archive_record(&d, &json, &rec)?;
            self.observation(rec, d)
        }
    }

    /// Archives attachment `i`, with its sender's head when there is one (else read from the
    /// text, [`Self::archive_text`]).
    fn archive_attached(&mut self, attached: &Attached, i: usize) -> Result<(), StoreError> {
        let json = &attached.texts[i];
        let Some(h) = attached.heads.get(i) else {
            return self.archive_text(json);
        };
        #[cfg(debug_assertions)]
        {
            let read = serde_json::from_str::<ObservationHead<'_>>(json).ok();
            debug_assert_eq!(
                read.as_ref().map(|r| (
                    &*r.key,
                    r.source.as_deref(),
                    r.time_unix_nano,
                    digest(json)
                )),
                Some((
                    h.key.as_str(),
                    h.source.map(|s| s.as_str()),
                    h.time_unix_nano,
                    h.digest.clone()
                )),
                "the head sent with an attached observation"
            );
        }
        let columns = (
            h.key.as_str(),
            h.source.map(|s| s.as_str()),
            ns(h.time_unix_nano),
        );
        self.archive(&h.digest, json, Some(columns))
    }

    /// Archives an attached observation (JSON text as `dedupe` sent it). Only the columns are
    /// read from it; the text is stored as it came.
    fn archive_text(&mut self, json: &str) -> Result<(), StoreError> {
        let head = serde_json::from_str::<ObservationHead<'_>>(json)
            .ok()
            .filter(|h| h.key.parse::<EventKey>().is_ok());
        if head.is_none() {
            tracing::debug!("archiving an attached observation that does not parse as a record");
        }
        let columns = head
            .as_ref()
            .map(|h| (&*h.key, h.source.as_deref(), ns(h.time_unix_nano)));
        self.archive(&digest(json), json, columns)
    }

    fn archive_record(&mut self, d: &str, json: &str, obs: &AgentRecord) -> Result<(), StoreError> {
        let key = obs.key.to_string();
        let columns = (
            key.as_str(),
            obs.source.map(|s| s.as_str()),
            ns(obs.time_unix_nano),
        );
        self.archive(d, json, Some(columns))
    }

    /// Inserts into the archive; `columns` (key, source, time) are read from `json`, so a row
    /// is a function of its digest.
    fn archive(
        &mut self,
        d: &str,
        json: &str,
        columns: Option<(&str, Option<&str>, i64)>,
    ) -> Result<(), StoreError> {
        // An observation whose JSON has no readable key is archived under the key ''.
        let (key, source, time) = match columns {
            Some((k, s, t)) => (k, s, Some(t)),
            None => ("", None, None),
        };
        let n = self.insert_archive_row(key, d, source, time, json)?;
        self.stats.archived += n as u64;
        Ok(())
    }

    fn insert_archive_row(
        &self,
        key: &str,
        d: &str,
        source: Option<&str>,
        time: Option<i64>,
        json: &str,
    ) -> Result<usize, StoreError> {
        self.db
            .run(Hot::ArchiveInsert, |s| {
                s.execute(params![key, d, source, time, json])
            })
            .map_err(StoreError::sql("archiving an observation"))
    }

    /// Writes the observation that the stored row of `key` implies (if it implies one) as an
    /// explicit archive row: the row is about to be replaced or deleted, and the archive keeps
    /// every observation. Not counted: the observation was already archived.
    fn make_explicit(&self, key: &str, stored: &Stored) -> Result<(), StoreError> {
        if let Some(i) = &stored.implied {
            let json = i.json(key, &stored.record)?;
            let source = Some(stored.sources.as_str()).filter(|s| !s.is_empty());
            let k = i.key.as_deref().unwrap_or(key);
            self.insert_archive_row(k, &i.digest, source, Some(stored.time_ns), &json)?;
        }
        Ok(())
    }

    /// The real turn of a provisional key, if its alias is known.
    fn resolved_turn(&self, key: &EventKey) -> Result<Option<String>, StoreError> {
        if !key.has_alias_turn() {
            return Ok(None);
        }
        self.db
            .run(Hot::AliasTurn, |s| {
                s.query_row(
                    params![key.agent().as_str(), key.session(), key.turn()],
                    |r| r.get(0),
                )
                .optional()
            })
            .map_err(StoreError::sql("reading aliases"))
    }

    /// Records alias → turn for the session of `key`, and re-keys or deletes the rows stored
    /// under the provisional turn.
    fn learn_alias(&mut self, key: &EventKey, alias: &str, turn: &str) -> Result<(), StoreError> {
        if turn.is_empty() || turn.starts_with(agentcol_component::agent::ALIAS_PREFIX) {
            return Ok(());
        }
        let n = self
            .db
            .run(Hot::AliasInsert, |s| {
                s.execute(params![key.agent().as_str(), key.session(), alias, turn])
            })
            .map_err(StoreError::sql("recording an alias"))?;
        if n == 0 {
            return Ok(());
        }
        if self
            .known
            .as_deref()
            .is_some_and(|f| !f.may_contain(provisional_turn_id(key.session(), alias)))
        {
            // No row of the provisional turn has ever been written.
            return Ok(());
        }
        let rows: Vec<(String, Option<String>)> = self
            .db
            .run(Hot::TurnRows, |s| {
                s.query_map(params![key.session(), alias], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect()
            })
            .map_err(StoreError::sql("reading provisional events"))?;
        for (k, state) in rows {
            let Ok(old) = k.parse::<EventKey>() else {
                continue;
            };
            if old.agent() != key.agent() {
                continue;
            }
            let real = old.with_turn(turn);
            self.delete_event(&old, Some(&real))?;
            self.stats.tombstones += 1;
            // Raw path: nobody upstream re-keys, so the store carries the state over.
            if let Some(m) = state.and_then(|s| serde_json::from_str::<Merged>(&s).ok()) {
                self.join_state(m.rekey(real))?;
            }
        }
        Ok(())
    }

    /// Deletes the row of `key`, superseded by `real` when known (whose row may imply the
    /// same observation: it is then not written out).
    fn delete_event(&mut self, key: &EventKey, real: Option<&EventKey>) -> Result<(), StoreError> {
        let k = key.to_string();
        if let Some(stored) = self.stored(key, &k)? {
            let mut keep = false;
            if let (Some(i), Some(real)) = (&stored.implied, real) {
                let real_text = real.to_string();
                if let Some(r) = self.stored(real, &real_text)? {
                    match &r.implied {
                        Some(ri) => keep = ri.digest == i.digest,
                        None => {
                            // The real row came without the observation: it implies it now.
                            let o = i.json(&k, &stored.record)?;
                            if let Some(imp) = stored_form_of(&r, &real_text, &o) {
                                self.set_implied(real, &real_text, &imp)?;
                                keep = true;
                            }
                        }
                    }
                }
            }
            if !keep {
                self.make_explicit(&k, &stored)?;
            }
        }
        let n = self
            .db
            .prepare_cached(
                "DELETE FROM events WHERE session_id = ?1 AND turn_id = ?2 AND key = ?3",
            )
            .and_then(|mut s| s.execute(params![key.session(), key.turn(), k]))
            .map_err(StoreError::sql("deleting a superseded event"))?;
        if n > 0 {
            self.touched.touch(key, &k);
            self.touched.count(key, -1);
            self.touched.deleted(&k);
        }
        Ok(())
    }

    /// Joins a (re-keyed) raw-path state into its key's row.
    fn join_state(&mut self, m: Merged) -> Result<(), StoreError> {
        let key = m.key.to_string();
        let stored = self.stored(&m.key, &key)?;
        let mut state = match stored.as_ref().and_then(|s| s.state.as_deref()) {
            Some(s) => {
                serde_json::from_str::<Merged>(s).unwrap_or_else(|_| Merged::new(m.key.clone()))
            }
            None => self.rebuild_state(&m.key, stored.as_ref())?,
        };
        state.join(&m);
        let rec = state.to_record();
        let json = record_json(&rec);
        let state_json = serde_json::to_string(&state).map_err(|e| StoreError::Corrupt {
            what: "merge state",
            reason: e.to_string(),
        })?;
        self.write_event(
            &key,
            rec,
            &json,
            ns(state.revision()),
            Some(&state_json),
            stored.as_ref(),
            None,
        )
    }

    fn tombstone(&mut self, key: &EventKey, new_key: &EventKey) -> Result<(), StoreError> {
        if key.has_alias_turn() && key.session() == new_key.session() {
            self.learn_alias(key, key.turn(), new_key.turn())?;
        }
        self.delete_event(key, Some(new_key))
    }

    /// The stored row of `key` (`text` is its string form).
    fn stored(&self, key: &EventKey, text: &str) -> Result<Option<Stored>, StoreError> {
        stored_row(&self.db, key, text)
    }

    /// Whether a candidate (revision, record JSON) replaces the stored row; else why not.
    fn wins(stored: Option<&Stored>, rev: i64, json: &str) -> Result<(), &'static str> {
        match stored {
            None => Ok(()),
            Some(Stored {
                revision: r,
                record: j,
                ..
            }) => {
                if rev > *r || (rev == *r && json > j.as_str()) {
                    Ok(())
                } else if rev == *r && json == j {
                    Err(skip::DUPLICATE)
                } else {
                    Err(skip::OLDER_REVISION)
                }
            }
        }
    }

    /// A merged record and the observations `dedupe` attached to it. When the record is
    /// revision 0 of one source and one attachment is exactly its archive form (the record
    /// JSON without the merged-only fields), that observation is not written to
    /// `observations`: the event row implies it ([`Implied`]), so the content is stored once.
    /// Whenever such a row is replaced or deleted, the observation is written out first, so
    /// the archive (`observations` ∪ implied rows, the `archive` view) is the same set of
    /// observations whatever the order; the representation is canonical too (an observation
    /// is implied iff the winning row implies it).
    fn merged(
        &mut self,
        rec: AgentRecord,
        keyed: Option<(String, Option<usize>)>,
        attached: &Attached,
    ) -> Result<(), StoreError> {
        let (key, archive) = keyed.unwrap_or_else(|| (rec.key.to_string(), None));
        debug_assert_eq!(key, rec.key.to_string());
        if let Some(turn) = self.resolved_turn(&rec.key)? {
            // `dedupe` has re-keyed (or will re-key) this provisional event; the row of the
            // real key may imply an observation of this one.
            let real = rec.key.with_turn(&turn);
            self.archive_unless_implied(attached, &real)?;
            self.stats.skip(skip::SUPERSEDED);
            return Ok(());
        }
        // The record's text, copied from its one observation when the sender says which.
        let parts = match archive
            .and_then(|i| attached.texts.get(i))
            .and_then(|o| rec.to_json_parts_from_observation(&key, o))
        {
            Some((json, obs_len)) => RecordJson { json, obs_len },
            None => record_json_parts(&rec, &key),
        };
        let rev = ns(rec.revision.unwrap_or(0));
        // `sources_text(&rec)` is the source's name (no source name has a comma).
        let single_source = rec.sources.is_empty()
            || (rec.sources.len() == 1 && rec.source == Some(rec.sources[0]));
        let obs_len = parts.obs_len;
        let (implied_at, implied) = if rev == 0 && single_source && obs_len > 0 {
            let head = parts.obs_head();
            attached
                .texts
                .iter()
                .enumerate()
                .find_map(|(i, o)| {
                    archive_form_of(head, &key, o).map(|k| {
                        (
                            Some(i),
                            Some(Implied {
                                len: obs_len as i64,
                                digest: attached.digest(i).into_owned(),
                                key: k,
                            }),
                        )
                    })
                })
                .unwrap_or((None, None))
        } else {
            (None, None)
        };
        let json = parts.json.as_str();
        // A winning row that no attachment is the archive form of may still imply an
        // explicit archive row.
        let explicit = match implied {
            None if rev == 0 && single_source && obs_len >= 2 => {
                self.explicit_form(&rec.key, &key, &parts.obs())?
            }
            _ => None,
        };
        // The bulk case, a key not stored yet: the row is written without reading first (a
        // missing row always loses to the record, and there is no implied observation to write
        // out). Then the explicit copy of the observation the row implies goes, as below.
        let fresh = implied.as_ref().or(explicit.as_ref());
        let attrs = indexed_attrs(&rec);
        let row = EventRow {
            key: &key,
            rec: &rec,
            json,
            rev,
            attrs: &attrs,
        };
        if self.event_row(Hot::EventInsertNew, row, None, fresh)? == 1 {
            if let Some(i) = fresh {
                if self.delete_archive_row(i.key.as_deref().unwrap_or(&key), &i.digest)? == 0 {
                    self.stats.archived += 1;
                }
            }
            self.wrote_event(&key, rec, true, attrs);
            for i in 0..attached.len() {
                if Some(i) != implied_at {
                    self.archive_attached(attached, i)?;
                }
            }
            return Ok(());
        }
        let stored = self.stored(&rec.key, &key)?;
        match Self::wins(stored.as_ref(), rev, json) {
            Ok(()) => {
                let implied = implied.or(explicit);
                // First: the replaced row's implied observation becomes explicit.
                self.write_event(&key, rec, json, rev, None, stored.as_ref(), implied)?;
                for i in 0..attached.len() {
                    if Some(i) != implied_at {
                        self.archive_attached(attached, i)?;
                    }
                }
                Ok(())
            }
            Err(reason) => {
                let s = stored.as_ref();
                let already = s
                    .and_then(|s| s.implied.as_ref())
                    .map(|i| i.digest.as_str());
                for i in 0..attached.len() {
                    if already.is_some() && already == Some(&*attached.digest(i)) {
                        // Already in the archive, implied by the stored row.
                        continue;
                    }
                    if let (skip::DUPLICATE, true, None, Some(imp)) =
                        (reason, Some(i) == implied_at, already, &implied)
                    {
                        // The very row this observation is the archive form of.
                        if self.set_implied(&rec.key, &key, imp)? {
                            self.stats.archived += 1;
                        }
                        continue;
                    }
                    self.archive_attached(attached, i)?;
                }
                self.stats.skip(reason);
                Ok(())
            }
        }
    }

    /// Marks the stored row of `key` (equal to the record `imp` was computed from) as
    /// implying its observation, removing an explicit copy if there is one; whether the
    /// observation is new to the archive.
    fn set_implied(&self, key: &EventKey, text: &str, imp: &Implied) -> Result<bool, StoreError> {
        self.db
            .prepare_cached(
                "UPDATE events SET archive_len = ?4, archive_digest = ?5, archive_key = ?6
                 WHERE session_id = ?1 AND turn_id = ?2 AND key = ?3",
            )
            .and_then(|mut s| {
                s.execute(params![
                    key.session(),
                    key.turn(),
                    text,
                    imp.len,
                    imp.digest,
                    imp.key
                ])
            })
            .map_err(StoreError::sql("marking an implied observation"))?;
        let k = imp.key.as_deref().unwrap_or(text);
        Ok(self.delete_archive_row(k, &imp.digest)? == 0)
    }

    /// Archives `attached` (observations of a record that does not win, under another key
    /// than `host`), except the one the row of `host` implies.
    fn archive_unless_implied(
        &mut self,
        attached: &Attached,
        host: &EventKey,
    ) -> Result<(), StoreError> {
        if attached.is_empty() {
            return Ok(());
        }
        let host_text = host.to_string();
        let stored = self.stored(host, &host_text)?;
        let mut implied = stored
            .as_ref()
            .and_then(|s| s.implied.as_ref())
            .map(|i| i.digest.clone());
        for (i, o) in attached.texts.iter().enumerate() {
            if implied.is_some() && implied.as_deref() == Some(&*attached.digest(i)) {
                continue;
            }
            if implied.is_none() {
                // The real row came without it: it implies it now, as if it had.
                if let Some(imp) = stored
                    .as_ref()
                    .and_then(|s| stored_form_of(s, &host_text, o))
                {
                    if self.set_implied(host, &host_text, &imp)? {
                        self.stats.archived += 1;
                    }
                    implied = Some(imp.digest);
                    continue;
                }
            }
            self.archive_attached(attached, i)?;
        }
        Ok(())
    }

    /// An explicit archive row that is the archive form `obs` of the record of `key` (under its
    /// key, or under a provisional key aliased to its turn): a record that came without its
    /// observation (re-keyed by `dedupe` after the observation was sent) implies it all the
    /// same, so the representation does not depend on the order.
    fn explicit_form(
        &self,
        key: &EventKey,
        text: &str,
        obs: &str,
    ) -> Result<Option<Implied>, StoreError> {
        let mut candidates = vec![(None, obs.to_string())];
        let rest = obs
            .strip_prefix(KEY_HEAD)
            .and_then(|r| r.strip_prefix(text))
            .filter(|r| r.starts_with('"'));
        if let (Some(rest), false) = (rest, key.turn().is_empty() || key.has_alias_turn()) {
            let aliases = self
                .db
                .run(Hot::TurnAliases, |s| turn_aliases(s, key))
                .map_err(StoreError::sql("reading aliases"))?;
            for alias in aliases {
                let ko = key.with_turn(&alias).to_string();
                if ko.bytes().any(|b| b == b'\\' || b == b'"' || b < 0x20) {
                    continue;
                }
                candidates.push((Some(ko.clone()), format!("{KEY_HEAD}{ko}{rest}")));
            }
        }
        for (other, form) in candidates {
            let d = digest(&form);
            let k = other.as_deref().unwrap_or(text);
            let found = self
                .db
                .run(Hot::ArchiveProbe, |s| {
                    s.query_row(params![k, d], |_| Ok(())).optional()
                })
                .map_err(StoreError::sql("reading the archive"))?;
            if found.is_some() {
                return Ok(Some(Implied {
                    len: obs.len() as i64,
                    digest: d,
                    key: other,
                }));
            }
        }
        Ok(None)
    }

    /// Deletes the explicit archive row (`key`, `d`); how many rows went (0 or 1).
    fn delete_archive_row(&self, key: &str, d: &str) -> Result<usize, StoreError> {
        self.db
            .run(Hot::ArchiveDelete, |s| s.execute(params![key, d]))
            .map_err(StoreError::sql(
                "removing an explicit copy of an implied observation",
            ))
    }

    fn observation(&mut self, mut obs: AgentRecord, d: String) -> Result<(), StoreError> {
        if let Some(turn) = self.resolved_turn(&obs.key)? {
            obs.key = obs.key.with_turn(&turn);
        }
        let key = obs.key.to_string();
        let stored = self.stored(&obs.key, &key)?;
        let prec = &self.options.precedence;
        let state = stored
            .as_ref()
            .and_then(|s| s.state.as_deref())
            .and_then(|s| serde_json::from_str::<Merged>(s).ok());
        let state = match state {
            Some(mut m) => match m.add_with_digest(&obs, d, prec) {
                Added::Duplicate => {
                    self.stats.skip(skip::DUPLICATE);
                    return Ok(());
                }
                Added::New { .. } => m,
            },
            // No state yet (first observation, or a row written by the merged path): the
            // archive holds every observation archived under the key; this one is added too,
            // as it was archived under its provisional key when it has been re-keyed.
            None => {
                let mut m = self.rebuild_state(&obs.key, stored.as_ref())?;
                m.add_with_digest(&obs, d, prec);
                m
            }
        };
        let rec = state.to_record();
        let json = record_json(&rec);
        let rev = ns(state.revision());
        match Self::wins(stored.as_ref(), rev, &json) {
            Ok(()) => {
                let state_json =
                    serde_json::to_string(&state).map_err(|e| StoreError::Corrupt {
                        what: "merge state",
                        reason: e.to_string(),
                    })?;
                self.write_event(
                    &key,
                    rec,
                    &json,
                    rev,
                    Some(&state_json),
                    stored.as_ref(),
                    None,
                )
            }
            Err(reason) => {
                self.stats.skip(reason);
                Ok(())
            }
        }
    }

    /// The merge state of every observation archived under `key` ([`archived_state`]).
    fn rebuild_state(&self, key: &EventKey, stored: Option<&Stored>) -> Result<Merged, StoreError> {
        archived_state(&self.db, key, stored, &self.options.precedence)
    }

    /// Inserts or replaces the row of `key`; `stored` is the row it replaces, `implied` the
    /// observation the new row implies (see [`Self::merged`]).
    #[allow(clippy::too_many_arguments)]
    fn write_event(
        &mut self,
        key: &str,
        rec: AgentRecord,
        json: &str,
        rev: i64,
        state: Option<&str>,
        stored: Option<&Stored>,
        implied: Option<Implied>,
    ) -> Result<(), StoreError> {
        let same = match (stored.and_then(|s| s.implied.as_ref()), &implied) {
            (Some(a), Some(b)) => a.digest == b.digest,
            _ => false,
        };
        if !same {
            if let Some(s) = stored {
                self.make_explicit(key, s)?;
            }
            if let Some(i) = &implied {
                // An explicit copy (left by an earlier row, or a version-1 file) goes: the
                // observation is stored once, and the representation is canonical.
                if self.delete_archive_row(i.key.as_deref().unwrap_or(key), &i.digest)? == 0 {
                    self.stats.archived += 1;
                }
            }
        }
        let new = stored.is_none();
        let attrs = indexed_attrs(&rec);
        let row = EventRow {
            key,
            rec: &rec,
            json,
            rev,
            attrs: &attrs,
        };
        self.event_row(Hot::EventUpsert, row, state, implied.as_ref())?;
        self.wrote_event(key, rec, new, attrs);
        Ok(())
    }

    /// Writes the `events` row `row` with statement `which` ([`EVENT_UPSERT`] or
    /// [`EVENT_INSERT_NEW`]); how many rows it wrote.
    fn event_row(
        &self,
        which: Hot,
        row: EventRow<'_>,
        state: Option<&str>,
        implied: Option<&Implied>,
    ) -> Result<usize, StoreError> {
        let EventRow {
            key,
            rec,
            json,
            rev,
            attrs,
        } = row;
        let sources = sources_text(rec);
        let k = &rec.key;
        let [cwd, branch, commit, model] = attrs;
        self.db
            .run(which, |s| {
                s.execute(params![
                    key,
                    k.agent().as_str(),
                    k.session(),
                    k.turn(),
                    k.item(),
                    k.kind().key_part(),
                    rec.name,
                    ns(rec.time_unix_nano),
                    rev,
                    sources,
                    k.is_fallback(),
                    cwd,
                    branch,
                    commit,
                    model,
                    json,
                    state,
                    implied.map(|i| i.len),
                    implied.map(|i| i.digest.as_str()),
                    implied.and_then(|i| i.key.as_deref()),
                ])
            })
            .map_err(StoreError::sql("writing an event"))
    }

    /// The bookkeeping of a written row (`new`: no row of `key` was stored before).
    fn wrote_event(&mut self, key: &str, rec: AgentRecord, new: bool, attrs: [Option<String>; 4]) {
        self.stats.upserted += 1;
        if let (true, Some(f)) = (new, self.known.as_deref_mut()) {
            f.insert(key_id(key));
            if rec.key.has_alias_turn() {
                f.insert(provisional_turn_id(rec.key.session(), rec.key.turn()));
            }
        }
        if new {
            self.touched.count(&rec.key, 1);
        }
        self.touched.wrote(key, rec, attrs);
    }

    fn raw(&mut self, r: &LogRecord, reason: &str) -> Result<(), StoreError> {
        let bytes = r.encode_to_vec();
        self.db
            .prepare_cached(
                "INSERT OR IGNORE INTO raw_records (digest, reason, otlp) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![bytes_digest(&bytes), reason, bytes]))
            .map_err(StoreError::sql("storing an unreadable record"))?;
        self.stats.unreadable += 1;
        tracing::debug!(reason, "unreadable agent record kept in raw_records");
        Ok(())
    }

    fn other_log(
        &mut self,
        rl: &ResourceLogs,
        sl: &ScopeLogs,
        r: &LogRecord,
    ) -> Result<(), StoreError> {
        // The record with its resource and scope, so nothing about it is lost.
        let one = ResourceLogs {
            resource: rl.resource.clone(),
            scope_logs: vec![ScopeLogs {
                scope: sl.scope.clone(),
                log_records: vec![r.clone()],
                schema_url: sl.schema_url.clone(),
            }],
            schema_url: rl.schema_url.clone(),
        };
        let bytes = one.encode_to_vec();
        let time = if r.time_unix_nano != 0 {
            r.time_unix_nano
        } else {
            r.observed_time_unix_nano
        };
        let n = self
            .db
            .prepare_cached(
                "INSERT OR IGNORE INTO other_logs (digest, time_ns, otlp) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![bytes_digest(&bytes), ns(time), bytes]))
            .map_err(StoreError::sql("storing a log record"))?;
        if n > 0 {
            self.stats.other_logs += 1;
        } else {
            self.stats.skip(skip::DUPLICATE);
        }
        Ok(())
    }
}

/// The observations attached to a record, with what their sender knew of them: one
/// [`AttachedHead`] per text, or none (read from the texts).
struct Attached {
    texts: Vec<String>,
    heads: Vec<AttachedHead>,
}

impl Attached {
    fn new(texts: Vec<String>, mut heads: Vec<AttachedHead>) -> Attached {
        if heads.len() != texts.len() {
            heads.clear();
        }
        Attached { texts, heads }
    }

    fn len(&self) -> usize {
        self.texts.len()
    }

    fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// The digest of attachment `i`.
    fn digest(&self, i: usize) -> std::borrow::Cow<'_, str> {
        match self.heads.get(i) {
            Some(h) => {
                debug_assert_eq!(h.digest, digest(&self.texts[i]));
                std::borrow::Cow::Borrowed(&h.digest)
            }
            None => std::borrow::Cow::Owned(digest(&self.texts[i])),
        }
    }
}

/// The archive columns of an observation's JSON (the rest is skipped, not built).
#[derive(serde::Deserialize)]
struct ObservationHead<'a> {
    #[serde(borrow)]
    key: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    source: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    time_unix_nano: u64,
}

/// The provisional turns (`~trace:…`) the store has aliased to `key`'s turn, read with
/// [`Hot::TurnAliases`].
fn turn_aliases(s: &mut rusqlite::Statement<'_>, key: &EventKey) -> rusqlite::Result<Vec<String>> {
    s.query_map(
        params![key.agent().as_str(), key.session(), key.turn()],
        |r| r.get(0),
    )?
    .collect()
}

/// The stored row of `key` (`text` is its string form).
fn stored_row(db: &Connection, key: &EventKey, text: &str) -> Result<Option<Stored>, StoreError> {
    db.prepare_cached(
        "SELECT revision, record, state, sources, time_ns, archive_len, archive_digest,
                 archive_key
             FROM events WHERE session_id = ?1 AND turn_id = ?2 AND key = ?3",
    )
    .and_then(|mut s| {
        s.query_row(params![key.session(), key.turn(), text], |r| {
            let len: Option<i64> = r.get(5)?;
            let digest: Option<String> = r.get(6)?;
            let key: Option<String> = r.get(7)?;
            Ok(Stored {
                revision: r.get(0)?,
                record: r.get(1)?,
                state: r.get(2)?,
                sources: r.get(3)?,
                time_ns: r.get(4)?,
                implied: len
                    .zip(digest)
                    .map(|(len, digest)| Implied { len, digest, key }),
            })
        })
        .optional()
    })
    .map_err(StoreError::sql("reading an event"))
}

/// The merge state of every observation archived under `key`: the explicit rows and the
/// one the stored row (`stored`, the row of `key`) implies.
fn archived_state(
    db: &Connection,
    key: &EventKey,
    stored: Option<&Stored>,
    precedence: &Precedence,
) -> Result<Merged, StoreError> {
    let mut m = Merged::new(key.clone());
    if let Some((s, i)) = stored.and_then(|s| s.implied.as_ref().map(|i| (s, i))) {
        let json = i.json(&key.to_string(), &s.record)?;
        // An observation of another (provisional) key is not this key's.
        if i.key.is_none() {
            if let Ok(o) = AgentRecord::from_observation_json(&json) {
                m.add_with_digest(&o, i.digest.clone(), precedence);
            }
        }
    }
    let mut stmt = db
        .prepare_cached("SELECT digest, json FROM observations WHERE key = ?1 ORDER BY digest")
        .map_err(StoreError::sql("reading the archive"))?;
    let rows = stmt
        .query_map([key.to_string()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(StoreError::sql("reading the archive"))?;
    for row in rows {
        let (d, json) = row.map_err(StoreError::sql("reading the archive"))?;
        if let Ok(o) = AgentRecord::from_observation_json(&json) {
            m.add_with_digest(&o, d, precedence);
        }
    }
    Ok(m)
}

/// Merges into `m` every explicit archive row under the key text `key`.
fn add_archived(
    db: &Connection,
    key: &str,
    m: &mut Merged,
    precedence: &Precedence,
) -> Result<(), StoreError> {
    let read = StoreError::sql("reading the archive");
    let mut stmt = db
        .prepare_cached("SELECT digest, json FROM observations WHERE key = ?1 ORDER BY digest")
        .map_err(read)?;
    let mut rows = stmt.query([key]).map_err(read)?;
    while let Some(r) = rows.next().map_err(read)? {
        let d: String = r.get(0).map_err(read)?;
        let json: rusqlite::types::ValueRef<'_> = r.get_ref(1).map_err(read)?;
        match json.as_str().ok().map(AgentRecord::from_observation_json) {
            Some(Ok(o)) => {
                m.add_owned(o, d, precedence);
            }
            _ => {
                tracing::warn!(key, digest = %d, "an archived observation does not parse; left out of the key's state")
            }
        }
    }
    Ok(())
}

/// A stored event row, as the write path needs it.
struct Stored {
    revision: i64,
    record: String,
    state: Option<String>,
    sources: String,
    time_ns: i64,
    implied: Option<Implied>,
}

/// The observation an event row implies (`archive_len`, `archive_digest`, `archive_key`): its
/// JSON is the first `len - 1` bytes of the row's `record` followed by `}` (the record's
/// archive form is the record JSON without its trailing merged-only fields), with the key
/// text replaced by `key` when it is set (an observation of the provisional key the record
/// was re-keyed from), with this digest.
#[derive(Debug, Clone)]
struct Implied {
    len: i64,
    digest: String,
    key: Option<String>,
}

/// How the archive form starts: `{"key":"` then the key (only keys that JSON writes
/// verbatim are implied, so the key is the text between the quotes).
const KEY_HEAD: &str = "{\"key\":\"";

/// Whether `o` (an attached observation) is the archive form of the record of key `key`
/// (`head`: that form without its closing `}`), or that form under another key:
/// `Some(None)`, `Some(Some(other key))`, else `None`.
fn archive_form_of(head: &str, key: &str, o: &str) -> Option<Option<String>> {
    if closes(o, head) {
        return Some(None);
    }
    let rest = head.strip_prefix(KEY_HEAD)?.strip_prefix(key)?;
    if !rest.starts_with('"') {
        return None;
    }
    let tail = o.strip_prefix(KEY_HEAD)?;
    let end = tail.find('"')?;
    let (other, o_rest) = tail.split_at(end);
    // Written verbatim by JSON (no escapes, no control characters) and readable as a key,
    // exactly what archiving it explicitly would read.
    if !closes(o_rest, rest)
        || other == key
        || other.bytes().any(|b| b == b'\\' || b < 0x20)
        || other.parse::<EventKey>().is_err()
    {
        return None;
    }
    Some(Some(other.to_string()))
}

/// Whether the stored row `host` (of key text `host_key`) can imply observation `o`: the row is
/// revision 0 of one source and `o` is its archive form, under its key or another one (the
/// same textual rule as [`archive_form_of`], read from the stored record JSON).
fn stored_form_of(host: &Stored, host_key: &str, o: &str) -> Option<Implied> {
    if host.revision != 0 || host.sources.contains(',') || host.state.is_some() {
        return None;
    }
    let tail = o.strip_prefix(KEY_HEAD)?;
    let end = tail.find('"')?;
    let (ko, rest) = tail.split_at(end);
    let body = rest.strip_suffix('}')?;
    if host.sources.is_empty() || !body.ends_with(&format!(",\"source\":\"{}\"", host.sources)) {
        return None;
    }
    if ko.bytes().any(|b| b == b'\\' || b < 0x20) || ko.parse::<EventKey>().is_err() {
        return None;
    }
    let after = host
        .record
        .strip_prefix(KEY_HEAD)?
        .strip_prefix(host_key)?
        .strip_prefix(body)?;
    if !after.starts_with(",\"sources\":") {
        return None;
    }
    Some(Implied {
        len: (KEY_HEAD.len() + host_key.len() + rest.len()) as i64,
        digest: digest(o),
        key: (ko != host_key).then(|| ko.to_string()),
    })
}

impl Implied {
    /// The observation's JSON (`own_key` is the row's key), checked against its digest.
    fn json(&self, own_key: &str, record: &str) -> Result<String, StoreError> {
        let corrupt = |reason: &str| StoreError::Corrupt {
            what: "implied archive row",
            reason: reason.to_string(),
        };
        let n = usize::try_from(self.len)
            .ok()
            .filter(|n| *n >= 2)
            .ok_or_else(|| corrupt("bad length"))?;
        let head = record
            .get(..n - 1)
            .ok_or_else(|| corrupt("length beyond the record"))?;
        let mut json = String::with_capacity(n + 64);
        match &self.key {
            None => json.push_str(head),
            Some(other) => {
                let rest = head
                    .strip_prefix(KEY_HEAD)
                    .and_then(|h| h.strip_prefix(own_key))
                    .filter(|r| r.starts_with('"'))
                    .ok_or_else(|| corrupt("the record does not start with its key"))?;
                json.push_str(KEY_HEAD);
                json.push_str(other);
                json.push_str(rest);
            }
        }
        json.push('}');
        if digest(&json) != self.digest {
            return Err(corrupt("digest mismatch"));
        }
        Ok(json)
    }
}

/// The `sources` column: the comma list of sources, else the source, else `''`.
fn sources_text(rec: &AgentRecord) -> String {
    if rec.sources.is_empty() {
        rec.source
            .map(|s| s.as_str().to_string())
            .unwrap_or_default()
    } else {
        rec.sources
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The `record` column of a record and, within it, the record's archive form
/// ([`AgentRecord::observation_json`]): the archive form is the first `obs_len - 1` bytes of
/// `json` closed by `}` (`obs_len` 0: the record has no archive form).
struct RecordJson {
    json: String,
    obs_len: usize,
}

impl RecordJson {
    /// The archive form without its closing `}` (empty when there is none).
    fn obs_head(&self) -> &str {
        self.json
            .get(..self.obs_len.saturating_sub(1))
            .unwrap_or("")
    }

    /// The archive form as its own string.
    fn obs(&self) -> String {
        if self.obs_len == 0 {
            return String::new();
        }
        let mut s = String::with_capacity(self.obs_len);
        s.push_str(self.obs_head());
        s.push('}');
        s
    }
}

/// Whether `s` is `head` followed by `}`.
fn closes(s: &str, head: &str) -> bool {
    s.len() == head.len() + 1 && s.ends_with('}') && s.starts_with(head)
}

/// The `record` column of `rec` (`key` is its key's text; its attached observations already
/// taken) and, within it, the record's archive form ([`AgentRecord::observation_json`]),
/// written once by [`AgentRecord::to_json_parts_keyed`]: the record JSON is the archive form
/// with the merged-only fields (which serialise last) appended, exactly
/// `serde_json::to_string` of the record.
fn record_json_parts(rec: &AgentRecord, key: &str) -> RecordJson {
    debug_assert!(rec.observations.is_empty());
    let (json, obs_len) = rec.to_json_parts_keyed(key);
    RecordJson { json, obs_len }
}

/// The `record` column: the canonical record as JSON, without attached observations (they are
/// in the archive).
fn record_json(rec: &AgentRecord) -> String {
    if rec.observations.is_empty() {
        rec.to_json()
    } else {
        let mut r = rec.clone();
        r.observations.clear();
        r.to_json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentcol_component::agent::{Agent, Kind, Source};
    use serde_json::json;

    fn record() -> AgentRecord {
        let key = EventKey::new(
            Agent::Codex,
            "t",
            Some("u1"),
            Some("call_1"),
            Kind::ToolCall,
        )
        .unwrap();
        let mut r = AgentRecord::observation(key, "agent.tool.call", Source::Rollout, 7);
        r.set("a", json!({"sources": 1, "x": [1.5, "}"]}));
        r.body = json!("out \"q\" }\n");
        r
    }

    #[test]
    fn the_record_json_is_serde_json_of_the_record() {
        let mut cases = Vec::new();
        let plain = record();
        cases.push(plain.clone());
        let mut merged = plain.clone();
        merged.sources = vec![Source::Rollout];
        merged.revision = Some(0);
        cases.push(merged.clone());
        let mut two = merged.clone();
        two.sources = vec![Source::Otlp, Source::Rollout];
        two.revision = Some(3);
        two.provenance.insert("body".into(), Source::Otlp);
        cases.push(two.clone());
        let mut no_source = two.clone();
        no_source.source = None;
        no_source.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736".into();
        cases.push(no_source);
        let mut tomb = merged.clone();
        tomb.superseded_by = Some(tomb.key.with_turn("u2"));
        cases.push(tomb);
        let mut only_rev = plain.clone();
        only_rev.revision = Some(1);
        cases.push(only_rev);
        for r in cases {
            let key = r.key.to_string();
            let parts = record_json_parts(&r, &key);
            let (json, obs) = (parts.json.clone(), parts.obs());
            let head = parts.obs_head();
            assert_eq!(json, serde_json::to_string(&r).unwrap());
            assert_eq!(obs, r.observation_json());
            assert_eq!(json, record_json(&r));
            // The archive form is a prefix of the record JSON, closed by `}`.
            let imp = Implied {
                len: obs.len() as i64,
                digest: digest(&obs),
                key: None,
            };
            assert_eq!(imp.json(&key, &json).unwrap(), obs);
            assert_eq!(archive_form_of(head, &key, &obs), Some(None));
            // The same observation under the provisional key the record was re-keyed from.
            let mut p = r.clone();
            p.key = p.key.with_turn("~trace:4bf92f3577b34da6a3ce929d0e0e4736");
            let p_key = p.key.to_string();
            let p_obs = p.observation_json();
            assert_eq!(
                archive_form_of(head, &key, &p_obs),
                Some(Some(p_key.clone()))
            );
            let imp = Implied {
                len: obs.len() as i64,
                digest: digest(&p_obs),
                key: Some(p_key),
            };
            assert_eq!(imp.json(&key, &json).unwrap(), p_obs);
            // Anything else is not the record's archive form.
            let mut q = r.clone();
            q.time_unix_nano += 1;
            assert_eq!(archive_form_of(head, &key, &q.observation_json()), None);
            assert_eq!(archive_form_of(head, &key, "{}"), None);
            assert_eq!(archive_form_of(head, &key, ""), None);
        }
    }

    #[test]
    fn an_implied_row_that_does_not_match_its_digest_is_refused() {
        let r = record();
        let parts = record_json_parts(&r, &r.key.to_string());
        let (json, obs) = (parts.json.clone(), parts.obs());
        let bad = Implied {
            len: obs.len() as i64 - 1,
            digest: digest(&obs),
            key: None,
        };
        assert!(bad.json(&r.key.to_string(), &json).is_err());
        let long = Implied {
            len: json.len() as i64 + 5,
            digest: digest(&obs),
            key: None,
        };
        assert!(long.json(&r.key.to_string(), &json).is_err());
        let zero = Implied {
            len: 0,
            digest: digest(&obs),
            key: None,
        };
        assert!(zero.json(&r.key.to_string(), &json).is_err());
        let other = Implied {
            len: obs.len() as i64,
            digest: digest(&obs),
            key: Some(r.key.with_turn("u9").to_string()),
        };
        assert!(other.json(&r.key.to_string(), &json).is_err(), "digest");
        assert!(other.json("v1|not-the-key", &json).is_err(), "own key");
    }
}
