//! The session store end to end: agent OTLP → `otlp` receiver (normalised) → `dedupe` →
//! `sqlite`, through the real binary. The captured requests of the real agents
//! (tests/fixtures, made by tests/agents/capture_fixtures.sh) are replayed over HTTP in several
//! ways — once in order, twice, in reverse, with the collector restarted in between — and every
//! table of the store must end up with the same content.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;

/// A collector that stores agent sessions: the default pipeline shape on test ports.
pub fn store_config(grpc: u16, http: u16, metrics: u16) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc}
      http:
        endpoint: 127.0.0.1:{http}
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: 512
  dedupe/store:
    settle_window: 0s
    storage: sqlite
exporters:
  sqlite: {{}}
  nop: {{}}
service:
  pipelines:
    logs:
      receivers: [otlp]
      processors: [memory_limiter, dedupe/store]
      exporters: [sqlite]
    traces:
      receivers: [otlp]
      exporters: [nop]
    metrics:
      receivers: [otlp]
      exporters: [nop]
  telemetry:
    metrics:
      address: 127.0.0.1:{metrics}
"#
    )
}

/// A store collector with its ports.
pub struct Store {
    pub work: Workdir,
    pub config: PathBuf,
    pub http: u16,
    pub metrics: u16,
}

impl Store {
    pub fn new() -> Store {
        let work = Workdir::new();
        let (grpc, http, metrics) = (free_port(), free_port(), free_port());
        let config = work.write("store.yaml", &store_config(grpc, http, metrics));
        Store {
            work,
            config,
            http,
            metrics,
        }
    }

    pub fn start(&self) -> Running {
        Running::agentcol("agentcol", &self.work, &self.config)
    }

    pub fn db(&self) -> PathBuf {
        self.work.root().join("agentcol.db")
    }

    /// `agentcol ARGS` against this store's root.
    pub fn cli(&self, args: &[&str]) -> Output {
        agentcol(&self.work.root(), args)
    }
}

/// The captured requests of an agent, in arrival order: (URL path, JSON body).
pub fn captured(agent: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(agent)
        .join("otlp");
    let index = std::fs::read_to_string(dir.join("index.jsonl")).expect("fixture index");
    index
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let e: serde_json::Value = serde_json::from_str(l).expect("index line");
            let file = e["file"].as_str().expect("file");
            let signal = e["signal"].as_str().expect("signal");
            let body = std::fs::read(dir.join(file)).expect("fixture");
            (format!("/v1/{signal}"), body)
        })
        .collect()
}

pub fn post(port: u16, requests: &[(String, Vec<u8>)]) {
    for (path, body) in requests {
        let r = http(
            port,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body,
        );
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
}

/// Every table's content as text, each table's rows sorted.
pub fn dump(db: &Path) -> String {
    agentcol_exporter_sqlite::query::Reader::open(db)
        .and_then(|r| r.dump_tables())
        .unwrap_or_else(|e| panic!("{}: {e}", db.display()))
}

pub fn count(db: &Path, sql: &str) -> i64 {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open store");
    conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

/// Delivers `requests` to a fresh store (restarting the collector at each `None`), stops it
/// cleanly and returns the dump of the store.
/// Captured requests: (URL path, body).
pub type Requests = [(String, Vec<u8>)];

fn deliver(plan: &[Option<&Requests>]) -> String {
    let store = Store::new();
    let mut running = store.start();
    for step in plan {
        match step {
            Some(reqs) => post(store.http, reqs),
            None => {
                assert_eq!(running.terminate(Duration::from_secs(20)), Some(0));
                running = store.start();
            }
        }
    }
    assert_eq!(running.terminate(Duration::from_secs(20)), Some(0));
    dump(&store.db())
}

fn same_store_whatever_the_delivery(agent: &str) {
    let reqs = captured(agent);
    let reversed: Vec<_> = reqs.iter().rev().cloned().collect();
    let half = reqs.len() / 2;
    let once = deliver(&[Some(&reqs)]);
    assert!(once.contains("user_prompt"), "{once}");
    for (name, got) in [
        ("twice", deliver(&[Some(&reqs), Some(&reqs)])),
        ("reversed", deliver(&[Some(&reversed)])),
        (
            "restarted in between",
            deliver(&[Some(&reqs[..half]), None, Some(&reqs[half..]), Some(&reqs)]),
        ),
    ] {
        if got != once {
            let diff: Vec<String> = once
                .lines()
                .zip(got.lines())
                .filter(|(a, b)| a != b)
                .take(6)
                .map(|(a, b)| format!("- {a}\n+ {b}"))
                .collect();
            panic!(
                "{agent}: delivered {name}, the store differs:\n{}",
                diff.join("\n")
            );
        }
    }
}

#[test]
fn codex_capture_stores_identically_delivered_twice_reversed_or_across_a_restart() {
    same_store_whatever_the_delivery("codex");
}

#[test]
fn claude_capture_stores_identically_delivered_twice_reversed_or_across_a_restart() {
    same_store_whatever_the_delivery("claude");
}

#[test]
fn captured_codex_session_replays_from_the_store_alone() {
    let store = Store::new();
    let mut running = store.start();
    post(store.http, &captured("codex"));
    assert_eq!(running.terminate(Duration::from_secs(20)), Some(0));
    let db = store.db();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM sessions"), 1);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM turns"), 2);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM tool_calls WHERE exit_code = 0"),
        1
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM events WHERE turn_id LIKE '~%'"),
        0,
        "every provisional turn was resolved"
    );
    let list = store.cli(&["sessions", "list"]);
    assert_eq!(list.code, Some(0), "{}", list.stderr);
    let thread = list
        .stdout
        .split_whitespace()
        .find(|w| w.len() == 36 && w.matches('-').count() == 4)
        .unwrap_or_else(|| panic!("no session id in: {}", list.stdout))
        .to_string();
    let replay = store.cli(&["sessions", "replay", &thread]);
    assert_eq!(replay.code, Some(0), "{}", replay.stderr);
    let t = &replay.stdout;
    let at = |needle: &str| {
        t.find(needle)
            .unwrap_or_else(|| panic!("replay lacks {needle:?}:\n{t}"))
    };
    assert!(at("Say hello") < at("Hello from the mock model"));
    assert!(at("Hello from the mock model") < at("Run echo hi"));
    assert!(at("Run echo hi") < at("echo hi\""));
    assert!(at("exit 0") < at("Turn two is done"));
}

