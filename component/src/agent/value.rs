//! Attribute values as JSON, and the small readers every agent parser needs.
//!
//! Merging and storing agent events works on `serde_json::Value`s: they order and serialise
//! deterministically (object keys sorted, integers kept apart from doubles), which the
//! order-independent merge needs, and they are what the store and `export` write. The
//! conversion from OTLP `AnyValue` is total; the way back is exact for everything OTLP
//! produced except bytes, which travel as `{"$bytes": "<hex>"}`.

use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList};
use serde_json::{Map, Number, Value as Json};

/// An OTLP value as JSON. An absent value is `null`. The same as [`any_into_json`] of a copy
/// (each string is copied once either way).
pub fn any_to_json(v: Option<&AnyValue>) -> Json {
    any_into_json(v.cloned())
}

/// An OTLP value given away, as JSON: strings, keys and nested values are moved, not copied.
/// An absent value is `null`.
pub fn any_into_json(v: Option<AnyValue>) -> Json {
    match v.and_then(|v| v.value) {
        None => Json::Null,
        Some(V::StringValue(s)) => Json::String(s),
        Some(V::BoolValue(b)) => Json::Bool(b),
        Some(V::IntValue(i)) => Json::Number(i.into()),
        Some(V::DoubleValue(d)) => Number::from_f64(d)
            .map(Json::Number)
            .unwrap_or_else(|| Json::String(d.to_string())),
        Some(V::ArrayValue(a)) => Json::Array(
            a.values
                .into_iter()
                .map(|v| any_into_json(Some(v)))
                .collect(),
        ),
        Some(V::KvlistValue(kv)) => Json::Object(
            kv.values
                .into_iter()
                .map(|kv| (kv.key, any_into_json(kv.value)))
                .collect(),
        ),
        // A string-table index means nothing without the table (profiles only).
        Some(V::StringValueStrindex(_)) => Json::Null,
        Some(V::BytesValue(b)) => {
            let mut m = Map::new();
            m.insert("$bytes".into(), Json::String(hex::encode(b)));
            Json::Object(m)
        }
    }
}

/// JSON as an OTLP value (`null` → no value). The same as [`json_into_any`] of a copy (each
/// string is copied once either way).
pub fn json_to_any(v: &Json) -> AnyValue {
    json_into_any(v.clone())
}

/// JSON given away, as an OTLP value (`null` → no value): strings, keys and nested values
/// are moved, not copied. An object that is exactly `{"$bytes": <hex>}`, the hex lowercase as
/// [`any_into_json`] writes it, is bytes again; any other such object (`"ABCD"`, a sender's
/// kvlist that only looks like bytes) stays an object, so the JSON of every OTLP value
/// converts back to a value with the same JSON.
pub fn json_into_any(v: Json) -> AnyValue {
    let value = match v {
        Json::Null => None,
        Json::Bool(b) => Some(V::BoolValue(b)),
        Json::Number(n) => Some(match n.as_i64() {
            Some(i) => V::IntValue(i),
            None => V::DoubleValue(n.as_f64().unwrap_or(0.0)),
        }),
        Json::String(s) => Some(V::StringValue(s)),
        Json::Array(a) => Some(V::ArrayValue(ArrayValue {
            values: a.into_iter().map(json_into_any).collect(),
        })),
        Json::Object(m) => {
            if m.len() == 1 {
                if let Some(Json::String(h)) = m.get("$bytes") {
                    let lowercase = h.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
                    if let (true, Ok(b)) = (lowercase, hex::decode(h)) {
                        return AnyValue {
                            value: Some(V::BytesValue(b)),
                        };
                    }
                }
            }
            Some(V::KvlistValue(KeyValueList {
                values: m
                    .into_iter()
                    .map(|(k, v)| KeyValue {
                        key: k,
                        value: Some(json_into_any(v)),
                        ..Default::default()
                    })
                    .collect(),
            }))
        }
    };
    AnyValue { value }
}

/// The attribute `key`, if present.
pub fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

/// The attribute `key` as text: strings as they are, numbers and booleans written out.
/// Empty strings count as absent.
pub fn attr_text(attrs: &[KeyValue], key: &str) -> Option<String> {
    let s = match attr(attrs, key)?.value.as_ref()? {
        V::StringValue(s) => s.clone(),
        V::IntValue(i) => i.to_string(),
        V::DoubleValue(d) => d.to_string(),
        V::BoolValue(b) => b.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

/// The attribute `key` as an integer, whether sent as int, double or numeric string
/// (Codex sends every number as a string).
pub fn attr_i64(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attrs, key)?.value.as_ref()? {
        V::IntValue(i) => Some(*i),
        V::DoubleValue(d) if d.is_finite() => Some(*d as i64),
        V::StringValue(s) => s.trim().parse::<i64>().ok().or_else(|| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|d| d.is_finite())
                .map(|d| d as i64)
        }),
        _ => None,
    }
}

