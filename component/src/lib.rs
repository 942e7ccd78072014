//! The plugin contract of agentcol.
//!
//! Every receiver, processor, exporter and extension crate depends on this crate and on no other
//! component crate. It holds what they must agree on, and nothing else:
//!
//! * [`id`]: component and pipeline identifiers (`type[/name]`, `logs[/name]`) as parsed types.
//! * [`data`]: the signals. Data between components is OTLP (`opentelemetry-proto` request types),
//!   one type per signal, all behind the [`data::SignalData`] trait so code is written once.
//! * [`consumer`]: the [`consumer::Consumer`] trait. Its result *is* the acknowledgement: a
//!   receiver answers its client from the `Result` of `consume`, which resolves only when every
//!   exporter downstream has accepted the data (or refused it, with an error that says whether a
//!   retry can help). There is no separate ack token that a forgotten code path could leak.
//! * [`factory`]: typed factories (an associated `Config` type, `deny_unknown_fields`, defaults
//!   from `Default`), erased once for the builder's registry.
//! * [`lifecycle`]: `start` / `shutdown` (drain) for every component.
//! * [`host`]: what the service gives a component: its id, the canonical root directory, the
//!   status reporter, the collector-wide shutdown signal and internal telemetry.
//! * [`config`]: helpers shared by component configs (durations, secrets, config errors).
//! * [`key_states`]: the state a store holds per agent-event key, which a `dedupe` in front of
//!   it can read instead of keeping its own copy; [`filter`]: the Bloom filter of held keys.
//! * [`agent_input`]: agent records handed from one component to the next as records, where
//!   both work on them (receiver → `dedupe` → store), instead of through OTLP.
//! * [`telemetry`]: the standard internal metric families (otelcol-style names, `agentcol_` prefix).
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod agent;
pub mod agent_input;
pub mod config;
pub mod consumer;
pub mod data;
pub mod factory;
pub mod filter;
pub mod host;
pub mod id;
pub mod key_states;
pub mod lifecycle;
pub mod net;
pub mod status;
pub mod telemetry;

pub use async_trait::async_trait;
pub use opentelemetry_proto;

pub use agent_input::{AgentInput, AgentLogs, AttachedHead, KeyedRecord};
pub use config::{ComponentConfig, ConfigError, Duration, Secret};
pub use consumer::{AnyConsumer, ConsumeError, Consumer, Consumers, Fanout};
pub use data::{Logs, Metrics, Signal, SignalData, SignalSet, Traces};
pub use factory::{
    erase_exporter, erase_extension, erase_processor, erase_receiver, AnyExporterFactory,
    AnyExtensionFactory, AnyFactory, AnyProcessorFactory, AnyReceiverFactory, CreateError,
    ExporterFactory, ExporterInstance, ExtensionFactory, LoadedConfig, ProcessorFactory,
    ProcessorInstance, ReceiverFactory, SignalStability, Stability,
};
pub use host::Host;
pub use id::{ComponentId, ComponentKind, IdError, PipelineId};
pub use key_states::{KeyStates, KeyStatesError, StoredKey};
pub use lifecycle::{Component, ComponentError};
pub use status::{ComponentStatus, ServiceState, StatusBoard, StatusReporter};
pub use telemetry::Telemetry;
