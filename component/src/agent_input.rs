//! Agent records handed over as they are, between components that both work on them.
//!
//! Data between components is OTLP ([`crate::data`]), and for agent events that means: the
//! `otlp` receiver normalises each into an [`AgentRecord`] and writes it as a log record,
//! `dedupe` reads it back, merges, writes its emission as a log record, and the `sqlite` store
//! reads that back again. Each write and read converts every attribute between `AnyValue` and
//! JSON; on the store pipeline that was about a sixth of all the work per event. So a
//! consumer that works on agent records can offer an [`AgentInput`]
//! ([`crate::Consumer::agent_input`]) and take them as records, with the rest of the request
//! as log records beside them ([`AgentLogs`]):
//!
//! * the `sqlite` exporter's input takes any agent records (observations or merged events);
//! * a `dedupe` offers one only when its own emissions go to such an input (`storage` set and
//!   the store directly after it), so a record never has to become a log record again;
//! * a processor that neither buffers nor changes data (`memory_limiter`) passes the offer of
//!   the consumer after it through, behind its own check; a fan-out passes it on when it has
//!   one branch. Everything else offers nothing, and the sender writes OTLP as before.
//!
//! The records handed over are exactly what the receiving component would have read from
//! their log records (`AgentRecord::take_from_log_record` of the log record the sender would
//! have written, which the senders check in debug builds), so the two ways give the same
//! result; `builder/tests/store_property.rs` compares the stores they produce.

use std::fmt;

use async_trait::async_trait;

use crate::agent::{AgentRecord, Source};
use crate::consumer::ConsumeError;
use crate::data::Logs;
use crate::id::ComponentId;

/// A batch for an [`AgentInput`]: agent records, and the request's other log records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentLogs {
    /// Agent records (observations from a receiver; merged events and tombstones from
    /// `dedupe`), in the order of the equivalent OTLP request, each with its key's text.
    pub records: Vec<KeyedRecord>,
    /// Everything else, as it came: taken after `records`. (What is stored, and what `dedupe`
    /// decides, does not depend on the order of a request's records.)
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
    /// What the sender knows of each attached observation (`record.observations`, same
    /// order), so the store does not read it back from its text: one per observation, or
    /// none at all (unknown; the store then reads the texts).
    pub heads: Vec<AttachedHead>,
}

/// An attached observation as its sender knows it: the digest of its text
/// ([`crate::agent::merge::digest`]) and the columns of its archive row, which are the fields
/// its text says (`key`, `source`, `time_unix_nano`). Debug builds of the store check them
/// against the text.
#[derive(Debug, Clone, PartialEq)]
pub struct AttachedHead {
    /// `merge::digest` of the observation's text.
    pub digest: String,
    /// The key its text names (the key it came with, which a re-keyed observation keeps).
    pub key: String,
    /// Its `source`.
    pub source: Option<Source>,
    /// Its `time_unix_nano`.
    pub time_unix_nano: u64,
}

impl KeyedRecord {
    /// A record with no attachment known to be its archive form and no heads.
    pub fn new(record: AgentRecord, key: String) -> KeyedRecord {
        KeyedRecord {
            record,
            key,
            archive: None,
            heads: Vec::new(),
        }
    }
}

impl AgentLogs {
    /// The items of the batch: records plus log records.
    pub fn item_count(&self) -> usize {
        use crate::data::SignalData;
        self.records.len() + self.logs.item_count()
    }

    /// The same batch as OTLP, for a consumer that takes no records.
    pub fn into_logs(self) -> Logs {
        let AgentLogs { records, mut logs } = self;
        if !records.is_empty() {
            let mut more = crate::data::logs_from(
                records
                    .into_iter()
                    .map(|k| k.record.into_log_record_keyed(k.key))
                    .collect(),
            );
            // Records first, as an input takes them.
            more.resource_logs.append(&mut logs.resource_logs);
            logs = more;
        }
        logs
    }
}

/// A consumer's input for agent records (see the module docs). `consume_agent` has the
/// contract of [`crate::Consumer::consume`]: its result is the acknowledgement.
#[async_trait]
pub trait AgentInput: Send + Sync + fmt::Debug {
    /// The component that takes them (a pass-through processor names the one after it).
    fn owner(&self) -> &ComponentId;

    /// Takes `batch`: its records first, in order, then its log records.
    async fn consume_agent(&self, batch: AgentLogs) -> Result<(), ConsumeError>;
}
