//! The `hook` receiver: both agents' hook calls as canonical agent events.
//!
//! Hooks are the agents' real-time channel: they fire at session start, on every prompt, before
//! and after every tool call and at the end of every turn, while OTLP arrives in batches. This
//! crate holds everything about that channel:
//!
//! * the receiver: an HTTP endpoint (default `127.0.0.1:4319`) taking hook JSON at
//!   `POST /hook/codex` and `POST /hook/claude` (Claude Code's `"type": "http"` hooks post there
//!   directly; the agent may also be named by an `x-agentcol-agent` header on `POST /hook`),
//!   normalised by [`normalize`] and sent down the logs pipeline. It answers `204 No Content`
//!   with no body once the pipeline accepted the records: an empty success is what leaves both
//!   agents' behaviour untouched. When the pipeline refuses, the call goes to the spool and is
//!   still answered 204, so an agent never sees a failed hook; malformed bodies get a 4xx with
//!   the reason (no real agent sends those);
//! * [`spool`]: undelivered calls under `<root>/spool/hook/`, drained by the receiver at start
//!   and every `spool.check_interval`;
//! * [`shim`]: `agentcol hook`, the command-hook shim (Codex hooks; Claude `SessionStart`);
//! * [`setup`]: `agentcol setup`, which installs and removes the hooks and OTLP settings of
//!   both agents.

pub mod normalize;
pub mod setup;
pub mod shim;
pub mod spool;

use std::sync::Arc;

use agentcol_component::agent::{Agent, AgentRecord};
use agentcol_component::config::Secret;
use agentcol_component::lifecycle::BackgroundTask;
use agentcol_component::net::{bearer_ok, bind, validate_listener, AuthConfig};
use agentcol_component::telemetry::{CounterFamily, Labels, ReceiverTelemetry};
use agentcol_component::{
    erase_receiver, module_name, AnyReceiverFactory, Component, ComponentConfig, ComponentError,
    ConfigError, Consumer, Consumers, CreateError, Host, Logs, ReceiverFactory, Signal,
    SignalStability, Stability,
};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::spool::Spool;

/// The default listen address.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:4319";

/// `receivers.hook`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HookReceiverConfig {
    /// Where to listen.
    pub endpoint: String,
    /// Bearer token required from clients (needed off loopback).
    pub auth: AuthConfig,
    /// Largest accepted body in bytes.
    pub max_request_body_size: u64,
    /// The spool of undelivered hook calls.
    pub spool: SpoolConfig,
}

/// `spool`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolConfig {
    /// Drain `<root>/spool/hook/` (at start and every `check_interval`).
    pub enabled: bool,
    /// How often to look for spooled calls while running.
    pub check_interval: agentcol_component::Duration,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            enabled: true,
            check_interval: agentcol_component::Duration::from_secs(5),
        }
    }
}

impl Default for HookReceiverConfig {
    fn default() -> Self {
        HookReceiverConfig {
            endpoint: DEFAULT_ENDPOINT.into(),
            auth: AuthConfig::default(),
            max_request_body_size: 4 * 1024 * 1024,
            spool: SpoolConfig::default(),
        }
    }
}

