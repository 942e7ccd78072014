//! Agent records handed over as records (`agentcol_component::agent_input`) store exactly what
//! the same records as OTLP store: through the real `otlp` receiver's normaliser, the real
//! `dedupe` processor and the real `sqlite` exporter, on real files. (The fixtures of the real
//! agents, in any order and batching, are compared in `builder/tests/store_property.rs`; this
//! is the benchmark's load shape, turns known only by trace id, and the path without `dedupe`.)

use std::path::Path;
use std::sync::Arc;

use agentcol_component::opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use agentcol_component::{
    AgentLogs, ComponentKind, Consumer, ExporterFactory, Host, Logs, Signal, SignalData, SignalSet,
};
use agentcol_exporter_sqlite::{SqliteConfig, SqliteExporterFactory};
use agentcol_processor_dedupe::{DedupeConfig, DedupeProcessor};
use agentcol_receiver_otlp::agent::{normalize_logs, normalize_logs_into_records};

/// Three turns of a Codex thread as the agent sends them (not normalised yet), plus one plain
/// log record that is no agent's.
fn raw_request() -> ExportLogsServiceRequest {
    let mut req: ExportLogsServiceRequest = agentcol_loadgen::unique_request(12, 3);
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
    let host = Host::for_test(ComponentKind::Exporter, "sqlite", root);
    let signals: SignalSet = [Signal::Logs].into_iter().collect();
    let config = SqliteConfig {
        keep_other_logs: true,
        ..SqliteConfig::default()
    };
    let instance = SqliteExporterFactory
        .create(host, config, signals)
        .unwrap_or_else(|e| panic!("{e}"));
    instance.component.start().await.expect("start");
    let logs = instance.consumers.logs.expect("logs consumer");
    (instance.component, logs)
}

fn dedupe(root: &Path, storage: bool, next: Arc<dyn Consumer<Logs>>) -> DedupeProcessor {
    let host = Host::for_test(ComponentKind::Processor, "dedupe/store", root);
    let config = DedupeConfig {
        storage: storage.then(|| "sqlite".to_string()),
        ..DedupeConfig::default()
    };
    DedupeProcessor::new(&host, "logs", &config, next).unwrap_or_else(|e| panic!("{e}"))
}

/// Every table's rows, sorted.
fn dump(db: &Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open");
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("tables");
    let mut out = String::new();
    for t in tables {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{t}\""))
            .expect("select");
        let n = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |row| {
                (0..n)
                    .map(|i| {
                        row.get::<_, rusqlite::types::Value>(i)
                            .map(|v| format!("{v:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(|c| c.join(" | "))
            })
            .and_then(|r| r.collect())
            .expect("rows");
        rows.sort();
        out.push_str(&format!(
            "## {t} ({} rows)\n{}\n",
            rows.len(),
            rows.join("\n")
        ));
    }
    out
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

    let want = dump(&reference.path().join("agentcol.db"));
    assert!(want.contains("## events (12 rows)"), "{want}");
    assert_eq!(dump(&dir.path().join("agentcol.db")), want);
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

    let want = dump(&reference.path().join("agentcol.db"));
    assert!(want.contains("## other_logs (1 rows)"), "{want}");
    assert_eq!(dump(&dir.path().join("agentcol.db")), want);
}