/// The attribute `key` as a double (int, double or numeric string).
pub fn attr_f64(attrs: &[KeyValue], key: &str) -> Option<f64> {
    match attr(attrs, key)?.value.as_ref()? {
        V::IntValue(i) => Some(*i as f64),
        V::DoubleValue(d) => Some(*d),
        V::StringValue(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|d| d.is_finite())
}

/// The attribute `key` as a boolean (bool, or the strings `true`/`false`).
pub fn attr_bool(attrs: &[KeyValue], key: &str) -> Option<bool> {
    match attr(attrs, key)?.value.as_ref()? {
        V::BoolValue(b) => Some(*b),
        V::StringValue(s) => match s.trim() {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// An RFC 3339 timestamp (`2026-11-22T14:11:14.530Z`, offsets allowed) in Unix nanoseconds.
pub fn parse_rfc3339_nanos(s: &str) -> Option<u64> {
    let s = s.trim();
    // `humantime` reads a `+hh:mm` suffix as if it were `Z`: handle offsets first.
    let t = parse_with_offset(s).or_else(|| humantime::parse_rfc3339_weak(s).ok())?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(d.as_nanos()).ok()
}

/// `humantime` takes only `Z`; agents may write `+00:00` style offsets.
fn parse_with_offset(s: &str) -> Option<std::time::SystemTime> {
    let (base, sign, off) = match s.rfind(['+', '-']) {
        Some(i) if i > 10 => (&s[..i], &s[i..i + 1], &s[i + 1..]),
        _ => return None,
    };
    let (h, m) = off.split_once(':')?;
    let secs = h.parse::<u64>().ok()? * 3600 + m.parse::<u64>().ok()? * 60;
    let t = humantime::parse_rfc3339_weak(base).ok()?;
    let d = std::time::Duration::from_secs(secs);
    if sign == "+" {
        t.checked_sub(d)
    } else {
        t.checked_add(d)
    }
}

/// Bytes as lowercase hex (trace and span ids); empty stays empty.
pub fn hex_id(b: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if b.iter().all(|x| *x == 0) {
        String::new()
    } else {
        // `hex::encode`'s text, without collecting it a char at a time.
        let mut s = String::with_capacity(2 * b.len());
        for x in b {
            s.push(char::from(HEX[usize::from(x >> 4)]));
            s.push(char::from(HEX[usize::from(x & 0xf)]));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_json() {
        let v = AnyValue {
            value: Some(V::KvlistValue(KeyValueList {
                values: vec![
                    KeyValue {
                        key_strindex: 0,
                        key: "a".into(),
                        value: Some(AnyValue {
                            value: Some(V::IntValue(7)),
                        }),
                    },
                    KeyValue {
                        key_strindex: 0,
                        key: "b".into(),
                        value: Some(AnyValue {
                            value: Some(V::BytesValue(vec![1, 2])),
                        }),
                    },
                ],
            })),
        };
        let j = any_to_json(Some(&v));
        assert_eq!(j, serde_json::json!({"a": 7, "b": {"$bytes": "0102"}}));
        assert_eq!(json_to_any(&j), v);
        // Not bytes: a `$bytes` that is not hex, not lowercase hex, or an object with more
        // than that field.
        let odd = serde_json::json!([1.5, -3, u64::MAX, null, {"$bytes": "zz"}, {"$bytes": "0a", "x": 1}, {"$bytes": "0A"}]);
        let text = |s: &str| AnyValue {
            value: Some(V::StringValue(s.into())),
        };
        let int = |i: i64| AnyValue {
            value: Some(V::IntValue(i)),
        };
        let kvlist = |kvs: Vec<(&str, AnyValue)>| AnyValue {
            value: Some(V::KvlistValue(KeyValueList {
                values: kvs
                    .into_iter()
                    .map(|(k, v)| KeyValue {
                        key: k.into(),
                        value: Some(v),
                        ..Default::default()
                    })
                    .collect(),
            })),
        };
        let expected = AnyValue {
            value: Some(V::ArrayValue(ArrayValue {
                values: vec![
                    AnyValue {
                        value: Some(V::DoubleValue(1.5)),
                    },
                    int(-3),
                    AnyValue {
                        value: Some(V::DoubleValue(u64::MAX as f64)),
                    },
                    AnyValue { value: None },
                    kvlist(vec![("$bytes", text("zz"))]),
                    kvlist(vec![("$bytes", text("0a")), ("x", int(1))]),
                    kvlist(vec![("$bytes", text("0A"))]),
                ],
            })),
        };
        assert_eq!(json_to_any(&odd), expected);
        // Whatever a sender's value, its JSON reads back as the same JSON.
        for v in [&v, &expected] {
            let j = any_to_json(Some(v));
            assert_eq!(any_to_json(Some(&json_to_any(&j))), j);
        }
    }

    #[test]
    fn numbers_are_read_whatever_their_wire_type() {
        let kv = |k: &str, v: V| KeyValue {
            key_strindex: 0,
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
        };
        let attrs = vec![
            kv("s", V::StringValue("9817".into())),
            kv("i", V::IntValue(3)),
            kv("d", V::DoubleValue(0.5)),
            kv("b", V::StringValue("true".into())),
            kv("bad", V::StringValue("x".into())),
        ];
        assert_eq!(attr_i64(&attrs, "s"), Some(9817));
        assert_eq!(attr_i64(&attrs, "i"), Some(3));
        assert_eq!(attr_f64(&attrs, "d"), Some(0.5));
        assert_eq!(attr_bool(&attrs, "b"), Some(true));
        assert_eq!(attr_i64(&attrs, "bad"), None);
        assert_eq!(attr_text(&attrs, "i").as_deref(), Some("3"));
    }

    #[test]
    fn ids_are_lowercase_hex() {
        let b: Vec<u8> = (0..=255).collect();
        assert_eq!(hex_id(&b), hex::encode(&b));
        assert_eq!(hex_id(&[0; 16]), "");
        assert_eq!(hex_id(&[]), "");
    }

    #[test]
    fn timestamps_parse_to_nanoseconds() {
        assert_eq!(
            parse_rfc3339_nanos("2026-11-22T14:11:14.530Z"),
            Some(1_795_356_674_530_000_000)
        );
        assert_eq!(
            parse_rfc3339_nanos("2026-11-22T16:11:14.530+02:00"),
            Some(1_795_356_674_530_000_000)
        );
        assert_eq!(parse_rfc3339_nanos("yesterday"), None);
    }
}
