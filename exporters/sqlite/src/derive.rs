//! Derived tables: `sessions`, `turns`, `tool_calls` and `usage` are pure functions of
//! `events` (the session and turn picks read its attribute columns `cwd`, `git_branch`,
//! `git_commit`, `model`, themselves a function of `record`).
//!
//! `events` has no index but its primary key (session, turn, key), so that an event costs one
//! B-tree insertion: a turn and a session are ranges of it. What the session row picks from
//! its events (earliest and latest event, earliest with each attribute) is kept in the row
//! (`picks`) and combined with the rows a batch wrote; only when the batch replaced or deleted
//! a picked event is the session scanned again.
//! A session that is new in the batch (the bulk case: every request a new thread) gets its
//! turn and session rows from the batch's rows in memory, each turn row written once with its
//! ordinal; the result is the general path's.
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

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use agentcol_component::agent::{attr, Agent, AgentRecord, EventKey, Kind};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::error::StoreError;
use crate::hot::{Hot, HotStatements};
use crate::lenient;

/// Maps by key or session text, looked up several times per stored event: foldhash, seeded
/// per map, is several times faster than the standard SipHash on these ~40–150-byte texts,
/// and nothing here depends on their iteration order.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

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
    /// Turns by session (iterated in (session, turn) order).
    turns: BTreeMap<String, BTreeSet<String>>,
    /// Tool calls by key prefix ([`ToolRef::prefix`]): looked up by the key's text, so a call
    /// touched again (its result after it) costs no copies. Each call's row is its own, so
    /// their order does not matter.
    tools: BTreeMap<String, ToolRef>,
    /// (session, turn, key) of usage events.
    usage: BTreeSet<(String, String, String)>,
    /// Rows added (+) and deleted (−) per session: its `events` count is the stored one plus
    /// this, exactly the `count(*)` (which would scan the whole session every batch).
    counts: BTreeMap<String, i64>,
    /// The records the batch wrote that derived rows read (tool calls and results, usage,
    /// prompts), by key: what `events.record` now holds, without reading and parsing it back.
    records: HashMap<String, AgentRecord>,
    /// Every event row the batch touched, by key text, with what it now is: the session rows'
    /// picks are maintained from these instead of looked up in per-event indexes.
    changed: HashMap<String, Change>,
}

/// One touched event row of a batch.
#[derive(Debug)]
struct Change {
    session: String,
    state: State,
}

/// What a touched event row is at the end of the batch.
#[derive(Debug)]
enum State {
    /// Touched, but the writer did not say how ([`crate::Store::rebuild_derived`]): the
    /// session is scanned.
    Unknown,
    Deleted,
    Written(Row),
}

/// The columns of an event row that the session and turn rows read.
#[derive(Debug)]
struct Row {
    turn: String,
    kind: Kind,
    time: i64,
    agent: Agent,
    attrs: [Option<String>; 4],
}

impl Touched {
    /// `rec` is now the stored record of `key` (its string form); its scopes are touched.
    /// `attrs` are its [`crate::store::INDEXED_ATTRS`] values, as written.
    pub(crate) fn wrote(&mut self, key: &str, rec: AgentRecord, attrs: [Option<String>; 4]) {
        self.touch_scopes(&rec.key, key);
        // The columns `store::Writer::event_row` wrote, computed the same way.
        let row = Row {
            turn: rec.key.turn().to_string(),
            kind: rec.key.kind(),
            time: crate::store::ns(rec.time_unix_nano),
            agent: rec.key.agent(),
            attrs,
        };
        match self.changed.get_mut(key) {
            Some(c) => c.state = State::Written(row),
            None => {
                self.changed.insert(
                    key.to_string(),
                    Change {
                        session: rec.key.session().to_string(),
                        state: State::Written(row),
                    },
                );
            }
        }
        if matches!(
            rec.key.kind(),
            Kind::ToolCall | Kind::ToolResult | Kind::Usage | Kind::UserPrompt
        ) {
            self.records.insert(key.to_string(), rec);
        }
    }

    /// The event of `key` (its string form) was deleted.
    pub(crate) fn deleted(&mut self, key: &str) {
        self.records.remove(key);
        if let Some(c) = self.changed.get_mut(key) {
            c.state = State::Deleted;
        }
    }

