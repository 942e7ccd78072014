//! The `otlp` (gRPC) and `otlphttp` (HTTP) exporters: forward to any OTLP destination.
//!
//! Both are one [`queue::Sender`] over a [`transport::Transport`]: per-signal bounded queues,
//! retries with exponential backoff that honour `Retry-After` and gRPC `RetryInfo` (classified by
//! the pure functions in [`retry`]), partial success logged and counted, compression, headers
//! (never logged), per-attempt timeout. See `config` for the settings and the one default that
//! differs from otelcol (retry until delivered).
//!
//! The persistent on-disk queue will be another queue behind the same `Consumer`; its seam is
//! `sending_queue.storage`, refused for now.

mod config;
mod queue;
pub mod retry;
mod transport;
mod wire;

use std::sync::Arc;

use agentcol_component::{
    async_trait, erase_exporter, module_name, AnyExporterFactory, Component, ComponentError,
    Consumers, CreateError, ExporterFactory, ExporterInstance, Host, Logs, Metrics, Signal,
    SignalSet, SignalStability, Stability, Traces,
};
use tokio_util::sync::CancellationToken;

use config::CommonConfig;
pub use config::{
    Compression, HttpEncoding, OtlpGrpcConfig, OtlpHttpConfig, QueueConfig, RetryConfig, TlsConfig,
};
use queue::{QueueControl, Sender, SignalQueue};
use transport::Transport;
use wire::Wire;

/// Factory of the `otlp` (gRPC) exporter.
#[derive(Debug, Clone, Copy, Default)]
pub struct OtlpGrpcExporterFactory;

/// Factory of the `otlphttp` exporter.
#[derive(Debug, Clone, Copy, Default)]
pub struct OtlpHttpExporterFactory;

/// The `otlp` exporter factory, erased for the registry.
pub fn grpc_factory() -> Arc<dyn AnyExporterFactory> {
    erase_exporter(OtlpGrpcExporterFactory, module_name!())
}

/// The `otlphttp` exporter factory, erased for the registry.
pub fn http_factory() -> Arc<dyn AnyExporterFactory> {
    erase_exporter(OtlpHttpExporterFactory, module_name!())
}

fn read(path: &str, what: &str) -> Result<Vec<u8>, CreateError> {
    std::fs::read(path)
        .map_err(|e| CreateError::InvalidConfig(format!("cannot read {what} {path}: {e}")))
}

fn grpc_transport(cfg: &OtlpGrpcConfig) -> Result<Transport, CreateError> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let raw = cfg.endpoint.trim();
    let (uri, tls) = if raw.starts_with("https://") {
        (raw.to_string(), true)
    } else if raw.starts_with("http://") {
        (raw.to_string(), false)
    } else if cfg.tls.insecure {
        (format!("http://{raw}"), false)
    } else {
        (format!("https://{raw}"), true)
    };
    let mut endpoint = Endpoint::from_shared(uri.clone())
        .map_err(|e| CreateError::InvalidConfig(format!("endpoint {raw:?}: {e}")))?
        .connect_timeout(cfg.timeout.get());
    if tls {
        if cfg.tls.insecure_skip_verify {
            return Err(CreateError::InvalidConfig(
                "tls.insecure_skip_verify is not supported by the otlp (gRPC) exporter; use tls.ca_file".into(),
            ));
        }
        let mut t = ClientTlsConfig::new().with_native_roots();
        if !cfg.tls.ca_file.is_empty() {
            t = t.ca_certificate(Certificate::from_pem(read(
                &cfg.tls.ca_file,
                "tls.ca_file",
            )?));
        }
        if !cfg.tls.cert_file.is_empty() {
            t = t.identity(Identity::from_pem(
                read(&cfg.tls.cert_file, "tls.cert_file")?,
                read(&cfg.tls.key_file, "tls.key_file")?,
            ));
        }
        endpoint = endpoint
            .tls_config(t)
            .map_err(|e| CreateError::InvalidConfig(format!("TLS: {e}")))?;
    }
    let mut headers = Vec::new();
    for (k, v) in &cfg.headers {
        let key = k.to_ascii_lowercase().parse().map_err(|_| {
            CreateError::InvalidConfig(format!("header name {k:?} is not valid gRPC metadata"))
        })?;
        let value = v.expose().parse().map_err(|_| {
            CreateError::InvalidConfig(format!(
                "the value of header {k:?} is not valid gRPC metadata"
            ))
        })?;
        headers.push((key, value));
    }
    Ok(Transport::Grpc {
        channel: endpoint.connect_lazy(),
        compression: match cfg.compression {
            Compression::Gzip => Some(tonic::codec::CompressionEncoding::Gzip),
            Compression::Zstd => Some(tonic::codec::CompressionEncoding::Zstd),
            Compression::None => None,
        },
        headers,
        timeout: cfg.timeout.get(),
    })
}

