//! The health check over a real socket on an ephemeral loopback port.

use std::net::SocketAddr;
use std::sync::Arc;

use agentcol_component::{
    Component, ComponentError, ComponentKind, Host, ServiceState, StatusReporter,
};
use agentcol_extension_health_check::{HealthCheck, HealthCheckConfig};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Response {
    status: u16,
    headers: String,
    body: Value,
}

/// One HTTP/1.1 request on a fresh connection.
async fn request(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> Response {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{auth}\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("complete response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    };
    Response {
        status,
        headers: head.to_ascii_lowercase(),
        body,
    }
}

async fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, None).await
}

struct Fixture {
    host: Host,
    hc: Arc<HealthCheck>,
    addr: SocketAddr,
    exporter: StatusReporter,
}

async fn start(config: serde_json::Value) -> Fixture {
    let mut config = config;
    config["endpoint"] = "127.0.0.1:0".into();
    let config: HealthCheckConfig = serde_json::from_value(config).unwrap();
    let host = Host::for_test(
        ComponentKind::Extension,
        "health_check",
        &std::env::temp_dir(),
    );
    let exporter = host
        .status_board()
        .reporter(ComponentKind::Exporter, "otlp/peer".parse().unwrap());
    let hc = Arc::new(HealthCheck::new(host.clone(), config).unwrap());
    assert!(hc.local_addr().is_none());
    hc.start().await.unwrap();
    let addr = hc.local_addr().unwrap();
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    Fixture {
        host,
        hc,
        addr,
        exporter,
    }
}

#[tokio::test]
async fn readiness_follows_the_service_and_its_exporters() {
    let f = start(serde_json::json!({})).await;

    // Starting: not ready, the exporter is listed as starting.
    let r = get(f.addr, "/").await;
    assert_eq!(r.status, 503);
    assert!(
        r.headers.contains("content-type: application/json"),
        "{}",
        r.headers
    );
    assert_eq!(r.body["status"], "Server not available");
    assert_eq!(r.body["service"], "starting");
    assert_eq!(
        r.body["components"]["exporter:otlp/peer"]["status"],
        "starting"
    );

    // Running but the exporter has not reported ok yet: still not ready.
    f.host.status_board().set_service(ServiceState::Running);
    assert_eq!(get(f.addr, "/").await.status, 503);

    f.exporter.ok();
    let r = get(f.addr, "/").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "Server available");
    assert_eq!(r.body["components"]["exporter:otlp/peer"]["status"], "ok");
    assert_eq!(
        r.body["components"]["extension:health_check"]["status"],
        "ok"
    );
    let up_since = r.body["upSince"].as_str().unwrap();
    assert!(
        up_since.ends_with('Z') && up_since.contains('T'),
        "{up_since}"
    );
    let uptime = r.body["uptime"].as_str().unwrap();
    assert!(uptime.ends_with('s'), "{uptime}");
    assert_eq!(get(f.addr, "/readyz").await.status, 200);

    // A degraded exporter makes the collector not ready, with the reason.
    f.exporter.degraded("destination unreachable");
    for path in ["/", "/readyz"] {
        let r = get(f.addr, path).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.body["status"], "Server not available");
        let c = &r.body["components"]["exporter:otlp/peer"];
        assert_eq!(c["status"], "degraded");
        assert_eq!(c["reason"], "destination unreachable");
        // Only the components that are not ok are listed.
        assert!(r.body["components"].get("extension:health_check").is_none());
    }
    f.exporter.ok();
    assert_eq!(get(f.addr, "/").await.status, 200);

    // Shutdown has begun: neither ready nor live.
    f.host.status_board().set_service(ServiceState::Stopping);
    assert_eq!(get(f.addr, "/").await.status, 503);
    f.hc.shutdown().await.unwrap();
}

#[tokio::test]
async fn liveness_holds_until_the_service_stops() {
    let f = start(serde_json::json!({})).await;
    let r = get(f.addr, "/livez").await;
    assert_eq!(r.status, 200);
    assert!(r.headers.contains("content-type: application/json"));
    // A failed exporter does not make the process dead.
    f.exporter.failed("bad credentials");
    f.host.status_board().set_service(ServiceState::Running);
    assert_eq!(get(f.addr, "/livez").await.status, 200);
    assert_eq!(get(f.addr, "/readyz").await.status, 503);
    f.host.status_board().set_service(ServiceState::Stopping);
    let r = get(f.addr, "/livez").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body["service"], "stopping");
    f.hc.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_bearer_token_guards_every_endpoint() {
    let f = start(serde_json::json!({"auth": {"bearer_token": "s3cret"}})).await;
    f.host.status_board().set_service(ServiceState::Running);
    f.exporter.ok();
    for path in ["/", "/readyz", "/livez"] {
        let r = request(f.addr, "GET", path, None).await;
        assert_eq!(r.status, 401, "{path}");
        assert!(r.headers.contains("www-authenticate: bearer"));
        assert_eq!(
            request(f.addr, "GET", path, Some("wrong")).await.status,
            401
        );
        assert_eq!(
            request(f.addr, "GET", path, Some("s3cret")).await.status,
            200
        );
    }
    f.hc.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_configured_path_replaces_the_root() {
    let f = start(serde_json::json!({"path": "/health/status"})).await;
    f.host.status_board().set_service(ServiceState::Running);
    f.exporter.ok();
    assert_eq!(get(f.addr, "/health/status").await.status, 200);
    assert_eq!(get(f.addr, "/").await.status, 404);
    assert_eq!(get(f.addr, "/readyz").await.status, 200);
    let r = request(f.addr, "POST", "/health/status", None).await;
    assert_eq!(r.status, 405);
    assert!(r.headers.contains("allow: get, head"));
    let r = request(f.addr, "HEAD", "/livez", None).await;
    assert_eq!(r.status, 200);
    f.hc.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_closes_the_listener_and_is_idempotent() {
    let f = start(serde_json::json!({})).await;
    assert_eq!(get(f.addr, "/livez").await.status, 200);
    f.hc.shutdown().await.unwrap();
    assert!(tokio::net::TcpStream::connect(f.addr).await.is_err());
    f.hc.shutdown().await.unwrap();

    // Shutdown without start is fine too.
    let host = Host::for_test(
        ComponentKind::Extension,
        "health_check",
        &std::env::temp_dir(),
    );
    let idle = HealthCheck::new(host, HealthCheckConfig::default()).unwrap();
    idle.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_busy_port_is_a_bind_error() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = taken.local_addr().unwrap().to_string();
    let factory = agentcol_extension_health_check::factory();
    let loaded = factory
        .load_config(serde_json::json!({"endpoint": endpoint}))
        .unwrap();
    let host = Host::for_test(
        ComponentKind::Extension,
        "health_check",
        &std::env::temp_dir(),
    );
    let ext = factory.create(host, &loaded).unwrap();
    match ext.start().await {
        Err(ComponentError::Bind { endpoint: e, .. }) => assert_eq!(e, endpoint),
        other => panic!("expected a bind error, got {other:?}"),
    }
    ext.shutdown().await.unwrap();
}
