//! Types and rules shared by every component's configuration.
//!
//! A component's config is a plain serde struct with `#[serde(default, deny_unknown_fields)]`
//! and a `Default` impl: user values overlay the defaults field by field, unknown keys are errors
//! (otelcol's `has invalid keys`), and `{}` always yields the default. Semantic checks go in
//! [`ComponentConfig::validate`], which reports every fault at once with its path.

use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One configuration fault: where (a `::`-separated path relative to what was decoded) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `protocols::grpc::endpoint`; empty for the decoded value itself.
    pub path: String,
    /// What is wrong, in words a user can act on.
    pub message: String,
}

impl ConfigError {
    /// A fault at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same fault seen from one level up (`prefix::path`).
    pub fn under(mut self, prefix: &str) -> Self {
        self.path = join_path(prefix, &self.path);
        self
    }
}

/// Joins two `::` paths, skipping empty parts.
pub fn join_path(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}::{b}"),
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// What a component config type must be.
pub trait ComponentConfig:
    DeserializeOwned + Serialize + Default + Clone + fmt::Debug + Send + Sync + 'static
{
    /// Semantic checks beyond types. Return every fault, each with its path relative to the
    /// component (`protocols::grpc::endpoint`).
    fn validate(&self) -> Result<(), Vec<ConfigError>> {
        Ok(())
    }
}

/// Decodes a component config from a JSON-model value (the builder turns YAML into that) and
/// validates it. Decode errors carry the path of the offending field.
pub fn decode<C: ComponentConfig>(value: serde_json::Value) -> Result<C, Vec<ConfigError>> {
    let value = match value {
        serde_json::Value::Null => serde_json::Value::Object(Default::default()),
        v => v,
    };
    let config: C = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            String::new()
        } else {
            path.replace('.', "::")
        };
        vec![ConfigError::new(path, e.into_inner().to_string())]
    })?;
    config.validate()?;
    Ok(config)
}

/// A span of time, written the way Go (and so otelcol) writes it: `200ms`, `5s`, `1m30s`,
/// `1.5h`. Units: `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`. A bare number other than `0` is an error
/// (`missing unit in duration`), as in Go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// From whole seconds.
    pub const fn from_secs(s: u64) -> Self {
        Duration(std::time::Duration::from_secs(s))
    }

    /// From milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Duration(std::time::Duration::from_millis(ms))
    }

    /// The std duration.
    pub fn get(self) -> std::time::Duration {
        self.0
    }

    /// Whether it is zero.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

