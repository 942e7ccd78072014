//! [`AgentRecord`]: a canonical agent event as a typed value, and its exact encoding as an OTLP
//! log record.
//!
//! Receivers build `AgentRecord`s from whatever their channel speaks and send them as log
//! records ([`AgentRecord::to_log_record`]); `dedupe` and the store read them back
//! ([`AgentRecord::from_log_record`]). One record is either an *observation* (what one channel
//! saw once: `agent.source` set, no revision) or a *merged* event (what `dedupe` emits: the
//! sources that saw it, a revision and per-field provenance). A merged record whose key was
//! provisional and has been resolved is sent once more as a *tombstone* carrying
//! `agent.event.superseded_by`, so stores and backends can drop the provisional row.
//!
//! Reserved attributes (the key, source, sources, revision, provenance, superseded-by,
//! observations and `event.name`) live in typed fields; every other attribute, native ones
//! included, is in [`AgentRecord::attributes`] as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use opentelemetry_proto::tonic::common::v1::{
    any_value::Value as V, AnyValue, ArrayValue, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::json;
use super::value::{any_into_json, any_to_json, hex_id, json_into_any};
use super::{attr, EventKey, KeyError, Source};

/// `event.name` (the OpenTelemetry event-name attribute).
pub const EVENT_NAME: &str = "event.name";

/// How an archive form starts: its key, as a JSON string.
const KEY_HEAD: &str = "{\"key\":\"";

/// A canonical agent event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// The identity.
    pub key: EventKey,
    /// `event.name`: canonical (`agent.tool.call`) or, for native records, the agent's own.
    pub name: String,
    /// The agent's own time of the event, Unix ns (0 when unknown).
    pub time_unix_nano: u64,
    /// W3C trace id, hex (empty when none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trace_id: String,
    /// Span id, hex (empty when none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub span_id: String,
    /// Every non-reserved attribute, canonical and native.
    #[serde(default)]
    pub attributes: BTreeMap<String, Json>,
    /// The payload (prompt text, message text, tool output, …); `null` when none.
    #[serde(default)]
    pub body: Json,
    /// Observations: the channel that saw it. Merged records: the best-ranked source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Merged records: every channel that saw it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
    /// Merged records: 0 first, +1 per further distinct observation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// Merged records: which source supplied each field.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub provenance: BTreeMap<String, Source>,
    /// Tombstones: the key that replaced this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<EventKey>,
    /// Raw observations attached by `dedupe` for the store's archive (JSON text each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observations: Vec<String>,
}

/// Why a log record is not a readable agent record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// No `agent.event.key` attribute: not an agent record.
    #[error("no agent.event.key attribute")]
    NotAgent,
    /// The key or a reserved attribute is unreadable.
    #[error("bad {attribute}: {reason}")]
    Bad {
        /// Which attribute.
        attribute: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn bad(attribute: &'static str, reason: impl ToString) -> RecordError {
    RecordError::Bad {
        attribute,
        reason: reason.to_string(),
    }
}

fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(value),
        ..Default::default()
    }
}

fn observations_kv(values: Vec<AnyValue>) -> KeyValue {
    kv(
        attr::EVENT_OBSERVATIONS,
        AnyValue {
            value: Some(V::ArrayValue(ArrayValue { values })),
        },
    )
}

fn string(s: impl Into<String>) -> AnyValue {
    AnyValue {
        value: Some(V::StringValue(s.into())),
    }
}

fn hex_bytes(s: &str) -> Vec<u8> {
    if s.is_empty() {
        Vec::new()
    } else {
        hex::decode(s).unwrap_or_default()
    }
}

impl AgentRecord {
    /// A new observation from `source`, without attributes or body.
    pub fn observation(
        key: EventKey,
        name: impl Into<String>,
        source: Source,
        time_unix_nano: u64,
    ) -> Self {
        AgentRecord {
            key,
            name: name.into(),
            time_unix_nano,
            trace_id: String::new(),
            span_id: String::new(),
            attributes: BTreeMap::new(),
            body: Json::Null,
            source: Some(source),
            sources: Vec::new(),
            revision: None,
            provenance: BTreeMap::new(),
            superseded_by: None,
            observations: Vec::new(),
        }
    }

