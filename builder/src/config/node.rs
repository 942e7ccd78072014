//! A YAML document as a tree that remembers where each value came from.
//!
//! Config errors must name the YAML path and, where possible, the line, so the document is parsed
//! with yaml-rust2's event parser into this tree instead of straight into serde types. The tree
//! is also what merging, `--set` and `${…}` expansion work on; only at the end is it turned into
//! the JSON model each component's serde config is decoded from.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// One YAML value.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// 1-based line where it starts (0 when it was not read from a file).
    pub line: usize,
}

/// The kinds of YAML value we accept.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A mapping, in document order.
    Map(Vec<(String, Node)>),
    /// A sequence.
    Seq(Vec<Node>),
    /// A scalar; `quoted` scalars are always strings, plain ones are typed on conversion.
    Scalar {
        /// The text.
        text: String,
        /// Whether it was quoted (or a block scalar) in the source.
        quoted: bool,
    },
}

impl Node {
    /// A node with no source line.
    pub fn new(value: Value) -> Self {
        Node { value, line: 0 }
    }

    /// An empty mapping.
    pub fn empty_map() -> Self {
        Node::new(Value::Map(Vec::new()))
    }

    /// Whether it is a plain `null`/`~`/empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, quoted: false } if is_null_text(text))
    }

    /// The entries, if it is a mapping.
    pub fn as_map(&self) -> Option<&Vec<(String, Node)>> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value under `key`, if it is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The string, if it is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// A word for the kind, for messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Map(_) => "map",
            Value::Seq(_) => "list",
            Value::Scalar { .. } if self.is_null() => "null",
            Value::Scalar { .. } => "scalar",
        }
    }

    /// The JSON model of the tree, with plain scalars typed the YAML 1.2 core way.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
            Value::Seq(items) => {
                serde_json::Value::Array(items.iter().map(Node::to_json).collect())
            }
            Value::Scalar { text, quoted: true } => serde_json::Value::String(text.clone()),
            Value::Scalar {
                text,
                quoted: false,
            } => plain_scalar(text),
        }
    }
}

fn is_null_text(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// Types a plain scalar: null, booleans, integers (decimal, 0x, 0o), floats, else a string.
pub fn plain_scalar(text: &str) -> serde_json::Value {
    use serde_json::Value as J;
    if is_null_text(text) {
        return J::Null;
    }
    match text {
        "true" | "True" | "TRUE" => return J::Bool(true),
        "false" | "False" | "FALSE" => return J::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return J::from(i);
    }
    if let Ok(u) = text.parse::<u64>() {
        return J::from(u);
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(hex, 16) {
            return J::from(i);
        }
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if let Ok(i) = i64::from_str_radix(oct, 8) {
            return J::from(i);
        }
    }
    let looks_numeric = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        && text.chars().any(|c| c.is_ascii_digit());
    if looks_numeric {
        if let Ok(f) = text.parse::<f64>() {
            if let Some(n) = serde_json::Number::from_f64(f) {
                return J::Number(n);
            }
        }
    }
    J::String(text.to_string())
}

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

enum Frame {
    Map {
        entries: Vec<(String, Node)>,
        key_lines: Vec<usize>,
        pending_key: Option<(String, usize)>,
        line: usize,
    },
    Seq {
        items: Vec<Node>,
        line: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    docs: Vec<Node>,
    error: Option<ParseError>,
}

impl Builder {
    fn fail(&mut self, line: usize, message: String) {
        if self.error.is_none() {
            self.error = Some(ParseError {
                line: Some(line),
                message,
            });
        }
    }

    fn push_value(&mut self, node: Node) {
        let line = node.line;
        let mut failure = None;
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                key_lines,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => match node.value {
                    Value::Scalar { text, .. } => {
                        if let Some(i) = entries.iter().position(|(k, _)| *k == text) {
                            let msg = format!(
                                "mapping key {text:?} already defined at line {}",
                                key_lines.get(i).copied().unwrap_or(0)
                            );
                            failure = Some(msg);
                        }
                        *pending_key = Some((text, line));
                    }
                    _ => failure = Some("mapping keys must be scalars".to_string()),
                },
                Some((key, key_line)) => {
                    entries.push((key, node));
                    key_lines.push(key_line);
                }
            },
        }
        if let Some(msg) = failure {
            self.fail(line, msg);
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let line = mark.line();
        match ev {
            Event::Scalar(text, style, _, _) => {
                let quoted = !matches!(style, TScalarStyle::Plain);
                self.push_value(Node {
                    value: Value::Scalar { text, quoted },
                    line,
                });
            }
            Event::SequenceStart(..) => self.stack.push(Frame::Seq {
                items: Vec::new(),
                line,
            }),
            Event::MappingStart(..) => self.stack.push(Frame::Map {
                entries: Vec::new(),
                key_lines: Vec::new(),
                pending_key: None,
                line,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq { items, line }) => Node {
                        value: Value::Seq(items),
                        line,
                    },
                    Some(Frame::Map { entries, line, .. }) => Node {
                        value: Value::Map(entries),
                        line,
                    },
                    None => return,
                };
                self.push_value(node);
            }
            Event::Alias(_) => self.fail(
                line,
                "YAML aliases (*name) are not supported in agentcol configs".into(),
            ),
            _ => {}
        }
    }
}

/// Parses one YAML document. An empty document gives `Ok(None)`.
pub fn parse(text: &str) -> Result<Option<Node>, ParseError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        return Err(ParseError {
            line: Some(e.marker().line()),
            message: format!("yaml: line {}: {}", e.marker().line(), e.info()),
        });
    }
    if let Some(e) = builder.error {
        return Err(e);
    }
    match builder.docs.len() {
        0 => Ok(None),
        1 => {
            let doc = builder.docs.pop();
            Ok(doc.filter(|d| !d.is_null()))
        }
        n => Err(ParseError {
            line: None,
            message: format!("expected one YAML document, found {n}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_lines_and_types() {
        let doc = parse("a:\n  b: 5\n  c: \"5\"\n  d: [x, y]\n  e:\n")
            .unwrap()
            .unwrap();
        let a = doc.get("a").unwrap();
        assert_eq!(a.get("b").unwrap().line, 2);
        assert_eq!(a.get("d").unwrap().line, 4);
        assert_eq!(
            doc.to_json(),
            serde_json::json!({"a": {"b": 5, "c": "5", "d": ["x", "y"], "e": null}})
        );
    }

    #[test]
    fn duplicate_keys_are_errors_with_lines() {
        let e = parse("service: {}\nreceivers: {}\nservice: {}\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert_eq!(
            e.message,
            "mapping key \"service\" already defined at line 1"
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = parse("a:\n  b: [1, 2\nc: 3\n").unwrap_err();
        assert!(e.line.is_some());
        assert!(e.message.starts_with("yaml: line"), "{}", e.message);
    }

    #[test]
    fn empty_and_multi_documents() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# only a comment\n").unwrap(), None);
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
        assert!(parse("a: &x 1\nb: *x\n").is_err());
    }
}
