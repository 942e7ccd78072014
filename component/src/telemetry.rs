//! Internal metrics: the standard families every component reports into, with otelcol's names
//! under the `agentcol_` prefix, rendered in the Prometheus text format by the service.
//!
//! The families are registered once, here, so names and labels cannot drift between components
//! (receivers: `receiver`, `transport`; exporters: `exporter`, `data_type`; processors:
//! `processor`, `pipeline`). Counters get the `_total` suffix on exposition, as otelcol's
//! Prometheus exporter does. Components that need more register them with [`Telemetry::counter`]
//! / [`Telemetry::gauge`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::data::Signal;
use crate::id::ComponentId;

/// Label set used by every family.
pub type Labels = Vec<(String, String)>;
/// A counter family.
pub type CounterFamily = Family<Labels, Counter>;
/// A gauge family.
pub type GaugeFamily = Family<Labels, Gauge>;

/// Counters per signal (spans, metric points, log records).
#[derive(Debug, Clone, Default)]
struct PerSignal {
    traces: CounterFamily,
    metrics: CounterFamily,
    logs: CounterFamily,
}

impl PerSignal {
    fn register(reg: &mut Registry, stem: &str, help: &str) -> Self {
        let p = PerSignal::default();
        for (signal, fam) in [
            (Signal::Traces, &p.traces),
            (Signal::Metrics, &p.metrics),
            (Signal::Logs, &p.logs),
        ] {
            reg.register(
                format!("agentcol_{stem}_{}", signal.item_name()),
                format!("{help} ({})", signal.item_name().replace('_', " ")),
                fam.clone(),
            );
        }
        p
    }

    fn get(&self, s: Signal) -> &CounterFamily {
        match s {
            Signal::Traces => &self.traces,
            Signal::Metrics => &self.metrics,
            Signal::Logs => &self.logs,
        }
    }
}

#[derive(Debug)]
struct Families {
    receiver_accepted: PerSignal,
    receiver_refused: PerSignal,
    exporter_sent: PerSignal,
    exporter_send_failed: PerSignal,
    exporter_enqueue_failed: PerSignal,
    exporter_queue_size: GaugeFamily,
    exporter_queue_capacity: GaugeFamily,
    processor_incoming: CounterFamily,
    processor_outgoing: CounterFamily,
}

/// Families registered by components, by name, so that registering is idempotent.
#[derive(Debug, Default)]
struct Extra {
    counters: BTreeMap<String, CounterFamily>,
    gauges: BTreeMap<String, GaugeFamily>,
}

/// The collector's internal metrics.
#[derive(Debug, Clone)]
pub struct Telemetry {
    registry: Arc<Mutex<Registry>>,
    families: Arc<Families>,
    extra: Arc<Mutex<Extra>>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// A registry holding the standard families.
    pub fn new() -> Self {
        let mut reg = Registry::default();
        let receiver_accepted = PerSignal::register(
            &mut reg,
            "receiver_accepted",
            "Items accepted by the pipeline and acknowledged to the client",
        );
        let receiver_refused = PerSignal::register(
            &mut reg,
            "receiver_refused",
            "Items refused: the client was told to retry or that the data is invalid",
        );
        let exporter_sent = PerSignal::register(
            &mut reg,
            "exporter_sent",
            "Items delivered to the destination",
        );
        let exporter_send_failed = PerSignal::register(
            &mut reg,
            "exporter_send_failed",
            "Items whose delivery failed for good (permanent error or retries exhausted)",
        );
        let exporter_enqueue_failed = PerSignal::register(
            &mut reg,
            "exporter_enqueue_failed",
            "Items refused because the sending queue was full",
        );
        let exporter_queue_size = GaugeFamily::default();
        reg.register(
            "agentcol_exporter_queue_size",
            "Requests waiting in the sending queue",
            exporter_queue_size.clone(),
        );
        let exporter_queue_capacity = GaugeFamily::default();
        reg.register(
            "agentcol_exporter_queue_capacity",
            "Capacity of the sending queue, in requests",
            exporter_queue_capacity.clone(),
        );
        let processor_incoming = CounterFamily::default();
        reg.register(
            "agentcol_processor_incoming_items",
            "Items that entered the processor",
            processor_incoming.clone(),
        );
        let processor_outgoing = CounterFamily::default();
        reg.register(
            "agentcol_processor_outgoing_items",
            "Items that left the processor",
            processor_outgoing.clone(),
        );
        Telemetry {
            registry: Arc::new(Mutex::new(reg)),
            families: Arc::new(Families {
                receiver_accepted,
                receiver_refused,
                exporter_sent,
                exporter_send_failed,
                exporter_enqueue_failed,
                exporter_queue_size,
                exporter_queue_capacity,
                processor_incoming,
                processor_outgoing,
            }),
            extra: Arc::default(),
        }
    }

    /// The counter family `name` (without the `_total` suffix), registered on first use: every
    /// later call with the same name returns the same family, so each instance of a component
    /// (one per pipeline, say) can simply ask for it.
    pub fn counter(&self, name: &str, help: &str) -> CounterFamily {
        let mut extra = self.extra.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = extra.counters.get(name) {
            return f.clone();
        }
        let fam = CounterFamily::default();
        if let Ok(mut reg) = self.registry.lock() {
            reg.register(name, help, fam.clone());
        }
        extra.counters.insert(name.to_string(), fam.clone());
        fam
    }

    /// The gauge family `name`, registered on first use (see [`Telemetry::counter`]).
    pub fn gauge(&self, name: &str, help: &str) -> GaugeFamily {
        let mut extra = self.extra.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = extra.gauges.get(name) {
            return f.clone();
        }
        let fam = GaugeFamily::default();
        if let Ok(mut reg) = self.registry.lock() {
            reg.register(name, help, fam.clone());
        }
        extra.gauges.insert(name.to_string(), fam.clone());
        fam
    }

