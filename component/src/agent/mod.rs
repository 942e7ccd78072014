//! Agent event conventions and the identity contract, version 1.
//!
//! Every coding-agent event, whichever channel saw it (OTLP, app-server, hooks, rollout files,
//! transcripts), becomes a log record named by one of [`event`]'s names, carrying the attributes
//! of [`attr`]. Its identity is an [`EventKey`]:
//!
//! ```text
//! v1|<agent>|<session>|<turn>|<item>|<kind>
//! ```
//!
//! built only from natural ids that every channel shares, so two channels that saw the same
//! logical event produce the same key, and `dedupe` can merge them:
//!
//! | logical event | Codex parts | Claude Code parts |
//! | --- | --- | --- |
//! | session start/end | thread id | session id |
//! | turn start/end | thread, turn id | session, prompt id |
//! | user prompt | thread, turn | session, prompt id |
//! | tool call / result | thread, turn, `call_id` | session, prompt id, `tool_use_id` |
//! | assistant message | thread, turn, message item id | session, prompt id, message id |
//! | usage | thread, turn, response id | session, prompt id, request id |
//!
//! | approval request / decision | thread, turn, `call_id` | session, prompt id, `tool_use_id` |
//! | compaction | thread, turn, `pre`/`post` | session, prompt id, `pre`/`post` |
//! | sub-agent start / end | thread, turn, agent id | session, prompt id, agent id |
//! | native record (no canonical meaning) | thread, turn or none, `#<digest>` | session, prompt or none, `#<digest>` |
//!
//! Rules that the table does not show:
//!
//! * For Claude Code the "turn" part holds the `prompt.id`.
//! * The assistant-message item of Claude Code is the API `request_id` (OTLP and the transcript
//!   both carry it; the API message id only the transcript), so all channels agree.
//! * Codex usage comes per response (`response_id`) from the rollout and app-server, and as a
//!   turn total (item `turn`, `agent.usage.scope = turn`) from the `session_task.turn` span;
//!   the two never collide, and readers take the total when present, else the sum.
//! * Absent parts are empty. `|` and `%` inside an id are percent-encoded, so any id
//!   round-trips.
//! * **Fallbacks.** A key built from position or content because a channel lacked an id
//!   (legacy rollouts have no item ids; a record without `call_id`) has an item part starting
//!   with `#` and is marked with [`attr::KEY_FALLBACK`]; such keys never equal an id-based key.
//!   A record that does not even name its session gets the session part `#unknown`.
//! * **Aliases.** A record that knows its turn only by its W3C trace id (Codex OTLP logs, Claude
//!   Code interaction spans) gets the provisional turn part `~trace:<hex>` ([`trace_alias`]). A
//!   record that knows both declares the pair with [`attr::ALIAS_TRACE_ID`]; `dedupe` then
//!   re-keys every provisional record of that session and trace to the real turn and sends a
//!   tombstone ([`attr::SUPERSEDED_BY`]) for a provisional key it had already emitted.
//! * **Native records.** An agent record with no canonical meaning (Codex `codex.sse_event`,
//!   an event name added by a later agent version) is kept as [`Kind::Native`], keyed by the
//!   digest of its content so a re-sent record lands on the same key.
//!
//! The contract is versioned: a change to these rules is `v2`, and stored `v1` keys stay valid.

use std::fmt;
use std::str::FromStr;

mod json;
pub mod merge;
pub mod record;
pub mod value;

pub use merge::{Added, Field, Merged, Precedence};
pub use record::{AgentRecord, RecordError};

