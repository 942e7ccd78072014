//! `exporters.sqlite` settings.

use std::path::{Path, PathBuf};

use agentcol_component::{ComponentConfig, ConfigError, Duration};
use serde::{Deserialize, Serialize};

/// The store file's name under the root when `path` is not set.
pub const DEFAULT_FILE: &str = "agentcol.db";

/// How hard SQLite flushes on commit (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync on every commit: an acknowledged batch survives a power cut.
    #[default]
    Full,
    /// fsync at WAL checkpoints only: an acknowledged batch survives a crash of the collector,
    /// but the last commits may be lost on a power cut. Faster.
    Normal,
}

impl Synchronous {
    /// The pragma value.
    pub fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// `exporters.sqlite`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqliteConfig {
    /// The database file. Unset: `<root>/agentcol.db`; a relative path is relative to the root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// `full` (default) or `normal`.
    pub synchronous: Synchronous,
    /// Store log records that are not agent events (no `agent.event.key`) in `other_logs`.
    /// Off by default: they are skipped and counted
    /// (`agentcol_sqlite_records_skipped_total{reason="not_agent"}`).
    pub keep_other_logs: bool,
    /// How long a write waits for a lock held by another connection before the batch is
    /// refused as retryable.
    pub busy_timeout: Duration,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig {
            path: None,
            synchronous: Synchronous::Full,
            keep_other_logs: false,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

impl SqliteConfig {
    /// The database file for the collector rooted at `root`.
    pub fn resolve_path(&self, root: &Path) -> PathBuf {
        match &self.path {
            None => root.join(DEFAULT_FILE),
            Some(p) if p.is_absolute() => p.clone(),
            Some(p) => root.join(p),
        }
    }
}

impl ComponentConfig for SqliteConfig {
    fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errs = Vec::new();
        if let Some(p) = &self.path {
            if p.as_os_str().is_empty() {
                errs.push(ConfigError::new(
                    "path",
                    "must not be empty (leave it unset for <root>/agentcol.db)",
                ));
            } else if p.to_string_lossy().ends_with('/') {
                errs.push(ConfigError::new(
                    "path",
                    "must name a file, not a directory",
                ));
            }
        }
        // SQLite takes the busy timeout in milliseconds as a C int.
        if self.busy_timeout.get().as_millis() > i32::MAX as u128 {
            errs.push(ConfigError::new(
                "busy_timeout",
                "must be at most 596h (SQLite's limit)",
            ));
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentcol_component::config::decode;

    #[test]
    fn defaults_and_paths() {
        let c: SqliteConfig = decode(serde_json::Value::Null).unwrap();
        assert_eq!(c, SqliteConfig::default());
        let root = Path::new("/r");
        assert_eq!(c.resolve_path(root), Path::new("/r/agentcol.db"));
        let c: SqliteConfig =
            decode(serde_json::json!({"path": "x/s.db", "synchronous": "normal"})).unwrap();
        assert_eq!(c.resolve_path(root), Path::new("/r/x/s.db"));
        assert_eq!(c.synchronous, Synchronous::Normal);
        let c: SqliteConfig = decode(serde_json::json!({"path": "/abs.db"})).unwrap();
        assert_eq!(c.resolve_path(root), Path::new("/abs.db"));
        assert_eq!(
            serde_json::to_value(SqliteConfig::default()).unwrap(),
            serde_json::json!({"synchronous": "full", "keep_other_logs": false, "busy_timeout": "5s"})
        );
    }

    #[test]
    fn bad_settings_are_reported_with_their_path() {
        let e = decode::<SqliteConfig>(serde_json::json!({"nope": 1})).unwrap_err();
        assert!(e[0].message.contains("unknown field"), "{e:?}");
        let e = decode::<SqliteConfig>(serde_json::json!({"synchronous": "off"})).unwrap_err();
        assert_eq!(e[0].path, "synchronous");
        let e = decode::<SqliteConfig>(serde_json::json!({"path": "", "busy_timeout": "1000h"}))
            .unwrap_err();
        let paths: Vec<_> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["path", "busy_timeout"]);
    }
}