/// Why a duration string was rejected (Go's wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time: {kind} {input:?}")]
pub struct DurationError {
    kind: &'static str,
    input: String,
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |kind| DurationError {
            kind,
            input: input.to_string(),
        };
        let s = input.trim();
        if s == "0" {
            return Ok(Duration::default());
        }
        if s.is_empty() {
            return Err(err("invalid duration"));
        }
        if s.starts_with('-') {
            return Err(err("negative duration"));
        }
        let s = s.strip_prefix('+').unwrap_or(s);
        let mut total_ns: f64 = 0.0;
        let mut rest = s;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            if num_len == 0 {
                return Err(err("invalid duration"));
            }
            let number: f64 = rest[..num_len]
                .parse()
                .map_err(|_| err("invalid duration"))?;
            rest = &rest[num_len..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            if unit_len == 0 {
                return Err(err("missing unit in duration"));
            }
            let scale = match &rest[..unit_len] {
                "ns" => 1.0,
                "us" | "µs" | "μs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                _ => return Err(err("unknown unit in duration")),
            };
            rest = &rest[unit_len..];
            total_ns += number * scale;
        }
        if !total_ns.is_finite() || total_ns > u64::MAX as f64 {
            return Err(err("invalid duration"));
        }
        Ok(Duration(std::time::Duration::from_nanos(total_ns as u64)))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos();
        if ns == 0 {
            return f.write_str("0s");
        }
        let units: [(u128, &str); 6] = [
            (3_600_000_000_000, "h"),
            (60_000_000_000, "m"),
            (1_000_000_000, "s"),
            (1_000_000, "ms"),
            (1_000, "us"),
            (1, "ns"),
        ];
        // Largest unit that divides exactly, so the text parses back to the same value.
        for (size, unit) in units {
            if ns % size == 0 {
                return write!(f, "{}{}", ns / size, unit);
            }
        }
        write!(f, "{ns}ns")
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"5s\" or \"200ms\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
                if v == 0 {
                    Ok(Duration::default())
                } else {
                    Err(E::custom(format!("time: missing unit in duration \"{v}\"")))
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
                if v == 0 {
                    Ok(Duration::default())
                } else {
                    Err(E::custom(format!("time: missing unit in duration \"{v}\"")))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A string that must never be printed: tokens, header values, passwords. `Debug`, `Display`
/// and `Serialize` (so `print-config`) all show `[REDACTED]`; read it with [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Secret(String);

/// What a secret looks like wherever it is shown.
pub const REDACTED: &str = "[REDACTED]";

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself: only for use on the wire, never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty (unset).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// For `Option<T>` fields where the key's presence enables a feature with its defaults
/// (`protocols: {grpc: }` turns gRPC on): `null` becomes `Some(T::default())`. Use with
/// `#[serde(default, deserialize_with = "agentcol_component::config::present_as_default")]`.
pub fn present_as_default<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as Std;

    #[test]
    fn durations_parse_like_go() {
        let p = |s: &str| s.parse::<Duration>().map(|d| d.0);
        assert_eq!(p("200ms"), Ok(Std::from_millis(200)));
        assert_eq!(p("5s"), Ok(Std::from_secs(5)));
        assert_eq!(p("1m30s"), Ok(Std::from_secs(90)));
        assert_eq!(p("1.5s"), Ok(Std::from_millis(1500)));
        assert_eq!(p("2h"), Ok(Std::from_secs(7200)));
        assert_eq!(p("10us"), Ok(Std::from_micros(10)));
        assert_eq!(p("0"), Ok(Std::ZERO));
        assert!(p("5").unwrap_err().to_string().contains("missing unit"));
        assert!(p("5x").unwrap_err().to_string().contains("unknown unit"));
        assert!(p("-1s").is_err());
        assert!(p("").is_err());
        assert!(p("s").is_err());
    }

    #[test]
    fn durations_round_trip_through_text() {
        for s in ["5s", "200ms", "90s", "1h", "7us", "3ns", "0s"] {
            let d: Duration = s.parse().unwrap();
            assert_eq!(d.to_string().parse::<Duration>().unwrap(), d, "{s}");
        }
        assert_eq!(Duration::from_millis(1500).to_string(), "1500ms");
    }

    #[test]
    fn secrets_never_show() {
        let s = Secret::new("tok");
        assert_eq!(format!("{s:?} {s}"), "[REDACTED] [REDACTED]");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[REDACTED]\"");
        assert_eq!(s.expose(), "tok");
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Inner {
        timeout: Duration,
        size: u32,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Outer {
        #[serde(deserialize_with = "present_as_default")]
        grpc: Option<Inner>,
        inner: Inner,
    }

    impl ComponentConfig for Outer {}

    #[test]
    fn decode_reports_the_path_of_the_fault() {
        let e = decode::<Outer>(serde_json::json!({"inner": {"size": "big"}})).unwrap_err();
        assert_eq!(e[0].path, "inner::size");
        let e = decode::<Outer>(serde_json::json!({"inner": {"bogus": 1}})).unwrap_err();
        assert!(e[0].message.contains("bogus"), "{}", e[0]);
        let e = decode::<Outer>(serde_json::json!({"inner": {"timeout": "5q"}})).unwrap_err();
        assert_eq!(e[0].path, "inner::timeout");
        let c = decode::<Outer>(serde_json::json!({"grpc": null})).unwrap();
        assert!(c.grpc.is_some());
        let c = decode::<Outer>(serde_json::Value::Null).unwrap();
        assert!(c.grpc.is_none());
    }
}
