//! Agent records handed over as records (`agentcol_component::agent_input`) store exactly what
//! the same records as OTLP store: through the real `otlp` receiver's normaliser, the real
//! `dedupe` processor and the real `sqlite` exporter, on real files. (The fixtures of the real
//! agents, in any order and batching, are compared in `builder/tests/store_property.rs`; this
//! is the benchmark's load shape, turns known only by trace id, and the path without `dedupe`.)

mod common;

use std::path::Path;
use std::sync::Arc;

use agentcol_component::opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use agentcol_component::{AgentLogs, ComponentKind, Consumer, Host, Logs, SignalData};
use agentcol_exporter_sqlite::SqliteConfig;
use agentcol_processor_dedupe::{DedupeConfig, DedupeProcessor};
use agentcol_receiver_otlp::agent::{normalize_logs, normalize_logs_into_records};

/// Three turns of a Codex thread as the agent sends them (not normalised yet), plus one plain
/// log record that is no agent's. Each native record also carries an attribute a sender may
/// send whose JSON form looks like bytes (`{"$bytes": "ABCD"}`, a kvlist, not bytes): it must
/// read back as itself whichever way it travels.
fn raw_request() -> ExportLogsServiceRequest {
    use agentcol_component::opentelemetry_proto::tonic::common::v1::{
        any_value::Value, AnyValue, KeyValue, KeyValueList,
    };
    let mut req: ExportLogsServiceRequest = agentcol_loadgen::unique_request(12, 3);
    let looks_like_bytes = KeyValue {
        key: "x.looks_like_bytes".into(),
        value: Some(AnyValue {
            value: Some(Value::KvlistValue(KeyValueList {
                values: vec![KeyValue {
                    key: "$bytes".into(),
                    value: Some(AnyValue {
                        value: Some(Value::StringValue("ABCD".into())),
                    }),
                    ..Default::default()
                }],
            })),
        }),
        ..Default::default()
    };
    for rl in &mut req.resource_logs {
        for sl in &mut rl.scope_logs {
            for r in &mut sl.log_records {
                r.attributes.push(looks_like_bytes.clone());
            }
        }
    }
    let plain = agentcol_component::data::logs_from(vec![Default::default()]);
    req.resource_logs.extend(plain.resource_logs);
    req
}

/// The `sqlite` exporter under `root` (plain logs kept, so they are compared too), started.
async fn exporter(
    root: &Path,
) -> (
    Arc<dyn agentcol_component::Component>,
    Arc<dyn Consumer<Logs>>,
) {
    let config = SqliteConfig {
        keep_other_logs: true,
        ..SqliteConfig::default()
    };
    common::started_exporter(root, config).await
}

fn dedupe(root: &Path, storage: bool, next: Arc<dyn Consumer<Logs>>) -> DedupeProcessor {
    let host = Host::for_test(ComponentKind::Processor, "dedupe/store", root);
    let config = DedupeConfig {
        storage: storage.then(|| "sqlite".to_string()),
        ..DedupeConfig::default()
    };
    DedupeProcessor::new(&host, "logs", &config, next).unwrap_or_else(|e| panic!("{e}"))
}

/// The rows of `table`.
fn count(db: &Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("open");
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

/// The request normalised as the receiver hands it to an input that takes records.
fn as_records() -> AgentLogs {
    let mut logs = raw_request();
    let (records, _) = normalize_logs_into_records(&mut logs);
    let canonical = as_logs().item_count() - 1;
    assert_eq!(
        records.len(),
        canonical,
        "every canonical record is a record"
    );
    assert_eq!(
        logs.resource_logs.len(),
        1,
        "the plain log record stays a log record"
    );
    AgentLogs { records, logs }
}

fn as_logs() -> Logs {
    let mut logs = raw_request();
    normalize_logs(&mut logs);
    logs
}

#[tokio::test]
async fn records_through_dedupe_store_what_otlp_through_a_dedupe_with_its_own_file_stores() {
    let reference = tempfile::tempdir().expect("tempdir");
    let (component, logs) = exporter(reference.path()).await;
    let own = dedupe(reference.path(), false, logs);
    assert!(
        own.agent_input().is_none(),
        "a dedupe with its own state file takes no records"
    );
    own.consume(as_logs()).await.expect("delivered");
    own.consume(as_logs()).await.expect("delivered again");
    drop(own);
    component.shutdown().await.expect("shutdown");

    let dir = tempfile::tempdir().expect("tempdir");
    let (component, logs) = exporter(dir.path()).await;
    let stored = dedupe(dir.path(), true, logs);
    let input = stored
        .agent_input()
        .expect("a dedupe in front of its store takes records");
    input.consume_agent(as_records()).await.expect("delivered");
    input
        .consume_agent(as_records())
        .await
        .expect("delivered again");
    drop(input);
    drop(stored);
    component.shutdown().await.expect("shutdown");

    let want = common::dump(&reference.path().join("agentcol.db"));
    assert_eq!(count(&reference.path().join("agentcol.db"), "events"), 12);
    assert_eq!(common::dump(&dir.path().join("agentcol.db")), want);
}

#[tokio::test]
async fn records_straight_into_the_store_store_what_otlp_stores() {
    let reference = tempfile::tempdir().expect("tempdir");
    let (component, logs) = exporter(reference.path()).await;
    logs.consume(as_logs()).await.expect("delivered");
    component.shutdown().await.expect("shutdown");

    let dir = tempfile::tempdir().expect("tempdir");
    let (component, logs) = exporter(dir.path()).await;
    let input = logs.agent_input().expect("the store takes records");
    input.consume_agent(as_records()).await.expect("delivered");
    drop(input);
    component.shutdown().await.expect("shutdown");

    let want = common::dump(&reference.path().join("agentcol.db"));
    assert_eq!(
        count(&reference.path().join("agentcol.db"), "other_logs"),
        1
    );
    assert_eq!(common::dump(&dir.path().join("agentcol.db")), want);
}
