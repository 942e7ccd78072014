//! Bad input gets the right status, never a panic, and costs nothing else.

use std::io::Write;
use std::time::Duration;

use crate::otlp::*;
use crate::support::*;

#[test]
fn bad_http_requests_get_precise_statuses_and_the_server_keeps_serving() {
    let w = Workdir::new();
    let (http_port, grpc, metrics) = (free_port(), free_port(), free_port());
    let cfg = format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc}
      http:
        endpoint: 127.0.0.1:{http_port}
        max_request_body_size: 65536
exporters:
  nop:
service:
  pipelines:
    logs: {{receivers: [otlp], exporters: [nop]}}
  telemetry:
    metrics:
      address: 127.0.0.1:{metrics}
"#
    );
    let f = w.write("c.yaml", &cfg);
    let mut a = Running::agentcol("agentcol", &w, &f);
    let proto = ("content-type", "application/x-protobuf");
    let good = logs_proto("bad", 0, 2);
    let mut sent_good = 0;
    let mut check_good = |label: &str| {
        let r = http(http_port, "POST", "/v1/logs", &[proto], &good);
        assert_eq!(r.status, 200, "good request after {label}");
        sent_good += 2;
    };

    let truncated = &good[..good.len() - 3];
    assert_eq!(
        http(http_port, "POST", "/v1/logs", &[proto], truncated).status,
        400,
        "truncated protobuf"
    );
    check_good("truncated protobuf");

    let json = ("content-type", "application/json");
    assert_eq!(
        http(
            http_port,
            "POST",
            "/v1/logs",
            &[json],
            b"{\"resourceLogs\": ["
        )
        .status,
        400,
        "invalid JSON"
    );
    check_good("invalid JSON");

    let r = http(
        http_port,
        "POST",
        "/v1/logs",
        &[("content-type", "text/plain")],
        b"hello",
    );
    assert_eq!(r.status, 415, "wrong content type");
    check_good("wrong content type");

    let r = http(http_port, "GET", "/v1/logs", &[], b"");
    assert_eq!(r.status, 405, "wrong method");
    check_good("wrong method");

    let big = logs_proto("big", 0, 2000);
    assert!(big.len() > 65536);
    assert_eq!(
        http(http_port, "POST", "/v1/logs", &[proto], &big).status,
        400,
        "oversized body"
    );
    check_good("oversized body");

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&good).unwrap();
    let mut corrupt = gz.finish().unwrap();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0xff;
    corrupt.truncate(corrupt.len() - 4);
    let r = http(
        http_port,
        "POST",
        "/v1/logs",
        &[proto, ("content-encoding", "gzip")],
        &corrupt,
    );
    assert_eq!(r.status, 400, "corrupt gzip");
    check_good("corrupt gzip");

    // JSON with a charset parameter is accepted.
    let body = serde_json::json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"timeUnixNano": "1700000000000000000", "body": {"stringValue": "json-ok"}}
    ]}]}]});
    let r = http(
        http_port,
        "POST",
        "/v1/logs",
        &[("content-type", "application/json; charset=utf-8")],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    sent_good += 1;

    assert!(a.alive(), "the collector died:\n{}", a.output());
    let accepted =
        r#"agentcol_receiver_accepted_log_records_total{receiver="otlp",transport="http"}"#;
    assert!(
        eventually(Duration::from_secs(5), || metric(metrics, accepted)
            == sent_good as f64),
        "accepted {} want {sent_good}",
        metric(metrics, accepted)
    );
    assert!(!a.output().contains("panicked"), "{}", a.output());
}

#[test]
fn a_truncated_grpc_message_is_refused_and_the_next_one_succeeds() {
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
    let w = Workdir::new();
    let (http_port, grpc, metrics) = (free_port(), free_port(), free_port());
    let f = w.write("c.yaml", &sink_config(grpc, http_port, metrics, "  nop:"));
    let mut a = Running::agentcol("agentcol", &w, &f);

    // A well-framed gRPC message whose protobuf is cut short.
    let good = logs_proto("grpc", 0, 3);
    let truncated = good[..good.len() - 2].to_vec();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{grpc}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        // Raw bytes through a plain HTTP/2 POST, as a broken client would send them.
        let mut raw = tonic::client::Grpc::new(channel.clone());
        raw.ready().await.unwrap();
        let status = raw
            .unary::<Vec<u8>, Vec<u8>, _>(
                tonic::Request::new(truncated),
                "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
                    .parse()
                    .unwrap(),
                RawCodec,
            )
            .await
            .expect_err("a truncated message must be refused");
        assert_ne!(status.code(), tonic::Code::Ok);
        let mut client = LogsServiceClient::new(channel);
        client
            .export(logs("grpc", 0, 3))
            .await
            .expect("the next good request succeeds");
    });
    assert!(a.alive());
    let accepted =
        r#"agentcol_receiver_accepted_log_records_total{receiver="otlp",transport="grpc"}"#;
    assert!(eventually(Duration::from_secs(5), || metric(
        metrics, accepted
    ) == 3.0));
}

/// Sends and receives raw bytes (so a test can send a broken message).
#[derive(Clone, Copy)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}