    /// An event row of `key`'s session was inserted (`1`) or deleted (`-1`).
    pub(crate) fn count(&mut self, key: &EventKey, delta: i64) {
        match self.counts.get_mut(key.session()) {
            Some(n) => *n += delta,
            None => {
                self.counts.insert(key.session().to_string(), delta);
            }
        }
    }

    /// The event `key` (`text` is its string form) was inserted, replaced or deleted. A batch
    /// touches few scopes many times: the sets are looked up before a key is copied.
    pub(crate) fn touch(&mut self, key: &EventKey, text: &str) {
        if !self.changed.contains_key(text) {
            self.changed.insert(
                text.to_string(),
                Change {
                    session: key.session().to_string(),
                    state: State::Unknown,
                },
            );
        }
        self.touch_scopes(key, text);
    }

    /// The scopes of event `key` (`text` is its string form) changed.
    fn touch_scopes(&mut self, key: &EventKey, text: &str) {
        if !self.sessions.contains(key.session()) {
            self.sessions.insert(key.session().to_string());
        }
        if !key.turn().is_empty() {
            match self.turns.get_mut(key.session()) {
                Some(turns) => {
                    if !turns.contains(key.turn()) {
                        turns.insert(key.turn().to_string());
                    }
                }
                None => {
                    self.turns.insert(
                        key.session().to_string(),
                        BTreeSet::from([key.turn().to_string()]),
                    );
                }
            }
        }
        match key.kind() {
            Kind::ToolCall | Kind::ToolResult => {
                if let Some((prefix, _)) = text.rsplit_once('|') {
                    if !self.tools.contains_key(prefix) {
                        self.tools.insert(
                            prefix.to_string(),
                            ToolRef {
                                session: key.session().to_string(),
                                turn: key.turn().to_string(),
                                item: key.item().to_string(),
                                prefix: prefix.to_string(),
                            },
                        );
                    }
                }
            }
            Kind::Usage => {
                self.usage.insert((
                    key.session().to_string(),
                    key.turn().to_string(),
                    text.to_string(),
                ));
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
pub(crate) fn recompute(conn: &HotStatements<'_>, t: &Touched) -> Result<(), StoreError> {
    for (session, turn, key) in &t.usage {
        usage_row(conn, t, session, turn, key)?;
    }
    for tool in t.tools.values() {
        tool_row(conn, t, tool)?;
    }
    // Ordinals depend on every turn's start: renumber a session only when one of its turns
    // appeared, disappeared or moved (the numbering is the same function either way).
    let mut reorder = BTreeSet::new();
    let batches = by_session(t);
    // Sessions new in this batch (the bulk case): their resolved-turn counts.
    let mut fresh: HashMap<&str, i64> = HashMap::default();
    for (session, turns) in &t.turns {
        if let Some(b) = batches.get(session.as_str()) {
            if fresh_session(conn, session, b)? {
                fresh.insert(session, fresh_turns(conn, t, session, b)?);
                continue;
            }
        }
        for turn in turns {
            if turn_row(conn, t, session, turn)? && !turn.starts_with('~') {
                reorder.insert(session.as_str());
            }
        }
    }
    for session in &t.sessions {
        let delta = t.counts.get(session).copied().unwrap_or(0);
        let batch = batches.get(session.as_str());
        match (fresh.get(session.as_str()), batch) {
            (Some(&turns), Some(b)) => fresh_session_row(conn, session, b, turns)?,
            _ => session_row(conn, session, delta, batch)?,
        }
        if reorder.contains(session.as_str()) {
            ordinals(conn, session)?;
        }
    }
    Ok(())
}

/// The record of event `key` (of `session` and `turn`): as the batch wrote it, else its
/// `record` JSON parsed.
fn record<'a>(
    conn: &HotStatements<'_>,
    t: &'a Touched,
    session: &str,
    turn: &str,
    key: &str,
) -> Result<Option<Cow<'a, AgentRecord>>, StoreError> {
    if let Some(r) = t.records.get(key) {
        return Ok(Some(Cow::Borrowed(r)));
    }
    let text: Option<String> = conn
        .run(Hot::EventRecord, |s| {
            s.query_row(params![session, turn, key], |r| r.get(0))
                .optional()
        })
        .map_err(sql("reading an event"))?;
    text.map(|t| parse(&t).map(Cow::Owned)).transpose()
}

fn parse(text: &str) -> Result<AgentRecord, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what: "event record",
        reason: e.to_string(),
    })
}

