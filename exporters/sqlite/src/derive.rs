//! Derived tables: `sessions`, `turns`, `tool_calls` and `usage` are pure functions of
//! `events` (through `event_attrs`, itself one row per indexed attribute of an event).
//!
//! Each batch recomputes exactly the scopes it changed: the usage row of a changed usage
//! event, the tool-call row of a changed call or result, the turn row of every changed turn,
//! and the session row and turn ordinals of every changed session. Recomputing means deleting
//! the scope's rows and inserting what a query over `events` gives now, so the tables never
//! depend on the order in which events arrived, and [`crate::Store::rebuild_derived`] (which
//! recomputes everything) gives the same rows.
//!
//! Rules:
//! * times of 0 mean "unknown" and are ignored by every min/max;
//! * a session starts at its earliest event and ends at its `session.end` event, else at its
//!   latest event; it is `ended` when a `session.end` exists, else `active`; `cwd`, git and
//!   model come from its `session.start` event, else from the earliest event (by time, then key)
//!   that has the attribute; its agent is the earliest event's; `turns` counts resolved turns
//!   (turn ids not starting with `~`);
//! * a turn is any non-empty turn part; it starts at its `turn.start` event, else at its
//!   earliest event, and ends at its `turn.end`, else its latest event; resolved turns are
//!   numbered 1, 2, … by (start, turn id), with unknown starts last; provisional `~trace:` turns
//!   have no ordinal; the prompt is the body of its `user_prompt` event; the model comes from
//!   its `turn.start`, else its earliest event that has one;
//! * a tool call is the `tool.call` and `tool.result` of one (session, turn, call id);
//! * a usage row is one `usage` event; a missing scope means `response`.

use std::collections::BTreeSet;

use agentcol_component::agent::{attr, EventKey, Kind};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value as Json;

use crate::error::StoreError;
use crate::lenient;

/// A tool call's scope: session, turn, call id, and the key without its kind part.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ToolRef {
    session: String,
    turn: String,
    item: String,
    prefix: String,
}

/// The scopes a batch changed.
#[derive(Debug, Default)]
pub(crate) struct Touched {
    sessions: BTreeSet<String>,
    turns: BTreeSet<(String, String)>,
    tools: BTreeSet<ToolRef>,
    usage: BTreeSet<String>,
}

impl Touched {
    /// The event `key` was inserted, replaced or deleted.
    pub(crate) fn touch(&mut self, key: &EventKey) {
        self.sessions.insert(key.session().to_string());
        if !key.turn().is_empty() {
            self.turns
                .insert((key.session().to_string(), key.turn().to_string()));
        }
        match key.kind() {
            Kind::ToolCall | Kind::ToolResult => {
                let k = key.to_string();
                if let Some((prefix, _)) = k.rsplit_once('|') {
                    self.tools.insert(ToolRef {
                        session: key.session().to_string(),
                        turn: key.turn().to_string(),
                        item: key.item().to_string(),
                        prefix: prefix.to_string(),
                    });
                }
            }
            Kind::Usage => {
                self.usage.insert(key.to_string());
            }
            _ => {}
        }
    }
}

fn sql(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    StoreError::sql(context)
}

fn nonzero(t: Option<i64>) -> Option<i64> {
    t.filter(|t| *t != 0)
}

/// Recomputes the derived rows of every touched scope (inner scopes first: session rows read
/// the turn rows).
pub(crate) fn recompute(conn: &Connection, t: &Touched) -> Result<(), StoreError> {
    for key in &t.usage {
        usage_row(conn, key)?;
    }
    for tool in &t.tools {
        tool_row(conn, tool)?;
    }
    // Ordinals depend on every turn's start: renumber a session only when one of its turns
    // appeared, disappeared or moved (the numbering is the same function either way).
    let mut reorder = BTreeSet::new();
    for (session, turn) in &t.turns {
        if turn_row(conn, session, turn)? {
            reorder.insert(session.as_str());
        }
    }
    for session in &t.sessions {
        session_row(conn, session)?;
        if reorder.contains(session.as_str()) {
            ordinals(conn, session)?;
        }
    }
    Ok(())
}

/// The `record` JSON of event `key`, parsed.
fn record(conn: &Connection, key: &str) -> Result<Option<Json>, StoreError> {
    let text: Option<String> = conn
        .prepare_cached("SELECT record FROM events WHERE key = ?1")
        .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
        .map_err(sql("reading an event"))?;
    text.map(|t| parse(&t)).transpose()
}

