//! The `otlp` receiver: OTLP over gRPC and HTTP, protobuf and JSON, gzip and zstd.
//!
//! What makes it agentcol's rather than a plain OTLP server is the answer it gives: a request is
//! answered only after the pipelines behind it have accepted the data (the `Result` of
//! [`Consumer::consume`](agentcol_component::Consumer)), so a success means the data is safe
//! downstream, and a refusal tells the client whether to retry (gRPC `UNAVAILABLE`, HTTP 503 with
//! `Retry-After`) or not. Status codes and content handling follow otelcol's receiver, so existing
//! clients behave the same against either.
//!
//! One instance serves every signal its pipelines take; a signal no pipeline takes answers gRPC
//! `UNIMPLEMENTED` / HTTP 404.

mod config;
mod grpc;
mod http;

use std::sync::Arc;

use agentcol_component::telemetry::ReceiverTelemetry;
use agentcol_component::{
    erase_receiver, module_name, AnyReceiverFactory, Component, ConsumeError, Consumer, Consumers,
    CreateError, Host, ReceiverFactory, SignalData, SignalStability, Stability,
};

pub use config::{GrpcConfig, HttpConfig, OtlpReceiverConfig, Protocols};

/// Factory of the `otlp` receiver.
#[derive(Debug, Clone, Copy, Default)]
pub struct OtlpReceiverFactory;

impl ReceiverFactory for OtlpReceiverFactory {
    type Config = OtlpReceiverConfig;

    fn type_name(&self) -> &'static str {
        "otlp"
    }

    fn stability(&self) -> SignalStability {
        SignalStability::all(Stability::Beta)
    }

    fn create(
        &self,
        host: Host,
        config: OtlpReceiverConfig,
        consumers: Consumers,
    ) -> Result<Arc<dyn Component>, CreateError> {
        Ok(Arc::new(OtlpReceiver {
            grpc: config
                .protocols
                .grpc
                .map(|c| grpc::GrpcServer::new(host.clone(), c, consumers.clone())),
            http: config
                .protocols
                .http
                .map(|c| http::HttpServer::new(host.clone(), c, consumers.clone())),
            host,
        }))
    }
}

/// The `otlp` receiver factory, erased for the registry.
pub fn factory() -> Arc<dyn AnyReceiverFactory> {
    erase_receiver(OtlpReceiverFactory, module_name!())
}

struct OtlpReceiver {
    host: Host,
    grpc: Option<grpc::GrpcServer>,
    http: Option<http::HttpServer>,
}

#[agentcol_component::async_trait]
impl Component for OtlpReceiver {
    async fn start(&self) -> Result<(), agentcol_component::ComponentError> {
        if let Some(g) = &self.grpc {
            g.start().await?;
        }
        if let Some(h) = &self.http {
            if let Err(e) = h.start().await {
                if let Some(g) = &self.grpc {
                    g.shutdown().await;
                }
                return Err(e);
            }
        }
        self.host.status().ok();
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), agentcol_component::ComponentError> {
        // Both at once: each waits for its in-flight requests to be answered.
        let grpc = async {
            if let Some(g) = &self.grpc {
                g.shutdown().await;
            }
        };
        let http = async {
            if let Some(h) = &self.http {
                h.shutdown().await;
            }
        };
        tokio::join!(grpc, http);
        Ok(())
    }
}

/// How long a shutdown waits for in-flight requests before closing connections.
const DRAIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Hands one decoded request to the pipelines and counts the outcome. An empty request is
/// acknowledged without touching the pipelines (as otelcol does).
async fn deliver<T: SignalData>(
    consumer: &Arc<dyn Consumer<T>>,
    data: T,
    telemetry: &ReceiverTelemetry,
) -> Result<(), ConsumeError> {
    let items = data.item_count();
    if items == 0 {
        return Ok(());
    }
    match consumer.consume(data).await {
        Ok(()) => {
            telemetry.accepted(T::SIGNAL, items);
            Ok(())
        }
        Err(e) => {
            telemetry.refused(T::SIGNAL, items);
            tracing::debug!(signal = %T::SIGNAL, items, error = %e, "request refused downstream");
            Err(e)
        }
    }
}
