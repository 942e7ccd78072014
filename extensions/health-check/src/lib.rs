//! The `health_check` extension: liveness and readiness over HTTP.
//!
//! It serves three read-only endpoints, answered from the service's
//! [`StatusBoard`](agentcol_component::StatusBoard):
//!
//! * `GET {path}` (default `/`) and `GET /readyz`: readiness. `200 {"status":"Server available",
//!   "upSince":…,"uptime":…,"components":{…}}` while the service is running and every exporter
//!   reports `ok`; otherwise `503 {"status":"Server not available",…}` with the components that
//!   are not ok and why. The body follows otelcol's `health_check` (v1); `components`, `service`
//!   and the per-exporter rule come from `healthcheckv2`'s idea of using component status, so a
//!   collector whose destination is down stops looking ready.
//! * `GET /livez`: liveness. `200` while the process serves and the service is not stopping,
//!   `503` once shutdown has begun.
//!
//! Like every agentcol listener it binds loopback by default and requires a bearer token
//! elsewhere (`auth.bearer_token`, checked on every endpoint). Not supported: TLS,
//! `response_body` and `check_collector_pipeline` (otelcol's v1 extension documents the latter
//! as broken).
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use agentcol_component::config::ConfigError;
use agentcol_component::lifecycle::{Component, ComponentError};
use agentcol_component::net::{self, AuthConfig};
use agentcol_component::{
    async_trait, erase_extension, module_name, AnyExtensionFactory, ComponentConfig, ComponentKind,
    ComponentStatus, CreateError, ExtensionFactory, Host, ServiceState,
};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The liveness endpoint.
pub const LIVEZ_PATH: &str = "/livez";
/// The readiness endpoint (in addition to the configured `path`).
pub const READYZ_PATH: &str = "/readyz";
/// How long `shutdown` waits for open connections before closing them.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The `health_check` extension's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Where to listen (`host:port`). Loopback unless `auth.bearer_token` is set.
    pub endpoint: String,
    /// The readiness path (otelcol's `path`).
    pub path: String,
    /// Bearer-token authentication, required on non-loopback endpoints.
    pub auth: AuthConfig,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            endpoint: "127.0.0.1:13133".into(),
            path: "/".into(),
            auth: AuthConfig::default(),
        }
    }
}

