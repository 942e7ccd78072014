//! The three signals and the data types that carry them.
//!
//! Data flows between components as the OTLP export request of its signal, exactly as the
//! `opentelemetry-proto` crate generates it, so a receiver hands over what it decoded and an
//! exporter sends what it was given: no conversion on the hot path. [`SignalData`] is the one
//! trait that lets pipelines, batching and fan-out be written once for all three.

use std::fmt;
use std::str::FromStr;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data as MetricData;
use opentelemetry_proto::tonic::metrics::v1::Metric;

/// Log records: the signal every agent event travels on.
pub type Logs = ExportLogsServiceRequest;

/// One logs request holding `records` under a single empty resource and scope (what components
/// emit for records they made themselves, and what tests and benchmarks feed).
pub fn logs_from(records: Vec<opentelemetry_proto::tonic::logs::v1::LogRecord>) -> Logs {
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    Logs {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
/// Spans.
pub type Traces = ExportTraceServiceRequest;
/// Metrics (items are data points).
pub type Metrics = ExportMetricsServiceRequest;

/// A telemetry signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Metrics.
    Metrics,
    /// Log records.
    Logs,
}

impl Signal {
    /// All signals, in the order otelcol lists them.
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    /// `traces`, `metrics` or `logs`.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    /// The item word used in metric names: `spans`, `metric_points`, `log_records`.
    pub fn item_name(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Metrics => "metric_points",
            Signal::Logs => "log_records",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Signal {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "traces" => Ok(Signal::Traces),
            "metrics" => Ok(Signal::Metrics),
            "logs" => Ok(Signal::Logs),
            _ => Err(()),
        }
    }
}

/// A small set of signals (which signals a component instance must serve).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SignalSet {
    bits: u8,
}

impl SignalSet {
    fn bit(s: Signal) -> u8 {
        match s {
            Signal::Traces => 1,
            Signal::Metrics => 2,
            Signal::Logs => 4,
        }
    }

    /// The empty set.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Adds a signal.
    pub fn insert(&mut self, s: Signal) {
        self.bits |= Self::bit(s);
    }

    /// Whether the set holds `s`.
    pub fn contains(&self, s: Signal) -> bool {
        self.bits & Self::bit(s) != 0
    }

    /// The signals in the set, in [`Signal::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = Signal> + '_ {
        Signal::ALL.into_iter().filter(|s| self.contains(*s))
    }
}

impl FromIterator<Signal> for SignalSet {
    fn from_iter<I: IntoIterator<Item = Signal>>(iter: I) -> Self {
        let mut set = SignalSet::empty();
        for s in iter {
            set.insert(s);
        }
        set
    }
}

/// What every signal's data type offers the pipeline.
pub trait SignalData: Clone + Default + fmt::Debug + PartialEq + Send + Sync + 'static {
    /// Which signal this type carries.
    const SIGNAL: Signal;

    /// Items in the request: spans, metric data points or log records.
    fn item_count(&self) -> usize;

    /// Moves every resource of `other` to the end of `self`.
    fn append(&mut self, other: Self);

    /// Removes the first `max` items (at least one whole item, never a partial one) and returns
    /// them as a new request with the same resource and scope framing. Metrics are split at
    /// whole-metric granularity, so the returned request may hold somewhat more than `max`
    /// data points when one metric carries many.
    fn split_front(&mut self, max: usize) -> Self;
}

/// Generic split over the three-level resource → scope → items nesting shared by all signals.
macro_rules! split_nested {
    ($self:ident, $max:ident, $res_field:ident, $scope_field:ident, $items_field:ident, $count:expr) => {{
        let mut out = Self::default();
        let mut budget = $max.max(1);
        let mut resources = std::mem::take(&mut $self.$res_field).into_iter();
        for mut res in resources.by_ref() {
            if budget == 0 {
                $self.$res_field.push(res);
                continue;
            }
            let mut taken_scopes = Vec::new();
            let mut kept_scopes = Vec::new();
            for mut scope in std::mem::take(&mut res.$scope_field) {
                if budget == 0 {
                    kept_scopes.push(scope);
                    continue;
                }
                let items = std::mem::take(&mut scope.$items_field);
                let mut take = Vec::new();
                let mut keep = Vec::new();
                for item in items {
                    let n: usize = $count(&item);
                    if budget > 0 && (n <= budget || take.is_empty()) {
                        budget = budget.saturating_sub(n);
                        take.push(item);
                    } else {
                        keep.push(item);
                    }
                }
                if !keep.is_empty() {
                    let mut rest = scope.clone();
                    rest.$items_field = keep;
                    kept_scopes.push(rest);
                }
                if !take.is_empty() {
                    scope.$items_field = take;
                    taken_scopes.push(scope);
                }
            }
            if !kept_scopes.is_empty() {
                let mut rest = res.clone();
                rest.$scope_field = kept_scopes;
                $self.$res_field.push(rest);
            }
            if !taken_scopes.is_empty() {
                res.$scope_field = taken_scopes;
                out.$res_field.push(res);
            }
        }
        out
    }};
}

