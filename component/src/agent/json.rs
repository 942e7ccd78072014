//! A JSON writer for the texts the pipeline hashes and stores (the archive form of a record,
//! the record itself), producing exactly what `serde_json`'s compact serialiser writes.
//!
//! Why not `serde_json` itself: its string escaping looks at one byte at a time, and these
//! texts are mostly long strings (tool output, prompts, messages) with nothing to escape; it
//! was over half of the cost of `AgentRecord::observation_json`. Here eight bytes are checked
//! at once and clean runs are copied whole. The output is pinned to `serde_json`'s by the
//! tests below (escapes, numbers, nesting) and by the record tests.

use std::fmt::Write as _;

use serde_json::Value as Json;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Whether none of the eight bytes of `w` needs escaping (`"`, `\` or a control byte below
/// 0x20). Exact as a whole-word test: a borrow can only mark a byte above one that truly
/// matched.
#[inline]
fn clean(w: u64) -> bool {
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let b = w ^ (ONES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(ONES) & !b;
    (control | quote | backslash) & HIGH == 0
}

/// The escape of byte `c`, if it needs one (serde_json's table: the short forms, else
/// `\u00xx` in lowercase hex).
#[inline]
fn escape_of(c: u8, out: &mut String) -> bool {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match c {
        b'"' => "\\\"",
        b'\\' => "\\\\",
        b'\n' => "\\n",
        b'\r' => "\\r",
        b'\t' => "\\t",
        0x08 => "\\b",
        0x0c => "\\f",
        0..=0x1f => {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(c >> 4)]));
            out.push(char::from(HEX[usize::from(c & 0xf)]));
            return true;
        }
        _ => return false,
    };
    out.push_str(short);
    true
}

/// `s` as a JSON string, quotes included.
pub(crate) fn string(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(w) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            if clean(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        let end = (i + 8).min(bytes.len());
        while i < end {
            let c = bytes[i];
            if c < 0x20 || c == b'"' || c == b'\\' {
                // `i` is at an ASCII byte, so both slices end on character boundaries.
                out.push_str(&s[start..i]);
                escape_of(c, out);
                start = i + 1;
            }
            i += 1;
        }
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// `v` as compact JSON.
pub(crate) fn value(out: &mut String, v: &Json) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(true) => out.push_str("true"),
        Json::Bool(false) => out.push_str("false"),
        // `Number`'s Display is the serialiser's text (itoa / the shortest finite float).
        Json::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Json::String(s) => string(out, s),
        Json::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                value(out, x);
            }
            out.push(']');
        }
        Json::Object(m) => object(out, m.iter()),
    }
}

/// A JSON object of `entries`, in their order.
pub(crate) fn object<'a>(out: &mut String, entries: impl Iterator<Item = (&'a String, &'a Json)>) {
    out.push('{');
    for (i, (k, x)) in entries.enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, k);
        out.push(':');
        value(out, x);
    }
    out.push('}');
}

/// A generous guess of the length of `v`'s text (strings with a few escapes), so the buffer
/// is allocated once.
pub(crate) fn estimate(v: &Json) -> usize {
    match v {
        Json::Null | Json::Bool(_) => 5,
        Json::Number(_) => 20,
        Json::String(s) => s.len() + s.len() / 16 + 2,
        Json::Array(a) => 2 + a.iter().map(|x| estimate(x) + 1).sum::<usize>(),
        Json::Object(m) => {
            2 + m
                .iter()
                .map(|(k, x)| k.len() + 4 + estimate(x))
                .sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ours(v: &Json) -> String {
        let mut s = String::new();
        value(&mut s, v);
        s
    }

    #[test]
    fn every_byte_escapes_as_serde_json_escapes_it() {
        for c in 0u32..0x300 {
            let Some(ch) = char::from_u32(c) else {
                continue;
            };
            for s in [
                ch.to_string(),
                format!("abcdefg{ch}"),
                format!("abcdefgh{ch}ijklmnop"),
                format!("{ch}{ch}{ch}{ch}{ch}{ch}{ch}{ch}{ch}é"),
            ] {
                let v = Json::String(s);
                assert_eq!(ours(&v), serde_json::to_string(&v).unwrap());
            }
        }
    }

    #[test]
    fn numbers_and_nesting_match() {
        let v = serde_json::json!({
            "a": [1, -2, 2.5, 1e300, -0.0, 0.1, u64::MAX, i64::MIN, null, true, false],
            "b": {"c\n": "x\"y\\z", "": {}},
            "e": [],
        });
        assert_eq!(ours(&v), serde_json::to_string(&v).unwrap());
    }

    fn json() -> impl Strategy<Value = Json> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<i64>().prop_map(Json::from),
            any::<u64>().prop_map(Json::from),
            any::<f64>().prop_map(Json::from),
            any::<String>().prop_map(Json::String),
            "[ -~\\n\\t\"\\\\\u{1}\u{7f}é]{0,40}".prop_map(Json::String),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|m| Json::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_value_writes_as_serde_json_writes_it(v in json()) {
            prop_assert_eq!(ours(&v), serde_json::to_string(&v).unwrap());
            prop_assert!(estimate(&v) + 64 >= ours(&v).len() / 2);
        }
    }
}
