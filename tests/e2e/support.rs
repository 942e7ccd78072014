//! Helpers for driving the real `agentcol` binary and its peers: free ports, temporary roots,
//! child processes that are killed on drop, waiting for log lines, scraping `/metrics`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_agentcol");

/// A port that was free a moment ago on 127.0.0.1, and never handed out before by this test
/// process: tests run in parallel, and the kernel may give a just-released port to the next
/// `bind(0)`, so two tests could otherwise be told the same port before either binds it.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind an ephemeral port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Where peer programs are installed (tests/peers.sh).
pub fn peers_dir() -> PathBuf {
    std::env::var_os("AGENTCOL_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/agentcol-peers")
        })
}

/// A peer binary, or a visible SKIP line and `None`.
pub fn peer(test: &str, name: &str) -> Option<PathBuf> {
    let p = peers_dir().join(name);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("SKIP: {test}: {name} not installed (run tests/peers.sh)");
        None
    }
}

/// Whether the Python OpenTelemetry SDK is importable, or a SKIP line.
pub fn python_sdk(test: &str) -> bool {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.grpc, opentelemetry.exporter.otlp.proto.http",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!(
            "SKIP: {test}: the OpenTelemetry Python SDK is not installed (run tests/peers.sh)"
        );
    }
    ok
}

/// A temporary directory holding a config and the collector's root.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Self {
        Workdir {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn root(&self) -> PathBuf {
        self.path().join("root")
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, text).expect("write file");
        p
    }
}

/// Output of a finished `agentcol` command.
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `agentcol ARGS` to completion with the given root.
pub fn agentcol(root: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .env("AGENTCOL_ROOT", root)
        .env_remove("RUST_LOG")
        .output()
        .expect("run agentcol");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A running child process whose output is collected; killed on drop.
pub struct Running {
    pub child: Child,
    pub name: String,
    output: Arc<Mutex<String>>,
}

fn collect(stream: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let reader = BufReader::new(stream);
        for line in reader.lines() {
            let Ok(line) = line else { break };
            let mut out = into.lock().unwrap();
            out.push_str(&line);
            out.push('\n');
        }
    });
}

impl Running {
    pub fn spawn(name: &str, mut cmd: Command) -> Running {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        if let Some(out) = child.stdout.take() {
            collect(out, output.clone());
        }
        if let Some(err) = child.stderr.take() {
            collect(err, output.clone());
        }
        Running {
            child,
            name: name.to_string(),
            output,
        }
    }

    /// Starts `agentcol --config <config>` with its root in `work`, and waits until it is ready.
    pub fn agentcol(name: &str, work: &Workdir, config: &Path) -> Running {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(config)
            .env("AGENTCOL_ROOT", work.root())
            .env_remove("RUST_LOG");
        let r = Running::spawn(name, cmd);
        r.wait_for("Everything is ready", Duration::from_secs(30));
        r
    }

    /// Everything it printed so far (stdout and stderr interleaved by line).
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until the output contains `needle`; panics with the output on timeout or exit.
    pub fn wait_for(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.output().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "{}: no {needle:?} within {timeout:?}; output:\n{}",
            self.name,
            self.output()
        );
    }

    /// Waits until `pred(output)` holds, up to `timeout`; returns whether it did.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if pred(&self.output()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        pred(&self.output())
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "{} did not exit within {timeout:?} after SIGTERM:\n{}",
            self.name,
            self.output()
        );
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw HTTP/1.1 exchange: status code, headers (lowercased names) and body.
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request with `Connection: close` and reads the whole answer.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    conn.write_all(req.as_bytes()).expect("write request");
    // The server may answer before reading a large body; ignore a broken pipe.
    let _ = conn.write_all(body);
    let mut raw = Vec::new();
    let _ = conn.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

/// The value of one Prometheus sample (exact series text before the value), or 0.
pub fn metric(port: u16, series: &str) -> f64 {
    let r = http(port, "GET", "/metrics", &[], b"");
    let text = String::from_utf8_lossy(&r.body).into_owned();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

/// Polls until `f()` is true or the timeout passes; returns the last value of `f()`.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}