impl ComponentConfig for HookReceiverConfig {
    fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errors = validate_listener(&self.endpoint, &self.auth, "endpoint");
        if self.max_request_body_size == 0 {
            errors.push(ConfigError::new(
                "max_request_body_size",
                "must be greater than zero",
            ));
        }
        if self.spool.enabled && self.spool.check_interval.is_zero() {
            errors.push(ConfigError::new(
                "spool::check_interval",
                "must be greater than zero",
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Factory of the `hook` receiver.
#[derive(Debug, Clone, Copy, Default)]
pub struct HookReceiverFactory;

impl ReceiverFactory for HookReceiverFactory {
    type Config = HookReceiverConfig;

    fn type_name(&self) -> &'static str {
        "hook"
    }

    fn stability(&self) -> SignalStability {
        SignalStability::logs_only(Stability::Alpha)
    }

    fn create(
        &self,
        host: Host,
        config: HookReceiverConfig,
        consumers: Consumers,
    ) -> Result<Arc<dyn Component>, CreateError> {
        let logs = consumers.logs.ok_or_else(|| {
            CreateError::InvalidConfig("the hook receiver takes logs pipelines only".into())
        })?;
        let t = host.telemetry();
        let counters = Counters {
            requests: t.counter(
                "agentcol_receiver_hook_requests",
                "Hook calls received, by agent and outcome (accepted, spooled, rejected).",
            ),
            native: t.counter(
                "agentcol_receiver_hook_native_records",
                "Hook calls with no canonical meaning (or missing an id), kept as agent.native.",
            ),
            fallback: t.counter(
                "agentcol_receiver_hook_fallback_keys",
                "Canonical events from hooks keyed with a fallback because the hook has no id.",
            ),
            spool: t.counter(
                "agentcol_receiver_hook_spool",
                "Spooled hook calls, by outcome (delivered, quarantined, dropped).",
            ),
            receiver: host.id().to_string(),
        };
        let shared = Arc::new(Shared {
            logs,
            counters,
            spool: Spool::under(host.root()),
            draining: Mutex::new(()),
            telemetry: t.receiver(host.id(), "http"),
            token: config.auth.bearer_token.clone(),
            max_body: config.max_request_body_size,
        });
        Ok(Arc::new(HookReceiver {
            host,
            config,
            shared,
            server: BackgroundTask::default(),
            drainer: BackgroundTask::default(),
        }))
    }
}

/// The `hook` receiver factory, erased for the registry.
pub fn factory() -> Arc<dyn AnyReceiverFactory> {
    erase_receiver(HookReceiverFactory, module_name!())
}

struct Counters {
    requests: CounterFamily,
    native: CounterFamily,
    fallback: CounterFamily,
    spool: CounterFamily,
    receiver: String,
}

impl Counters {
    fn labels(&self, extra: &[(&str, &str)]) -> Labels {
        let mut l = vec![("receiver".to_string(), self.receiver.clone())];
        l.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        l
    }

    fn request(&self, agent: &str, outcome: &str) {
        self.requests
            .get_or_create(&self.labels(&[("agent", agent), ("outcome", outcome)]))
            .inc();
    }

    fn spooled(&self, outcome: &str, n: u64) {
        if n > 0 {
            self.spool
                .get_or_create(&self.labels(&[("outcome", outcome)]))
                .inc_by(n);
        }
    }
}

struct Shared {
    logs: Arc<dyn Consumer<Logs>>,
    counters: Counters,
    spool: Spool,
    /// One drain at a time.
    draining: Mutex<()>,
    telemetry: ReceiverTelemetry,
    token: Secret,
    max_body: u64,
}

/// Why a hook call was not accepted as given.
enum Failure {
    /// The body is not a hook payload (not JSON, not an object): the client's fault.
    Payload(String),
    /// The pipeline refused; `true` when a retry can help.
    Refused(String, bool),
}

impl Shared {
    /// Normalises one call and hands it to the pipeline.
    async fn deliver(&self, agent: Agent, time: u64, body: &[u8]) -> Result<usize, Failure> {
        let n =
            normalize::normalize(agent, body, time).map_err(|e| Failure::Payload(e.to_string()))?;
        let c = &self.counters;
        if n.native {
            c.native.get_or_create(&c.labels(&[])).inc();
        }
        if n.fallback {
            c.fallback.get_or_create(&c.labels(&[])).inc();
        }
        let items = n.records.len();
        let records = n
            .records
            .into_iter()
            .map(AgentRecord::into_log_record)
            .collect();
        match self
            .logs
            .consume(agentcol_component::data::logs_from(records))
            .await
        {
            Ok(()) => {
                self.telemetry.accepted(Signal::Logs, items);
                Ok(items)
            }
            Err(e) => {
                self.telemetry.refused(Signal::Logs, items);
                Err(Failure::Refused(e.to_string(), e.is_retryable()))
            }
        }
    }

    /// Delivers every spooled call, oldest first, until the spool is empty or the pipeline
    /// refuses (then the rest waits for the next drain).
    async fn drain(&self, id: &str) {
        let _one = self.draining.lock().await;
        let dropped = self.spool.take_dropped();
        if dropped > 0 {
            tracing::warn!(component = %id, dropped, "hook calls were dropped because the spool was full");
            self.counters.spooled("dropped", dropped);
        }
        let list = match self.spool.list() {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(component = %id, error = %e, "cannot read the hook spool");
                return;
            }
        };
        let (mut delivered, mut quarantined) = (0u64, 0u64);
        for path in list {
            let entry = match self.spool.read(&path) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(component = %id, error = %e, "unreadable spool entry moved to bad/");
                    if self.spool.quarantine(&path).is_ok() {
                        quarantined += 1;
                    }
                    continue;
                }
            };
            match self.deliver(entry.agent, entry.time, &entry.body).await {
                Ok(_) => {
                    if let Err(e) = self.spool.remove(&path) {
                        tracing::warn!(component = %id, error = %e, "delivered spool entry not removed; it will be delivered again (and deduplicated)");
                    }
                    delivered += 1;
                }
                Err(Failure::Payload(reason)) => {
                    tracing::warn!(component = %id, entry = %path.display(), %reason, "spooled hook call is not a hook payload; moved to bad/");
                    self.counters.request(entry.agent.as_str(), "rejected");
                    if self.spool.quarantine(&path).is_ok() {
                        quarantined += 1;
                    }
                }
                Err(Failure::Refused(reason, true)) => {
                    tracing::debug!(component = %id, %reason, "pipeline refused a spooled hook call; retrying later");
                    break;
                }
                Err(Failure::Refused(reason, false)) => {
                    tracing::warn!(component = %id, entry = %path.display(), %reason, "pipeline refused a spooled hook call for good; moved to bad/");
                    if self.spool.quarantine(&path).is_ok() {
                        quarantined += 1;
                    }
                }
            }
        }
        if delivered > 0 {
            tracing::info!(component = %id, delivered, "delivered spooled hook calls");
        }
        self.counters.spooled("delivered", delivered);
        self.counters.spooled("quarantined", quarantined);
    }
}