/// Canonical `event.name` values.
pub mod event {
    /// A session (Codex thread, Claude Code session) began.
    pub const SESSION_START: &str = "agent.session.start";
    /// A session ended.
    pub const SESSION_END: &str = "agent.session.end";
    /// A turn began.
    pub const TURN_START: &str = "agent.turn.start";
    /// A turn ended.
    pub const TURN_END: &str = "agent.turn.end";
    /// The user's prompt.
    pub const USER_PROMPT: &str = "agent.user_prompt";
    /// An assistant message.
    pub const MESSAGE: &str = "agent.message";
    /// Model reasoning (summary).
    pub const REASONING: &str = "agent.reasoning";
    /// A tool call was requested.
    pub const TOOL_CALL: &str = "agent.tool.call";
    /// A tool call's result.
    pub const TOOL_RESULT: &str = "agent.tool.result";
    /// The agent asked for approval.
    pub const APPROVAL_REQUEST: &str = "agent.approval.request";
    /// An approval was decided.
    pub const APPROVAL_DECISION: &str = "agent.approval.decision";
    /// Token usage of one model response.
    pub const USAGE: &str = "agent.usage";
    /// The context was compacted.
    pub const COMPACTION: &str = "agent.compaction";
    /// A subagent started.
    pub const SUBAGENT_START: &str = "agent.subagent.start";
    /// A subagent ended.
    pub const SUBAGENT_END: &str = "agent.subagent.end";
    /// A hook ran.
    pub const HOOK_RUN: &str = "agent.hook.run";
    /// An error the agent reported.
    pub const ERROR: &str = "agent.error";
    /// The capture state of an agent changed (emitted by `health`).
    pub const CAPTURE_STATE_CHANGED: &str = "agent.capture.state_changed";
}

/// Attribute keys: OpenTelemetry GenAI names where they exist, `agent.*` for the rest.
pub mod attr {
    /// `codex` | `claude_code`.
    pub const AGENT_NAME: &str = "gen_ai.agent.name";
    /// `openai` | `anthropic`.
    pub const PROVIDER_NAME: &str = "gen_ai.provider.name";
    /// The session (Codex thread) id.
    pub const CONVERSATION_ID: &str = "gen_ai.conversation.id";
    /// Tool name.
    pub const TOOL_NAME: &str = "gen_ai.tool.name";
    /// Tool call id (`call_id`, `tool_use_id`).
    pub const TOOL_CALL_ID: &str = "gen_ai.tool.call.id";
    /// Requested model.
    pub const REQUEST_MODEL: &str = "gen_ai.request.model";
    /// Turn id (Codex) or prompt id (Claude Code).
    pub const TURN_ID: &str = "agent.turn.id";
    /// Item id (message, reasoning, …).
    pub const ITEM_ID: &str = "agent.item.id";
    /// Claude Code prompt id.
    pub const PROMPT_ID: &str = "agent.prompt.id";
    /// The channel an observation came from (see [`super::Source`]).
    pub const SOURCE: &str = "agent.source";
    /// The identity ([`super::EventKey`]).
    pub const EVENT_KEY: &str = "agent.event.key";
    /// Every channel that saw the event.
    pub const EVENT_SOURCES: &str = "agent.event.sources";
    /// 0 first, +1 each time a better observation updated the event.
    pub const EVENT_REVISION: &str = "agent.event.revision";
    /// Present (true) when the key was built from position, not ids.
    pub const KEY_FALLBACK: &str = "agent.event.key_fallback";
    /// On a record whose key has a real turn id: the W3C trace id (hex) of that turn, declaring
    /// the alias `~trace:<hex>` → turn id for the session.
    pub const ALIAS_TRACE_ID: &str = "agent.alias.trace_id";
    /// Which channel supplied each field of a merged record (kvlist field → source).
    pub const EVENT_PROVENANCE: &str = "agent.event.provenance";
    /// On a tombstone: the key that replaced this provisional key.
    pub const SUPERSEDED_BY: &str = "agent.event.superseded_by";
    /// The raw observations new in this revision (array of JSON strings), when `dedupe` is
    /// asked to attach them (the store archives them, then drops the attribute).
    pub const EVENT_OBSERVATIONS: &str = "agent.event.observations";
    /// The agent's native event name (`codex.tool_result`, `claude_code.api_request`, …).
    pub const NATIVE_NAME: &str = "agent.native.name";
    /// Tool input (arguments, JSON text).
    pub const TOOL_INPUT: &str = "agent.tool.input";
    /// Tool output text.
    pub const TOOL_OUTPUT: &str = "agent.tool.output";
    /// Tool exit code (int), when known.
    pub const TOOL_EXIT_CODE: &str = "agent.tool.exit_code";
    /// Tool success (bool).
    pub const TOOL_SUCCESS: &str = "agent.tool.success";
    /// Duration in milliseconds (int).
    pub const DURATION_MS: &str = "agent.duration_ms";
    /// Working directory of the session.
    pub const CWD: &str = "agent.cwd";
    /// Git branch of the working directory.
    pub const GIT_BRANCH: &str = "agent.git.branch";
    /// Git commit of the working directory.
    pub const GIT_COMMIT: &str = "agent.git.commit";
    /// GenAI usage: input tokens (Anthropic rule: input + cache read + cache creation).
    pub const USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
    /// GenAI usage: output tokens.
    pub const USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
    /// Cached input tokens read.
    pub const USAGE_CACHE_READ_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
    /// Input tokens written to the cache.
    pub const USAGE_CACHE_CREATION_TOKENS: &str = "gen_ai.usage.cache_creation.input_tokens";
    /// Reasoning output tokens.
    pub const USAGE_REASONING_TOKENS: &str = "agent.usage.reasoning_tokens";
    /// Total tokens.
    pub const USAGE_TOTAL_TOKENS: &str = "agent.usage.total_tokens";
    /// Cost in USD (double).
    pub const USAGE_COST_USD: &str = "agent.usage.cost_usd";
    /// What a usage record covers: `response` (one model response) or `turn` (turn total).
    pub const USAGE_SCOPE: &str = "agent.usage.scope";
}