    /// Every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(reg) = self.registry.lock() {
            // Writing into a String cannot fail.
            let _ = encode(&mut out, &reg);
        }
        out
    }

    /// The metrics a receiver reports.
    pub fn receiver(&self, id: &ComponentId, transport: &str) -> ReceiverTelemetry {
        ReceiverTelemetry {
            families: self.families.clone(),
            labels: vec![
                ("receiver".into(), id.to_string()),
                ("transport".into(), transport.into()),
            ],
        }
    }

    /// The metrics an exporter reports.
    pub fn exporter(&self, id: &ComponentId) -> ExporterTelemetry {
        ExporterTelemetry {
            families: self.families.clone(),
            id: id.to_string(),
        }
    }

    /// The metrics a processor reports, for one pipeline.
    pub fn processor(&self, id: &ComponentId, pipeline: &str) -> ProcessorTelemetry {
        let labels = vec![
            ("processor".into(), id.to_string()),
            ("pipeline".into(), pipeline.to_string()),
        ];
        ProcessorTelemetry {
            incoming: self
                .families
                .processor_incoming
                .get_or_create(&labels)
                .clone(),
            outgoing: self
                .families
                .processor_outgoing
                .get_or_create(&labels)
                .clone(),
        }
    }
}

/// A receiver's counters.
#[derive(Debug, Clone)]
pub struct ReceiverTelemetry {
    families: Arc<Families>,
    labels: Labels,
}

impl ReceiverTelemetry {
    /// `n` items of `signal` were accepted downstream and acknowledged.
    pub fn accepted(&self, signal: Signal, n: usize) {
        self.families
            .receiver_accepted
            .get(signal)
            .get_or_create(&self.labels)
            .inc_by(n as u64);
    }

    /// `n` items of `signal` were refused (the client got an error).
    pub fn refused(&self, signal: Signal, n: usize) {
        self.families
            .receiver_refused
            .get(signal)
            .get_or_create(&self.labels)
            .inc_by(n as u64);
    }
}

/// An exporter's counters and gauges.
#[derive(Debug, Clone)]
pub struct ExporterTelemetry {
    families: Arc<Families>,
    id: String,
}

impl ExporterTelemetry {
    fn labels(&self) -> Labels {
        vec![("exporter".into(), self.id.clone())]
    }

    fn labels_signal(&self, signal: Signal) -> Labels {
        vec![
            ("exporter".into(), self.id.clone()),
            ("data_type".into(), signal.as_str().into()),
        ]
    }

    /// `n` items were delivered.
    pub fn sent(&self, signal: Signal, n: usize) {
        self.families
            .exporter_sent
            .get(signal)
            .get_or_create(&self.labels())
            .inc_by(n as u64);
    }

    /// `n` items failed for good.
    pub fn send_failed(&self, signal: Signal, n: usize) {
        self.families
            .exporter_send_failed
            .get(signal)
            .get_or_create(&self.labels())
            .inc_by(n as u64);
    }

    /// `n` items were refused at the queue.
    pub fn enqueue_failed(&self, signal: Signal, n: usize) {
        self.families
            .exporter_enqueue_failed
            .get(signal)
            .get_or_create(&self.labels())
            .inc_by(n as u64);
    }

    /// Current queue depth (requests) for `signal`.
    pub fn queue_size(&self, signal: Signal, size: usize) {
        self.families
            .exporter_queue_size
            .get_or_create(&self.labels_signal(signal))
            .set(size as i64);
    }

    /// Queue capacity (requests) for `signal`.
    pub fn queue_capacity(&self, signal: Signal, capacity: usize) {
        self.families
            .exporter_queue_capacity
            .get_or_create(&self.labels_signal(signal))
            .set(capacity as i64);
    }
}

/// A processor's item counters.
#[derive(Debug, Clone)]
pub struct ProcessorTelemetry {
    incoming: Counter,
    outgoing: Counter,
}

impl ProcessorTelemetry {
    /// `n` items came in.
    pub fn incoming(&self, n: usize) {
        self.incoming.inc_by(n as u64);
    }

    /// `n` items went out.
    pub fn outgoing(&self, n: usize) {
        self.outgoing.inc_by(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registering_twice_returns_the_same_family() {
        let t = Telemetry::new();
        let a = t.counter("agentcol_test_things", "things");
        let b = t.counter("agentcol_test_things", "things");
        a.get_or_create(&vec![("k".into(), "v".into())]).inc();
        b.get_or_create(&vec![("k".into(), "v".into())]).inc();
        let text = t.render();
        assert_eq!(
            text.matches("# TYPE agentcol_test_things counter").count(),
            1
        );
        assert!(
            text.contains("agentcol_test_things_total{k=\"v\"} 2"),
            "{text}"
        );
    }

    #[test]
    fn renders_otelcol_style_names() {
        let t = Telemetry::new();
        let id: ComponentId = "otlp".parse().unwrap();
        t.receiver(&id, "grpc").accepted(Signal::Logs, 3);
        let e = t.exporter(&"otlp/peer".parse().unwrap());
        e.sent(Signal::Logs, 2);
        e.queue_capacity(Signal::Logs, 1000);
        let text = t.render();
        assert!(
            text.contains(
                "agentcol_receiver_accepted_log_records_total{receiver=\"otlp\",transport=\"grpc\"} 3"
            ),
            "{text}"
        );
        assert!(text.contains("agentcol_exporter_sent_log_records_total{exporter=\"otlp/peer\"} 2"));
        assert!(text.contains(
            "agentcol_exporter_queue_capacity{exporter=\"otlp/peer\",data_type=\"logs\"} 1000"
        ));
    }
}
