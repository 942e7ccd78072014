//! The compact binary form of a key's state (`keys.state`, schema 2), and the key's row id.
//!
//! Hand-written rather than serde: `Merged` holds `serde_json::Value`s, which need a
//! self-describing format, and a direct encoding is several times smaller and faster than the
//! JSON of schema 1 (digests are 16 raw bytes, sources a bitmask, field values tagged).
//!
//! ```text
//! state   = FORMAT:u8 emitted:varint(0 = never, else revision + 1) origin:(0 | 1 i64le)
//!           sources:u8(bitmask) digests fields unsent supersedes
//! digests = n:varint n×[16]u8 m:varint m×str        (non-canonical digests as text)
//! fields  = n:varint n×(name rank:varint source:u8 value)
//! name    = 0:varint str | i:varint (NAMES[i - 1]: the usual fields, one byte instead of ~20)
//! value   = 0 null | 1 false | 2 true | 3 u64:varint | 4 i64:zigzag | 5 f64le | 6 str
//!         | 7 n:varint n×value | 8 n:varint n×(str value)
//! unsent  = n:varint n×str
//! supersedes = n:varint n×(key:str revision:varint time:varint)
//! str     = len:varint utf-8
//! ```
//!
//! `pending` and `due_ms` are columns (the flush task's index needs them), the key is its own
//! column.

use std::collections::{BTreeMap, BTreeSet};

use agentcol_component::agent::merge::Field;
use agentcol_component::agent::{AgentRecord, EventKey, Merged, Source};
use serde_json::Value as Json;

use crate::store::{DecisionKind, DecisionRow, KeyState, Tomb};

/// The first byte of every encoded state.
const FORMAT: u8 = 1;

const SOURCES: [Source; 5] = [
    Source::Otlp,
    Source::AppServer,
    Source::Hook,
    Source::Rollout,
    Source::Transcript,
];

/// Field names written as their 1-based index. Append only: the index is stored.
const NAMES: [&str; 44] = [
    "name",
    "time",
    "trace_id",
    "span_id",
    "body",
    "a:gen_ai.agent.name",
    "a:gen_ai.provider.name",
    "a:gen_ai.conversation.id",
    "a:gen_ai.tool.name",
    "a:gen_ai.tool.call.id",
    "a:gen_ai.request.model",
    "a:agent.turn.id",
    "a:agent.item.id",
    "a:agent.prompt.id",
    "a:agent.alias.trace_id",
    "a:agent.native.name",
    "a:agent.tool.input",
    "a:agent.tool.output",
    "a:agent.tool.exit_code",
    "a:agent.tool.success",
    "a:agent.duration_ms",
    "a:agent.cwd",
    "a:agent.git.branch",
    "a:agent.git.commit",
    "a:gen_ai.usage.input_tokens",
    "a:gen_ai.usage.output_tokens",
    "a:gen_ai.usage.cache_read.input_tokens",
    "a:gen_ai.usage.cache_creation.input_tokens",
    "a:agent.usage.reasoning_tokens",
    "a:agent.usage.total_tokens",
    "a:agent.usage.cost_usd",
    "a:agent.usage.scope",
    "a:codex.originator",
    "a:codex.model",
    "a:codex.turn.id",
    "a:claude_code.session.id",
    "a:claude_code.prompt.id",
    "a:agent.approval.decision",
    "a:agent.approval.id",
    "a:agent.message.role",
    "a:agent.subagent.id",
    "a:agent.error.message",
    "a:agent.hook.name",
    "a:agent.capture.state",
];

/// Index in [`NAMES`] by field name, and by attribute name (the field `a:<attribute>`). A
/// linear search of the 44 names per attribute was about half of [`fields_of`].
type NameIndex = std::collections::HashMap<&'static str, usize, foldhash::fast::FixedState>;

fn name_indexes() -> &'static (NameIndex, NameIndex) {
    static INDEXES: std::sync::OnceLock<(NameIndex, NameIndex)> = std::sync::OnceLock::new();
    INDEXES.get_or_init(|| {
        let fields = NAMES.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let attributes = NAMES
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((n.strip_prefix("a:")?, i)))
            .collect();
        (fields, attributes)
    })
}

