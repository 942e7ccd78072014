//! The explicit table of compiled-in component factories.
//!
//! One place lists every component this distribution contains, each behind its Cargo feature, so
//! what is compiled in is visible in one file and `components` prints exactly this table. There
//! is no link-time registration magic.

use std::collections::BTreeMap;
use std::sync::Arc;

use agentcol_component::{
    AnyExporterFactory, AnyExtensionFactory, AnyProcessorFactory, AnyReceiverFactory,
};

/// Factories by type name, per kind.
#[derive(Default)]
pub struct Registry {
    /// Receiver factories.
    pub receivers: BTreeMap<&'static str, Arc<dyn AnyReceiverFactory>>,
    /// Processor factories.
    pub processors: BTreeMap<&'static str, Arc<dyn AnyProcessorFactory>>,
    /// Exporter factories.
    pub exporters: BTreeMap<&'static str, Arc<dyn AnyExporterFactory>>,
    /// Extension factories.
    pub extensions: BTreeMap<&'static str, Arc<dyn AnyExtensionFactory>>,
}

// The adders are used by `builtin()` only for the components compiled in, and by tests.
#[allow(dead_code)]
impl Registry {
    /// Adds a receiver factory.
    pub fn receiver(mut self, f: Arc<dyn AnyReceiverFactory>) -> Self {
        self.receivers.insert(f.type_name(), f);
        self
    }

    /// Adds a processor factory.
    pub fn processor(mut self, f: Arc<dyn AnyProcessorFactory>) -> Self {
        self.processors.insert(f.type_name(), f);
        self
    }

    /// Adds an exporter factory.
    pub fn exporter(mut self, f: Arc<dyn AnyExporterFactory>) -> Self {
        self.exporters.insert(f.type_name(), f);
        self
    }

    /// Adds an extension factory.
    pub fn extension(mut self, f: Arc<dyn AnyExtensionFactory>) -> Self {
        self.extensions.insert(f.type_name(), f);
        self
    }

    /// Every component compiled into this binary.
    #[allow(unused_mut)]
    pub fn builtin() -> Self {
        let mut r = Registry::default();
        #[cfg(feature = "receiver-otlp")]
        {
            r = r.receiver(agentcol_receiver_otlp::factory());
        }
        #[cfg(feature = "receiver-hook")]
        {
            r = r.receiver(agentcol_receiver_hook::factory());
        }
        #[cfg(feature = "processor-batch")]
        {
            r = r.processor(agentcol_processor_batch::factory());
        }
        #[cfg(feature = "processor-memory-limiter")]
        {
            r = r.processor(agentcol_processor_memory_limiter::factory());
        }
        #[cfg(feature = "exporter-otlp")]
        {
            r = r.exporter(agentcol_exporter_otlp::grpc_factory());
            r = r.exporter(agentcol_exporter_otlp::http_factory());
        }
        #[cfg(feature = "exporter-debug")]
        {
            r = r.exporter(agentcol_exporter_debug::factory());
        }
        #[cfg(feature = "exporter-nop")]
        {
            r = r.exporter(agentcol_exporter_nop::factory());
        }
        #[cfg(feature = "processor-dedupe")]
        {
            r = r.processor(agentcol_processor_dedupe::factory());
        }
        #[cfg(feature = "exporter-sqlite")]
        {
            r = r.exporter(agentcol_exporter_sqlite::factory());
        }
        #[cfg(feature = "extension-health-check")]
        {
            r = r.extension(agentcol_extension_health_check::factory());
        }
        r
    }
}
