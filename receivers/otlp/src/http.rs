//! OTLP over HTTP: one handler that checks method, path, content type and encoding in otelcol's
//! order, decodes protobuf or JSON within a size limit (before and after decompression), and
//! answers in the request's encoding.

use std::io::Read;
use std::sync::Arc;

use agentcol_component::lifecycle::BackgroundTask;
use agentcol_component::net::{bearer_ok, bind};
use agentcol_component::telemetry::ReceiverTelemetry;
use agentcol_component::{ComponentError, ConsumeError, Consumer, Consumers, Host, SignalData};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::config::HttpConfig;
use crate::{deliver, DRAIN_DEADLINE};

/// The HTTP half of the receiver.
pub(crate) struct HttpServer {
    host: Host,
    config: HttpConfig,
    consumers: Consumers,
    running: BackgroundTask,
}

struct Shared {
    config: HttpConfig,
    consumers: Consumers,
    telemetry: ReceiverTelemetry,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Proto,
    Json,
}

/// `google.rpc.Status`, the body of every error answer.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// gRPC code numbers used in error bodies.
const INVALID_ARGUMENT: i32 = 3;
const UNIMPLEMENTED: i32 = 12;
const UNAUTHENTICATED: i32 = 16;

fn error(status: StatusCode, code: i32, message: impl Into<String>, enc: Encoding) -> Response {
    let message = message.into();
    let (body, content_type) = match enc {
        Encoding::Proto => (
            RpcStatus {
                code,
                message: message.clone(),
            }
            .encode_to_vec(),
            "application/x-protobuf",
        ),
        Encoding::Json => (
            serde_json::json!({"code": code, "message": message})
                .to_string()
                .into_bytes(),
            "application/json",
        ),
    };
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

impl HttpServer {
    pub(crate) fn new(host: Host, config: HttpConfig, consumers: Consumers) -> Self {
        HttpServer {
            host,
            config,
            consumers,
            running: BackgroundTask::default(),
        }
    }

    pub(crate) async fn start(&self) -> Result<(), ComponentError> {
        let (listener, bound) = bind(&self.config.endpoint).await?;
        let shared = Arc::new(Shared {
            config: self.config.clone(),
            consumers: self.consumers.clone(),
            telemetry: self.host.telemetry().receiver(self.host.id(), "http"),
        });
        let app = Router::new().fallback(handle).with_state(shared);
        let stop = CancellationToken::new();
        let signal = stop.clone();
        let id = self.host.id().clone();
        let status = self.host.status().clone();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(signal.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::error!(component = %id, error = %e, "HTTP server stopped");
                status.failed(format!("HTTP server stopped: {e}"));
            }
        });
        tracing::info!(component = %self.host.id(), transport = "http", endpoint = %bound, "listening");
        self.running.set(stop, task);
        Ok(())
    }

    pub(crate) async fn shutdown(&self) {
        if !self.running.stop(DRAIN_DEADLINE).await {
            tracing::warn!(component = %self.host.id(), "HTTP requests still in flight after the drain deadline; closed");
        }
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = uri.path();
    let c = &shared.config;
    let known = [&c.logs_url_path, &c.traces_url_path, &c.metrics_url_path]
        .iter()
        .any(|p| p.as_str() == path);
    if !known {
        return error(
            StatusCode::NOT_FOUND,
            UNIMPLEMENTED,
            format!("{path} not found"),
            Encoding::Json,
        );
    }
    if method != Method::POST {
        let mut r = error(
            StatusCode::METHOD_NOT_ALLOWED,
            UNIMPLEMENTED,
            format!("{method} method not allowed, supported: [POST]"),
            Encoding::Json,
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let enc = match media.as_str() {
        "application/x-protobuf" => Encoding::Proto,
        "application/json" => Encoding::Json,
        _ => {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                UNIMPLEMENTED,
                format!("{media:?} unsupported media type, supported: [application/json, application/x-protobuf]"),
                Encoding::Json,
            )
        }
    };
    let token = &c.auth.bearer_token;
    if !bearer_ok(
        headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()),
        token,
    ) {
        return error(
            StatusCode::UNAUTHORIZED,
            UNAUTHENTICATED,
            "missing or invalid bearer token",
            enc,
        );
    }
    let raw = match read_limited(body, c.max_request_body_size).await {
        Ok(b) => b,
        Err(message) => return error(StatusCode::BAD_REQUEST, INVALID_ARGUMENT, message, enc),
    };
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let bytes = match decompress(&encoding, raw, c.max_request_body_size) {
        Ok(b) => b,
        Err(message) => return error(StatusCode::BAD_REQUEST, INVALID_ARGUMENT, message, enc),
    };

    if path == c.logs_url_path {
        export(
            &shared.consumers.logs,
            &shared.telemetry,
            &bytes,
            enc,
            ExportLogsServiceResponse::default(),
        )
        .await
    } else if path == c.traces_url_path {
        export(
            &shared.consumers.traces,
            &shared.telemetry,
            &bytes,
            enc,
            ExportTraceServiceResponse::default(),
        )
        .await
    } else {
        export(
            &shared.consumers.metrics,
            &shared.telemetry,
            &bytes,
            enc,
            ExportMetricsServiceResponse::default(),
        )
        .await
    }
}

