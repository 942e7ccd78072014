//! `agentcol hook`: the command-hook shim.
//!
//! Codex runs command hooks only, and Claude Code runs `SessionStart` and `Setup` hooks only as
//! commands, so this is what those hooks call. The contract with the agent is strict: the shim
//! reads the payload from stdin, **prints nothing and always exits 0** (an agent reads a hook's
//! stdout and exit code as instructions), and returns fast, because the agent waits for it.
//!
//! It posts the payload to the `hook` receiver with one deadline for the whole exchange
//! (connect, send, status line; default 100 ms). When the receiver does not accept in time
//! (down, refusing with 5xx/429, or hanging), the payload goes to the spool under the root
//! (`spool.rs`), which the receiver drains when it is back. A 4xx other than 408/429 means the
//! payload itself is refused (the receiver counted it); spooling it would only repeat that.
//!
//! The client is a few lines of HTTP/1.1 over `std::net` rather than an HTTP crate: the target
//! is always a loopback listener of our own, the request is one POST whose answer we read only
//! up to the status line, and the whole call must cost about a millisecond, with no async
//! runtime or TLS stack to initialise.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agentcol_component::agent::Agent;

use crate::spool::Spool;

/// Header carrying the time the shim observed the call (Unix ns).
pub const TIME_HEADER: &str = "x-agentcol-hook-time";
/// Largest payload the shim reads from stdin; more is cut (and then refused as not JSON).
pub const MAX_STDIN: u64 = 16 * 1024 * 1024;

/// What one shim run is told.
#[derive(Debug, Clone)]
pub struct ShimOptions {
    /// Whose hook this is.
    pub agent: Agent,
    /// The receiver's URL for this agent (`http://127.0.0.1:4319/hook/codex`).
    pub url: String,
    /// The root whose spool takes undelivered calls; `None` when no root can be told (no
    /// `AGENTCOL_ROOT`, no `HOME`): then an undelivered call is lost rather than written into
    /// whatever directory the agent runs in.
    pub root: Option<PathBuf>,
    /// Deadline for the whole post.
    pub timeout: Duration,
    /// Bearer token, when the receiver requires one.
    pub token: Option<String>,
}

/// What happened to the call (for tests and `--verbose`; the shim itself prints nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The receiver accepted it.
    Posted,
    /// Not accepted in time or refused for now: spooled.
    Spooled(String),
    /// The receiver refused the payload itself (4xx): not retried.
    Refused(u16),
    /// Neither posted nor spooled (the spool is full or unwritable).
    Lost(String),
}

/// The current time in Unix ns.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Reads the payload and delivers it. Never panics on any input.
pub fn run(options: &ShimOptions, stdin: impl Read) -> Delivery {
    let time = now_ns();
    let mut body = Vec::new();
    let _ = stdin.take(MAX_STDIN).read_to_end(&mut body);
    deliver(options, time, &body)
}

/// Delivers one payload observed at `time`.
pub fn deliver(options: &ShimOptions, time: u64, body: &[u8]) -> Delivery {
    let why = match post(options, time, body) {
        Ok(code) if (200..300).contains(&code) => return Delivery::Posted,
        Ok(code) if (400..500).contains(&code) && code != 408 && code != 429 => {
            return Delivery::Refused(code)
        }
        Ok(code) => format!("HTTP {code}"),
        Err(e) => e,
    };
    let Some(root) = &options.root else {
        return Delivery::Lost(format!("{why}; no root to spool under"));
    };
    match Spool::under(root).append(options.agent, time, body) {
        Ok(_) => Delivery::Spooled(why),
        Err(e) => Delivery::Lost(format!("{why}; {e}")),
    }
}

struct Target {
    addr: SocketAddr,
    host: String,
    path: String,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("only http:// URLs are supported: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("bad address {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority} resolves to no address"))?;
    Ok(Target {
        addr,
        host: authority.to_string(),
        path: path.to_string(),
    })
}

fn left(deadline: Instant) -> Result<Duration, String> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| "timed out".to_string())
}

