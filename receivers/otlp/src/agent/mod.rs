//! Agent OTLP → canonical agent events.
//!
//! Codex and Claude Code export OTLP in their own dialects (DESIGN §2; `docs/agents.md`). This
//! module turns what they send into canonical `AgentRecord` observations with
//! `agent.source = otlp`, so the rest of the pipeline handles one convention:
//!
//! * **Logs** of an agent are replaced in place by their canonical records. The native
//!   attributes stay on the record, the native event name moves to `agent.native.name`, the
//!   payload (prompt, message text, tool output) becomes the body. A native record with no
//!   canonical meaning is kept as an `agent.native` record (keyed by its content digest), so
//!   nothing an agent sent is lost. Log records of anything else pass through untouched.
//! * **Spans** pass through untouched; the few that carry turn facts the logs lack (Codex
//!   `run_turn` and `session_task.turn`: turn ids, times and token totals; Claude Code
//!   `claude_code.interaction` and `claude_code.tool`: turn times and tool output) are *also*
//!   turned into canonical events, sent on the receiver's logs pipeline.
//! * Metrics pass through untouched (their points carry no turn, only the session at best).
//!
//! Ids a record lacks are handled by the identity contract: a record that knows its turn only by
//! its trace id gets the provisional turn `~trace:<id>`, and records that know both declare the
//! alias (`agent.alias.trace_id`), which `dedupe` uses to re-key. A record missing an id its
//! kind needs gets a fallback key (`#<digest>` item, flagged) rather than being dropped.

mod claude;
mod codex;

use agentcol_component::agent::value::{any_into_json, json_into_any};
use agentcol_component::agent::value::{any_to_json, attr_text, hex_id, parse_rfc3339_nanos};
use agentcol_component::agent::AgentRecord;
use agentcol_component::agent::{attr, trace_alias, Agent, EventKey, Kind, Source};
use agentcol_component::opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use agentcol_component::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use agentcol_component::opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, InstrumentationScope, KeyValue,
};
use agentcol_component::opentelemetry_proto::tonic::logs::v1::{
    LogRecord, ResourceLogs, ScopeLogs,
};
use agentcol_component::opentelemetry_proto::tonic::trace::v1::Span;
use agentcol_component::KeyedRecord;
use serde_json::Value as Json;

/// The instrumentation scope of canonical records derived from spans.
pub const DERIVED_SCOPE: &str = "agentcol.agent";

/// What one normalisation pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Agent records turned into canonical events.
    pub canonical: usize,
    /// Agent records kept as `agent.native` events.
    pub native: usize,
    /// Canonical events keyed with a fallback because an id was missing.
    pub fallback: usize,
}

/// Which agent sent a log record, from its scope, resource or event name.
fn log_agent(service: Option<&str>, scope: &str, event_name: Option<&str>) -> Option<Agent> {
    if scope.starts_with("codex_otel")
        || event_name.is_some_and(|n| n.starts_with("codex."))
        || service.is_some_and(|s| s.starts_with("codex"))
    {
        Some(Agent::Codex)
    } else if scope.starts_with("com.anthropic.claude_code")
        || service == Some("claude-code")
        || event_name.is_some_and(|n| n.starts_with("claude_code."))
    {
        Some(Agent::ClaudeCode)
    } else {
        None
    }
}

/// Normalises the agent records of a logs request in place.
pub fn normalize_logs(req: &mut ExportLogsServiceRequest) -> Stats {
    normalize_with(req, |r, out| out.push(r.into_log_record()))
}

/// [`normalize_logs`] for a consumer that takes agent records as they are
/// ([`agentcol_component::AgentInput`]): the canonical records it makes are taken out of the
/// request as records (in input order) instead of written into it as log records; whatever
/// stays (plain logs, records that were canonical already, unknown agent records) stays in
/// place. The records are exactly what reading their log records back would give.
pub fn normalize_logs_into_records(
    req: &mut ExportLogsServiceRequest,
) -> (Vec<KeyedRecord>, Stats) {
    // About one canonical record per log record (a few make two).
    let n = req
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum::<usize>();
    let mut records = Vec::with_capacity(n + n / 4);
    let stats = normalize_with(req, |r, _| records.push(r.into_keyed_record()));
    // Scopes and resources left empty go, as the dedupe and store inputs drop them too.
    for rl in &mut req.resource_logs {
        rl.scope_logs.retain(|s| !s.log_records.is_empty());
    }
    req.resource_logs.retain(|r| !r.scope_logs.is_empty());
    (records, stats)
}

