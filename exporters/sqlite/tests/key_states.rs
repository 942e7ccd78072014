//! `dedupe` with `storage: sqlite` reads its key states from the store's rows: through the
//! real `sqlite` exporter (its factory, its consumer) and the real processor, on real files.

mod common;

use std::path::Path;
use std::sync::Arc;

use agentcol_component::agent::{attr, AgentRecord, EventKey, Source};
use agentcol_component::opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use agentcol_component::opentelemetry_proto::tonic::common::v1::any_value::Value;
use agentcol_component::{
    async_trait, ComponentKind, ConsumeError, Consumer, CreateError, Host, Logs,
};
use agentcol_exporter_sqlite::SqliteConfig;
use agentcol_processor_dedupe::{decision_counts, DecisionKind, DedupeConfig, DedupeProcessor};

/// Two turns of a Codex thread (prompt, tool decision, tool result, answer each), normalised
/// as the otlp receiver does, keeping only the records for which `keep(event name)` holds.
fn request(keep: impl Fn(&str) -> bool) -> Logs {
    let mut req: ExportLogsServiceRequest = agentcol_loadgen::unique_request(8, 7);
    for rl in &mut req.resource_logs {
        for sl in &mut rl.scope_logs {
            sl.log_records.retain(|r| {
                r.attributes.iter().any(|kv| {
                    kv.key == "event.name"
                        && matches!(kv.value.as_ref().and_then(|v| v.value.as_ref()),
                            Some(Value::StringValue(s)) if keep(s))
                })
            });
        }
    }
    agentcol_receiver_otlp::agent::normalize_logs(&mut req);
    req
}

fn storage() -> DedupeConfig {
    DedupeConfig {
        storage: Some("sqlite".into()),
        ..DedupeConfig::default()
    }
}

/// The `sqlite` exporter under `root`, started; its logs consumer.
async fn exporter(
    root: &Path,
) -> (
    Arc<dyn agentcol_component::Component>,
    Arc<dyn Consumer<Logs>>,
) {
    common::started_exporter(root, SqliteConfig::default()).await
}

fn dedupe(root: &Path, config: &DedupeConfig, next: Arc<dyn Consumer<Logs>>) -> DedupeProcessor {
    let host = Host::for_test(ComponentKind::Processor, "dedupe/store", root);
    DedupeProcessor::new(&host, "logs", config, next).unwrap_or_else(|e| panic!("{e}"))
}

fn events(db: &Path) -> Vec<(String, i64, String, String)> {
    let conn = rusqlite::Connection::open(db).expect("open");
    conn.prepare("SELECT key, revision, sources, record FROM events ORDER BY key")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect()
        })
        .expect("events")
}

fn count(db: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("open");
    conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

#[tokio::test]
async fn a_later_observation_after_a_restart_is_merged_from_the_stores_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (component, logs) = exporter(root).await;
    let first = dedupe(root, &storage(), logs.clone());
    first
        .consume(request(|n| n != "codex.tool_result"))
        .await
        .expect("first part");
    // A new instance has nothing in memory: what it knows of the tool calls comes from the
    // store.
    drop(first);
    let second = dedupe(root, &storage(), logs.clone());
    second
        .consume(request(|n| n == "codex.tool_result"))
        .await
        .expect("tool results");
    second
        .consume(request(|_| true))
        .await
        .expect("everything again");
    let state = second.state_path().to_path_buf();
    drop(second);
    component.shutdown().await.expect("shutdown");

    let db = root.join("agentcol.db");
    let got = events(&db);
    let revised: Vec<_> = got.iter().filter(|e| e.1 == 1).collect();
    assert_eq!(revised.len(), 2, "each tool call is revision 1: {got:#?}");
    assert!(
        revised.iter().all(|e| e.0.ends_with("|tool.call")),
        "{revised:#?}"
    );
    assert!(got.iter().all(|e| e.1 <= 1), "{got:#?}");
    // The state file keeps no key states, only decisions (and aliases, origins).
    assert_eq!(count(&state, "SELECT COUNT(*) FROM keys"), 0);
    let counts = decision_counts(&state).expect("counts");
    // The replay of everything: each of its records a duplicate, found in the store.
    let replayed = request(|_| true)
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len() as u64)
        .sum::<u64>();
    assert_eq!(
        counts.get(&DecisionKind::Duplicate),
        Some(&replayed),
        "{counts:?}"
    );
    assert_eq!(counts.get(&DecisionKind::Merged), Some(&2), "{counts:?}");

    // The same rows as one delivery through a dedupe with its own state file.
    let other = tempfile::tempdir().expect("tempdir");
    let (component, logs) = exporter(other.path()).await;
    let own = dedupe(other.path(), &DedupeConfig::default(), logs);
    own.consume(request(|_| true)).await.expect("one delivery");
    drop(own);
    component.shutdown().await.expect("shutdown");
    assert_eq!(got, events(&other.path().join("agentcol.db")));
}

