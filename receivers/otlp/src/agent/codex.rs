//! Codex CLI OTLP (0.169): `codex.*` log events and the turn spans.
//!
//! Facts this relies on (docs/agents.md; captures in tests/fixtures/codex):
//! * every log attribute may arrive as a string, numbers included; `timeUnixNano` is 0, so the
//!   time is `event.timestamp`;
//! * `conversation.id` is the thread id; log records know their turn only through their trace
//!   id (the turn's trace), except `codex.agent_response`, which has `turn.id` and `item.id`;
//! * the tool call id is the model's `call_id`, shared with every other channel;
//! * spans `run_turn` (`conversation.id`, `turn.id`) bound the turn, and `session_task.turn`
//!   carries the turn's token totals (`codex.turn.token_usage.*`).

use agentcol_component::agent::value::{attr_bool, attr_i64, attr_text};
use agentcol_component::agent::{attr, Agent, EventKey, Kind};
use agentcol_component::opentelemetry_proto::tonic::common::v1::any_value::Value as V;
use agentcol_component::opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::Value as Json;

use super::{exit_code, span_record, Canonical, Native};

const AGENT: Agent = Agent::Codex;

/// The canonical records of one Codex log record (empty: keep it as a native record).
pub(crate) fn log(n: &Native) -> Vec<Canonical> {
    let Some(thread) = n.text("conversation.id") else {
        return Vec::new();
    };
    let turn = n.text("turn.id").or_else(|| n.trace_turn());
    match n.name.as_str() {
        "codex.conversation_starts" => {
            let Ok(key) = EventKey::new(AGENT, &thread, None, None, Kind::SessionStart) else {
                return Vec::new();
            };
            let mut r = n.record(key);
            if let Some(m) = n.text("model") {
                r.set(attr::REQUEST_MODEL, m);
            }
            vec![r]
        }
        "codex.user_prompt" => {
            let Some(key) = n.key(Some(thread), turn, None, Kind::UserPrompt).or(None) else {
                return Vec::new();
            };
            let mut r = n.record(key);
            if let Some(p) = n.text("prompt") {
                r.body = Json::String(p);
            }
            vec![r]
        }
        "codex.tool_decision" => {
            let Some(key) = n.key(Some(thread), turn, n.text("call_id"), Kind::ToolCall) else {
                return Vec::new();
            };
            let mut r = n.record(key);
            tool_common(n, &mut r);
            if let Some(d) = n.text("decision") {
                r.set("agent.tool.decision", d);
            }
            vec![r]
        }
        "codex.tool_result" => {
            let call = n.text("call_id");
            let (Some(call_key), Some(result_key)) = (
                n.key(
                    Some(thread.clone()),
                    turn.clone(),
                    call.clone(),
                    Kind::ToolCall,
                ),
                n.key(Some(thread), turn, call, Kind::ToolResult),
            ) else {
                return Vec::new();
            };
            let duration = attr_i64(n.attrs(), "duration_ms");
            // The call, as far as the result tells it: its input and when it began.
            let began = n
                .time
                .saturating_sub(duration.unwrap_or(0).max(0) as u64 * 1_000_000);
            let mut c = n.implied(call_key, began);
            tool_common(n, &mut c);
            let mut r = n.record(result_key);
            tool_common(n, &mut r);
            if let Some(out) = n.text("output") {
                if let Some(code) = exit_code(&out) {
                    r.set(attr::TOOL_EXIT_CODE, code);
                }
                r.body = Json::String(out);
            }
            if let Some(s) = attr_bool(n.attrs(), "success") {
                r.set(attr::TOOL_SUCCESS, s);
            }
            if let Some(d) = duration {
                r.set(attr::DURATION_MS, d);
            }
            vec![c, r]
        }
        "codex.agent_response" => {
            let Some(key) = n.key(Some(thread), turn, n.text("item.id"), Kind::Message) else {
                return Vec::new();
            };
            let mut r = n.record(key);
            if let Some(t) = n.text("response") {
                r.body = Json::String(t);
            }
            if n.text("turn.id").is_some() && !n.trace.is_empty() {
                r.set(attr::ALIAS_TRACE_ID, n.trace.clone());
            }
            vec![r]
        }
        _ => Vec::new(),
    }
}

fn tool_common(n: &Native, r: &mut Canonical) {
    if let Some(t) = n.text("tool_name") {
        r.set(attr::TOOL_NAME, t);
    }
    if let Some(c) = n.text("call_id") {
        r.set(attr::TOOL_CALL_ID, c);
    }
    if let Some(a) = n.text("arguments") {
        r.set(attr::TOOL_INPUT, a);
    }
}

/// The canonical records a Codex span implies.
pub(crate) fn span(s: &Span) -> Vec<Canonical> {
    let thread = attr_text(&s.attributes, "conversation.id").or_else(|| {
        // `thread.id` is usually the OS thread number; on a few spans a second `thread.id`
        // attribute (the same key twice) holds the conversation id.
        s.attributes
            .iter()
            .filter(|kv| kv.key == "thread.id")
            .filter_map(
                |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(V::StringValue(t)) if t.len() >= 32 && t.contains('-') => Some(t.clone()),
                    _ => None,
                },
            )
            .next()
    });
    let (Some(thread), Some(turn)) = (thread, attr_text(&s.attributes, "turn.id")) else {
        return Vec::new();
    };
    let trace = agentcol_component::agent::value::hex_id(&s.trace_id);
    let mut out = Vec::new();
    match s.name.as_str() {
        "run_turn" => {
            if let Ok(key) = EventKey::new(AGENT, &thread, Some(&turn), None, Kind::TurnStart) {
                let mut r = span_record(AGENT, key, s, s.start_time_unix_nano);
                r.set(attr::ALIAS_TRACE_ID, trace.clone());
                out.push(r);
            }
            if let Ok(key) = EventKey::new(AGENT, &thread, Some(&turn), None, Kind::TurnEnd) {
                let mut r = span_record(AGENT, key, s, s.end_time_unix_nano);
                let ms = s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) / 1_000_000;
                r.set(attr::DURATION_MS, ms);
                r.set(attr::ALIAS_TRACE_ID, trace);
                out.push(r);
            }
        }
        "session_task.turn" => {
            let Ok(key) = EventKey::new(AGENT, &thread, Some(&turn), Some("turn"), Kind::Usage)
            else {
                return out;
            };
            let a = &s.attributes;
            let get = |k: &str| attr_i64(a, &format!("codex.turn.token_usage.{k}"));
            if get("total_tokens").is_none() && get("input_tokens").is_none() {
                return out;
            }
            let mut r = span_record(AGENT, key, s, s.end_time_unix_nano);
            r.set(attr::USAGE_SCOPE, "turn");
            for (key, name) in agentcol_component::agent::CODEX_TOKEN_USAGE {
                if let Some(v) = get(key) {
                    r.set(name, v);
                }
            }
            if let Some(m) = attr_text(a, "model") {
                r.set(attr::REQUEST_MODEL, m);
            }
            r.set(attr::ALIAS_TRACE_ID, trace);
            out.push(r);
        }
        _ => {}
    }
    out
}