/// The normalisation pass: `emit` places each canonical record made (into the scope's new
/// list of log records, or elsewhere).
fn normalize_with(
    req: &mut ExportLogsServiceRequest,
    mut emit: impl FnMut(Canonical, &mut Vec<LogRecord>),
) -> Stats {
    let mut stats = Stats::default();
    for rl in &mut req.resource_logs {
        let service = rl
            .resource
            .as_ref()
            .and_then(|r| attr_text(&r.attributes, "service.name"));
        for sl in &mut rl.scope_logs {
            let scope = sl.scope.as_ref().map(|s| s.name.as_str()).unwrap_or("");
            let scope = scope.to_string();
            let mut out = Vec::with_capacity(sl.log_records.len());
            for mut rec in std::mem::take(&mut sl.log_records) {
                if agentcol_component::agent::value::attr(&rec.attributes, attr::EVENT_KEY)
                    .is_some()
                {
                    out.push(rec);
                    continue;
                }
                let name = attr_text(&rec.attributes, "event.name");
                match log_agent(service.as_deref(), &scope, name.as_deref()) {
                    Some(agent) if name.is_some() => {
                        let native = Native::from_log(agent, &rec);
                        let records = match agent {
                            Agent::Codex => codex::log(&native),
                            Agent::ClaudeCode => claude::log(&native),
                        };
                        let mut records = if records.is_empty() {
                            let Some(r) = native.as_native_record() else {
                                out.push(rec);
                                continue;
                            };
                            stats.native += 1;
                            vec![r]
                        } else {
                            stats.canonical += 1;
                            records
                        };
                        // The native attributes, moved into the last record that keeps them
                        // (copied into any other).
                        let mut natives = Some(std::mem::take(&mut rec.attributes));
                        let mut wanting = records.iter().filter(|r| r.wants_natives()).count();
                        for r in records.iter_mut().filter(|r| r.wants_natives()) {
                            wanting -= 1;
                            match natives.take() {
                                Some(n) if wanting == 0 => r.fill_natives(n),
                                Some(n) => {
                                    r.fill_natives(n.clone());
                                    natives = Some(n);
                                }
                                None => {}
                            }
                        }
                        for r in records {
                            if r.key.is_fallback() && r.key.kind() != Kind::Native {
                                stats.fallback += 1;
                            }
                            emit(r, &mut out);
                        }
                    }
                    _ => out.push(rec),
                }
            }
            sl.log_records = out;
        }
    }
    stats
}

/// Canonical events derived from agent spans, grouped under their resources, or `None` when
/// the request has no such span.
pub fn events_from_spans(req: &ExportTraceServiceRequest) -> Option<ExportLogsServiceRequest> {
    let mut out = ExportLogsServiceRequest::default();
    for rs in &req.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| attr_text(&r.attributes, "service.name"));
        let mut records: Vec<LogRecord> = Vec::new();
        for ss in &rs.scope_spans {
            let scope = ss.scope.as_ref().map(|s| s.name.as_str()).unwrap_or("");
            for span in &ss.spans {
                let derived = if scope.starts_with("com.anthropic.claude_code")
                    || service.as_deref() == Some("claude-code")
                {
                    claude::span(span)
                } else if service.as_deref().is_some_and(|s| s.starts_with("codex"))
                    || scope.starts_with("codex")
                {
                    codex::span(span)
                } else {
                    Vec::new()
                };
                records.extend(derived.into_iter().map(Canonical::into_log_record));
            }
        }
        if !records.is_empty() {
            out.resource_logs.push(ResourceLogs {
                resource: rs.resource.clone(),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: DERIVED_SCOPE.into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..Default::default()
                    }),
                    log_records: records,
                    schema_url: String::new(),
                }],
                schema_url: rs.schema_url.clone(),
            });
        }
    }
    (!out.resource_logs.is_empty()).then_some(out)
}