const SESSION: &str = "019a7c3e-aaaa-7000-8000-000000000001";
const TURN: &str = "019a7c3e-bbbb-7000-8000-000000000002";
const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

/// One observation of `agent`'s key (`turn`, `item`, `kind`) as a request of one record.
fn observation(
    turn: &str,
    item: &str,
    kind: &str,
    name: &str,
    source: Source,
    t: u64,
) -> AgentRecord {
    let key: EventKey = format!("v1|codex|{SESSION}|{turn}|{item}|{kind}")
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    AgentRecord::observation(key, name, source, t)
}

fn logs(records: Vec<AgentRecord>) -> Logs {
    agentcol_component::data::logs_from(records.into_iter().map(|r| r.into_log_record()).collect())
}

#[tokio::test]
async fn observations_rekeyed_from_a_provisional_turn_are_part_of_the_loaded_state() {
    let provisional = agentcol_component::agent::trace_alias(TRACE);
    // The turn's declaration (real turn, its trace id) and two OTLP observations of a tool
    // call that know the turn only by the trace id: re-keyed by dedupe, archived as they came.
    let mut declaration = observation(
        TURN,
        "",
        "turn.start",
        "codex.turn_started",
        Source::Otlp,
        10,
    );
    declaration.set(attr::ALIAS_TRACE_ID, TRACE);
    let mut decision = observation(
        &provisional,
        "call_1",
        "tool.call",
        "codex.tool_decision",
        Source::Otlp,
        11,
    );
    decision.set("decision", "approved");
    let mut result = observation(
        &provisional,
        "call_1",
        "tool.call",
        "codex.tool_result",
        Source::Otlp,
        12,
    );
    result.set("output", "hi");
    // Later, after a restart: another channel's observation of the same call, real turn.
    let mut hook = observation(
        TURN,
        "call_1",
        "tool.call",
        "codex.tool_result",
        Source::Hook,
        12,
    );
    hook.set("exit_code", 0);
    let first = || logs(vec![declaration.clone(), decision.clone(), result.clone()]);
    let later = || logs(vec![hook.clone()]);

    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (component, sink) = exporter(root).await;
    let d = dedupe(root, &storage(), sink.clone());
    d.consume(first()).await.expect("first");
    drop(d);
    let d = dedupe(root, &storage(), sink);
    d.consume(later()).await.expect("later");
    drop(d);
    component.shutdown().await.expect("shutdown");
    let got = events(&root.join("agentcol.db"));
    let call = got
        .iter()
        .find(|e| e.0.ends_with("|call_1|tool.call"))
        .unwrap_or_else(|| panic!("{got:#?}"));
    assert!(call.0.contains(TURN), "{call:?}");
    assert_eq!((call.1, call.2.as_str()), (2, "otlp,hook"), "{call:?}");

    let other = tempfile::tempdir().expect("tempdir");
    let (component, sink) = exporter(other.path()).await;
    let own = dedupe(other.path(), &DedupeConfig::default(), sink);
    let mut all = first();
    all.resource_logs.extend(later().resource_logs);
    own.consume(all).await.expect("one delivery");
    drop(own);
    component.shutdown().await.expect("shutdown");
    assert_eq!(got, events(&other.path().join("agentcol.db")));
}

/// A consumer that is not a store.
struct Elsewhere;

#[async_trait]
impl Consumer<Logs> for Elsewhere {
    async fn consume(&self, _: Logs) -> Result<(), ConsumeError> {
        Ok(())
    }
}

#[tokio::test]
async fn storage_is_refused_unless_the_named_store_is_directly_downstream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::for_test(ComponentKind::Processor, "dedupe/store", dir.path());
    let err = DedupeProcessor::new(&host, "logs", &storage(), Arc::new(Elsewhere))
        .expect_err("no store downstream");
    let CreateError::InvalidConfig(msg) = err else {
        panic!("{err}");
    };
    assert!(
        msg.contains("storage: \"sqlite\" needs the sqlite exporter"),
        "{msg}"
    );
    assert!(msg.contains("found no store"), "{msg}");

    let (component, logs) = exporter(dir.path()).await;
    let config = DedupeConfig {
        storage: Some("sqlite/other".into()),
        ..DedupeConfig::default()
    };
    let err = DedupeProcessor::new(&host, "logs", &config, logs).expect_err("another store");
    assert!(
        err.to_string()
            .contains("found the store of exporter \"sqlite\""),
        "{err}"
    );
    component.shutdown().await.expect("shutdown");
}
