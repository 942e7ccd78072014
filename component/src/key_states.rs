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
//! The same adjacency lets `dedupe` hand the store its emissions as records
//! ([`crate::agent_input`]).

use std::fmt;

use crate::agent::{EventKey, Merged};
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
