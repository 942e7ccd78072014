//! Fixtures shared by the store's tests: a realistic Codex session as raw observations and as
//! the merged records `dedupe` would emit for them, and a deterministic dump of every table.
#![allow(dead_code)]

use std::path::Path;

use agentcol_component::agent::{
    attr, trace_alias, Agent, AgentRecord, EventKey, Kind, Merged, Precedence, Source,
};
use agentcol_component::opentelemetry_proto::tonic::logs::v1::LogRecord;
use agentcol_component::Logs;
use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value as Json};

pub const THREAD: &str = "019a7c3e-5b7d-7e21-9f3a-2c1d4e5f6a7b";
pub const TURN1: &str = "019a7c3e-6000-7000-8000-000000000001";
pub const TURN2: &str = "019a7c3e-6000-7000-8000-000000000002";
pub const TRACE_RESOLVED: &str = "0af7651916cd43dd8448eb211c80319c";
pub const TRACE_UNRESOLVED: &str = "ffeeddccbbaa99887766554433221100";
/// 2026-11-22T14:11:14Z.
pub const T0: u64 = 1_795_356_674_000_000_000;
pub const MS: u64 = 1_000_000;

pub fn key(turn: Option<&str>, item: Option<&str>, kind: Kind) -> EventKey {
    EventKey::new(Agent::Codex, THREAD, turn, item, kind).unwrap()
}

pub fn obs(
    key: &EventKey,
    source: Source,
    at_ms: u64,
    attrs: &[(&str, Json)],
    body: Json,
) -> AgentRecord {
    let mut r = AgentRecord::observation(
        key.clone(),
        key.kind().event_name(),
        source,
        T0 + at_ms * MS,
    );
    for (k, v) in attrs {
        r.set(k, v.clone());
    }
    r.body = body;
    r
}

