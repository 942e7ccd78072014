//! From `--config` URIs and `--set` flags to one expanded document, as otelcol's confmap does:
//! retrieve every source, deep-merge them in order (maps merge, lists and scalars are replaced),
//! apply `--set`, then expand `${…}` references.
//!
//! Expansion rules (the same grammar as otelcol, one deliberate difference):
//! * `${env:VAR}` / `${VAR}`: the variable's value; `${env:VAR:-default}` when unset.
//! * `${file:path}`: the file's contents.
//! * `$$`: a literal `$`. A naked `$VAR` is left as it is.
//! * A scalar that is exactly one reference takes the YAML type of what it expands to
//!   (`limit_mib: ${env:LIMIT}` is a number); references inside longer text are interpolated.
//! * **An unset variable without a default is an error**, with its path. otelcol only warns and
//!   substitutes an empty value, which surfaces later as a confusing error, or not at all.

use std::path::Path;

use super::node::{self, Node, Value};
use super::Diagnostic;

fn diag(path: &str, line: Option<usize>, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        path: path.to_string(),
        line: line.filter(|l| *l > 0),
        message: message.into(),
    }
}

/// Reads one `--config` source into a document (`None` when it is empty).
pub fn retrieve(uri: &str) -> Result<Option<Node>, Diagnostic> {
    let (scheme, rest) = match uri.split_once(':') {
        // A scheme has at least two characters (so `C:\…` stays a path) and only letters.
        Some((s, rest)) if s.len() >= 2 && s.chars().all(|c| c.is_ascii_alphabetic()) => (s, rest),
        _ => ("file", uri),
    };
    let text = match scheme {
        "file" => std::fs::read_to_string(rest).map_err(|e| {
            diag(
                "",
                None,
                format!("unable to read the file file:{rest}: {e}"),
            )
        })?,
        "env" => std::env::var(rest).map_err(|_| {
            diag(
                "",
                None,
                format!("environment variable {rest:?} is not set"),
            )
        })?,
        "yaml" => inline_yaml(rest),
        _ => return Err(diag("", None, format!("unsupported scheme on URI {uri:?}"))),
    };
    node::parse(&text).map_err(|e| diag("", e.line, format!("{uri}: {}", e.message)))
}

/// `a::b::c: v` → nested YAML.
fn inline_yaml(spec: &str) -> String {
    let Some((path, value)) = spec.split_once(": ") else {
        return spec.replace("::", ": ");
    };
    let mut out = String::new();
    let parts: Vec<&str> = path.split("::").collect();
    for (depth, part) in parts.iter().enumerate() {
        out.push_str(&"  ".repeat(depth));
        out.push_str(part);
        out.push(':');
        if depth + 1 == parts.len() {
            out.push(' ');
            out.push_str(value);
        }
        out.push('\n');
    }
    out
}

/// Merges `over` into `base`: maps recursively, anything else replaced.
pub fn merge(base: &mut Node, over: Node) {
    match (&mut base.value, over.value) {
        (Value::Map(base_entries), Value::Map(over_entries)) => {
            for (k, v) in over_entries {
                match base_entries.iter_mut().find(|(bk, _)| *bk == k) {
                    Some((_, existing)) => merge(existing, v),
                    None => base_entries.push((k, v)),
                }
            }
        }
        (_, value) => {
            base.value = value;
            base.line = over.line;
        }
    }
}

/// Applies one `--set key.path=value`.
pub fn apply_set(doc: &mut Node, flag: &str) -> Result<(), Diagnostic> {
    let Some((path, value)) = flag.split_once('=') else {
        return Err(diag(
            "",
            None,
            format!("invalid argument {flag:?} for \"--set\" flag: missing equal sign"),
        ));
    };
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(diag(
            "",
            None,
            format!("invalid argument {flag:?} for \"--set\" flag: empty key"),
        ));
    }
    let value = match node::parse(value) {
        Ok(Some(n)) => n,
        Ok(None) => Node::new(Value::Scalar {
            text: String::new(),
            quoted: false,
        }),
        Err(e) => {
            return Err(diag(
                "",
                None,
                format!(
                    "invalid argument {flag:?} for \"--set\" flag: {}",
                    e.message
                ),
            ))
        }
    };
    let mut over = value;
    for key in path.rsplit('.') {
        over = Node::new(Value::Map(vec![(key.to_string(), over)]));
    }
    merge(doc, over);
    Ok(())
}

/// Expands every `${…}` in the document; returns every fault.
pub fn expand(doc: &mut Node) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    expand_node(doc, "", &mut errors);
    errors
}

