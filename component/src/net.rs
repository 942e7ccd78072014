//! Listener rules shared by every component that opens a port.
//!
//! agentcol listens on loopback by default. A listener on any other address must be protected
//! by a bearer token, compared in constant time. These helpers are the one implementation of
//! that rule, used by receivers, extensions and the service's metrics endpoint alike.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Secret};
use crate::lifecycle::ComponentError;

/// Listener authentication: `auth: { bearer_token: ... }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Clients must send `Authorization: Bearer <token>`. Required on non-loopback endpoints.
    pub bearer_token: Secret,
}

/// Parses an otelcol-style endpoint (`localhost:4317`, `127.0.0.1:4317`, `[::1]:4317`,
/// `0.0.0.0:4317`, `:4317`) into the address to bind. `:port` means all interfaces, as in Go.
pub fn parse_endpoint(endpoint: &str) -> Result<SocketAddr, String> {
    let endpoint = endpoint.trim();
    if let Some(port) = endpoint.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("invalid port in endpoint {endpoint:?}"))?;
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Ok(addr) = endpoint.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = endpoint
        .rsplit_once(':')
        .ok_or_else(|| format!("endpoint {endpoint:?} must be host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("invalid port in endpoint {endpoint:?}"))?;
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve endpoint {endpoint:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("endpoint {endpoint:?} resolves to no address"))
}

/// Binds a TCP listener for a configured endpoint, returning it with the address actually bound
/// (which differs from the configured one for port 0).
pub async fn bind(endpoint: &str) -> Result<(tokio::net::TcpListener, SocketAddr), ComponentError> {
    let addr = parse_endpoint(endpoint).map_err(ComponentError::Other)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ComponentError::Bind {
            endpoint: endpoint.to_string(),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| ComponentError::Io {
        context: format!("reading the address bound for {endpoint}"),
        source,
    })?;
    Ok((listener, bound))
}

/// Whether an address is loopback (127.0.0.0/8 or ::1).
pub fn is_loopback(addr: &SocketAddr) -> bool {
    match addr.ip() {
        IpAddr::V4(ip) => ip.is_loopback(),
        IpAddr::V6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Validates a listener's endpoint and auth together: the endpoint must parse, and a
/// non-loopback one needs a bearer token. `path` is where the endpoint sits in the component's
/// config (`protocols::grpc::endpoint`).
pub fn validate_listener(endpoint: &str, auth: &AuthConfig, path: &str) -> Vec<ConfigError> {
    match parse_endpoint(endpoint) {
        Err(e) => vec![ConfigError::new(path, e)],
        Ok(addr) if !is_loopback(&addr) && auth.bearer_token.is_empty() => vec![ConfigError::new(
            path,
            format!(
                "endpoint {endpoint} is not loopback: set auth.bearer_token to accept connections from other hosts"
            ),
        )],
        Ok(_) => Vec::new(),
    }
}

/// Checks an `Authorization` header value against the configured token in constant time.
/// An empty configured token means no authentication is required.
pub fn bearer_ok(header: Option<&[u8]>, token: &Secret) -> bool {
    use subtle::ConstantTimeEq;
    if token.is_empty() {
        return true;
    }
    let Some(value) = header else {
        return false;
    };
    let Some(presented) = value
        .strip_prefix(b"Bearer ")
        .or_else(|| value.strip_prefix(b"bearer "))
    else {
        return false;
    };
    presented.ct_eq(token.expose().as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_like_otelcol() {
        assert_eq!(
            parse_endpoint("localhost:4317").unwrap(),
            "127.0.0.1:4317".parse().unwrap()
        );
        assert_eq!(
            parse_endpoint(":4318").unwrap(),
            "0.0.0.0:4318".parse().unwrap()
        );
        assert_eq!(
            parse_endpoint("[::1]:4317").unwrap(),
            "[::1]:4317".parse().unwrap()
        );
        assert!(parse_endpoint("nope").is_err());
        assert!(parse_endpoint("localhost:99999").is_err());
    }

    #[test]
    fn non_loopback_needs_a_token() {
        let none = AuthConfig::default();
        assert!(validate_listener("127.0.0.1:4317", &none, "endpoint").is_empty());
        let errs = validate_listener("0.0.0.0:4317", &none, "protocols::grpc::endpoint");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path, "protocols::grpc::endpoint");
        let with = AuthConfig {
            bearer_token: Secret::new("t"),
        };
        assert!(validate_listener("0.0.0.0:4317", &with, "endpoint").is_empty());
    }

    #[test]
    fn bearer_tokens_compare_exactly() {
        let t = Secret::new("s3cret");
        assert!(bearer_ok(Some(b"Bearer s3cret"), &t));
        assert!(!bearer_ok(Some(b"Bearer s3cre"), &t));
        assert!(!bearer_ok(Some(b"s3cret"), &t));
        assert!(!bearer_ok(None, &t));
        assert!(bearer_ok(None, &Secret::default()));
    }
}