/// Codex's token-usage field names, the same on every channel that reports them (the hook
/// `token_usage` object, the `codex.turn.token_usage.*` span attributes), with the canonical
/// attribute each maps to.
pub const CODEX_TOKEN_USAGE: [(&str, &str); 6] = [
    ("input_tokens", attr::USAGE_INPUT_TOKENS),
    ("output_tokens", attr::USAGE_OUTPUT_TOKENS),
    ("cached_input_tokens", attr::USAGE_CACHE_READ_TOKENS),
    (
        "cache_write_input_tokens",
        attr::USAGE_CACHE_CREATION_TOKENS,
    ),
    ("reasoning_output_tokens", attr::USAGE_REASONING_TOKENS),
    ("total_tokens", attr::USAGE_TOTAL_TOKENS),
];

/// The agents agentcol knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Agent {
    /// OpenAI Codex CLI.
    Codex,
    /// Anthropic Claude Code.
    ClaudeCode,
}

impl Agent {
    /// `codex` | `claude_code` (the `gen_ai.agent.name` value and the key part).
    pub fn as_str(self) -> &'static str {
        match self {
            Agent::Codex => "codex",
            Agent::ClaudeCode => "claude_code",
        }
    }

    /// `openai` | `anthropic`.
    pub fn provider(self) -> &'static str {
        match self {
            Agent::Codex => "openai",
            Agent::ClaudeCode => "anthropic",
        }
    }
}

impl FromStr for Agent {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        match s {
            "codex" => Ok(Agent::Codex),
            "claude_code" => Ok(Agent::ClaudeCode),
            other => Err(KeyError::UnknownAgent(other.to_string())),
        }
    }
}

/// The channels events arrive on (`agent.source`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The agent's own OTLP export.
    Otlp,
    /// Codex app-server stream.
    AppServer,
    /// Agent hooks.
    Hook,
    /// Codex rollout files.
    Rollout,
    /// Claude Code transcripts.
    Transcript,
}

impl Source {
    /// `otlp`, `app_server`, `hook`, `rollout`, `transcript`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Otlp => "otlp",
            Source::AppServer => "app_server",
            Source::Hook => "hook",
            Source::Rollout => "rollout",
            Source::Transcript => "transcript",
        }
    }
}

