//! The `nop` exporter: accepts every request and discards it.
//!
//! It exists for the same reasons as otelcol's `nop` exporter: a pipeline needs at least one
//! exporter, tests want a sink that never fails, and benchmarks want to measure a collector's
//! receive path without an exporter's cost. Nothing it accepts is kept, so never use it where the
//! data matters.

use std::sync::Arc;

use agentcol_component::lifecycle::NoLifecycle;
use agentcol_component::{
    async_trait, erase_exporter, module_name, AnyExporterFactory, ComponentConfig, ConsumeError,
    Consumer, Consumers, CreateError, ExporterFactory, ExporterInstance, Host, SignalData,
    SignalSet, SignalStability, Stability,
};
use serde::{Deserialize, Serialize};

/// The `nop` exporter has no settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NopConfig {}

impl ComponentConfig for NopConfig {}

/// Factory of the `nop` exporter.
#[derive(Debug, Clone, Copy, Default)]
pub struct NopExporterFactory;

struct Discard;

#[async_trait]
impl<T: SignalData> Consumer<T> for Discard {
    async fn consume(&self, _data: T) -> Result<(), ConsumeError> {
        Ok(())
    }
}

impl ExporterFactory for NopExporterFactory {
    type Config = NopConfig;

    fn type_name(&self) -> &'static str {
        "nop"
    }

    fn stability(&self) -> SignalStability {
        SignalStability::all(Stability::Stable)
    }

    fn create(
        &self,
        _host: Host,
        _config: NopConfig,
        signals: SignalSet,
    ) -> Result<ExporterInstance, CreateError> {
        let discard = Arc::new(Discard);
        let mut consumers = Consumers::default();
        for signal in signals.iter() {
            match signal {
                agentcol_component::Signal::Traces => consumers.traces = Some(discard.clone()),
                agentcol_component::Signal::Metrics => consumers.metrics = Some(discard.clone()),
                agentcol_component::Signal::Logs => consumers.logs = Some(discard.clone()),
            }
        }
        Ok(ExporterInstance {
            consumers,
            component: Arc::new(NoLifecycle),
        })
    }
}

/// The `nop` exporter factory, erased for the registry.
pub fn factory() -> Arc<dyn AnyExporterFactory> {
    erase_exporter(NopExporterFactory, module_name!())
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentcol_component::{ComponentKind, Logs, Signal};

    #[tokio::test]
    async fn accepts_every_signal_it_was_asked_for() {
        let dir = std::env::temp_dir();
        let host = Host::for_test(ComponentKind::Exporter, "nop", &dir);
        let signals: SignalSet = [Signal::Logs].into_iter().collect();
        let inst = NopExporterFactory
            .create(host, NopConfig::default(), signals)
            .unwrap();
        assert!(inst.consumers.traces.is_none());
        let logs = inst.consumers.logs.unwrap();
        assert_eq!(logs.consume(Logs::default()).await, Ok(()));
        assert!(factory().load_config(serde_json::json!({"x": 1})).is_err());
    }
}
