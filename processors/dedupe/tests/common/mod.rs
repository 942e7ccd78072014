//! Shared by the dedupe crate tests: a recording downstream, observation builders, and the fold
//! of an emission stream into its final state.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use agentcol_component::agent::{attr, trace_alias, Agent, AgentRecord, EventKey, Kind, Source};
use agentcol_component::opentelemetry_proto::tonic::logs::v1::LogRecord;
use agentcol_component::{async_trait, ComponentKind, ConsumeError, Consumer, Host, Logs};
use agentcol_processor_dedupe::{DedupeConfig, DedupeProcessor};
use serde_json::Value as Json;

pub const THREAD: &str = "019a7c3e-5b7d-7e21-9f3a-2c1d4e5f6a7b";
pub const TURN: &str = "019a7c3e-6000-7000-8000-000000000001";
pub const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// A downstream that records every request it accepts and refuses on demand.
#[derive(Default)]
pub struct Recorder {
    pub accepted: Mutex<Vec<Logs>>,
    pub calls: Mutex<usize>,
    refusals: Mutex<VecDeque<ConsumeError>>,
    refuse_all: Mutex<Option<ConsumeError>>,
}

impl Recorder {
    pub fn new() -> Arc<Self> {
        Arc::new(Recorder::default())
    }

    /// The next call is answered with `e`.
    pub fn refuse_next(&self, e: ConsumeError) {
        self.refusals.lock().unwrap().push_back(e);
    }

    /// Every call is answered with `e` until [`Recorder::accept_again`].
    pub fn refuse_always(&self, e: ConsumeError) {
        *self.refuse_all.lock().unwrap() = Some(e);
    }

    pub fn accept_again(&self) {
        *self.refuse_all.lock().unwrap() = None;
    }

    pub fn requests(&self) -> Vec<Logs> {
        self.accepted.lock().unwrap().clone()
    }

    /// Every accepted log record, in order.
    pub fn log_records(&self) -> Vec<LogRecord> {
        self.requests()
            .iter()
            .flat_map(|l| l.resource_logs.iter())
            .flat_map(|r| r.scope_logs.iter())
            .flat_map(|s| s.log_records.iter().cloned())
            .collect()
    }

    /// Every accepted agent record, in order.
    pub fn records(&self) -> Vec<AgentRecord> {
        self.log_records()
            .iter()
            .filter_map(|r| AgentRecord::from_log_record(r).ok())
            .collect()
    }

    pub fn clear(&self) {
        self.accepted.lock().unwrap().clear();
    }
}

#[async_trait]
impl Consumer<Logs> for Recorder {
    async fn consume(&self, data: Logs) -> Result<(), ConsumeError> {
        *self.calls.lock().unwrap() += 1;
        if let Some(e) = self.refusals.lock().unwrap().pop_front() {
            return Err(e);
        }
        if let Some(e) = self.refuse_all.lock().unwrap().clone() {
            return Err(e);
        }
        self.accepted.lock().unwrap().push(data);
        Ok(())
    }
}

pub const ID: &str = "dedupe/store";

/// Polls `cond` every 10 ms until it holds or 10 s have passed (timing tests on a busy machine).
pub async fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    cond()
}

pub fn host(root: &Path) -> Host {
    Host::for_test(ComponentKind::Processor, ID, root)
}

pub fn processor(host: &Host, config: &DedupeConfig, next: Arc<Recorder>) -> DedupeProcessor {
    DedupeProcessor::new(host, "logs/store", config, next).expect("create dedupe")
}

/// A processor with the default config on a fresh root, recording what it emits. Keep the
/// directory alive as long as the processor.
pub fn fresh() -> (tempfile::TempDir, Host, Arc<Recorder>, DedupeProcessor) {
    let dir = tempfile::tempdir().expect("temporary root");
    let h = host(dir.path());
    let rec = Recorder::new();
    let p = processor(&h, &DedupeConfig::default(), rec.clone());
    (dir, h, rec, p)
}

