//! The `debug` exporter: prints what flows through a pipeline on the collector's log (stderr),
//! in the layout otelcol's debug exporter uses, so people can read both the same way.
//!
//! * `basic`: one line per request with its counts;
//! * `normal`: one line per record, span or data point;
//! * `detailed`: every resource, scope and item with all attributes.
//!
//! It accepts everything and never fails, so it never holds up a pipeline's acknowledgement.

use std::fmt::Write as _;
use std::sync::Arc;

use agentcol_component::lifecycle::NoLifecycle;
use agentcol_component::opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use agentcol_component::opentelemetry_proto::tonic::metrics::v1::metric::Data;
use agentcol_component::opentelemetry_proto::tonic::metrics::v1::number_data_point;
use agentcol_component::{
    async_trait, erase_exporter, module_name, AnyExporterFactory, ComponentConfig, ConsumeError,
    Consumer, Consumers, CreateError, ExporterFactory, ExporterInstance, Host, Logs, Metrics,
    Signal, SignalSet, SignalStability, Stability, Traces,
};
use serde::{Deserialize, Serialize};

/// How much to print.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verbosity {
    /// Counts per request.
    #[default]
    Basic,
    /// One line per item.
    Normal,
    /// Everything.
    Detailed,
}

/// `exporters.debug`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DebugConfig {
    /// How much to print.
    pub verbosity: Verbosity,
    /// Accepted for otelcol compatibility; every request is printed.
    pub sampling_initial: u32,
    /// Accepted for otelcol compatibility; every request is printed.
    pub sampling_thereafter: u32,
}

impl Default for DebugConfig {
    fn default() -> Self {
        DebugConfig {
            verbosity: Verbosity::Basic,
            sampling_initial: 2,
            sampling_thereafter: 1,
        }
    }
}

impl ComponentConfig for DebugConfig {}

/// Factory of the `debug` exporter.
#[derive(Debug, Clone, Copy, Default)]
pub struct DebugExporterFactory;

impl ExporterFactory for DebugExporterFactory {
    type Config = DebugConfig;

    fn type_name(&self) -> &'static str {
        "debug"
    }

    fn stability(&self) -> SignalStability {
        SignalStability::all(Stability::Beta)
    }

    fn create(
        &self,
        host: Host,
        config: DebugConfig,
        signals: SignalSet,
    ) -> Result<ExporterInstance, CreateError> {
        let printer = Arc::new(Printer {
            id: host.id().to_string(),
            verbosity: config.verbosity,
        });
        let mut consumers = Consumers::default();
        for s in signals.iter() {
            match s {
                Signal::Traces => consumers.traces = Some(printer.clone()),
                Signal::Metrics => consumers.metrics = Some(printer.clone()),
                Signal::Logs => consumers.logs = Some(printer.clone()),
            }
        }
        Ok(ExporterInstance {
            consumers,
            component: Arc::new(NoLifecycle),
        })
    }
}

/// The `debug` exporter factory, erased for the registry.
pub fn factory() -> Arc<dyn AnyExporterFactory> {
    erase_exporter(DebugExporterFactory, module_name!())
}

struct Printer {
    id: String,
    verbosity: Verbosity,
}

impl Printer {
    fn emit(&self, text: String) {
        tracing::info!(target: "agentcol::debug", exporter = %self.id, "{text}");
    }
}