fn time(rec: &AgentRecord) -> Option<i64> {
    nonzero(Some(crate::store::ns(rec.time_unix_nano)))
}

/// A body as text: strings as they are, other JSON written out, `null` → none.
pub(crate) fn body_text(body: Option<&Json>) -> Option<String> {
    match body? {
        Json::Null => None,
        Json::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn usage_row(
    conn: &HotStatements<'_>,
    t: &Touched,
    session: &str,
    turn: &str,
    key: &str,
) -> Result<(), StoreError> {
    let Some(rec) = record(conn, t, session, turn, key)? else {
        conn.prepare_cached(
            "DELETE FROM usage WHERE session_id = ?1 AND turn_id = ?2 AND key = ?3",
        )
        .and_then(|mut s| s.execute(params![session, turn, key]))
        .map_err(sql("clearing a usage row"))?;
        return Ok(());
    };
    let item = rec.key.item();
    let a = |name| rec.get(name);
    conn.run(Hot::UsageWrite, |s| {
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

fn tool_row(conn: &HotStatements<'_>, touched: &Touched, t: &ToolRef) -> Result<(), StoreError> {
    let key = |kind: Kind| format!("{}|{}", t.prefix, kind.key_part());
    let call = record(conn, touched, &t.session, &t.turn, &key(Kind::ToolCall))?;
    let result = record(conn, touched, &t.session, &t.turn, &key(Kind::ToolResult))?;
    if call.is_none() && result.is_none() {
        conn.prepare_cached(
            "DELETE FROM tool_calls WHERE session_id = ?1 AND turn_id = ?2 AND call_id = ?3",
        )
        .and_then(|mut s| s.execute(params![t.session, t.turn, t.item]))
        .map_err(sql("clearing a tool call"))?;
        return Ok(());
    }
    // The call's attribute, else the result's (or the other way round).
    let (call, result) = (call.as_deref(), result.as_deref());
    let pick = |first: Option<&'_ AgentRecord>, second: Option<&'_ AgentRecord>, name: &str| {
        first
            .and_then(|r| r.get(name))
            .filter(|v| !v.is_null())
            .or_else(|| second.and_then(|r| r.get(name)))
            .cloned()
    };
    let output = result
        .and_then(|r| body_text(Some(&r.body)).or_else(|| lenient::text(r.get(attr::TOOL_OUTPUT))));
    conn.run(Hot::ToolWrite, |s| {
        s.execute(params![
            t.session,
            t.turn,
            t.item,
            lenient::text(pick(call, result, attr::TOOL_NAME).as_ref()),
            lenient::text(pick(call, result, attr::TOOL_INPUT).as_ref()),
            output,
            lenient::int(pick(result, call, attr::TOOL_EXIT_CODE).as_ref()),
            lenient::boolean(pick(result, call, attr::TOOL_SUCCESS).as_ref()),
            lenient::int(pick(result, call, attr::DURATION_MS).as_ref()),
            call.and_then(time),
            result.and_then(time),
        ])
    })
    .map_err(sql("writing a tool call"))?;
    Ok(())
}

/// What a turn row is a function of, gathered from the turn's events in any order: by
/// [`turn_row`] from a scan of the stored turn, by [`fresh_turns`] from a batch's rows.
#[derive(Debug, Default)]
struct TurnAcc {
    count: u64,
    min: Option<i64>,
    max: Option<i64>,
    start: Option<i64>,
    end: Option<i64>,
    /// The user prompt (several in one turn cannot happen with v1 keys; the least key wins).
    prompt_key: Option<String>,
    /// The model of the turn.start event (the least key), and of the earliest (time, key)
    /// event that has one.
    start_model: Option<(String, Option<String>)>,
    first_model: Option<(i64, String, String)>,
}

impl TurnAcc {
    /// One event of the turn: its kind's key part, `time_ns` column, key and model column.
    fn add(&mut self, kind: &str, raw_t: i64, key: &str, model: Option<&str>) {
        let t = nonzero(Some(raw_t));
        self.count += 1;
        let merge = |cur: Option<i64>, f: fn(i64, i64) -> i64| match (cur, t) {
            (Some(c), Some(t)) => Some(f(c, t)),
            (c, t) => c.or(t),
        };
        self.min = merge(self.min, i64::min);
        self.max = merge(self.max, i64::max);
        let is_start = kind == Kind::TurnStart.key_part();
        if is_start {
            self.start = merge(self.start, i64::min);
            if self
                .start_model
                .as_ref()
                .is_none_or(|(k, _)| key < k.as_str())
            {
                self.start_model = Some((key.to_string(), model.map(str::to_string)));
            }
        } else if kind == Kind::TurnEnd.key_part() {
            self.end = merge(self.end, i64::max);
        }
        if kind == Kind::UserPrompt.key_part()
            && self.prompt_key.as_ref().is_none_or(|k| key < k.as_str())
        {
            self.prompt_key = Some(key.to_string());
        }
        if let Some(m) = model {
            if self
                .first_model
                .as_ref()
                .is_none_or(|(ft, fk, _)| (raw_t, key) < (*ft, fk.as_str()))
            {
                self.first_model = Some((raw_t, key.to_string(), m.to_string()));
            }
        }
    }

    fn started(&self) -> Option<i64> {
        self.start.or(self.min)
    }

    /// Writes the turn's row (`ordinal` as given: [`ordinals`] numbers turns).
    fn write(
        &self,
        conn: &HotStatements<'_>,
        t: &Touched,
        session: &str,
        turn: &str,
        ordinal: Option<i64>,
    ) -> Result<(), StoreError> {
        let prompt = match &self.prompt_key {
            Some(k) => record(conn, t, session, turn, k)?.and_then(|r| body_text(Some(&r.body))),
            None => None,
        };
        let model = self
            .start_model
            .as_ref()
            .and_then(|(_, m)| m.as_deref())
            .or(self.first_model.as_ref().map(|(_, _, m)| m.as_str()));
        conn.run(Hot::TurnWrite, |s| {
            s.execute(params![
                session,
                turn,
                ordinal,
                self.started(),
                self.end.or(self.max),
                prompt,
                model
            ])
        })
        .map_err(sql("writing a turn"))?;
        Ok(())
    }
}

/// Recomputes one turn row; true when the turn appeared, disappeared or its start changed
/// (so the session's ordinals must be recomputed). An unchanged start keeps the ordinal.
fn turn_row(
    conn: &HotStatements<'_>,
    t: &Touched,
    session: &str,
    turn: &str,
) -> Result<bool, StoreError> {
    let old: Option<(Option<i64>, Option<i64>)> = conn
        .prepare_cached(
            "SELECT started_ns, ordinal FROM turns WHERE session_id = ?1 AND turn_id = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![session, turn], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(sql("reading a turn"))?;
    let mut acc = TurnAcc::default();
    {
        // One primary-key range scan: the turn's events, in key order.
        let mut stmt = conn
            .prepare_cached(
                "SELECT kind, time_ns, key, model FROM events WHERE session_id = ?1 AND turn_id = ?2",
            )
            .map_err(sql("reading a turn"))?;
        let mut rows = stmt
            .query(params![session, turn])
            .map_err(sql("reading a turn"))?;
        // Text columns read in place (NOT NULL but for `model`).
        fn text<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<Option<&'r str>, StoreError> {
            let v = r.get_ref(i).map_err(sql("reading a turn"))?;
            v.as_str_or_null()
                .map_err(|e| sql("reading a turn")(e.into()))
        }
        while let Some(r) = rows.next().map_err(sql("reading a turn"))? {
            let raw_t: i64 = r.get(1).map_err(sql("reading a turn"))?;
            acc.add(
                text(r, 0)?.unwrap_or_default(),
                raw_t,
                text(r, 2)?.unwrap_or_default(),
                text(r, 3)?,
            );
        }
    }
    if acc.count == 0 {
        if old.is_some() {
            conn.prepare_cached("DELETE FROM turns WHERE session_id = ?1 AND turn_id = ?2")
                .and_then(|mut s| s.execute(params![session, turn]))
                .map_err(sql("clearing a turn"))?;
        }
        return Ok(old.is_some());
    }
    let (moved, ordinal) = match old {
        Some((was, ordinal)) if was == acc.started() => (false, ordinal),
        _ => (true, None),
    };
    acc.write(conn, t, session, turn, ordinal)?;
    Ok(moved)
}

/// Whether `session` is new in this batch: the writer said what it did to every row it
/// touched, there is no stored session row and no turn row, and the session's rows are
/// exactly those the batch wrote (a count makes sure: a file may hold rows written without
/// derived rows). Then its turn and session rows are computed from the batch's rows in memory.
fn fresh_session(
    conn: &HotStatements<'_>,
    session: &str,
    b: &SessionBatch<'_>,
) -> Result<bool, StoreError> {
    if b.unknown {
        return Ok(false);
    }
    let derived: i64 = conn
        .prepare_cached(
            "SELECT (SELECT count(*) FROM sessions WHERE session_id = ?1)
                  + (SELECT count(*) FROM turns WHERE session_id = ?1)",
        )
        .and_then(|mut s| s.query_row([session], |r| r.get(0)))
        .map_err(sql("reading a session"))?;
    if derived != 0 {
        return Ok(false);
    }
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM events WHERE session_id = ?1")
        .and_then(|mut s| s.query_row([session], |r| r.get(0)))
        .map_err(sql("reading a session"))?;
    Ok(n == b.rows.len() as i64)
}

/// The turn rows of a fresh session ([`fresh_session`]) from the batch's rows, each written
/// once with its ordinal: the same function as [`turn_row`] and [`ordinals`] over the rows
/// the scans would read. Returns how many resolved turns it has.
fn fresh_turns(
    conn: &HotStatements<'_>,
    t: &Touched,
    session: &str,
    b: &SessionBatch<'_>,
) -> Result<i64, StoreError> {
    let mut turns: BTreeMap<&str, TurnAcc> = BTreeMap::new();
    for &(key, r) in &b.rows {
        if r.turn.is_empty() {
            continue;
        }
        turns.entry(r.turn.as_str()).or_default().add(
            r.kind.key_part(),
            r.time,
            key,
            r.attrs[3].as_deref(),
        );
    }
    // Resolved turns numbered 1, 2, … by (start, turn id), unknown starts last.
    let mut order: Vec<(bool, i64, &str)> = turns
        .iter()
        .filter(|(turn, _)| !turn.starts_with('~'))
        .map(|(turn, a)| {
            let started = a.started();
            (started.is_none(), started.unwrap_or(0), *turn)
        })
        .collect();
    order.sort();
    let ordinal: HashMap<&str, i64> = order
        .iter()
        .enumerate()
        .map(|(i, (_, _, turn))| (*turn, i as i64 + 1))
        .collect();
    for (turn, a) in &turns {
        a.write(conn, t, session, turn, ordinal.get(turn).copied())?;
    }
    Ok(order.len() as i64)
}

/// One pick of a session: the event that decides one of its columns, as (time, key) and the
/// value it gives. Its key is kept so that a batch that replaces or deletes that very event
/// knows the pick must be looked for again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Pick {
    /// `time_ns` of the event (0: unknown).
    t: i64,
    /// Its key.
    k: String,
    /// The value it gives (the agent, or the attribute), if the pick has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v: Option<String>,
}

/// The events a session row is computed from, kept in its `picks` column (schema v3) so that a
/// batch combines them with the rows it wrote instead of looking them up in indexes of
/// `events` that every event would pay for. Each is a function of the session's events:
/// `first` the earliest (time, key) event (its agent), `min` / `max` the earliest / latest
/// (time, key) event of known time, `attrs` per attribute column the earliest (time, key) event
/// that has it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Picks {
    first: Option<Pick>,
    min: Option<Pick>,
    max: Option<Pick>,
    attrs: [Option<Pick>; 4],
}

/// `cand` replaces `cur` when it is smaller (`max`: greater) by (time, key).
fn better(cur: &mut Option<Pick>, t: i64, k: &str, v: Option<&str>, max: bool) {
    let wins = match cur {
        None => true,
        Some(c) => {
            let o = (t, k).cmp(&(c.t, c.k.as_str()));
            if max {
                o.is_gt()
            } else {
                o.is_lt()
            }
        }
    };
    if wins {
        *cur = Some(Pick {
            t,
            k: k.to_string(),
            v: v.map(str::to_string),
        });
    }
}

impl Picks {
    /// Takes one event row into account.
    fn add(&mut self, t: i64, key: &str, agent: &str, attrs: [Option<&str>; 4]) {
        better(&mut self.first, t, key, Some(agent), false);
        if t > 0 {
            better(&mut self.min, t, key, None, false);
            better(&mut self.max, t, key, None, true);
        }
        for (pick, value) in self.attrs.iter_mut().zip(attrs) {
            if value.is_some() {
                better(pick, t, key, value, false);
            }
        }
    }

    /// The picks merged with those of other events (disjoint from this one's).
    fn merge(&mut self, o: &Picks) {
        let take = |cur: &mut Option<Pick>, p: &Option<Pick>, max| {
            if let Some(p) = p {
                better(cur, p.t, &p.k, p.v.as_deref(), max);
            }
        };
        take(&mut self.first, &o.first, false);
        take(&mut self.min, &o.min, false);
        take(&mut self.max, &o.max, true);
        for (cur, p) in self.attrs.iter_mut().zip(&o.attrs) {
            take(cur, p, false);
        }
    }

    /// The keys of the picked events.
    fn keys(&self) -> impl Iterator<Item = &str> {
        [&self.first, &self.min, &self.max]
            .into_iter()
            .chain(&self.attrs)
            .flatten()
            .map(|p| p.k.as_str())
    }

    fn text(&self) -> Result<String, StoreError> {
        serde_json::to_string(self).map_err(|e| StoreError::Corrupt {
            what: "session picks",
            reason: e.to_string(),
        })
    }
}

/// The picks and the number of events of `session`, from all its rows (one primary-key range
/// scan): for a session the batch cannot update from its own rows.
fn scan_session(conn: &Connection, session: &str) -> Result<(Picks, i64), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT time_ns, key, agent, cwd, git_branch, git_commit, model FROM events
             WHERE session_id = ?1",
        )
        .map_err(sql("reading a session"))?;
    let mut rows = stmt.query([session]).map_err(sql("reading a session"))?;
    let (mut picks, mut count) = (Picks::default(), 0i64);
    let text = |r: &rusqlite::Row<'_>, i: usize| -> Result<Option<String>, StoreError> {
        r.get(i).map_err(sql("reading a session"))
    };
    while let Some(r) = rows.next().map_err(sql("reading a session"))? {
        count += 1;
        let t: i64 = r.get(0).map_err(sql("reading a session"))?;
        let key: String = r.get(1).map_err(sql("reading a session"))?;
        let agent: String = r.get(2).map_err(sql("reading a session"))?;
        let attrs = [text(r, 3)?, text(r, 4)?, text(r, 5)?, text(r, 6)?];
        picks.add(t, &key, &agent, attrs.each_ref().map(|a| a.as_deref()));
    }
    Ok((picks, count))
}