async fn export<T, R>(
    consumer: &Option<Arc<dyn Consumer<T>>>,
    telemetry: &ReceiverTelemetry,
    bytes: &[u8],
    enc: Encoding,
    response: R,
) -> Response
where
    T: SignalData + Message + DeserializeOwned,
    R: Message + serde::Serialize,
{
    let Some(consumer) = consumer else {
        return error(
            StatusCode::NOT_FOUND,
            UNIMPLEMENTED,
            format!("no pipeline takes {}", T::SIGNAL),
            enc,
        );
    };
    let decoded: Result<T, String> = match enc {
        Encoding::Proto => T::decode(bytes).map_err(|e| format!("cannot decode protobuf: {e}")),
        Encoding::Json => {
            serde_json::from_slice(bytes).map_err(|e| format!("cannot decode JSON: {e}"))
        }
    };
    let data = match decoded {
        Ok(d) => d,
        Err(message) => return error(StatusCode::BAD_REQUEST, INVALID_ARGUMENT, message, enc),
    };
    match deliver(consumer, data, telemetry).await {
        Ok(()) => match enc {
            Encoding::Proto => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                response.encode_to_vec(),
            )
                .into_response(),
            Encoding::Json => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::to_vec(&response).unwrap_or_else(|_| b"{}".to_vec()),
            )
                .into_response(),
        },
        Err(e) => refusal(e, enc),
    }
}

fn refusal(e: ConsumeError, enc: Encoding) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut r = error(status, e.grpc_code(), e.reason(), enc);
    if let Some(after) = e.retry_after() {
        let secs = after.as_secs().max(1).to_string();
        if let Ok(v) = HeaderValue::from_str(&secs) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    r
}

/// Reads the body, refusing it as soon as it grows past `limit`.
async fn read_limited(body: Body, limit: u64) -> Result<Bytes, String> {
    let limited = http_body_util::Limited::new(body, limit as usize);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(format!(
            "request body larger than max_request_body_size ({limit} bytes)"
        )),
        Err(e) => Err(format!("cannot read the request body: {e}")),
    }
}

/// Decompresses within `limit` bytes of output (a small bomb cannot make a large buffer).
fn decompress(encoding: &str, raw: Bytes, limit: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let read = match encoding {
        "" | "identity" | "none" => return Ok(raw.to_vec()),
        "gzip" => flate2::read::GzDecoder::new(&raw[..])
            .take(limit + 1)
            .read_to_end(&mut out),
        "zstd" => match zstd::stream::read::Decoder::new(&raw[..]) {
            Ok(d) => d.take(limit + 1).read_to_end(&mut out),
            Err(e) => Err(e),
        },
        other => {
            return Err(format!(
                "unsupported Content-Encoding {other:?}, supported: [gzip, zstd]"
            ))
        }
    };
    match read {
        Ok(_) if out.len() as u64 > limit => Err(format!(
            "decompressed body larger than max_request_body_size ({limit} bytes)"
        )),
        Ok(_) => Ok(out),
        Err(e) => Err(format!("cannot decompress the body ({encoding}): {e}")),
    }
}
