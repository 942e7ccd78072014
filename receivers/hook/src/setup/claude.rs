//! Claude Code: `settings.json` (`env` for OTLP, `hooks` for every event).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::json::{indent_of, to_text, Ordered};
use super::{is_our_command, read_opt, ClaudeHooks, Session, SetupError};

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

fn is_our_handler(h: &Ordered) -> bool {
    match h.get("type").and_then(Ordered::as_str) {
        Some("http") => h
            .get("url")
            .and_then(Ordered::as_str)
            .is_some_and(|u| u.ends_with("/hook/claude")),
        Some("command") => h
            .get("command")
            .and_then(Ordered::as_str)
            .is_some_and(is_our_command),
        _ => false,
    }
}

fn is_our_group(group: &Ordered) -> bool {
    matches!(group.get("hooks"), Some(Ordered::Array(hs)) if !hs.is_empty() && hs.iter().all(is_our_handler))
}

fn strip_hooks(doc: &mut Ordered) {
    let Some(Ordered::Object(events)) = doc.get_mut("hooks") else {
        return;
    };
    for (_, groups) in events.iter_mut() {
        if let Ordered::Array(g) = groups {
            g.retain(|group| !is_our_group(group));
        }
    }
    events.retain(|(_, g)| !matches!(g, Ordered::Array(a) if a.is_empty()));
    if doc.get("hooks").is_some_and(Ordered::is_empty_object) {
        doc.remove("hooks");
    }
}

fn parse(path: &Path, bytes: Option<&[u8]>) -> Result<Ordered, SetupError> {
    let v = match bytes {
        None => return Ok(Ordered::object()),
        Some(b) if b.iter().all(|c| c.is_ascii_whitespace()) => return Ok(Ordered::object()),
        Some(b) => serde_json::from_slice::<Ordered>(b).map_err(|e| SetupError::Unreadable {
            path: path.to_path_buf(),
            format: "JSON",
            reason: e.to_string(),
        })?,
    };
    if matches!(v, Ordered::Object(_)) {
        Ok(v)
    } else {
        Err(SetupError::Unreadable {
            path: path.to_path_buf(),
            format: "JSON",
            reason: "the top level is not an object".into(),
        })
    }
}

fn desired(s: &Session, current: &Ordered) -> Ordered {
    let mut doc = current.clone();
    let env_block = doc.entry("env", Ordered::object());
    for (k, v) in env(s) {
        env_block.set(k, Ordered::str(v));
    }
    strip_hooks(&mut doc);
    let url = url(s);
    let command = format!("{} --agent claude", s.options.hook_command);
    let hooks = doc.entry("hooks", Ordered::object());
    let mut add = |event: &str, handler: Ordered| {
        let group = Ordered::Object(vec![("hooks".into(), Ordered::Array(vec![handler]))]);
        match hooks.entry(event, Ordered::Array(Vec::new())) {
            Ordered::Array(a) => a.push(group),
            other => *other = Ordered::Array(vec![group]),
        }
    };
    for event in COMMAND_EVENTS {
        add(
            event,
            Ordered::Object(vec![
                ("type".into(), Ordered::str("command")),
                ("command".into(), Ordered::str(command.clone())),
                ("timeout".into(), Ordered::Number(5.into())),
            ]),
        );
    }
    for event in HTTP_EVENTS {
        let handler = match s.options.claude_hooks {
            ClaudeHooks::Http => vec![
                ("type".into(), Ordered::str("http")),
                ("url".into(), Ordered::str(url.clone())),
                ("timeout".into(), Ordered::Number(5.into())),
            ],
            ClaudeHooks::Command => vec![
                ("type".into(), Ordered::str("command")),
                ("command".into(), Ordered::str(command.clone())),
                ("timeout".into(), Ordered::Number(5.into())),
            ],
        };
        add(event, Ordered::Object(handler));
    }
    doc
}

pub(crate) fn install(s: &mut Session) -> Result<(), SetupError> {
    let path = path(s);
    let _ = writeln!(s.out, "claude: {}", s.options.claude_dir.display());
    let before = read_opt(&path)?;
    let current = parse(&path, before.as_deref())?;
    let want = desired(s, &current);
    let after = if want == current {
        before.clone().unwrap_or_default()
    } else {
        let indent = before
            .as_deref()
            .map(|b| indent_of(&String::from_utf8_lossy(b)))
            .unwrap_or_else(|| "  ".into());
        to_text(&want, &indent).into_bytes()
    };
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
        let mut doc = parse(&path, Some(current))?;
        strip_hooks(&mut doc);
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
        Ok(to_text(&doc, &indent_of(&String::from_utf8_lossy(current))).into_bytes())
    })
}