impl FromStr for Source {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Ok(match s {
            "otlp" => Source::Otlp,
            "app_server" => Source::AppServer,
            "hook" => Source::Hook,
            "rollout" => Source::Rollout,
            "transcript" => Source::Transcript,
            other => return Err(KeyError::UnknownSource(other.to_string())),
        })
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The logical kinds that have a key (the last key part is the event name without `agent.`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// [`event::SESSION_START`].
    SessionStart,
    /// [`event::SESSION_END`].
    SessionEnd,
    /// [`event::TURN_START`].
    TurnStart,
    /// [`event::TURN_END`].
    TurnEnd,
    /// [`event::USER_PROMPT`].
    UserPrompt,
    /// [`event::MESSAGE`].
    Message,
    /// [`event::REASONING`].
    Reasoning,
    /// [`event::TOOL_CALL`].
    ToolCall,
    /// [`event::TOOL_RESULT`].
    ToolResult,
    /// [`event::USAGE`].
    Usage,
    /// [`event::APPROVAL_REQUEST`].
    ApprovalRequest,
    /// [`event::APPROVAL_DECISION`].
    ApprovalDecision,
    /// [`event::COMPACTION`]: item `pre` or `post` (the hook that saw it).
    Compaction,
    /// [`event::SUBAGENT_START`]: item = the sub-agent id.
    SubagentStart,
    /// [`event::SUBAGENT_END`]: item = the sub-agent id.
    SubagentEnd,
    /// An agent-native record with no canonical meaning (yet): kept as it came, keyed by the
    /// digest of its content (`#<hex>` item, always a fallback key); the turn part is optional.
    Native,
}

/// `event.name`-less key part of [`Kind::Native`] records (their `event.name` is the native one).
pub const NATIVE_KEY_PART: &str = "native";

const KINDS: [(Kind, &str); 16] = [
    (Kind::SessionStart, event::SESSION_START),
    (Kind::SessionEnd, event::SESSION_END),
    (Kind::TurnStart, event::TURN_START),
    (Kind::TurnEnd, event::TURN_END),
    (Kind::UserPrompt, event::USER_PROMPT),
    (Kind::Message, event::MESSAGE),
    (Kind::Reasoning, event::REASONING),
    (Kind::ToolCall, event::TOOL_CALL),
    (Kind::ToolResult, event::TOOL_RESULT),
    (Kind::Usage, event::USAGE),
    (Kind::ApprovalRequest, event::APPROVAL_REQUEST),
    (Kind::ApprovalDecision, event::APPROVAL_DECISION),
    (Kind::Compaction, event::COMPACTION),
    (Kind::SubagentStart, event::SUBAGENT_START),
    (Kind::SubagentEnd, event::SUBAGENT_END),
    (Kind::Native, "agent.native"),
];

impl Kind {
    /// The canonical `event.name`.
    pub fn event_name(self) -> &'static str {
        KINDS
            .iter()
            .find(|(k, _)| *k == self)
            .map(|(_, n)| *n)
            .unwrap_or(event::ERROR)
    }

    /// The key part: the event name without the `agent.` prefix (`tool.call`).
    pub fn key_part(self) -> &'static str {
        let name = self.event_name();
        name.strip_prefix("agent.").unwrap_or(name)
    }

    /// Which parts the key of this kind carries besides the session: (turn, item).
    /// [`Kind::Native`] takes an item and an optional turn (checked separately).
    fn parts(self) -> (bool, bool) {
        match self {
            Kind::SessionStart | Kind::SessionEnd => (false, false),
            Kind::TurnStart | Kind::TurnEnd | Kind::UserPrompt => (true, false),
            Kind::Message
            | Kind::Reasoning
            | Kind::ToolCall
            | Kind::ToolResult
            | Kind::Usage
            | Kind::ApprovalRequest
            | Kind::ApprovalDecision
            | Kind::Compaction
            | Kind::SubagentStart
            | Kind::SubagentEnd
            | Kind::Native => (true, true),
        }
    }

    /// The kind of a canonical `event.name`, if it is one (never [`Kind::Native`]).
    pub fn from_event_name(name: &str) -> Option<Kind> {
        KINDS
            .iter()
            .find(|(k, n)| *n == name && *k != Kind::Native)
            .map(|(k, _)| *k)
    }
}