fn parse(text: &str) -> Result<Json, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what: "event record",
        reason: e.to_string(),
    })
}

fn attribute<'a>(rec: &'a Json, name: &str) -> Option<&'a Json> {
    rec.get("attributes").and_then(|a| a.get(name))
}

fn time(rec: &Json) -> Option<i64> {
    nonzero(
        rec.get("time_unix_nano")
            .and_then(|t| t.as_u64())
            .map(crate::store::ns),
    )
}

/// A body as text: strings as they are, other JSON written out, `null` → none.
pub(crate) fn body_text(body: Option<&Json>) -> Option<String> {
    match body? {
        Json::Null => None,
        Json::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn usage_row(conn: &Connection, key: &str) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM usage WHERE key = ?1")
        .and_then(|mut s| s.execute([key]))
        .map_err(sql("clearing a usage row"))?;
    let row: Option<(String, String, String, String)> = conn
        .prepare_cached("SELECT session_id, turn_id, item_id, record FROM events WHERE key = ?1")
        .and_then(|mut s| {
            s.query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()
        })
        .map_err(sql("reading a usage event"))?;
    let Some((session, turn, item, text)) = row else {
        return Ok(());
    };
    let rec = parse(&text)?;
    let a = |name| attribute(&rec, name);
    conn.prepare_cached(
        "INSERT INTO usage (key, session_id, turn_id, item_id, scope, model, input_tokens,
             output_tokens, cache_read_tokens, cache_creation_tokens, reasoning_tokens,
             total_tokens, cost_usd)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )
    .and_then(|mut s| {
        s.execute(params![
            key,
            session,
            turn,
            item,
            lenient::text(a(attr::USAGE_SCOPE)).unwrap_or_else(|| "response".into()),
            lenient::text(a(attr::REQUEST_MODEL)),
            lenient::int(a(attr::USAGE_INPUT_TOKENS)),
            lenient::int(a(attr::USAGE_OUTPUT_TOKENS)),
            lenient::int(a(attr::USAGE_CACHE_READ_TOKENS)),
            lenient::int(a(attr::USAGE_CACHE_CREATION_TOKENS)),
            lenient::int(a(attr::USAGE_REASONING_TOKENS)),
            lenient::int(a(attr::USAGE_TOTAL_TOKENS)),
            lenient::float(a(attr::USAGE_COST_USD)),
        ])
    })
    .map_err(sql("writing a usage row"))?;
    Ok(())
}

fn tool_row(conn: &Connection, t: &ToolRef) -> Result<(), StoreError> {
    conn.prepare_cached(
        "DELETE FROM tool_calls WHERE session_id = ?1 AND turn_id = ?2 AND call_id = ?3",
    )
    .and_then(|mut s| s.execute(params![t.session, t.turn, t.item]))
    .map_err(sql("clearing a tool call"))?;
    let call = record(conn, &format!("{}|{}", t.prefix, Kind::ToolCall.key_part()))?;
    let result = record(
        conn,
        &format!("{}|{}", t.prefix, Kind::ToolResult.key_part()),
    )?;
    if call.is_none() && result.is_none() {
        return Ok(());
    }
    // The call's attribute, else the result's (or the other way round).
    let pick = |first: &Option<Json>, second: &Option<Json>, name: &str| -> Option<Json> {
        first
            .as_ref()
            .and_then(|r| attribute(r, name))
            .filter(|v| !v.is_null())
            .or_else(|| second.as_ref().and_then(|r| attribute(r, name)))
            .cloned()
    };
    let output = result.as_ref().and_then(|r| {
        body_text(r.get("body")).or_else(|| lenient::text(attribute(r, attr::TOOL_OUTPUT)))
    });
    conn.prepare_cached(
        "INSERT INTO tool_calls (session_id, turn_id, call_id, tool_name, input, output,
             exit_code, success, duration_ms, started_ns, ended_ns)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )
    .and_then(|mut s| {
        s.execute(params![
            t.session,
            t.turn,
            t.item,
            lenient::text(pick(&call, &result, attr::TOOL_NAME).as_ref()),
            lenient::text(pick(&call, &result, attr::TOOL_INPUT).as_ref()),
            output,
            lenient::int(pick(&result, &call, attr::TOOL_EXIT_CODE).as_ref()),
            lenient::boolean(pick(&result, &call, attr::TOOL_SUCCESS).as_ref()),
            lenient::int(pick(&result, &call, attr::DURATION_MS).as_ref()),
            call.as_ref().and_then(time),
            result.as_ref().and_then(time),
        ])
    })
    .map_err(sql("writing a tool call"))?;
    Ok(())
}