/// The value of one dedupe counter in a host's telemetry.
pub fn counter(host: &Host, name: &str) -> u64 {
    let text = host.telemetry().render();
    let prefix = format!("agentcol_dedupe_{name}_total{{processor=\"{ID}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

pub fn key(turn: Option<&str>, item: Option<&str>, kind: Kind) -> EventKey {
    EventKey::new(Agent::Codex, THREAD, turn, item, kind).unwrap()
}

/// The provisional turn part of [`TRACE`].
pub fn alias_turn() -> String {
    trace_alias(TRACE)
}

pub fn obs(
    key: EventKey,
    source: Source,
    time: u64,
    attrs: &[(&str, Json)],
    body: Json,
) -> AgentRecord {
    let name = key.kind().event_name();
    let mut r = AgentRecord::observation(key, name, source, time);
    r.set(attr::CONVERSATION_ID, THREAD);
    r.set(attr::AGENT_NAME, "codex");
    for (k, v) in attrs {
        r.set(k, v.clone());
    }
    r.body = body;
    r
}

/// One request, one resource, one scope.
pub fn logs_of(records: &[AgentRecord]) -> Logs {
    raw_logs(records.iter().map(|r| r.to_log_record()).collect())
}

pub fn raw_logs(records: Vec<LogRecord>) -> Logs {
    agentcol_component::data::logs_from(records)
}

/// Folds an emission stream into its final state: key → record with the highest revision,
/// tombstones deleting their key. Attached observations are set aside (they depend on arrival
/// order by design: each is attached to the emission after it arrived).
pub fn fold(records: &[AgentRecord]) -> BTreeMap<String, AgentRecord> {
    let mut map: BTreeMap<String, AgentRecord> = BTreeMap::new();
    for r in records {
        let k = r.key.to_string();
        if r.is_tombstone() {
            map.remove(&k);
            continue;
        }
        let mut r = r.clone();
        r.observations.clear();
        match map.get(&k) {
            Some(cur) if cur.revision >= r.revision => {}
            _ => {
                map.insert(k, r);
            }
        }
    }
    map
}

/// Every (key, revision) emitted, asserting none twice.
pub fn assert_no_repeat(records: &[AgentRecord]) {
    let mut seen = BTreeSet::new();
    for r in records {
        assert!(
            seen.insert((r.key.to_string(), r.revision, r.is_tombstone())),
            "emitted twice: {} rev {:?}",
            r.key,
            r.revision
        );
    }
}

/// The pool of observations of one Codex session as several channels see it: the OTLP logs
/// know the turn only by trace id (`~trace:` keys), the rollout declares the alias.
pub fn session_pool() -> Vec<AgentRecord> {
    let at = alias_turn();
    let t = Some(TURN);
    let a = Some(at.as_str());
    let decl = |k: EventKey, time: u64, extra: &[(&str, Json)]| {
        let mut attrs: Vec<(&str, Json)> = vec![(attr::ALIAS_TRACE_ID, TRACE.into())];
        attrs.extend(extra.iter().cloned());
        obs(k, Source::Rollout, time, &attrs, Json::Null)
    };
    vec![
        obs(
            key(None, None, Kind::SessionStart),
            Source::Rollout,
            1_000,
            &[
                (attr::CWD, "/work/app".into()),
                (attr::REQUEST_MODEL, "gpt-5-codex".into()),
            ],
            Json::Null,
        ),
        obs(
            key(None, None, Kind::SessionStart),
            Source::Otlp,
            1_005,
            &[
                (attr::REQUEST_MODEL, "gpt-5".into()),
                ("codex.originator", "codex_cli_rs".into()),
            ],
            Json::Null,
        ),
        decl(key(t, None, Kind::TurnStart), 1_010, &[]),
        obs(
            key(t, None, Kind::TurnStart),
            Source::AppServer,
            1_011,
            &[("codex.turn.status", "inProgress".into())],
            Json::Null,
        ),
        obs(
            key(a, None, Kind::UserPrompt),
            Source::Otlp,
            1_020,
            &[("codex.prompt_length", 11.into())],
            "fix the bug".into(),
        ),
        obs(
            key(t, None, Kind::UserPrompt),
            Source::Hook,
            1_021,
            &[],
            "fix the bug".into(),
        ),
        obs(
            key(t, None, Kind::UserPrompt),
            Source::Rollout,
            1_019,
            &[],
            "fix the bug\n".into(),
        ),
        obs(
            key(a, Some("call_1"), Kind::ToolCall),
            Source::Otlp,
            1_030,
            &[
                (attr::TOOL_NAME, "exec_command".into()),
                (attr::TOOL_INPUT, "{\"cmd\":\"ls\"}".into()),
            ],
            Json::Null,
        ),
        obs(
            key(t, Some("call_1"), Kind::ToolCall),
            Source::Hook,
            1_031,
            &[
                (attr::TOOL_NAME, "Bash".into()),
                (attr::TOOL_INPUT, "{\"command\":\"ls\"}".into()),
            ],
            Json::Null,
        ),
        obs(
            key(a, Some("call_1"), Kind::ToolResult),
            Source::Otlp,
            1_040,
            &[
                (attr::TOOL_SUCCESS, true.into()),
                (attr::DURATION_MS, 91.into()),
            ],
            "a\nb".into(),
        ),
        obs(
            key(t, Some("call_1"), Kind::ToolResult),
            Source::Rollout,
            1_041,
            &[(attr::TOOL_EXIT_CODE, 0.into())],
            "a\nb\n".into(),
        ),
        obs(
            key(a, Some("resp_1"), Kind::Usage),
            Source::Otlp,
            1_050,
            &[
                (attr::USAGE_INPUT_TOKENS, 1200.into()),
                (attr::USAGE_OUTPUT_TOKENS, 80.into()),
            ],
            Json::Null,
        ),
        obs(
            key(t, Some("msg_1"), Kind::Message),
            Source::Rollout,
            1_060,
            &[],
            "Done: listed the files.".into(),
        ),
        obs(
            key(t, Some("msg_1"), Kind::Message),
            Source::AppServer,
            1_060,
            &[("codex.item.phase", "final".into())],
            "Done: listed the files.".into(),
        ),
        obs(
            key(a, Some("call_2"), Kind::ToolResult),
            Source::Otlp,
            1_070,
            &[(attr::TOOL_SUCCESS, false.into())],
            "permission denied".into(),
        ),
        decl(
            key(t, None, Kind::TurnEnd),
            1_080,
            &[(attr::DURATION_MS, 70.into())],
        ),
    ]
}
