//! The validated, typed form of a configuration: what the service builds from.
//!
//! `Plan::build` is pure: it decodes and validates every component config with its factory and
//! checks the pipeline graph, but creates no component, binds no port, touches no file. So
//! `agentcol validate` is exactly the checks `agentcol` runs before it starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use agentcol_component::{
    AnyExporterFactory, AnyExtensionFactory, AnyProcessorFactory, AnyReceiverFactory, ComponentId,
    LoadedConfig, PipelineId,
};

/// A component the service will create: its factory and its decoded config.
pub struct Planned<F: ?Sized> {
    /// The factory of its type.
    pub factory: Arc<F>,
    /// Its config, decoded and validated.
    pub config: LoadedConfig,
}

/// One pipeline: which components, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelinePlan {
    /// Receivers feeding it.
    pub receivers: Vec<ComponentId>,
    /// Processors, in order.
    pub processors: Vec<ComponentId>,
    /// Exporters it fans out to.
    pub exporters: Vec<ComponentId>,
}

/// `service.telemetry`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetrySettings {
    /// Log level filter (`info` unless `service.telemetry.logs.level` says otherwise).
    pub log_level: String,
    /// Where the Prometheus `/metrics` endpoint listens; `None` when `metrics.level: none`.
    pub metrics_address: Option<SocketAddr>,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            log_level: "info".into(),
            metrics_address: Some(SocketAddr::from(([127, 0, 0, 1], 8888))),
        }
    }
}

/// Everything the service needs to run.
pub struct Plan {
    /// Receivers used by at least one pipeline.
    pub receivers: BTreeMap<ComponentId, Planned<dyn AnyReceiverFactory>>,
    /// Processors used by at least one pipeline (instantiated once per pipeline).
    pub processors: BTreeMap<ComponentId, Planned<dyn AnyProcessorFactory>>,
    /// Exporters used by at least one pipeline (one instance shared by all of them).
    pub exporters: BTreeMap<ComponentId, Planned<dyn AnyExporterFactory>>,
    /// Extensions listed in `service.extensions`.
    pub extensions: BTreeMap<ComponentId, Planned<dyn AnyExtensionFactory>>,
    /// `service.extensions`, in order (start order).
    pub service_extensions: Vec<ComponentId>,
    /// `service.pipelines`.
    pub pipelines: BTreeMap<PipelineId, PipelinePlan>,
    /// `service.telemetry`.
    pub telemetry: TelemetrySettings,
}
