//! Codex: `config.toml` (`[otel]` exporters, hook trust) and `hooks.json` (the shim for every
//! event). `config.toml` is edited with `toml_edit`, which keeps comments and layout.

use std::path::PathBuf;

use toml_edit::{DocumentMut, InlineTable, Item, Table, Value};

use super::json::Ordered;
use super::{appserver, hookdoc, read_opt, Session, SetupError};

/// The hook events Codex 0.169 discovers (PascalCase keys of `hooks.json`).
pub const EVENTS: [&str; 14] = [
    "SessionStart",
    "SessionEnd",
    "UserPromptSubmit",
    "PreToolUse",
    "PermissionRequest",
    "PostToolUse",
    "PreCompact",
    "PostCompact",
    "Stop",
    "SubagentStart",
    "SubagentStop",
    "Interrupt",
    "PreModelRequest",
    "PostModelRequest",
];

/// `[otel]` keys setup owns, and the signal path each exports to.
const EXPORTERS: [(&str, &str); 3] = [
    ("exporter", "/v1/logs"),
    ("trace_exporter", "/v1/traces"),
    ("metrics_exporter", "/v1/metrics"),
];

fn paths(s: &Session) -> (PathBuf, PathBuf) {
    let home = &s.options.codex_home;
    (home.join("config.toml"), home.join("hooks.json"))
}

fn command(s: &Session) -> String {
    format!("{} --agent codex", s.options.hook_command)
}

fn parse_toml(path: &std::path::Path, bytes: Option<&[u8]>) -> Result<DocumentMut, SetupError> {
    let text = String::from_utf8_lossy(bytes.unwrap_or_default());
    text.parse::<DocumentMut>()
        .map_err(|e| SetupError::Unreadable {
            path: path.to_path_buf(),
            format: "TOML",
            reason: e.to_string(),
        })
}

fn with_hooks(s: &Session, current: &Ordered) -> Ordered {
    let mut doc = current.clone();
    hookdoc::strip(&mut doc);
    let cmd = command(s);
    for event in EVENTS {
        // SessionEnd and Interrupt are clamped to 3 s by Codex anyway.
        let timeout = if matches!(event, "SessionEnd" | "Interrupt") {
            3
        } else {
            5
        };
        hookdoc::add(
            &mut doc,
            event,
            hookdoc::handler("command", "command", &cmd, timeout),
        );
    }
    doc
}

fn exporter(endpoint: &str) -> Value {
    let mut inner = InlineTable::new();
    inner.insert("endpoint", endpoint.into());
    inner.insert("protocol", "binary".into());
    let mut outer = InlineTable::new();
    outer.insert("otlp-http", Value::InlineTable(inner));
    Value::InlineTable(outer)
}

fn with_otel(s: &Session, doc: &mut DocumentMut) {
    let base = s.options.otlp_http.trim_end_matches('/');
    if !doc.get("otel").is_some_and(|o| o.is_table_like()) {
        doc.insert("otel", Item::Table(Table::new()));
    }
    if let Some(otel) = doc.get_mut("otel").and_then(|o| o.as_table_like_mut()) {
        for (key, path) in EXPORTERS {
            otel.insert(key, Item::Value(exporter(&format!("{base}{path}"))));
        }
    }
}

/// Sets the trust tables for `trusted` (key → hash), removing stale ones of ours.
fn with_trust(doc: &mut DocumentMut, old: &[String], trusted: &[(String, String)]) {
    strip_trust(doc, old);
    if trusted.is_empty() {
        return;
    }
    if !doc.contains_table("hooks") {
        let mut t = Table::new();
        t.set_implicit(true);
        doc.insert("hooks", Item::Table(t));
    }
    let Some(hooks) = doc["hooks"].as_table_mut() else {
        return;
    };
    if !hooks.contains_table("state") {
        let mut t = Table::new();
        t.set_implicit(true);
        hooks.insert("state", Item::Table(t));
    }
    let Some(state) = hooks["state"].as_table_mut() else {
        return;
    };
    for (key, hash) in trusted {
        let mut t = Table::new();
        t.insert("trusted_hash", Item::Value(hash.as_str().into()));
        state.insert(key, Item::Table(t));
    }
}

fn strip_trust(doc: &mut DocumentMut, keys: &[String]) {
    let Some(hooks) = doc.get_mut("hooks").and_then(|h| h.as_table_mut()) else {
        return;
    };
    if let Some(state) = hooks.get_mut("state").and_then(|s| s.as_table_mut()) {
        for k in keys {
            state.remove(k);
        }
        if state.is_empty() {
            hooks.remove("state");
        }
    }
    if hooks.is_empty() {
        doc.remove("hooks");
    }
}

