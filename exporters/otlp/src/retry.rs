//! When to retry, and how long to wait: pure functions, tested line by line against the OTLP
//! specification's tables.

use std::time::{Duration, SystemTime};

use crate::config::RetryConfig;

/// The outcome of one failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// Whether another attempt may succeed.
    pub retryable: bool,
    /// The destination's requested wait, if it sent one.
    pub retry_after: Option<Duration>,
    /// What happened (no secrets).
    pub message: String,
}

impl SendError {
    pub(crate) fn retryable(message: impl Into<String>) -> Self {
        SendError {
            retryable: true,
            retry_after: None,
            message: message.into(),
        }
    }

    pub(crate) fn permanent(message: impl Into<String>) -> Self {
        SendError {
            retryable: false,
            retry_after: None,
            message: message.into(),
        }
    }
}

/// OTLP/HTTP: 429, 502, 503 and 504 are retryable (honouring `Retry-After`); every other
/// non-success status is permanent.
pub fn classify_http(status: u16, retry_after: Option<&str>, now: SystemTime) -> SendError {
    let retryable = matches!(status, 429 | 502 | 503 | 504);
    SendError {
        retryable,
        retry_after: if retryable {
            retry_after.and_then(|v| parse_retry_after(v, now))
        } else {
            None
        },
        message: format!("HTTP {status}"),
    }
}

/// `Retry-After`: delay-seconds or an HTTP-date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// OTLP/gRPC: CANCELLED (1), DEADLINE_EXCEEDED (4), ABORTED (10), OUT_OF_RANGE (11),
/// UNAVAILABLE (14) and DATA_LOSS (15) are retryable; RESOURCE_EXHAUSTED (8) only when the
/// server sent a `RetryInfo` (its delay is honoured); everything else is permanent.
pub fn classify_grpc(code: i32, retry_info: Option<Duration>) -> SendError {
    let retryable = match code {
        1 | 4 | 10 | 11 | 14 | 15 => true,
        8 => retry_info.is_some(),
        _ => false,
    };
    SendError {
        retryable,
        retry_after: if retryable { retry_info } else { None },
        message: format!("gRPC status {code}"),
    }
}

/// The wait before attempt `attempt + 1` (0-based): exponential, capped, jittered; a server's
/// requested wait wins when it is longer. `jitter` is a uniform sample in [0, 1).
pub fn backoff(cfg: &RetryConfig, attempt: u32, server: Option<Duration>, jitter: f64) -> Duration {
    let base =
        cfg.initial_interval.get().as_secs_f64() * cfg.multiplier.powi(attempt.min(64) as i32);
    let capped = base.min(cfg.max_interval.get().as_secs_f64());
    let spread = capped * cfg.randomization_factor;
    let wait = (capped - spread + 2.0 * spread * jitter).max(0.0);
    let computed = Duration::from_secs_f64(wait);
    match server {
        Some(s) if s > computed => s,
        _ => computed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentcol_component::Duration as D;

    #[test]
    fn http_table() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for s in [429, 502, 503, 504] {
            assert!(classify_http(s, None, now).retryable, "{s}");
        }
        for s in [400, 401, 403, 404, 408, 413, 500, 501] {
            assert!(!classify_http(s, Some("3"), now).retryable, "{s}");
        }
        assert_eq!(
            classify_http(503, Some("7"), now).retry_after,
            Some(Duration::from_secs(7))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(12));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(12)));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn grpc_table() {
        for c in [1, 4, 10, 11, 14, 15] {
            assert!(classify_grpc(c, None).retryable, "{c}");
        }
        for c in [2, 3, 5, 6, 7, 9, 12, 13, 16] {
            assert!(!classify_grpc(c, None).retryable, "{c}");
        }
        assert!(!classify_grpc(8, None).retryable);
        let e = classify_grpc(8, Some(Duration::from_secs(2)));
        assert!(e.retryable);
        assert_eq!(e.retry_after, Some(Duration::from_secs(2)));
    }

    #[test]
    fn backoff_grows_caps_and_honours_the_server() {
        let cfg = RetryConfig {
            initial_interval: D::from_secs(1),
            max_interval: D::from_secs(10),
            randomization_factor: 0.0,
            multiplier: 2.0,
            ..Default::default()
        };
        assert_eq!(backoff(&cfg, 0, None, 0.5), Duration::from_secs(1));
        assert_eq!(backoff(&cfg, 2, None, 0.5), Duration::from_secs(4));
        assert_eq!(backoff(&cfg, 10, None, 0.5), Duration::from_secs(10));
        assert_eq!(
            backoff(&cfg, 0, Some(Duration::from_secs(30)), 0.5),
            Duration::from_secs(30)
        );
        let jittered = RetryConfig {
            randomization_factor: 0.5,
            ..cfg
        };
        assert_eq!(backoff(&jittered, 0, None, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(&jittered, 0, None, 0.999_999).as_millis(), 1499);
    }
}
