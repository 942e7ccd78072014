//! What differs between the three signals on the wire: paths, responses, partial success, and
//! the gRPC client call.

use agentcol_component::{Logs, Metrics, SignalData, Traces};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;

/// A signal's request type as the exporters send it.
#[async_trait::async_trait]
pub trait Wire: SignalData + prost::Message + serde::Serialize {
    /// The OTLP/HTTP path appended to a base endpoint.
    const HTTP_PATH: &'static str;
    /// The export response.
    type Response: prost::Message + Default + serde::de::DeserializeOwned + Send;
    /// Items the server rejected (partial success) and its message.
    fn rejected(response: &Self::Response) -> (u64, String);
    /// One gRPC export call.
    async fn grpc_export(
        channel: Channel,
        compression: Option<CompressionEncoding>,
        request: tonic::Request<Self>,
    ) -> Result<Self::Response, tonic::Status>;
}

macro_rules! wire {
    ($ty:ty, $path:literal, $resp:ty, $client:ident, $field:ident) => {
        #[async_trait::async_trait]
        impl Wire for $ty {
            const HTTP_PATH: &'static str = $path;
            type Response = $resp;
            fn rejected(response: &$resp) -> (u64, String) {
                response
                    .partial_success
                    .as_ref()
                    .map(|p| (p.$field.max(0) as u64, p.error_message.clone()))
                    .unwrap_or((0, String::new()))
            }
            async fn grpc_export(
                channel: Channel,
                compression: Option<CompressionEncoding>,
                request: tonic::Request<Self>,
            ) -> Result<$resp, tonic::Status> {
                let mut client = $client::new(channel).max_decoding_message_size(64 * 1024 * 1024);
                if let Some(c) = compression {
                    client = client.send_compressed(c);
                }
                client.export(request).await.map(|r| r.into_inner())
            }
        }
    };
}

wire!(
    Logs,
    "/v1/logs",
    ExportLogsServiceResponse,
    LogsServiceClient,
    rejected_log_records
);
wire!(
    Traces,
    "/v1/traces",
    ExportTraceServiceResponse,
    TraceServiceClient,
    rejected_spans
);
wire!(
    Metrics,
    "/v1/metrics",
    ExportMetricsServiceResponse,
    MetricsServiceClient,
    rejected_data_points
);