impl ComponentConfig for HealthCheckConfig {
    fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errors = net::validate_listener(&self.endpoint, &self.auth, "endpoint");
        if !self.path.starts_with('/') {
            errors.push(ConfigError::new(
                "path",
                format!("path {:?} must start with \"/\"", self.path),
            ));
        } else if self.path == LIVEZ_PATH {
            errors.push(ConfigError::new(
                "path",
                format!("path {LIVEZ_PATH:?} is reserved for the liveness check"),
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Factory of the `health_check` extension.
#[derive(Debug, Clone, Copy, Default)]
pub struct HealthCheckFactory;

impl ExtensionFactory for HealthCheckFactory {
    type Config = HealthCheckConfig;

    fn type_name(&self) -> &'static str {
        "health_check"
    }

    fn create(
        &self,
        host: Host,
        config: HealthCheckConfig,
    ) -> Result<Arc<dyn Component>, CreateError> {
        Ok(Arc::new(HealthCheck::new(host, config)?))
    }
}

/// The `health_check` extension factory, erased for the registry.
pub fn factory() -> Arc<dyn AnyExtensionFactory> {
    erase_extension(HealthCheckFactory, module_name!())
}

/// One `health_check` server.
#[derive(Debug)]
pub struct HealthCheck {
    host: Host,
    config: HealthCheckConfig,
    running: Mutex<Option<Running>>,
}

#[derive(Debug)]
struct Running {
    bound: SocketAddr,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl HealthCheck {
    /// A server for `config` (validated); it listens from `start` on.
    pub fn new(host: Host, config: HealthCheckConfig) -> Result<Self, CreateError> {
        net::parse_endpoint(&config.endpoint).map_err(CreateError::InvalidConfig)?;
        Ok(HealthCheck {
            host,
            config,
            running: Mutex::new(None),
        })
    }

    /// The address the server is bound to, once started (useful with port `0`).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.lock().as_ref().map(|r| r.bound)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Component for HealthCheck {
    async fn start(&self) -> Result<(), ComponentError> {
        if self.lock().is_some() {
            return Ok(());
        }
        let (listener, bound) = net::bind(&self.config.endpoint).await?;
        let ctx = Arc::new(Ctx {
            host: self.host.clone(),
            path: self.config.path.clone(),
            auth: self.config.auth.clone(),
        });
        let app = Router::new().fallback(handle).with_state(ctx);
        let stop = CancellationToken::new();
        let serve =
            axum::serve(listener, app).with_graceful_shutdown(stop.clone().cancelled_owned());
        let id = self.host.id().clone();
        tracing::info!(component = %id, transport = "http", endpoint = %bound, "listening");
        let task = tokio::spawn(async move {
            if let Err(e) = serve.await {
                tracing::error!(component = %id, error = %e, "health check server failed");
            }
        });
        let mut running = self.lock();
        if running.is_some() {
            // Started twice concurrently: keep the first server.
            stop.cancel();
            return Ok(());
        }
        *running = Some(Running {
            bound,
            stop,
            task: Some(task),
        });
        drop(running);
        self.host.status().report(ComponentStatus::Ok);
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ComponentError> {
        let task = {
            let mut running = self.lock();
            match running.as_mut() {
                Some(r) => {
                    r.stop.cancel();
                    r.task.take()
                }
                None => None,
            }
        };
        if let Some(mut task) = task {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                task.abort();
                let _ = task.await;
            }
        }
        Ok(())
    }
}

/// What every request handler needs.
struct Ctx {
    host: Host,
    path: String,
    auth: AuthConfig,
}

async fn handle(
    State(ctx): State<Arc<Ctx>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    if !net::bearer_ok(authorization, &ctx.auth.bearer_token) {
        let mut r = json_response(StatusCode::UNAUTHORIZED, &json!({"status": "Unauthorized"}));
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    let path = uri.path();
    let known = path == ctx.path || path == READYZ_PATH || path == LIVEZ_PATH;
    if !known {
        return json_response(StatusCode::NOT_FOUND, &json!({"status": "Not Found"}));
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"status": "Method Not Allowed"}),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let (status, body) = if path == LIVEZ_PATH {
        liveness(&ctx.host)
    } else {
        readiness(&ctx.host)
    };
    json_response(status, &body)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.into_response()
}

fn service_name(state: ServiceState) -> &'static str {
    match state {
        ServiceState::Starting => "starting",
        ServiceState::Running => "running",
        ServiceState::Stopping => "stopping",
    }
}

fn liveness(host: &Host) -> (StatusCode, Value) {
    let service = host.status_board().service();
    let (code, status) = match service {
        ServiceState::Stopping => (StatusCode::SERVICE_UNAVAILABLE, "Server stopping"),
        _ => (StatusCode::OK, "Server alive"),
    };
    (
        code,
        json!({"status": status, "service": service_name(service)}),
    )
}

fn readiness(host: &Host) -> (StatusCode, Value) {
    let board = host.status_board();
    let service = board.service();
    let snapshot = board.snapshot();
    let exporters_ok = snapshot
        .iter()
        .filter(|(kind, _, _)| *kind == ComponentKind::Exporter)
        .all(|(_, _, entry)| entry.status == ComponentStatus::Ok);
    let ready = service == ServiceState::Running && exporters_ok;
    let mut components = Map::new();
    for (kind, id, entry) in &snapshot {
        if !ready && entry.status == ComponentStatus::Ok {
            continue;
        }
        let mut c = Map::new();
        c.insert("status".into(), entry.status.name().into());
        if let Some(reason) = entry.status.reason() {
            c.insert("reason".into(), reason.into());
        }
        c.insert("since".into(), rfc3339(entry.since).into());
        components.insert(format!("{kind}:{id}"), Value::Object(c));
    }
    let up_since = board.started_at();
    let uptime = SystemTime::now()
        .duration_since(up_since)
        .unwrap_or_default();
    let (code, status) = if ready {
        (StatusCode::OK, "Server available")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Server not available")
    };
    (
        code,
        json!({
            "status": status,
            "upSince": rfc3339(up_since),
            "uptime": go_duration(uptime),
            "service": service_name(service),
            "components": components,
        }),
    )
}

/// A UTC timestamp in RFC 3339 with as many fractional digits as needed (Go's `RFC3339Nano`).
fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        let _ = write!(out, ".{}", frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A duration as Go's `time.Duration.String` writes it: `1h2m3.5s`, `150ms`, `0s`.
fn go_duration(d: std::time::Duration) -> String {
    fn with_fraction(value: u128, unit: u128, digits: usize, suffix: &str) -> String {
        let whole = value / unit;
        let frac = value % unit;
        if frac == 0 {
            format!("{whole}{suffix}")
        } else {
            let f = format!("{frac:0digits$}");
            format!("{whole}.{}{suffix}", f.trim_end_matches('0'))
        }
    }
    let ns = d.as_nanos();
    match ns {
        0 => "0s".into(),
        1..=999 => format!("{ns}ns"),
        1_000..=999_999 => with_fraction(ns, 1_000, 3, "µs"),
        1_000_000..=999_999_999 => with_fraction(ns, 1_000_000, 6, "ms"),
        _ => {
            let secs = ns / 1_000_000_000;
            let (h, m) = (secs / 3600, (secs / 60) % 60);
            let mut out = String::new();
            if h > 0 {
                let _ = write!(out, "{h}h");
            }
            if h > 0 || m > 0 {
                let _ = write!(out, "{m}m");
            }
            out + &with_fraction(ns % 60_000_000_000, 1_000_000_000, 9, "s")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_nanos(15)), "15ns");
        assert_eq!(go_duration(Duration::from_nanos(1_500)), "1.5µs");
        assert_eq!(go_duration(Duration::from_millis(150)), "150ms");
        assert_eq!(go_duration(Duration::from_micros(1_234_567)), "1.234567s");
        assert_eq!(go_duration(Duration::from_secs(62)), "1m2s");
        assert_eq!(go_duration(Duration::from_millis(3_723_500)), "1h2m3.5s");
        assert_eq!(go_duration(Duration::from_secs(7200)), "2h0m0s");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199) + Duration::from_millis(250);
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.25Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn config_defaults_and_validation() {
        use agentcol_component::config::decode;
        let c = decode::<HealthCheckConfig>(serde_json::Value::Null).unwrap();
        assert_eq!(c.endpoint, "127.0.0.1:13133");
        assert_eq!(c.path, "/");
        let errs =
            decode::<HealthCheckConfig>(json!({"endpoint": "0.0.0.0:13133", "path": "health"}))
                .unwrap_err();
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["endpoint", "path"], "{errs:?}");
        assert!(errs[0].message.contains("bearer_token"));
        assert!(decode::<HealthCheckConfig>(json!({"path": "/livez"})).is_err());
        assert!(decode::<HealthCheckConfig>(json!({"check_collector_pipeline": {}})).is_err());
        let c = decode::<HealthCheckConfig>(
            json!({"endpoint": "0.0.0.0:13133", "auth": {"bearer_token": "t"}}),
        )
        .unwrap();
        assert_eq!(c.auth.bearer_token.expose(), "t");
    }
}
