//! Read-only queries over the store: what `agentcol sessions list|show|replay|export` print.
//!
//! A [`Reader`] opens the file with `SQLITE_OPEN_READ_ONLY` (it never creates, migrates or
//! locks it for writing, so it can run next to a live collector) and refuses files that are
//! missing, not agentcol stores, or at another schema version, with one clear error.
//!
//! [`Reader::replay`] prints a transcript from the store alone (no agent file needed): header,
//! then every turn in order with its prompt, assistant messages, reasoning, tool calls with
//! input, exit code, duration and output, approvals, other canonical events, and one usage line
//! per turn. Agent-native records (`agent.native`) are only counted.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use agentcol_component::agent::{attr, AgentRecord, Kind, ALIAS_PREFIX};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::derive::body_text;
use crate::error::StoreError;
use crate::lenient;
use crate::schema;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// Opening or reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No session has this id or id prefix.
    #[error("no session matches {0:?}")]
    NotFound(String),
    /// Several sessions start with this prefix.
    #[error("{prefix:?} matches {} sessions ({}); give more of the id", candidates.len(), candidates.join(", "))]
    Ambiguous {
        /// What was asked.
        prefix: String,
        /// Some of the matching ids.
        candidates: Vec<String>,
    },
    /// Writing the output failed.
    #[error("cannot write the export: {0}")]
    Write(#[source] std::io::Error),
}

impl From<rusqlite::Error> for QueryError {
    fn from(source: rusqlite::Error) -> Self {
        QueryError::Store(StoreError::Sqlite {
            context: "querying the store",
            source,
        })
    }
}

/// Which sessions [`Reader::list_sessions`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Only this agent (`codex`, `claude_code`).
    pub agent: Option<String>,
    /// Only sessions active at or after this time (their end, or latest event, is not
    /// earlier), Unix ns.
    pub since_ns: Option<u64>,
    /// Only sessions whose working directory starts with this.
    pub cwd: Option<String>,
}

/// A `sessions` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    /// Session (Codex thread) id.
    pub session_id: String,
    /// `codex` | `claude_code`.
    pub agent: String,
    /// Working directory.
    pub cwd: Option<String>,
    /// Git branch.
    pub git_branch: Option<String>,
    /// Git commit.
    pub git_commit: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Earliest event, Unix ns.
    pub started_ns: Option<u64>,
    /// Latest event, Unix ns.
    pub ended_ns: Option<u64>,
    /// `ended` | `active`.
    pub status: String,
    /// Resolved turns.
    pub turns: u64,
    /// Events.
    pub events: u64,
}

impl Session {
    /// `branch @ commit`, or whichever of the two is known.
    pub fn git(&self) -> Option<String> {
        match (&self.git_branch, &self.git_commit) {
            (Some(b), Some(c)) => Some(format!("{b} @ {c}")),
            (b, c) => b.clone().or_else(|| c.clone()),
        }
    }
}

/// A `turns` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Turn {
    /// Session id.
    pub session_id: String,
    /// Turn (Codex) or prompt (Claude Code) id; `~trace:…` when still provisional.
    pub turn_id: String,
    /// 1, 2, … in the session; none for provisional turns.
    pub ordinal: Option<u64>,
    /// Start, Unix ns.
    pub started_ns: Option<u64>,
    /// End, Unix ns.
    pub ended_ns: Option<u64>,
    /// The user's prompt.
    pub prompt: Option<String>,
    /// Model.
    pub model: Option<String>,
}

impl ToolCall {
    /// How it ended, for people: `exit 0 · 91 ms`, `ok · 215 ms`, `failed`, or empty.
    pub fn status_line(&self) -> String {
        let mut status = Vec::new();
        match (self.exit_code, self.success) {
            (Some(c), _) => status.push(format!("exit {c}")),
            (None, Some(true)) => status.push("ok".to_string()),
            (None, Some(false)) => status.push("failed".to_string()),
            (None, None) => {}
        }
        if let Some(ms) = self.duration_ms {
            status.push(format!("{ms} ms"));
        }
        status.join(" · ")
    }
}

