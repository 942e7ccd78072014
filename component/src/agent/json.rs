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
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` that is zero, and of no other: `(x & 0x7f) + 0x7f` stays
/// within its byte, so no carry crosses into a neighbour and the mask is exact per byte.
#[inline]
fn zero_bytes(w: u64) -> u64 {
    !(((w & LOW7) + LOW7) | w | LOW7)
}

/// The high bit of each byte of `w` that needs escaping (`"`, `\` or a control byte below
/// 0x20), exactly: the lowest set bit marks the first such byte (little-endian order).
#[inline]
fn needs_escape(w: u64) -> u64 {
    // x < 0x20 ⇔ bit 7 clear and (x & 0x7f) + 0x60 below 0x80 (again no carry out of a byte).
    let control = !(((w & LOW7) + ONES * 0x60) | w) & HIGH;
    control | zero_bytes(w ^ (ONES * u64::from(b'"'))) | zero_bytes(w ^ (ONES * u64::from(b'\\')))
}

/// Whether byte `c` needs escaping.
#[inline]
fn escapes(c: u8) -> bool {
    c < 0x20 || c == b'"' || c == b'\\'
}

/// The eight bytes at `at` as a little-endian word (`at + 8 <= b.len()`).
#[inline]
fn word(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The first index at or after `from` whose byte needs escaping. Eight bytes at a time; the
/// last partial word is read as the final eight bytes of the text, overlapping bytes already
/// known clean, so only texts shorter than eight bytes are looked at one byte at a time.
#[inline]
fn next_escape(b: &[u8], mut from: usize) -> Option<usize> {
    let n = b.len();
    while from + 8 <= n {
        let m = needs_escape(word(b, from));
        if m != 0 {
            return Some(from + (m.trailing_zeros() / 8) as usize);
        }
        from += 8;
    }
    if from >= n {
        None
    } else if n >= 8 {
        // Bytes of the overlap below `from` are masked out: they were already scanned.
        let base = n - 8;
        let m = needs_escape(word(b, base)) & (u64::MAX << ((from - base) * 8));
        (m != 0).then(|| base + (m.trailing_zeros() / 8) as usize)
    } else {
        (from..n).find(|&i| escapes(b[i]))
    }
}

/// The escape of byte `c` (serde_json's table: the short forms, else `\u00xx` in lowercase
/// hex).
#[inline]
fn escape(c: u8, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match c {
        b'"' => "\\\"",
        b'\\' => "\\\\",
        b'\n' => "\\n",
        b'\r' => "\\r",
        b'\t' => "\\t",
        0x08 => "\\b",
        0x0c => "\\f",
        _ => {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(c >> 4)]));
            out.push(char::from(HEX[usize::from(c & 0xf)]));
            return;
        }
    };
    out.push_str(short);
}

/// `s` as a JSON string, quotes included.
pub(crate) fn string(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push('"');
    let mut start = 0;
    while let Some(i) = next_escape(bytes, start) {
        // The byte at `i` is ASCII, so both slices end on character boundaries.
        out.push_str(&s[start..i]);
        escape(bytes[i], out);
        start = i + 1;
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
        // Escapes grow the text: tool inputs are JSON in a string (a quote in every few bytes).
        Json::String(s) => s.len() + s.len() / 4 + 2,
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
    fn neighbours_of_an_escape_and_every_tail_length_match() {
        // Bytes next to one that needs escaping, at every offset of texts of every length up
        // to three words: a word-at-a-time test that let one match mark its neighbour, or a
        // tail read that missed or repeated a byte, would show here.
        let edge = [
            '"', '\\', '\u{1f}', '\u{0}', ' ', '#', '!', ']', '\u{7f}', 'a', 'é',
        ];
        for len in 1..=24 {
            for at in 0..len {
                for a in edge {
                    for b in edge {
                        let mut t: Vec<char> = std::iter::repeat_n('x', len).collect();
                        t[at] = a;
                        if at + 1 < len {
                            t[at + 1] = b;
                        }
                        let v = Json::String(t.into_iter().collect());
                        assert_eq!(ours(&v), serde_json::to_string(&v).unwrap());
                    }
                }
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