/// Why a key could not be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not `v1|…` with six parts.
    #[error("not an agent.event.key v1: {0:?}")]
    Malformed(String),
    /// The agent part is not known.
    #[error("unknown agent {0:?}")]
    UnknownAgent(String),
    /// The kind part is not known.
    #[error("unknown event kind {0:?}")]
    UnknownKind(String),
    /// Not one of the channel names.
    #[error("unknown source {0:?}")]
    UnknownSource(String),
    /// A part this kind requires is empty (or one it must not have is set).
    #[error("a {kind} key needs {needs}")]
    Parts {
        /// The kind.
        kind: &'static str,
        /// What was missing or extra.
        needs: &'static str,
    },
}

/// The identity of one logical agent event (contract v1).
///
/// Its parts are shared (`Arc`): a key is cloned many times per event on its way through the
/// pipeline (staged states, emissions, decisions, the store's bookkeeping), and a clone is then
/// a reference count instead of three string copies. Equality, order and hash are those of the
/// parts.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventKey(std::sync::Arc<KeyParts>);

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct KeyParts {
    agent: Agent,
    session: String,
    turn: String,
    item: String,
    kind: Kind,
}

impl fmt::Debug for EventKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventKey")
            .field("agent", &self.0.agent)
            .field("session", &self.0.session)
            .field("turn", &self.0.turn)
            .field("item", &self.0.item)
            .field("kind", &self.0.kind)
            .finish()
    }
}

impl EventKey {
    fn of(parts: KeyParts) -> EventKey {
        EventKey(std::sync::Arc::new(parts))
    }
}

fn check(kind: Kind, session: &str, turn: &str, item: &str) -> Result<(), KeyError> {
    let (needs_turn, needs_item) = kind.parts();
    let name = kind.key_part();
    if session.is_empty() {
        return Err(KeyError::Parts {
            kind: name,
            needs: "a session id",
        });
    }
    if kind == Kind::Native {
        return if item.starts_with('#') && item.len() > 1 {
            Ok(())
        } else {
            Err(KeyError::Parts {
                kind: name,
                needs: "a #digest item",
            })
        };
    }
    if needs_turn == turn.is_empty() {
        return Err(KeyError::Parts {
            kind: name,
            needs: if needs_turn {
                "a turn id"
            } else {
                "no turn id"
            },
        });
    }
    if needs_item == item.is_empty() {
        return Err(KeyError::Parts {
            kind: name,
            needs: if needs_item {
                "an item id"
            } else {
                "no item id"
            },
        });
    }
    Ok(())
}

impl EventKey {
    /// A key from natural ids. `turn` and `item` must be present exactly when the kind's row of
    /// the table says so.
    pub fn new(
        agent: Agent,
        session: &str,
        turn: Option<&str>,
        item: Option<&str>,
        kind: Kind,
    ) -> Result<Self, KeyError> {
        let (turn, item) = (turn.unwrap_or(""), item.unwrap_or(""));
        if item.starts_with('#') {
            return Err(KeyError::Parts {
                kind: kind.key_part(),
                needs: "an item id not starting with #",
            });
        }
        check(kind, session, turn, item)?;
        Ok(EventKey::of(KeyParts {
            agent,
            session: session.to_string(),
            turn: turn.to_string(),
            item: item.to_string(),
            kind,
        }))
    }

    /// A key built from position when the channel lacks the item id: the item part is
    /// `#<position>`. Mark the record with [`attr::KEY_FALLBACK`].
    pub fn fallback(
        agent: Agent,
        session: &str,
        turn: &str,
        kind: Kind,
        position: u64,
    ) -> Result<Self, KeyError> {
        let item = format!("#{position}");
        check(kind, session, turn, &item)?;
        Ok(EventKey::of(KeyParts {
            agent,
            session: session.to_string(),
            turn: turn.to_string(),
            item,
            kind,
        }))
    }