/// The index in [`NAMES`] of field `n`.
fn name_index(n: &str) -> Option<usize> {
    name_indexes().0.get(n).copied()
}

/// The index in [`NAMES`] of the field of attribute `k` (`a:<k>`).
fn attribute_index(k: &str) -> Option<usize> {
    name_indexes().1.get(k).copied()
}

fn name(out: &mut Vec<u8>, n: &str) {
    match name_index(n) {
        Some(i) => varint(out, i as u64 + 1),
        None => {
            out.push(0);
            string(out, n);
        }
    }
}

fn source_id(s: Source) -> u8 {
    match s {
        Source::Otlp => 0,
        Source::AppServer => 1,
        Source::Hook => 2,
        Source::Rollout => 3,
        Source::Transcript => 4,
    }
}

/// The row id of a key: the high 32 bits hash the key's agent and session, the low 32 bits the
/// whole key. A session's keys are thus clustered in the B-tree (a request touches few pages),
/// and a full 64-bit collision of two different keys, which the store resolves through its
/// overflow table, needs two keys of one session colliding on 32 bits of the whole-key hash.
pub(crate) fn key_id(text: &str) -> i64 {
    // `v1|<agent>|<session>|…`: the prefix up to the third `|`.
    let mut bars = 0;
    let end = text
        .bytes()
        .position(|b| {
            bars += (b == b'|') as u32;
            bars == 3
        })
        .unwrap_or(text.len());
    let session = xxhash_rust::xxh3::xxh3_64(&text.as_bytes()[..end]);
    let whole = xxhash_rust::xxh3::xxh3_64(text.as_bytes());
    ((session & 0xffff_ffff_0000_0000) | (whole & 0xffff_ffff)) as i64
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn string(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn value(out: &mut Vec<u8>, v: &Json) {
    match v {
        Json::Null => out.push(0),
        Json::Bool(false) => out.push(1),
        Json::Bool(true) => out.push(2),
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push(3);
                varint(out, u);
            } else if let Some(i) = n.as_i64() {
                out.push(4);
                varint(out, ((i << 1) ^ (i >> 63)) as u64);
            } else {
                out.push(5);
                out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_le_bytes());
            }
        }
        Json::String(s) => {
            out.push(6);
            string(out, s);
        }
        Json::Array(a) => {
            out.push(7);
            varint(out, a.len() as u64);
            for x in a {
                value(out, x);
            }
        }
        Json::Object(m) => {
            out.push(8);
            varint(out, m.len() as u64);
            for (k, x) in m {
                string(out, k);
                value(out, x);
            }
        }
    }
}

/// 32 lowercase hex digits (what `merge::digest` writes) as 16 bytes.
fn digest_bytes(d: &str) -> Option<[u8; 16]> {
    let b = d.as_bytes();
    if b.len() != 32 {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nib(b[2 * i])? << 4) | nib(b[2 * i + 1])?;
    }
    Some(out)
}

fn digest_text(b: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(32);
    for x in b {
        s.push(HEX[(x >> 4) as usize] as char);
        s.push(HEX[(x & 15) as usize] as char);
    }
    s
}

/// Encodes everything of a key's state but the key, `pending` and `due_ms`.
pub(crate) fn encode(st: &KeyState) -> Vec<u8> {
    encode_with(st, None)
}