/// One logical event per entry, each with the observations every channel made of it.
pub fn session_observations() -> Vec<Vec<AgentRecord>> {
    use Kind::*;
    use Source::*;
    let t1 = Some(TURN1);
    let t2 = Some(TURN2);
    let model = || (attr::REQUEST_MODEL, json!("gpt-5.1-codex"));
    let mut native_key_digest = String::from("5eed");
    native_key_digest.push_str("0001");
    vec![
        vec![
            obs(
                &key(None, None, SessionStart),
                Rollout,
                0,
                &[
                    (attr::CWD, json!("/work/proj")),
                    (attr::GIT_BRANCH, json!("main")),
                    (attr::GIT_COMMIT, json!("abc123")),
                ],
                Json::Null,
            ),
            obs(
                &key(None, None, SessionStart),
                Otlp,
                1,
                &[model()],
                Json::Null,
            ),
        ],
        vec![obs(
            &key(t1, None, TurnStart),
            Rollout,
            1000,
            &[model()],
            Json::Null,
        )],
        vec![
            obs(
                &key(t1, None, UserPrompt),
                Rollout,
                1001,
                &[],
                json!("fix the failing test"),
            ),
            obs(
                &key(t1, None, UserPrompt),
                Otlp,
                1003,
                &[("codex.prompt_length", json!("20"))],
                json!("fix the failing test"),
            ),
        ],
        vec![obs(
            &key(t1, Some("rs_1"), Reasoning),
            Rollout,
            1500,
            &[],
            json!("Looking at the failing assertion"),
        )],
        vec![
            obs(
                &key(t1, Some("msg_1"), Message),
                AppServer,
                2000,
                &[],
                json!("I'll run the tests first."),
            ),
            obs(
                &key(t1, Some("msg_1"), Message),
                Rollout,
                2001,
                &[],
                json!("I'll run the tests first."),
            ),
        ],
        vec![
            obs(
                &key(t1, Some("call_1"), ToolCall),
                Otlp,
                2100,
                &[
                    (attr::TOOL_NAME, json!("exec_command")),
                    (attr::TOOL_INPUT, json!("{\"cmd\":\"cargo test\"}")),
                ],
                Json::Null,
            ),
            obs(
                &key(t1, Some("call_1"), ToolCall),
                Hook,
                2100,
                &[
                    (attr::TOOL_NAME, json!("Bash")),
                    (attr::TOOL_INPUT, json!({"command": "cargo test"})),
                ],
                Json::Null,
            ),
        ],
        vec![
            obs(
                &key(t1, Some("call_1"), ToolResult),
                Otlp,
                2300,
                &[
                    (attr::TOOL_NAME, json!("exec_command")),
                    (attr::TOOL_EXIT_CODE, json!("0")),
                    (attr::DURATION_MS, json!("91")),
                    (attr::TOOL_SUCCESS, json!("true")),
                ],
                json!("test result: ok"),
            ),
            obs(
                &key(t1, Some("call_1"), ToolResult),
                Hook,
                2290,
                &[(attr::TOOL_EXIT_CODE, json!(0))],
                json!("running 1 test\ntest result: ok. 1 passed"),
            ),
        ],
        vec![obs(
            &key(t1, Some("resp_1"), Usage),
            Otlp,
            2050,
            &[
                model(),
                (attr::USAGE_SCOPE, json!("response")),
                (attr::USAGE_INPUT_TOKENS, json!("1200")),
                (attr::USAGE_OUTPUT_TOKENS, json!("300")),
                (attr::USAGE_CACHE_READ_TOKENS, json!("100")),
                (attr::USAGE_REASONING_TOKENS, json!("20")),
                (attr::USAGE_TOTAL_TOKENS, json!("1500")),
                (attr::USAGE_COST_USD, json!("0.0125")),
            ],
            Json::Null,
        )],
        vec![obs(
            &key(t1, Some("resp_2"), Usage),
            Otlp,
            2400,
            &[
                model(),
                (attr::USAGE_INPUT_TOKENS, json!(800)),
                (attr::USAGE_OUTPUT_TOKENS, json!(100)),
                (attr::USAGE_TOTAL_TOKENS, json!(900)),
            ],
            Json::Null,
        )],
        vec![obs(
            &key(t1, Some("msg_2"), Message),
            Rollout,
            2500,
            &[],
            json!("All tests pass now."),
        )],
        vec![obs(
            &EventKey::native(Agent::Codex, THREAD, t1, &native_key_digest).unwrap(),
            Otlp,
            2600,
            &[("codex.kind", json!("response.completed"))],
            Json::Null,
        )]
        .into_iter()
        .map(|mut r| {
            r.name = "codex.sse_event".into();
            r
        })
        .collect(),
        vec![obs(&key(t1, None, TurnEnd), Rollout, 3000, &[], Json::Null)],
        vec![obs(
            &key(t2, None, TurnStart),
            Rollout,
            10_000,
            &[],
            Json::Null,
        )],
        vec![obs(
            &key(t2, None, UserPrompt),
            Rollout,
            10_001,
            &[],
            json!("now commit it\nwith a good message"),
        )],
        vec![obs(
            &key(t2, Some("call_2"), ApprovalRequest),
            AppServer,
            10_100,
            &[(attr::TOOL_NAME, json!("exec_command"))],
            json!("git commit -am fix"),
        )],
        vec![obs(
            &key(t2, Some("call_2"), ApprovalDecision),
            AppServer,
            10_200,
            &[],
            json!("approved"),
        )],
        vec![obs(
            &key(t2, Some("call_2"), ToolCall),
            Rollout,
            10_300,
            &[
                (attr::TOOL_NAME, json!("exec_command")),
                (attr::TOOL_INPUT, json!("{\"cmd\":\"git commit -am fix\"}")),
            ],
            Json::Null,
        )],
        vec![obs(
            &key(t2, Some("call_2"), ToolResult),
            Rollout,
            10_400,
            &[
                (attr::TOOL_EXIT_CODE, json!(1)),
                (attr::DURATION_MS, json!(12)),
            ],
            json!("nothing to commit"),
        )],
        vec![obs(
            &key(t2, Some("msg_3"), Message),
            Rollout,
            10_500,
            &[],
            json!("Nothing to commit: the fix was already committed."),
        )],
        vec![obs(
            &key(t2, Some("resp_3"), Usage),
            Otlp,
            10_450,
            &[
                (attr::USAGE_INPUT_TOKENS, json!(1)),
                (attr::USAGE_OUTPUT_TOKENS, json!(1)),
            ],
            Json::Null,
        )],
        vec![obs(
            &key(t2, Some("turn_total"), Usage),
            Rollout,
            10_600,
            &[
                (attr::USAGE_SCOPE, json!("turn")),
                (attr::USAGE_INPUT_TOKENS, json!(5000)),
                (attr::USAGE_OUTPUT_TOKENS, json!(400)),
                (attr::USAGE_TOTAL_TOKENS, json!(5400)),
            ],
            Json::Null,
        )],
        vec![obs(
            &key(Some(&trace_alias(TRACE_UNRESOLVED)), Some("msg_9"), Message),
            Otlp,
            20_000,
            &[],
            json!("a message whose turn is unknown"),
        )],
        vec![obs(
            &key(None, None, SessionEnd),
            Rollout,
            30_000,
            &[],
            Json::Null,
        )],
    ]
}