    /// The agent.
    pub fn agent(&self) -> Agent {
        self.0.agent
    }
    /// The session (thread) id.
    pub fn session(&self) -> &str {
        &self.0.session
    }
    /// The turn (Codex) or prompt (Claude Code) id; empty for session events.
    pub fn turn(&self) -> &str {
        &self.0.turn
    }
    /// The item, call, message, response or request id; empty when the kind has none.
    pub fn item(&self) -> &str {
        &self.0.item
    }
    /// The kind.
    pub fn kind(&self) -> Kind {
        self.0.kind
    }
    /// Whether it was built from position (or, for [`Kind::Native`], from a digest).
    pub fn is_fallback(&self) -> bool {
        self.0.item.starts_with('#')
    }

    /// A native record's key: the item is `#<digest>`, the turn may be empty.
    pub fn native(
        agent: Agent,
        session: &str,
        turn: Option<&str>,
        digest: &str,
    ) -> Result<Self, KeyError> {
        let item = format!("#{digest}");
        let turn = turn.unwrap_or("");
        check(Kind::Native, session, turn, &item)?;
        Ok(EventKey::of(KeyParts {
            agent,
            session: session.to_string(),
            turn: turn.to_string(),
            item,
            kind: Kind::Native,
        }))
    }

    /// Whether the turn part is a provisional alias ([`trace_alias`]) still to be resolved.
    pub fn has_alias_turn(&self) -> bool {
        self.0.turn.starts_with(ALIAS_PREFIX)
    }

    /// The same key with another turn part (alias resolution).
    pub fn with_turn(&self, turn: &str) -> EventKey {
        EventKey::of(KeyParts {
            agent: self.0.agent,
            session: self.0.session.clone(),
            turn: turn.to_string(),
            item: self.0.item.clone(),
            kind: self.0.kind,
        })
    }
}

/// Prefix of a provisional turn part: `~trace:<32 hex>`. Natural turn ids (UUIDs) never start
/// with `~`.
pub const ALIAS_PREFIX: &str = "~";

/// The provisional turn part for a record that knows its turn only by its W3C trace id (Codex
/// OTLP logs; Claude Code interaction spans). `dedupe` replaces it with the real turn id once
/// any channel has declared the pair (see [`attr::ALIAS_TRACE_ID`]).
pub fn trace_alias(trace_hex: &str) -> String {
    format!("{ALIAS_PREFIX}trace:{trace_hex}")
}

fn escape(s: &str, out: &mut impl fmt::Write) -> fmt::Result {
    // Runs of plain text are written whole (parts rarely hold `%` or `|`); `memchr2` scans a
    // word at a time, where `str::find` with a char set went character by character and was
    // most of the cost of writing a key's text, which happens several times per observation.
    let mut rest = s;
    while let Some(i) = memchr::memchr2(b'%', b'|', rest.as_bytes()) {
        out.write_str(&rest[..i])?;
        out.write_str(if rest.as_bytes()[i] == b'%' {
            "%25"
        } else {
            "%7C"
        })?;
        rest = &rest[i + 1..];
    }
    out.write_str(rest)
}