/// Fills `sessions.picks` of every session (the v3 migration: older files have none).
pub(crate) fn fill_picks(conn: &Connection) -> Result<(), StoreError> {
    let sessions: Vec<String> = conn
        .prepare("SELECT session_id FROM sessions")
        .and_then(|mut s| {
            s.query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()
        })
        .map_err(sql("reading sessions"))?;
    for session in sessions {
        let picks = scan_session(conn, &session)?.0.text()?;
        conn.prepare_cached("UPDATE sessions SET picks = ?2 WHERE session_id = ?1")
            .and_then(|mut s| s.execute(params![session, picks]))
            .map_err(sql("writing session picks"))?;
    }
    Ok(())
}

/// What a batch did to the rows of one session.
#[derive(Default)]
struct SessionBatch<'a> {
    /// Some row was touched without the writer saying how: only a scan knows.
    unknown: bool,
    /// The picks among the rows the batch wrote, and those rows.
    written: Picks,
    rows: Vec<(&'a str, &'a Row)>,
    /// The keys of the rows it replaced, deleted or inserted (only ever asked for membership).
    keys: HashSet<&'a str>,
}

/// The batch's rows grouped by session.
fn by_session(t: &Touched) -> HashMap<&str, SessionBatch<'_>> {
    let mut out: HashMap<&str, SessionBatch<'_>> = HashMap::default();
    for (key, c) in &t.changed {
        let b = out.entry(c.session.as_str()).or_default();
        b.keys.insert(key.as_str());
        match &c.state {
            State::Unknown => b.unknown = true,
            State::Deleted => {}
            State::Written(r) => {
                b.rows.push((key.as_str(), r));
                b.written.add(
                    r.time,
                    key,
                    r.agent.as_str(),
                    r.attrs.each_ref().map(|a| a.as_deref()),
                )
            }
        }
    }
    out
}

