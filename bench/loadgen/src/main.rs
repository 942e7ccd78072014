//! `agentcol-loadgen`: sends one pre-encoded, agent-shaped OTLP logs request over and over, from
//! N concurrent senders, for a fixed time, and reports what was acknowledged.
//!
//! The request is encoded once, so the generator spends its time on the wire, not on protobuf:
//! gRPC goes through a pass-through codec, HTTP posts the same bytes. Only acknowledged records
//! (gRPC OK / HTTP 200) count.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Buf, BufMut, Bytes};
use clap::Parser;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

#[derive(Debug, Parser)]
#[command(about = "OTLP logs load generator (agent-shaped records)")]
struct Args {
    /// grpc or http.
    #[arg(long, default_value = "grpc")]
    protocol: String,
    /// host:port.
    #[arg(long)]
    endpoint: String,
    /// Log records per request.
    #[arg(long, default_value_t = 100)]
    records_per_request: usize,
    /// Concurrent senders.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seconds of measured load.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of unmeasured load first.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Send a new session's events in every request (Codex turns: prompt, tool decision,
    /// tool result, answer), so a deduplicating store has new events to write each time,
    /// instead of the same pre-encoded request.
    #[arg(long)]
    unique: bool,
}

/// Request `seq`: `n` records of a fresh Codex thread, four per turn, shaped as Codex 0.169
/// sends them (every attribute a string, the turn known by trace id, the answer by turn id).
fn unique_request(n: usize, seq: u64) -> ExportLogsServiceRequest {
    let thread = format!("019a7c3e-0000-7000-8000-{seq:012x}");
    let records = (0..n)
        .map(|i| {
            let turn = i / 4;
            let mut trace = [0u8; 16];
            trace[..8].copy_from_slice(&seq.to_be_bytes());
            trace[8..].copy_from_slice(&(turn as u64 + 1).to_be_bytes());
            let call = format!("call_{seq:x}_{turn}");
            let time = 1_795_000_000_000_000_000 + seq * 1_000_000 + i as u64;
            let mut attrs = vec![
                kv("conversation.id", &thread),
                kv("event.timestamp", "2026-11-22T14:11:14.530Z"),
                kv("model", "gpt-5.5"),
                kv("originator", "codex_exec"),
            ];
            match i % 4 {
                0 => {
                    attrs.push(kv("event.name", "codex.user_prompt"));
                    attrs.push(kv("prompt", "List the files and explain the layout of this crate."));
                }
                1 => {
                    attrs.push(kv("event.name", "codex.tool_decision"));
                    attrs.push(kv("tool_name", "exec_command"));
                    attrs.push(kv("call_id", &call));
                    attrs.push(kv("decision", "approved"));
                }
                2 => {
                    attrs.push(kv("event.name", "codex.tool_result"));
                    attrs.push(kv("tool_name", "exec_command"));
                    attrs.push(kv("call_id", &call));
                    attrs.push(kv("arguments", "{\"cmd\": \"ls -la\", \"yield_time_ms\": 5000}"));
                    attrs.push(kv("duration_ms", "91"));
                    attrs.push(kv("success", "true"));
                    attrs.push(kv("output", "Process exited with code 0\nOutput:\ntotal 48\n-rw-r--r-- 1 dev dev 1320 Cargo.toml\n-rw-r--r-- 1 dev dev 911 README.md\ndrwxr-xr-x 3 dev dev 4096 src\n"));
                }
                _ => {
                    attrs.push(kv("event.name", "codex.agent_response"));
                    attrs.push(kv("turn.id", &format!("019a7c3e-{seq:04x}-7000-8000-{turn:012x}")));
                    attrs.push(kv("item.id", &format!("msg_{seq:x}_{turn}")));
                    attrs.push(kv("response", "The crate has a Cargo.toml, a README and a src folder; src holds the library."));
                }
            }
            LogRecord {
                observed_time_unix_nano: time,
                attributes: attrs,
                trace_id: trace.to_vec(),
                span_id: vec![1; 8],
                ..Default::default()
            }
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "codex_exec"),
                    kv("service.version", "0.169.0"),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "codex_otel.log_only".into(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The body of the next request: the fixed one, or a fresh session's.
fn next_body(args: &Args, fixed: &Bytes) -> Bytes {
    if args.unique {
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Bytes::from(unique_request(args.records_per_request, seq).encode_to_vec())
    } else {
        fixed.clone()
    }
}

fn s(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(v.to_string())),
    })
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: s(v),
        ..Default::default()
    }
}