/// `Str(x)`, `Int(1)`, … as otelcol prints values.
pub fn value(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => format!("Str({s})"),
        Some(any_value::Value::IntValue(i)) => format!("Int({i})"),
        Some(any_value::Value::DoubleValue(d)) => format!("Double({d})"),
        Some(any_value::Value::BoolValue(b)) => format!("Bool({b})"),
        Some(any_value::Value::BytesValue(b)) => format!("Bytes({})", hex(b)),
        Some(any_value::Value::ArrayValue(a)) => format!(
            "Slice([{}])",
            a.values.iter().map(value).collect::<Vec<_>>().join(", ")
        ),
        Some(any_value::Value::KvlistValue(kv)) => format!(
            "Map({{{}}})",
            kv.values
                .iter()
                .map(|k| format!(
                    "{}: {}",
                    k.key,
                    k.value.as_ref().map(value).unwrap_or_default()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(any_value::Value::StringValueStrindex(i)) => format!("StrIndex({i})"),
        None => "Empty()".into(),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn attrs(out: &mut String, title: &str, kvs: &[KeyValue]) {
    if kvs.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title}:");
    for kv in kvs {
        let _ = writeln!(
            out,
            "     -> {}: {}",
            kv.key,
            kv.value
                .as_ref()
                .map(value)
                .unwrap_or_else(|| "Empty()".into())
        );
    }
}

fn compact(kvs: &[KeyValue]) -> String {
    kvs.iter()
        .map(|kv| {
            format!(
                "{}={}",
                kv.key,
                kv.value.as_ref().map(value).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[async_trait]
impl Consumer<Logs> for Printer {
    async fn consume(&self, data: Logs) -> Result<(), ConsumeError> {
        let records: usize = data
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum();
        let mut out = format!(
            "Logs: resource logs: {}, log records: {records}",
            data.resource_logs.len()
        );
        match self.verbosity {
            Verbosity::Basic => {}
            Verbosity::Normal => {
                for r in data
                    .resource_logs
                    .iter()
                    .flat_map(|r| &r.scope_logs)
                    .flat_map(|s| &s.log_records)
                {
                    let body = r.body.as_ref().map(value).unwrap_or_default();
                    let _ = write!(
                        out,
                        "\n{} {} {body} {}",
                        r.time_unix_nano,
                        r.severity_text,
                        compact(&r.attributes)
                    );
                }
            }
            Verbosity::Detailed => {
                for (i, rl) in data.resource_logs.iter().enumerate() {
                    let _ = writeln!(out, "\nResourceLog #{i}");
                    if let Some(res) = &rl.resource {
                        attrs(&mut out, "Resource attributes", &res.attributes);
                    }
                    for (j, sl) in rl.scope_logs.iter().enumerate() {
                        let _ = writeln!(out, "ScopeLogs #{j}");
                        if let Some(s) = &sl.scope {
                            let _ = writeln!(out, "InstrumentationScope {} {}", s.name, s.version);
                        }
                        for (k, r) in sl.log_records.iter().enumerate() {
                            let _ = writeln!(out, "LogRecord #{k}");
                            let _ =
                                writeln!(out, "ObservedTimestamp: {}", r.observed_time_unix_nano);
                            let _ = writeln!(out, "Timestamp: {}", r.time_unix_nano);
                            let _ = writeln!(out, "SeverityText: {}", r.severity_text);
                            let _ = writeln!(out, "SeverityNumber: {}", r.severity_number);
                            if !r.event_name.is_empty() {
                                let _ = writeln!(out, "EventName: {}", r.event_name);
                            }
                            let _ = writeln!(
                                out,
                                "Body: {}",
                                r.body
                                    .as_ref()
                                    .map(value)
                                    .unwrap_or_else(|| "Empty()".into())
                            );
                            attrs(&mut out, "Attributes", &r.attributes);
                            let _ = writeln!(out, "Trace ID: {}", hex(&r.trace_id));
                            let _ = writeln!(out, "Span ID: {}", hex(&r.span_id));
                            let _ = writeln!(out, "Flags: {}", r.flags);
                        }
                    }
                }
            }
        }
        self.emit(out);
        Ok(())
    }
}

#[async_trait]
impl Consumer<Traces> for Printer {
    async fn consume(&self, data: Traces) -> Result<(), ConsumeError> {
        let spans: usize = data
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        let mut out = format!(
            "Traces: resource spans: {}, spans: {spans}",
            data.resource_spans.len()
        );
        match self.verbosity {
            Verbosity::Basic => {}
            Verbosity::Normal => {
                for s in data
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .flat_map(|s| &s.spans)
                {
                    let _ = write!(
                        out,
                        "\n{} {} {} {}",
                        s.name,
                        hex(&s.trace_id),
                        hex(&s.span_id),
                        compact(&s.attributes)
                    );
                }
            }
            Verbosity::Detailed => {
                for (i, rs) in data.resource_spans.iter().enumerate() {
                    let _ = writeln!(out, "\nResourceSpans #{i}");
                    if let Some(res) = &rs.resource {
                        attrs(&mut out, "Resource attributes", &res.attributes);
                    }
                    for (j, ss) in rs.scope_spans.iter().enumerate() {
                        let _ = writeln!(out, "ScopeSpans #{j}");
                        if let Some(s) = &ss.scope {
                            let _ = writeln!(out, "InstrumentationScope {} {}", s.name, s.version);
                        }
                        for (k, s) in ss.spans.iter().enumerate() {
                            let _ = writeln!(out, "Span #{k}");
                            let _ = writeln!(out, "    Trace ID       : {}", hex(&s.trace_id));
                            let _ =
                                writeln!(out, "    Parent ID      : {}", hex(&s.parent_span_id));
                            let _ = writeln!(out, "    ID             : {}", hex(&s.span_id));
                            let _ = writeln!(out, "    Name           : {}", s.name);
                            let _ = writeln!(out, "    Kind           : {}", s.kind);
                            let _ =
                                writeln!(out, "    Start time     : {}", s.start_time_unix_nano);
                            let _ = writeln!(out, "    End time       : {}", s.end_time_unix_nano);
                            attrs(&mut out, "Attributes", &s.attributes);
                        }
                    }
                }
            }
        }
        self.emit(out);
        Ok(())
    }
}

#[async_trait]
impl Consumer<Metrics> for Printer {
    async fn consume(&self, data: Metrics) -> Result<(), ConsumeError> {
        use agentcol_component::SignalData;
        let metrics: usize = data
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .map(|s| s.metrics.len())
            .sum();
        let mut out = format!(
            "Metrics: resource metrics: {}, metrics: {metrics}, data points: {}",
            data.resource_metrics.len(),
            data.item_count()
        );
        if self.verbosity == Verbosity::Basic {
            self.emit(out);
            return Ok(());
        }
        for (i, rm) in data.resource_metrics.iter().enumerate() {
            if self.verbosity == Verbosity::Detailed {
                let _ = writeln!(out, "\nResourceMetrics #{i}");
                if let Some(res) = &rm.resource {
                    attrs(&mut out, "Resource attributes", &res.attributes);
                }
            }
            for sm in &rm.scope_metrics {
                for m in &sm.metrics {
                    let points: Vec<(String, &[KeyValue])> = match &m.data {
                        Some(Data::Gauge(g)) => g
                            .data_points
                            .iter()
                            .map(|p| (number(&p.value), &p.attributes[..]))
                            .collect(),
                        Some(Data::Sum(s)) => s
                            .data_points
                            .iter()
                            .map(|p| (number(&p.value), &p.attributes[..]))
                            .collect(),
                        Some(Data::Histogram(h)) => h
                            .data_points
                            .iter()
                            .map(|p| {
                                (
                                    format!("count={} sum={:?}", p.count, p.sum),
                                    &p.attributes[..],
                                )
                            })
                            .collect(),
                        Some(Data::ExponentialHistogram(h)) => h
                            .data_points
                            .iter()
                            .map(|p| {
                                (
                                    format!("count={} sum={:?}", p.count, p.sum),
                                    &p.attributes[..],
                                )
                            })
                            .collect(),
                        Some(Data::Summary(s)) => s
                            .data_points
                            .iter()
                            .map(|p| {
                                (
                                    format!("count={} sum={}", p.count, p.sum),
                                    &p.attributes[..],
                                )
                            })
                            .collect(),
                        None => Vec::new(),
                    };
                    for (v, a) in points {
                        let _ = write!(out, "\n{} {v} {}", m.name, compact(a));
                    }
                }
            }
        }
        self.emit(out);
        Ok(())
    }
}

fn number(v: &Option<number_data_point::Value>) -> String {
    match v {
        Some(number_data_point::Value::AsInt(i)) => i.to_string(),
        Some(number_data_point::Value::AsDouble(d)) => d.to_string(),
        None => "none".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentcol_component::opentelemetry_proto::tonic::logs::v1::{
        LogRecord, ResourceLogs, ScopeLogs,
    };
    use agentcol_component::ComponentKind;

    fn logs() -> Logs {
        Logs {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("hello body".into())),
                        }),
                        attributes: vec![KeyValue {
                            key: "k".into(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::IntValue(7)),
                            }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn values_print_like_otelcol() {
        let v = AnyValue {
            value: Some(any_value::Value::StringValue("x".into())),
        };
        assert_eq!(value(&v), "Str(x)");
        assert_eq!(
            value(&AnyValue {
                value: Some(any_value::Value::BoolValue(true))
            }),
            "Bool(true)"
        );
        assert_eq!(value(&AnyValue::default()), "Empty()");
    }

    #[tokio::test]
    async fn every_verbosity_accepts_all_signals() {
        for verbosity in ["basic", "normal", "detailed"] {
            let cfg = factory()
                .load_config(serde_json::json!({"verbosity": verbosity}))
                .unwrap();
            let host = Host::for_test(ComponentKind::Exporter, "debug", &std::env::temp_dir());
            let signals: SignalSet = Signal::ALL.into_iter().collect();
            let inst = factory().create(host, &cfg, signals).unwrap();
            assert_eq!(inst.consumers.logs.unwrap().consume(logs()).await, Ok(()));
            assert_eq!(
                inst.consumers
                    .traces
                    .unwrap()
                    .consume(Traces::default())
                    .await,
                Ok(())
            );
            assert_eq!(
                inst.consumers
                    .metrics
                    .unwrap()
                    .consume(Metrics::default())
                    .await,
                Ok(())
            );
        }
        assert!(factory()
            .load_config(serde_json::json!({"verbosity": "loud"}))
            .is_err());
    }
}
