//! Factories: how the builder finds, configures and creates components.
//!
//! A component crate implements one typed trait ([`ReceiverFactory`], [`ProcessorFactory`],
//! [`ExporterFactory`] or [`ExtensionFactory`]) whose `Config` is a concrete serde type. The
//! builder's registry holds them erased ([`AnyReceiverFactory`], …) through blanket impls, so type
//! erasure happens once, here, and no component ever downcasts.
//!
//! Receivers and exporters are created once per component id for all the signals the pipelines
//! ask of them (one OTLP server, one connection per destination); processors once per pipeline.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::config::{decode, ComponentConfig, ConfigError};
use crate::consumer::{AnyConsumer, Consumers};
use crate::data::{Signal, SignalSet};
use crate::host::Host;
use crate::lifecycle::Component;

/// How mature a component is for a signal (otelcol's levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stability {
    /// Under development.
    Development,
    /// Alpha.
    Alpha,
    /// Beta.
    Beta,
    /// Stable.
    Stable,
}

impl fmt::Display for Stability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stability::Development => "Development",
            Stability::Alpha => "Alpha",
            Stability::Beta => "Beta",
            Stability::Stable => "Stable",
        })
    }
}

/// Stability per signal; `None` means the signal is not supported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignalStability {
    /// Spans.
    pub traces: Option<Stability>,
    /// Metrics.
    pub metrics: Option<Stability>,
    /// Logs.
    pub logs: Option<Stability>,
}

impl SignalStability {
    /// The same level for all three signals.
    pub const fn all(level: Stability) -> Self {
        SignalStability {
            traces: Some(level),
            metrics: Some(level),
            logs: Some(level),
        }
    }

    /// Logs only (agent events are log records): traces and metrics pipelines are refused.
    pub const fn logs_only(level: Stability) -> Self {
        SignalStability {
            traces: None,
            metrics: None,
            logs: Some(level),
        }
    }

    /// The level for `signal`, or `None` when unsupported.
    pub fn get(&self, signal: Signal) -> Option<Stability> {
        match signal {
            Signal::Traces => self.traces,
            Signal::Metrics => self.metrics,
            Signal::Logs => self.logs,
        }
    }
}

/// Why a component could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The component does not handle this signal.
    #[error("telemetry type is not supported")]
    SignalNotSupported(Signal),
    /// The configuration is valid in form but cannot be used (e.g. a non-loopback endpoint
    /// without an auth token).
    #[error("{0}")]
    InvalidConfig(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// A decoded, validated config, type-erased for the registry.
pub struct LoadedConfig {
    inner: Box<dyn Any + Send + Sync>,
    shown: serde_json::Value,
}

impl fmt::Debug for LoadedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LoadedConfig({})", self.shown)
    }
}

impl LoadedConfig {
    fn new<C: ComponentConfig>(config: C) -> Self {
        let shown = serde_json::to_value(&config).unwrap_or(serde_json::Value::Null);
        LoadedConfig {
            inner: Box::new(config),
            shown,
        }
    }

    /// The effective config (user values over defaults) with secrets redacted: what
    /// `print-config` shows.
    pub fn shown(&self) -> &serde_json::Value {
        &self.shown
    }

    fn get<C: ComponentConfig>(&self) -> Result<C, CreateError> {
        self.inner
            .downcast_ref::<C>()
            .cloned()
            .ok_or_else(|| CreateError::Other("config was loaded by another factory".into()))
    }
}

/// What an exporter instance hands the service.
pub struct ExporterInstance {
    /// Its input, per signal it was asked to serve.
    pub consumers: Consumers,
    /// Its lifecycle.
    pub component: Arc<dyn Component>,
}

impl fmt::Debug for ExporterInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExporterInstance({:?})", self.consumers)
    }
}

/// What a processor instance hands the service.
pub struct ProcessorInstance {
    /// Its input (same signal as the `next` it was given).
    pub consumer: AnyConsumer,
    /// Its lifecycle.
    pub component: Arc<dyn Component>,
}

