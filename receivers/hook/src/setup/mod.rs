//! `agentcol setup [codex|claude|all] [--dry-run] [--undo]`: points both agents at agentcol.
//!
//! What it writes (details in `docs/hooks.md`):
//!
//! * **Codex** (`$CODEX_HOME`, default `~/.codex`): in `config.toml` the `[otel]` exporters for
//!   logs, traces and metrics with full per-signal URLs (Codex uses the endpoint verbatim); in
//!   `hooks.json` one command hook (`agentcol hook --agent codex`) for each of the 14 events;
//!   and the hooks' trust, as `[hooks.state."<key>"] trusted_hash = "…"` tables with the keys
//!   and hashes that `codex app-server` reports in `hooks/list`, so the hooks run without a
//!   manual review. Only agentcol's own hooks are trusted, never a foreign one.
//! * **Claude Code** (`$CLAUDE_CONFIG_DIR`, default `~/.claude`): in `settings.json` the `env`
//!   block that turns on OTLP logs, metrics and traces to agentcol, and an `http` hook to the
//!   `hook` receiver for every event, except `SessionStart` and `Setup`, which Claude Code runs
//!   only as commands (so those call the shim), and `WorktreeCreate`/`WorktreeRemove`, whose
//!   hooks *replace* Claude Code's own worktree handling.
//!
//! The rules: a second run changes nothing (our entries are recognised and replaced, never
//! duplicated; a file whose content would not change is not rewritten); foreign entries and key
//! order are kept; every file is backed up under `<root>/backups/` before its first change, and
//! `--undo` puts the exact bytes back (or deletes a file setup created). When a file was edited
//! after setup, `--undo` removes only agentcol's entries from it and says so, rather than
//! discarding the user's edits. `--dry-run` prints the unified diff and touches nothing.

mod appserver;
mod claude;
mod codex;
mod hookdoc;
pub mod json;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Which agents to set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Codex CLI.
    Codex,
    /// Claude Code.
    Claude,
}

/// Everything setup needs to know, resolved by the caller (the CLI).
#[derive(Debug, Clone)]
pub struct SetupOptions {
    /// The agents to set up.
    pub targets: Vec<Target>,
    /// Print the diff only.
    pub dry_run: bool,
    /// Remove what setup installed.
    pub undo: bool,
    /// agentcol's root (backups and the manifest live under it).
    pub root: PathBuf,
    /// `$CODEX_HOME`.
    pub codex_home: PathBuf,
    /// `$CLAUDE_CONFIG_DIR`.
    pub claude_dir: PathBuf,
    /// The shim command prefix: the absolute path of this binary, then `hook` and its options
    /// (`--root`, `--url` when not the defaults), shell-quoted; `--agent` is appended per agent.
    pub hook_command: String,
    /// Base URL of the OTLP/HTTP receiver (`http://127.0.0.1:4318`).
    pub otlp_http: String,
    /// Base URL of the hook receiver (`http://127.0.0.1:4319`).
    pub hook_url: String,
    /// The `codex` binary used to read hook trust (`hooks/list`); `None` skips trust.
    pub codex_bin: Option<PathBuf>,
    /// Claude Code hooks as `http` (the default: no process per call) or as the command shim for
    /// every event (each call then survives a collector outage in the spool).
    pub claude_hooks: ClaudeHooks,
}

/// How Claude Code's hooks reach agentcol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClaudeHooks {
    /// `"type": "http"` hooks to the receiver (the shim only where Claude runs commands only).
    #[default]
    Http,
    /// The `agentcol hook` shim for every event.
    Command,
}

/// Why setup failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A file-system call failed.
    #[error("{context} {path}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An agent's file cannot be parsed; setup will not overwrite what it cannot read.
    #[error("{path} is not valid {format}: {reason} (fix or move it, then run setup again)")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// JSON or TOML.
        format: &'static str,
        /// The parser's message.
        reason: String,
    },
    /// Talking to `codex app-server` for hook trust failed.
    #[error("hook trust via `codex app-server` failed: {0}")]
    Trust(String),
    /// The manifest of a previous setup is unreadable.
    #[error("the setup manifest {path} is unreadable: {reason}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

pub(crate) fn io<'a>(
    context: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> SetupError + 'a {
    move |source| SetupError::Io {
        context,
        path: path.to_path_buf(),
        source,
    }
}

/// What setup did to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to change.
    Unchanged,
    /// Written (or, with `--dry-run`, would be).
    Changed,
    /// Deleted by `--undo` (setup had created it).
    Removed,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// What happened.
    pub outcome: Outcome,
    /// A note for the user (a warning, or how undo proceeded).
    pub note: Option<String>,
}