/// The value of attribute `name` for a session (or one of its turns): from the `preferred`
/// event (its `session.start` or `turn.start`) if that has it, else from the earliest event
/// (by time, then key) that has it. Both are index lookups.
fn pick_attr(
    conn: &Connection,
    session: &str,
    turn: Option<&str>,
    name: &str,
    preferred: Option<&str>,
) -> Result<Option<String>, StoreError> {
    if let Some(key) = preferred {
        let v: Option<String> = conn
            .prepare_cached("SELECT value FROM event_attrs WHERE key = ?1 AND name = ?2")
            .and_then(|mut s| s.query_row(params![key, name], |r| r.get(0)).optional())
            .map_err(sql("reading event attributes"))?;
        if v.is_some() {
            return Ok(v);
        }
    }
    match turn {
        None => conn
            .prepare_cached(
                "SELECT value FROM event_attrs WHERE session_id = ?1 AND name = ?2
                 ORDER BY time_ns, key LIMIT 1",
            )
            .and_then(|mut s| s.query_row(params![session, name], |r| r.get(0)).optional()),
        Some(turn) => conn
            .prepare_cached(
                "SELECT value FROM event_attrs WHERE session_id = ?1 AND turn_id = ?2 AND name = ?3
                 ORDER BY time_ns, key LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row(params![session, turn, name], |r| r.get(0))
                    .optional()
            }),
    }
    .map_err(sql("reading event attributes"))
}

/// Recomputes one turn row; true when the turn appeared, disappeared or its start changed
/// (so the session's ordinals must be recomputed). An unchanged start keeps the ordinal.
fn turn_row(conn: &Connection, session: &str, turn: &str) -> Result<bool, StoreError> {
    let old: Option<(Option<i64>, Option<i64>)> = conn
        .prepare_cached(
            "SELECT started_ns, ordinal FROM turns WHERE session_id = ?1 AND turn_id = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![session, turn], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(sql("reading a turn"))?;
    conn.prepare_cached("DELETE FROM turns WHERE session_id = ?1 AND turn_id = ?2")
        .and_then(|mut s| s.execute(params![session, turn]))
        .map_err(sql("clearing a turn"))?;
    let (mut count, mut min, mut max, mut start, mut end) = (0u64, None, None, None, None);
    let mut prompt_key = None;
    let mut start_key: Option<String> = None;
    {
        let mut stmt = conn
            .prepare_cached(
                "SELECT kind, time_ns, key FROM events WHERE session_id = ?1 AND turn_id = ?2",
            )
            .map_err(sql("reading a turn"))?;
        let mut rows = stmt
            .query(params![session, turn])
            .map_err(sql("reading a turn"))?;
        while let Some(r) = rows.next().map_err(sql("reading a turn"))? {
            let kind: String = r.get(0).map_err(sql("reading a turn"))?;
            let t: Option<i64> = nonzero(r.get(1).map_err(sql("reading a turn"))?);
            count += 1;
            let merge = |cur: Option<i64>, f: fn(i64, i64) -> i64| match (cur, t) {
                (Some(c), Some(t)) => Some(f(c, t)),
                (c, t) => c.or(t),
            };
            min = merge(min, i64::min);
            max = merge(max, i64::max);
            if kind == Kind::TurnStart.key_part() {
                start = merge(start, i64::min);
                start_key = Some(r.get(2).map_err(sql("reading a turn"))?);
            } else if kind == Kind::TurnEnd.key_part() {
                end = merge(end, i64::max);
            } else if kind == Kind::UserPrompt.key_part() {
                let key: String = r.get(2).map_err(sql("reading a turn"))?;
                // Several prompts in one turn cannot happen with v1 keys; be deterministic anyway.
                if prompt_key.as_ref().is_none_or(|k: &String| key < *k) {
                    prompt_key = Some(key);
                }
            }
        }
    }
    if count == 0 {
        return Ok(old.is_some());
    }
    let prompt = match prompt_key {
        Some(k) => record(conn, &k)?.and_then(|r| body_text(r.get("body"))),
        None => None,
    };
    let model = pick_attr(
        conn,
        session,
        Some(turn),
        attr::REQUEST_MODEL,
        start_key.as_deref(),
    )?;
    let started = start.or(min);
    let (moved, ordinal) = match old {
        Some((was, ordinal)) if was == started => (false, ordinal),
        _ => (true, None),
    };
    conn.prepare_cached(
        "INSERT INTO turns (session_id, turn_id, ordinal, started_ns, ended_ns, prompt, model)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut s| {
        s.execute(params![
            session,
            turn,
            ordinal,
            started,
            end.or(max),
            prompt,
            model
        ])
    })
    .map_err(sql("writing a turn"))?;
    Ok(moved)
}

