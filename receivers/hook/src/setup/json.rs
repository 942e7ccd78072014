//! JSON that keeps its key order, for editing the agents' settings files.
//!
//! `serde_json::Value` sorts object keys (the workspace relies on that for deterministic
//! digests, so its `preserve_order` feature must stay off). Settings files are the user's, and a
//! setup that reorders every object would turn a two-line change into a diff of the whole file,
//! so these files are read into [`Ordered`], which keeps keys in file order, and written back
//! with the file's own indentation.

use std::fmt;

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A JSON value whose objects keep their key order.
#[derive(Debug, Clone, PartialEq)]
pub enum Ordered {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as serde_json reads it.
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Ordered>),
    /// An object, in file order.
    Object(Vec<(String, Ordered)>),
}

impl Ordered {
    /// An empty object.
    pub fn object() -> Ordered {
        Ordered::Object(Vec::new())
    }

    /// A string.
    pub fn str(s: impl Into<String>) -> Ordered {
        Ordered::String(s.into())
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Ordered> {
        match self {
            Ordered::Object(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The member `key` of an object, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Ordered> {
        match self {
            Ordered::Object(m) => m.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Sets `key` (in place when present, else appended). No-op on non-objects.
    pub fn set(&mut self, key: &str, value: Ordered) {
        if let Ordered::Object(m) = self {
            match m.iter_mut().find(|(k, _)| k == key) {
                Some((_, v)) => *v = value,
                None => m.push((key.to_string(), value)),
            }
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Ordered> {
        match self {
            Ordered::Object(m) => {
                let i = m.iter().position(|(k, _)| k == key)?;
                Some(m.remove(i).1)
            }
            _ => None,
        }
    }

    /// The member `key`, created as `default` when absent (or when `self` holds something of
    /// another type there, which is then replaced).
    pub fn entry(&mut self, key: &str, default: Ordered) -> &mut Ordered {
        if !matches!(self, Ordered::Object(_)) {
            *self = Ordered::object();
        }
        match self {
            Ordered::Object(m) => {
                let i = match m.iter().position(|(k, _)| k == key) {
                    Some(i) => i,
                    None => {
                        m.push((key.to_string(), default));
                        m.len() - 1
                    }
                };
                &mut m[i].1
            }
            other => other,
        }
    }

    /// The text, when a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Ordered::String(s) => Some(s),
            _ => None,
        }
    }

    /// Whether an empty object.
    pub fn is_empty_object(&self) -> bool {
        matches!(self, Ordered::Object(m) if m.is_empty())
    }
}

impl Serialize for Ordered {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Ordered::Null => s.serialize_unit(),
            Ordered::Bool(b) => s.serialize_bool(*b),
            Ordered::Number(n) => n.serialize(s),
            Ordered::String(t) => s.serialize_str(t),
            Ordered::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Ordered::Object(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Null)
            }
            fn visit_none<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Ordered, E> {
                Ok(Ordered::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Ordered, E> {
                Ok(Ordered::Number(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Ordered, E> {
                Ok(Ordered::Number(n.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Ordered, E> {
                serde_json::Number::from_f64(n)
                    .map(Ordered::Number)
                    .ok_or_else(|| E::custom("not a finite number"))
            }
            fn visit_str<E>(self, s: &str) -> Result<Ordered, E> {
                Ok(Ordered::String(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> Result<Ordered, E> {
                Ok(Ordered::String(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = a.next_element()? {
                    out.push(v);
                }
                Ok(Ordered::Array(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Ordered, A::Error> {
                let mut out: Vec<(String, Ordered)> = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, Ordered>()? {
                    // A repeated key: the last wins, as in every JSON reader the agents use.
                    out.retain(|(x, _)| *x != k);
                    out.push((k, v));
                }
                Ok(Ordered::Object(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// The indentation a JSON text uses (that of its first indented line), two spaces by default.
pub fn indent_of(text: &str) -> String {
    text.lines()
        .skip(1)
        .find_map(|l| {
            let ws: String = l.chars().take_while(|c| *c == ' ' || *c == '\t').collect();
            (!ws.is_empty()).then_some(ws)
        })
        .unwrap_or_else(|| "  ".to_string())
}

/// Writes `value` pretty-printed with `indent`, ending with a newline.
pub fn to_text(value: &Ordered, indent: &str) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Serialising an in-memory tree of strings and numbers into a Vec cannot fail.
    let _ = value.serialize(&mut ser);
    let mut s = String::from_utf8(out).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_and_indentation_survive_a_round_trip() {
        let text = "{\n    \"z\": 1,\n    \"a\": {\"y\": [true, null, 1.5], \"b\": \"s\"}\n}\n";
        let v: Ordered = serde_json::from_str(text).unwrap();
        let again = to_text(&v, &indent_of(text));
        assert!(again.find("\"z\"").unwrap() < again.find("\"a\"").unwrap());
        assert!(again.find("\"y\"").unwrap() < again.find("\"b\"").unwrap());
        assert!(again.contains("\n    \"z\": 1"), "{again}");
        let v2: Ordered = serde_json::from_str(&again).unwrap();
        assert_eq!(v, v2);
        assert_eq!(to_text(&v2, &indent_of(&again)), again);
    }
}