fn unescape(s: &str) -> Result<String, ()> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = memchr::memchr(b'%', rest.as_bytes()) {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("%25") => out.push('%'),
            Some("%7C") => out.push('|'),
            _ => return Err(()),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

impl EventKey {
    /// The key's text, the same as `to_string()`, written into one allocation of its size
    /// without the formatting machinery (this runs several times per observation).
    pub fn text(&self) -> String {
        let agent = self.0.agent.as_str();
        let kind = self.0.kind.key_part();
        // Exact unless a part needs escaping (then the string grows once or twice).
        let len = 3
            + agent.len()
            + 3
            + self.0.session.len()
            + self.0.turn.len()
            + self.0.item.len()
            + 1
            + kind.len();
        let mut out = String::with_capacity(len);
        // Writing to a `String` cannot fail.
        let _ = self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut impl fmt::Write) -> fmt::Result {
        out.write_str("v1|")?;
        out.write_str(self.0.agent.as_str())?;
        for part in [&self.0.session, &self.0.turn, &self.0.item] {
            out.write_str("|")?;
            escape(part, out)?;
        }
        out.write_str("|")?;
        out.write_str(self.0.kind.key_part())
    }
}

/// A stack buffer for a key's text, so `to_string` allocates once, at the final size, instead
/// of growing its string through every part.
struct KeyBuf {
    bytes: [u8; 256],
    len: usize,
}

impl fmt::Write for KeyBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.bytes
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl fmt::Display for EventKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = KeyBuf {
            bytes: [0; 256],
            len: 0,
        };
        // Only whole `&str`s went into the buffer, so it is text; a longer key is written
        // part by part.
        match self
            .write_text(&mut buf)
            .ok()
            .and_then(|()| std::str::from_utf8(buf.bytes.get(..buf.len)?).ok())
        {
            Some(text) => f.write_str(text),
            None => self.write_text(f),
        }
    }
}

