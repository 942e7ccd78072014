//! One attempt to deliver one request, over gRPC or HTTP, classified for retry.

use std::io::Write;
use std::time::{Duration, SystemTime};

use agentcol_component::Signal;
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::Channel;

use crate::config::{Compression, HttpEncoding};
use crate::retry::{classify_grpc, classify_http, SendError};
use crate::wire::Wire;

/// A configured destination.
pub enum Transport {
    /// OTLP/gRPC over one lazily connected channel.
    Grpc {
        /// The channel.
        channel: Channel,
        /// Request compression.
        compression: Option<CompressionEncoding>,
        /// Metadata added to every request.
        headers: Vec<(
            MetadataKey<tonic::metadata::Ascii>,
            MetadataValue<tonic::metadata::Ascii>,
        )>,
        /// Per-attempt timeout.
        timeout: Duration,
    },
    /// OTLP/HTTP.
    Http {
        /// The client (timeout and TLS set).
        client: reqwest::Client,
        /// URL per signal: traces, metrics, logs.
        urls: [String; 3],
        /// Body encoding.
        encoding: HttpEncoding,
        /// Body compression.
        compression: Compression,
        /// Headers added to every request.
        headers: reqwest::header::HeaderMap,
    },
}

/// Items the destination rejected in a successful answer (partial success), with its message.
pub type Accepted = (u64, String);

// google.rpc.Status and RetryInfo, enough to read a retry delay out of a gRPC error.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<ProtoAny>,
}

#[derive(Clone, PartialEq, Message)]
struct ProtoAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

#[derive(Clone, PartialEq, Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// The `RetryInfo` delay in a gRPC status's details, if any.
pub fn retry_info(details: &[u8]) -> Option<Duration> {
    let status = RpcStatus::decode(details).ok()?;
    status
        .details
        .iter()
        .find(|a| a.type_url.ends_with("google.rpc.RetryInfo"))
        .and_then(|a| RetryInfo::decode(&a.value[..]).ok())
        .and_then(|r| r.retry_delay)
        .map(|d| Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32))
}

fn compress(c: Compression, body: Vec<u8>) -> Result<(Vec<u8>, Option<&'static str>), SendError> {
    match c {
        Compression::None => Ok((body, None)),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(&body)
                .and_then(|_| enc.finish())
                .map(|b| (b, Some("gzip")))
                .map_err(|e| SendError::permanent(format!("gzip: {e}")))
        }
        Compression::Zstd => zstd::encode_all(&body[..], 1)
            .map(|b| (b, Some("zstd")))
            .map_err(|e| SendError::permanent(format!("zstd: {e}"))),
    }
}

fn signal_index(s: Signal) -> usize {
    match s {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

impl Transport {
    /// Where requests of `signal` go (for logs; no secrets in it).
    pub fn describe(&self, signal: Signal) -> String {
        match self {
            Transport::Grpc { channel: _, .. } => "gRPC".to_string(),
            Transport::Http { urls, .. } => urls[signal_index(signal)].clone(),
        }
    }

    /// One attempt.
    pub async fn send<T: Wire>(&self, data: &T) -> Result<Accepted, SendError> {
        match self {
            Transport::Grpc {
                channel,
                compression,
                headers,
                timeout,
            } => {
                let mut request = tonic::Request::new(data.clone());
                request.set_timeout(*timeout);
                for (k, v) in headers {
                    request.metadata_mut().insert(k.clone(), v.clone());
                }
                let call = T::grpc_export(channel.clone(), *compression, request);
                match tokio::time::timeout(*timeout, call).await {
                    Err(_) => Err(SendError::retryable(format!(
                        "no answer within {timeout:?}"
                    ))),
                    Ok(Ok(resp)) => Ok(T::rejected(&resp)),
                    Ok(Err(status)) => {
                        let mut e =
                            classify_grpc(status.code() as i32, retry_info(status.details()));
                        e.message = format!("{}: {}", e.message, status.message());
                        Err(e)
                    }
                }
            }
            Transport::Http {
                client,
                urls,
                encoding,
                compression,
                headers,
            } => {
                let (body, content_type) = match encoding {
                    HttpEncoding::Proto => (data.encode_to_vec(), "application/x-protobuf"),
                    HttpEncoding::Json => (
                        serde_json::to_vec(data)
                            .map_err(|e| SendError::permanent(format!("JSON: {e}")))?,
                        "application/json",
                    ),
                };
                let (body, content_encoding) = compress(*compression, body)?;
                let url = &urls[signal_index(T::SIGNAL)];
                let mut req = client
                    .post(url)
                    .headers(headers.clone())
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(body);
                if let Some(ce) = content_encoding {
                    req = req.header(reqwest::header::CONTENT_ENCODING, ce);
                }
                let resp = req.send().await.map_err(|e| {
                    // Connection refused, reset, timeout: the destination may come back.
                    SendError::retryable(format!("POST {url}: {}", without_url(&e)))
                })?;
                let status = resp.status().as_u16();
                if (200..300).contains(&status) {
                    let bytes = resp.bytes().await.unwrap_or_default();
                    let parsed: Option<T::Response> = match encoding {
                        HttpEncoding::Proto => T::Response::decode(&bytes[..]).ok(),
                        HttpEncoding::Json => serde_json::from_slice(&bytes).ok(),
                    };
                    return Ok(parsed
                        .map(|r| T::rejected(&r))
                        .unwrap_or((0, String::new())));
                }
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let mut e = classify_http(status, retry_after.as_deref(), SystemTime::now());
                e.message = format!("POST {url}: {}", e.message);
                Err(e)
            }
        }
    }
}

fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_info_is_read_from_status_details() {
        let info = RetryInfo {
            retry_delay: Some(ProtoDuration {
                seconds: 3,
                nanos: 0,
            }),
        };
        let status = RpcStatus {
            code: 8,
            message: "slow down".into(),
            details: vec![ProtoAny {
                type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
                value: info.encode_to_vec(),
            }],
        };
        assert_eq!(
            retry_info(&status.encode_to_vec()),
            Some(Duration::from_secs(3))
        );
        assert_eq!(retry_info(b"\xff\xff"), None);
        assert_eq!(retry_info(&[]), None);
    }
}
