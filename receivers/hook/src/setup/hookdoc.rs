//! The hooks document both agents share the shape of: Codex's `hooks.json` and the `hooks` key
//! of Claude Code's `settings.json` are both `{"hooks": {"<Event>": [{"matcher"?, "hooks":
//! [handler, …]}, …]}}`. Reading, recognising agentcol's groups, removing and adding them, and
//! writing the file back in its own indentation are the same for both.

use std::path::Path;

use super::json::{indent_of, to_text, Ordered};
use super::{is_our_command, SetupError};

/// Reads a JSON settings file whose top level must be an object (absent or blank: empty).
pub(crate) fn parse(path: &Path, bytes: Option<&[u8]>) -> Result<Ordered, SetupError> {
    let unreadable = |reason: String| SetupError::Unreadable {
        path: path.to_path_buf(),
        format: "JSON",
        reason,
    };
    let v = match bytes {
        None => return Ok(Ordered::object()),
        Some(b) if b.iter().all(|c| c.is_ascii_whitespace()) => return Ok(Ordered::object()),
        Some(b) => serde_json::from_slice::<Ordered>(b).map_err(|e| unreadable(e.to_string()))?,
    };
    if matches!(v, Ordered::Object(_)) {
        Ok(v)
    } else {
        Err(unreadable("the top level is not an object".into()))
    }
}

/// The bytes to write for `desired`: the original bytes when nothing changed (so a run that
/// changes nothing rewrites nothing), else `desired` in the original's indentation.
pub(crate) fn render(before: Option<&[u8]>, current: &Ordered, desired: &Ordered) -> Vec<u8> {
    if desired == current {
        if let Some(b) = before {
            return b.to_vec();
        }
    }
    let indent = before
        .map(|b| indent_of(&String::from_utf8_lossy(b)))
        .unwrap_or_else(|| "  ".into());
    to_text(desired, &indent).into_bytes()
}

/// Whether a handler is agentcol's: the shim, or an http hook to the hook receiver.
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

/// Whether a matcher group is agentcol's (every handler in it is).
fn is_our_group(group: &Ordered) -> bool {
    matches!(group.get("hooks"), Some(Ordered::Array(hs)) if !hs.is_empty() && hs.iter().all(is_our_handler))
}

/// Removes agentcol's groups from every event; events left empty, and a `hooks` object left
/// empty, are removed too.
pub(crate) fn strip(doc: &mut Ordered) {
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

/// Appends one group holding `handler` to `event` (our groups go last, so foreign groups keep
/// their positions).
pub(crate) fn add(doc: &mut Ordered, event: &str, handler: Ordered) {
    let group = Ordered::Object(vec![("hooks".into(), Ordered::Array(vec![handler]))]);
    match doc
        .entry("hooks", Ordered::object())
        .entry(event, Ordered::Array(Vec::new()))
    {
        Ordered::Array(a) => a.push(group),
        other => *other = Ordered::Array(vec![group]),
    }
}

/// A handler object: `{"type": …, <key>: <value>, "timeout": …}`.
pub(crate) fn handler(kind: &str, key: &str, value: &str, timeout: u32) -> Ordered {
    Ordered::Object(vec![
        ("type".into(), Ordered::str(kind)),
        (key.into(), Ordered::str(value)),
        ("timeout".into(), Ordered::Number(timeout.into())),
    ])
}
