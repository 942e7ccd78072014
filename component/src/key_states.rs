//! Key states held by a store: what lets a `dedupe` processor keep no second copy of the events
//! its store already holds.
//!
//! A `dedupe` in front of a store (settle window 0, observations attached) remembers per key the
//! merged event and the revision it last emitted. The store keeps exactly that: the row of the
//! key (its revision) and the archive of every observation merged into it. Keeping it twice
//! (`dedupe`'s state file beside the store) writes each event's content twice and fsyncs two
//! files per request. So a store can offer its rows as [`KeyStates`], through the consumer
//! that is its input ([`crate::Consumer::key_states`]), and a `dedupe` configured with
//! `storage: <exporter id>` reads key states from it instead of its own file.
//!
//! That is only sound when the store commits what `dedupe` sent before `consume` returns, and
//! when nothing stands between them that acknowledges earlier (a buffering processor) or sends
//! elsewhere too (a fan-out): so only a consumer that *is* the store's input offers it, and a
//! fan-out or another processor offers nothing.
//!
//! The same adjacency lets the store take `dedupe`'s emissions as they are made, as
//! [`AgentRecord`]s ([`AgentInput`], through [`crate::Consumer::agent_input`]): the OTLP form
//! between the two exists only to be decoded again at once, and writing and re-reading it
//! (every attribute converted to `AnyValue` and back) costs as much as a fifth of the store
//! pipeline's work per event. The records handed over are exactly what the store would have
//! read back from their log records (`AgentRecord::from_log_record` of
//! `AgentRecord::into_log_record`, which `dedupe` checks in debug builds), so both inputs
//! give the same rows.

use std::fmt;

use async_trait::async_trait;

use crate::agent::{AgentRecord, EventKey, Merged};
use crate::consumer::ConsumeError;
use crate::data::Logs;
use crate::id::ComponentId;

/// A key's state as a store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredKey {
    /// Every distinct observation of the key the store has archived (under the key, or under
    /// a provisional key resolved to it), merged.
    pub merged: Merged,
    /// The revision of the key's stored row: the last one its `dedupe` emitted.
    pub revision: u64,
}

/// Why a store could not read a key's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct KeyStatesError {
    /// What went wrong (no key contents, no secrets).
    pub reason: String,
    /// Whether trying again later can help (a lock, an I/O error, the store not open yet).
    pub retryable: bool,
}

/// A store's rows, read as key states (see the module docs).
pub trait KeyStates: Send + Sync + fmt::Debug {
    /// The component that holds them (the exporter's id).
    fn owner(&self) -> &ComponentId;

    /// The state of `key` (`text` is its string form), or `None` when the store holds no row
    /// of it. Must see everything the store has committed.
    fn load(&self, key: &EventKey, text: &str) -> Result<Option<StoredKey>, KeyStatesError>;
}

/// A batch for a store's [`AgentInput`]: agent records as `dedupe` emits them, and the log
/// records it passed through.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentLogs {
    /// Merged events and tombstones, in the order of the equivalent OTLP batch, each with its
    /// key's text (`record.key.to_string()`, already written by the sender).
    pub records: Vec<KeyedRecord>,
    /// Everything else, as it came. Holds no agent record that is merged or a tombstone (a
    /// sender with such records to pass on sends OTLP instead), so its order relative to
    /// `records` changes nothing stored.
    pub logs: Logs,
}

/// An agent record with its key's text.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedRecord {
    /// The record.
    pub record: AgentRecord,
    /// `record.key.to_string()`.
    pub key: String,
    /// The index of an attached observation (`record.observations`) that the record is made
    /// of alone (its first emission, revision 0): its text is the record's archive form under
    /// the key the observation came with, so the store copies it instead of writing the record
    /// again ([`AgentRecord::to_json_parts_from_observation`]).
    pub archive: Option<usize>,
}

impl AgentLogs {
    /// The items of the batch: records plus log records.
    pub fn item_count(&self) -> usize {
        use crate::data::SignalData;
        self.records.len() + self.logs.item_count()
    }

    /// The same batch as OTLP: what a consumer that is not a store receives.
    pub fn into_logs(self) -> Logs {
        let AgentLogs { records, mut logs } = self;
        if !records.is_empty() {
            let mut more = crate::data::logs_from(
                records
                    .into_iter()
                    .map(|k| k.record.into_log_record_keyed(k.key))
                    .collect(),
            );
            // Records first, as a store applies them.
            more.resource_logs.append(&mut logs.resource_logs);
            logs = more;
        }
        logs
    }
}

/// A store's input for agent records (see the module docs). `consume_agent` has the contract
/// of [`crate::Consumer::consume`]: it resolves once the batch is committed.
#[async_trait]
pub trait AgentInput: Send + Sync + fmt::Debug {
    /// The component that stores them (the exporter's id).
    fn owner(&self) -> &ComponentId;

    /// Stores `batch`: its records first, in order, then its log records.
    async fn consume_agent(&self, batch: AgentLogs) -> Result<(), ConsumeError>;
}