impl Turn {
    /// Whether the turn id is a provisional trace alias.
    pub fn is_provisional(&self) -> bool {
        self.turn_id.starts_with(ALIAS_PREFIX)
    }
}

/// A `tool_calls` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCall {
    /// Session id.
    pub session_id: String,
    /// Turn id.
    pub turn_id: String,
    /// Call id (`call_id`, `tool_use_id`).
    pub call_id: String,
    /// Tool name.
    pub tool_name: Option<String>,
    /// Input (arguments).
    pub input: Option<String>,
    /// Output (the result's body).
    pub output: Option<String>,
    /// Exit code.
    pub exit_code: Option<i64>,
    /// Success.
    pub success: Option<bool>,
    /// Duration, ms.
    pub duration_ms: Option<i64>,
    /// The call's time, Unix ns.
    pub started_ns: Option<u64>,
    /// The result's time, Unix ns.
    pub ended_ns: Option<u64>,
}

/// A `usage` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    /// The usage event's key.
    pub key: String,
    /// Session id.
    pub session_id: String,
    /// Turn id.
    pub turn_id: String,
    /// Response or request id.
    pub item_id: String,
    /// `response` | `turn`.
    pub scope: String,
    /// Model.
    pub model: Option<String>,
    /// Input tokens (Anthropic: including cache reads and writes).
    pub input_tokens: Option<i64>,
    /// Output tokens.
    pub output_tokens: Option<i64>,
    /// Cached input tokens read.
    pub cache_read_tokens: Option<i64>,
    /// Input tokens written to the cache.
    pub cache_creation_tokens: Option<i64>,
    /// Reasoning tokens.
    pub reasoning_tokens: Option<i64>,
    /// Total tokens.
    pub total_tokens: Option<i64>,
    /// Cost, USD.
    pub cost_usd: Option<f64>,
}

/// Summed usage.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageTotals {
    /// Input tokens.
    pub input_tokens: Option<i64>,
    /// Output tokens.
    pub output_tokens: Option<i64>,
    /// Cache reads.
    pub cache_read_tokens: Option<i64>,
    /// Cache writes.
    pub cache_creation_tokens: Option<i64>,
    /// Reasoning tokens.
    pub reasoning_tokens: Option<i64>,
    /// Total tokens.
    pub total_tokens: Option<i64>,
    /// Cost, USD.
    pub cost_usd: Option<f64>,
}

fn add_opt(a: &mut Option<i64>, b: Option<i64>) {
    if let Some(b) = b {
        *a = Some(a.unwrap_or(0).saturating_add(b));
    }
}

impl UsageTotals {
    /// Adds one row (or another total).
    pub fn add(&mut self, u: &UsageTotals) {
        add_opt(&mut self.input_tokens, u.input_tokens);
        add_opt(&mut self.output_tokens, u.output_tokens);
        add_opt(&mut self.cache_read_tokens, u.cache_read_tokens);
        add_opt(&mut self.cache_creation_tokens, u.cache_creation_tokens);
        add_opt(&mut self.reasoning_tokens, u.reasoning_tokens);
        add_opt(&mut self.total_tokens, u.total_tokens);
        if let Some(c) = u.cost_usd {
            self.cost_usd = Some(self.cost_usd.unwrap_or(0.0) + c);
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        *self == UsageTotals::default()
    }

    /// The usage of one turn from its rows, counting nothing twice: the `turn`-scope row if
    /// there is one (the greatest key if several channels sent one), else the sum of the
    /// `response`-scope rows (keyed by response id), else the sum of the `request`-scope rows
    /// (hook reports of model requests, which carry no response id and so never share a key
    /// with the response rows of the same requests).
    pub fn of_turn<'a>(rows: impl IntoIterator<Item = &'a Usage>) -> UsageTotals {
        let rows: Vec<&Usage> = rows.into_iter().collect();
        let mut t = UsageTotals::default();
        if let Some(turn) = rows
            .iter()
            .filter(|u| u.scope == "turn")
            .max_by(|a, b| a.key.cmp(&b.key))
        {
            t.add(&UsageTotals::from(*turn));
            return t;
        }
        let responses = rows
            .iter()
            .any(|u| u.scope != "turn" && u.scope != "request");
        for u in rows
            .iter()
            .filter(|u| u.scope != "turn" && (u.scope == "request") != responses)
        {
            t.add(&UsageTotals::from(*u));
        }
        t
    }

