//! The real Codex CLI (npm `@openai/codex`, installed by tests/peers.sh), driven offline against
//! the scripted mock Responses API in tests/agents, exporting its OTLP logs, traces and metrics to
//! agentcol. This is the first step of agent capture: everything Codex emits arrives and is
//! acknowledged; normalisation into canonical events builds on it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

fn codex_bin(test: &str) -> Option<std::path::PathBuf> {
    let p = peers_dir().join("npm-codex/node_modules/.bin/codex");
    if p.exists() {
        Some(p)
    } else {
        eprintln!("SKIP: {test}: codex not installed (run tests/peers.sh)");
        None
    }
}

#[test]
fn real_codex_two_turn_session_reaches_agentcol_over_otlp() {
    let test = "real_codex_two_turn_session_reaches_agentcol_over_otlp";
    let Some(codex) = codex_bin(test) else { return };
    // Codex refuses some set-up under /tmp, so this test works under the target directory.
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

    let w = Workdir::new();
    let (grpc, http, metrics) = (free_port(), free_port(), free_port());
    let cfg = w.write(
        "agentcol.yaml",
        &crate::otlp::sink_config(grpc, http, metrics, "  debug:\n    verbosity: detailed"),
    );
    let a = Running::agentcol("agentcol", &w, &cfg);

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
exporter = {{ otlp-http = {{ endpoint = "http://127.0.0.1:{http}/v1/logs", protocol = "binary" }} }}
trace_exporter = {{ otlp-http = {{ endpoint = "http://127.0.0.1:{http}/v1/traces", protocol = "binary" }} }}
metrics_exporter = {{ otlp-http = {{ endpoint = "http://127.0.0.1:{http}/v1/metrics", protocol = "binary" }} }}
"#,
            ws = ws.display()
        ),
    )
    .unwrap();

    let run = |args: &[&str]| {
        let out = Command::new(&codex)
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

    // Codex flushes its exporters on exit; everything it sent was acknowledged by agentcol.
    let logs = r#"agentcol_receiver_accepted_log_records_total{receiver="otlp",transport="http"}"#;
    let spans = r#"agentcol_receiver_accepted_spans_total{receiver="otlp",transport="http"}"#;
    assert!(eventually(Duration::from_secs(10), || metric(
        metrics, logs
    ) > 0.0
        && metric(metrics, spans) > 0.0));
    let out = a.output();
    let count = |name: &str| out.matches(&format!("event.name: Str({name})")).count();
    assert_eq!(
        count("codex.conversation_starts"),
        2,
        "one per codex process"
    );
    assert_eq!(count("codex.user_prompt"), 2);
    assert_eq!(count("codex.tool_decision"), 1);
    assert_eq!(count("codex.tool_result"), 1);
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
