//! Hooks end to end: `agentcol setup` against temporary agent homes, then the real Codex and
//! Claude Code sessions reaching agentcol through hooks *and* OTLP, merged into one event per
//! logical event; the spool carrying hook calls across a collector outage; the shim's contract
//! (silent, exit 0, bounded) with the collector down or hanging.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// The store pipeline with the hook receiver, on test ports.
pub fn hook_store_config(grpc: u16, http: u16, hook: u16, metrics: u16) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:{grpc}}}
      http: {{endpoint: 127.0.0.1:{http}}}
  hook:
    endpoint: 127.0.0.1:{hook}
    spool: {{check_interval: 200ms}}
processors:
  dedupe/store: {{settle_window: 0s, storage: sqlite}}
exporters:
  sqlite: {{}}
  nop: {{}}
service:
  pipelines:
    logs: {{receivers: [otlp, hook], processors: [dedupe/store], exporters: [sqlite]}}
    traces: {{receivers: [otlp], exporters: [nop]}}
    metrics: {{receivers: [otlp], exporters: [nop]}}
  telemetry:
    metrics: {{address: 127.0.0.1:{metrics}}}
"#
    )
}

struct HookStore {
    work: Workdir,
    config: PathBuf,
    http: u16,
    hook: u16,
    metrics: u16,
}

impl HookStore {
    fn new() -> HookStore {
        let work = Workdir::new();
        let (grpc, http, hook, metrics) = (free_port(), free_port(), free_port(), free_port());
        let config = work.write("hooks.yaml", &hook_store_config(grpc, http, hook, metrics));
        HookStore {
            work,
            config,
            http,
            hook,
            metrics,
        }
    }

    fn start(&self) -> Running {
        Running::agentcol("agentcol", &self.work, &self.config)
    }

    fn db(&self) -> PathBuf {
        self.work.root().join("agentcol.db")
    }

    /// Runs `agentcol setup ARGS` with these agent homes, pointed at this collector.
    fn setup(
        &self,
        args: &[&str],
        codex_home: &Path,
        claude_dir: &Path,
        codex: Option<&Path>,
    ) -> String {
        let mut cmd = Command::new(BIN);
        cmd.arg("setup")
            .args(args)
            .arg("--otlp-url")
            .arg(format!("http://127.0.0.1:{}", self.http))
            .arg("--hook-url")
            .arg(format!("http://127.0.0.1:{}", self.hook))
            .env("AGENTCOL_ROOT", self.work.root())
            .env("CODEX_HOME", codex_home)
            .env("CLAUDE_CONFIG_DIR", claude_dir)
            .env("HOME", self.work.path())
            .env_remove("RUST_LOG");
        if let Some(c) = codex {
            cmd.arg("--codex").arg(c);
        }
        let out = cmd.output().expect("run agentcol setup");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "setup {args:?} failed: {text}");
        text
    }
}

fn query(db: &Path, sql: &str) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(db).expect("open the store");
    let mut stmt = conn.prepare(sql).expect("prepare");
    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

/// (kind, sources) of every event of a session.
fn events(db: &Path, session: &str) -> Vec<(String, String)> {
    query(
        db,
        &format!(
            "SELECT kind, sources FROM events WHERE session_id = '{session}' ORDER BY kind, key"
        ),
    )
}

fn assert_merged(events: &[(String, String)], kind: &str, n: usize, sources: &[&str]) {
    let rows: Vec<&(String, String)> = events.iter().filter(|(k, _)| k == kind).collect();
    assert_eq!(rows.len(), n, "{kind}: {events:#?}");
    for (_, s) in rows {
        for want in sources {
            assert!(s.contains(want), "{kind} lacks {want}: {events:#?}");
        }
    }
}

/// The events of a session once both channels' last deliveries are in (rows appear shortly
/// after the agent exits): a tool result seen by hooks and OTLP, and the session end.
fn settled(db: &Path, session: &str) -> Vec<(String, String)> {
    let done = || {
        let e = events(db, session);
        e.iter()
            .any(|(k, s)| k == "tool.result" && s.contains("hook") && s.contains("otlp"))
            && e.iter().any(|(k, _)| k == "session.end")
    };
    assert!(
        eventually(Duration::from_secs(15), || db.exists() && done()),
        "{:#?}",
        events(db, session)
    );
    events(db, session)
}

