//! Settings of both exporters, with otelcol's names. One deliberate difference: by default an
//! exporter retries until the data is delivered (`retry_on_failure.max_elapsed_time: 0`), because
//! the data it holds was already acknowledged to the sender; otelcol's default (300 s) drops it.
//! A bounded queue, not a time limit, is what keeps memory in check: when it is full, senders are
//! told to retry.

use std::collections::BTreeMap;

use agentcol_component::{ComponentConfig, ConfigError, Duration, Secret};
use serde::{Deserialize, Serialize};

/// `tls`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Plaintext for a scheme-less gRPC endpoint (as otelcol).
    pub insecure: bool,
    /// Do not verify the server's certificate.
    pub insecure_skip_verify: bool,
    /// Extra CA certificate (PEM) to trust.
    pub ca_file: String,
    /// Client certificate (PEM), for mutual TLS.
    pub cert_file: String,
    /// Client key (PEM), for mutual TLS.
    pub key_file: String,
}

/// Wire compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip (the default, as otelcol).
    #[default]
    Gzip,
    /// zstd.
    Zstd,
    /// None.
    #[serde(alias = "")]
    None,
}

/// `retry_on_failure`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Retry at all.
    pub enabled: bool,
    /// First wait.
    pub initial_interval: Duration,
    /// Longest wait.
    pub max_interval: Duration,
    /// Give up after this long; `0` = never (our default).
    pub max_elapsed_time: Duration,
    /// Growth per attempt.
    pub multiplier: f64,
    /// Jitter, as a fraction of the wait.
    pub randomization_factor: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            enabled: true,
            initial_interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(30),
            max_elapsed_time: Duration::default(),
            multiplier: 1.5,
            randomization_factor: 0.5,
        }
    }
}

/// `sending_queue`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Queue requests (else each request is sent inline and its outcome is the answer).
    pub enabled: bool,
    /// Concurrent senders.
    pub num_consumers: usize,
    /// Capacity, in requests, per signal.
    pub queue_size: usize,
    /// Persistent queue storage: reserved for the on-disk queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            enabled: true,
            num_consumers: 10,
            queue_size: 1000,
            storage: None,
        }
    }
}

/// What both exporters share (not a config section of its own).
#[derive(Debug, Clone, PartialEq)]
pub struct CommonConfig {
    /// TLS settings.
    pub tls: TlsConfig,
    /// Compression.
    pub compression: Compression,
    /// Extra headers (values are secrets: never printed).
    pub headers: BTreeMap<String, Secret>,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Retries.
    pub retry_on_failure: RetryConfig,
    /// Queue.
    pub sending_queue: QueueConfig,
    /// How long shutdown may spend draining the queue.
    pub shutdown_timeout: Duration,
}

/// `exporters.otlp` (gRPC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpGrpcConfig {
    /// `host:port`, `http://host:port` or `https://host:port`.
    pub endpoint: String,
    /// TLS settings.
    pub tls: TlsConfig,
    /// Compression.
    pub compression: Compression,
    /// Extra headers, sent as gRPC metadata.
    pub headers: BTreeMap<String, Secret>,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Retries.
    pub retry_on_failure: RetryConfig,
    /// Queue.
    pub sending_queue: QueueConfig,
    /// How long shutdown may spend draining the queue.
    pub shutdown_timeout: Duration,
}