/// Recomputes one session row; `delta` is the number of its events the batch added minus those
/// it deleted, `batch` what it did to its rows.
fn session_row(
    conn: &Connection,
    session: &str,
    delta: i64,
    batch: Option<&SessionBatch<'_>>,
) -> Result<(), StoreError> {
    // Nothing here reads an index of `events` but its primary key: the stored row's count and
    // picks are exact as of the last commit, so the batch's own rows update them. A session
    // without a stored row had no events before the batch (every batch writes the row of
    // every session it touches; counted to make sure). A scan of the session is only needed when the batch replaced
    // or deleted a picked event, for files without picks, and on a rebuild.
    let stored: Option<(i64, Option<String>)> = conn
        .prepare_cached("SELECT events, picks FROM sessions WHERE session_id = ?1")
        .and_then(|mut s| {
            s.query_row([session], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(sql("reading a session"))?;
    let (picks, count) = match (batch.filter(|b| !b.unknown), stored) {
        (Some(b), None) => {
            // Normally a new session; a count (cheaper than a scan) makes sure no rows
            // predate the batch (a file written without derived rows).
            let n: i64 = conn
                .prepare_cached("SELECT count(*) FROM events WHERE session_id = ?1")
                .and_then(|mut s| s.query_row([session], |r| r.get(0)))
                .map_err(sql("reading a session"))?;
            if n == b.rows.len() as i64 {
                (b.written.clone(), n)
            } else {
                scan_session(conn, session)?
            }
        }
        (Some(b), Some((n, Some(text)))) => {
            let mut picks: Picks =
                serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
                    what: "session picks",
                    reason: e.to_string(),
                })?;
            if picks.keys().any(|k| b.keys.contains(k)) {
                scan_session(conn, session)?
            } else {
                picks.merge(&b.written);
                (picks, n + delta)
            }
        }
        _ => scan_session(conn, session)?,
    };
    if count == 0 {
        conn.prepare_cached("DELETE FROM sessions WHERE session_id = ?1")
            .and_then(|mut s| s.execute([session]))
            .map_err(sql("clearing a session"))?;
        return Ok(());
    }
    // Session-level events have an empty turn part: few rows under (session_id, turn_id).
    let (mut start_key, mut ends) = (None::<String>, 0);
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
            }
        }
    }
    let turns: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM turns WHERE session_id = ?1 AND substr(turn_id, 1, 1) != '~'",
        )
        .and_then(|mut s| s.query_row([session], |r| r.get(0)))
        .map_err(sql("counting turns"))?;
    // cwd, git and model: the `session.start` event's if it has them, else the picks'.
    let mut start = None;
    if let Some(key) = &start_key {
        start = conn
            .prepare_cached(
                "SELECT cwd, git_branch, git_commit, model FROM events
                 WHERE session_id = ?1 AND turn_id = '' AND key = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![session, key], |r| {
                    Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?])
                })
                .optional()
            })
            .map_err(sql("reading event attributes"))?;
    }
    write_session(conn, session, &picks, count, start, ends, turns)
}