#[test]
fn after_setup_real_agents_reach_agentcol_through_hooks_and_otlp_merged() {
    let test = "after_setup_real_agents_reach_agentcol_through_hooks_and_otlp_merged";
    let (Some(codex), Some(claude)) = (
        crate::codex::codex_bin(test),
        crate::claude::claude_bin(test),
    ) else {
        return;
    };
    let store = HookStore::new();
    let _collector = store.start();

    // One `setup all` against both temporary homes: Codex's is the run's CODEX_HOME; Claude's
    // settings.json is then the config of the Claude run.
    let claude_home = store.work.path().join("claude-home");
    std::fs::create_dir_all(&claude_home).unwrap();
    let codex_run = crate::codex::run_codex_two_turns_with(
        &codex,
        None,
        &|home| {
            let out = store.setup(&["all"], home, &claude_home, Some(&codex));
            assert!(out.contains("codex: 14 hooks trusted"), "{out}");
        },
        &|| {},
    );
    let claude_run = crate::claude::run_claude_bash_with(
        &claude,
        None,
        &|config| {
            std::fs::copy(
                claude_home.join("settings.json"),
                config.join("settings.json"),
            )
            .expect("the settings.json setup wrote");
        },
        test,
    );

    let db = store.db();
    let t = codex_run.thread.clone();
    let e = settled(&db, &t);
    assert_merged(&e, "session.start", 1, &["hook", "otlp"]);
    assert_merged(&e, "user_prompt", 2, &["hook", "otlp"]);
    assert_merged(&e, "tool.call", 1, &["hook", "otlp"]);
    assert_merged(&e, "tool.result", 1, &["hook", "otlp"]);
    assert_merged(&e, "turn.end", 2, &["hook", "otlp"]);
    // Codex's OTLP has no session end; the hook brings it.
    assert_merged(&e, "session.end", 1, &["hook"]);

    let s = claude_run.session.clone();
    let e = settled(&db, &s);
    assert_merged(&e, "user_prompt", 1, &["hook", "otlp"]);
    assert_merged(&e, "tool.call", 1, &["hook", "otlp"]);
    assert_merged(&e, "tool.result", 1, &["hook", "otlp"]);
    // Claude Code's OTLP has no session events; SessionStart comes through the command shim.
    assert_merged(&e, "session.start", 1, &["hook"]);
    assert_merged(&e, "session.end", 1, &["hook"]);
    let ids = query(
        &db,
        &format!(
            "SELECT item_id, turn_id FROM events WHERE session_id = '{s}' AND kind = 'tool.call'"
        ),
    );
    assert_eq!(
        ids,
        [(claude_run.tool_use_id.clone(), claude_run.prompt_id.clone())]
    );
}

