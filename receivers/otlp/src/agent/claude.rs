//! Claude Code OTLP (2.1.328): `claude_code.*` events, and the interaction and tool spans.
//!
//! Facts this relies on (docs/agents.md; captures in tests/fixtures/claude):
//! * `event.name` is the bare name (`user_prompt`), the body repeats it prefixed; every record
//!   has `session.id`, records from the prompt on have `prompt.id` (our turn part), and with
//!   traces on, the record's trace id is the interaction's;
//! * `api_request` carries the usage of one model request (`request_id`, tokens, cost);
//!   `assistant_response` its text. The API message id is not in OTLP, so the message key's
//!   item part is the `request_id` (the transcript has both);
//! * tool output travels only on the `claude_code.tool` span (event `tool.output`), which
//!   knows its turn only by trace id; exit codes are not exported at all.

use agentcol_component::agent::value::{attr_bool, attr_f64, attr_i64, attr_text};
use agentcol_component::agent::{attr, Agent, EventKey, Kind};
use agentcol_component::opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::Value as Json;

use super::{span_record, Canonical, Native};

const AGENT: Agent = Agent::ClaudeCode;

/// The canonical records of one Claude Code log record (empty: keep it as a native record).
pub(crate) fn log(n: &Native) -> Vec<Canonical> {
    let Some(session) = n.text("session.id") else {
        return Vec::new();
    };
    let prompt = n.text("prompt.id");
    let tag = |r: &mut Canonical| {
        if let Some(p) = &prompt {
            r.set(attr::PROMPT_ID, p.clone());
        }
    };
    match n.name.as_str() {
        "claude_code.user_prompt" => {
            let (Some(key), Some(start)) = (
                n.key(
                    Some(session.clone()),
                    prompt.clone(),
                    None,
                    Kind::UserPrompt,
                ),
                n.key(Some(session), prompt.clone(), None, Kind::TurnStart),
            ) else {
                return Vec::new();
            };
            let mut r = n.record(key);
            tag(&mut r);
            if let Some(p) = n.text("prompt").or_else(|| n.text("prompt_text")) {
                r.body = Json::String(p);
            }
            let mut s = n.record(start);
            tag(&mut s);
            if !n.trace.is_empty() {
                r.set(attr::ALIAS_TRACE_ID, n.trace.clone());
                s.set(attr::ALIAS_TRACE_ID, n.trace.clone());
            }
            vec![r, s]
        }
        "claude_code.api_request" => {
            let Some(key) = n.key(
                Some(session),
                prompt.clone(),
                n.text("request_id"),
                Kind::Usage,
            ) else {
                return Vec::new();
            };
            let mut r = n.record(key);
            tag(&mut r);
            let a = n.attrs();
            let (input, read, created) = (
                attr_i64(a, "input_tokens").unwrap_or(0),
                attr_i64(a, "cache_read_tokens").unwrap_or(0),
                attr_i64(a, "cache_creation_tokens").unwrap_or(0),
            );
            let output = attr_i64(a, "output_tokens").unwrap_or(0);
            // Anthropic rule: GenAI input tokens include cache reads and cache writes.
            r.set(attr::USAGE_INPUT_TOKENS, input + read + created)
                .set(attr::USAGE_OUTPUT_TOKENS, output)
                .set(attr::USAGE_CACHE_READ_TOKENS, read)
                .set(attr::USAGE_CACHE_CREATION_TOKENS, created)
                .set(attr::USAGE_TOTAL_TOKENS, input + read + created + output)
                .set(attr::USAGE_SCOPE, "response");
            if let Some(c) = attr_f64(a, "cost_usd") {
                r.set(attr::USAGE_COST_USD, c);
            }
            if let Some(m) = n.text("model") {
                r.set(attr::REQUEST_MODEL, m);
            }
            if let Some(d) = attr_i64(a, "duration_ms") {
                r.set(attr::DURATION_MS, d);
            }
            vec![r]
        }
        "claude_code.assistant_response" => {
            let Some(key) = n.key(
                Some(session),
                prompt.clone(),
                n.text("request_id"),
                Kind::Message,
            ) else {
                return Vec::new();
            };
            let mut r = n.record(key);
            tag(&mut r);
            if let Some(t) = n.text("response") {
                r.body = Json::String(t);
            }
            if let Some(m) = n.text("model") {
                r.set(attr::REQUEST_MODEL, m);
            }
            vec![r]
        }
        "claude_code.tool_decision" | "claude_code.tool_result" => {
            let kind = if n.name.ends_with("tool_decision") {
                Kind::ToolCall
            } else {
                Kind::ToolResult
            };
            let Some(key) = n.key(Some(session), prompt.clone(), n.text("tool_use_id"), kind)
            else {
                return Vec::new();
            };
            let mut r = n.record(key);
            tag(&mut r);
            if let Some(t) = n.text("tool_name") {
                r.set(attr::TOOL_NAME, t);
            }
            if let Some(t) = n.text("tool_use_id") {
                r.set(attr::TOOL_CALL_ID, t);
            }
            if let Some(i) = n.text("tool_input").or_else(|| n.text("tool_parameters")) {
                r.set(attr::TOOL_INPUT, i);
            }
            if let Some(d) = n.text("decision") {
                r.set("agent.tool.decision", d);
            }
            if kind == Kind::ToolResult {
                if let Some(s) = attr_bool(n.attrs(), "success") {
                    r.set(attr::TOOL_SUCCESS, s);
                }
                if let Some(d) = attr_i64(n.attrs(), "duration_ms") {
                    r.set(attr::DURATION_MS, d);
                }
            }
            vec![r]
        }
        _ => Vec::new(),
    }
}

