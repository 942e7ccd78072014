//! Fake components for the builder's own tests: typed configs exercising every decode rule, and
//! a shared event log so tests can see creation, data flow, start and shutdown order.

use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use agentcol_component::lifecycle::NoLifecycle;
use agentcol_component::{
    async_trait, erase_exporter, erase_extension, erase_processor, erase_receiver, AnyConsumer,
    Component, ComponentConfig, ComponentError, ConfigError, ConsumeError, Consumer, Consumers,
    CreateError, Duration, ExporterFactory, ExporterInstance, ExtensionFactory, Host, Logs,
    ProcessorFactory, ProcessorInstance, ReceiverFactory, Secret, SignalData, SignalSet,
    SignalStability, Stability, Traces,
};
use serde::{Deserialize, Serialize};

use crate::registry::Registry;

/// Everything the fakes saw.
#[derive(Clone, Default)]
pub struct Log(pub Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }
    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecvConfig {
    pub endpoint: String,
    pub timeout: Duration,
    pub limit: u32,
    pub token: Secret,
    pub fail_start: bool,
}

impl Default for RecvConfig {
    fn default() -> Self {
        RecvConfig {
            endpoint: "127.0.0.1:4317".into(),
            timeout: Duration::from_secs(5),
            limit: 10,
            token: Secret::default(),
            fail_start: false,
        }
    }
}

impl ComponentConfig for RecvConfig {
    fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let errs = agentcol_component::net::validate_listener(
            &self.endpoint,
            &agentcol_component::net::AuthConfig {
                bearer_token: self.token.clone(),
            },
            "endpoint",
        );
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}

struct Lifecycle {
    log: Log,
    name: String,
    fail_start: bool,
}

#[async_trait]
impl Component for Lifecycle {
    async fn start(&self) -> Result<(), ComponentError> {
        if self.fail_start {
            return Err(ComponentError::Other("refusing to start".into()));
        }
        self.log.push(format!("start {}", self.name));
        Ok(())
    }
    async fn shutdown(&self) -> Result<(), ComponentError> {
        self.log.push(format!("stop {}", self.name));
        Ok(())
    }
}

/// A receiver that hands its consumers to the test.
pub struct FakeReceiver {
    pub log: Log,
    pub handles: Handles,
}

impl ReceiverFactory for FakeReceiver {
    type Config = RecvConfig;
    fn type_name(&self) -> &'static str {
        "fakercv"
    }
    fn stability(&self) -> SignalStability {
        SignalStability {
            traces: Some(Stability::Beta),
            metrics: None,
            logs: Some(Stability::Beta),
        }
    }
    fn create(
        &self,
        host: Host,
        config: RecvConfig,
        consumers: Consumers,
    ) -> Result<Arc<dyn Component>, CreateError> {
        self.log.push(format!("create receiver {}", host.id()));
        self.handles
            .lock()
            .unwrap()
            .push((host.id().to_string(), consumers));
        Ok(Arc::new(Lifecycle {
            log: self.log.clone(),
            name: format!("receiver {}", host.id()),
            fail_start: config.fail_start,
        }))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExpConfig {
    pub endpoint: String,
    pub headers: std::collections::BTreeMap<String, Secret>,
    pub fail: bool,
    pub delay: Duration,
}

impl ComponentConfig for ExpConfig {
    fn validate(&self) -> Result<(), Vec<ConfigError>> {
        if self.endpoint.is_empty() {
            return Err(vec![ConfigError::new(
                "",
                "at least one endpoint must be specified",
            )]);
        }
        Ok(())
    }
}

struct Recorder {
    log: Log,
    name: String,
    fail: bool,
    delay: StdDuration,
}

#[async_trait]
impl<T: SignalData> Consumer<T> for Recorder {
    async fn consume(&self, data: T) -> Result<(), ConsumeError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if self.fail {
            return Err(ConsumeError::retryable(format!("{} is down", self.name)));
        }
        self.log.push(format!(
            "{} got {} {}",
            self.name,
            data.item_count(),
            T::SIGNAL
        ));
        Ok(())
    }
}

/// An exporter that records what it got.
pub struct FakeExporter {
    pub log: Log,
}