    /// Sets an attribute (a `null` value is not stored).
    pub fn set(&mut self, key: &str, value: impl Into<Json>) -> &mut Self {
        let v = value.into();
        if !v.is_null() {
            self.attributes.insert(key.to_string(), v);
        }
        self
    }

    /// An attribute.
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.attributes.get(key)
    }

    /// An attribute as text (strings as they are, numbers written out).
    pub fn text(&self, key: &str) -> Option<String> {
        match self.attributes.get(key)? {
            Json::String(s) => Some(s.clone()),
            Json::Number(n) => Some(n.to_string()),
            Json::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// An attribute as an integer (ints, or numeric strings).
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.attributes.get(key)? {
            Json::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
            Json::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The body as text, when it is a string.
    pub fn body_text(&self) -> Option<&str> {
        self.body.as_str()
    }

    /// Whether this is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        self.superseded_by.is_some()
    }

    /// The observation in its archive form: deterministic JSON (sorted keys), without the
    /// merged-only fields. Its digest identifies the observation.
    pub fn observation_json(&self) -> String {
        self.observation_json_keyed(&self.key.to_string())
    }

    /// [`Self::observation_json`] with the key's text already at hand (`key_text` must be
    /// `self.key.to_string()`).
    pub fn observation_json_keyed(&self, key_text: &str) -> String {
        debug_assert_eq!(key_text, self.key.to_string());
        // The same fields, names, order and skip rules as `AgentRecord`'s own serialisation
        // with the merged-only fields cleared (they are then all skipped), written by
        // `json` (serde_json's text, faster).
        let mut out = String::with_capacity(self.json_estimate(key_text));
        self.write_observation_fields(&mut out, key_text);
        out.push('}');
        out
    }

    /// `serde_json::to_string` of the record, the same text, written faster (see
    /// [`Self::observation_json_keyed`]); `key_text` must be `self.key.to_string()`.
    pub fn to_json_keyed(&self, key_text: &str) -> String {
        self.to_json_parts_keyed(key_text).0
    }

    /// [`Self::to_json_keyed`] and the length of the record's archive form
    /// ([`Self::observation_json_keyed`]) within it: the archive form is the text's first
    /// `len - 1` bytes closed by `}` (the merged-only fields serialise last). One text serves
    /// as both, so a caller that stores the record and compares its archive form writes the
    /// record once.
    pub fn to_json_parts_keyed(&self, key_text: &str) -> (String, usize) {
        debug_assert_eq!(key_text, self.key.to_string());
        let mut out = String::with_capacity(
            self.json_estimate(key_text)
                + self.observations.iter().map(|o| o.len() + 8).sum::<usize>(),
        );
        self.write_observation_fields(&mut out, key_text);
        let archive_len = out.len() + 1;
        self.write_merged_fields(&mut out);
        (out, archive_len)
    }

    /// [`Self::to_json_parts_keyed`] of a record made of one observation, from that
    /// observation's archive form (`observation`, as [`Self::observation_json_keyed`] wrote it,
    /// under the key it came with: this record's or a provisional one it was re-keyed from):
    /// everything after the key is copied instead of written again. `None` when the text does
    /// not start with a plainly written key (the caller then writes the record). The caller
    /// vouches that the rest is this record's; debug builds check it.
    pub fn to_json_parts_from_observation(
        &self,
        key_text: &str,
        observation: &str,
    ) -> Option<(String, usize)> {
        debug_assert_eq!(key_text, self.key.to_string());
        let rest = observation.strip_prefix(KEY_HEAD)?;
        let end = memchr::memchr(b'"', rest.as_bytes())?;
        if rest.as_bytes()[..end].contains(&b'\\') {
            return None;
        }
        let tail = rest.get(end + 1..)?.strip_suffix('}')?;
        let mut out = String::with_capacity(
            observation.len()
                + key_text.len()
                + 64
                + self.observations.iter().map(|o| o.len() + 8).sum::<usize>(),
        );
        out.push_str("{\"key\":");
        json::string(&mut out, key_text);
        out.push_str(tail);
        let archive_len = out.len() + 1;
        self.write_merged_fields(&mut out);
        debug_assert_eq!(
            (out.clone(), archive_len),
            self.to_json_parts_keyed(key_text),
            "an observation that is not the record's"
        );
        Some((out, archive_len))
    }

    /// The merged-only fields, each after a comma, and the closing brace.
    fn write_merged_fields(&self, out: &mut String) {
        if !self.sources.is_empty() {
            out.push_str(",\"sources\":[");
            for (i, s) in self.sources.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json::string(out, s.as_str());
            }
            out.push(']');
        }
        if let Some(r) = self.revision {
            out.push_str(",\"revision\":");
            let _ = write!(out, "{r}");
        }
        if !self.provenance.is_empty() {
            out.push_str(",\"provenance\":{");
            for (i, (f, s)) in self.provenance.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json::string(out, f);
                out.push(':');
                json::string(out, s.as_str());
            }
            out.push('}');
        }
        if let Some(k) = &self.superseded_by {
            out.push_str(",\"superseded_by\":");
            json::string(out, &k.to_string());
        }
        if !self.observations.is_empty() {
            out.push_str(",\"observations\":[");
            for (i, o) in self.observations.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json::string(out, o);
            }
            out.push(']');
        }
        out.push('}');
    }

    /// [`Self::to_json_keyed`] computing the key's text.
    pub fn to_json(&self) -> String {
        self.to_json_keyed(&self.key.to_string())
    }

    /// A generous guess of the length of the archive form.
    fn json_estimate(&self, key_text: &str) -> usize {
        96 + key_text.len()
            + self.name.len()
            + self.trace_id.len()
            + self.span_id.len()
            + self
                .attributes
                .iter()
                .map(|(k, v)| k.len() + 4 + json::estimate(v))
                .sum::<usize>()
            + json::estimate(&self.body)
    }

    /// The archive form without its closing brace.
    fn write_observation_fields(&self, out: &mut String, key_text: &str) {
        out.push_str("{\"key\":");
        json::string(out, key_text);
        out.push_str(",\"name\":");
        json::string(out, &self.name);
        out.push_str(",\"time_unix_nano\":");
        let _ = write!(out, "{}", self.time_unix_nano);
        if !self.trace_id.is_empty() {
            out.push_str(",\"trace_id\":");
            json::string(out, &self.trace_id);
        }
        if !self.span_id.is_empty() {
            out.push_str(",\"span_id\":");
            json::string(out, &self.span_id);
        }
        out.push_str(",\"attributes\":");
        json::object(out, self.attributes.iter());
        out.push_str(",\"body\":");
        json::value(out, &self.body);
        if let Some(s) = self.source {
            out.push_str(",\"source\":");
            json::string(out, s.as_str());
        }
    }

    /// Reads an observation back from its archive form.
    pub fn from_observation_json(s: &str) -> Result<Self, RecordError> {
        serde_json::from_str(s).map_err(|e| bad("observation", e))
    }

    /// The record as an OTLP log record (the exact inverse of [`Self::from_log_record`]).
    /// The same as [`Self::into_log_record`] of a copy (each string is copied once either way).
    pub fn to_log_record(&self) -> LogRecord {
        self.clone().into_log_record()
    }

    /// The reserved attributes up to the attached observations, in wire order, with room for
    /// the rest (`observations` of them attached).
    fn reserved_attributes(&self, key_text: String, observations: usize) -> Vec<KeyValue> {
        let mut attributes =
            Vec::with_capacity(self.attributes.len() + 6 + usize::from(observations > 0));
        attributes.push(kv(EVENT_NAME, string(self.name.clone())));
        attributes.push(kv(attr::EVENT_KEY, string(key_text)));
        if self.key.is_fallback() {
            attributes.push(kv(
                attr::KEY_FALLBACK,
                AnyValue {
                    value: Some(V::BoolValue(true)),
                },
            ));
        }
        if let Some(s) = self.source {
            attributes.push(kv(attr::SOURCE, string(s.as_str())));
        }
        if !self.sources.is_empty() {
            attributes.push(kv(
                attr::EVENT_SOURCES,
                AnyValue {
                    value: Some(V::ArrayValue(ArrayValue {
                        values: self.sources.iter().map(|s| string(s.as_str())).collect(),
                    })),
                },
            ));
        }
        if let Some(r) = self.revision {
            attributes.push(kv(
                attr::EVENT_REVISION,
                AnyValue {
                    value: Some(V::IntValue(i64::try_from(r).unwrap_or(i64::MAX))),
                },
            ));
        }
        if !self.provenance.is_empty() {
            // What `json_into_any` makes of the provenance as a JSON object (sorted fields, each
            // a string), built directly.
            attributes.push(kv(
                attr::EVENT_PROVENANCE,
                AnyValue {
                    value: Some(V::KvlistValue(KeyValueList {
                        values: self
                            .provenance
                            .iter()
                            .map(|(f, s)| kv(f, string(s.as_str())))
                            .collect(),
                    })),
                },
            ));
        }
        if let Some(k) = &self.superseded_by {
            attributes.push(kv(attr::SUPERSEDED_BY, string(k.to_string())));
        }
        attributes
    }

    /// [`Self::to_log_record`], consuming the record: the attached observations (the largest
    /// strings of a merged record) are moved into the log record instead of copied.
    pub fn into_log_record(self) -> LogRecord {
        let key_text = self.key.to_string();
        self.into_log_record_keyed(key_text)
    }

    /// [`Self::into_log_record`] with the key's text already at hand (`key_text` must be
    /// `self.key.to_string()`). The attributes, the body and the name are moved as well.
    pub fn into_log_record_keyed(self, key_text: String) -> LogRecord {
        debug_assert_eq!(key_text, self.key.to_string());
        let mut attributes = self.reserved_attributes(key_text, self.observations.len());
        let trace_id = hex_bytes(&self.trace_id);
        let span_id = hex_bytes(&self.span_id);
        let AgentRecord {
            name,
            time_unix_nano,
            attributes: plain,
            body,
            observations,
            ..
        } = self;
        if !observations.is_empty() {
            attributes.push(observations_kv(
                observations.into_iter().map(string).collect(),
            ));
        }
        for (k, v) in plain {
            attributes.push(KeyValue {
                key: k,
                value: Some(json_into_any(v)),
                ..Default::default()
            });
        }
        LogRecord {
            time_unix_nano,
            observed_time_unix_nano: time_unix_nano,
            body: (!body.is_null()).then(|| json_into_any(body)),
            attributes,
            trace_id,
            span_id,
            event_name: name,
            ..Default::default()
        }
    }

    /// Reads a canonical record. [`RecordError::NotAgent`] when the record has no
    /// `agent.event.key` (plain OTLP, or a native agent record nobody normalised).
    pub fn from_log_record(r: &LogRecord) -> Result<Self, RecordError> {
        let mut rec = Self::read_reserved(r)?;
        rec.copy_plain(r);
        Ok(rec)
    }

    /// [`Self::from_log_record`] of a record the caller is done with: when `take` says so
    /// (it sees the record with its reserved fields read, attributes and body still empty),
    /// the attributes, the body and the attached observations are moved out of `r` instead of
    /// copied, and `r` is left gutted. The result is the same either way. On an error `r` is
    /// untouched, as it is when `take` says no.
    pub fn take_from_log_record(
        r: &mut LogRecord,
        take: impl FnOnce(&AgentRecord) -> bool,
    ) -> Result<Self, RecordError> {
        let mut rec = Self::read_reserved(r)?;
        if !take(&rec) {
            rec.copy_plain(r);
            return Ok(rec);
        }
        let native = std::mem::take(&mut r.attributes);
        // Collected, then built in one go (sorted, the last of equal names kept, as repeated
        // inserts would keep it): cheaper than inserting one by one.
        let mut plain = Vec::with_capacity(native.len());
        for kvp in native {
            match kvp.key.as_str() {
                attr::EVENT_OBSERVATIONS => {
                    // Checked by `read_reserved`: an array of strings.
                    if let Some(V::ArrayValue(a)) = kvp.value.and_then(|v| v.value) {
                        for o in a.values {
                            if let Some(V::StringValue(s)) = o.value {
                                rec.observations.push(s);
                            }
                        }
                    }
                }
                k if is_reserved(k) => {}
                _ => {
                    let j = any_into_json(kvp.value);
                    if !j.is_null() {
                        plain.push((kvp.key, j));
                    }
                }
            }
        }
        rec.attributes = plain.into_iter().collect();
        rec.body = any_into_json(r.body.take());
        Ok(rec)
    }

    /// The plain attributes, the body and the attached observations of `r`, copied.
    fn copy_plain(&mut self, r: &LogRecord) {
        let mut plain = Vec::with_capacity(r.attributes.len());
        for kvp in &r.attributes {
            match kvp.key.as_str() {
                attr::EVENT_OBSERVATIONS => {
                    if let Some(V::ArrayValue(a)) =
                        kvp.value.as_ref().and_then(|v| v.value.as_ref())
                    {
                        for o in &a.values {
                            if let Some(V::StringValue(s)) = &o.value {
                                self.observations.push(s.clone());
                            }
                        }
                    }
                }
                k if is_reserved(k) => {}
                k => {
                    let j = any_to_json(kvp.value.as_ref());
                    if !j.is_null() {
                        plain.push((k.to_string(), j));
                    }
                }
            }
        }
        // As in `take_from_log_record` (`self.attributes` is empty here).
        self.attributes = plain.into_iter().collect();
        self.body = any_to_json(r.body.as_ref());
    }

    /// Reads and checks the reserved attributes (the attached observations are checked, not
    /// read); attributes, body and observations are left empty.
    fn read_reserved(r: &LogRecord) -> Result<Self, RecordError> {
        let mut key = None;
        let mut name = None;
        let mut out = Parts::default();
        fn text<'a>(v: Option<&'a AnyValue>, a: &'static str) -> Result<&'a str, RecordError> {
            match v.and_then(|v| v.value.as_ref()) {
                Some(V::StringValue(s)) => Ok(s),
                _ => Err(bad(a, "not a string")),
            }
        }
        for kvp in &r.attributes {
            let v = kvp.value.as_ref();
            match kvp.key.as_str() {
                attr::EVENT_KEY => {
                    key = Some(
                        text(v, attr::EVENT_KEY)?
                            .parse::<EventKey>()
                            .map_err(|e: KeyError| bad(attr::EVENT_KEY, e))?,
                    )
                }
                EVENT_NAME => name = Some(text(v, EVENT_NAME)?.to_string()),
                attr::KEY_FALLBACK => {}
                attr::SOURCE => {
                    out.source = Some(
                        text(v, attr::SOURCE)?
                            .parse()
                            .map_err(|e: KeyError| bad(attr::SOURCE, e))?,
                    )
                }
                attr::EVENT_SOURCES => {
                    let Json::Array(a) = any_to_json(v) else {
                        return Err(bad(attr::EVENT_SOURCES, "not an array"));
                    };
                    for s in a {
                        let s = s
                            .as_str()
                            .ok_or_else(|| bad(attr::EVENT_SOURCES, "not a string"))?;
                        out.sources.push(
                            s.parse()
                                .map_err(|e: KeyError| bad(attr::EVENT_SOURCES, e))?,
                        );
                    }
                }
                attr::EVENT_REVISION => {
                    out.revision = match v.and_then(|v| v.value.as_ref()) {
                        Some(V::IntValue(i)) if *i >= 0 => Some(*i as u64),
                        _ => return Err(bad(attr::EVENT_REVISION, "not a non-negative int")),
                    }
                }
                attr::EVENT_PROVENANCE => {
                    let Json::Object(m) = any_to_json(v) else {
                        return Err(bad(attr::EVENT_PROVENANCE, "not a kvlist"));
                    };
                    for (f, s) in m {
                        let s = s
                            .as_str()
                            .ok_or_else(|| bad(attr::EVENT_PROVENANCE, "not a string"))?;
                        out.provenance.insert(
                            f,
                            s.parse()
                                .map_err(|e: KeyError| bad(attr::EVENT_PROVENANCE, e))?,
                        );
                    }
                }
                attr::SUPERSEDED_BY => {
                    out.superseded_by = Some(
                        text(v, attr::SUPERSEDED_BY)?
                            .parse()
                            .map_err(|e: KeyError| bad(attr::SUPERSEDED_BY, e))?,
                    )
                }
                attr::EVENT_OBSERVATIONS => {
                    let Some(V::ArrayValue(a)) = v.and_then(|v| v.value.as_ref()) else {
                        return Err(bad(attr::EVENT_OBSERVATIONS, "not an array"));
                    };
                    if a.values
                        .iter()
                        .any(|o| !matches!(o.value, Some(V::StringValue(_))))
                    {
                        return Err(bad(attr::EVENT_OBSERVATIONS, "not a string"));
                    }
                }
                _ => {}
            }
        }
        let key = key.ok_or(RecordError::NotAgent)?;
        let name = name
            .or_else(|| (!r.event_name.is_empty()).then(|| r.event_name.clone()))
            .unwrap_or_else(|| key.kind().event_name().to_string());
        Ok(AgentRecord {
            key,
            name,
            time_unix_nano: if r.time_unix_nano != 0 {
                r.time_unix_nano
            } else {
                r.observed_time_unix_nano
            },
            trace_id: hex_id(&r.trace_id),
            span_id: hex_id(&r.span_id),
            attributes: BTreeMap::new(),
            body: Json::Null,
            source: out.source,
            sources: out.sources,
            revision: out.revision,
            provenance: out.provenance,
            superseded_by: out.superseded_by,
            observations: Vec::new(),
        })
    }
}

