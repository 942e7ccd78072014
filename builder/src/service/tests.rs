//! The graph and lifecycle, with the fake components of `testkit`.

use std::path::PathBuf;
use std::sync::Arc;

use agentcol_component::{ComponentKind, StatusBoard, Telemetry};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::config;
use crate::testkit;

fn plan_from(yaml: &str, registry: &crate::registry::Registry) -> Plan {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yaml");
    std::fs::write(&file, yaml).unwrap();
    let r = config::resolve(dir.path(), &[file.display().to_string()], &[]).unwrap();
    config::build_plan(&r, registry).unwrap()
}

fn build(plan: Plan) -> Service {
    Service::build(
        plan,
        Arc::new(PathBuf::from("/nonexistent")),
        StatusBoard::new(),
        Telemetry::new(),
        CancellationToken::new(),
    )
    .unwrap()
}

const TWO_PIPELINES: &str = r#"
receivers:
  fakercv:
  fakercv/2:
processors:
  fakeproc:
exporters:
  fakeexp/a: {endpoint: x}
  fakeexp/b: {endpoint: x}
extensions:
  fakeext:
service:
  extensions: [fakeext]
  pipelines:
    logs/one:
      receivers: [fakercv]
      processors: [fakeproc]
      exporters: [fakeexp/a]
    logs/two:
      receivers: [fakercv, fakercv/2]
      processors: [fakeproc]
      exporters: [fakeexp/a, fakeexp/b]
    traces:
      receivers: [fakercv]
      exporters: [fakeexp/b]
"#;

#[tokio::test]
async fn graph_fans_out_and_shares_exporters() {
    let (registry, log, handles) = testkit::registry();
    let service = build(plan_from(TWO_PIPELINES, &registry));
    let created = log.all();
    // One exporter instance per id, for exactly the signals its pipelines carry.
    assert_eq!(
        created
            .iter()
            .filter(|l| l.starts_with("create exporter fakeexp/a"))
            .collect::<Vec<_>>(),
        vec!["create exporter fakeexp/a for [\"logs\"]"]
    );
    assert!(created.contains(&"create exporter fakeexp/b for [\"traces\", \"logs\"]".to_string()));
    // One processor instance per pipeline.
    assert!(created.contains(&"create processor fakeproc in logs/one".to_string()));
    assert!(created.contains(&"create processor fakeproc in logs/two".to_string()));
    // A receiver gets consumers only for the signals its pipelines carry.
    let handles = handles.lock().unwrap().clone();
    let (_, second) = handles.iter().find(|(id, _)| id == "fakercv/2").unwrap();
    assert!(second.logs.is_some() && second.traces.is_none());
    let (_, first) = handles.iter().find(|(id, _)| id == "fakercv").unwrap();
    assert!(first.logs.is_some() && first.traces.is_some());

    service.start().await.unwrap();
    first
        .logs
        .as_ref()
        .unwrap()
        .consume(testkit::one_log())
        .await
        .unwrap();
    let seen = log.all();
    // Through both pipelines: exporter a twice (once per pipeline), b once.
    assert_eq!(
        seen.iter()
            .filter(|l| *l == "exporter fakeexp/a got 1 logs")
            .count(),
        2
    );
    assert_eq!(
        seen.iter()
            .filter(|l| *l == "exporter fakeexp/b got 1 logs")
            .count(),
        1
    );
    first
        .traces
        .as_ref()
        .unwrap()
        .consume(testkit::no_traces())
        .await
        .unwrap();
    assert!(log
        .all()
        .contains(&"exporter fakeexp/b got 0 traces".to_string()));
    service.shutdown().await;
}

#[tokio::test]
async fn start_and_shutdown_run_in_opposite_orders() {
    let (registry, log, _) = testkit::registry();
    let service = build(plan_from(TWO_PIPELINES, &registry));
    let kinds: Vec<ComponentKind> = service.start_order().into_iter().map(|(k, _)| k).collect();
    let mut sorted = kinds.clone();
    sorted.sort_by_key(|k| match k {
        ComponentKind::Extension => 0,
        ComponentKind::Exporter => 1,
        ComponentKind::Processor | ComponentKind::Connector => 2,
        ComponentKind::Receiver => 3,
    });
    assert_eq!(kinds, sorted);
    service.start().await.unwrap();
    service.shutdown().await;
    let events: Vec<String> = log
        .all()
        .into_iter()
        .filter(|l| l.starts_with("start ") || l.starts_with("stop "))
        .collect();
    let starts: Vec<&str> = events
        .iter()
        .filter_map(|e| e.strip_prefix("start "))
        .collect();
    let mut stops: Vec<&str> = events
        .iter()
        .filter_map(|e| e.strip_prefix("stop "))
        .collect();
    stops.reverse();
    assert_eq!(starts, stops);
    assert!(starts[0].starts_with("extension"));
    assert!(starts.last().unwrap().starts_with("receiver"));
}

#[tokio::test]
async fn acks_are_end_to_end() {
    let (registry, log, handles) = testkit::registry();
    let yaml = r#"
receivers: {fakercv: }
exporters:
  fakeexp/ok: {endpoint: x}
  fakeexp/down: {endpoint: x, fail: true}
  fakeexp/slow: {endpoint: x, delay: 200ms}
service:
  pipelines:
    logs/ok: {receivers: [fakercv], exporters: [fakeexp/ok, fakeexp/slow]}
    logs/down: {receivers: [fakercv], exporters: [fakeexp/down]}
"#;
    let service = build(plan_from(yaml, &registry));
    service.start().await.unwrap();
    let consumers = handles.lock().unwrap()[0].1.clone();
    let started = std::time::Instant::now();
    let result = consumers.logs.unwrap().consume(testkit::one_log()).await;
    // The receiver hears the failing exporter, as a retryable error...
    let err = result.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.reason().contains("fakeexp/down is down"));
    // ...only after the slow one accepted (the ack waited for every branch)...
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));
    let seen = log.all();
    assert!(seen.contains(&"exporter fakeexp/slow got 1 logs".to_string()));
    // ...and the healthy exporter got its data regardless.
    assert!(seen.contains(&"exporter fakeexp/ok got 1 logs".to_string()));
    service.shutdown().await;
}

#[tokio::test]
async fn a_start_failure_stops_what_was_started() {
    let (registry, log, _) = testkit::registry();
    let yaml = r#"
receivers: {fakercv: {fail_start: true}}
exporters: {fakeexp: {endpoint: x}}
extensions: {fakeext: }
service:
  extensions: [fakeext]
  pipelines:
    logs: {receivers: [fakercv], exporters: [fakeexp]}
"#;
    let service = build(plan_from(yaml, &registry));
    let err = service.start().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("failed to start receiver \"fakercv\""),
        "{err}"
    );
    let events = log.all();
    assert!(events.contains(&"stop exporter fakeexp".to_string()));
    assert!(events.contains(&"stop extension fakeext".to_string()));
}

#[tokio::test]
async fn metrics_endpoint_serves_the_standard_families() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let telemetry = Telemetry::new();
    telemetry
        .receiver(&"otlp".parse().unwrap(), "grpc")
        .accepted(agentcol_component::Signal::Logs, 7);
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let stop = CancellationToken::new();
    let task = metrics::serve(addr, telemetry, stop.clone()).await.unwrap();
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    conn.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains(
        "agentcol_receiver_accepted_log_records_total{receiver=\"otlp\",transport=\"grpc\"} 7"
    ));
    assert!(body.contains("agentcol_process_memory_rss"));
    stop.cancel();
    task.await.unwrap();
}
