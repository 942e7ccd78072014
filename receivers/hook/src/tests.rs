use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex as StdMutex;

use agentcol_component::agent::{attr, AgentRecord, Source};
use agentcol_component::{ComponentKind, ConsumeError};

use super::*;

#[derive(Default)]
struct Capture {
    records: StdMutex<Vec<AgentRecord>>,
    refuse: AtomicBool,
}

#[agentcol_component::async_trait]
impl Consumer<Logs> for Capture {
    async fn consume(&self, data: Logs) -> Result<(), ConsumeError> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(ConsumeError::retryable("store is busy"));
        }
        let mut out = self.records.lock().unwrap();
        for rl in data.resource_logs {
            for sl in rl.scope_logs {
                for r in sl.log_records {
                    out.push(AgentRecord::from_log_record(&r).unwrap());
                }
            }
        }
        Ok(())
    }
}

struct Running {
    receiver: Arc<dyn Component>,
    capture: Arc<Capture>,
    port: u16,
    host: Host,
}

/// A free port never handed out before in this process (the tests run in parallel).
fn free_port() -> u16 {
    static GIVEN: StdMutex<Vec<u16>> = StdMutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

async fn start(root: &std::path::Path, capture: Arc<Capture>, max_body: u64) -> Running {
    let port = free_port();
    let host = Host::for_test(ComponentKind::Receiver, "hook", root);
    let config = HookReceiverConfig {
        endpoint: format!("127.0.0.1:{port}"),
        max_request_body_size: max_body,
        spool: SpoolConfig {
            enabled: true,
            check_interval: agentcol_component::Duration::from_millis(100),
        },
        ..Default::default()
    };
    let consumers = Consumers {
        logs: Some(capture.clone() as Arc<dyn Consumer<Logs>>),
        ..Default::default()
    };
    let receiver = HookReceiverFactory
        .create(host.clone(), config, consumers)
        .unwrap();
    receiver.start().await.unwrap();
    Running {
        receiver,
        capture,
        port,
        host,
    }
}

/// A raw POST: (status, body).
fn post(port: u16, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    // A body over the limit may be refused before it is all sent.
    let _ = s.write_all(body);
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

async fn post_async(port: u16, path: &'static str, body: Vec<u8>) -> (u16, String) {
    tokio::task::spawn_blocking(move || post(port, path, &body))
        .await
        .unwrap()
}

const PRE: &str = r#"{"session_id":"s1","turn_id":"t1","hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"echo hi"},"tool_use_id":"call_1","cwd":"/w"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_call_becomes_canonical_records_and_gets_an_empty_success() {
    let root = tempfile::tempdir().unwrap();
    let r = start(root.path(), Arc::default(), 1 << 20).await;
    let (status, body) = post_async(r.port, "/hook/codex", PRE.into()).await;
    assert_eq!((status, body.as_str()), (204, ""));
    let (status, _) = post_async(r.port, "/hook", PRE.into()).await;
    assert_eq!(status, 404, "no agent named");
    let got = r.capture.records.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].key.to_string(), "v1|codex|s1|t1|call_1|tool.call");
    assert_eq!(got[0].source, Some(Source::Hook));
    assert_eq!(got[0].text(attr::CWD).as_deref(), Some("/w"));
    r.receiver.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_precise_answer_and_the_next_call_is_fine() {
    let root = tempfile::tempdir().unwrap();
    let r = start(root.path(), Arc::default(), 1 << 20).await;
    let (status, body) = post_async(r.port, "/hook/claude", b"not json".to_vec()).await;
    assert_eq!(status, 400);
    assert!(body.contains("hook body is not JSON"), "{body}");
    let (status, body) = post_async(r.port, "/hook/claude", vec![b' '; 10 << 20]).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("max_request_body_size"), "{body}");
    // An unknown event and a missing session are kept as native records.
    let (status, _) = post_async(
        r.port,
        "/hook/claude",
        br#"{"session_id":"s","hook_event_name":"NewEvent"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = post_async(
        r.port,
        "/hook/claude",
        br#"{"hook_event_name":"Stop"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = post_async(r.port, "/hook/codex", PRE.into()).await;
    assert_eq!(status, 204);
    let got = r.capture.records.lock().unwrap().clone();
    let sessions: Vec<&str> = got.iter().map(|r| r.key.session()).collect();
    assert_eq!(sessions, ["s", "#unknown", "s1"]);
    let metrics = r.host.telemetry().render();
    assert!(
        metrics.contains(r#"agentcol_receiver_hook_requests_total{receiver="hook",agent="claude_code",outcome="rejected"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("agentcol_receiver_hook_native_records_total{receiver=\"hook\"} 2"),
        "{metrics}"
    );
    r.receiver.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_pipeline_spools_and_the_drain_delivers_each_call_once() {
    let root = tempfile::tempdir().unwrap();
    let capture = Arc::new(Capture::default());
    capture.refuse.store(true, Ordering::SeqCst);
    let r = start(root.path(), capture.clone(), 1 << 20).await;
    let (status, body) = post_async(r.port, "/hook/codex", PRE.into()).await;
    assert_eq!(
        (status, body.as_str()),
        (204, ""),
        "the agent sees a success"
    );
    let spool = Spool::under(root.path());
    assert_eq!(spool.list().unwrap().len(), 1);
    capture.refuse.store(false, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !spool.list().unwrap().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(spool.list().unwrap().is_empty());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(capture.records.lock().unwrap().len(), 1, "delivered once");
    r.receiver.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spool_is_drained_on_start_in_order() {
    let root = tempfile::tempdir().unwrap();
    let spool = Spool::under(root.path());
    let stop = PRE.replace("PreToolUse", "Stop");
    spool.append(Agent::Codex, 20, stop.as_bytes()).unwrap();
    spool.append(Agent::Codex, 10, PRE.as_bytes()).unwrap();
    spool.append(Agent::Codex, 30, b"garbage").unwrap();
    let r = start(root.path(), Arc::default(), 1 << 20).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !spool.list().unwrap().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let got = r.capture.records.lock().unwrap().clone();
    let kinds: Vec<String> = got.iter().map(|r| r.key.kind().key_part().into()).collect();
    assert_eq!(kinds, ["tool.call", "turn.end"]);
    assert_eq!(
        got.iter().map(|r| r.time_unix_nano).collect::<Vec<_>>(),
        [10, 20],
        "the shim's time is the observation's"
    );
    assert!(
        spool.dir().join("bad").read_dir().unwrap().count() == 1,
        "garbage kept aside"
    );
    r.receiver.shutdown().await.unwrap();
}
