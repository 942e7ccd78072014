//! The running collector: builds the component graph from a [`Plan`], starts it, serves the
//! internal metrics, and drains it on shutdown.
//!
//! The graph, as otelcol draws it:
//! * one instance per exporter id, created for every signal its pipelines carry;
//! * per pipeline, the processors in order, built back to front in front of a fan-out over the
//!   pipeline's exporters;
//! * one instance per receiver id, given per signal a fan-out over the heads of every pipeline
//!   of that signal that lists it.
//!
//! Start order is extensions → exporters → processors → receivers, so nothing receives data
//! before its downstream runs; shutdown is the reverse, so receivers stop first and every
//! request already accepted can still be delivered while processors flush and exporters drain.

mod metrics;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use agentcol_component::{
    AnyConsumer, Component, ComponentId, ComponentKind, ComponentStatus, Consumer, Consumers,
    Fanout, Host, Logs, Metrics, ServiceState, Signal, SignalSet, StatusBoard, StatusReporter,
    Telemetry, Traces,
};
use tokio_util::sync::CancellationToken;

use crate::plan::Plan;

/// Why the service could not be built or started.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A factory refused to create a component.
    #[error("failed to create {kind} {id:?}: {reason}")]
    Create {
        /// Its kind.
        kind: ComponentKind,
        /// Its id.
        id: String,
        /// Why.
        reason: String,
    },
    /// A component failed to start.
    #[error("failed to start {kind} {id:?}: {reason}")]
    Start {
        /// Its kind.
        kind: ComponentKind,
        /// Its id.
        id: String,
        /// Why.
        reason: String,
    },
}

struct Node {
    kind: ComponentKind,
    id: ComponentId,
    label: String,
    component: Arc<dyn Component>,
    status: StatusReporter,
}

/// A built collector, ready to start.
pub struct Service {
    /// Start order: extensions, exporters, processors, receivers.
    nodes: Vec<Node>,
    board: StatusBoard,
    shutdown: CancellationToken,
}

fn fanout(signal: Signal, branches: Vec<AnyConsumer>) -> Option<AnyConsumer> {
    if branches.is_empty() {
        return None;
    }
    Some(match signal {
        Signal::Traces => AnyConsumer::Traces(Fanout::<Traces>::over(
            branches
                .into_iter()
                .filter_map(|c| match c {
                    AnyConsumer::Traces(c) => Some(c),
                    _ => None,
                })
                .collect::<Vec<Arc<dyn Consumer<Traces>>>>(),
        )),
        Signal::Metrics => AnyConsumer::Metrics(Fanout::<Metrics>::over(
            branches
                .into_iter()
                .filter_map(|c| match c {
                    AnyConsumer::Metrics(c) => Some(c),
                    _ => None,
                })
                .collect(),
        )),
        Signal::Logs => AnyConsumer::Logs(Fanout::<Logs>::over(
            branches
                .into_iter()
                .filter_map(|c| match c {
                    AnyConsumer::Logs(c) => Some(c),
                    _ => None,
                })
                .collect(),
        )),
    })
}

impl Service {
    /// Creates every component of `plan` (binding nothing yet: that happens in `start`).
    pub fn build(
        plan: Plan,
        root: Arc<PathBuf>,
        board: StatusBoard,
        telemetry: Telemetry,
        shutdown: CancellationToken,
    ) -> Result<Service, ServiceError> {
        let host = |kind, id: &ComponentId| {
            Host::new(
                kind,
                id.clone(),
                root.clone(),
                board.clone(),
                telemetry.clone(),
                shutdown.clone(),
            )
        };
        let create_err = |kind, id: &ComponentId, reason: String| ServiceError::Create {
            kind,
            id: id.to_string(),
            reason,
        };
        let mut nodes = Vec::new();

        for id in &plan.service_extensions {
            let Some(p) = plan.extensions.get(id) else {
                continue;
            };
            let h = host(ComponentKind::Extension, id);
            let status = h.status().clone();
            let component = p
                .factory
                .create(h, &p.config)
                .map_err(|e| create_err(ComponentKind::Extension, id, e.to_string()))?;
            nodes.push(Node {
                kind: ComponentKind::Extension,
                id: id.clone(),
                label: id.to_string(),
                component,
                status,
            });
        }

        let mut exporter_inputs: BTreeMap<ComponentId, Consumers> = BTreeMap::new();
        for (id, p) in &plan.exporters {
            let signals: SignalSet = plan
                .pipelines
                .iter()
                .filter(|(_, pp)| pp.exporters.contains(id))
                .map(|(pid, _)| pid.signal())
                .collect();
            let h = host(ComponentKind::Exporter, id);
            let status = h.status().clone();
            let instance = p
                .factory
                .create(h, &p.config, signals)
                .map_err(|e| create_err(ComponentKind::Exporter, id, e.to_string()))?;
            for s in signals.iter() {
                if instance.consumers.get(s).is_none() {
                    return Err(create_err(
                        ComponentKind::Exporter,
                        id,
                        format!("it returned no consumer for {s}"),
                    ));
                }
            }
            exporter_inputs.insert(id.clone(), instance.consumers);
            nodes.push(Node {
                kind: ComponentKind::Exporter,
                id: id.clone(),
                label: id.to_string(),
                component: instance.component,
                status,
            });
        }

        let mut heads: BTreeMap<agentcol_component::PipelineId, AnyConsumer> = BTreeMap::new();
        for (pid, pp) in &plan.pipelines {
            let signal = pid.signal();
            let branches: Vec<AnyConsumer> = pp
                .exporters
                .iter()
                .filter_map(|e| exporter_inputs.get(e).and_then(|c| c.get(signal)))
                .collect();
            let Some(mut next) = fanout(signal, branches) else {
                continue;
            };
            for id in pp.processors.iter().rev() {
                let Some(p) = plan.processors.get(id) else {
                    continue;
                };
                let h = host(ComponentKind::Processor, id);
                let status = h.status().clone();
                let instance = p
                    .factory
                    .create(h, &pid.to_string(), &p.config, next)
                    .map_err(|e| create_err(ComponentKind::Processor, id, e.to_string()))?;
                if instance.consumer.signal() != signal {
                    return Err(create_err(
                        ComponentKind::Processor,
                        id,
                        format!(
                            "it returned a {} consumer for a {signal} pipeline",
                            instance.consumer.signal()
                        ),
                    ));
                }
                next = instance.consumer;
                nodes.push(Node {
                    kind: ComponentKind::Processor,
                    id: id.clone(),
                    label: format!("{id} (pipeline {pid})"),
                    component: instance.component,
                    status,
                });
            }
            heads.insert(pid.clone(), next);
        }

        for (id, p) in &plan.receivers {
            let mut consumers = Consumers::default();
            for signal in Signal::ALL {
                let branches: Vec<AnyConsumer> = plan
                    .pipelines
                    .iter()
                    .filter(|(pid, pp)| pid.signal() == signal && pp.receivers.contains(id))
                    .filter_map(|(pid, _)| heads.get(pid).cloned())
                    .collect();
                if let Some(c) = fanout(signal, branches) {
                    consumers.set(c);
                }
            }
            let h = host(ComponentKind::Receiver, id);
            let status = h.status().clone();
            let component = p
                .factory
                .create(h, &p.config, consumers)
                .map_err(|e| create_err(ComponentKind::Receiver, id, e.to_string()))?;
            nodes.push(Node {
                kind: ComponentKind::Receiver,
                id: id.clone(),
                label: id.to_string(),
                component,
                status,
            });
        }

        // Start order: extensions, exporters, processors, receivers.
        nodes.sort_by_key(|n| match n.kind {
            ComponentKind::Extension => 0,
            ComponentKind::Exporter => 1,
            ComponentKind::Processor | ComponentKind::Connector => 2,
            ComponentKind::Receiver => 3,
        });
        Ok(Service {
            nodes,
            board,
            shutdown,
        })
    }

