//! The exporters against real servers on 127.0.0.1: an axum OTLP/HTTP server and a tonic OTLP/gRPC
//! server, both recording what they receive and scripted to fail.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentcol_component::opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use agentcol_component::opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use agentcol_component::opentelemetry_proto::tonic::logs::v1::{
    LogRecord, ResourceLogs, ScopeLogs,
};
use agentcol_component::{ComponentKind, ConsumeError, Host, Logs, Signal, SignalData, SignalSet};
use axum::http::{HeaderMap, StatusCode};
use prost::Message;

fn logs(n: usize, tag: u64) -> Logs {
    Logs {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: (0..n)
                    .map(|i| LogRecord {
                        time_unix_nano: tag * 1000 + i as u64,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What the HTTP server answers, in order (then 200 forever).
#[derive(Clone)]
enum Answer {
    Status(u16, Option<&'static str>),
    Partial(i64),
}

#[derive(Clone, Default)]
struct Seen {
    requests: Arc<Mutex<Vec<(HeaderMap, Logs)>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    delay: Arc<Mutex<Duration>>,
}

impl Seen {
    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
    fn tags(&self) -> Vec<u64> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.resource_logs[0].scope_logs[0].log_records[0].time_unix_nano / 1000)
            .collect()
    }
}

async fn http_server(port: u16, seen: Seen) -> tokio::task::JoinHandle<()> {
    let app = axum::Router::new().route(
        "/v1/logs",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let delay = *seen.delay.lock().unwrap();
                tokio::time::sleep(delay).await;
                let raw = match headers
                    .get("content-encoding")
                    .map(|v| v.to_str().unwrap_or(""))
                {
                    Some("gzip") => {
                        let mut out = Vec::new();
                        flate2::read::GzDecoder::new(&body[..])
                            .read_to_end(&mut out)
                            .unwrap();
                        out
                    }
                    Some("zstd") => zstd::decode_all(&body[..]).unwrap(),
                    _ => body.to_vec(),
                };
                let data = ExportLogsServiceRequest::decode(&raw[..]).unwrap();
                let answer = seen.script.lock().unwrap().pop_front();
                seen.requests.lock().unwrap().push((headers, data));
                let ok = ExportLogsServiceResponse::default();
                match answer {
                    None => (StatusCode::OK, HeaderMap::new(), ok.encode_to_vec()),
                    Some(Answer::Partial(n)) => (
                        StatusCode::OK,
                        HeaderMap::new(),
                        ExportLogsServiceResponse {
                            partial_success: Some(ExportLogsPartialSuccess {
                                rejected_log_records: n,
                                error_message: "too old".into(),
                            }),
                        }
                        .encode_to_vec(),
                    ),
                    Some(Answer::Status(code, retry_after)) => {
                        let mut h = HeaderMap::new();
                        if let Some(r) = retry_after {
                            h.insert("retry-after", r.parse().unwrap());
                        }
                        (StatusCode::from_u16(code).unwrap(), h, Vec::new())
                    }
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

struct Exporter {
    logs: Arc<dyn agentcol_component::Consumer<Logs>>,
    component: Arc<dyn agentcol_component::Component>,
    telemetry: agentcol_component::Telemetry,
}

async fn exporter(kind: &str, config: serde_json::Value) -> Exporter {
    let factory = match kind {
        "otlp" => agentcol_exporter_otlp::grpc_factory(),
        _ => agentcol_exporter_otlp::http_factory(),
    };
    let loaded = factory.load_config(config).unwrap();
    let host = Host::for_test(ComponentKind::Exporter, kind, &std::env::temp_dir());
    let telemetry = host.telemetry().clone();
    let signals: SignalSet = [Signal::Logs].into_iter().collect();
    let inst = factory.create(host, &loaded, signals).unwrap();
    inst.component.start().await.unwrap();
    Exporter {
        logs: inst.consumers.logs.unwrap(),
        component: inst.component,
        telemetry,
    }
}

fn metric(t: &agentcol_component::Telemetry, series: &str) -> f64 {
    t.render()
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

async fn until(timeout: Duration, f: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

fn fast_retry() -> serde_json::Value {
    serde_json::json!({"initial_interval": "20ms", "max_interval": "50ms"})
}

#[tokio::test]
async fn http_delivers_with_headers_and_compression() {
    for (compression, encoding) in [
        ("gzip", Some("gzip")),
        ("zstd", Some("zstd")),
        ("none", None),
    ] {
        let port = free_port();
        let seen = Seen::default();
        let _server = http_server(port, seen.clone()).await;
        let e = exporter(
            "otlphttp",
            serde_json::json!({
                "endpoint": format!("http://127.0.0.1:{port}"),
                "compression": compression,
                "headers": {"x-tenant": "acme"},
            }),
        )
        .await;
        e.logs.consume(logs(3, 1)).await.unwrap();
        assert!(until(Duration::from_secs(5), || seen.count() == 1).await);
        let (headers, data) = seen.requests.lock().unwrap()[0].clone();
        assert_eq!(headers.get("x-tenant").unwrap(), "acme");
        assert_eq!(
            headers
                .get("content-encoding")
                .and_then(|v| v.to_str().ok()),
            encoding
        );
        assert_eq!(data, logs(3, 1));
        e.component.shutdown().await.unwrap();
        assert_eq!(
            metric(
                &e.telemetry,
                "agentcol_exporter_sent_log_records_total{exporter=\"otlphttp\"}"
            ),
            3.0
        );
    }
}

#[tokio::test]
async fn http_503_is_retried_after_retry_after_and_delivered_once() {
    let port = free_port();
    let seen = Seen::default();
    seen.script
        .lock()
        .unwrap()
        .push_back(Answer::Status(503, Some("1")));
    let _server = http_server(port, seen.clone()).await;
    let e = exporter(
        "otlphttp",
        serde_json::json!({"endpoint": format!("http://127.0.0.1:{port}"), "retry_on_failure": fast_retry()}),
    )
    .await;
    let started = Instant::now();
    e.logs.consume(logs(2, 7)).await.unwrap();
    assert!(until(Duration::from_secs(5), || seen.count() == 2).await);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After not honoured"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen.tags(), vec![7, 7]);
    assert_eq!(
        metric(
            &e.telemetry,
            "agentcol_exporter_sent_log_records_total{exporter=\"otlphttp\"}"
        ),
        2.0
    );
    e.component.shutdown().await.unwrap();
}

#[tokio::test]
async fn http_400_is_not_retried_and_is_counted() {
    let port = free_port();
    let seen = Seen::default();
    seen.script
        .lock()
        .unwrap()
        .push_back(Answer::Status(400, None));
    let _server = http_server(port, seen.clone()).await;
    let e = exporter(
        "otlphttp",
        serde_json::json!({"endpoint": format!("http://127.0.0.1:{port}"), "retry_on_failure": fast_retry()}),
    )
    .await;
    e.logs.consume(logs(4, 1)).await.unwrap();
    assert!(
        until(Duration::from_secs(5), || metric(
            &e.telemetry,
            "agentcol_exporter_send_failed_log_records_total{exporter=\"otlphttp\"}"
        ) == 4.0)
        .await
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen.count(), 1);
    e.component.shutdown().await.unwrap();
}

#[tokio::test]
async fn partial_success_is_counted() {
    let port = free_port();
    let seen = Seen::default();
    seen.script.lock().unwrap().push_back(Answer::Partial(2));
    let _server = http_server(port, seen.clone()).await;
    let e = exporter(
        "otlphttp",
        serde_json::json!({"endpoint": format!("http://127.0.0.1:{port}")}),
    )
    .await;
    e.logs.consume(logs(5, 1)).await.unwrap();
    e.component.shutdown().await.unwrap();
    assert_eq!(
        metric(
            &e.telemetry,
            "agentcol_exporter_sent_log_records_total{exporter=\"otlphttp\"}"
        ),
        3.0
    );
    assert_eq!(
        metric(
            &e.telemetry,
            "agentcol_exporter_send_failed_log_records_total{exporter=\"otlphttp\"}"
        ),
        2.0
    );
    assert_eq!(seen.count(), 1);
}

#[tokio::test]
async fn a_full_queue_refuses_with_a_retryable_error_then_everything_is_delivered_once() {
    let port = free_port();
    let e = exporter(
        "otlphttp",
        serde_json::json!({
            "endpoint": format!("http://127.0.0.1:{port}"),
            "retry_on_failure": fast_retry(),
            "sending_queue": {"queue_size": 2, "num_consumers": 1},
        }),
    )
    .await;
    // Destination down: one request is taken by the consumer and retried, two wait in the queue.
    e.logs.consume(logs(1, 0)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    e.logs.consume(logs(1, 1)).await.unwrap();
    e.logs.consume(logs(1, 2)).await.unwrap();
    let refused = e.logs.consume(logs(1, 3)).await.unwrap_err();
    assert!(
        matches!(refused, ConsumeError::Retryable { .. }),
        "{refused:?}"
    );
    assert!(refused.reason().contains("queue"));
    assert_eq!(
        metric(
            &e.telemetry,
            "agentcol_exporter_enqueue_failed_log_records_total{exporter=\"otlphttp\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &e.telemetry,
            "agentcol_exporter_queue_capacity{exporter=\"otlphttp\",data_type=\"logs\"}"
        ),
        2.0
    );
    // The destination comes up.
    let seen = Seen::default();
    let _server = http_server(port, seen.clone()).await;
    assert!(until(Duration::from_secs(5), || seen.count() == 3).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut tags = seen.tags();
    tags.sort();
    assert_eq!(tags, vec![0, 1, 2]);
    e.component.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_drains_the_queue() {
    let port = free_port();
    let seen = Seen::default();
    *seen.delay.lock().unwrap() = Duration::from_millis(30);
    let _server = http_server(port, seen.clone()).await;
    let e = exporter(
        "otlphttp",
        serde_json::json!({"endpoint": format!("http://127.0.0.1:{port}"), "sending_queue": {"num_consumers": 2}}),
    )
    .await;
    for i in 0..20 {
        e.logs.consume(logs(1, i)).await.unwrap();
    }
    e.component.shutdown().await.unwrap();
    assert_eq!(seen.count(), 20);
    let refused = e.logs.consume(logs(1, 99)).await.unwrap_err();
    assert!(refused.is_retryable());
}

#[tokio::test]
async fn shutdown_deadline_counts_what_could_not_be_delivered() {
    let port = free_port();
    let e = exporter(
        "otlphttp",
        serde_json::json!({
            "endpoint": format!("http://127.0.0.1:{port}"),
            "retry_on_failure": fast_retry(),
            "shutdown_timeout": "300ms",
            "sending_queue": {"num_consumers": 1},
        }),
    )
    .await;
    for i in 0..3 {
        e.logs.consume(logs(2, i)).await.unwrap();
    }
    e.component.shutdown().await.unwrap();
    assert_eq!(
        metric(
            &e.telemetry,
            "agentcol_exporter_send_failed_log_records_total{exporter=\"otlphttp\"}"
        ),
        6.0
    );
}

#[tokio::test]
async fn without_a_queue_the_answer_is_the_destinations() {
    let port = free_port();
    let seen = Seen::default();
    seen.script
        .lock()
        .unwrap()
        .push_back(Answer::Status(503, Some("2")));
    seen.script
        .lock()
        .unwrap()
        .push_back(Answer::Status(400, None));
    let _server = http_server(port, seen.clone()).await;
    let e = exporter(
        "otlphttp",
        serde_json::json!({"endpoint": format!("http://127.0.0.1:{port}"), "sending_queue": {"enabled": false}}),
    )
    .await;
    let first = e.logs.consume(logs(1, 0)).await.unwrap_err();
    assert_eq!(first.retry_after(), Some(Duration::from_secs(2)));
    assert!(!e.logs.consume(logs(1, 1)).await.unwrap_err().is_retryable());
    e.logs.consume(logs(1, 2)).await.unwrap();
    e.component.shutdown().await.unwrap();
}

struct GrpcSink {
    seen: Arc<Mutex<Vec<(tonic::metadata::MetadataMap, usize)>>>,
    fail_with: Arc<Mutex<VecDeque<tonic::Status>>>,
}

#[tonic::async_trait]
impl LogsService for GrpcSink {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let md = request.metadata().clone();
        let n = request.get_ref().item_count();
        self.seen.lock().unwrap().push((md, n));
        if let Some(s) = self.fail_with.lock().unwrap().pop_front() {
            return Err(s);
        }
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

async fn grpc_server(
    port: u16,
) -> (
    Arc<Mutex<Vec<(tonic::metadata::MetadataMap, usize)>>>,
    Arc<Mutex<VecDeque<tonic::Status>>>,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let fail_with = Arc::new(Mutex::new(VecDeque::new()));
    let svc = LogsServiceServer::new(GrpcSink {
        seen: seen.clone(),
        fail_with: fail_with.clone(),
    })
    .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
    .accept_compressed(tonic::codec::CompressionEncoding::Zstd);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    });
    (seen, fail_with)
}

#[tokio::test]
async fn grpc_delivers_with_metadata_and_retries_unavailable_only() {
    let port = free_port();
    let (seen, fail_with) = grpc_server(port).await;
    fail_with
        .lock()
        .unwrap()
        .push_back(tonic::Status::unavailable("busy"));
    let e = exporter(
        "otlp",
        serde_json::json!({
            "endpoint": format!("127.0.0.1:{port}"),
            "tls": {"insecure": true},
            "compression": "zstd",
            "headers": {"X-Tenant": "acme"},
            "retry_on_failure": fast_retry(),
        }),
    )
    .await;
    e.logs.consume(logs(3, 0)).await.unwrap();
    assert!(until(Duration::from_secs(5), || seen.lock().unwrap().len() == 2).await);
    {
        let s = seen.lock().unwrap();
        assert_eq!(s[1].0.get("x-tenant").unwrap(), "acme");
        assert_eq!(s[1].0.get("grpc-encoding").unwrap(), "zstd");
    }
    // RESOURCE_EXHAUSTED without RetryInfo is permanent.
    fail_with
        .lock()
        .unwrap()
        .push_back(tonic::Status::resource_exhausted("quota"));
    e.logs.consume(logs(2, 1)).await.unwrap();
    assert!(
        until(Duration::from_secs(5), || metric(
            &e.telemetry,
            "agentcol_exporter_send_failed_log_records_total{exporter=\"otlp\"}"
        ) == 2.0)
        .await
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen.lock().unwrap().len(), 3);
    e.component.shutdown().await.unwrap();
    assert_eq!(
        metric(
            &e.telemetry,
            "agentcol_exporter_sent_log_records_total{exporter=\"otlp\"}"
        ),
        3.0
    );
}

#[test]
fn config_faults_are_reported_with_paths() {
    let f = agentcol_exporter_otlp::http_factory();
    let errs = f.load_config(serde_json::json!({})).unwrap_err();
    assert_eq!(errs[0].message, "at least one endpoint must be specified");
    let errs = f
        .load_config(serde_json::json!({"endpoint": "http://x", "sending_queue": {"storage": "file_storage"}}))
        .unwrap_err();
    assert_eq!(errs[0].path, "sending_queue::storage");
    let errs = f
        .load_config(serde_json::json!({"endpoint": "http://x", "timeout": "5q"}))
        .unwrap_err();
    assert_eq!(errs[0].path, "timeout");
    let errs = f
        .load_config(serde_json::json!({"endpoint": "http://x", "bogus": 1}))
        .unwrap_err();
    assert!(errs[0].message.contains("bogus"));
    let g = agentcol_exporter_otlp::grpc_factory();
    assert!(g
        .load_config(serde_json::json!({"endpoint": "h:1"}))
        .is_ok());
    let shown = g
        .load_config(
            serde_json::json!({"endpoint": "h:1", "headers": {"authorization": "Bearer s3cret"}}),
        )
        .unwrap();
    assert!(!shown.shown().to_string().contains("s3cret"));
}
