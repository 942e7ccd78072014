//! The `dedupe` processor's settings.

use std::collections::BTreeSet;
use std::path::PathBuf;

use agentcol_component::agent::Precedence;
use agentcol_component::config::ConfigError;
use agentcol_component::{ComponentConfig, Duration};
use serde::{Deserialize, Serialize};

/// Settings of one `dedupe` instance (`processors: dedupe/store: {...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupeConfig {
    /// How long a new key is held before its first emission, so that the other channels'
    /// observations (and alias declarations) are folded in first. `0s`: emit within the same
    /// `consume` call, acknowledged by downstream. The store pipeline uses `0s`; a forwarding
    /// pipeline a few seconds.
    pub settle_window: Duration,
    /// Channel precedence per agent, best first.
    pub precedence: Precedence,
    /// Attach to each emitted record the raw observations that are new since its previous
    /// emission (`agent.event.observations`), so the store can archive them losslessly.
    /// Forwarding pipelines set it to `false`.
    pub attach_observations: bool,
    /// The state database. Default `<root>/state/dedupe/<id with / replaced by _>.db`; a
    /// relative path is taken relative to the root.
    pub state_path: Option<PathBuf>,
    /// How many of the latest decisions the state database keeps for `agentcol status --dedupe`
    /// (`0` keeps none; the per-decision totals are always kept).
    pub decisions_kept: usize,
    /// How many keys are kept in memory; colder keys are read from the state database when
    /// they are seen again.
    pub cache_keys: usize,
    /// How many bytes the cached keys may take (their stored form, the key and a fixed
    /// per-entry overhead): a key holds its merged event with bodies, so a count alone does
    /// not bound memory. Default 32 MiB.
    pub cache_bytes: usize,
    /// How long `shutdown` keeps trying to deliver what is still pending (settle window > 0).
    /// What is left stays pending on disk and goes out at the next start.
    pub shutdown_timeout: Duration,
    /// The id of a `sqlite` exporter to read the key states from instead of keeping them in
    /// the state file (which then holds only aliases, origins and decisions): the store's
    /// rows and archive are those states, so each event is written once and each request
    /// commits one file's worth of content. That exporter must be directly after this
    /// processor, as its pipeline's only exporter; needs `settle_window: 0s` and
    /// `attach_observations: true`. Unset: the state file holds everything.
    pub storage: Option<String>,
}

impl Default for DedupeConfig {
    fn default() -> Self {
        DedupeConfig {
            settle_window: Duration::default(),
            precedence: Precedence::default(),
            attach_observations: true,
            state_path: None,
            decisions_kept: 1000,
            cache_keys: 100_000,
            cache_bytes: 32 << 20,
            shutdown_timeout: Duration::from_secs(5),
            storage: None,
        }
    }
}

impl ComponentConfig for DedupeConfig {
    fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        if self.cache_keys == 0 {
            errors.push(ConfigError::new("cache_keys", "must be at least 1"));
        }
        if self.cache_bytes == 0 {
            errors.push(ConfigError::new("cache_bytes", "must be at least 1"));
        }
        if let Some(p) = &self.state_path {
            if p.as_os_str().is_empty() {
                errors.push(ConfigError::new(
                    "state_path",
                    "must not be empty (remove it to use the default)",
                ));
            } else if p.file_name().is_none() {
                errors.push(ConfigError::new("state_path", "must name a file"));
            }
        }
        if let Some(id) = &self.storage {
            if let Err(e) = id.parse::<agentcol_component::ComponentId>() {
                errors.push(ConfigError::new(
                    "storage",
                    format!("not an exporter id: {e}"),
                ));
            }
            if !self.settle_window.is_zero() {
                errors.push(ConfigError::new(
                    "settle_window",
                    "must be 0s with storage: the store's rows are the state, and a key held back for a window has no row yet",
                ));
            }
            if !self.attach_observations {
                errors.push(ConfigError::new(
                    "attach_observations",
                    "must be true with storage: the store's archive of attached observations is the state",
                ));
            }
        }
        for (agent, list) in [
            ("codex", &self.precedence.codex),
            ("claude_code", &self.precedence.claude_code),
        ] {
            let mut seen = BTreeSet::new();
            for (i, s) in list.iter().enumerate() {
                if !seen.insert(*s) {
                    errors.push(ConfigError::new(
                        format!("precedence::{agent}::{i}"),
                        format!("channel {s:?} is listed twice", s = s.as_str()),
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentcol_component::agent::Source;
    use agentcol_component::config::decode;

    #[test]
    fn defaults() {
        let c = decode::<DedupeConfig>(serde_json::Value::Null).unwrap();
        assert_eq!(c, DedupeConfig::default());
        assert!(c.settle_window.is_zero());
        assert!(c.attach_observations);
        assert_eq!(c.decisions_kept, 1000);
        assert_eq!(c.cache_keys, 100_000);
        assert_eq!(c.cache_bytes, 32 << 20);
        assert_eq!(
            c.precedence.codex,
            vec![
                Source::AppServer,
                Source::Rollout,
                Source::Hook,
                Source::Otlp
            ]
        );
    }

    #[test]
    fn faults_carry_their_path() {
        let e = decode::<DedupeConfig>(serde_json::json!({"bogus": 1})).unwrap_err();
        assert!(e[0].message.contains("bogus"), "{e:?}");
        let e = decode::<DedupeConfig>(serde_json::json!({"settle_window": "5"})).unwrap_err();
        assert_eq!(e[0].path, "settle_window");
        let e = decode::<DedupeConfig>(serde_json::json!({
            "cache_keys": 0,
            "state_path": "",
            "precedence": {"codex": ["hook", "otlp", "hook"]},
        }))
        .unwrap_err();
        let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["cache_keys", "state_path", "precedence::codex::2"]);
        let e = decode::<DedupeConfig>(serde_json::json!({"precedence": {"codex": ["fax"]}}))
            .unwrap_err();
        assert!(e[0].path.starts_with("precedence::codex"), "{e:?}");
    }

    #[test]
    fn storage_needs_no_window_and_attached_observations() {
        let c = decode::<DedupeConfig>(serde_json::json!({"storage": "sqlite"})).unwrap();
        assert_eq!(c.storage.as_deref(), Some("sqlite"));
        let e = decode::<DedupeConfig>(serde_json::json!({
            "storage": "sqlite/",
            "settle_window": "2s",
            "attach_observations": false,
        }))
        .unwrap_err();
        let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["storage", "settle_window", "attach_observations"]);
    }

    #[test]
    fn a_partial_precedence_keeps_the_other_agent_default() {
        let c = decode::<DedupeConfig>(serde_json::json!({
            "settle_window": "2s",
            "precedence": {"codex": ["otlp", "hook"]},
            "attach_observations": false,
        }))
        .unwrap();
        assert_eq!(c.settle_window, Duration::from_secs(2));
        assert_eq!(c.precedence.codex, vec![Source::Otlp, Source::Hook]);
        assert_eq!(c.precedence.claude_code, Precedence::default().claude_code);
        assert!(!c.attach_observations);
    }
}