fn expand_node(node: &mut Node, path: &str, errors: &mut Vec<Diagnostic>) {
    let line = node.line;
    match &mut node.value {
        Value::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}::{k}")
                };
                expand_node(v, &child, errors);
            }
        }
        Value::Seq(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                expand_node(v, &format!("{path}::{i}"), errors);
            }
        }
        Value::Scalar { text, quoted } => {
            if !text.contains('$') {
                return;
            }
            match expand_text(text) {
                Ok((expanded, whole)) => {
                    if whole && !*quoted {
                        // The expansion is typed as YAML (a number stays a number); anything
                        // that is not a plain scalar stays text.
                        match node::parse(&expanded) {
                            Ok(Some(Node {
                                value: Value::Scalar { text: t, quoted: q },
                                ..
                            })) => {
                                *text = t;
                                *quoted = q;
                            }
                            _ => {
                                *text = expanded;
                                *quoted = true;
                            }
                        }
                    } else {
                        *text = expanded;
                        *quoted = true;
                    }
                }
                Err(message) => errors.push(diag(path, Some(line), message)),
            }
        }
    }
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Expands one string. Returns the result and whether the input was exactly one reference.
fn expand_text(input: &str) -> Result<(String, bool), String> {
    let mut out = String::new();
    let mut rest = input;
    let mut refs = 0;
    let mut literal = false;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        if !rest[..pos].is_empty() {
            literal = true;
        }
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            literal = true;
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail
                .find('}')
                .ok_or_else(|| format!("unterminated reference in {input:?}"))?;
            out.push_str(&resolve_reference(&tail[..end])?);
            refs += 1;
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            literal = true;
            rest = after;
        }
    }
    if !rest.is_empty() {
        literal = true;
    }
    out.push_str(rest);
    Ok((out, refs == 1 && !literal))
}

fn resolve_reference(reference: &str) -> Result<String, String> {
    let (scheme, opaque) = match reference.split_once(':') {
        Some((s, o)) if !s.contains('-') => (s, o),
        _ => ("env", reference),
    };
    match scheme {
        "env" => {
            let (name, default) = match opaque.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (opaque, None),
            };
            if !valid_env_name(name) {
                return Err(format!(
                    "environment variable {name:?} has invalid name: must match regex ^[a-zA-Z_][a-zA-Z0-9_]*$"
                ));
            }
            match (std::env::var(name), default) {
                (Ok(v), _) => Ok(v),
                (Err(_), Some(d)) => Ok(d.to_string()),
                (Err(_), None) => Err(format!(
                    "environment variable {name:?} is not set (write ${{env:{name}:-default}} to allow that)"
                )),
            }
        }
        "file" => std::fs::read_to_string(Path::new(opaque))
            .map(|s| s.trim_end_matches('\n').to_string())
            .map_err(|e| format!("unable to read the file {opaque}: {e}")),
        other => Err(format!(
            "scheme {other:?} is not supported for uri \"{reference}\""
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(s: &str) -> Node {
        node::parse(s).unwrap().unwrap()
    }

    #[test]
    fn merge_replaces_lists_and_merges_maps() {
        let mut a = doc("p: {batch: {timeout: 1s}}\nl: [a, b]\n");
        merge(&mut a, doc("p: {batch: {size: 2}}\nl: [c]\n"));
        assert_eq!(
            a.to_json(),
            serde_json::json!({"p": {"batch": {"timeout": "1s", "size": 2}}, "l": ["c"]})
        );
    }

    #[test]
    fn set_creates_and_overrides() {
        let mut a = doc("processors: {batch: {timeout: 1s}}\n");
        apply_set(&mut a, "processors.batch.timeout=3s").unwrap();
        apply_set(&mut a, "exporters.debug.verbosity=detailed").unwrap();
        assert_eq!(
            a.to_json(),
            serde_json::json!({"processors": {"batch": {"timeout": "3s"}}, "exporters": {"debug": {"verbosity": "detailed"}}})
        );
        let e = apply_set(&mut a, "foo").unwrap_err();
        assert_eq!(
            e.message,
            "invalid argument \"foo\" for \"--set\" flag: missing equal sign"
        );
    }

    #[test]
    fn expansion_follows_the_rules() {
        std::env::set_var("AGENTCOL_T_LIMIT", "512");
        std::env::set_var("AGENTCOL_T_HOST", "127.0.0.1");
        let mut d = doc(concat!(
            "a: ${env:AGENTCOL_T_LIMIT}\n",
            "b: http://${AGENTCOL_T_HOST}:4318\n",
            "c: ${env:AGENTCOL_T_UNSET_X:-fallback}\n",
            "d: cost $$5 and $HOME\n",
            "e: \"${env:AGENTCOL_T_LIMIT}\"\n",
        ));
        assert!(expand(&mut d).is_empty());
        assert_eq!(
            d.to_json(),
            serde_json::json!({"a": 512, "b": "http://127.0.0.1:4318", "c": "fallback", "d": "cost $5 and $HOME", "e": "512"})
        );
        let mut bad = doc("x:\n  y: ${env:AGENTCOL_T_UNSET_Y}\n  z: ${env:1BAD}\n  w: ${nope:X}\n");
        let errs = expand(&mut bad);
        assert_eq!(errs.len(), 3);
        assert_eq!(errs[0].path, "x::y");
        assert_eq!(errs[0].line, Some(2));
        assert!(errs[1].message.contains("has invalid name"));
        assert_eq!(
            errs[2].message,
            "scheme \"nope\" is not supported for uri \"nope:X\""
        );
    }

    #[test]
    fn sources_by_scheme() {
        let e = retrieve("nope.yaml").unwrap_err();
        assert!(e
            .message
            .starts_with("unable to read the file file:nope.yaml"));
        let e = retrieve("foo:bar").unwrap_err();
        assert_eq!(e.message, "unsupported scheme on URI \"foo:bar\"");
        let d = retrieve("yaml:exporters::debug::verbosity: detailed")
            .unwrap()
            .unwrap();
        assert_eq!(
            d.to_json(),
            serde_json::json!({"exporters": {"debug": {"verbosity": "detailed"}}})
        );
    }
}