/// The canonical records a Claude Code span implies.
pub(crate) fn span(s: &Span) -> Vec<Canonical> {
    let a = &s.attributes;
    let Some(session) =
        attr_text(a, "session.id").or_else(|| attr_text(a, "gen_ai.conversation.id"))
    else {
        return Vec::new();
    };
    let trace = agentcol_component::agent::value::hex_id(&s.trace_id);
    if trace.is_empty() {
        return Vec::new();
    }
    let turn = agentcol_component::agent::trace_alias(&trace);
    let mut out = Vec::new();
    match s.name.as_str() {
        "claude_code.interaction" => {
            if let Ok(key) = EventKey::new(AGENT, &session, Some(&turn), None, Kind::TurnStart) {
                out.push(span_record(AGENT, key, s, s.start_time_unix_nano));
            }
            if let Ok(key) = EventKey::new(AGENT, &session, Some(&turn), None, Kind::TurnEnd) {
                let mut r = span_record(AGENT, key, s, s.end_time_unix_nano);
                let ms = attr_i64(a, "interaction.duration_ms").unwrap_or_else(|| {
                    (s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) / 1_000_000) as i64
                });
                r.set(attr::DURATION_MS, ms);
                out.push(r);
            }
        }
        "claude_code.tool" => {
            let Some(call) =
                attr_text(a, "tool_use_id").or_else(|| attr_text(a, "gen_ai.tool.call.id"))
            else {
                return out;
            };
            let name = attr_text(a, "tool_name").or_else(|| attr_text(a, "gen_ai.tool.name"));
            let input = attr_text(a, "full_command");
            if let Ok(key) =
                EventKey::new(AGENT, &session, Some(&turn), Some(&call), Kind::ToolCall)
            {
                let mut r = span_record(AGENT, key, s, s.start_time_unix_nano);
                r.set(attr::TOOL_CALL_ID, call.clone());
                if let Some(n) = &name {
                    r.set(attr::TOOL_NAME, n.clone());
                }
                if let Some(i) = &input {
                    r.set("agent.tool.command", i.clone());
                }
                out.push(r);
            }
            if let Ok(key) =
                EventKey::new(AGENT, &session, Some(&turn), Some(&call), Kind::ToolResult)
            {
                let mut r = span_record(AGENT, key, s, s.end_time_unix_nano);
                r.set(attr::TOOL_CALL_ID, call);
                if let Some(n) = name {
                    r.set(attr::TOOL_NAME, n);
                }
                if let Some(d) = attr_i64(a, "duration_ms") {
                    r.set(attr::DURATION_MS, d);
                }
                let output = s
                    .events
                    .iter()
                    .filter(|e| e.name == "tool.output")
                    .find_map(|e| attr_text(&e.attributes, "output"));
                if let Some(o) = output {
                    r.body = Json::String(o);
                }
                out.push(r);
            }
        }
        _ => {}
    }
    out
}