impl ExporterFactory for FakeExporter {
    type Config = ExpConfig;
    fn type_name(&self) -> &'static str {
        "fakeexp"
    }
    fn stability(&self) -> SignalStability {
        SignalStability::all(Stability::Beta)
    }
    fn create(
        &self,
        host: Host,
        config: ExpConfig,
        signals: SignalSet,
    ) -> Result<ExporterInstance, CreateError> {
        let name = format!("exporter {}", host.id());
        self.log.push(format!(
            "create {name} for {:?}",
            signals.iter().map(|s| s.as_str()).collect::<Vec<_>>()
        ));
        let rec = Arc::new(Recorder {
            log: self.log.clone(),
            name: name.clone(),
            fail: config.fail,
            delay: config.delay.get(),
        });
        let mut consumers = Consumers::default();
        if signals.contains(agentcol_component::Signal::Logs) {
            consumers.logs = Some(rec.clone());
        }
        if signals.contains(agentcol_component::Signal::Traces) {
            consumers.traces = Some(rec.clone());
        }
        if signals.contains(agentcol_component::Signal::Metrics) {
            consumers.metrics = Some(rec);
        }
        Ok(ExporterInstance {
            consumers,
            component: Arc::new(Lifecycle {
                log: self.log.clone(),
                name,
                fail_start: false,
            }),
        })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcConfig {
    pub tag: String,
}

impl ComponentConfig for ProcConfig {}

struct PassThrough<T: SignalData> {
    next: Arc<dyn Consumer<T>>,
    log: Log,
    name: String,
}

#[async_trait]
impl<T: SignalData> Consumer<T> for PassThrough<T> {
    async fn consume(&self, data: T) -> Result<(), ConsumeError> {
        self.log
            .push(format!("{} saw {}", self.name, data.item_count()));
        self.next.consume(data).await
    }
}

/// A pass-through processor (logs only).
pub struct FakeProcessor {
    pub log: Log,
}

impl ProcessorFactory for FakeProcessor {
    type Config = ProcConfig;
    fn type_name(&self) -> &'static str {
        "fakeproc"
    }
    fn stability(&self) -> SignalStability {
        SignalStability {
            traces: None,
            metrics: Some(Stability::Beta),
            logs: Some(Stability::Beta),
        }
    }
    fn create(
        &self,
        host: Host,
        pipeline: &str,
        _config: ProcConfig,
        next: AnyConsumer,
    ) -> Result<ProcessorInstance, CreateError> {
        let name = format!("processor {} in {pipeline}", host.id());
        self.log.push(format!("create {name}"));
        let consumer = match next {
            AnyConsumer::Logs(next) => AnyConsumer::Logs(Arc::new(PassThrough::<Logs> {
                next,
                log: self.log.clone(),
                name: name.clone(),
            })),
            other => other,
        };
        Ok(ProcessorInstance {
            consumer,
            component: Arc::new(Lifecycle {
                log: self.log.clone(),
                name,
                fail_start: false,
            }),
        })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtConfig {}

impl ComponentConfig for ExtConfig {}

/// An extension with a lifecycle only.
pub struct FakeExtension {
    pub log: Log,
}

impl ExtensionFactory for FakeExtension {
    type Config = ExtConfig;
    fn type_name(&self) -> &'static str {
        "fakeext"
    }
    fn create(&self, host: Host, _c: ExtConfig) -> Result<Arc<dyn Component>, CreateError> {
        let _ = NoLifecycle;
        Ok(Arc::new(Lifecycle {
            log: self.log.clone(),
            name: format!("extension {}", host.id()),
            fail_start: false,
        }))
    }
}

/// What each fake receiver was created with, by id.
pub type Handles = Arc<Mutex<Vec<(String, Consumers)>>>;

/// A registry of the fakes, with the log and the receivers' consumers.
pub fn registry() -> (Registry, Log, Handles) {
    let log = Log::default();
    let handles = Arc::new(Mutex::new(Vec::new()));
    let m = "fake 0";
    let r = Registry::default()
        .receiver(erase_receiver(
            FakeReceiver {
                log: log.clone(),
                handles: handles.clone(),
            },
            m,
        ))
        .exporter(erase_exporter(FakeExporter { log: log.clone() }, m))
        .processor(erase_processor(FakeProcessor { log: log.clone() }, m))
        .extension(erase_extension(FakeExtension { log: log.clone() }, m));
    (r, log, handles)
}

/// One log record.
pub fn one_log() -> Logs {
    use agentcol_component::opentelemetry_proto::tonic::logs::v1::{
        LogRecord, ResourceLogs, ScopeLogs,
    };
    Logs {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord::default()],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// An empty traces request.
pub fn no_traces() -> Traces {
    Traces::default()
}
