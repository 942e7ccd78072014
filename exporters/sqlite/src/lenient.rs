//! Lenient readers for attribute values: agents send numbers as ints, doubles or strings
//! (Codex sends every attribute as a string), booleans as bools or strings.

use serde_json::Value as Json;

/// An integer from an int, a double or a numeric string.
pub(crate) fn int(v: Option<&Json>) -> Option<i64> {
    match v? {
        Json::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        Json::String(s) => {
            let s = s.trim();
            s.parse::<i64>().ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| f as i64)
            })
        }
        Json::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// A double from a number or a numeric string.
pub(crate) fn float(v: Option<&Json>) -> Option<f64> {
    match v? {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|f| f.is_finite())
}

/// A boolean from a bool, `"true"`/`"false"` (any case) or 0/1.
pub(crate) fn boolean(v: Option<&Json>) -> Option<bool> {
    match v? {
        Json::Bool(b) => Some(*b),
        Json::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        },
        Json::Number(n) => n.as_i64().map(|i| i != 0),
        _ => None,
    }
}

/// Text: strings as they are (empty counts as absent), scalars written out, arrays and
/// objects as compact JSON.
pub(crate) fn text(v: Option<&Json>) -> Option<String> {
    match v? {
        Json::Null => None,
        Json::String(s) if s.is_empty() => None,
        Json::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_whatever_the_wire_type() {
        assert_eq!(int(Some(&json!("9817"))), Some(9817));
        assert_eq!(int(Some(&json!(" 12.9 "))), Some(12));
        assert_eq!(int(Some(&json!(3))), Some(3));
        assert_eq!(int(Some(&json!("x"))), None);
        assert_eq!(float(Some(&json!("0.25"))), Some(0.25));
        assert_eq!(boolean(Some(&json!("True"))), Some(true));
        assert_eq!(boolean(Some(&json!(0))), Some(false));
        assert_eq!(text(Some(&json!(""))), None);
        assert_eq!(text(Some(&json!({"a": 1}))).as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(text(None), None);
    }
}
