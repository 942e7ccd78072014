//! Building OTLP requests with known, unique record bodies.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prost::Message;

/// The body of record `i` of run `run`: unique, and easy to find in any debug output.
pub fn body(run: &str, i: usize) -> String {
    format!("rec:{run}:{i};")
}

/// A logs request with records `first..first+n`.
pub fn logs(run: &str, first: usize, n: usize) -> ExportLogsServiceRequest {
    let s = |v: String| AnyValue {
        value: Some(any_value::Value::StringValue(v)),
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: (first..first + n)
                    .map(|i| LogRecord {
                        time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
                        body: Some(s(body(run, i))),
                        attributes: vec![KeyValue {
                            key: "run.id".into(),
                            value: Some(s(run.to_string())),
                            ..Default::default()
                        }],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The same, encoded as protobuf.
pub fn logs_proto(run: &str, first: usize, n: usize) -> Vec<u8> {
    logs(run, first, n).encode_to_vec()
}

/// A receiver (A) on the given ports that forwards logs over gRPC to `dest_port` with the given
/// queue and retry settings, plus its metrics endpoint.
pub fn forwarder_config(
    http: u16,
    grpc: u16,
    metrics: u16,
    dest_port: u16,
    exporter_extra: &str,
) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc}
      http:
        endpoint: 127.0.0.1:{http}
exporters:
  otlp:
    endpoint: 127.0.0.1:{dest_port}
    tls:
      insecure: true
{exporter_extra}
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [otlp]
  telemetry:
    metrics:
      address: 127.0.0.1:{metrics}
"#
    )
}

/// A destination (B): OTLP gRPC on `grpc` into `exporter` (`nop` or a `debug` block).
pub fn sink_config(grpc: u16, http: u16, metrics: u16, exporter: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc}
      http:
        endpoint: 127.0.0.1:{http}
exporters:
{exporter}
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [{name}]
    traces:
      receivers: [otlp]
      exporters: [{name}]
    metrics:
      receivers: [otlp]
      exporters: [{name}]
  telemetry:
    metrics:
      address: 127.0.0.1:{metrics}
"#,
        name = exporter.trim().split(':').next().unwrap_or("nop").trim()
    )
}
