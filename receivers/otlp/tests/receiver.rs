//! The receiver on real sockets, in front of a test pipeline whose answer each test chooses.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentcol_component::opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use agentcol_component::opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use agentcol_component::opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use agentcol_component::opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use agentcol_component::opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use agentcol_component::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use agentcol_component::opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use agentcol_component::opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use agentcol_component::{
    async_trait, Component, ComponentKind, ConsumeError, Consumer, Consumers, Host, Logs, SignalData, Traces,
};
use prost::Message;

#[derive(Default)]
struct Pipeline {
    got: Mutex<Vec<usize>>,
    answer: Mutex<Option<ConsumeError>>,
}

#[async_trait]
impl<T: SignalData> Consumer<T> for Pipeline {
    async fn consume(&self, data: T) -> Result<(), ConsumeError> {
        if let Some(e) = self.answer.lock().unwrap().clone() {
            return Err(e);
        }
        self.got.lock().unwrap().push(data.item_count());
        Ok(())
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Running {
    component: Arc<dyn Component>,
    pipeline: Arc<Pipeline>,
    telemetry: agentcol_component::Telemetry,
    grpc: u16,
    http: u16,
}

async fn start(extra: serde_json::Value, logs_only: bool) -> Running {
    let (grpc, http) = (free_port(), free_port());
    let mut config = serde_json::json!({"protocols": {
        "grpc": {"endpoint": format!("127.0.0.1:{grpc}")},
        "http": {"endpoint": format!("127.0.0.1:{http}"), "max_request_body_size": 4096},
    }});
    merge(&mut config, extra);
    let factory = agentcol_receiver_otlp::factory();
    let loaded = factory.load_config(config).unwrap();
    let host = Host::for_test(ComponentKind::Receiver, "otlp", &std::env::temp_dir());
    let telemetry = host.telemetry().clone();
    let pipeline = Arc::new(Pipeline::default());
    let mut consumers = Consumers {
        logs: Some(pipeline.clone()),
        ..Default::default()
    };
    if !logs_only {
        consumers.traces = Some(pipeline.clone());
        consumers.metrics = Some(pipeline.clone());
    }
    let component = factory.create(host, &loaded, consumers).unwrap();
    component.start().await.unwrap();
    Running {
        component,
        pipeline,
        telemetry,
        grpc,
        http,
    }
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn logs(n: usize) -> Logs {
    Logs {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord::default(); n],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A raw HTTP/1.1 request; returns (status, head, body).
fn post(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    c.write_all(req.as_bytes()).unwrap();
    let _ = c.write_all(body);
    let mut raw = Vec::new();
    let _ = c.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

/// method, path, headers, body
type Case = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
    Vec<u8>,
);

const PROTO: (&str, &str) = ("content-type", "application/x-protobuf");

async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn http_accepts_proto_json_gzip_and_zstd() {
    let r = start(serde_json::json!({}), false).await;
    let port = r.http;
    let body = logs(2).encode_to_vec();
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&body).unwrap();
        e.finish().unwrap()
    };
    let zs = zstd::encode_all(&body[..], 3).unwrap();
    let json = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
        "name": "s", "kind": 2, "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": 1544712661000000000u64,
        "attributes": [{"key": "n", "value": {"intValue": "42"}}]
    }]}]}]})
    .to_string();
    let statuses = blocking(move || {
        vec![
            post(port, "POST", "/v1/logs", &[PROTO], &body).0,
            post(
                port,
                "POST",
                "/v1/logs",
                &[PROTO, ("content-encoding", "gzip")],
                &gz,
            )
            .0,
            post(
                port,
                "POST",
                "/v1/logs",
                &[PROTO, ("content-encoding", "zstd")],
                &zs,
            )
            .0,
            post(
                port,
                "POST",
                "/v1/traces",
                &[("content-type", "application/json; charset=utf-8")],
                json.as_bytes(),
            )
            .0,
        ]
    })
    .await;
    assert_eq!(statuses, vec![200, 200, 200, 200]);
    assert_eq!(*r.pipeline.got.lock().unwrap(), vec![2, 2, 2, 1]);
    let text = r.telemetry.render();
    assert!(
        text.contains(
            "agentcol_receiver_accepted_log_records_total{receiver=\"otlp\",transport=\"http\"} 6"
        ),
        "{text}"
    );
    assert!(text.contains(
        "agentcol_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"http\"} 1"
    ));
    r.component.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn http_rejects_bad_input_precisely_and_keeps_serving() {
    let r = start(serde_json::json!({}), true).await;
    let port = r.http;
    let good = logs(1).encode_to_vec();
    let results = blocking(move || {
        let mut out = Vec::new();
        let cases: Vec<Case> = vec![
            ("GET", "/v1/logs", vec![], vec![]),
            (
                "POST",
                "/v1/logs",
                vec![("content-type", "text/plain")],
                b"x".to_vec(),
            ),
            (
                "POST",
                "/v1/logs",
                vec![PROTO],
                good[..good.len() - 1].to_vec(),
            ),
            (
                "POST",
                "/v1/logs",
                vec![("content-type", "application/json")],
                b"{".to_vec(),
            ),
            (
                "POST",
                "/v1/logs",
                vec![PROTO, ("content-encoding", "br")],
                good.clone(),
            ),
            (
                "POST",
                "/v1/logs",
                vec![PROTO, ("content-encoding", "gzip")],
                b"not gzip".to_vec(),
            ),
            ("POST", "/v1/logs", vec![PROTO], vec![0u8; 5000]),
            ("POST", "/v1/nope", vec![PROTO], good.clone()),
            ("POST", "/v1/traces", vec![PROTO], good.clone()),
        ];
        for (method, path, headers, body) in cases {
            out.push(post(port, method, path, &headers, &body).0);
            out.push(post(port, "POST", "/v1/logs", &[PROTO], &good).0);
        }
        out
    })
    .await;
    assert_eq!(
        results,
        vec![
            405, 200, 415, 200, 400, 200, 400, 200, 400, 200, 400, 200, 400, 200, 404, 200, 404,
            200
        ]
    );
    r.component.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn zip_bombs_are_refused() {
    let r = start(serde_json::json!({}), true).await;
    let port = r.http;
    let bomb = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![0u8; 2 * 1024 * 1024]).unwrap();
        e.finish().unwrap()
    };
    assert!(bomb.len() < 4096);
    let (status, _, body) = blocking(move || {
        post(
            port,
            "POST",
            "/v1/logs",
            &[PROTO, ("content-encoding", "gzip")],
            &bomb,
        )
    })
    .await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("decompressed body larger"));
    r.component.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_map_to_retryable_and_permanent_statuses() {
    let r = start(serde_json::json!({}), true).await;
    let port = r.http;
    *r.pipeline.answer.lock().unwrap() =
        Some(ConsumeError::throttled("memory", Duration::from_secs(3)));
    let body = logs(2).encode_to_vec();
    let b = body.clone();
    let (status, head, _) = blocking(move || post(port, "POST", "/v1/logs", &[PROTO], &b)).await;
    assert_eq!(status, 503);
    assert!(head.contains("retry-after: 3"), "{head}");
    let mut client = LogsServiceClient::connect(format!("http://127.0.0.1:{}", r.grpc))
        .await
        .unwrap();
    let err = client.export(logs(2)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    // The throttle hint travels as a google.rpc.RetryInfo detail: 3 s, field 1 of the Duration.
    let details = err.details();
    assert!(!details.is_empty(), "no RetryInfo detail");
    let text = String::from_utf8_lossy(details);
    assert!(text.contains("google.rpc.RetryInfo"), "{text}");
    assert!(
        details.windows(2).any(|w| w == [0x08, 0x03]),
        "3 s delay not encoded"
    );

    *r.pipeline.answer.lock().unwrap() = Some(ConsumeError::permanent("bad"));
    let b = body.clone();
    let (status, _, _) = blocking(move || post(port, "POST", "/v1/logs", &[PROTO], &b)).await;
    assert_eq!(status, 500);
    assert_eq!(
        client.export(logs(2)).await.unwrap_err().code(),
        tonic::Code::Internal
    );
    let text = r.telemetry.render();
    assert!(
        text.contains(
            "agentcol_receiver_refused_log_records_total{receiver=\"otlp\",transport=\"http\"} 4"
        ),
        "{text}"
    );
    assert!(text.contains(
        "agentcol_receiver_refused_log_records_total{receiver=\"otlp\",transport=\"grpc\"} 4"
    ));
    r.component.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_serves_every_signal_with_compression() {
    let r = start(serde_json::json!({}), false).await;
    let url = format!("http://127.0.0.1:{}", r.grpc);
    let mut l = LogsServiceClient::connect(url.clone())
        .await
        .unwrap()
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    l.export(logs(3)).await.unwrap();
    let mut t = TraceServiceClient::connect(url.clone())
        .await
        .unwrap()
        .send_compressed(tonic::codec::CompressionEncoding::Zstd);
    t.export(Traces {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span::default(); 2],
                ..Default::default()
            }],
            ..Default::default()
        }],
    })
    .await
    .unwrap();
    // Empty requests are acknowledged without reaching the pipeline.
    let mut m = MetricsServiceClient::connect(url).await.unwrap();
    m.export(ExportMetricsServiceRequest::default())
        .await
        .unwrap();
    assert_eq!(*r.pipeline.got.lock().unwrap(), vec![3, 2]);
    let _ = (
        ExportLogsServiceRequest::default(),
        ExportTraceServiceRequest::default(),
    );
    r.component.shutdown().await.unwrap();
    // Shut down twice is fine.
    r.component.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signal_without_a_pipeline_is_unimplemented() {
    let r = start(serde_json::json!({}), true).await;
    let mut t = TraceServiceClient::connect(format!("http://127.0.0.1:{}", r.grpc))
        .await
        .unwrap();
    let err = t
        .export(ExportTraceServiceRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    r.component.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_tokens_are_required_when_configured() {
    let auth = serde_json::json!({"auth": {"bearer_token": "s3cret"}});
    let r = start(
        serde_json::json!({"protocols": {"grpc": auth.clone(), "http": auth}}),
        true,
    )
    .await;
    let port = r.http;
    let body = logs(1).encode_to_vec();
    let statuses = blocking(move || {
        vec![
            post(port, "POST", "/v1/logs", &[PROTO], &body).0,
            post(
                port,
                "POST",
                "/v1/logs",
                &[PROTO, ("authorization", "Bearer nope")],
                &body,
            )
            .0,
            post(
                port,
                "POST",
                "/v1/logs",
                &[PROTO, ("authorization", "Bearer s3cret")],
                &body,
            )
            .0,
        ]
    })
    .await;
    assert_eq!(statuses, vec![401, 401, 200]);
    let mut client = LogsServiceClient::connect(format!("http://127.0.0.1:{}", r.grpc))
        .await
        .unwrap();
    assert_eq!(
        client.export(logs(1)).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
    let mut req = tonic::Request::new(logs(1));
    req.metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    client.export(req).await.unwrap();
    r.component.shutdown().await.unwrap();
}

#[test]
fn config_rules() {
    let f = agentcol_receiver_otlp::factory();
    let e = f.load_config(serde_json::json!({})).unwrap_err();
    assert_eq!(e[0].path, "protocols");
    let c = f
        .load_config(serde_json::json!({"protocols": {"grpc": null}}))
        .unwrap();
    assert_eq!(c.shown()["protocols"]["grpc"]["endpoint"], "127.0.0.1:4317");
    assert!(c.shown()["protocols"].get("http").is_none());
    let e = f
        .load_config(serde_json::json!({"protocols": {"http": {"endpoint": "0.0.0.0:4318"}}}))
        .unwrap_err();
    assert_eq!(e[0].path, "protocols::http::endpoint");
    let e = f
        .load_config(serde_json::json!({"protocols": {"grpc": {"bogus": 1}}}))
        .unwrap_err();
    assert!(e[0].message.contains("bogus"));
    let c = f
        .load_config(serde_json::json!({"protocols": {"http": {"endpoint": "0.0.0.0:4318", "auth": {"bearer_token": "t"}}}}))
        .unwrap();
    assert!(!c.shown().to_string().contains("\"t\""));
}