impl SignalData for Logs {
    const SIGNAL: Signal = Signal::Logs;

    fn item_count(&self) -> usize {
        self.resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum()
    }

    fn append(&mut self, other: Self) {
        self.resource_logs.extend(other.resource_logs);
    }

    fn split_front(&mut self, max: usize) -> Self {
        split_nested!(self, max, resource_logs, scope_logs, log_records, |_| 1)
    }
}

impl SignalData for Traces {
    const SIGNAL: Signal = Signal::Traces;

    fn item_count(&self) -> usize {
        self.resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum()
    }

    fn append(&mut self, other: Self) {
        self.resource_spans.extend(other.resource_spans);
    }

    fn split_front(&mut self, max: usize) -> Self {
        split_nested!(self, max, resource_spans, scope_spans, spans, |_| 1)
    }
}

/// Data points in one metric.
pub fn metric_point_count(m: &Metric) -> usize {
    match &m.data {
        Some(MetricData::Gauge(g)) => g.data_points.len(),
        Some(MetricData::Sum(s)) => s.data_points.len(),
        Some(MetricData::Histogram(h)) => h.data_points.len(),
        Some(MetricData::ExponentialHistogram(h)) => h.data_points.len(),
        Some(MetricData::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

impl SignalData for Metrics {
    const SIGNAL: Signal = Signal::Metrics;

    fn item_count(&self) -> usize {
        self.resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .map(metric_point_count)
            .sum()
    }

    fn append(&mut self, other: Self) {
        self.resource_metrics.extend(other.resource_metrics);
    }

    fn split_front(&mut self, max: usize) -> Self {
        split_nested!(
            self,
            max,
            resource_metrics,
            scope_metrics,
            metrics,
            |m: &Metric| metric_point_count(m).max(1)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

    fn logs(shape: &[&[usize]]) -> Logs {
        Logs {
            resource_logs: shape
                .iter()
                .map(|scopes| ResourceLogs {
                    scope_logs: scopes
                        .iter()
                        .map(|n| ScopeLogs {
                            log_records: (0..*n)
                                .map(|i| LogRecord {
                                    time_unix_nano: i as u64,
                                    ..Default::default()
                                })
                                .collect(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn split_front_takes_exactly_max_items_and_keeps_the_rest() {
        let mut l = logs(&[&[3, 2], &[4]]);
        assert_eq!(l.item_count(), 9);
        let head = l.split_front(4);
        assert_eq!(head.item_count(), 4);
        assert_eq!(l.item_count(), 5);
        let head2 = l.split_front(100);
        assert_eq!(head2.item_count(), 5);
        assert_eq!(l.item_count(), 0);
        assert!(l.resource_logs.is_empty());
    }

    #[test]
    fn split_then_append_preserves_order() {
        let original = logs(&[&[3, 2], &[4]]);
        let mut rest = original.clone();
        let mut rebuilt = Logs::default();
        while rest.item_count() > 0 {
            rebuilt.append(rest.split_front(2));
        }
        let times = |l: &Logs| -> Vec<u64> {
            l.resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .flat_map(|s| &s.log_records)
                .map(|r| r.time_unix_nano)
                .collect()
        };
        assert_eq!(times(&rebuilt), times(&original));
    }

    #[test]
    fn signal_set_iterates_in_order() {
        let set: SignalSet = [Signal::Logs, Signal::Traces].into_iter().collect();
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![Signal::Traces, Signal::Logs]
        );
        assert!(!set.contains(Signal::Metrics));
    }
}