/// The sum of every series of the metric family `name` on the collector's `/metrics`.
fn family_total(port: u16, name: &str) -> f64 {
    let r = http(port, "GET", "/metrics", &[], b"");
    String::from_utf8_lossy(&r.body)
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn bad_agent_records_are_kept_flagged_or_raw_and_counted_never_dropped() {
    let store = Store::new();
    let mut running = store.start();
    let kv = |k: &str, v: &str| serde_json::json!({"key": k, "value": {"stringValue": v}});
    let body = serde_json::json!({"resourceLogs": [{
        "resource": {"attributes": [kv("service.name", "codex_exec")]},
        "scopeLogs": [{"scope": {"name": "codex_otel.log_only"}, "logRecords": [
            // A tool result without its call_id.
            {"traceId": "0af7651916cd43dd8448eb211c80319c", "attributes": [
                kv("event.name", "codex.tool_result"), kv("conversation.id", "thread-bad-1"),
                kv("output", "Process exited with code 3\n")]},
            // An event name no version of the normaliser knows.
            {"attributes": [kv("event.name", "codex.from_the_future"),
                kv("conversation.id", "thread-bad-1"), kv("novel", "x")]},
            // A prompt that does not say its session.
            {"attributes": [kv("event.name", "codex.user_prompt"), kv("prompt", "orphan")]},
            // A record claiming to be canonical with a key nobody can read.
            {"attributes": [kv("agent.event.key", "v1|nonsense"), kv("event.name", "agent.message")]},
        ]}]
    }, {
        "resource": {"attributes": [kv("service.name", "my-app")]},
        "scopeLogs": [{"scope": {"name": "my.app"}, "logRecords": [
            // Plain OTLP, not an agent's.
            {"attributes": [kv("event.name", "app.login")]}
        ]}]
    }]});
    let r = http(
        store.http,
        "POST",
        "/v1/logs",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // The next good request is fine.
    post(store.http, &captured("codex")[..1]);
    let fallback = family_total(store.metrics, "agentcol_receiver_agent_fallback_keys_total");
    let native = family_total(
        store.metrics,
        "agentcol_receiver_agent_native_records_total",
    );
    let unreadable = family_total(store.metrics, "agentcol_sqlite_records_unreadable_total");
    let skipped = family_total(store.metrics, "agentcol_sqlite_records_skipped_total");
    assert_eq!(running.terminate(Duration::from_secs(20)), Some(0));

    let db = store.db();
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM events WHERE session_id = 'thread-bad-1' AND kind IN ('tool.result', 'tool.call') AND key_fallback = 1"),
        2,
        "the result and its call, under flagged fallback keys"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM events WHERE kind = 'native' AND name = 'codex.from_the_future'"
        ),
        1,
        "an unknown event name is stored as it came"
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM events WHERE session_id = '#unknown' AND name = 'codex.user_prompt'"),
        1
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM raw_records"),
        1,
        "the unreadable record, archived raw"
    );
    assert!(fallback >= 2.0, "fallback keys counted: {fallback}");
    assert!(native >= 2.0, "native records counted: {native}");
    assert_eq!(unreadable, 1.0);
    assert!(
        skipped >= 1.0,
        "the plain record is counted as not kept: {skipped}"
    );
    assert!(count(&db, "SELECT COUNT(*) FROM events WHERE session_id <> 'thread-bad-1' AND session_id <> '#unknown'") > 0);
}