/// Whether `name` is one of the attributes [`AgentRecord`] keeps in typed fields (so a native
/// attribute of that name must be renamed before it can sit beside them).
pub fn is_reserved(name: &str) -> bool {
    matches!(
        name,
        attr::EVENT_KEY
            | EVENT_NAME
            | attr::KEY_FALLBACK
            | attr::SOURCE
            | attr::EVENT_SOURCES
            | attr::EVENT_REVISION
            | attr::EVENT_PROVENANCE
            | attr::SUPERSEDED_BY
            | attr::EVENT_OBSERVATIONS
    )
}

/// The reserved fields while a log record is read.
#[derive(Default)]
struct Parts {
    source: Option<Source>,
    sources: Vec<Source>,
    revision: Option<u64>,
    provenance: BTreeMap<String, Source>,
    superseded_by: Option<EventKey>,
}

#[cfg(test)]
mod tests {
    use super::super::{Agent, Kind};
    use super::*;

    fn sample() -> AgentRecord {
        let key = EventKey::new(
            Agent::Codex,
            "t1",
            Some("u1"),
            Some("call_1"),
            Kind::ToolResult,
        )
        .unwrap();
        let mut r = AgentRecord::observation(key, "agent.tool.result", Source::Otlp, 42);
        r.set("gen_ai.tool.name", "exec_command")
            .set("agent.tool.exit_code", 0)
            .set("codex.native", serde_json::json!({"a": [1, 2.5, "x"]}));
        r.body = Json::String("hi\n".into());
        r.trace_id = "0af7651916cd43dd8448eb211c80319c".into();
        r
    }