struct HookReceiver {
    host: Host,
    config: HookReceiverConfig,
    shared: Arc<Shared>,
    server: BackgroundTask,
    drainer: BackgroundTask,
}

#[agentcol_component::async_trait]
impl Component for HookReceiver {
    async fn start(&self) -> Result<(), ComponentError> {
        let (listener, bound) = bind(&self.config.endpoint).await?;
        let app = Router::new()
            .fallback(handle)
            .with_state(self.shared.clone());
        let stop = CancellationToken::new();
        let signal = stop.clone();
        let id = self.host.id().clone();
        let status = self.host.status().clone();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(signal.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::error!(component = %id, error = %e, "hook server stopped");
                status.failed(format!("hook server stopped: {e}"));
            }
        });
        tracing::info!(component = %self.host.id(), endpoint = %bound, "listening for agent hooks");
        self.server.set(stop, task);

        if self.config.spool.enabled {
            let shared = self.shared.clone();
            let every = self.config.spool.check_interval.get();
            let stop = CancellationToken::new();
            let signal = stop.clone();
            let id = self.host.id().to_string();
            let task = tokio::spawn(async move {
                loop {
                    shared.drain(&id).await;
                    tokio::select! {
                        _ = signal.cancelled() => break,
                        _ = tokio::time::sleep(every) => {}
                    }
                }
            });
            self.drainer.set(stop, task);
        }
        self.host.status().ok();
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ComponentError> {
        let deadline = std::time::Duration::from_secs(30);
        let (server, drainer) =
            tokio::join!(self.server.stop(deadline), self.drainer.stop(deadline));
        if !server || !drainer {
            tracing::warn!(component = %self.host.id(), "hook calls still in flight after the drain deadline; closed");
        }
        Ok(())
    }
}

fn text_error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": message.into() }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The agent a request is for: the last path segment (`/hook/codex`, `/hook/claude`), or the
/// `x-agentcol-agent` header on `/hook`.
fn agent_of(path: &str, headers: &HeaderMap) -> Option<Agent> {
    let named = |s: &str| match s.to_ascii_lowercase().as_str() {
        "codex" => Some(Agent::Codex),
        "claude" | "claude_code" | "claude-code" => Some(Agent::ClaudeCode),
        _ => None,
    };
    let mut parts = path.trim_matches('/').split('/');
    if parts.next() != Some("hook") {
        return None;
    }
    match parts.next() {
        Some(a) => named(a),
        None => headers
            .get("x-agentcol-agent")
            .and_then(|v| v.to_str().ok())
            .and_then(named),
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
    let Some(agent) = agent_of(path, &headers) else {
        return text_error(
            StatusCode::NOT_FOUND,
            format!("{path} not found: post hooks to /hook/codex or /hook/claude"),
        );
    };
    let name = agent.as_str();
    if method != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "POST")],
            format!("{method} method not allowed, supported: [POST]"),
        )
            .into_response();
    }
    if !bearer_ok(
        headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()),
        &shared.token,
    ) {
        shared.counters.request(name, "rejected");
        return text_error(StatusCode::UNAUTHORIZED, "missing or invalid bearer token");
    }
    let limit = shared.max_body;
    let bytes = match http_body_util::Limited::new(body, limit as usize)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            shared.counters.request(name, "rejected");
            return text_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("hook body larger than max_request_body_size ({limit} bytes)"),
            );
        }
        Err(e) => {
            shared.counters.request(name, "rejected");
            return text_error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            );
        }
    };
    let time = headers
        .get(shim::TIME_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|t| *t > 0)
        .unwrap_or_else(shim::now_ns);
    match shared.deliver(agent, time, &bytes).await {
        Ok(_) => {
            shared.counters.request(name, "accepted");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(Failure::Payload(reason)) => {
            shared.counters.request(name, "rejected");
            text_error(StatusCode::BAD_REQUEST, reason)
        }
        Err(Failure::Refused(reason, false)) => {
            shared.counters.request(name, "refused");
            tracing::warn!(%reason, "pipeline refused a hook call for good");
            text_error(StatusCode::UNPROCESSABLE_ENTITY, reason)
        }
        Err(Failure::Refused(reason, true)) => match shared.spool.append(agent, time, &bytes) {
            Ok(_) => {
                tracing::debug!(%reason, "pipeline refused a hook call; spooled");
                shared.counters.request(name, "spooled");
                StatusCode::NO_CONTENT.into_response()
            }
            Err(e) => {
                shared.counters.request(name, "refused");
                tracing::warn!(%reason, error = %e, "pipeline refused a hook call and the spool cannot take it");
                text_error(StatusCode::SERVICE_UNAVAILABLE, reason)
            }
        },
    }
}

#[cfg(test)]
mod tests;