/// A canonical observation being built: the native attributes kept as OTLP values (no JSON
/// round trip on this hot path), canonical ones added. [`Canonical::into_log_record`] writes
/// the layout of `AgentRecord::to_log_record`, so `AgentRecord::from_log_record` reads it back.
///
/// Its attributes are, in order: the native record's (`event.name` left out, reserved names
/// prefixed `agent.native.attr.`), the native body as `agent.native.body`, then the canonical
/// ones in the order first set; a canonical attribute of a native one's name takes the place
/// of the first native one of that name. The native ones are not copied when the record is
/// made ([`Native::record`]) but moved in at the end of the pass ([`Canonical::fill_natives`]),
/// so the canonical ones are set on a short list.
#[derive(Clone)]
pub(crate) struct Canonical {
    pub key: EventKey,
    pub name: String,
    pub time_unix_nano: u64,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    /// The canonical attributes until the native ones are filled in, then all of them.
    attrs: Vec<KeyValue>,
    /// The native body, as the attribute `agent.native.body` after the native attributes.
    native_body: Option<AnyValue>,
    natives: Natives,
    pub body: Json,
}

/// Whether a [`Canonical`] keeps its native record's attributes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Natives {
    /// It has none (a record a span or another record implies).
    None,
    /// They are still to be filled in; `no_body_attr`: leaving out any named
    /// `agent.native.body` (an `agent.native` record, whose body is the native body itself).
    Wanted {
        no_body_attr: bool,
    },
    Filled,
}

fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(value),
        ..Default::default()
    }
}

fn string_value(s: impl Into<String>) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s.into())),
    }
}

impl Canonical {
    fn new(key: EventKey, time_unix_nano: u64, capacity: usize) -> Self {
        Canonical {
            name: key.kind().event_name().to_string(),
            key,
            time_unix_nano,
            trace_id: Vec::new(),
            span_id: Vec::new(),
            attrs: Vec::with_capacity(capacity + 8),
            native_body: None,
            natives: Natives::None,
            body: Json::Null,
        }
    }

    /// Whether the native record's attributes are still to be filled in.
    fn wants_natives(&self) -> bool {
        matches!(self.natives, Natives::Wanted { .. })
    }

    /// Puts the native record's attributes (as received) in front of the canonical ones, with
    /// the layout of the type's docs.
    fn fill_natives(&mut self, natives: Vec<KeyValue>) {
        let Natives::Wanted { no_body_attr } = self.natives else {
            return;
        };
        self.natives = Natives::Filled;
        let mut canonical = std::mem::take(&mut self.attrs);
        let mut attrs = Vec::with_capacity(natives.len() + canonical.len() + 1);
        for mut kv in natives {
            if kv.key == "event.name" || (no_body_attr && kv.key == "agent.native.body") {
                continue;
            }
            if agentcol_component::agent::record::is_reserved(&kv.key) {
                kv.key = format!("agent.native.attr.{}", kv.key);
            }
            // A canonical attribute set under this name takes the first native one's place
            // (its value taken: canonical attributes are never without one).
            if let Some(c) = canonical.iter_mut().find(|c| c.key == kv.key) {
                if let Some(v) = c.value.take() {
                    kv.value = Some(v);
                }
            }
            attrs.push(kv);
        }
        if let Some(b) = self.native_body.take() {
            attrs.push(kv("agent.native.body", b));
        }
        attrs.extend(canonical.into_iter().filter(|c| c.value.is_some()));
        self.attrs = attrs;
    }

    /// Sets an attribute, replacing one of the same name (a `null` value sets nothing). `key`
    /// is never a reserved name (those are the record's fields, written by
    /// [`Self::into_log_record`]), so a record's attributes never hold one.
    pub fn set(&mut self, key: &str, value: impl Into<Json>) -> &mut Self {
        debug_assert!(
            !agentcol_component::agent::record::is_reserved(key),
            "{key} is a field, not an attribute"
        );
        let v = value.into();
        if v.is_null() {
            return self;
        }
        let any = json_into_any(v);
        match self.attrs.iter_mut().find(|kv| kv.key == key) {
            Some(kv) => kv.value = Some(any),
            None => self.attrs.push(kv(key, any)),
        }
        self
    }

