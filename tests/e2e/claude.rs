//! The real Claude Code CLI (npm `@anthropic-ai/claude-code`, installed by tests/peers.sh), driven
//! offline with `claude -p` against the scripted mock Anthropic Messages API in tests/agents, and
//! exporting its OTLP logs, metrics and (beta) traces to agentcol. One turn: the model asks for
//! Bash `echo hi`, Claude runs it, and the model answers. Everything Claude emits arrives and is
//! acknowledged, and the ids the mock and the transcript know reach agentcol.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

pub fn claude_bin(test: &str) -> Option<PathBuf> {
    let p = peers_dir().join("npm-claude/node_modules/.bin/claude");
    if p.exists() {
        Some(p)
    } else {
        eprintln!("SKIP: {test}: claude not installed (run tests/peers.sh)");
        None
    }
}

/// The text of a `tool_result` block (a string, or a list of text blocks).
fn result_text(block: &Value) -> String {
    match &block["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// Claude's log records in the debug exporter's detailed output: event name (`claude_code.<name>`
/// without the prefix) to the `event.sequence` numbers seen. The name is the record's body, or
/// `agent.native.body` when the receiver normalised the record into canonical agent events (one
/// native record can then yield several, which share the sequence number).
fn claude_records(out: &str) -> BTreeMap<String, BTreeSet<i64>> {
    let mut found: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    let (mut name, mut seq, mut native) = (None, None, None);
    for line in out.lines() {
        let line = line.trim();
        if line.starts_with("LogRecord #") {
            (name, seq, native) = (None, None, None);
        } else if let Some(v) = line.strip_prefix("Body: Str(claude_code.") {
            name = v.strip_suffix(')').map(str::to_string);
        } else if let Some(v) = line.strip_prefix("-> agent.native.body: Str(claude_code.") {
            native = v.strip_suffix(')').map(str::to_string);
        } else if let Some(v) = line.strip_prefix("-> event.sequence: Int(") {
            seq = v.strip_suffix(')').and_then(|n| n.parse::<i64>().ok());
        } else if line.starts_with("Flags: ") {
            if let (Some(n), Some(s)) = (native.take().or(name.take()), seq.take()) {
                found.entry(n).or_default().insert(s);
            }
        }
    }
    found
}

/// A finished scripted `claude -p` turn and what the test learned about it from sources
/// independent of agentcol (the mock's log, the transcript).
pub struct ClaudeRun {
    /// Holds HOME, CLAUDE_CONFIG_DIR (with the transcript) and the workspace; removed on drop.
    #[allow(dead_code)] // held for its Drop
    pub dir: tempfile::TempDir,
    pub script: Value,
    #[allow(dead_code)] // for tests that look at Claude's own answer
    pub stdout: String,
    pub session: String,
    pub prompt_id: String,
    pub tool_use_id: String,
    /// Every answered /v1/messages request, and those of the main conversation.
    pub messages: Vec<Value>,
    pub main: Vec<Value>,
}

/// Runs the real `claude -p "Run echo hi" --allowedTools Bash` offline against the scripted
/// mock Anthropic API, exporting OTLP logs, metrics and traces to `http`.
pub fn run_claude_bash(claude: &Path, http: u16, test: &str) -> ClaudeRun {
    run_claude_bash_with(claude, Some(http), &|_| {}, test)
}

/// [`run_claude_bash`] with a hook for the caller: `otel` puts the OTLP exporter settings in
/// the environment (`None`: leave them to `prepare`, e.g. `agentcol setup` writing them into
/// settings.json); `prepare` gets CLAUDE_CONFIG_DIR before Claude starts.
pub fn run_claude_bash_with(
    claude: &Path,
    otel: Option<u16>,
    prepare: &dyn Fn(&Path),
    test: &str,
) -> ClaudeRun {
    // Claude's sockets (CLAUDE_CODE_TMPDIR/cc-socks/<pid>.sock) must stay under ~103 bytes, so
    // the directory names are short.
    let dir = tempfile::Builder::new()
        .prefix("claude-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tempdir");
    let d = dir.path();
    let (home, config, tmp, ws) = (d.join("home"), d.join("cfg"), d.join("tmp"), d.join("ws"));
    for p in [&home, &config, &tmp, &ws] {
        std::fs::create_dir_all(p).unwrap();
    }

    let agents = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/agents");
    let script: Value =
        serde_json::from_str(&std::fs::read_to_string(agents.join("claude_bash.json")).unwrap())
            .unwrap();
    let (port_file, mock_log) = (d.join("mock.port"), d.join("mock_requests.jsonl"));
    let mut mock_cmd = Command::new("python3");
    mock_cmd
        .arg(agents.join("mock_anthropic.py"))
        .arg(agents.join("claude_bash.json"))
        .arg(&port_file)
        .arg(&mock_log);
    let _mock = Running::spawn("mock", mock_cmd);
    assert!(
        eventually(Duration::from_secs(10), || port_file.exists()),
        "mock did not start"
    );
    let mock_port = std::fs::read_to_string(&port_file).unwrap();

    // A clean environment: nothing of the caller's (an outer Claude session, API keys, proxies)
    // leaks in. NONESSENTIAL_TRAFFIC keeps every connection on 127.0.0.1; traces need the beta
    // switch as well as the exporter; short intervals make the exports prompt.
    let endpoint = otel.map(|http| format!("http://127.0.0.1:{http}"));
    prepare(&config);
    let exporters: Vec<(&str, &str)> = match &endpoint {
        Some(endpoint) => vec![
            ("CLAUDE_CODE_ENABLE_TELEMETRY", "1"),
            ("CLAUDE_CODE_ENHANCED_TELEMETRY_BETA", "1"),
            ("OTEL_LOGS_EXPORTER", "otlp"),
            ("OTEL_METRICS_EXPORTER", "otlp"),
            ("OTEL_TRACES_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ],
        None => Vec::new(),
    };
    let base_url = format!("http://127.0.0.1:{mock_port}");
    let (stdout_path, stderr_path) = (d.join("stdout.txt"), d.join("stderr.txt"));
    let started = Instant::now();
    let mut child = Command::new(claude)
        .args(["-p", "Run echo hi", "--allowedTools", "Bash"])
        .current_dir(&ws)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("CLAUDE_CONFIG_DIR", &config)
        .env("TMPDIR", &tmp)
        .env("CLAUDE_CODE_TMPDIR", &tmp)
        .envs([
            ("SHELL", "/bin/bash"),
            ("LANG", "C.UTF-8"),
            ("TERM", "dumb"),
            ("ANTHROPIC_BASE_URL", base_url.as_str()),
            ("ANTHROPIC_API_KEY", "sk-ant-mock-not-a-real-key"),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
            ("DISABLE_AUTOUPDATER", "1"),
            ("DISABLE_ERROR_REPORTING", "1"),
            ("OTEL_LOGS_EXPORT_INTERVAL", "500"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1000"),
            ("OTEL_TRACES_EXPORT_INTERVAL", "500"),
            ("OTEL_LOG_USER_PROMPTS", "1"),
            ("OTEL_LOG_TOOL_DETAILS", "1"),
            ("OTEL_LOG_TOOL_CONTENT", "1"),
        ])
        .envs(exporters)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).unwrap())
        .stderr(File::create(&stderr_path).unwrap())
        .spawn()
        .expect("run claude");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("claude did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("{test}: claude -p took {:?}", started.elapsed());
    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(
        status.success(),
        "claude failed ({status}): {stderr}\n{stdout}"
    );
    let answer = script["steps"][1]["text"].as_str().unwrap();
    assert!(stdout.contains(answer), "final answer missing: {stdout}");

    // What the mock saw: the scripted steps in order, then the tool result of `echo hi`.
    let requests: Vec<Value> = std::fs::read_to_string(&mock_log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let messages: Vec<Value> = requests
        .iter()
        .filter(|r| r["answer"]["request_id"].is_string())
        .cloned()
        .collect();
    let main: Vec<Value> = messages
        .iter()
        .filter(|r| r["answer"]["kind"] == "main")
        .cloned()
        .collect();
    let steps: Vec<i64> = main
        .iter()
        .filter_map(|r| r["answer"]["step"].as_i64())
        .collect();
    assert_eq!(steps, [0, 1], "main conversation requests: {requests:?}");
    let session = main[0]["headers"]["x-claude-code-session-id"]
        .as_str()
        .expect("a session id header")
        .to_string();
    let tool_use_id = main[0]["answer"]["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .and_then(|b| b["id"].as_str())
        .expect("the scripted tool_use")
        .to_string();
    let tool_results: Vec<&Value> = main[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .filter(|b| b["type"] == "tool_result")
        .collect();
    assert_eq!(tool_results.len(), 1, "{:?}", main[1]["messages"]);
    assert_eq!(tool_results[0]["tool_use_id"], tool_use_id.as_str());
    assert_eq!(result_text(tool_results[0]).trim(), "hi");
    assert_ne!(tool_results[0]["is_error"], true);

    // The prompt id, from the session transcript under CLAUDE_CONFIG_DIR/projects/<slug>/.
    let transcript = std::fs::read_dir(config.join("projects"))
        .expect("projects dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(format!("{session}.jsonl")))
        .find(|p| p.exists())
        .expect("the session transcript");
    let prompt_id = std::fs::read_to_string(&transcript)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v["promptId"].as_str().map(str::to_string))
        .expect("a promptId in the transcript");
    ClaudeRun {
        dir,
        script,
        stdout,
        session,
        prompt_id,
        tool_use_id,
        messages,
        main,
    }
}

#[test]
fn real_claude_print_turn_with_bash_reaches_agentcol_over_otlp() {
    let test = "real_claude_print_turn_with_bash_reaches_agentcol_over_otlp";
    let Some(claude) = claude_bin(test) else {
        return;
    };
    let w = Workdir::new();
    let (grpc, http, metrics) = (free_port(), free_port(), free_port());
    let cfg = w.write(
        "agentcol.yaml",
        &crate::otlp::sink_config(grpc, http, metrics, "  debug:\n    verbosity: detailed"),
    );
    let a = Running::agentcol("agentcol", &w, &cfg);
    let run = run_claude_bash(&claude, http, test);
    let ClaudeRun {
        script,
        session,
        prompt_id,
        tool_use_id,
        messages,
        main,
        ..
    } = &run;

    // Claude flushes its exporters before it exits; all of it reached agentcol's debug exporter.
    let span = |name: &str| format!("    Name           : claude_code.{name}");
    let done = a.wait_until(Duration::from_secs(15), |out| {
        let records = claude_records(out);
        records.get("api_request").map_or(0, BTreeSet::len) >= main.len()
            && records.contains_key("tool_result")
            && out.lines().any(|l| l == span("interaction"))
            && out.contains("claude_code.session.count ")
    });
    let out = a.output();
    assert!(done, "not everything arrived:\n{out}");
    let records = claude_records(&out);
    let count = |name: &str| records.get(name).map_or(0, BTreeSet::len);
    let lines = |line: &str| out.lines().filter(|l| *l == line).count();
    assert_eq!(count("user_prompt"), 1, "{records:?}");
    assert_eq!(count("tool_decision"), 1, "{records:?}");
    assert_eq!(count("tool_result"), 1, "{records:?}");
    assert_eq!(
        count("api_request"),
        messages.len(),
        "one api_request per answered /v1/messages call"
    );
    assert_eq!(count("assistant_response"), main.len());
    assert!(out.contains(&format!("session.id: Str({session})")));
    assert!(
        out.contains(&format!("prompt.id: Str({prompt_id})")),
        "the transcript's prompt id reaches the logs"
    );
    assert!(
        out.contains(&format!("tool_use_id: Str({tool_use_id})")),
        "the tool_use id from the model reaches the logs and spans"
    );
    for r in main {
        let request_id = r["answer"]["request_id"].as_str().unwrap();
        assert!(out.contains(&format!("request_id: Str({request_id})")));
    }
    let usage = &script["steps"][0]["usage"];
    for (attr, key) in [
        ("input_tokens", "input_tokens"),
        ("output_tokens", "output_tokens"),
        ("cache_read_tokens", "cache_read_input_tokens"),
        ("cache_creation_tokens", "cache_creation_input_tokens"),
    ] {
        let want = format!("-> {attr}: Int({})", usage[key]);
        assert!(out.contains(&want), "{want} missing: the mock's usage");
    }
    assert!(out.contains("-> cost_usd: Double("));
    assert_eq!(lines(&span("interaction")), 1);
    assert_eq!(lines(&span("llm_request")), main.len());
    assert_eq!(lines(&span("tool")), 1);
    assert!(out.contains(&format!("gen_ai.tool.call.id: Str({tool_use_id})")));
    assert!(
        out.lines()
            .any(|l| l.starts_with("claude_code.session.count ")
                && l.contains(&format!("session.id=Str({session})"))),
        "the session counter carries the session id"
    );

    for series in ["log_records", "spans", "metric_points"] {
        let labels = r#"{receiver="otlp",transport="http"}"#;
        assert!(
            metric(
                metrics,
                &format!("agentcol_receiver_accepted_{series}_total{labels}")
            ) > 0.0
        );
        assert_eq!(
            metric(
                metrics,
                &format!("agentcol_receiver_refused_{series}_total{labels}")
            ),
            0.0,
            "{series} refused"
        );
    }
}

/// The acceptance path for Claude Code: the real `-p` turn, over OTLP only, becomes one stored
/// session with its turn, the prompt, the Bash call with its output, the answers and the token
/// usage (Anthropic rule); `replay` prints it in order from the store alone, also after Claude's
/// own files (the transcript) are gone.
#[test]
fn real_claude_session_is_stored_and_replayed_from_the_store_alone() {
    let test = "real_claude_session_is_stored_and_replayed_from_the_store_alone";
    let Some(claude) = claude_bin(test) else {
        return;
    };
    let store = crate::store::Store::new();
    let mut running = store.start();
    let run = run_claude_bash(&claude, store.http, test);
    let db = store.db();
    let q = |sql: &str| -> i64 {
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row(sql, [], |r| r.get(0)))
            .unwrap_or(-1)
    };
    // Claude's exporters flush on their own interval and at exit; wait for the last pieces.
    let complete = eventually(Duration::from_secs(20), || {
        q("SELECT COUNT(*) FROM tool_calls WHERE output LIKE '%hi%'") == 1
            && q("SELECT COUNT(*) FROM usage") >= run.main.len() as i64
            && q("SELECT COUNT(*) FROM events WHERE turn_id LIKE '~%'") == 0
    });
    assert_eq!(running.terminate(Duration::from_secs(20)), Some(0));
    assert!(
        complete,
        "the store never got the whole turn:\n{}",
        crate::store::dump(&db)
    );

    assert_eq!(q("SELECT COUNT(*) FROM sessions"), 1);
    assert_eq!(
        q(&format!(
            "SELECT COUNT(*) FROM sessions WHERE session_id = '{}'",
            run.session
        )),
        1
    );
    assert_eq!(
        q(&format!(
            "SELECT COUNT(*) FROM turns WHERE turn_id = '{}' AND prompt = 'Run echo hi'",
            run.prompt_id
        )),
        1
    );
    assert_eq!(q("SELECT COUNT(*) FROM turns"), 1);
    assert_eq!(
        q(&format!(
            "SELECT COUNT(*) FROM tool_calls WHERE call_id = '{}' AND tool_name = 'Bash' AND output LIKE '%hi%' AND success = 1",
            run.tool_use_id
        )),
        1
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM events WHERE kind = 'message'"),
        run.main.len() as i64
    );
    // Anthropic rule: input = input + cache read + cache creation, from the mock's usage.
    let u = &run.script["steps"][0]["usage"];
    let want = u["input_tokens"].as_i64().unwrap()
        + u["cache_read_input_tokens"].as_i64().unwrap_or(0)
        + u["cache_creation_input_tokens"].as_i64().unwrap_or(0);
    assert!(
        q(&format!(
            "SELECT COUNT(*) FROM usage WHERE input_tokens = {want}"
        )) >= 1,
        "no usage row with input {want}"
    );

    let replay = store.cli(&["sessions", "replay", &run.session]);
    assert_eq!(replay.code, Some(0), "{}", replay.stderr);
    let t = replay.stdout.clone();
    let at = |needle: &str| {
        t.find(needle)
            .unwrap_or_else(|| panic!("replay lacks {needle:?}:\n{t}"))
    };
    let answer = run.script["steps"][1]["text"].as_str().unwrap().to_string();
    assert!(at("Run echo hi") < at(&run.tool_use_id));
    assert!(at(&run.tool_use_id) < at(&answer));

    let session = run.session.clone();
    drop(run); // the transcript and Claude's config dir are gone
    let again = store.cli(&["sessions", "replay", &session]);
    assert_eq!(again.stdout, t);
}
