//! The receiver's configuration, with otelcol's keys and defaults.

use agentcol_component::config::present_as_default;
use agentcol_component::net::{validate_listener, AuthConfig};
use agentcol_component::{ComponentConfig, ConfigError};
use serde::{Deserialize, Serialize};

/// `receivers.otlp`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpReceiverConfig {
    /// Which protocols to serve; a protocol is on when its key is present.
    pub protocols: Protocols,
    /// What to do with coding-agent telemetry (Codex, Claude Code).
    pub agents: AgentsConfig,
}

/// `agents`: normalisation of agent OTLP into canonical agent events.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentsConfig {
    /// Replace agent log records by canonical agent events (native attributes kept) and derive
    /// turn events from agent spans onto the logs pipeline. Other OTLP is never touched.
    pub normalize: bool,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        AgentsConfig { normalize: true }
    }
}

/// `protocols`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Protocols {
    /// OTLP over gRPC.
    #[serde(
        deserialize_with = "present_as_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub grpc: Option<GrpcConfig>,
    /// OTLP over HTTP.
    #[serde(
        deserialize_with = "present_as_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub http: Option<HttpConfig>,
}

/// `protocols.grpc`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcConfig {
    /// Where to listen.
    pub endpoint: String,
    /// Largest accepted message, in MiB.
    pub max_recv_msg_size_mib: u32,
    /// Bearer token required from clients (needed off loopback).
    pub auth: AuthConfig,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            endpoint: "127.0.0.1:4317".into(),
            max_recv_msg_size_mib: 4,
            auth: AuthConfig::default(),
        }
    }
}

/// `protocols.http`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Where to listen.
    pub endpoint: String,
    /// Path of the traces endpoint.
    pub traces_url_path: String,
    /// Path of the metrics endpoint.
    pub metrics_url_path: String,
    /// Path of the logs endpoint.
    pub logs_url_path: String,
    /// Largest accepted body in bytes, before and after decompression.
    pub max_request_body_size: u64,
    /// Bearer token required from clients (needed off loopback).
    pub auth: AuthConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            endpoint: "127.0.0.1:4318".into(),
            traces_url_path: "/v1/traces".into(),
            metrics_url_path: "/v1/metrics".into(),
            logs_url_path: "/v1/logs".into(),
            max_request_body_size: 20 * 1024 * 1024,
            auth: AuthConfig::default(),
        }
    }
}

impl ComponentConfig for OtlpReceiverConfig {
    fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        if self.protocols.grpc.is_none() && self.protocols.http.is_none() {
            errors.push(ConfigError::new(
                "protocols",
                "must specify at least one protocol when using the OTLP receiver",
            ));
        }
        if let Some(g) = &self.protocols.grpc {
            errors.extend(validate_listener(
                &g.endpoint,
                &g.auth,
                "protocols::grpc::endpoint",
            ));
            if g.max_recv_msg_size_mib == 0 {
                errors.push(ConfigError::new(
                    "protocols::grpc::max_recv_msg_size_mib",
                    "must be greater than zero",
                ));
            }
        }
        if let Some(h) = &self.protocols.http {
            errors.extend(validate_listener(
                &h.endpoint,
                &h.auth,
                "protocols::http::endpoint",
            ));
            for (key, path) in [
                ("traces_url_path", &h.traces_url_path),
                ("metrics_url_path", &h.metrics_url_path),
                ("logs_url_path", &h.logs_url_path),
            ] {
                if !path.starts_with('/') {
                    errors.push(ConfigError::new(
                        format!("protocols::http::{key}"),
                        format!("{path:?} must start with /"),
                    ));
                }
            }
            if h.max_request_body_size == 0 {
                errors.push(ConfigError::new(
                    "protocols::http::max_request_body_size",
                    "must be greater than zero",
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}