    /// The record itself, with its key's text: `AgentRecord::take_from_log_record` of
    /// [`Self::into_log_record`], without the log record between (debug builds check it).
    pub fn into_keyed_record(self) -> KeyedRecord {
        debug_assert!(!self.wants_natives(), "native attributes not filled in");
        #[cfg(debug_assertions)]
        let expected = {
            let mut r = self.clone().into_log_record();
            AgentRecord::take_from_log_record(&mut r, |_| true)
        };
        let key = self.key.to_string();
        // Collected, then built in one go, the last of equal names kept: as the log record's
        // reader does. No attribute has a reserved name (native ones were renamed, canonical
        // ones never are), so none is a field the reader would take instead.
        let mut plain = Vec::with_capacity(self.attrs.len());
        for kvp in self.attrs {
            debug_assert!(!agentcol_component::agent::record::is_reserved(&kvp.key));
            let j = any_into_json(kvp.value);
            if !j.is_null() {
                plain.push((kvp.key, j));
            }
        }
        let body = match self.body {
            // A string (most bodies) reads back as itself; anything else as its OTLP form does.
            b @ (Json::String(_) | Json::Null) => b,
            b => any_into_json(Some(json_into_any(b))),
        };
        let mut record =
            AgentRecord::observation(self.key, self.name, Source::Otlp, self.time_unix_nano);
        record.trace_id = hex_id(&self.trace_id);
        record.span_id = hex_id(&self.span_id);
        record.attributes = plain.into_iter().collect();
        record.body = body;
        #[cfg(debug_assertions)]
        debug_assert_eq!(
            Ok(&record),
            expected.as_ref(),
            "the record its log record reads as"
        );
        KeyedRecord::new(record, key)
    }

    /// The wire form (the layout of `AgentRecord::to_log_record`).
    pub fn into_log_record(self) -> LogRecord {
        debug_assert!(!self.wants_natives(), "native attributes not filled in");
        let mut attributes = Vec::with_capacity(self.attrs.len() + 4);
        attributes.push(kv("event.name", string_value(self.name.clone())));
        attributes.push(kv(attr::EVENT_KEY, string_value(self.key.to_string())));
        if self.key.is_fallback() {
            attributes.push(kv(
                attr::KEY_FALLBACK,
                AnyValue {
                    value: Some(any_value::Value::BoolValue(true)),
                },
            ));
        }
        attributes.push(kv(attr::SOURCE, string_value(Source::Otlp.as_str())));
        attributes.extend(self.attrs);
        LogRecord {
            time_unix_nano: self.time_unix_nano,
            observed_time_unix_nano: self.time_unix_nano,
            body: (!self.body.is_null()).then(|| json_into_any(self.body)),
            attributes,
            trace_id: self.trace_id,
            span_id: self.span_id,
            event_name: self.name,
            ..Default::default()
        }
    }
}

/// A native agent log record, read once: its attributes as JSON, its time, ids.
pub(crate) struct Native<'a> {
    pub agent: Agent,
    pub rec: &'a LogRecord,
    /// The native event name, prefixed as the agent's metrics are (`codex.x`, `claude_code.x`).
    pub name: String,
    pub time: u64,
    pub trace: String,
}

impl<'a> Native<'a> {
    fn from_log(agent: Agent, rec: &'a LogRecord) -> Self {
        let raw = attr_text(&rec.attributes, "event.name").unwrap_or_default();
        let name = match agent {
            Agent::ClaudeCode if !raw.starts_with("claude_code.") => format!("claude_code.{raw}"),
            _ => raw,
        };
        let time = attr_text(&rec.attributes, "event.timestamp")
            .and_then(|t| parse_rfc3339_nanos(&t))
            .or((rec.time_unix_nano != 0).then_some(rec.time_unix_nano))
            .unwrap_or(rec.observed_time_unix_nano);
        Native {
            agent,
            rec,
            name,
            time,
            trace: hex_id(&rec.trace_id),
        }
    }

    pub fn text(&self, key: &str) -> Option<String> {
        attr_text(&self.rec.attributes, key)
    }

    pub fn attrs(&self) -> &[KeyValue] {
        &self.rec.attributes
    }

    /// The provisional turn from the trace id, if the record has one.
    pub fn trace_turn(&self) -> Option<String> {
        (!self.trace.is_empty()).then(|| trace_alias(&self.trace))
    }

    /// A canonical observation under `key`, with every native attribute kept (filled in at
    /// the end of the pass, [`Canonical::fill_natives`]).
    pub fn record(&self, key: EventKey) -> Canonical {
        let mut r = Canonical::new(key.clone(), self.time, 0);
        r.trace_id = self.rec.trace_id.clone();
        r.span_id = self.rec.span_id.clone();
        r.natives = Natives::Wanted {
            no_body_attr: false,
        };
        r.native_body = self.rec.body.clone();
        r.set(attr::NATIVE_NAME, self.name.clone());
        common(&mut r, self.agent, key.session());
        if !key.turn().is_empty() && !key.has_alias_turn() {
            r.set(attr::TURN_ID, key.turn().to_string());
        }
        r
    }