fn session_row(conn: &Connection, session: &str) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM sessions WHERE session_id = ?1")
        .and_then(|mut s| s.execute([session]))
        .map_err(sql("clearing a session"))?;
    // Every query below is an index lookup or an index-only scan (`events_session_time`,
    // `events_session_turn`): this runs for every session a batch touches.
    let count: i64 = conn
        .prepare_cached("SELECT count(*) FROM events WHERE session_id = ?1")
        .and_then(|mut s| s.query_row([session], |r| r.get(0)))
        .map_err(sql("reading a session"))?;
    if count == 0 {
        return Ok(());
    }
    let bound = |q: &str| -> Result<Option<i64>, StoreError> {
        conn.prepare_cached(q)
            .and_then(|mut s| s.query_row([session], |r| r.get(0)))
            .map_err(sql("reading a session"))
    };
    let min = bound("SELECT min(time_ns) FROM events WHERE session_id = ?1 AND time_ns > 0")?;
    let max = bound("SELECT max(time_ns) FROM events WHERE session_id = ?1 AND time_ns > 0")?;
    // The agent of the earliest event (a session id belongs to one agent).
    let agent: String = conn
        .prepare_cached(
            "SELECT agent FROM events WHERE session_id = ?1 ORDER BY time_ns, key LIMIT 1",
        )
        .and_then(|mut s| s.query_row([session], |r| r.get(0)))
        .map_err(sql("reading a session"))?;
    // Session-level events have an empty turn part: few rows under (session_id, turn_id).
    let (mut start_key, mut end, mut ends) = (None::<String>, None::<i64>, 0);
    {
        let mut stmt = conn
            .prepare_cached(
                "SELECT kind, time_ns, key FROM events WHERE session_id = ?1 AND turn_id = ''
                 AND kind IN ('session.start', 'session.end') ORDER BY key",
            )
            .map_err(sql("reading a session"))?;
        let mut rows = stmt.query([session]).map_err(sql("reading a session"))?;
        while let Some(r) = rows.next().map_err(sql("reading a session"))? {
            let kind: String = r.get(0).map_err(sql("reading a session"))?;
            if kind == Kind::SessionStart.key_part() {
                if start_key.is_none() {
                    start_key = Some(r.get(2).map_err(sql("reading a session"))?);
                }
            } else {
                ends += 1;
                let t = nonzero(r.get(1).map_err(sql("reading a session"))?);
                end = end.max(t);
            }
        }
    }
    let turns: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM turns WHERE session_id = ?1 AND substr(turn_id, 1, 1) != '~'",
        )
        .and_then(|mut s| s.query_row([session], |r| r.get(0)))
        .map_err(sql("counting turns"))?;
    let start = start_key.as_deref();
    let cwd = pick_attr(conn, session, None, attr::CWD, start)?;
    let branch = pick_attr(conn, session, None, attr::GIT_BRANCH, start)?;
    let commit = pick_attr(conn, session, None, attr::GIT_COMMIT, start)?;
    let model = pick_attr(conn, session, None, attr::REQUEST_MODEL, start)?;
    conn.prepare_cached(
        "INSERT INTO sessions (session_id, agent, cwd, git_branch, git_commit, model, started_ns,
             ended_ns, status, turns, events)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )
    .and_then(|mut s| {
        s.execute(params![
            session,
            agent,
            cwd,
            branch,
            commit,
            model,
            min,
            end.or(max),
            if ends > 0 { "ended" } else { "active" },
            turns,
            count,
        ])
    })
    .map_err(sql("writing a session"))?;
    Ok(())
}

fn ordinals(conn: &Connection, session: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE turns SET ordinal = o.n
         FROM (SELECT turn_id, row_number() OVER (ORDER BY started_ns IS NULL, started_ns, turn_id) AS n
               FROM turns WHERE session_id = ?1 AND substr(turn_id, 1, 1) != '~') AS o
         WHERE turns.session_id = ?1 AND turns.turn_id = o.turn_id AND turns.ordinal IS NOT o.n",
    )
    .and_then(|mut s| s.execute([session]))
    .map_err(sql("numbering turns"))?;
    Ok(())
}