/// One request of `n` records shaped like a Codex tool-result event.
fn request(n: usize) -> ExportLogsServiceRequest {
    let output = "total 48\ndrwxr-xr-x  8 dev dev 4096 Nov 24 01:00 .\n-rw-r--r--  1 dev dev 1320 Cargo.toml\n-rw-r--r--  1 dev dev  911 README.md\ndrwxr-xr-x  3 dev dev 4096 src\n";
    let records = (0..n)
        .map(|i| LogRecord {
            time_unix_nano: 1_795_000_000_000_000_000 + i as u64,
            observed_time_unix_nano: 1_795_000_000_000_000_000 + i as u64,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: s("codex.tool_result"),
            attributes: vec![
                kv("event.name", "codex.tool_result"),
                kv("conversation.id", "019a7c3e-5b7d-7e21-9f3a-2c1d4e5f6a7b"),
                kv("gen_ai.tool.name", "shell"),
                kv("call_id", &format!("call_{i:08}")),
                kv("model", "gpt-5-codex"),
                kv("duration_ms", "412"),
                kv("success", "true"),
                kv("output", output),
                kv("cwd", "/home/dev/src/agentcol"),
                kv("agent.source", "otlp"),
            ],
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "codex_cli_rs"),
                    kv("service.version", "0.169.0"),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "codex_otel".into(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Passes pre-encoded bytes through tonic unchanged.
#[derive(Clone, Copy)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ();
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
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = ();
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<()>, tonic::Status> {
        src.advance(src.remaining());
        Ok(Some(()))
    }
}

#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    latencies_us: Vec<u32>,
}

async fn sender(
    args: &Args,
    body: Bytes,
    measure_from: Instant,
    until: Instant,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    match args.protocol.as_str() {
        "grpc" => {
            let channel =
                tonic::transport::Endpoint::from_shared(format!("http://{}", args.endpoint))?
                    .connect()
                    .await
                    .context("connect")?;
            let mut grpc = tonic::client::Grpc::new(channel);
            let path: http::uri::PathAndQuery =
                "/opentelemetry.proto.collector.logs.v1.LogsService/Export".parse()?;
            loop {
                let start = Instant::now();
                if start >= until {
                    break;
                }
                let req = next_body(args, &body);
                grpc.ready().await?;
                let r = grpc
                    .unary(tonic::Request::new(req), path.clone(), RawCodec)
                    .await;
                if start >= measure_from {
                    tally
                        .latencies_us
                        .push(start.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    match r {
                        Ok(_) => tally.ok += 1,
                        Err(_) => tally.failed += 1,
                    }
                }
            }
        }
        "http" => {
            let client = reqwest::Client::new();
            let url = format!("http://{}/v1/logs", args.endpoint);
            loop {
                let start = Instant::now();
                if start >= until {
                    break;
                }
                let r = client
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(next_body(args, &body))
                    .send()
                    .await;
                let ok = match r {
                    Ok(resp) => {
                        let ok = resp.status().is_success();
                        let _ = resp.bytes().await;
                        ok
                    }
                    Err(_) => false,
                };
                if start >= measure_from {
                    tally
                        .latencies_us
                        .push(start.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    if ok {
                        tally.ok += 1;
                    } else {
                        tally.failed += 1;
                    }
                }
            }
        }
        other => bail!("unknown protocol {other:?} (grpc or http)"),
    }
    Ok(tally)
}

mod http {
    pub use tonic::codegen::http::uri;
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let body = Bytes::from(request(args.records_per_request).encode_to_vec());
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let until = measure_from + Duration::from_secs(args.duration);
    let args = std::sync::Arc::new(args);
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let args = args.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            sender(&args, body, measure_from, until).await
        }));
    }
    let mut all = Tally::default();
    for t in tasks {
        let t = t.await??;
        all.ok += t.ok;
        all.failed += t.failed;
        all.latencies_us.extend(t.latencies_us);
    }
    all.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((all.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        all.latencies_us[i] as f64 / 1000.0
    };
    let records = all.ok * args.records_per_request as u64;
    println!(
        "{}",
        serde_json::json!({
            "protocol": args.protocol,
            "records_per_request": args.records_per_request,
            "concurrency": args.concurrency,
            "seconds": args.duration,
            "requests_ok": all.ok,
            "requests_failed": all.failed,
            "records_per_second": records as f64 / args.duration as f64,
            "request_bytes": body.len(),
            "latency_ms_p50": pct(0.5),
            "latency_ms_p99": pct(0.99),
        })
    );
    Ok(())
}