/// [`encode`], with the `fields` part already encoded when `fields` is given ([`fields_of`]:
/// a state whose `merged.fields` was never filled in).
pub(crate) fn encode_with(st: &KeyState, fields: Option<&[u8]>) -> Vec<u8> {
    let m = &st.merged;
    let mut out = Vec::with_capacity(256);
    out.push(FORMAT);
    varint(&mut out, st.emitted.map_or(0, |e| e.saturating_add(1)));
    match st.origin {
        None => out.push(0),
        Some(o) => {
            out.push(1);
            out.extend_from_slice(&o.to_le_bytes());
        }
    }
    out.push(m.sources.iter().fold(0u8, |a, s| a | 1 << source_id(*s)));
    let (canonical, other): (Vec<_>, Vec<_>) = m
        .digests
        .iter()
        .map(|d| (d, digest_bytes(d)))
        .partition(|(_, b)| b.is_some());
    varint(&mut out, canonical.len() as u64);
    for (_, b) in &canonical {
        out.extend_from_slice(b.as_ref().map_or(&[0u8; 16], |b| b));
    }
    varint(&mut out, other.len() as u64);
    for (d, _) in &other {
        string(&mut out, d);
    }
    match fields {
        Some(f) => out.extend_from_slice(f),
        None => merged_fields(&mut out, m),
    }
    varint(&mut out, st.unsent.len() as u64);
    for u in &st.unsent {
        string(&mut out, u);
    }
    varint(&mut out, st.supersedes.len() as u64);
    for t in &st.supersedes {
        string(&mut out, &t.key.to_string());
        varint(&mut out, t.revision);
        varint(&mut out, t.time);
    }
    out
}

fn merged_fields(out: &mut Vec<u8>, m: &Merged) {
    varint(out, m.fields.len() as u64);
    for (n, f) in &m.fields {
        name(out, n);
        varint(out, f.rank as u64);
        out.push(source_id(f.source));
        value(out, &f.value);
    }
}

/// The `fields` part of [`encode`] for the `fields` of `Merged::add` of `obs` into an empty
/// event with `rank` for its source, straight from the observation (no `Field`s, names or
/// value copies). Byte-identical to encoding that `Merged` (checked by the debug build on every
/// use, and by a test).
pub(crate) fn fields_of(obs: &AgentRecord, rank: u32) -> Vec<u8> {
    let source = source_id(obs.source.unwrap_or(Source::Otlp));
    let mut out = Vec::with_capacity(64 + obs.body.as_str().map_or(0, str::len));
    let n = 1
        + (obs.time_unix_nano != 0) as usize
        + !obs.trace_id.is_empty() as usize
        + !obs.span_id.is_empty() as usize
        + !obs.body.is_null() as usize
        + obs.attributes.len();
    varint(&mut out, n as u64);
    let head = |out: &mut Vec<u8>, n: usize| {
        varint(out, n as u64);
        varint(out, rank as u64);
        out.push(source);
    };
    // The order of `Merged::fields` (a BTreeMap): every `a:<attribute>` (in attribute order),
    // then `body`, `name`, `span_id`, `time`, `trace_id`.
    for (k, v) in &obs.attributes {
        match attribute_index(k) {
            Some(i) => varint(&mut out, i as u64 + 1),
            None => {
                out.push(0);
                varint(&mut out, k.len() as u64 + 2);
                out.extend_from_slice(b"a:");
                out.extend_from_slice(k.as_bytes());
            }
        }
        varint(&mut out, rank as u64);
        out.push(source);
        value(&mut out, v);
    }
    if !obs.body.is_null() {
        head(&mut out, 5);
        value(&mut out, &obs.body);
    }
    head(&mut out, 1);
    out.push(6);
    string(&mut out, &obs.name);
    if !obs.span_id.is_empty() {
        head(&mut out, 4);
        out.push(6);
        string(&mut out, &obs.span_id);
    }
    if obs.time_unix_nano != 0 {
        head(&mut out, 2);
        out.push(3);
        varint(&mut out, obs.time_unix_nano);
    }
    if !obs.trace_id.is_empty() {
        head(&mut out, 3);
        out.push(6);
        string(&mut out, &obs.trace_id);
    }
    out
}

/// The `fields` part of [`encode`] of `m` (to check [`fields_of`]).
#[cfg(debug_assertions)]
pub(crate) fn fields(m: &Merged) -> Vec<u8> {
    let mut out = Vec::new();
    merged_fields(&mut out, m);
    out
}

struct Reader<'a> {
    b: &'a [u8],
}

type R<T> = Result<T, String>;

impl<'a> Reader<'a> {
    fn byte(&mut self) -> R<u8> {
        let (&x, rest) = self.b.split_first().ok_or("truncated")?;
        self.b = rest;
        Ok(x)
    }

    fn bytes(&mut self, n: usize) -> R<&'a [u8]> {
        if self.b.len() < n {
            return Err("truncated".into());
        }
        let (x, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(x)
    }

