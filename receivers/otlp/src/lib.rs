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

pub mod agent;
mod config;
mod grpc;
mod http;

use std::sync::Arc;

use agentcol_component::telemetry::ReceiverTelemetry;
use agentcol_component::{
    erase_receiver, module_name, AgentInput, AgentLogs, AnyReceiverFactory, Component,
    ConsumeError, Consumer, Consumers, CreateError, Host, Logs, ReceiverFactory, SignalData,
    SignalStability, Stability, Traces,
};

pub use config::{AgentsConfig, GrpcConfig, HttpConfig, OtlpReceiverConfig, Protocols};

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
        let consumers = if config.agents.normalize {
            agent_consumers(&host, consumers)
        } else {
            consumers
        };
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

/// Wraps the pipelines' consumers so agent OTLP is normalised on the way in.
fn agent_consumers(host: &Host, consumers: Consumers) -> Consumers {
    let t = host.telemetry();
    let counters = AgentCounters {
        canonical: t.counter(
            "agentcol_receiver_agent_events",
            "Agent records normalised into canonical agent events.",
        ),
        native: t.counter(
            "agentcol_receiver_agent_native_records",
            "Agent records with no canonical meaning, kept as agent.native events.",
        ),
        fallback: t.counter(
            "agentcol_receiver_agent_fallback_keys",
            "Canonical agent events keyed with a fallback because an id was missing.",
        ),
        labels: vec![("receiver".to_string(), host.id().to_string())],
    };
    let logs = consumers.logs.clone().map(|next| {
        let input = next.agent_input();
        if let Some(i) = &input {
            tracing::debug!(receiver = %host.id(), to = %i.owner(), "canonical agent records are handed over as records");
        }
        Arc::new(NormalisingLogs {
            input,
            next,
            counters: counters.clone(),
        }) as Arc<dyn Consumer<Logs>>
    });
    let traces = consumers.traces.clone().map(|next| {
        Arc::new(AgentTraces {
            next,
            logs: consumers.logs.clone(),
        }) as Arc<dyn Consumer<Traces>>
    });
    Consumers {
        traces,
        metrics: consumers.metrics,
        logs,
    }
}

#[derive(Clone)]
struct AgentCounters {
    canonical: agentcol_component::telemetry::CounterFamily,
    native: agentcol_component::telemetry::CounterFamily,
    fallback: agentcol_component::telemetry::CounterFamily,
    labels: agentcol_component::telemetry::Labels,
}

/// Normalises agent log records in place, then hands the request on; to `input`, with the
/// canonical records as records, when the next consumer takes them that way (a `dedupe` in
/// front of its store, or the store itself: no log record written only to be read back).
struct NormalisingLogs {
    next: Arc<dyn Consumer<Logs>>,
    input: Option<Arc<dyn AgentInput>>,
    counters: AgentCounters,
}

#[agentcol_component::async_trait]
impl Consumer<Logs> for NormalisingLogs {
    async fn consume(&self, mut data: Logs) -> Result<(), ConsumeError> {
        let (records, stats) = match &self.input {
            Some(_) => agent::normalize_logs_into_records(&mut data),
            None => (Vec::new(), agent::normalize_logs(&mut data)),
        };
        let c = &self.counters;
        for (family, n) in [
            (&c.canonical, stats.canonical),
            (&c.native, stats.native),
            (&c.fallback, stats.fallback),
        ] {
            if n > 0 {
                family.get_or_create(&c.labels).inc_by(n as u64);
            }
        }
        match &self.input {
            Some(input) if !records.is_empty() => {
                input
                    .consume_agent(AgentLogs {
                        records,
                        logs: data,
                    })
                    .await
            }
            _ => self.next.consume(data).await,
        }
    }
}

/// Passes spans on untouched and sends the canonical events some agent spans imply to the logs
/// pipeline; the request is acknowledged when both have accepted.
struct AgentTraces {
    next: Arc<dyn Consumer<Traces>>,
    logs: Option<Arc<dyn Consumer<Logs>>>,
}

#[agentcol_component::async_trait]
impl Consumer<Traces> for AgentTraces {
    async fn consume(&self, data: Traces) -> Result<(), ConsumeError> {
        let derived = self
            .logs
            .as_ref()
            .and_then(|logs| agent::events_from_spans(&data).map(|d| (logs, d)));
        match derived {
            None => self.next.consume(data).await,
            Some((logs, events)) => {
                let (a, b) = tokio::join!(self.next.consume(data), logs.consume(events));
                a.and(b)
            }
        }
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
