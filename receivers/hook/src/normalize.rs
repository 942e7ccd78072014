//! Hook payloads of both agents → canonical agent events (`agent.source = hook`).
//!
//! Codex (0.169) and Claude Code (2.1.328) send nearly the same hook JSON: `session_id`,
//! `hook_event_name`, `cwd`, `transcript_path`, and per event the fields listed in
//! `docs/hooks.md`. The turn part of the key is Codex's `turn_id` and Claude Code's `prompt_id`;
//! the tool call's item part is `tool_use_id`, which both agents set to the id every other
//! channel uses (Codex: the model's `call_id`). So a hook observation lands on the same key as
//! the OTLP, rollout and transcript observations of the same event, and `dedupe` merges them.
//!
//! | hook event | canonical event(s) |
//! | --- | --- |
//! | `SessionStart` / `SessionEnd` | `agent.session.start` / `agent.session.end` |
//! | `UserPromptSubmit` | `agent.user_prompt` (body: the prompt) and `agent.turn.start` |
//! | `PreToolUse` | `agent.tool.call` |
//! | `PostToolUse` / `PostToolUseFailure` | `agent.tool.result` (body: the output or error) |
//! | `PermissionRequest` | `agent.approval.request` (no call id: flagged fallback key) |
//! | `PermissionDenied` | `agent.approval.decision` (`deny`) |
//! | `Stop` / `StopFailure` / Codex `Interrupt` | `agent.turn.end` (`agent.turn.status`) |
//! | `SubagentStart` / `SubagentStop` | `agent.subagent.start` / `agent.subagent.end` |
//! | `PreCompact` / `PostCompact` | `agent.compaction` (item `pre` / `post`) |
//! | Codex `PostModelRequest` | `agent.usage`, scope `request` (no response id: fallback key) |
//! | anything else, or an event missing an id its kind needs | `agent.native` (kept whole) |
//!
//! Every payload field is kept as an attribute `hook.<field>`, except the one that became the
//! body. Hook payloads carry no time; the observation's time is the one the `agentcol hook`
//! shim stamped when the agent ran it (so a re-delivery from the spool is the *same*
//! observation and `dedupe` drops it), else the receiver's clock on arrival.

use agentcol_component::agent::{attr, Agent, AgentRecord, EventKey, Kind, Source};
use serde_json::{Map, Value as Json};

/// Why a body is not a hook payload at all.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON.
    #[error("hook body is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    /// JSON, but not an object.
    #[error("hook body must be a JSON object, got {0}")]
    NotObject(&'static str),
}

/// The canonical records of one hook call.
#[derive(Debug, Default)]
pub struct Normalized {
    /// The observations, in the order they were built.
    pub records: Vec<AgentRecord>,
    /// The payload had no canonical meaning (or lacked an id) and was kept as `agent.native`.
    pub native: bool,
    /// A record was keyed with a fallback because the payload lacks an id (not counting
    /// native records).
    pub fallback: bool,
}

fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Parses and normalises one hook body of `agent`, observed at `time` (Unix ns).
pub fn normalize(agent: Agent, body: &[u8], time: u64) -> Result<Normalized, PayloadError> {
    let value: Json = serde_json::from_slice(body)?;
    let Json::Object(payload) = value else {
        return Err(PayloadError::NotObject(type_name(&value)));
    };
    Ok(Hook {
        agent,
        payload: &payload,
        time,
    }
    .records())
}

struct Hook<'a> {
    agent: Agent,
    payload: &'a Map<String, Json>,
    time: u64,
}

/// Codex's hook-facing aliases of its tools (shell and patch tools are all reported as these),
/// which are not the tool's name on any other channel.
const CODEX_TOOL_ALIASES: [&str; 3] = ["Bash", "Edit", "Write"];

fn xxh64(b: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(b)
}