    fn varint(&mut self) -> R<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let x = self.byte()?;
            v |= ((x & 0x7f) as u64) << shift;
            if x < 0x80 {
                return Ok(v);
            }
        }
        Err("bad varint".into())
    }

    fn len(&mut self) -> R<usize> {
        let n = self.varint()?;
        // Every element takes at least one byte: a count beyond the rest is corrupt.
        if n > self.b.len() as u64 {
            return Err("bad length".into());
        }
        Ok(n as usize)
    }

    fn i64(&mut self) -> R<i64> {
        let b = self.bytes(8)?;
        Ok(i64::from_le_bytes(b.try_into().map_err(|_| "truncated")?))
    }

    fn string(&mut self) -> R<String> {
        let n = self.len()?;
        let b = self.bytes(n)?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|e| e.to_string())
    }

    fn source(&mut self) -> R<Source> {
        let i = self.byte()?;
        SOURCES
            .get(i as usize)
            .copied()
            .ok_or_else(|| format!("unknown source {i}"))
    }

    fn value(&mut self, depth: u32) -> R<Json> {
        if depth > 512 {
            return Err("nested too deep".into());
        }
        Ok(match self.byte()? {
            0 => Json::Null,
            1 => Json::Bool(false),
            2 => Json::Bool(true),
            3 => Json::from(self.varint()?),
            4 => {
                let z = self.varint()?;
                Json::from(((z >> 1) as i64) ^ -((z & 1) as i64))
            }
            5 => {
                let b = self.bytes(8)?;
                let f = f64::from_le_bytes(b.try_into().map_err(|_| "truncated")?);
                serde_json::Number::from_f64(f)
                    .map(Json::Number)
                    .ok_or("non-finite number")?
            }
            6 => Json::String(self.string()?),
            7 => {
                let n = self.len()?;
                let mut a = Vec::with_capacity(n);
                for _ in 0..n {
                    a.push(self.value(depth + 1)?);
                }
                Json::Array(a)
            }
            8 => {
                let n = self.len()?;
                let mut m = serde_json::Map::new();
                for _ in 0..n {
                    let k = self.string()?;
                    let v = self.value(depth + 1)?;
                    m.insert(k, v);
                }
                Json::Object(m)
            }
            t => return Err(format!("unknown value tag {t}")),
        })
    }
}

/// Decodes a state written by [`encode`] for `key` (`pending`, `due_ms` from their columns).
pub(crate) fn decode(
    key: &EventKey,
    b: &[u8],
    pending: bool,
    due_ms: Option<i64>,
) -> Result<KeyState, String> {
    let mut r = Reader { b };
    let format = r.byte()?;
    if format != FORMAT {
        return Err(format!("unknown state format {format}"));
    }
    let emitted = r.varint()?.checked_sub(1);
    let origin = match r.byte()? {
        0 => None,
        1 => Some(r.i64()?),
        t => return Err(format!("bad origin tag {t}")),
    };
    let mask = r.byte()?;
    let sources: BTreeSet<Source> = SOURCES
        .iter()
        .filter(|s| mask & (1 << source_id(**s)) != 0)
        .copied()
        .collect();
    let mut digests = BTreeSet::new();
    let n = r.len()?;
    for _ in 0..n {
        digests.insert(digest_text(r.bytes(16)?));
    }
    let n = r.len()?;
    for _ in 0..n {
        digests.insert(r.string()?);
    }
    let mut fields = BTreeMap::new();
    let n = r.len()?;
    for _ in 0..n {
        let name = match r.varint()? {
            0 => r.string()?,
            i => NAMES
                .get(i as usize - 1)
                .ok_or_else(|| format!("unknown field name {i}"))?
                .to_string(),
        };
        let rank = u32::try_from(r.varint()?).map_err(|e| e.to_string())?;
        let source = r.source()?;
        let value = r.value(0)?;
        fields.insert(
            name,
            Field {
                rank,
                source,
                value,
            },
        );
    }
    let n = r.len()?;
    let mut unsent = Vec::with_capacity(n);
    for _ in 0..n {
        unsent.push(r.string()?);
    }
    let n = r.len()?;
    let mut supersedes = Vec::with_capacity(n);
    for _ in 0..n {
        let k: EventKey = r.string()?.parse().map_err(|e| format!("{e}"))?;
        supersedes.push(Tomb {
            key: k,
            revision: r.varint()?,
            time: r.varint()?,
        });
    }
    if !r.b.is_empty() {
        return Err("trailing bytes".into());
    }
    Ok(KeyState {
        merged: Merged {
            key: key.clone(),
            fields,
            sources,
            digests,
        },
        emitted,
        pending,
        due_ms,
        unsent,
        unsent_heads: Vec::new(),
        supersedes,
        origin,
    })
}