impl serde::Serialize for EventKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for EventKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for EventKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        // Six `|`-separated parts (`memchr`: a word at a time; keys are parsed several times
        // per event on the store path).
        let malformed = || KeyError::Malformed(s.to_string());
        let mut parts = [""; 6];
        let (mut n, mut start) = (0, 0);
        for i in memchr::memchr_iter(b'|', s.as_bytes()) {
            let Some(slot) = parts.get_mut(n) else {
                return Err(malformed());
            };
            *slot = &s[start..i];
            n += 1;
            start = i + 1;
        }
        if n != 5 {
            return Err(malformed());
        }
        parts[5] = &s[start..];
        let [version, agent, session, turn, item, kind] = parts;
        if version != "v1" {
            return Err(malformed());
        }
        let agent: Agent = agent.parse()?;
        let kind = KINDS
            .iter()
            .map(|(k, _)| *k)
            .find(|k| k.key_part() == kind)
            .ok_or_else(|| KeyError::UnknownKind(kind.to_string()))?;
        let bad = |_| malformed();
        let (session, turn, item) = (
            unescape(session).map_err(bad)?,
            unescape(turn).map_err(bad)?,
            unescape(item).map_err(bad)?,
        );
        check(kind, &session, &turn, &item)?;
        Ok(EventKey::of(KeyParts {
            agent,
            session,
            turn,
            item,
            kind,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREAD: &str = "019a7c3e-5b7d-7e21-9f3a-2c1d4e5f6a7b";
    const TURN: &str = "019a7c3e-6000-7000-8000-000000000001";

    #[test]
    fn keys_have_the_documented_shape() {
        let k = EventKey::new(
            Agent::Codex,
            THREAD,
            Some(TURN),
            Some("call_abc"),
            Kind::ToolCall,
        )
        .unwrap();
        assert_eq!(
            k.to_string(),
            format!("v1|codex|{THREAD}|{TURN}|call_abc|tool.call")
        );
        let s = EventKey::new(Agent::ClaudeCode, "sess", None, None, Kind::SessionStart).unwrap();
        assert_eq!(s.to_string(), "v1|claude_code|sess|||session.start");
        assert_eq!(Kind::UserPrompt.event_name(), "agent.user_prompt");
        assert_eq!(Kind::UserPrompt.key_part(), "user_prompt");
    }

    #[test]
    fn the_same_ids_from_any_channel_give_the_same_key() {
        // A hook's tool_use_id and an OTLP log's call_id name the same call.
        let from_hook = EventKey::new(
            Agent::Codex,
            THREAD,
            Some(TURN),
            Some("call_1"),
            Kind::ToolResult,
        )
        .unwrap();
        let from_otlp: EventKey = from_hook.to_string().parse().unwrap();
        assert_eq!(from_hook, from_otlp);
        let call = EventKey::new(
            Agent::Codex,
            THREAD,
            Some(TURN),
            Some("call_1"),
            Kind::ToolCall,
        )
        .unwrap();
        assert_ne!(call, from_hook, "call and result are two logical events");
    }

    #[test]
    fn every_kind_round_trips_with_awkward_ids() {
        for (kind, _) in KINDS {
            if kind == Kind::Native {
                continue;
            }
            let (needs_turn, needs_item) = kind.parts();
            let k = EventKey::new(
                Agent::ClaudeCode,
                "s|1%2",
                needs_turn.then_some("p|%7C"),
                needs_item.then_some("toolu_|x"),
                kind,
            )
            .unwrap();
            let text = k.to_string();
            assert_eq!(text.split('|').count(), 6, "{text}");
            assert!(text.starts_with("v1|claude_code|s%7C1%252|"), "{text}");
            assert_eq!(text.parse::<EventKey>().unwrap(), k, "{text}");
        }
    }

    proptest::proptest! {
        /// `text`, `to_string` and the escape rule as documented (`%` → `%25`, `|` → `%7C`,
        /// written out character by character here) agree, wherever the special characters
        /// fall in the eight-byte words of the fast check.
        #[test]
        fn the_key_text_is_the_escaped_parts(
            session in "[a-z%|é]{1,40}",
            turn in "[0-9a-f%|-]{1,40}",
            item in "[%|x]{1,20}",
        ) {
            let k = EventKey::new(Agent::Codex, &session, Some(&turn), Some(&item), Kind::ToolCall)
                .unwrap();
            let esc = |p: &str| p.replace('%', "%25").replace('|', "%7C");
            let want = format!("v1|codex|{}|{}|{}|tool.call", esc(&session), esc(&turn), esc(&item));
            proptest::prop_assert_eq!(k.text(), want.clone());
            proptest::prop_assert_eq!(k.to_string(), want);
            proptest::prop_assert_eq!(k.text().parse::<EventKey>().unwrap(), k);
        }
    }

    #[test]
    fn parts_are_enforced_per_kind() {
        assert!(EventKey::new(Agent::Codex, THREAD, None, Some("x"), Kind::ToolCall).is_err());
        assert!(EventKey::new(Agent::Codex, THREAD, Some(TURN), None, Kind::ToolCall).is_err());
        assert!(EventKey::new(Agent::Codex, THREAD, Some(TURN), None, Kind::SessionStart).is_err());
        assert!(EventKey::new(Agent::Codex, "", None, None, Kind::SessionStart).is_err());
        assert!(
            EventKey::new(Agent::Codex, THREAD, Some(TURN), Some("#3"), Kind::Message).is_err()
        );
    }

    #[test]
    fn fallback_keys_are_marked_and_never_collide_with_id_keys() {
        let f = EventKey::fallback(Agent::Codex, THREAD, TURN, Kind::Message, 3).unwrap();
        assert!(f.is_fallback());
        assert_eq!(
            f.to_string(),
            format!("v1|codex|{THREAD}|{TURN}|#3|message")
        );
        assert_eq!(f.to_string().parse::<EventKey>().unwrap(), f);
        let by_id =
            EventKey::new(Agent::Codex, THREAD, Some(TURN), Some("3"), Kind::Message).unwrap();
        assert_ne!(f, by_id);
    }

    #[test]
    fn bad_keys_are_rejected_with_a_reason() {
        for bad in [
            "",
            "v2|codex|a|||session.start",
            "v1|codex|a||session.start",
            "v1|codex|a||||session.start",
            "v1|codex|a|||session.start|",
            "|||||",
            "v1|gemini|a|||session.start",
            "v1|codex|a|||nap",
            "v1|codex|a%zz|||session.start",
            "v1|codex|a|t||tool.call",
        ] {
            assert!(bad.parse::<EventKey>().is_err(), "{bad}");
        }
    }
}