    /// The usage of a whole session: [`Self::of_turn`] per turn, summed.
    pub fn of_session(rows: &[Usage]) -> UsageTotals {
        let mut by_turn: BTreeMap<&str, Vec<&Usage>> = BTreeMap::new();
        for u in rows {
            by_turn.entry(u.turn_id.as_str()).or_default().push(u);
        }
        let mut t = UsageTotals::default();
        for rows in by_turn.values() {
            t.add(&UsageTotals::of_turn(rows.iter().copied()));
        }
        t
    }

    /// `in 1200 · out 300 · cache read 100 · … · $0.0123` (absent fields left out).
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for (label, v) in [
            ("in", self.input_tokens),
            ("out", self.output_tokens),
            ("cache read", self.cache_read_tokens),
            ("cache write", self.cache_creation_tokens),
            ("reasoning", self.reasoning_tokens),
            ("total", self.total_tokens),
        ] {
            if let Some(v) = v {
                parts.push(format!("{label} {v}"));
            }
        }
        if let Some(c) = self.cost_usd {
            parts.push(format!("${c:.4}"));
        }
        parts.join(" · ")
    }
}

impl From<&Usage> for UsageTotals {
    fn from(u: &Usage) -> Self {
        UsageTotals {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_tokens,
            cache_creation_tokens: u.cache_creation_tokens,
            reasoning_tokens: u.reasoning_tokens,
            total_tokens: u.total_tokens,
            cost_usd: u.cost_usd,
        }
    }
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// `agent.event.key`.
    pub key: String,
    /// Kind part of the key (`tool.call`, `native`, …).
    pub kind: String,
    /// Revision.
    pub revision: u64,
    /// Every channel that saw it.
    pub sources: Vec<String>,
    /// The canonical record.
    pub record: AgentRecord,
}

/// Unix ns as RFC 3339 UTC with milliseconds (`2026-11-22T14:11:14.530Z`).
pub fn rfc3339(ns: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
    humantime::format_rfc3339_millis(t).to_string()
}

fn u(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

const SESSION_COLUMNS: &str = "session_id, agent, cwd, git_branch, git_commit, model, started_ns, ended_ns, status, turns, events";

fn session_from(r: &Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        session_id: r.get(0)?,
        agent: r.get(1)?,
        cwd: r.get(2)?,
        git_branch: r.get(3)?,
        git_commit: r.get(4)?,
        model: r.get(5)?,
        started_ns: u(r.get(6)?),
        ended_ns: u(r.get(7)?),
        status: r.get(8)?,
        turns: u(r.get(9)?).unwrap_or(0),
        events: u(r.get(10)?).unwrap_or(0),
    })
}

/// A read-only view of a store file.
#[derive(Debug)]
pub struct Reader {
    conn: Connection,
    path: PathBuf,
}