/// The session row of a fresh session ([`fresh_session`]) from the batch's rows: the same
/// function as [`session_row`]; `turns` is its number of resolved turns.
fn fresh_session_row(
    conn: &Connection,
    session: &str,
    b: &SessionBatch<'_>,
    turns: i64,
) -> Result<(), StoreError> {
    if b.rows.is_empty() {
        return Ok(());
    }
    let (mut start, mut ends) = (None::<(&str, &Row)>, 0);
    for &(key, r) in &b.rows {
        if !r.turn.is_empty() {
            continue;
        }
        match r.kind {
            Kind::SessionStart if start.is_none_or(|(k, _)| key < k) => {
                start = Some((key, r));
            }
            Kind::SessionEnd => ends += 1,
            _ => {}
        }
    }
    let start = start.map(|(_, r)| r.attrs.clone());
    write_session(
        conn,
        session,
        &b.written,
        b.rows.len() as i64,
        start,
        ends,
        turns,
    )
}

/// Writes the row of `session`: `count` events (not 0), its `picks`, the attribute columns of
/// its `session.start` event if it has one, its number of `session.end` events and of resolved
/// turns.
fn write_session(
    conn: &Connection,
    session: &str,
    picks: &Picks,
    count: i64,
    start: Option<[Option<String>; 4]>,
    ends: i64,
    turns: i64,
) -> Result<(), StoreError> {
    // The agent of the earliest event (a session id belongs to one agent).
    let agent = picks
        .first
        .as_ref()
        .and_then(|p| p.v.clone())
        .ok_or_else(|| StoreError::Corrupt {
            what: "session",
            reason: format!("{session}: events but no earliest event"),
        })?;
    // cwd, git and model: the `session.start` event's if it has them, else the picks'.
    let mut attrs = start.unwrap_or_default();
    for (a, p) in attrs.iter_mut().zip(&picks.attrs) {
        if a.is_none() {
            *a = p.as_ref().and_then(|p| p.v.clone());
        }
    }
    let [cwd, branch, commit, model] = attrs;
    let picks_text = picks.text()?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO sessions (session_id, agent, cwd, git_branch, git_commit, model, started_ns,
             ended_ns, status, turns, events, picks)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )
    .and_then(|mut s| {
        s.execute(params![
            session,
            agent,
            cwd,
            branch,
            commit,
            model,
            picks.min.as_ref().map(|p| p.t),
            // The last event's time: a resumed session (Codex ends a thread each time it
            // unloads it) ends after its last turn, not at its first end.
            picks.max.as_ref().map(|p| p.t),
            if ends > 0 { "ended" } else { "active" },
            turns,
            count,
            picks_text,
        ])
    })
    .map_err(sql("writing a session"))?;
    Ok(())
}