#[test]
fn hook_calls_made_while_the_collector_is_down_are_delivered_from_the_spool_once() {
    let test = "hook_calls_made_while_the_collector_is_down_are_delivered_from_the_spool_once";
    let Some(codex) = crate::codex::codex_bin(test) else {
        return;
    };
    let store = HookStore::new();
    let collector = std::cell::RefCell::new(Some(store.start()));
    let spool = store.work.root().join("spool/hook");
    let spooled = |dir: &Path| -> usize {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".hook"))
                    .count()
            })
            .unwrap_or(0)
    };
    let run = crate::codex::run_codex_two_turns_with(
        &codex,
        None,
        &|home| {
            store.setup(&["codex"], home, &home.join("no-claude"), Some(&codex));
        },
        // The collector goes away between the turns: the whole second turn happens without it.
        &|| {
            if let Some(mut c) = collector.borrow_mut().take() {
                assert_eq!(c.terminate(Duration::from_secs(20)), Some(0));
            }
        },
    );
    let waiting = spooled(&spool);
    // Turn 2: SessionStart (resume), UserPromptSubmit, Pre/PostModelRequest ×2, PreToolUse,
    // PostToolUse, Stop, SessionEnd.
    assert!(waiting >= 8, "only {waiting} hook calls spooled");

    let db = store.db();
    let _back = store.start();
    assert!(eventually(Duration::from_secs(15), || spooled(&spool) == 0));
    let t = run.thread.clone();
    // Every turn-2 hook call is stored once: one hook observation per key.
    let calls = query(
        &db,
        &format!(
            "SELECT e.kind, CAST(count(*) AS TEXT) FROM archive o JOIN events e ON e.key = o.key
             WHERE e.session_id = '{t}' AND o.source = 'hook'
               AND e.kind IN ('tool.call', 'tool.result', 'user_prompt', 'turn.end')
             GROUP BY e.kind, e.key ORDER BY e.kind"
        ),
    );
    let calls: Vec<(String, String)> = calls;
    assert!(calls.iter().all(|(_, n)| n == "1"), "{calls:#?}");
    let kinds: Vec<&str> = calls.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "tool.call",
            "tool.result",
            "turn.end",
            "turn.end",
            "user_prompt",
            "user_prompt"
        ],
        "{calls:#?}"
    );
    let text = |port: u16| {
        http(port, "GET", "/metrics", &[], b"")
            .body
            .into_iter()
            .map(char::from)
            .collect::<String>()
    };
    let m = text(store.metrics);
    let delivered: f64 = m
        .lines()
        .find(|l| l.starts_with("agentcol_receiver_hook_spool_total") && l.contains("delivered"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert_eq!(delivered as usize, waiting, "{m}");
}

fn shim(url: &str, root: &Path) -> (std::process::Output, Duration) {
    let mut child = Command::new(BIN)
        .args(["hook", "--agent", "codex", "--url", url, "--root"])
        .arg(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the shim");
    let started = Instant::now();
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(br#"{"session_id":"s","turn_id":"t","hook_event_name":"Stop"}"#);
    }
    let out = child.wait_with_output().expect("wait for the shim");
    (out, started.elapsed())
}

#[test]
fn the_shim_is_silent_exits_0_and_gives_up_promptly_when_the_collector_is_down_or_hangs() {
    let w = Workdir::new();
    let down = free_port();
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hang = hanging.local_addr().unwrap().port();
    for (what, url) in [
        ("down", format!("http://127.0.0.1:{down}")),
        ("hanging", format!("http://127.0.0.1:{hang}")),
    ] {
        let (out, took) = shim(&url, &w.root());
        assert_eq!(out.status.code(), Some(0), "{what}");
        assert!(
            out.stdout.is_empty() && out.stderr.is_empty(),
            "{what}: {out:?}"
        );
        // The shim's deadline is 100 ms; this bound only tells a working deadline from the
        // agent's own hook timeout (600 s), it measures nothing (BENCHMARKS.md does).
        assert!(took < Duration::from_secs(3), "{what}: {took:?}");
    }
    let entries = std::fs::read_dir(w.root().join("spool/hook"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .map(|e| e.file_name().to_string_lossy().ends_with(".hook"))
                .unwrap_or(false)
        })
        .count();
    assert_eq!(entries, 2, "both calls spooled");
    // A usage error must not reach the agent either (Codex reads exit 2 as "block").
    let out = Command::new(BIN)
        .args(["hook", "--no-such-flag"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    drop(hanging);
}

#[test]
fn setup_and_undo_through_the_binary_leave_agent_files_byte_identical() {
    let store = HookStore::new();
    let (codex_home, claude_dir) = (
        store.work.path().join("codex"),
        store.work.path().join("claude"),
    );
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::create_dir_all(&claude_dir).unwrap();
    let config = "model = \"o3\"  # mine\n\n[tui]\nnotifications = true\n";
    let settings = "{\n  \"theme\": \"dark\",\n  \"hooks\": {\"Stop\": [{\"hooks\": [{\"type\": \"command\", \"command\": \"say done\"}]}]}\n}\n";
    std::fs::write(codex_home.join("config.toml"), config).unwrap();
    std::fs::write(claude_dir.join("settings.json"), settings).unwrap();

    let dry = store.setup(&["all", "--dry-run"], &codex_home, &claude_dir, None);
    assert!(
        dry.contains("+[otel]") || dry.contains("+exporter"),
        "{dry}"
    );
    assert_eq!(
        std::fs::read_to_string(codex_home.join("config.toml")).unwrap(),
        config
    );
    assert!(!codex_home.join("hooks.json").exists());

    store.setup(&["all"], &codex_home, &claude_dir, None);
    let once = (
        std::fs::read(codex_home.join("config.toml")).unwrap(),
        std::fs::read(codex_home.join("hooks.json")).unwrap(),
        std::fs::read(claude_dir.join("settings.json")).unwrap(),
    );
    let again = store.setup(&["all"], &codex_home, &claude_dir, None);
    assert!(!again.contains("  changed:"), "{again}");
    assert_eq!(
        once,
        (
            std::fs::read(codex_home.join("config.toml")).unwrap(),
            std::fs::read(codex_home.join("hooks.json")).unwrap(),
            std::fs::read(claude_dir.join("settings.json")).unwrap(),
        )
    );
    let hooks = String::from_utf8_lossy(&once.1).to_string();
    assert!(hooks.contains(" hook --url "), "{hooks}");

    store.setup(&["all", "--undo"], &codex_home, &claude_dir, None);
    assert_eq!(
        std::fs::read_to_string(codex_home.join("config.toml")).unwrap(),
        config
    );
    assert_eq!(
        std::fs::read_to_string(claude_dir.join("settings.json")).unwrap(),
        settings
    );
    assert!(
        !codex_home.join("hooks.json").exists(),
        "setup created it; undo removes it"
    );
}