impl Reader {
    /// Opens `path` read-only. Errors when it does not exist or is not a store this binary reads.
    pub fn open(path: &Path) -> Result<Reader, QueryError> {
        Ok(Reader {
            conn: schema::open_reader(path)?,
            path: path.to_path_buf(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every table's content as text, tables by name, rows by primary key (sorted as text
    /// for a table this version does not know), then the archive as readers see it (the
    /// `archive` view): a function of what the store holds alone, not of its page layout or
    /// the order rows were written in. What the determinism tests compare.
    pub fn dump_tables(&self) -> Result<String, QueryError> {
        use rusqlite::types::ValueRef;
        let mut tables: Vec<String> = self
            .conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
                 ORDER BY name",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        tables.push("archive".into());
        let mut out = String::new();
        for t in tables {
            let order = schema::TABLES
                .iter()
                .chain([&("archive", "key, digest")])
                .find(|(name, _)| *name == t)
                .map(|(_, pk)| *pk);
            let sql = match order {
                Some(pk) => format!("SELECT * FROM \"{t}\" ORDER BY {pk}"),
                None => format!("SELECT * FROM \"{t}\""),
            };
            let mut stmt = self.conn.prepare(&sql)?;
            let n = stmt.column_count();
            let mut rows: Vec<String> = stmt
                .query_map([], |row| {
                    let mut cells = Vec::with_capacity(n);
                    for i in 0..n {
                        cells.push(match row.get_ref(i)? {
                            ValueRef::Null => "NULL".to_string(),
                            ValueRef::Integer(v) => v.to_string(),
                            ValueRef::Real(v) => format!("{v:?}"),
                            ValueRef::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
                            ValueRef::Blob(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
                        });
                    }
                    Ok(cells.join(" | "))
                })?
                .collect::<Result<_, _>>()?;
            if order.is_none() {
                rows.sort();
            }
            out.push_str(&format!("## {t}\n"));
            for r in rows {
                out.push_str(&r);
                out.push('\n');
            }
        }
        Ok(out)
    }

    /// Sessions matching `filter`, oldest first (by start, then id).
    pub fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<Session>, QueryError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions
             WHERE (?1 IS NULL OR agent = ?1)
               AND (?2 IS NULL OR coalesce(ended_ns, started_ns) >= ?2)
               AND (?3 IS NULL OR substr(cwd, 1, length(?3)) = ?3)
             ORDER BY started_ns IS NULL, started_ns, session_id"
        ))?;
        let since = filter.since_ns.map(crate::store::ns);
        let rows = stmt.query_map(params![filter.agent, since, filter.cwd], session_from)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The session with this id, or the only one whose id starts with it.
    pub fn find_session(&self, id_or_prefix: &str) -> Result<Session, QueryError> {
        let id = id_or_prefix.trim();
        if id.is_empty() {
            return Err(QueryError::NotFound(id_or_prefix.to_string()));
        }
        let exact = self
            .conn
            .prepare(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = ?1"
            ))?
            .query_row([id], session_from)
            .optional()?;
        if let Some(s) = exact {
            return Ok(s);
        }
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE substr(session_id, 1, length(?1)) = ?1
             ORDER BY session_id LIMIT 6"
        ))?;
        let mut found: Vec<Session> = stmt
            .query_map([id], session_from)?
            .collect::<Result<_, _>>()?;
        match found.len() {
            0 => Err(QueryError::NotFound(id.to_string())),
            1 => Ok(found.remove(0)),
            _ => Err(QueryError::Ambiguous {
                prefix: id.to_string(),
                candidates: found.into_iter().map(|s| s.session_id).collect(),
            }),
        }
    }

    /// Every event of `session`, by (time, key).
    pub fn events(&self, session: &str) -> Result<Vec<Event>, QueryError> {
        let mut stmt = self.conn.prepare(
            "SELECT key, kind, revision, sources, record FROM events WHERE session_id = ?1
             ORDER BY time_ns, key",
        )?;
        let rows = stmt.query_map([session], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (key, kind, revision, sources, record) = row?;
            let record: AgentRecord =
                serde_json::from_str(&record).map_err(|e| StoreError::Corrupt {
                    what: "event record",
                    reason: format!("{key}: {e}"),
                })?;
            out.push(Event {
                key,
                kind,
                revision: u64::try_from(revision).unwrap_or(0),
                sources: sources
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
                record,
            });
        }
        Ok(out)
    }