/// The provisional observation that `dedupe` later re-keys to turn 2.
pub fn provisional() -> (AgentRecord, EventKey) {
    let k = key(
        Some(&trace_alias(TRACE_RESOLVED)),
        Some("msg_4"),
        Kind::Message,
    );
    let o = obs(&k, Source::Otlp, 10_550, &[], json!("Done."));
    (o, k.with_turn(TURN2))
}

/// What `dedupe` emits for the session: per event, revision k merges the first k+1
/// observations and attaches the new one; the provisional message is emitted, then
/// tombstoned and emitted under its resolved key.
pub fn merged_records() -> Vec<AgentRecord> {
    let p = Precedence::default();
    let mut out = Vec::new();
    for group in session_observations() {
        let mut m = Merged::new(group[0].key.clone());
        for o in &group {
            m.add(o, &p);
            let mut r = m.to_record();
            r.observations = vec![o.observation_json()];
            out.push(r);
        }
    }
    let (o, resolved) = provisional();
    let m = Merged::from_observation(&o, &p);
    let mut first = m.to_record();
    first.observations = vec![o.observation_json()];
    out.push(first);
    let mut tomb = m.to_record();
    tomb.superseded_by = Some(resolved.clone());
    out.push(tomb);
    out.push(m.rekey(resolved).to_record());
    out
}

/// Every raw observation of the session (the no-dedupe path).
pub fn raw_observations() -> Vec<AgentRecord> {
    session_observations().into_iter().flatten().collect()
}

pub fn logs_of(records: Vec<LogRecord>) -> Logs {
    agentcol_component::data::logs_from(records)
}

pub fn logs(records: &[AgentRecord]) -> Logs {
    logs_of(records.iter().map(|r| r.to_log_record()).collect())
}

/// A deterministic permutation (xorshift Fisher-Yates), so failures reproduce.
pub fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut v = items.to_vec();
    let mut x = seed | 1;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

/// Every table's content, ordered by primary key.
pub fn dump(path: &Path) -> String {
    agentcol_exporter_sqlite::query::Reader::open(path)
        .and_then(|r| r.dump_tables())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn count(path: &Path, sql: &str) -> i64 {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The `sqlite` exporter under `root` with `config`, made by its factory and started; its
/// component and its logs consumer.
pub async fn started_exporter(
    root: &Path,
    config: agentcol_exporter_sqlite::SqliteConfig,
) -> (
    std::sync::Arc<dyn agentcol_component::Component>,
    std::sync::Arc<dyn agentcol_component::Consumer<Logs>>,
) {
    use agentcol_component::{ComponentKind, ExporterFactory, Host, Signal, SignalSet};
    let host = Host::for_test(ComponentKind::Exporter, "sqlite", root);
    let signals: SignalSet = [Signal::Logs].into_iter().collect();
    let instance = agentcol_exporter_sqlite::SqliteExporterFactory
        .create(host, config, signals)
        .unwrap_or_else(|e| panic!("{e}"));
    instance.component.start().await.expect("start");
    let logs = instance.consumers.logs.expect("logs consumer");
    (instance.component, logs)
}