/// The manifest of what setup changed: `<root>/backups/manifest.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// By absolute path.
    pub files: BTreeMap<String, ManifestFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ManifestFile {
    /// Whether the file existed before the first setup.
    pub existed: bool,
    /// The backup of its bytes before the first setup (under `backups/`), when it existed.
    pub backup: Option<String>,
    /// Digest of the content setup last wrote.
    pub installed: String,
    /// Values of settings setup overwrote, for an undo of an edited file (Claude `env`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prior: BTreeMap<String, Option<String>>,
    /// Codex hook-trust keys setup wrote.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted: Vec<String>,
}

pub(crate) fn digest(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

/// Reads a file, `None` when it does not exist.
pub(crate) fn read_opt(path: &Path) -> Result<Option<Vec<u8>>, SetupError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("cannot read", path)(e)),
    }
}

/// Writes atomically (temp file and rename), keeping an existing file's mode; new files are 0600.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SetupError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
    }
    let tmp = path.with_extension(format!(
        "{}agentcol-tmp",
        path.extension()
            .map(|e| format!("{}.", e.to_string_lossy()))
            .unwrap_or_default()
    ));
    {
        let mut o = fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut f = o.open(&tmp).map_err(io("cannot create", &tmp))?;
        f.write_all(bytes)
            .and_then(|_| f.sync_all())
            .map_err(io("cannot write", &tmp))?;
    }
    if let Ok(meta) = fs::metadata(path) {
        let _ = fs::set_permissions(&tmp, meta.permissions());
    }
    fs::rename(&tmp, path).map_err(io("cannot replace", path))
}

/// A unified diff of one file's change, for `--dry-run`.
pub(crate) fn diff(path: &Path, before: &[u8], after: &[u8]) -> String {
    let (a, b) = (
        String::from_utf8_lossy(before),
        String::from_utf8_lossy(after),
    );
    let name = path.display().to_string();
    similar::TextDiff::from_lines(a.as_ref(), b.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(&name, &name)
        .to_string()
}

/// The state of one setup or undo run: the manifest and the files touched.
pub(crate) struct Session<'a> {
    pub options: &'a SetupOptions,
    pub manifest: Manifest,
    pub reports: Vec<FileReport>,
    pub out: &'a mut dyn Write,
}