impl Default for OtlpGrpcConfig {
    fn default() -> Self {
        OtlpGrpcConfig {
            endpoint: String::new(),
            tls: TlsConfig::default(),
            compression: Compression::Gzip,
            headers: BTreeMap::new(),
            timeout: Duration::from_secs(5),
            retry_on_failure: RetryConfig::default(),
            sending_queue: QueueConfig::default(),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Body encoding of `otlphttp`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpEncoding {
    /// Protobuf (default).
    #[default]
    Proto,
    /// OTLP/JSON.
    Json,
}

/// `exporters.otlphttp`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpHttpConfig {
    /// Base URL; `/v1/<signal>` is appended.
    pub endpoint: String,
    /// Full URL for traces (used verbatim).
    pub traces_endpoint: String,
    /// Full URL for metrics (used verbatim).
    pub metrics_endpoint: String,
    /// Full URL for logs (used verbatim).
    pub logs_endpoint: String,
    /// Body encoding.
    pub encoding: HttpEncoding,
    /// TLS settings.
    pub tls: TlsConfig,
    /// Compression.
    pub compression: Compression,
    /// Extra headers.
    pub headers: BTreeMap<String, Secret>,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Retries.
    pub retry_on_failure: RetryConfig,
    /// Queue.
    pub sending_queue: QueueConfig,
    /// How long shutdown may spend draining the queue.
    pub shutdown_timeout: Duration,
}

impl Default for OtlpHttpConfig {
    fn default() -> Self {
        OtlpHttpConfig {
            endpoint: String::new(),
            traces_endpoint: String::new(),
            metrics_endpoint: String::new(),
            logs_endpoint: String::new(),
            encoding: HttpEncoding::Proto,
            tls: TlsConfig::default(),
            compression: Compression::Gzip,
            headers: BTreeMap::new(),
            timeout: Duration::from_secs(30),
            retry_on_failure: RetryConfig::default(),
            sending_queue: QueueConfig::default(),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

impl OtlpGrpcConfig {
    pub(crate) fn common(&self) -> CommonConfig {
        CommonConfig {
            tls: self.tls.clone(),
            compression: self.compression,
            headers: self.headers.clone(),
            timeout: self.timeout,
            retry_on_failure: self.retry_on_failure.clone(),
            sending_queue: self.sending_queue.clone(),
            shutdown_timeout: self.shutdown_timeout,
        }
    }
}

impl OtlpHttpConfig {
    pub(crate) fn common(&self) -> CommonConfig {
        CommonConfig {
            tls: self.tls.clone(),
            compression: self.compression,
            headers: self.headers.clone(),
            timeout: self.timeout,
            retry_on_failure: self.retry_on_failure.clone(),
            sending_queue: self.sending_queue.clone(),
            shutdown_timeout: self.shutdown_timeout,
        }
    }
}

fn validate_common(c: &CommonConfig, errors: &mut Vec<ConfigError>) {
    if c.sending_queue.storage.is_some() {
        errors.push(ConfigError::new(
            "sending_queue::storage",
            "the persistent on-disk queue is not available yet; remove `storage` to use the in-memory queue",
        ));
    }
    if c.sending_queue.enabled && c.sending_queue.queue_size == 0 {
        errors.push(ConfigError::new(
            "sending_queue::queue_size",
            "must be greater than zero",
        ));
    }
    if c.sending_queue.enabled && c.sending_queue.num_consumers == 0 {
        errors.push(ConfigError::new(
            "sending_queue::num_consumers",
            "must be greater than zero",
        ));
    }
    let r = &c.retry_on_failure;
    if r.enabled {
        if r.initial_interval.is_zero() {
            errors.push(ConfigError::new(
                "retry_on_failure::initial_interval",
                "must be greater than zero",
            ));
        }
        if r.max_interval < r.initial_interval {
            errors.push(ConfigError::new(
                "retry_on_failure::max_interval",
                "must not be less than initial_interval",
            ));
        }
        if !(r.multiplier >= 1.0 && r.multiplier.is_finite()) {
            errors.push(ConfigError::new(
                "retry_on_failure::multiplier",
                "must be at least 1",
            ));
        }
        if !(0.0..=1.0).contains(&r.randomization_factor) {
            errors.push(ConfigError::new(
                "retry_on_failure::randomization_factor",
                "must be between 0 and 1",
            ));
        }
    }
    if c.timeout.is_zero() {
        errors.push(ConfigError::new("timeout", "must be greater than zero"));
    }
    for name in c.headers.keys() {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            errors.push(ConfigError::new(
                format!("headers::{name}"),
                "is not a valid header name",
            ));
        }
    }
}

fn done(errors: Vec<ConfigError>) -> Result<(), Vec<ConfigError>> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

impl ComponentConfig for OtlpGrpcConfig {
    fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        if self.endpoint.trim().is_empty() {
            errors.push(ConfigError::new(
                "",
                "at least one endpoint must be specified",
            ));
        }
        validate_common(&self.common(), &mut errors);
        done(errors)
    }
}

impl ComponentConfig for OtlpHttpConfig {
    fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        let all = [
            &self.endpoint,
            &self.traces_endpoint,
            &self.metrics_endpoint,
            &self.logs_endpoint,
        ];
        if all.iter().all(|e| e.trim().is_empty()) {
            errors.push(ConfigError::new(
                "",
                "at least one endpoint must be specified",
            ));
        }
        for (key, value) in [
            ("endpoint", &self.endpoint),
            ("traces_endpoint", &self.traces_endpoint),
            ("metrics_endpoint", &self.metrics_endpoint),
            ("logs_endpoint", &self.logs_endpoint),
        ] {
            if !(value.is_empty() || value.starts_with("http://") || value.starts_with("https://"))
            {
                errors.push(ConfigError::new(
                    key,
                    format!("{value:?} must be an http:// or https:// URL"),
                ));
            }
        }
        validate_common(&self.common(), &mut errors);
        done(errors)
    }
}