impl fmt::Debug for ProcessorInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProcessorInstance({:?})", self.consumer)
    }
}

/// A receiver type.
pub trait ReceiverFactory: Send + Sync + 'static {
    /// Its configuration.
    type Config: ComponentConfig;
    /// The type name used in configs (`otlp`).
    fn type_name(&self) -> &'static str;
    /// Which signals it produces, and how mature each is.
    fn stability(&self) -> SignalStability;
    /// Creates the one instance for this id. `consumers` holds an entry for each signal some
    /// pipeline takes from it (only signals its stability declares).
    fn create(
        &self,
        host: Host,
        config: Self::Config,
        consumers: Consumers,
    ) -> Result<Arc<dyn Component>, CreateError>;
}

/// A processor type.
pub trait ProcessorFactory: Send + Sync + 'static {
    /// Its configuration.
    type Config: ComponentConfig;
    /// The type name used in configs (`batch`).
    fn type_name(&self) -> &'static str;
    /// Which signals it handles.
    fn stability(&self) -> SignalStability;
    /// Creates the instance for one pipeline, in front of `next`.
    fn create(
        &self,
        host: Host,
        pipeline: &str,
        config: Self::Config,
        next: AnyConsumer,
    ) -> Result<ProcessorInstance, CreateError>;
}

/// An exporter type.
pub trait ExporterFactory: Send + Sync + 'static {
    /// Its configuration.
    type Config: ComponentConfig;
    /// The type name used in configs (`otlp`, `otlphttp`, `debug`).
    fn type_name(&self) -> &'static str;
    /// Which signals it takes.
    fn stability(&self) -> SignalStability;
    /// Creates the one instance for this id, serving `signals`.
    fn create(
        &self,
        host: Host,
        config: Self::Config,
        signals: SignalSet,
    ) -> Result<ExporterInstance, CreateError>;
}

/// An extension type.
pub trait ExtensionFactory: Send + Sync + 'static {
    /// Its configuration.
    type Config: ComponentConfig;
    /// The type name used in configs (`health_check`).
    fn type_name(&self) -> &'static str;
    /// Creates the instance.
    fn create(&self, host: Host, config: Self::Config) -> Result<Arc<dyn Component>, CreateError>;
}

/// What every erased factory offers the builder.
pub trait AnyFactory: Send + Sync {
    /// The type name.
    fn type_name(&self) -> &'static str;
    /// The default config, as the JSON model (for docs and `components`).
    fn default_config(&self) -> serde_json::Value;
    /// Decodes and validates a config (`null` means all defaults). Errors carry paths relative
    /// to the component.
    fn load_config(&self, value: serde_json::Value) -> Result<LoadedConfig, Vec<ConfigError>>;
    /// The crate that implements it, for `components`.
    fn module(&self) -> &'static str {
        "agentcol"
    }
}

/// A receiver factory, erased.
pub trait AnyReceiverFactory: AnyFactory {
    /// See [`ReceiverFactory::stability`].
    fn stability(&self) -> SignalStability;
    /// See [`ReceiverFactory::create`].
    fn create(
        &self,
        host: Host,
        config: &LoadedConfig,
        consumers: Consumers,
    ) -> Result<Arc<dyn Component>, CreateError>;
}

/// A processor factory, erased.
pub trait AnyProcessorFactory: AnyFactory {
    /// See [`ProcessorFactory::stability`].
    fn stability(&self) -> SignalStability;
    /// See [`ProcessorFactory::create`].
    fn create(
        &self,
        host: Host,
        pipeline: &str,
        config: &LoadedConfig,
        next: AnyConsumer,
    ) -> Result<ProcessorInstance, CreateError>;
}

