//! Per-observation text built with fewer allocations: the key text and the observation's
//! archive JSON.
//!
//! Why: both are made once per observation, and the component's `to_string`-based forms start
//! from an empty or 128-byte buffer and grow it (three or four reallocations and copies for a
//! typical ~1 KB observation), which was a visible share of `observe` in the profile. Here the
//! key text is sized up front and the JSON is written into a scratch buffer the engine reuses,
//! then copied once into a string of exactly its size. The bytes are the component's: the
//! view below has the fields, names, order and skip rules of
//! `AgentRecord::observation_json_keyed` (the tests, and every debug-build use, compare the two).

use std::collections::BTreeMap;

use agentcol_component::agent::{AgentRecord, EventKey, Source};
use serde::Serialize;
use serde_json::Value as Json;

/// `key.to_string()` (`v1|<agent>|<session>|<turn>|<item>|<kind>`, `%` and `|` in the parts
/// escaped as `%25` and `%7C`), sized up front and escaped by bytes: the component's
/// `Display` searches each part char by char, ~1.8k instructions per key, and this runs once or
/// twice per observation.
pub(crate) fn key_text(key: &EventKey) -> String {
    let (session, turn, item) = (key.session(), key.turn(), key.item());
    let agent = key.agent().as_str();
    let kind = key.kind().key_part();
    let mut s = String::with_capacity(
        8 + agent.len() + session.len() + turn.len() + item.len() + kind.len(),
    );
    s.push_str("v1|");
    s.push_str(agent);
    for part in [session, turn, item] {
        s.push('|');
        push_escaped(&mut s, part);
    }
    s.push('|');
    s.push_str(kind);
    debug_assert_eq!(s, key.to_string());
    s
}

/// Appends `part` with `%` and `|` escaped (both ASCII, so a byte position is a char boundary).
fn push_escaped(out: &mut String, part: &str) {
    let mut start = 0;
    for (i, b) in part.bytes().enumerate() {
        let escaped = match b {
            b'%' => "%25",
            b'|' => "%7C",
            _ => continue,
        };
        out.push_str(&part[start..i]);
        out.push_str(escaped);
        start = i + 1;
    }
    out.push_str(&part[start..]);
}

/// `obs.observation_json_keyed(key_text)`, written through `scratch` (kept between calls so
/// that it has grown to the usual size once).
pub(crate) fn observation_json(obs: &AgentRecord, key_text: &str, scratch: &mut Vec<u8>) -> String {
    #[derive(Serialize)]
    struct View<'a> {
        key: &'a str,
        name: &'a str,
        time_unix_nano: u64,
        #[serde(skip_serializing_if = "str::is_empty")]
        trace_id: &'a str,
        #[serde(skip_serializing_if = "str::is_empty")]
        span_id: &'a str,
        attributes: &'a BTreeMap<String, Json>,
        body: &'a Json,
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<Source>,
    }
    scratch.clear();
    let view = View {
        key: key_text,
        name: &obs.name,
        time_unix_nano: obs.time_unix_nano,
        trace_id: &obs.trace_id,
        span_id: &obs.span_id,
        attributes: &obs.attributes,
        body: &obs.body,
        source: obs.source,
    };
    // Serialising these types into a Vec cannot fail, and serde_json writes UTF-8 only; the
    // fallbacks are the component's (`unwrap_or_default`).
    let json = match serde_json::to_writer(&mut *scratch, &view) {
        Ok(()) => std::str::from_utf8(scratch)
            .map(String::from)
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    debug_assert_eq!(json, obs.observation_json_keyed(key_text));
    json
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentcol_component::agent::{Agent, Kind};

    #[test]
    fn same_text_as_the_component() {
        let mut scratch = Vec::new();
        for (i, source) in [Some(Source::Hook), None, Some(Source::AppServer)]
            .into_iter()
            .enumerate()
        {
            let key = EventKey::new(
                Agent::Codex,
                "se|ss\\ion",
                Some(if i == 1 { "t|u%rn" } else { "turn" }),
                Some(&format!("call_{i}")),
                Kind::ToolResult,
            )
            .unwrap();
            let mut r = AgentRecord::observation(key, "agent.tool.result", Source::Otlp, 17);
            r.source = source;
            if i != 1 {
                r.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736".into();
                r.span_id = "00f067aa0ba902b7".into();
            }
            r.set("tool.name", "exec \"command\"\n\u{1}é");
            r.set("duration_ms", 12);
            r.set("ok", true);
            r.body = serde_json::json!({"a": [1, 2.5, null, "x\ty"], "b": {}});
            let text = key_text(&r.key);
            assert_eq!(text, r.key.to_string());
            assert_eq!(
                observation_json(&r, &text, &mut scratch),
                r.observation_json_keyed(&text)
            );
        }
    }
}
