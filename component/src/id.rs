//! Component and pipeline identifiers.
//!
//! otelcol names a component `type[/name]` and a pipeline `signal[/name]`; users' configs depend on
//! those exact rules, so they are parsed once into value types here and never handled as raw
//! strings afterwards.

use std::fmt;
use std::str::FromStr;

use crate::data::Signal;

/// Why an id string was rejected. The messages follow otelcol's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The type part is empty.
    #[error("id must not be empty")]
    Empty,
    /// The type part does not match `^[a-zA-Z][0-9a-zA-Z_]{0,62}$`.
    #[error("invalid character(s) in type {0:?}")]
    InvalidType(String),
    /// `type/` with nothing after the slash.
    #[error("{0:?} id: the part after / should not be empty")]
    EmptyName(String),
    /// The name part has whitespace, control characters or symbols, or is too long.
    #[error("invalid character(s) in name {0:?}")]
    InvalidName(String),
    /// A pipeline id whose signal part is not `traces`, `metrics` or `logs`.
    #[error("in {0:?} id: unknown pipeline signal: {1:?}")]
    UnknownSignal(String, String),
}

/// The kind of a component, as it appears at the top level of the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ComponentKind {
    /// `receivers:`
    Receiver,
    /// `processors:`
    Processor,
    /// `exporters:`
    Exporter,
    /// `extensions:`
    Extension,
    /// `connectors:`
    Connector,
}

impl ComponentKind {
    /// The singular word, as otelcol uses it in messages (`references exporter "x"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Receiver => "receiver",
            ComponentKind::Processor => "processor",
            ComponentKind::Exporter => "exporter",
            ComponentKind::Extension => "extension",
            ComponentKind::Connector => "connector",
        }
    }

    /// The top-level config key (`receivers`, …).
    pub fn section(self) -> &'static str {
        match self {
            ComponentKind::Receiver => "receivers",
            ComponentKind::Processor => "processors",
            ComponentKind::Exporter => "exporters",
            ComponentKind::Extension => "extensions",
            ComponentKind::Connector => "connectors",
        }
    }
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A component id: `type` or `type/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComponentId {
    ty: String,
    name: Option<String>,
}

const MAX_NAME_LEN: usize = 1024;

fn valid_type(ty: &str) -> bool {
    let mut chars = ty.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => {}
        _ => return false,
    }
    ty.len() <= 63 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_name(name: &str) -> bool {
    // otelcol: ^[^\pZ\pC\pS]+$ — no separators, control/format chars or symbols.
    name.chars().count() <= MAX_NAME_LEN
        && name.chars().all(|c| {
            !(c.is_whitespace()
                || c.is_control()
                || matches!(
                    c,
                    '$' | '+' | '<' | '=' | '>' | '^' | '`' | '|' | '~' | '\u{a2}'..='\u{a9}'
                ))
        })
}

impl ComponentId {
    /// Builds an id from a type alone, checking it.
    pub fn new(ty: &str) -> Result<Self, IdError> {
        Self::from_str(ty)
    }

    /// Builds an id from a type and a name, checking both.
    pub fn with_name(ty: &str, name: &str) -> Result<Self, IdError> {
        Self::from_str(&format!("{ty}/{name}"))
    }

    /// The type part (`otlp` in `otlp/agents`).
    pub fn ty(&self) -> &str {
        &self.ty
    }

    /// The name part, if any (`agents` in `otlp/agents`).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl FromStr for ComponentId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        let (ty, name) = match s.split_once('/') {
            Some((ty, name)) => (ty, Some(name)),
            None => (s, None),
        };
        if !valid_type(ty) {
            return Err(IdError::InvalidType(ty.to_string()));
        }
        let name = match name {
            None => None,
            Some("") => return Err(IdError::EmptyName(s.to_string())),
            Some(n) if !valid_name(n) => return Err(IdError::InvalidName(n.to_string())),
            Some(n) => Some(n.to_string()),
        };
        Ok(ComponentId {
            ty: ty.to_string(),
            name,
        })
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}/{}", self.ty, name),
            None => f.write_str(&self.ty),
        }
    }
}

/// A pipeline id: `logs`, `traces/agents`, …
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PipelineId {
    signal: Signal,
    name: Option<String>,
}

impl PipelineId {
    /// The signal this pipeline carries.
    pub fn signal(&self) -> Signal {
        self.signal
    }

    /// The name after the slash, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl FromStr for PipelineId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        let (sig, name) = match s.split_once('/') {
            Some((sig, name)) => (sig, Some(name)),
            None => (s, None),
        };
        let signal = Signal::from_str(sig)
            .map_err(|_| IdError::UnknownSignal(s.to_string(), sig.to_string()))?;
        let name = match name {
            None => None,
            Some("") => return Err(IdError::EmptyName(s.to_string())),
            Some(n) if !valid_name(n) => return Err(IdError::InvalidName(n.to_string())),
            Some(n) => Some(n.to_string()),
        };
        Ok(PipelineId { signal, name })
    }
}

impl fmt::Display for PipelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}/{}", self.signal, name),
            None => write!(f, "{}", self.signal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_ids_parse_like_otelcol() {
        let id: ComponentId = "otlp/agents".parse().unwrap();
        assert_eq!(id.ty(), "otlp");
        assert_eq!(id.name(), Some("agents"));
        assert_eq!(id.to_string(), "otlp/agents");
        assert!("otlp/a.b-c/d".parse::<ComponentId>().is_ok());
        assert_eq!(
            "otlphttp/".parse::<ComponentId>(),
            Err(IdError::EmptyName("otlphttp/".into()))
        );
        assert_eq!(
            "otlp http".parse::<ComponentId>(),
            Err(IdError::InvalidType("otlp http".into()))
        );
        assert!("1otlp".parse::<ComponentId>().is_err());
        assert!("otlp/a b".parse::<ComponentId>().is_err());
        assert!("".parse::<ComponentId>().is_err());
        assert!("a".repeat(64).parse::<ComponentId>().is_err());
        assert!("a".repeat(63).parse::<ComponentId>().is_ok());
    }

    #[test]
    fn pipeline_ids_parse_signal_and_name() {
        let p: PipelineId = "logs/agents".parse().unwrap();
        assert_eq!(p.signal(), Signal::Logs);
        assert_eq!(p.to_string(), "logs/agents");
        assert_eq!(
            "spans".parse::<PipelineId>(),
            Err(IdError::UnknownSignal("spans".into(), "spans".into()))
        );
        assert!("traces/".parse::<PipelineId>().is_err());
    }
}
