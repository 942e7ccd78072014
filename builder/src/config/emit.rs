//! A small YAML emitter for `print-config`: block style, strings quoted whenever a plain scalar
//! would read back as something else.

use serde_json::Value;

use super::node::plain_scalar;

/// The value as a YAML document.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if m.is_empty() => out.push_str("{}\n"),
        Value::Object(_) | Value::Array(_) => block(v, 0, &mut out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let plain_ok = !s.is_empty()
                && plain_scalar(s) == Value::String(s.clone())
                && !s.starts_with(|c: char| " -?:,[]{}#&*!|>'\"%@`".contains(c))
                && !s.ends_with(' ')
                && !s.contains(": ")
                && !s.contains(" #")
                && !s.contains('\n');
            if plain_ok {
                s.clone()
            } else {
                serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
            }
        }
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(o) if o.is_empty() => "{}".into(),
        _ => String::new(),
    }
}

fn is_block(v: &Value) -> bool {
    matches!(v, Value::Object(m) if !m.is_empty()) || matches!(v, Value::Array(a) if !a.is_empty())
}

fn block(v: &Value, indent: usize, out: &mut String) {
    let pad = "  ".repeat(indent);
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let key = scalar(&Value::String(k.clone()));
                if is_block(child) {
                    out.push_str(&format!("{pad}{key}:\n"));
                    block(child, indent + 1, out);
                } else {
                    out.push_str(&format!("{pad}{key}: {}\n", scalar(child)));
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                if is_block(item) {
                    out.push_str(&format!("{pad}-\n"));
                    block(item, indent + 1, out);
                } else {
                    out.push_str(&format!("{pad}- {}\n", scalar(item)));
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_reads_back_to_the_same_value() {
        let v = serde_json::json!({
            "a": {"b": "5", "c": 5, "d": "x: y", "e": [1, "true", {"f": null}], "g": {}, "h": []},
            "i": "", "j": "plain text", "k": "-dash"
        });
        let text = to_yaml(&v);
        let back = super::super::node::parse(&text).unwrap().unwrap().to_json();
        assert_eq!(back, v, "{text}");
    }
}