    #[test]
    fn taking_reads_what_copying_reads_and_leaves_bad_records_alone() {
        let mut merged = sample();
        merged.source = None;
        merged.sources = vec![Source::Otlp, Source::Hook];
        merged.revision = Some(3);
        merged.observations = vec!["{\"a\":1}".into(), "{\"b\":2}".into()];
        for rec in [sample(), merged] {
            let lr = rec.to_log_record();
            for take in [true, false] {
                let mut owned = lr.clone();
                let got = AgentRecord::take_from_log_record(&mut owned, |_| take).unwrap();
                assert_eq!(got, AgentRecord::from_log_record(&lr).unwrap());
                assert_eq!(got, rec);
                assert_eq!(owned == lr, !take);
            }
        }
        let mut bad = sample().to_log_record();
        bad.attributes.push(kv(
            attr::EVENT_OBSERVATIONS,
            AnyValue {
                value: Some(V::ArrayValue(ArrayValue {
                    values: vec![
                        string("ok"),
                        AnyValue {
                            value: Some(V::IntValue(1)),
                        },
                    ],
                })),
            },
        ));
        let before = bad.clone();
        assert_eq!(
            AgentRecord::take_from_log_record(&mut bad, |_| true),
            AgentRecord::from_log_record(&before)
        );
        assert!(AgentRecord::from_log_record(&before).is_err());
        assert_eq!(bad, before);
    }

