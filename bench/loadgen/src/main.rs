//! `agentcol-loadgen`: sends one pre-encoded, agent-shaped OTLP logs request over and over, from
//! N concurrent senders, for a fixed time, and reports what was acknowledged.
//!
//! The request is encoded once, so the generator spends its time on the wire, not on protobuf:
//! gRPC goes through a pass-through codec, HTTP posts the same bytes. Only acknowledged records
//! (gRPC OK / HTTP 200) count.

use std::time::{Duration, Instant};

use agentcol_loadgen::{request, unique_request};
use anyhow::{bail, Context};
use bytes::{Buf, BufMut, Bytes};
use clap::Parser;
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
