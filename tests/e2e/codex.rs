//! The real Codex CLI (npm `@openai/codex`, installed by tests/peers.sh), driven offline against
//! the scripted mock Responses API in tests/agents, exporting its OTLP logs, traces and metrics to
//! agentcol. This is the first step of agent capture: everything Codex emits arrives and is
//! acknowledged; normalisation into canonical events builds on it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

pub fn codex_bin(test: &str) -> Option<std::path::PathBuf> {
    let p = peers_dir().join("npm-codex/node_modules/.bin/codex");
    if p.exists() {
        Some(p)
    } else {
        eprintln!("SKIP: {test}: codex not installed (run tests/peers.sh)");
        None
    }
}

/// A finished scripted Codex session: its thread id and the files Codex left.
pub struct CodexRun {
    pub thread: String,
    /// Holds CODEX_HOME (rollouts, config) and the workspace; removed on drop.
    #[allow(dead_code)] // held for its Drop
    pub dir: tempfile::TempDir,
}

/// Runs the real Codex offline for two turns ("Say hello", then a resumed "Run echo hi" that
/// makes one `echo hi` shell call), exporting OTLP logs, traces and metrics over HTTP to
/// `http` (full per-signal URLs; Codex uses them verbatim).
pub fn run_codex_two_turns(codex: &Path, http: u16) -> CodexRun {
    run_codex_two_turns_with(codex, Some(http), &|_| {}, &|| {})
}