/// One POST; the status code, or why there is none.
fn post(options: &ShimOptions, time: u64, body: &[u8]) -> Result<u16, String> {
    let deadline = Instant::now() + options.timeout;
    let target = parse_url(&options.url)?;
    let mut stream = TcpStream::connect_timeout(&target.addr, left(deadline)?)
        .map_err(|e| format!("cannot connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{TIME_HEADER}: {time}\r\nConnection: close\r\n",
        target.path,
        target.host,
        body.len()
    );
    if let Some(t) = &options.token {
        head.push_str("Authorization: Bearer ");
        head.push_str(t);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream
        .set_write_timeout(Some(left(deadline)?))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(body))
        .map_err(|e| format!("cannot send: {e}"))?;
    // Read up to the end of the status line.
    let mut buf = [0u8; 64];
    let mut got = Vec::with_capacity(64);
    while !got.contains(&b'\n') {
        stream
            .set_read_timeout(Some(left(deadline)?))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => return Err("connection closed before an answer".into()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err("timed out waiting for an answer".into())
            }
            Err(e) => return Err(format!("cannot read the answer: {e}")),
        }
        if got.len() > 1024 {
            break;
        }
    }
    let line = String::from_utf8_lossy(&got);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {:?}", line.lines().next()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn options(url: String, root: &std::path::Path) -> ShimOptions {
        ShimOptions {
            agent: Agent::Codex,
            url,
            root: Some(root.to_path_buf()),
            timeout: Duration::from_millis(100),
            token: None,
        }
    }

    #[test]
    fn nobody_listening_spools_the_call() {
        let root = tempfile::tempdir().unwrap();
        // Bind then drop: the port is very likely closed afterwards.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let o = options(format!("http://127.0.0.1:{port}/hook/codex"), root.path());
        let d = deliver(&o, 42, b"{\"x\":1}");
        assert!(matches!(d, Delivery::Spooled(_)), "{d:?}");
        let spool = Spool::under(root.path());
        let list = spool.list().unwrap();
        assert_eq!(list.len(), 1);
        let e = spool.read(&list[0]).unwrap();
        assert_eq!((e.time, e.body.as_slice()), (42, &b"{\"x\":1}"[..]));
    }

    #[test]
    fn without_a_root_an_undelivered_call_is_reported_lost_not_written_anywhere() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let o = ShimOptions {
            root: None,
            ..options(
                format!("http://127.0.0.1:{port}/hook/codex"),
                std::path::Path::new("/nonexistent"),
            )
        };
        assert!(matches!(deliver(&o, 1, b"{}"), Delivery::Lost(_)));
    }

    #[test]
    fn a_listener_that_never_answers_is_given_up_on_at_the_deadline() {
        let root = tempfile::tempdir().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let o = options(format!("http://127.0.0.1:{port}/hook/codex"), root.path());
        let started = Instant::now();
        let d = deliver(&o, 1, b"{}");
        let took = started.elapsed();
        assert!(matches!(d, Delivery::Spooled(_)), "{d:?}");
        // The deadline bounds the call; the margin is for a loaded machine, not a perf claim.
        assert!(took < Duration::from_secs(2), "{took:?}");
        drop(l);
    }

    #[test]
    fn the_status_line_decides() {
        let root = tempfile::tempdir().unwrap();
        for (answer, expect) in [
            ("HTTP/1.1 204 No Content\r\n\r\n", Delivery::Posted),
            ("HTTP/1.1 400 Bad Request\r\n\r\n", Delivery::Refused(400)),
        ] {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            let server = std::thread::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                let (mut buf, mut req) = ([0u8; 4096], String::new());
                while !req.ends_with("\r\n\r\n{}") {
                    let n = s.read(&mut buf).unwrap();
                    assert!(n > 0, "closed early: {req}");
                    req.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
                s.write_all(answer.as_bytes()).unwrap();
                req
            });
            let o = options(format!("http://127.0.0.1:{port}/hook/codex"), root.path());
            assert_eq!(deliver(&o, 7, b"{}"), expect);
            let req = server.join().unwrap();
            assert!(req.starts_with("POST /hook/codex HTTP/1.1\r\n"), "{req}");
            assert!(req.contains("x-agentcol-hook-time: 7\r\n"), "{req}");
        }
        assert!(Spool::under(root.path()).list().unwrap().is_empty());
    }
}