/// An exporter factory, erased.
pub trait AnyExporterFactory: AnyFactory {
    /// See [`ExporterFactory::stability`].
    fn stability(&self) -> SignalStability;
    /// See [`ExporterFactory::create`].
    fn create(
        &self,
        host: Host,
        config: &LoadedConfig,
        signals: SignalSet,
    ) -> Result<ExporterInstance, CreateError>;
}

/// An extension factory, erased.
pub trait AnyExtensionFactory: AnyFactory {
    /// See [`ExtensionFactory::create`].
    fn create(&self, host: Host, config: &LoadedConfig) -> Result<Arc<dyn Component>, CreateError>;
}

macro_rules! erased_wrapper {
    ($wrapper:ident, $typed:ident, $erase:ident, $any:ident) => {
        struct $wrapper<F>(F, &'static str);

        impl<F: $typed> AnyFactory for $wrapper<F> {
            fn type_name(&self) -> &'static str {
                self.0.type_name()
            }
            fn default_config(&self) -> serde_json::Value {
                serde_json::to_value(F::Config::default()).unwrap_or(serde_json::Value::Null)
            }
            fn load_config(
                &self,
                value: serde_json::Value,
            ) -> Result<LoadedConfig, Vec<ConfigError>> {
                decode::<F::Config>(value).map(LoadedConfig::new)
            }
            fn module(&self) -> &'static str {
                self.1
            }
        }

        /// Erases a typed factory for the builder's registry. `module` names the crate and
        /// version for `components`: pass [`module_name!()`](crate::module_name).
        pub fn $erase<F: $typed>(factory: F, module: &'static str) -> Arc<dyn $any> {
            Arc::new($wrapper(factory, module))
        }
    };
}

erased_wrapper!(
    ErasedReceiver,
    ReceiverFactory,
    erase_receiver,
    AnyReceiverFactory
);
erased_wrapper!(
    ErasedProcessor,
    ProcessorFactory,
    erase_processor,
    AnyProcessorFactory
);
erased_wrapper!(
    ErasedExporter,
    ExporterFactory,
    erase_exporter,
    AnyExporterFactory
);
erased_wrapper!(
    ErasedExtension,
    ExtensionFactory,
    erase_extension,
    AnyExtensionFactory
);

impl<F: ReceiverFactory> AnyReceiverFactory for ErasedReceiver<F> {
    fn stability(&self) -> SignalStability {
        self.0.stability()
    }
    fn create(
        &self,
        host: Host,
        config: &LoadedConfig,
        consumers: Consumers,
    ) -> Result<Arc<dyn Component>, CreateError> {
        self.0.create(host, config.get::<F::Config>()?, consumers)
    }
}

impl<F: ProcessorFactory> AnyProcessorFactory for ErasedProcessor<F> {
    fn stability(&self) -> SignalStability {
        self.0.stability()
    }
    fn create(
        &self,
        host: Host,
        pipeline: &str,
        config: &LoadedConfig,
        next: AnyConsumer,
    ) -> Result<ProcessorInstance, CreateError> {
        self.0
            .create(host, pipeline, config.get::<F::Config>()?, next)
    }
}

impl<F: ExporterFactory> AnyExporterFactory for ErasedExporter<F> {
    fn stability(&self) -> SignalStability {
        self.0.stability()
    }
    fn create(
        &self,
        host: Host,
        config: &LoadedConfig,
        signals: SignalSet,
    ) -> Result<ExporterInstance, CreateError> {
        self.0.create(host, config.get::<F::Config>()?, signals)
    }
}

impl<F: ExtensionFactory> AnyExtensionFactory for ErasedExtension<F> {
    fn create(&self, host: Host, config: &LoadedConfig) -> Result<Arc<dyn Component>, CreateError> {
        self.0.create(host, config.get::<F::Config>()?)
    }
}

/// `"<crate name> <version>"` of the crate that expands it: the `module` for the erase functions.
#[macro_export]
macro_rules! module_name {
    () => {
        concat!(env!("CARGO_PKG_NAME"), " ", env!("CARGO_PKG_VERSION"))
    };
}