impl<'a> Hook<'a> {
    fn text(&self, key: &str) -> Option<String> {
        match self.payload.get(key)? {
            Json::String(s) if !s.is_empty() => Some(s.clone()),
            Json::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    fn event(&self) -> String {
        self.text("hook_event_name").unwrap_or_default()
    }

    fn session(&self) -> Option<String> {
        self.text("session_id")
    }

    /// The turn part: Codex `turn_id`, Claude Code `prompt_id`.
    fn turn(&self) -> Option<String> {
        match self.agent {
            Agent::Codex => self.text("turn_id"),
            Agent::ClaudeCode => self.text("prompt_id"),
        }
    }

    fn native_name(&self) -> String {
        let prefix = match self.agent {
            Agent::Codex => "codex",
            Agent::ClaudeCode => "claude_code",
        };
        let event = self.event();
        if event.is_empty() {
            format!("{prefix}.hook")
        } else {
            format!("{prefix}.hook.{event}")
        }
    }

    /// An observation under `key` with the common attributes and every payload field except
    /// `except` (the one that becomes the body).
    fn record(&self, key: EventKey, except: &[&str]) -> AgentRecord {
        let name = match key.kind() {
            Kind::Native => self.native_name(),
            k => k.event_name().to_string(),
        };
        let mut r = AgentRecord::observation(key.clone(), name, Source::Hook, self.time);
        r.set(attr::AGENT_NAME, self.agent.as_str())
            .set(attr::PROVIDER_NAME, self.agent.provider())
            .set(attr::NATIVE_NAME, self.native_name());
        if !key.session().starts_with('#') {
            r.set(attr::CONVERSATION_ID, key.session().to_string());
        }
        if let Some(turn) = self.turn() {
            match self.agent {
                Agent::Codex => r.set(attr::TURN_ID, turn),
                Agent::ClaudeCode => r.set(attr::PROMPT_ID, turn),
            };
        }
        if let Some(cwd) = self.text("cwd") {
            r.set(attr::CWD, cwd);
        }
        if let Some(m) = self.text("model") {
            r.set(attr::REQUEST_MODEL, m);
        }
        for (k, v) in self.payload {
            if !except.contains(&k.as_str()) && !v.is_null() {
                r.set(&format!("hook.{k}"), v.clone());
            }
        }
        r
    }

    fn key(&self, turn: bool, item: Option<&str>, kind: Kind) -> Option<EventKey> {
        let session = self.session()?;
        let turn = if turn { Some(self.turn()?) } else { None };
        EventKey::new(self.agent, &session, turn.as_deref(), item, kind).ok()
    }

    /// A flagged key whose item part is derived from `content` (for events that carry no id).
    fn fallback_key(&self, content: &[u8], kind: Kind) -> Option<EventKey> {
        let (session, turn) = (self.session()?, self.turn()?);
        EventKey::fallback(self.agent, &session, &turn, kind, xxh64(content) >> 1).ok()
    }

    /// The payload as an `agent.native` record: keyed by the digest of its content and time, so
    /// the same hook call re-delivered lands on the same key.
    fn native(&self) -> Option<AgentRecord> {
        let session = self.session().unwrap_or_else(|| "#unknown".into());
        let content = serde_json::to_vec(self.payload).ok()?;
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(&content);
        h.update(&self.time.to_le_bytes());
        let digest = format!("{:032x}", h.digest128());
        let turn = self.turn();
        let key = EventKey::native(self.agent, &session, turn.as_deref(), &digest).ok()?;
        Some(self.record(key, &[]))
    }

    fn tool_common(&self, r: &mut AgentRecord) {
        if let Some(name) = self.text("tool_name") {
            let alias = self.agent == Agent::Codex && CODEX_TOOL_ALIASES.contains(&name.as_str());
            if !alias {
                r.set(attr::TOOL_NAME, name);
            }
        }
        if let Some(id) = self.text("tool_use_id") {
            r.set(attr::TOOL_CALL_ID, id);
        }
        if let Some(input) = self.payload.get("tool_input").filter(|v| !v.is_null()) {
            let text = match input {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            r.set(attr::TOOL_INPUT, text);
        }
        if let Some(d) = self.payload.get("duration_ms").and_then(Json::as_i64) {
            r.set(attr::DURATION_MS, d);
        }
    }

    /// The tool output as text: Codex sends a string; Claude Code an object with `stdout` and
    /// `stderr` (Bash) or tool-specific fields (then its JSON text).
    fn tool_output(&self) -> (Json, bool) {
        match self.payload.get("tool_response") {
            None | Some(Json::Null) => (Json::Null, false),
            Some(Json::String(s)) => (Json::String(s.clone()), true),
            Some(Json::Object(o)) if o.contains_key("stdout") => {
                let out = o.get("stdout").and_then(Json::as_str).unwrap_or_default();
                let err = o.get("stderr").and_then(Json::as_str).unwrap_or_default();
                let text = match (out.is_empty(), err.is_empty()) {
                    (_, true) => out.to_string(),
                    (true, false) => err.to_string(),
                    (false, false) => format!("{out}\n{err}"),
                };
                (Json::String(text), false)
            }
            Some(other) => (Json::String(other.to_string()), false),
        }
    }

    fn records(&self) -> Normalized {
        let mut out = Normalized::default();
        let records = self.canonical(&mut out.fallback);
        match records {
            Some(r) if !r.is_empty() => out.records = r,
            _ => {
                out.fallback = false;
                out.native = true;
                out.records = self.native().into_iter().collect();
            }
        }
        out
    }

    /// The canonical records, or `None` to keep the payload as a native record.
    fn canonical(&self, fallback: &mut bool) -> Option<Vec<AgentRecord>> {
        let event = self.event();
        let tool_id = self.text("tool_use_id");
        Some(match event.as_str() {
            "SessionStart" => {
                let mut r = self.record(self.key(false, None, Kind::SessionStart)?, &[]);
                if let Some(s) = self.text("source") {
                    r.set("agent.session.source", s);
                }
                vec![r]
            }
            "SessionEnd" => {
                let mut r = self.record(self.key(false, None, Kind::SessionEnd)?, &[]);
                if let Some(s) = self.text("reason") {
                    r.set("agent.session.end_reason", s);
                }
                vec![r]
            }
            "UserPromptSubmit" => {
                let mut p = self.record(self.key(true, None, Kind::UserPrompt)?, &["prompt"]);
                if let Some(text) = self.payload.get("prompt").and_then(Json::as_str) {
                    p.body = Json::String(text.to_string());
                }
                let start = self.record(self.key(true, None, Kind::TurnStart)?, &["prompt"]);
                vec![p, start]
            }
            "PreToolUse" => {
                let mut r = self.record(
                    self.key(true, Some(tool_id.as_deref()?), Kind::ToolCall)?,
                    &[],
                );
                self.tool_common(&mut r);
                vec![r]
            }
            "PostToolUse" => {
                let (body, moved) = self.tool_output();
                let except: &[&str] = if moved { &["tool_response"] } else { &[] };
                let mut r = self.record(
                    self.key(true, Some(tool_id.as_deref()?), Kind::ToolResult)?,
                    except,
                );
                self.tool_common(&mut r);
                r.body = body;
                if let Some(Json::Object(o)) = self.payload.get("tool_response") {
                    if let Some(i) = o.get("interrupted").and_then(Json::as_bool) {
                        r.set(attr::TOOL_SUCCESS, !i);
                    }
                }
                vec![r]
            }
            "PostToolUseFailure" => {
                let mut r = self.record(
                    self.key(true, Some(tool_id.as_deref()?), Kind::ToolResult)?,
                    &["error"],
                );
                self.tool_common(&mut r);
                r.set(attr::TOOL_SUCCESS, false);
                r.body = self.payload.get("error").cloned().unwrap_or(Json::Null);
                vec![r]
            }
            "PermissionRequest" => {
                // No call id in either agent: the request is identified by what it asks for.
                let what = serde_json::to_vec(&(
                    self.payload.get("tool_name"),
                    self.payload.get("tool_input"),
                ))
                .ok()?;
                let mut r = self.record(self.fallback_key(&what, Kind::ApprovalRequest)?, &[]);
                *fallback = true;
                self.tool_common(&mut r);
                vec![r]
            }
            "PermissionDenied" => {
                let mut r = self.record(
                    self.key(true, Some(tool_id.as_deref()?), Kind::ApprovalDecision)?,
                    &[],
                );
                self.tool_common(&mut r);
                r.set("agent.approval.decision", "deny");
                vec![r]
            }
            "Stop" | "StopFailure" | "Interrupt" => {
                let mut r = self.record(self.key(true, None, Kind::TurnEnd)?, &[]);
                let status = match event.as_str() {
                    "Stop" => "completed",
                    "StopFailure" => "failed",
                    _ => "interrupted",
                };
                r.set("agent.turn.status", status);
                vec![r]
            }
            "SubagentStart" | "SubagentStop" => {
                let kind = if event == "SubagentStart" {
                    Kind::SubagentStart
                } else {
                    Kind::SubagentEnd
                };
                let id = self.text("agent_id")?;
                let mut r = self.record(self.key(true, Some(&id), kind)?, &[]);
                if let Some(t) = self.text("agent_type") {
                    r.set("agent.subagent.type", t);
                }
                vec![r]
            }
            "PreCompact" | "PostCompact" => {
                let phase = if event == "PreCompact" { "pre" } else { "post" };
                let mut r = self.record(
                    self.key(true, Some(phase), Kind::Compaction)?,
                    &["compact_summary"],
                );
                if let Some(t) = self.text("trigger") {
                    r.set("agent.compaction.trigger", t);
                }
                if let Some(s) = self.payload.get("compact_summary").and_then(Json::as_str) {
                    r.body = Json::String(s.to_string());
                }
                vec![r]
            }
            "PostModelRequest" if self.agent == Agent::Codex => {
                let usage = self.payload.get("token_usage").and_then(Json::as_object)?;
                // One report per model request, without a response id: keyed by its content and
                // time, scope `request` (readers never add it to the per-response rows).
                let mut what = serde_json::to_vec(usage).ok()?;
                what.extend_from_slice(&self.time.to_le_bytes());
                let mut r = self.record(self.fallback_key(&what, Kind::Usage)?, &[]);
                *fallback = true;
                let get = |k: &str| usage.get(k).and_then(Json::as_i64);
                r.set(attr::USAGE_SCOPE, "request");
                for (k, name) in agentcol_component::agent::CODEX_TOKEN_USAGE {
                    if let Some(v) = get(k) {
                        r.set(name, v);
                    }
                }
                vec![r]
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests;
