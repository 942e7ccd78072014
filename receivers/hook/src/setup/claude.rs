//! Claude Code: `settings.json` (`env` for OTLP, `hooks` for every event).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::json::Ordered;
use super::{hookdoc, read_opt, ClaudeHooks, Session, SetupError};

/// Events that get an http hook (Claude Code 2.1.328's hook events, less `SessionStart` and
/// `Setup`, which run command hooks only, and `WorktreeCreate`/`WorktreeRemove`, whose hooks
/// replace Claude Code's worktree handling).
pub const HTTP_EVENTS: [&str; 29] = [
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PostToolBatch",
    "Notification",
    "UserPromptSubmit",
    "UserPromptExpansion",
    "SessionEnd",
    "Stop",
    "StopFailure",
    "SubagentStart",
    "SubagentStop",
    "PreCompact",
    "PostCompact",
    "PreModelSwitch",
    "PostModelSwitch",
    "PermissionRequest",
    "PermissionDenied",
    "TeammateIdle",
    "TaskCreated",
    "TaskCompleted",
    "Elicitation",
    "ElicitationResult",
    "ConfigChange",
    "InstructionsLoaded",
    "CwdChanged",
    "FileChanged",
    "DirectoryAdded",
    "MessageDisplay",
];

/// Events that get the command shim.
pub const COMMAND_EVENTS: [&str; 2] = ["SessionStart", "Setup"];

fn path(s: &Session) -> PathBuf {
    s.options.claude_dir.join("settings.json")
}

/// The `env` settings setup owns.
fn env(s: &Session) -> Vec<(&'static str, String)> {
    vec![
        ("CLAUDE_CODE_ENABLE_TELEMETRY", "1".into()),
        ("CLAUDE_CODE_ENHANCED_TELEMETRY_BETA", "1".into()),
        ("OTEL_LOGS_EXPORTER", "otlp".into()),
        ("OTEL_METRICS_EXPORTER", "otlp".into()),
        ("OTEL_TRACES_EXPORTER", "otlp".into()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            s.options.otlp_http.trim_end_matches('/').to_string(),
        ),
    ]
}

fn url(s: &Session) -> String {
    format!("{}/hook/claude", s.options.hook_url.trim_end_matches('/'))
}

fn desired(s: &Session, current: &Ordered) -> Ordered {
    let mut doc = current.clone();
    let env_block = doc.entry("env", Ordered::object());
    for (k, v) in env(s) {
        env_block.set(k, Ordered::str(v));
    }
    hookdoc::strip(&mut doc);
    let url = url(s);
    let command = format!("{} --agent claude", s.options.hook_command);
    for event in COMMAND_EVENTS {
        hookdoc::add(
            &mut doc,
            event,
            hookdoc::handler("command", "command", &command, 5),
        );
    }
    for event in HTTP_EVENTS {
        let handler = match s.options.claude_hooks {
            ClaudeHooks::Http => hookdoc::handler("http", "url", &url, 5),
            ClaudeHooks::Command => hookdoc::handler("command", "command", &command, 5),
        };
        hookdoc::add(&mut doc, event, handler);
    }
    doc
}

pub(crate) fn install(s: &mut Session) -> Result<(), SetupError> {
    let path = path(s);
    let _ = writeln!(s.out, "claude: {}", s.options.claude_dir.display());
    let before = read_opt(&path)?;
    let current = hookdoc::parse(&path, before.as_deref())?;
    let after = hookdoc::render(before.as_deref(), &current, &desired(s, &current));
    // The env values this run replaces, for an undo of a file edited after setup.
    let prior: BTreeMap<String, Option<String>> = env(s)
        .into_iter()
        .map(|(k, _)| {
            let old = current
                .get("env")
                .and_then(|e| e.get(k))
                .and_then(Ordered::as_str)
                .map(str::to_string);
            (k.to_string(), old)
        })
        .collect();
    let first = s.entry(&path).is_none();
    s.install(&path, before.as_deref(), &after, None)?;
    if first && !s.options.dry_run {
        if let Some(m) = s.entry(&path) {
            m.prior = prior;
            s.save()?;
        }
    }
    Ok(())
}

pub(crate) fn undo(s: &mut Session) -> Result<(), SetupError> {
    let path = path(s);
    let _ = writeln!(s.out, "claude: {}", s.options.claude_dir.display());
    s.undo(&path, |current, m| {
        let before = hookdoc::parse(&path, Some(current))?;
        let mut doc = before.clone();
        hookdoc::strip(&mut doc);
        if let Some(env) = doc.get_mut("env") {
            for (k, old) in &m.prior {
                match old {
                    Some(v) => env.set(k, Ordered::str(v.clone())),
                    None => {
                        env.remove(k);
                    }
                }
            }
        }
        if doc.get("env").is_some_and(Ordered::is_empty_object) {
            doc.remove("env");
        }
        Ok(hookdoc::render(Some(current), &before, &doc))
    })
}