    #[test]
    fn observations_round_trip_through_log_records() {
        let r = sample();
        let back = AgentRecord::from_log_record(&r.to_log_record()).unwrap();
        assert_eq!(back, r);
        let again = AgentRecord::from_observation_json(&r.observation_json()).unwrap();
        assert_eq!(again, r);
    }

    #[test]
    fn merged_fields_round_trip_too() {
        let mut r = sample();
        r.source = Some(Source::Hook);
        r.sources = vec![Source::Otlp, Source::Hook];
        r.revision = Some(3);
        r.provenance.insert("body".into(), Source::Hook);
        r.observations = vec!["{}".into()];
        r.superseded_by = Some(r.key.with_turn("u2"));
        let back = AgentRecord::from_log_record(&r.to_log_record()).unwrap();
        assert_eq!(back, r);
    }

    /// `r` with the merged-only fields cleared: what its archive form serialises.
    fn without_merged_fields(r: &AgentRecord) -> AgentRecord {
        let mut o = r.clone();
        o.sources.clear();
        o.revision = None;
        o.provenance.clear();
        o.superseded_by = None;
        o.observations.clear();
        o
    }

    #[test]
    fn the_archive_form_is_the_record_without_its_merged_fields() {
        let mut r = sample();
        r.sources = vec![Source::Otlp];
        r.revision = Some(1);
        r.provenance.insert("body".into(), Source::Hook);
        r.superseded_by = Some(r.key.with_turn("u2"));
        r.observations = vec!["{}".into()];
        let mut o = without_merged_fields(&r);
        assert_eq!(r.observation_json(), serde_json::to_string(&o).unwrap());
        r.trace_id.clear();
        r.source = None;
        o.trace_id.clear();
        o.source = None;
        o.span_id = "00f067aa0ba902b7".into();
        r.span_id = o.span_id.clone();
        assert_eq!(r.observation_json(), serde_json::to_string(&o).unwrap());
        // A span id without a trace id or source survives OTLP too.
        assert_eq!(AgentRecord::from_log_record(&r.to_log_record()).unwrap(), r);
    }