/// The numbering order of resolved turns: known starts first, by (start, turn id).
type TurnOrder = (bool, i64, String);

/// Numbers the resolved turns of `session` 1, 2, … by (start, turn id), unknown starts last.
/// The common case, turns appended after every numbered one, only numbers the new turns: when
/// the turns that kept their ordinal are exactly 1‥k (none moved before them or disappeared)
/// and every unnumbered turn sorts after all of them, the full renumbering would give the same
/// ordinals.
fn ordinals(conn: &Connection, session: &str) -> Result<(), StoreError> {
    let (mut numbered, mut max_ordinal) = (0i64, 0i64);
    let mut last: Option<TurnOrder> = None;
    let mut fresh: Vec<TurnOrder> = Vec::new();
    {
        let mut stmt = conn
            .prepare_cached(
                "SELECT started_ns, turn_id, ordinal FROM turns
                 WHERE session_id = ?1 AND substr(turn_id, 1, 1) != '~'",
            )
            .map_err(sql("numbering turns"))?;
        let mut rows = stmt.query([session]).map_err(sql("numbering turns"))?;
        while let Some(r) = rows.next().map_err(sql("numbering turns"))? {
            let started: Option<i64> = r.get(0).map_err(sql("numbering turns"))?;
            let turn: String = r.get(1).map_err(sql("numbering turns"))?;
            let ordinal: Option<i64> = r.get(2).map_err(sql("numbering turns"))?;
            let order = (started.is_none(), started.unwrap_or(0), turn);
            match ordinal {
                Some(n) => {
                    numbered += 1;
                    max_ordinal = max_ordinal.max(n);
                    if last.as_ref().is_none_or(|l| order > *l) {
                        last = Some(order);
                    }
                }
                None => fresh.push(order),
            }
        }
    }
    let appended =
        numbered == max_ordinal && fresh.iter().all(|f| last.as_ref().is_none_or(|l| f > l));
    if appended {
        fresh.sort();
        for (i, (_, _, turn)) in fresh.iter().enumerate() {
            conn.prepare_cached(
                "UPDATE turns SET ordinal = ?3 WHERE session_id = ?1 AND turn_id = ?2",
            )
            .and_then(|mut s| s.execute(params![session, turn, numbered + 1 + i as i64]))
            .map_err(sql("numbering turns"))?;
        }
        return Ok(());
    }
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