fn http_transport(cfg: &OtlpHttpConfig) -> Result<Transport, CreateError> {
    let base = cfg.endpoint.trim_end_matches('/');
    let url = |specific: &str, path: &str| {
        if specific.is_empty() {
            format!("{base}{path}")
        } else {
            specific.to_string()
        }
    };
    let mut builder = reqwest::Client::builder()
        .timeout(cfg.timeout.get())
        .danger_accept_invalid_certs(cfg.tls.insecure_skip_verify);
    if !cfg.tls.ca_file.is_empty() {
        let cert = reqwest::Certificate::from_pem(&read(&cfg.tls.ca_file, "tls.ca_file")?)
            .map_err(|e| CreateError::InvalidConfig(format!("tls.ca_file: {e}")))?;
        builder = builder.add_root_certificate(cert);
    }
    if !cfg.tls.cert_file.is_empty() {
        let mut pem = read(&cfg.tls.cert_file, "tls.cert_file")?;
        pem.extend(read(&cfg.tls.key_file, "tls.key_file")?);
        let id = reqwest::Identity::from_pem(&pem)
            .map_err(|e| CreateError::InvalidConfig(format!("tls.cert_file/key_file: {e}")))?;
        builder = builder.identity(id);
    }
    let client = builder
        .build()
        .map_err(|e| CreateError::Other(format!("HTTP client: {e}")))?;
    let mut headers = reqwest::header::HeaderMap::new();
    for (k, v) in &cfg.headers {
        let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| CreateError::InvalidConfig(format!("header name {k:?} is not valid")))?;
        let mut value = reqwest::header::HeaderValue::from_str(v.expose()).map_err(|_| {
            CreateError::InvalidConfig(format!("the value of header {k:?} is not valid"))
        })?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(Transport::Http {
        client,
        urls: [
            url(&cfg.traces_endpoint, <Traces as Wire>::HTTP_PATH),
            url(&cfg.metrics_endpoint, <Metrics as Wire>::HTTP_PATH),
            url(&cfg.logs_endpoint, <Logs as Wire>::HTTP_PATH),
        ],
        encoding: cfg.encoding,
        compression: cfg.compression,
        headers,
    })
}

fn instance(
    host: Host,
    common: CommonConfig,
    transport: Transport,
    signals: SignalSet,
) -> ExporterInstance {
    let id = host.id().to_string();
    for s in signals.iter() {
        tracing::info!(exporter = %id, signal = %s, destination = %transport.describe(s), "exporter configured");
    }
    let sender = Arc::new(Sender {
        id,
        transport,
        retry: common.retry_on_failure.clone(),
        telemetry: host.telemetry().exporter(host.id()),
        status: host.status().clone(),
        abort: CancellationToken::new(),
    });
    let mut consumers = Consumers::default();
    let mut queues: Vec<Arc<dyn QueueControl>> = Vec::new();
    for s in signals.iter() {
        match s {
            Signal::Traces => {
                let q = Arc::new(SignalQueue::<Traces>::new(
                    sender.clone(),
                    common.sending_queue.clone(),
                ));
                consumers.traces = Some(q.clone());
                queues.push(q);
            }
            Signal::Metrics => {
                let q = Arc::new(SignalQueue::<Metrics>::new(
                    sender.clone(),
                    common.sending_queue.clone(),
                ));
                consumers.metrics = Some(q.clone());
                queues.push(q);
            }
            Signal::Logs => {
                let q = Arc::new(SignalQueue::<Logs>::new(
                    sender.clone(),
                    common.sending_queue.clone(),
                ));
                consumers.logs = Some(q.clone());
                queues.push(q);
            }
        }
    }
    ExporterInstance {
        consumers,
        component: Arc::new(OtlpExporter {
            queues,
            shutdown_timeout: common.shutdown_timeout.get(),
        }),
    }
}

struct OtlpExporter {
    queues: Vec<Arc<dyn QueueControl>>,
    shutdown_timeout: std::time::Duration,
}

#[async_trait]
impl Component for OtlpExporter {
    async fn start(&self) -> Result<(), ComponentError> {
        for q in &self.queues {
            q.start();
        }
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ComponentError> {
        let drains = self
            .queues
            .iter()
            .map(|q| q.shutdown(self.shutdown_timeout));
        for d in drains {
            d.await;
        }
        Ok(())
    }
}

impl ExporterFactory for OtlpGrpcExporterFactory {
    type Config = OtlpGrpcConfig;

    fn type_name(&self) -> &'static str {
        "otlp"
    }

    fn stability(&self) -> SignalStability {
        SignalStability::all(Stability::Beta)
    }

    fn create(
        &self,
        host: Host,
        config: OtlpGrpcConfig,
        signals: SignalSet,
    ) -> Result<ExporterInstance, CreateError> {
        let transport = grpc_transport(&config)?;
        Ok(instance(host, config.common(), transport, signals))
    }
}

impl ExporterFactory for OtlpHttpExporterFactory {
    type Config = OtlpHttpConfig;

    fn type_name(&self) -> &'static str {
        "otlphttp"
    }

    fn stability(&self) -> SignalStability {
        SignalStability::all(Stability::Beta)
    }

    fn create(
        &self,
        host: Host,
        config: OtlpHttpConfig,
        signals: SignalSet,
    ) -> Result<ExporterInstance, CreateError> {
        let transport = http_transport(&config)?;
        Ok(instance(host, config.common(), transport, signals))
    }
}