impl Session<'_> {
    fn backups(&self) -> PathBuf {
        self.options.root.join("backups")
    }

    fn manifest_path(&self) -> PathBuf {
        self.backups().join("manifest.json")
    }

    fn load(options: &SetupOptions) -> Result<Manifest, SetupError> {
        let path = options.root.join("backups").join("manifest.json");
        match read_opt(&path)? {
            None => Ok(Manifest::default()),
            Some(b) => serde_json::from_slice(&b).map_err(|e| SetupError::Manifest {
                path,
                reason: e.to_string(),
            }),
        }
    }

    fn save(&self) -> Result<(), SetupError> {
        if self.options.dry_run {
            return Ok(());
        }
        let dir = self.backups();
        private_dir(&dir)?;
        let text = serde_json::to_vec_pretty(&self.manifest).unwrap_or_default();
        write_atomic(&self.manifest_path(), &text)
    }

    /// Installs `after` as the new content of `path` (whose content is `before`), backing the
    /// original up on the first change. Returns whether anything changed.
    pub fn install(
        &mut self,
        path: &Path,
        before: Option<&[u8]>,
        after: &[u8],
        note: Option<String>,
    ) -> Result<bool, SetupError> {
        if before == Some(after) {
            self.reports.push(FileReport {
                path: path.to_path_buf(),
                outcome: Outcome::Unchanged,
                note,
            });
            return Ok(false);
        }
        if self.options.dry_run {
            let _ = write!(
                self.out,
                "{}",
                diff(path, before.unwrap_or_default(), after)
            );
        } else {
            let key = path.display().to_string();
            if !self.manifest.files.contains_key(&key) {
                let backup = match before {
                    Some(b) => {
                        let dir = self.backups();
                        private_dir(&dir)?;
                        let name = format!(
                            "{}-{}",
                            crate::shim::now_ns(),
                            path.to_string_lossy()
                                .trim_start_matches('/')
                                .replace('/', "%")
                        );
                        let to = dir.join(&name);
                        write_atomic(&to, b)?;
                        Some(name)
                    }
                    None => None,
                };
                self.manifest.files.insert(
                    key.clone(),
                    ManifestFile {
                        existed: before.is_some(),
                        backup,
                        installed: String::new(),
                        prior: BTreeMap::new(),
                        trusted: Vec::new(),
                    },
                );
            }
            write_atomic(path, after)?;
            if let Some(m) = self.manifest.files.get_mut(&key) {
                m.installed = digest(after);
            }
            self.save()?;
        }
        self.reports.push(FileReport {
            path: path.to_path_buf(),
            outcome: Outcome::Changed,
            note,
        });
        Ok(true)
    }

    /// The manifest entry of `path`, if setup changed it.
    pub fn entry(&mut self, path: &Path) -> Option<&mut ManifestFile> {
        self.manifest.files.get_mut(&path.display().to_string())
    }

    /// Undoes setup's change to `path`: the exact original bytes when the file is as setup left
    /// it, else `strip(current)` (agentcol's entries removed). Nothing when setup never
    /// touched it.
    pub fn undo(
        &mut self,
        path: &Path,
        strip: impl FnOnce(&[u8], &ManifestFile) -> Result<Vec<u8>, SetupError>,
    ) -> Result<(), SetupError> {
        let key = path.display().to_string();
        let Some(m) = self.manifest.files.get(&key).cloned() else {
            self.reports.push(FileReport {
                path: path.to_path_buf(),
                outcome: Outcome::Unchanged,
                note: Some("not changed by setup".into()),
            });
            return Ok(());
        };
        let current = read_opt(path)?;
        let untouched = current.as_deref().map(digest) == Some(m.installed.clone());
        let (target, note): (Option<Vec<u8>>, Option<String>) = if untouched {
            match &m.backup {
                Some(name) => {
                    let b = self.backups().join(name);
                    (
                        Some(fs::read(&b).map_err(io("cannot read the backup", &b))?),
                        None,
                    )
                }
                None => (None, None),
            }
        } else {
            match &current {
                None => (None, Some("already deleted".into())),
                Some(c) => (
                    Some(strip(c, &m)?),
                    Some(
                        "edited since setup: removed agentcol's entries only, kept the rest".into(),
                    ),
                ),
            }
        };
        let outcome = match (&current, &target) {
            (None, None) => Outcome::Unchanged,
            (Some(c), Some(t)) if c == t => Outcome::Unchanged,
            (_, None) => Outcome::Removed,
            _ => Outcome::Changed,
        };
        if self.options.dry_run {
            let _ = write!(
                self.out,
                "{}",
                diff(
                    path,
                    current.as_deref().unwrap_or_default(),
                    target.as_deref().unwrap_or_default()
                )
            );
        } else {
            match &target {
                Some(t) if current.as_deref() != Some(t.as_slice()) => write_atomic(path, t)?,
                Some(_) => {}
                None => {
                    if current.is_some() {
                        fs::remove_file(path).map_err(io("cannot remove", path))?;
                    }
                }
            }
            if let Some(name) = &m.backup {
                let _ = fs::remove_file(self.backups().join(name));
            }
            self.manifest.files.remove(&key);
            self.save()?;
        }
        self.reports.push(FileReport {
            path: path.to_path_buf(),
            outcome,
            note,
        });
        Ok(())
    }
}

fn private_dir(dir: &Path) -> Result<(), SetupError> {
    fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

/// Runs setup (or undo) for the targets; progress and diffs go to `out`.
pub fn run(options: &SetupOptions, out: &mut dyn Write) -> Result<Vec<FileReport>, SetupError> {
    let manifest = Session::load(options)?;
    let mut s = Session {
        options,
        manifest,
        reports: Vec::new(),
        out,
    };
    for t in &options.targets {
        match (t, options.undo) {
            (Target::Codex, false) => codex::install(&mut s)?,
            (Target::Codex, true) => codex::undo(&mut s)?,
            (Target::Claude, false) => claude::install(&mut s)?,
            (Target::Claude, true) => claude::undo(&mut s)?,
        }
    }
    // One line per file: a file written twice (Codex's config, for OTLP then trust) reports
    // what happened to it overall.
    let mut merged: Vec<FileReport> = Vec::new();
    for r in s.reports {
        match merged.iter_mut().find(|m| m.path == r.path) {
            Some(m) => {
                if m.outcome == Outcome::Unchanged {
                    m.outcome = r.outcome;
                }
                if m.note.is_none() {
                    m.note = r.note;
                }
            }
            None => merged.push(r),
        }
    }
    Ok(merged)
}

/// Quotes a word for a POSIX shell when it needs it.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@%,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Whether a command-hook command is agentcol's shim.
pub(crate) fn is_our_command(command: &str) -> bool {
    command.contains("agentcol") && command.contains(" hook ") && command.contains("--agent")
}

#[cfg(test)]
mod tests;
