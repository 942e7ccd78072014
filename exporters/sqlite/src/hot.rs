//! The statements the write path runs per stored event, held for one batch.
//!
//! `Connection::prepare_cached` finds a statement by its SQL text in rusqlite's LRU cache on
//! every call: it hashes the whole text, moves the statement out of the cache and back in when
//! it is dropped, about 1,300 instructions a call, and the store calls it several times per
//! event (the profile in `docs/throughput.md`). A batch's writer takes each of these statements
//! from the cache once, the first time the batch needs it, and gives it back when the batch
//! ends, so the SQL is still compiled once per connection. The derived rows' writes (once per
//! turn, tool call or usage event) are held the same way; statements run once per batch or
//! per session, or only on rare paths, stay with `prepare_cached`.

use std::cell::RefCell;

use rusqlite::{CachedStatement, Connection, Statement};

/// A statement of the per-event write path.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Hot {
    /// [`crate::store`]'s `EVENT_INSERT_NEW`.
    EventInsertNew,
    /// [`crate::store`]'s `EVENT_UPSERT`.
    EventUpsert,
    /// An explicit archive row, unless its (key, digest) is stored.
    ArchiveInsert,
    /// An explicit archive row that an event row now implies.
    ArchiveDelete,
    /// Whether an explicit archive row exists.
    ArchiveProbe,
    /// The real turn of a provisional (`~trace:`) turn.
    AliasTurn,
    /// The provisional turns declared for a real turn.
    TurnAliases,
    /// An alias declaration (once per turn).
    AliasInsert,
    /// The keys and merge states of a turn's rows (once per declared alias).
    TurnRows,
    /// An event's stored record, for a derived row.
    EventRecord,
    /// A `usage` row.
    UsageWrite,
    /// A `tool_calls` row.
    ToolWrite,
    /// A `turns` row.
    TurnWrite,
}

impl Hot {
    /// The number of variants (the last one's index + 1, checked below).
    const COUNT: usize = 13;

    pub(crate) fn sql(self) -> &'static str {
        match self {
            Hot::EventInsertNew => crate::store::EVENT_INSERT_NEW,
            Hot::EventUpsert => crate::store::EVENT_UPSERT,
            Hot::ArchiveInsert => {
                "INSERT OR IGNORE INTO observations (key, digest, source, time_ns, json)
                 VALUES (?1, ?2, ?3, ?4, ?5)"
            }
            Hot::ArchiveDelete => "DELETE FROM observations WHERE key = ?1 AND digest = ?2",
            Hot::ArchiveProbe => "SELECT 1 FROM observations WHERE key = ?1 AND digest = ?2",
            Hot::AliasTurn => {
                "SELECT turn_id FROM aliases WHERE agent = ?1 AND session_id = ?2 AND alias = ?3"
            }
            Hot::TurnAliases => {
                "SELECT alias FROM aliases WHERE agent = ?1 AND session_id = ?2 AND turn_id = ?3"
            }
            Hot::AliasInsert => {
                "INSERT INTO aliases (agent, session_id, alias, turn_id) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (agent, session_id, alias) DO UPDATE SET turn_id = max(turn_id, excluded.turn_id)
                 WHERE excluded.turn_id > turn_id"
            }
            Hot::TurnRows => "SELECT key, state FROM events WHERE session_id = ?1 AND turn_id = ?2",
            Hot::EventRecord => {
                "SELECT record FROM events WHERE session_id = ?1 AND turn_id = ?2 AND key = ?3"
            }
            Hot::UsageWrite => {
                "INSERT OR REPLACE INTO usage (key, session_id, turn_id, item_id, scope, model, input_tokens,
                     output_tokens, cache_read_tokens, cache_creation_tokens, reasoning_tokens,
                     total_tokens, cost_usd)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
            }
            Hot::ToolWrite => {
                "INSERT OR REPLACE INTO tool_calls (session_id, turn_id, call_id, tool_name, input, output,
                     exit_code, success, duration_ms, started_ns, ended_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            }
            Hot::TurnWrite => {
                "INSERT OR REPLACE INTO turns (session_id, turn_id, ordinal, started_ns, ended_ns, prompt,
                     model)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            }
        }
    }
}

// A variant added after `TurnWrite` without raising `COUNT` would index past the slots.
const _: () = assert!(Hot::TurnWrite as usize + 1 == Hot::COUNT);

/// The hot statements of one batch, prepared on first use. Dereferences to its connection,
/// for the statements that are not hot.
pub(crate) struct HotStatements<'c> {
    conn: &'c Connection,
    held: RefCell<[Option<CachedStatement<'c>>; Hot::COUNT]>,
}

impl<'c> std::ops::Deref for HotStatements<'c> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl<'c> HotStatements<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Self {
        HotStatements {
            conn,
            held: RefCell::new(Default::default()),
        }
    }

    /// Runs `f` on statement `which`. `f` must not run another hot statement (it is given a
    /// statement, not the writer, so it cannot).
    pub(crate) fn run<T>(
        &self,
        which: Hot,
        f: impl FnOnce(&mut Statement<'c>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let mut held = self.held.borrow_mut();
        let slot = &mut held[which as usize];
        let stmt = match slot {
            Some(s) => s,
            None => slot.insert(self.conn.prepare_cached(which.sql())?),
        };
        f(stmt)
    }
}