    /// A canonical observation under `key` that a native record *implies* (the call a Codex
    /// tool result reports): the canonical attributes only, since the native record itself is
    /// kept whole on the record it maps to.
    pub fn implied(&self, key: EventKey, time: u64) -> Canonical {
        let mut r = Canonical::new(key.clone(), time, 0);
        r.trace_id = self.rec.trace_id.clone();
        r.span_id = self.rec.span_id.clone();
        r.set(attr::NATIVE_NAME, self.name.clone());
        common(&mut r, self.agent, key.session());
        r
    }

    /// The digest of the native record's content (stable across re-sends).
    pub fn digest(&self) -> String {
        use prost::Message;
        let mut r = self.rec.clone();
        r.observed_time_unix_nano = 0;
        format!("{:016x}", xxhash(&r.encode_to_vec()))
    }

    /// The record as an `agent.native` event, for names without a canonical meaning. The
    /// session part is `#unknown` when the record does not say its session.
    pub fn as_native_record(&self) -> Option<Canonical> {
        let session = self
            .text(session_attr(self.agent))
            .unwrap_or_else(|| "#unknown".into());
        // Only a real turn id: a trace id alone may be a trace with no turn (Codex's
        // thread-start trace), which would leave a provisional turn that never resolves. The
        // trace id stays on the record.
        let turn = match self.agent {
            Agent::ClaudeCode => self.text("prompt.id"),
            Agent::Codex => self.text("turn.id"),
        };
        let key = EventKey::native(self.agent, &session, turn.as_deref(), &self.digest()).ok()?;
        let mut r = self.record(key);
        r.name = self.name.clone();
        r.native_body = None;
        r.natives = Natives::Wanted { no_body_attr: true };
        r.body = self
            .rec
            .body
            .as_ref()
            .map(|b| any_to_json(Some(b)))
            .unwrap_or(Json::Null);
        Some(r)
    }

    /// A key with the ids given, or a flagged fallback key (`#<digest>` item) when the item
    /// id the kind needs is missing. `None` without a session or turn.
    pub fn key(
        &self,
        session: Option<String>,
        turn: Option<String>,
        item: Option<String>,
        kind: Kind,
    ) -> Option<EventKey> {
        let (session, turn) = (session?, turn?);
        EventKey::new(self.agent, &session, Some(&turn), item.as_deref(), kind)
            .ok()
            .or_else(|| {
                let position = xxhash(self.digest().as_bytes()) >> 1;
                EventKey::fallback(self.agent, &session, &turn, kind, position).ok()
            })
    }
}

fn xxhash(b: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(b)
}

/// The attribute that names the session in an agent's native records.
pub(crate) fn session_attr(agent: Agent) -> &'static str {
    match agent {
        Agent::Codex => "conversation.id",
        Agent::ClaudeCode => "session.id",
    }
}

/// The attributes every canonical record carries.
pub(crate) fn common(r: &mut Canonical, agent: Agent, session: &str) {
    r.set(attr::AGENT_NAME, agent.as_str());
    r.set(attr::PROVIDER_NAME, agent.provider());
    if !session.starts_with('#') {
        r.set(attr::CONVERSATION_ID, session.to_string());
    }
}

/// A canonical record derived from a span (times in Unix ns).
pub(crate) fn span_record(agent: Agent, key: EventKey, span: &Span, time: u64) -> Canonical {
    let mut r = Canonical::new(key.clone(), time, 6);
    r.trace_id = span.trace_id.clone();
    r.span_id = span.span_id.clone();
    r.set(attr::NATIVE_NAME, span.name.clone());
    common(&mut r, agent, key.session());
    if !key.turn().is_empty() && !key.has_alias_turn() {
        r.set(attr::TURN_ID, key.turn().to_string());
    }
    r
}

/// `Process exited with code N` (Codex unified exec) or `Exit code: N` (older shells).
pub(crate) fn exit_code(output: &str) -> Option<i64> {
    for marker in ["Process exited with code ", "Exit code: ", "exit code "] {
        if let Some(i) = output.find(marker) {
            let rest = &output[i + marker.len()..];
            let digits: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '-')
                .collect();
            if let Ok(n) = digits.parse() {
                return Some(n);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
