//! The statements the write path runs per stored event, held for one batch.
//!
//! `Connection::prepare_cached` finds a statement by its SQL text in rusqlite's LRU cache on
//! every call: it hashes the whole text, moves the statement out of the cache and back in when
//! it is dropped, about 1,300 instructions a call, and the store calls it several times per
//! event (the profile in `docs/throughput.md`). A batch's writer takes each of these statements
//! from the cache once, the first time the batch needs it, and gives it back when the batch
//! ends, so the SQL is still compiled once per connection. Statements run less than once per
//! event stay with `prepare_cached`.

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
}

impl Hot {
    const COUNT: usize = 7;

    fn sql(self) -> &'static str {
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
        }
    }
}

/// The hot statements of one batch, prepared on first use.
pub(crate) struct HotStatements<'c> {
    conn: &'c Connection,
    held: RefCell<[Option<CachedStatement<'c>>; Hot::COUNT]>,
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