/// [`run_codex_two_turns`] with hooks for the caller: `otel` writes the `[otel]` exporters to
/// that port (`None`: leave them to `prepare`, e.g. `agentcol setup`); `prepare` gets
/// CODEX_HOME once the base config is written; `between` runs between the two turns.
pub fn run_codex_two_turns_with(
    codex: &Path,
    otel: Option<u16>,
    prepare: &dyn Fn(&Path),
    between: &dyn Fn(),
) -> CodexRun {
    // Codex refuses some set-up under /tmp, so this works under the target directory.
    let dir = tempfile::Builder::new()
        .prefix("codex-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tempdir");
    let d = dir.path();
    let (home, ws) = (d.join("codex_home"), d.join("workspace"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&ws).unwrap();

    let agents = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/agents");
    let port_file = d.join("mock.port");
    let mut mock_cmd = Command::new("python3");
    mock_cmd
        .arg(agents.join("mock_responses.py"))
        .arg(agents.join("codex_exec_2turn.json"))
        .arg(&port_file)
        .arg(d.join("mock_requests.jsonl"));
    let _mock = Running::spawn("mock", mock_cmd);
    assert!(
        eventually(Duration::from_secs(10), || port_file.exists()),
        "mock did not start"
    );
    let mock_port = std::fs::read_to_string(&port_file).unwrap();
    std::fs::write(
        home.join("config.toml"),
        format!(
            r#"model = "gpt-5.5"
model_provider = "mock"
approval_policy = "never"
sandbox_mode = "workspace-write"
check_for_update_on_startup = false

[analytics]
enabled = false

[features]
enable_request_compression = false
plugins = false
apps = false

[model_providers.mock]
name = "Mock Responses"
base_url = "http://127.0.0.1:{mock_port}/v1"
wire_api = "responses"
env_key = "MOCK_OPENAI_API_KEY"
request_max_retries = 0
stream_max_retries = 0

[projects."{ws}"]
trust_level = "trusted"

[otel]
environment = "test"
log_user_prompt = true
log_agent_responses = true
{exporters}"#,
            ws = ws.display(),
            exporters = otel.map(|http| format!(
                r#"exporter = {{ otlp-http = {{ endpoint = "http://127.0.0.1:{http}/v1/logs", protocol = "binary" }} }}
trace_exporter = {{ otlp-http = {{ endpoint = "http://127.0.0.1:{http}/v1/traces", protocol = "binary" }} }}
metrics_exporter = {{ otlp-http = {{ endpoint = "http://127.0.0.1:{http}/v1/metrics", protocol = "binary" }} }}
"#
            )).unwrap_or_default()
        ),
    )
    .unwrap();
    prepare(&home);

    let run = |args: &[&str]| {
        let out = Command::new(codex)
            .args(args)
            .current_dir(&ws)
            .env("CODEX_HOME", &home)
            .env("MOCK_OPENAI_API_KEY", "dummy-key-for-mock")
            .env_remove("OPENAI_API_KEY")
            .env_remove("CODEX_API_KEY")
            .env("NO_COLOR", "1")
            .output()
            .expect("run codex");
        assert!(
            out.status.success(),
            "codex {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let turn1 = run(&["exec", "--json", "--skip-git-repo-check", "Say hello"]);
    let first: serde_json::Value =
        serde_json::from_str(turn1.lines().next().unwrap_or("{}")).unwrap();
    let thread = first["thread_id"]
        .as_str()
        .expect("thread.started with a thread_id")
        .to_string();
    assert!(
        turn1.contains("Hello from the mock model. This is turn one."),
        "{turn1}"
    );
    between();
    let turn2 = run(&[
        "exec",
        "resume",
        "--json",
        "--skip-git-repo-check",
        &thread,
        "Run echo hi",
    ]);
    assert!(turn2.contains("\"exit_code\":0"), "{turn2}");
    assert!(turn2.contains("Turn two is done."), "{turn2}");

    CodexRun { thread, dir }
}

#[test]
fn real_codex_two_turn_session_reaches_agentcol_over_otlp() {
    let test = "real_codex_two_turn_session_reaches_agentcol_over_otlp";
    let Some(codex) = codex_bin(test) else { return };
    let w = Workdir::new();
    let (grpc, http, metrics) = (free_port(), free_port(), free_port());
    let cfg = w.write(
        "agentcol.yaml",
        &crate::otlp::sink_config(grpc, http, metrics, "  debug:\n    verbosity: detailed"),
    );
    let a = Running::agentcol("agentcol", &w, &cfg);
    let CodexRun { thread, .. } = run_codex_two_turns(&codex, http);

    // Codex flushes its exporters on exit; everything it sent was acknowledged by agentcol.
    let logs = r#"agentcol_receiver_accepted_log_records_total{receiver="otlp",transport="http"}"#;
    let spans = r#"agentcol_receiver_accepted_spans_total{receiver="otlp",transport="http"}"#;
    assert!(eventually(Duration::from_secs(10), || metric(
        metrics, logs
    ) > 0.0
        && metric(metrics, spans) > 0.0));
    let out = a.output();
    // The receiver normalises agent records; their native name is kept.
    let count = |name: &str| {
        out.matches(&format!("agent.native.name: Str({name})"))
            .count()
    };
    assert_eq!(
        count("codex.conversation_starts"),
        2,
        "one per codex process"
    );
    assert_eq!(count("codex.user_prompt"), 2);
    assert_eq!(count("codex.tool_decision"), 1);
    assert_eq!(
        count("codex.tool_result"),
        2,
        "the result and the call it implies"
    );
    assert!(
        out.contains(&format!("conversation.id: Str({thread})")),
        "thread id not carried"
    );
    assert!(
        out.contains("call_id: Str(call_mock"),
        "the tool call id from the model reaches the logs"
    );
    assert_eq!(
        metric(
            metrics,
            r#"agentcol_receiver_refused_log_records_total{receiver="otlp",transport="http"}"#
        ),
        0.0
    );
}

/// The acceptance path: the real two-turn session, over OTLP only, becomes one stored session
/// with two turns, both prompts, the shell call with output and exit code, the answers and
/// token usage; `replay` prints it in order from the store alone, also after Codex's own files
/// are gone.
#[test]
fn real_codex_session_is_stored_and_replayed_from_the_store_alone() {
    let test = "real_codex_session_is_stored_and_replayed_from_the_store_alone";
    let Some(codex) = codex_bin(test) else { return };
    let store = crate::store::Store::new();
    let mut running = store.start();
    let run = run_codex_two_turns(&codex, store.http);
    // Codex flushed on exit and was answered only after the store committed.
    assert_eq!(running.terminate(Duration::from_secs(20)), Some(0));

    let db = store.db();
    let q = |sql: &str| -> i64 {
        let c =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        c.query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    assert_eq!(q("SELECT COUNT(*) FROM sessions"), 1);
    assert_eq!(
        q(&format!(
            "SELECT COUNT(*) FROM sessions WHERE session_id = '{}'",
            run.thread
        )),
        1
    );
    assert_eq!(q("SELECT COUNT(*) FROM turns"), 2);
    assert_eq!(
        q("SELECT COUNT(*) FROM turns WHERE prompt IN ('Say hello', 'Run echo hi')"),
        2
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM tool_calls WHERE exit_code = 0 AND output LIKE '%hi%' AND input LIKE '%echo hi%'"),
        1
    );
    assert_eq!(q("SELECT COUNT(*) FROM events WHERE kind = 'message'"), 2);
    assert!(q("SELECT COALESCE(SUM(total_tokens), 0) FROM usage") > 0);
    assert_eq!(q("SELECT COUNT(*) FROM events WHERE turn_id LIKE '~%'"), 0);

    let replay = store.cli(&["sessions", "replay", &run.thread]);
    assert_eq!(replay.code, Some(0), "{}", replay.stderr);
    let t = replay.stdout.clone();
    let at = |needle: &str| {
        t.find(needle)
            .unwrap_or_else(|| panic!("replay lacks {needle:?}:\n{t}"))
    };
    assert!(at("Say hello") < at("Hello from the mock model. This is turn one."));
    assert!(at("This is turn one.") < at("Run echo hi"));
    assert!(at("Run echo hi") < at("exit 0"));
    assert!(at("exit 0") < at("Turn two is done."));

    // The agent's own files (rollouts, config) are not needed to replay.
    drop(run);
    let again = store.cli(&["sessions", "replay", &replay_id(&t)]);
    assert_eq!(again.stdout, t);
    let export = store.cli(&["sessions", "export", &replay_id(&t)]);
    assert_eq!(export.code, Some(0), "{}", export.stderr);
    for line in export.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSONL");
        assert!(v["key"]
            .as_str()
            .is_some_and(|k| k.starts_with("v1|codex|")));
    }
}

/// The session id a replay names in its header.
fn replay_id(replay: &str) -> String {
    replay
        .split_whitespace()
        .find(|w| w.len() == 36 && w.matches('-').count() == 4)
        .expect("session id in the replay header")
        .to_string()
}