fn strip_otel(doc: &mut DocumentMut, otlp_http: &str) {
    let base = otlp_http.trim_end_matches('/');
    let Some(otel) = doc.get_mut("otel").and_then(|o| o.as_table_like_mut()) else {
        return;
    };
    for (key, path) in EXPORTERS {
        let ours = otel
            .get(key)
            .and_then(|v| v.as_value())
            .map(|v| v.to_string().contains(&format!("{base}{path}")))
            .unwrap_or(false);
        if ours {
            otel.remove(key);
        }
    }
    if otel.is_empty() {
        doc.remove("otel");
    }
}

pub(crate) fn install(s: &mut Session) -> Result<(), SetupError> {
    let (config, hooks) = paths(s);
    let _ = writeln!(s.out, "codex: {}", s.options.codex_home.display());

    let hooks_before = read_opt(&hooks)?;
    let current = hookdoc::parse(&hooks, hooks_before.as_deref())?;
    let hooks_after = hookdoc::render(hooks_before.as_deref(), &current, &with_hooks(s, &current));
    s.install(&hooks, hooks_before.as_deref(), &hooks_after, None)?;

    let config_before = read_opt(&config)?;
    let mut doc = parse_toml(&config, config_before.as_deref())?;
    with_otel(s, &mut doc);
    let otel_after = doc.to_string().into_bytes();
    s.install(&config, config_before.as_deref(), &otel_after, None)?;

    // Trust: ask Codex for the keys and hashes of the hooks it now discovers.
    let Some(codex) = s.options.codex_bin.clone() else {
        let _ = writeln!(
            s.out,
            "warning: codex not found; the hooks stay untrusted until reviewed in Codex's /hooks \
             (or run setup again with --codex PATH)"
        );
        return Ok(());
    };
    if s.options.dry_run {
        let _ = writeln!(
            s.out,
            "(hook trust: the keys and hashes `{} app-server` reports for these hooks would be \
             written to {})",
            codex.display(),
            config.display()
        );
        return Ok(());
    }
    let cmd = command(s);
    let listed = appserver::hooks_list(&codex, &s.options.codex_home)?;
    // Codex may report the path canonicalised (symlinks resolved).
    let ours_path = [
        Some(hooks.display().to_string()),
        std::fs::canonicalize(&hooks)
            .ok()
            .map(|p| p.display().to_string()),
    ];
    let mut trusted: Vec<(String, String)> = listed
        .iter()
        .filter(|h| ours_path.contains(&Some(h.source_path.clone())) && h.command == cmd)
        .map(|h| (h.key.clone(), h.current_hash.clone()))
        .collect();
    trusted.sort();
    if trusted.len() < EVENTS.len() {
        let _ = writeln!(
            s.out,
            "warning: codex listed {} of agentcol's {} hooks; the rest stay untrusted",
            trusted.len(),
            EVENTS.len()
        );
    }
    let old = s
        .entry(&config)
        .map(|m| m.trusted.clone())
        .unwrap_or_default();
    let before = read_opt(&config)?;
    let mut doc = parse_toml(&config, before.as_deref())?;
    with_trust(&mut doc, &old, &trusted);
    let after = doc.to_string().into_bytes();
    s.install(&config, before.as_deref(), &after, None)?;
    let keys: Vec<String> = trusted.iter().map(|(k, _)| k.clone()).collect();
    if let Some(m) = s.entry(&config) {
        if m.trusted != keys {
            m.trusted = keys;
            s.save()?;
        }
    }
    let _ = writeln!(s.out, "codex: {} hooks trusted", trusted.len());
    Ok(())
}

pub(crate) fn undo(s: &mut Session) -> Result<(), SetupError> {
    let (config, hooks) = paths(s);
    let _ = writeln!(s.out, "codex: {}", s.options.codex_home.display());
    let otlp = s.options.otlp_http.clone();
    s.undo(&config, |current, m| {
        let mut doc = parse_toml(&config, Some(current))?;
        strip_trust(&mut doc, &m.trusted);
        strip_otel(&mut doc, &otlp);
        Ok(doc.to_string().into_bytes())
    })?;
    s.undo(&hooks, |current, _| {
        let before = hookdoc::parse(&hooks, Some(current))?;
        let mut doc = before.clone();
        hookdoc::strip(&mut doc);
        Ok(hookdoc::render(Some(current), &before, &doc))
    })?;
    Ok(())
}