/// The key of a decision in the log: its row id in `keys` (a key that is never deleted, while
/// no key is in `keys_overflow`), or its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LogKey {
    Id(i64),
    Text(String),
}

/// One decision as read back from the log: key, decision, revision, source, note.
pub(crate) type LogEntry = (
    LogKey,
    DecisionKind,
    Option<u64>,
    Option<String>,
    Option<String>,
);

/// The decisions of one commit (`decision_log.rows`, schema 2): `n:varint` then per decision
/// `flags:u8` (1 key by id, 2 revision, 4 source, 8 note) `decision:u8`, the key (`i64le` or
/// `str`), then what the flags announce (`varint`, `str`, `str`). By id, the key text of a
/// 1000-record commit is not written a second time (it is in `keys`).
pub(crate) fn encode_log(rows: &[DecisionRow], by_id: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * rows.len() + 8);
    varint(&mut out, rows.len() as u64);
    for d in rows {
        // Provisional keys are deleted when their alias resolves: those keep their text.
        let id = (by_id && !d.key.contains("|~")).then(|| key_id(&d.key));
        let flags = id.is_some() as u8
            | (d.revision.is_some() as u8) << 1
            | (d.source.is_some() as u8) << 2
            | (d.note.is_some() as u8) << 3;
        out.push(flags);
        out.push(
            DecisionKind::ALL
                .iter()
                .position(|k| *k == d.decision)
                .unwrap_or(0) as u8,
        );
        match id {
            Some(id) => out.extend_from_slice(&id.to_le_bytes()),
            None => string(&mut out, &d.key),
        }
        if let Some(r) = d.revision {
            varint(&mut out, r);
        }
        if let Some(s) = d.source {
            string(&mut out, s);
        }
        if let Some(n) = &d.note {
            string(&mut out, n);
        }
    }
    out
}