    /// Starts every component in order. On a failure, stops what was started and returns it.
    pub async fn start(&self) -> Result<(), ServiceError> {
        for (i, node) in self.nodes.iter().enumerate() {
            tracing::debug!(kind = %node.kind, component = %node.label, "starting");
            if let Err(e) = node.component.start().await {
                node.status.failed(e.to_string());
                let err = ServiceError::Start {
                    kind: node.kind,
                    id: node.id.to_string(),
                    reason: e.to_string(),
                };
                for started in self.nodes[..i].iter().rev() {
                    stop_node(started).await;
                }
                return Err(err);
            }
            let still_starting = self.board.snapshot().into_iter().any(|(k, id, e)| {
                k == node.kind && id == node.id && e.status == ComponentStatus::Starting
            });
            if still_starting {
                node.status.ok();
            }
        }
        self.board.set_service(ServiceState::Running);
        Ok(())
    }

    /// Stops every component in reverse start order, each drained before the next.
    pub async fn shutdown(&self) {
        self.board.set_service(ServiceState::Stopping);
        self.shutdown.cancel();
        for node in self.nodes.iter().rev() {
            stop_node(node).await;
        }
    }

    /// Kind and label of each component, in start order.
    #[cfg(test)]
    pub fn start_order(&self) -> Vec<(ComponentKind, String)> {
        self.nodes
            .iter()
            .map(|n| (n.kind, n.label.clone()))
            .collect()
    }
}

async fn stop_node(node: &Node) {
    tracing::debug!(kind = %node.kind, component = %node.label, "stopping");
    node.status.report(ComponentStatus::Stopping);
    if let Err(e) = node.component.shutdown().await {
        tracing::error!(kind = %node.kind, component = %node.label, error = %e, "component did not shut down cleanly");
        node.status.failed(e.to_string());
    }
    node.status.report(ComponentStatus::Stopped);
}

/// Runs a plan until SIGINT or SIGTERM, then drains it. Returns an error when it could not start.
pub async fn run(plan: Plan, root: PathBuf) -> anyhow::Result<()> {
    let board = StatusBoard::new();
    let telemetry = Telemetry::new();
    let token = CancellationToken::new();
    let metrics_address = plan.telemetry.metrics_address;
    let service = Service::build(
        plan,
        Arc::new(root),
        board.clone(),
        telemetry.clone(),
        token,
    )?;

    let metrics_stop = CancellationToken::new();
    let metrics_task = match metrics_address {
        Some(addr) => Some(metrics::serve(addr, telemetry.clone(), metrics_stop.clone()).await?),
        None => None,
    };

    if let Err(e) = service.start().await {
        metrics_stop.cancel();
        return Err(e.into());
    }
    tracing::info!("Everything is ready. Begin running and processing data.");

    let signal = wait_for_signal().await;
    tracing::info!(signal, "Received signal from OS");
    tokio::spawn(async {
        // A second signal while draining means: stop now.
        let again = wait_for_signal().await;
        tracing::warn!(
            signal = again,
            "second signal during shutdown: exiting without draining"
        );
        std::process::exit(1);
    });
    service.shutdown().await;
    metrics_stop.cancel();
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    tracing::info!("Shutdown complete.");
    Ok(())
}

async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

#[cfg(test)]
mod tests;
