//! A JSON writer for the record text of `events` rows, byte for byte what `serde_json` writes
//! (compact, the same escapes), faster on long strings.
//!
//! Why: the store writes every merged record as JSON, and on the store pipeline's load most of
//! those bytes are in a few long strings (tool output, message text). `serde_json` checks them
//! byte by byte; this writer skips eight bytes at a time that need no escape. What it writes is
//! compared with `serde_json` in the tests (every byte value, nested values, numbers).

use serde_json::Value;

/// `0x01` in every byte of a word.
const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
/// `0x80` in every byte of a word.
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Whether one of the eight bytes of `w` needs an escape in a JSON string: a control character
/// (below `0x20`), `"` or `\\`. Each term flags a byte whose high bit a subtraction borrowed
/// into while the byte's own high bit is clear: exact as to *whether* (a borrow only flags
/// bytes above a flagged one), and bytes of `0x80` and more are never flagged.
fn needs_escape(w: u64) -> bool {
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    let below = w.wrapping_sub(ONES * 0x20) & !w;
    let is_quote = quote.wrapping_sub(ONES) & !quote;
    let is_backslash = backslash.wrapping_sub(ONES) & !backslash;
    (below | is_quote | is_backslash) & HIGHS != 0
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Per byte: 0 when it is written as it is, else the letter of its escape (`u`: `\u00xx`).
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = b'u';
        c += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Writes `s` as a JSON string, quotes included, with `serde_json`'s escapes: `\"`, `\\`,
/// `\b`, `\f`, `\n`, `\r`, `\t`, and `\u00xx` (lower-case hex) for the other control
/// characters; everything else verbatim. Words of eight bytes without an escape are skipped
/// whole.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        if let Some(chunk) = b.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            if !needs_escape(u64::from_ne_bytes(word)) {
                i += 8;
                continue;
            }
        }
        let c = b[i];
        let e = ESCAPE[usize::from(c)];
        if e != 0 {
            out.extend_from_slice(&b[start..i]);
            if e == b'u' {
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 0xf)],
                ]);
            } else {
                out.extend_from_slice(&[b'\\', e]);
            }
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

/// Writes `v` as `serde_json::to_writer` does (numbers are written by `serde_json` itself).
pub(crate) fn write_value(out: &mut Vec<u8>, v: &Value) -> Result<(), serde_json::Error> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => serde_json::to_writer(&mut *out, n)?,
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(out, map.iter())?,
    }
    Ok(())
}

/// Writes the entries of a map, in the order given, as a JSON object.
pub(crate) fn write_object<'a>(
    out: &mut Vec<u8>,
    entries: impl Iterator<Item = (&'a String, &'a Value)>,
) -> Result<(), serde_json::Error> {
    out.push(b'{');
    for (i, (k, v)) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        write_value(out, v)?;
    }
    out.push(b'}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ours(v: &Value) -> String {
        let mut out = Vec::new();
        write_value(&mut out, v).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        // Every byte value that is a char on its own, at every offset of a word, and in runs.
        for c in (0u32..0x80).chain([0xe9, 0x2028, 0x1f600]) {
            let ch = char::from_u32(c).unwrap();
            for pad in 0..17 {
                for s in [
                    format!("{}{ch}", "a".repeat(pad)),
                    format!("{ch}{}", "b".repeat(pad)),
                    format!("{}{ch}{ch}{}", "é".repeat(pad), "x".repeat(pad % 5)),
                ] {
                    let v = Value::String(s);
                    assert_eq!(ours(&v), serde_json::to_string(&v).unwrap(), "{c:#x} {pad}");
                }
            }
        }
    }

    #[test]
    fn values_are_written_as_serde_json_writes_them() {
        let cases = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-1),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1.5),
            json!(0.1),
            json!(-0.0),
            json!(1e300),
            json!(2.5e-308),
            json!(""),
            json!([]),
            json!({}),
            json!([1, "two", [3.0, {"four": null}], {"": ""}]),
            json!({"b": 1, "a": {"z\"q": "line\nbreak\ttab\u{7f}\u{1}"}, "c": [true, false]}),
            json!("total 48\ndrwxr-xr-x  5 user staff  160 src\n-rw-r--r--  1 user staff 1024 \"Cargo.toml\"\\"),
        ];
        for v in cases {
            assert_eq!(ours(&v), serde_json::to_string(&v).unwrap(), "{v:?}");
        }
    }
}