    #[test]
    fn the_fast_json_is_serde_json_text() {
        let mut r = sample();
        r.set("quote\"d", "tab\there \u{1} \"q\" back\\slash é 😀");
        r.set(
            "nested",
            serde_json::json!({"z": [null, true, -3, 1.5e-7], "a": {}}),
        );
        let check = |r: &AgentRecord| {
            assert_eq!(r.to_json(), serde_json::to_string(r).unwrap());
            let o = without_merged_fields(r);
            assert_eq!(r.observation_json(), serde_json::to_string(&o).unwrap());
            let key = r.key.to_string();
            let (json, len) = r.to_json_parts_keyed(&key);
            assert_eq!(json, r.to_json());
            assert_eq!(format!("{}}}", &json[..len - 1]), r.observation_json());
        };
        check(&r);
        r.source = None;
        r.trace_id.clear();
        r.span_id = "00f067aa0ba902b7".into();
        r.body = Json::Null;
        check(&r);
        r.sources = vec![Source::Otlp, Source::Hook];
        r.revision = Some(u64::MAX >> 1);
        r.provenance.insert("body".into(), Source::Hook);
        r.provenance.insert("attributes.x".into(), Source::Otlp);
        r.superseded_by = Some(r.key.with_turn("u|2\""));
        r.observations = vec!["{\"a\":\"\\n\"}".into(), String::new()];
        check(&r);
        r.attributes.clear();
        check(&r);
    }

    #[test]
    fn records_without_a_key_are_not_agent_records() {
        let plain = LogRecord::default();
        assert_eq!(
            AgentRecord::from_log_record(&plain),
            Err(RecordError::NotAgent)
        );
        let mut bad_key = sample().to_log_record();
        bad_key.attributes[1].value = Some(string("v1|nope"));
        assert!(matches!(
            AgentRecord::from_log_record(&bad_key),
            Err(RecordError::Bad { .. })
        ));
    }
}