    /// The turns of `session`: resolved turns by ordinal, provisional ones after, by start.
    pub fn turns(&self, session: &str) -> Result<Vec<Turn>, QueryError> {
        let mut stmt = self.conn.prepare(
            "SELECT session_id, turn_id, ordinal, started_ns, ended_ns, prompt, model FROM turns
             WHERE session_id = ?1
             ORDER BY ordinal IS NULL, ordinal, started_ns IS NULL, started_ns, turn_id",
        )?;
        let rows = stmt.query_map([session], |r| {
            Ok(Turn {
                session_id: r.get(0)?,
                turn_id: r.get(1)?,
                ordinal: u(r.get(2)?),
                started_ns: u(r.get(3)?),
                ended_ns: u(r.get(4)?),
                prompt: r.get(5)?,
                model: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The tool calls of `session`, by (call time, turn, call id).
    pub fn tool_calls(&self, session: &str) -> Result<Vec<ToolCall>, QueryError> {
        let mut stmt = self.conn.prepare(
            "SELECT session_id, turn_id, call_id, tool_name, input, output, exit_code, success,
                    duration_ms, started_ns, ended_ns FROM tool_calls WHERE session_id = ?1
             ORDER BY coalesce(started_ns, ended_ns), turn_id, call_id",
        )?;
        let rows = stmt.query_map([session], |r| {
            Ok(ToolCall {
                session_id: r.get(0)?,
                turn_id: r.get(1)?,
                call_id: r.get(2)?,
                tool_name: r.get(3)?,
                input: r.get(4)?,
                output: r.get(5)?,
                exit_code: r.get(6)?,
                success: r.get::<_, Option<i64>>(7)?.map(|v| v != 0),
                duration_ms: r.get(8)?,
                started_ns: u(r.get(9)?),
                ended_ns: u(r.get(10)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The usage rows of `session`, by (turn, key).
    pub fn usage(&self, session: &str) -> Result<Vec<Usage>, QueryError> {
        let mut stmt = self.conn.prepare(
            "SELECT key, session_id, turn_id, item_id, scope, model, input_tokens, output_tokens,
                    cache_read_tokens, cache_creation_tokens, reasoning_tokens, total_tokens,
                    cost_usd FROM usage WHERE session_id = ?1 ORDER BY turn_id, key",
        )?;
        let rows = stmt.query_map([session], |r| {
            Ok(Usage {
                key: r.get(0)?,
                session_id: r.get(1)?,
                turn_id: r.get(2)?,
                item_id: r.get(3)?,
                scope: r.get(4)?,
                model: r.get(5)?,
                input_tokens: r.get(6)?,
                output_tokens: r.get(7)?,
                cache_read_tokens: r.get(8)?,
                cache_creation_tokens: r.get(9)?,
                reasoning_tokens: r.get(10)?,
                total_tokens: r.get(11)?,
                cost_usd: r.get(12)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Writes the events of `session` as JSON lines (one canonical record each, exactly the
    /// stored `record`), by (time, key). Returns how many.
    pub fn export(&self, session: &str, out: &mut impl Write) -> Result<u64, QueryError> {
        let mut stmt = self
            .conn
            .prepare("SELECT record FROM events WHERE session_id = ?1 ORDER BY time_ns, key")?;
        let mut rows = stmt.query([session])?;
        let mut n = 0;
        while let Some(r) = rows.next()? {
            let text: String = r.get(0)?;
            out.write_all(text.as_bytes()).map_err(QueryError::Write)?;
            out.write_all(b"\n").map_err(QueryError::Write)?;
            n += 1;
        }
        out.flush().map_err(QueryError::Write)?;
        Ok(n)
    }

    /// A readable transcript of `session` from the store alone.
    pub fn replay(&self, session: &str) -> Result<String, QueryError> {
        let s = self.find_session(session)?;
        let events = self.events(&s.session_id)?;
        let turns = self.turns(&s.session_id)?;
        let tools: BTreeMap<(String, String), ToolCall> = self
            .tool_calls(&s.session_id)?
            .into_iter()
            .map(|t| ((t.turn_id.clone(), t.call_id.clone()), t))
            .collect();
        let usage = self.usage(&s.session_id)?;
        Ok(render(&s, &turns, &events, &tools, &usage))
    }
}

fn lines(out: &mut String, prefix: &str, text: &str) {
    for l in text.lines() {
        let _ = writeln!(out, "{prefix}{l}");
    }
    if text.is_empty() {
        let _ = writeln!(out, "{}", prefix.trim_end());
    }
}

fn header(out: &mut String, s: &Session) {
    let _ = writeln!(out, "session {}  ({})", s.session_id, s.agent);
    let mut field = |label: &str, v: Option<String>| {
        if let Some(v) = v {
            let _ = writeln!(out, "  {label:<8} {v}");
        }
    };
    field("model", s.model.clone());
    field("cwd", s.cwd.clone());
    field("git", s.git());
    field("started", s.started_ns.map(rfc3339));
    field("ended", s.ended_ns.map(rfc3339));
    field("status", Some(s.status.clone()));
}

fn tool_block(out: &mut String, call_id: &str, t: Option<&ToolCall>) {
    let name = t.and_then(|t| t.tool_name.as_deref()).unwrap_or("?");
    let _ = writeln!(out, "tool {name} {call_id}");
    let Some(t) = t else {
        return;
    };
    if let Some(input) = &t.input {
        lines(out, "  input  ", input);
    }
    let status = t.status_line();
    if !status.is_empty() {
        let _ = writeln!(out, "  {status}");
    }
    if let Some(output) = &t.output {
        lines(out, "    ", output);
    }
}

fn short_name(name: &str) -> &str {
    name.strip_prefix("agent.").unwrap_or(name)
}

/// One event of a turn (or of the session) in the transcript.
fn event_line(
    out: &mut String,
    e: &Event,
    tools: &BTreeMap<(String, String), ToolCall>,
    calls_shown: &BTreeSet<String>,
) {
    let r = &e.record;
    let body = body_text(Some(&r.body));
    let tool = || tools.get(&(r.key.turn().to_string(), r.key.item().to_string()));
    match r.key.kind() {
        Kind::Message => lines(out, "", body.as_deref().unwrap_or("")),
        Kind::Reasoning => lines(out, "(reasoning) ", body.as_deref().unwrap_or("")),
        Kind::ToolCall => tool_block(out, r.key.item(), tool()),
        // Shown with its call, unless the call was never seen.
        Kind::ToolResult if !calls_shown.contains(r.key.item()) => {
            tool_block(out, r.key.item(), tool())
        }
        Kind::ApprovalRequest => {
            let what = body
                .or_else(|| lenient::text(r.get(attr::TOOL_NAME)))
                .unwrap_or_default();
            lines(out, "approval requested: ", &what);
        }
        Kind::ApprovalDecision => {
            let what = body
                .or_else(|| lenient::text(r.get(attr::TOOL_NAME)))
                .unwrap_or_default();
            lines(out, "approval: ", &what);
        }
        Kind::Compaction => {
            let trigger = lenient::text(r.get("agent.compaction.trigger")).unwrap_or_default();
            let phase = if r.key.item() == "pre" {
                "compacting"
            } else {
                "compacted"
            };
            lines(out, "", &format!("({phase} the context, {trigger})"));
        }
        Kind::SubagentStart | Kind::SubagentEnd => {
            let ty = lenient::text(r.get("agent.subagent.type")).unwrap_or_default();
            let what = if r.key.kind() == Kind::SubagentStart {
                "started"
            } else {
                "finished"
            };
            lines(
                out,
                "",
                &format!("(sub-agent {} {ty} {what})", r.key.item()),
            );
        }
        // Shown elsewhere (header, prompt line, usage line, tool block) or only counted.
        Kind::SessionStart
        | Kind::SessionEnd
        | Kind::TurnStart
        | Kind::TurnEnd
        | Kind::UserPrompt
        | Kind::Usage
        | Kind::ToolResult
        | Kind::Native => {}
        // Kinds added to the contract after this was written: name and body.
        #[allow(unreachable_patterns)]
        _ => {
            let label = short_name(&r.name);
            match body {
                Some(b) => lines(out, &format!("· {label}: "), &b),
                None => {
                    let _ = writeln!(out, "· {label}");
                }
            }
        }
    }
}

fn render(
    s: &Session,
    turns: &[Turn],
    events: &[Event],
    tools: &BTreeMap<(String, String), ToolCall>,
    usage: &[Usage],
) -> String {
    let mut out = String::new();
    header(&mut out, s);
    let mut by_turn: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in events {
        by_turn.entry(e.record.key.turn()).or_default().push(e);
    }
    let native = |evs: &[&Event]| {
        evs.iter()
            .filter(|e| e.kind == Kind::Native.key_part())
            .count()
    };
    let write_events = |out: &mut String, evs: &[&Event]| {
        let calls: BTreeSet<String> = evs
            .iter()
            .filter(|e| e.kind == Kind::ToolCall.key_part())
            .map(|e| e.record.key.item().to_string())
            .collect();
        for e in evs {
            // One blank line between blocks (message, tool call, …).
            let mut block = String::new();
            event_line(&mut block, e, tools, &calls);
            if !block.is_empty() {
                out.push('\n');
                out.push_str(&block);
            }
        }
        let n = native(evs);
        if n > 0 {
            let _ = writeln!(
                out,
                "\n({n} native event{} not shown)",
                if n == 1 { "" } else { "s" }
            );
        }
    };
    // Session-level events (no turn): errors, capture changes, natives.
    if let Some(evs) = by_turn.get("") {
        let mut section = String::new();
        write_events(&mut section, evs);
        if !section.is_empty() {
            out.push('\n');
            out.push_str(&section);
        }
    }
    // Chronological: resolved turns keep their ordinal order, provisional ones slot in by
    // start time.
    let mut ordered: Vec<&Turn> = turns.iter().collect();
    ordered.sort_by(|a, b| {
        (a.started_ns.is_none(), a.started_ns, a.ordinal, &a.turn_id).cmp(&(
            b.started_ns.is_none(),
            b.started_ns,
            b.ordinal,
            &b.turn_id,
        ))
    });
    let mut usage_by_turn: BTreeMap<&str, Vec<&Usage>> = BTreeMap::new();
    for u in usage {
        usage_by_turn.entry(u.turn_id.as_str()).or_default().push(u);
    }
    let mut total = UsageTotals::default();
    for t in ordered {
        let when = t
            .started_ns
            .map(rfc3339)
            .unwrap_or_else(|| "time unknown".into());
        out.push('\n');
        match t.ordinal {
            Some(n) if !t.is_provisional() => {
                let _ = writeln!(out, "── turn {n}  {}  {when}", t.turn_id);
            }
            _ => {
                let _ = writeln!(out, "── (unresolved turn)  {}  {when}", t.turn_id);
            }
        }
        if let Some(p) = &t.prompt {
            lines(&mut out, "> ", p);
        }
        if let Some(evs) = by_turn.get(t.turn_id.as_str()) {
            write_events(&mut out, evs);
        }
        let used = UsageTotals::of_turn(
            usage_by_turn
                .get(t.turn_id.as_str())
                .into_iter()
                .flatten()
                .copied(),
        );
        if !used.is_empty() {
            let _ = writeln!(out, "\nusage  {}", used.summary());
            total.add(&used);
        }
    }
    if let Some(rows) = usage_by_turn.get("") {
        total.add(&UsageTotals::of_turn(rows.iter().copied()));
    }
    if !total.is_empty() {
        let _ = writeln!(out, "\ntotal usage  {}", total.summary());
    }
    out
}