/// Reads [`encode_log`].
pub(crate) fn decode_log(b: &[u8]) -> Result<Vec<LogEntry>, String> {
    let mut r = Reader { b };
    let n = r.len()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let flags = r.byte()?;
        let decision = *DecisionKind::ALL
            .get(r.byte()? as usize)
            .ok_or("unknown decision")?;
        let key = if flags & 1 != 0 {
            LogKey::Id(r.i64()?)
        } else {
            LogKey::Text(r.string()?)
        };
        let revision = if flags & 2 != 0 {
            Some(r.varint()?)
        } else {
            None
        };
        let source = if flags & 4 != 0 {
            Some(r.string()?)
        } else {
            None
        };
        let note = if flags & 8 != 0 {
            Some(r.string()?)
        } else {
            None
        };
        out.push((key, decision, revision, source, note));
    }
    if !r.b.is_empty() {
        return Err("trailing bytes".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentcol_component::agent::{Agent, AgentRecord, Kind, Precedence};

    fn key(turn: &str, item: &str) -> EventKey {
        EventKey::new(
            Agent::Codex,
            "s|1",
            Some(turn),
            Some(item),
            Kind::ToolResult,
        )
        .unwrap()
    }

    #[test]
    fn states_round_trip_exactly() {
        let k = key("u", "call_1");
        let p = Precedence::default();
        let mut st = KeyState::new(Merged::new(k.clone()), Some(-42));
        for (i, source) in [Source::Otlp, Source::Hook, Source::AppServer]
            .into_iter()
            .enumerate()
        {
            let mut o =
                AgentRecord::observation(k.clone(), "agent.tool.result", source, 7 + i as u64);
            o.set("n", i as i64 - 1)
                .set("big", u64::MAX)
                .set("neg", i64::MIN)
                .set("f", 2.5)
                .set("ok", i == 1)
                .set(
                    "nested",
                    serde_json::json!({"z": [1, {"y": null}], "a": "é\u{0}"}),
                );
            o.body = format!("out {i}").into();
            o.trace_id = "0af7651916cd43dd8448eb211c80319c".into();
            st.merged.add(&o, &p);
            st.unsent.push(o.observation_json());
        }
        st.merged.digests.insert("not-a-digest".into());
        st.merged.fields.insert(
            "a:unlisted".into(),
            Field {
                rank: 1,
                source: Source::Hook,
                value: Json::Null,
            },
        );
        st.emitted = Some(3);
        st.supersedes.push(Tomb {
            key: key("~trace:ab", "call_1"),
            revision: 2,
            time: 99,
        });
        let b = encode(&st);
        let back = decode(&k, &b, true, Some(5)).unwrap();
        assert_eq!(back.merged, st.merged);
        assert_eq!(
            serde_json::to_string(&back.merged).unwrap(),
            serde_json::to_string(&st.merged).unwrap()
        );
        assert_eq!(back.emitted, Some(3));
        assert_eq!(back.origin, Some(-42));
        assert_eq!(back.unsent, st.unsent);
        assert_eq!(back.supersedes, st.supersedes);
        assert!(back.pending && back.due_ms == Some(5));
        let empty = KeyState::new(Merged::new(k.clone()), None);
        let back = decode(&k, &encode(&empty), false, None).unwrap();
        assert_eq!(back.merged, empty.merged);
        assert_eq!((back.emitted, back.origin), (None, None));
        for cut in 0..b.len() {
            assert!(decode(&k, &b[..cut], false, None).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn listed_names_are_distinct() {
        let set: BTreeSet<&str> = NAMES.into_iter().collect();
        assert_eq!(set.len(), NAMES.len());
        for (i, n) in NAMES.iter().enumerate() {
            assert_eq!(name_index(n), Some(i));
            assert_eq!(
                n.strip_prefix("a:").and_then(attribute_index),
                n.strip_prefix("a:").map(|_| i)
            );
        }
        assert_eq!(name_index("a:no.such.attribute"), None);
        assert_eq!(attribute_index("gen_ai.tool"), None);
        assert_eq!(attribute_index("name"), None);
    }

    #[test]
    fn decision_logs_round_trip() {
        let real = key("u", "call_1").to_string();
        let prov = key("~trace:ab", "call_1").to_string();
        let rows = vec![
            DecisionRow {
                key: real.as_str().into(),
                decision: DecisionKind::Revised,
                revision: Some(3),
                source: Some("hook"),
                note: None,
            },
            DecisionRow {
                key: prov.as_str().into(),
                decision: DecisionKind::Tombstone,
                revision: None,
                source: None,
                note: Some("superseded by x".into()),
            },
        ];
        let back = decode_log(&encode_log(&rows, true)).unwrap();
        assert_eq!(back[0].0, LogKey::Id(key_id(&real)));
        assert_eq!(back[1].0, LogKey::Text(prov.clone()));
        assert_eq!(
            (back[0].1, back[0].2, back[0].3.as_deref()),
            (DecisionKind::Revised, Some(3), Some("hook"))
        );
        assert_eq!(back[1].4.as_deref(), Some("superseded by x"));
        let back = decode_log(&encode_log(&rows, false)).unwrap();
        assert_eq!(back[0].0, LogKey::Text(real));
    }

    #[test]
    fn ids_cluster_by_session() {
        let a = key_id(&key("u", "call_1").to_string());
        let b = key_id(&key("v", "call_2").to_string());
        assert_ne!(a, b);
        assert_eq!(a >> 32, b >> 32);
        let other = EventKey::new(
            Agent::Codex,
            "t",
            Some("u"),
            Some("call_1"),
            Kind::ToolResult,
        )
        .unwrap();
        assert_ne!(key_id(&other.to_string()) >> 32, a >> 32);
    }
}
