//! The exporter as the service runs it: created by its factory, started, fed through its
//! `Consumer`, acknowledged only after commit, refused retryably while the file is locked.

mod common;

use std::time::Duration;

use agentcol_component::opentelemetry_proto::tonic::logs::v1::LogRecord;
use agentcol_component::{ComponentKind, Host, Signal, SignalSet};
use agentcol_exporter_sqlite::factory;
use common::*;

fn host(root: &std::path::Path) -> Host {
    Host::for_test(ComponentKind::Exporter, "sqlite", root)
}

fn logs_only() -> SignalSet {
    [Signal::Logs].into_iter().collect()
}

#[tokio::test]
async fn consume_returns_only_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    let f = factory();
    let config = f.load_config(serde_json::Value::Null).unwrap();
    let h = host(dir.path());
    let telemetry = h.telemetry().clone();
    let inst = f.create(h, &config, logs_only()).unwrap();
    let logs = inst.consumers.logs.clone().unwrap();
    // Before start the store is not open: an honest retryable refusal.
    let early = logs
        .consume(common::logs(&merged_records()))
        .await
        .unwrap_err();
    assert!(early.is_retryable(), "{early}");
    inst.component.start().await.unwrap();
    let path = dir.path().join("agentcol.db");
    let records = merged_records();
    for chunk in records.chunks(4) {
        logs.consume(common::logs(chunk)).await.unwrap();
        // A separate connection sees every row the moment the ack arrives.
        let keys: Vec<String> = chunk
            .iter()
            .filter(|r| r.superseded_by.is_none())
            .map(|r| r.key.to_string())
            .collect();
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        for k in keys {
            // A provisional key whose alias is known has been re-keyed.
            let parsed: agentcol_component::agent::EventKey = k.parse().unwrap();
            let tomb: bool = parsed.has_alias_turn()
                && conn
                    .query_row(
                        "SELECT count(*) FROM aliases WHERE agent = ?1 AND session_id = ?2 AND alias = ?3",
                        [parsed.agent().as_str(), parsed.session(), parsed.turn()],
                        |r| r.get::<_, i64>(0),
                    )
                    .unwrap()
                    > 0;
            let n: i64 = conn
                .query_row("SELECT count(*) FROM events WHERE key = ?1", [&k], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(n, i64::from(!tomb), "{k}");
        }
    }
    let text = telemetry.render();
    assert!(
        text.contains("agentcol_sqlite_events_upserted_total{exporter=\"sqlite\"}"),
        "{text}"
    );
    assert!(
        text.contains("agentcol_sqlite_tombstones_total{exporter=\"sqlite\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("agentcol_sqlite_observations_archived_total{exporter=\"sqlite\"}"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "agentcol_exporter_sent_log_records_total{{exporter=\"sqlite\"}} {}",
            records.len()
        )),
        "{text}"
    );
    inst.component.shutdown().await.unwrap();
    inst.component.shutdown().await.unwrap();
    let late = logs.consume(common::logs(&records)).await.unwrap_err();
    assert!(late.is_retryable(), "{late}");
}

#[tokio::test]
async fn a_locked_file_is_a_retryable_refusal_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let f = factory();
    let config = f
        .load_config(serde_json::json!({"path": "store/s.db", "busy_timeout": "50ms", "synchronous": "normal"}))
        .unwrap();
    let inst = f.create(host(dir.path()), &config, logs_only()).unwrap();
    inst.component.start().await.unwrap();
    let path = dir.path().join("store/s.db");
    assert!(path.exists(), "relative paths are under the root");
    let locker = rusqlite::Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let logs = inst.consumers.logs.clone().unwrap();
    let err = logs
        .consume(common::logs(&merged_records()))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        err.reason().contains("locked") || err.reason().contains("busy"),
        "{err}"
    );
    locker.execute_batch("ROLLBACK").unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        logs.consume(common::logs(&merged_records())),
    )
    .await
    .unwrap()
    .unwrap();
    inst.component.shutdown().await.unwrap();
}

#[tokio::test]
async fn plain_and_unreadable_logs_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let f = factory();
    let config = f.load_config(serde_json::Value::Null).unwrap();
    let h = host(dir.path());
    let telemetry = h.telemetry().clone();
    let inst = f.create(h, &config, logs_only()).unwrap();
    inst.component.start().await.unwrap();
    let mut bad = raw_observations()[0].to_log_record();
    bad.attributes.retain(|kv| kv.key != "event.name");
    for kv in &mut bad.attributes {
        if kv.key == "agent.source" {
            kv.value = Some(agentcol_component::opentelemetry_proto::tonic::common::v1::AnyValue {
                value: Some(agentcol_component::opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue("carrier-pigeon".into())),
            });
        }
    }
    let batch = logs_of(vec![
        LogRecord::default(),
        bad,
        raw_observations()[1].to_log_record(),
    ]);
    inst.consumers
        .logs
        .clone()
        .unwrap()
        .consume(batch)
        .await
        .unwrap();
    let text = telemetry.render();
    assert!(
        text.contains(
            "agentcol_sqlite_records_skipped_total{exporter=\"sqlite\",reason=\"not_agent\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("agentcol_sqlite_records_unreadable_total{exporter=\"sqlite\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("agentcol_sqlite_events_upserted_total{exporter=\"sqlite\"} 1"),
        "{text}"
    );
    inst.component.shutdown().await.unwrap();
    let path = dir.path().join("agentcol.db");
    assert_eq!(
        count(
            &path,
            "SELECT count(*) FROM raw_records WHERE reason LIKE '%carrier-pigeon%'"
        ),
        1
    );
}

#[tokio::test]
async fn only_logs_are_supported() {
    let dir = tempfile::tempdir().unwrap();
    let f = factory();
    assert_eq!(f.type_name(), "sqlite");
    let s = f.stability();
    assert!(s.logs.is_some() && s.traces.is_none() && s.metrics.is_none());
    let config = f.load_config(serde_json::Value::Null).unwrap();
    let traces: SignalSet = [Signal::Traces].into_iter().collect();
    assert!(f.create(host(dir.path()), &config, traces).is_err());
    assert!(f
        .load_config(serde_json::json!({"synchronus": "full"}))
        .is_err());
    // Two instances in one collector register the metric families once.
    let h = host(dir.path());
    let a = f.create(h.clone(), &config, logs_only()).unwrap();
    let b = f.create(h, &config, logs_only()).unwrap();
    drop((a, b));
}

#[tokio::test]
async fn a_too_new_store_fails_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentcol.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA application_id = 1634168436; PRAGMA user_version = 999;")
        .unwrap();
    let f = factory();
    let config = f.load_config(serde_json::Value::Null).unwrap();
    let inst = f.create(host(dir.path()), &config, logs_only()).unwrap();
    let err = inst.component.start().await.unwrap_err();
    assert!(err.to_string().contains("schema version 999"), "{err}");
}
