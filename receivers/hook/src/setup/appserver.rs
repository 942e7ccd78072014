//! Just enough of the Codex app-server protocol to read hook trust: start `codex app-server`
//! (JSON-RPC, one JSON object per line on stdio), `initialize`, send `initialized`, call
//! `hooks/list`, close stdin (the server exits on EOF).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::SetupError;

/// One hook as `hooks/list` reports it.
#[derive(Debug, Clone)]
pub struct ListedHook {
    /// The trust key (`<hooks.json path>:<snake_event>:<group>:<handler>`).
    pub key: String,
    /// The command.
    pub command: String,
    /// The file that declares it.
    pub source_path: String,
    /// The hash to trust.
    pub current_hash: String,
}

const DEADLINE: Duration = Duration::from_secs(30);
/// Most bytes read from the app-server.
const MAX_OUTPUT: u64 = 64 * 1024 * 1024;

/// Every hook Codex discovers with `CODEX_HOME=codex_home`.
pub fn hooks_list(codex: &Path, codex_home: &Path) -> Result<Vec<ListedHook>, SetupError> {
    let err = |m: String| SetupError::Trust(m);
    let mut child = Command::new(codex)
        .arg("app-server")
        .env("CODEX_HOME", codex_home)
        .current_dir(codex_home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| err(format!("cannot start {} app-server: {e}", codex.display())))?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        return Err(err("no stdio pipes".into()));
    };
    let (tx, rx) = mpsc::channel::<Value>();
    let reader = std::thread::spawn(move || {
        // Bounded: `hooks/list` answers are kilobytes; a child that keeps talking is cut off.
        for line in BufReader::new(stdout.take(MAX_OUTPUT)).lines() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if tx.send(v).is_err() {
                    break;
                }
            }
        }
    });
    let deadline = Instant::now() + DEADLINE;
    let mut send = |v: Value| -> Result<(), SetupError> {
        writeln!(stdin, "{v}")
            .and_then(|_| stdin.flush())
            .map_err(|e| err(format!("cannot write to the app-server: {e}")))
    };
    let wait = |id: i64| -> Result<Value, SetupError> {
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .ok_or_else(|| err("the app-server did not answer in 30 s".into()))?;
            let msg = rx
                .recv_timeout(left)
                .map_err(|_| err("the app-server exited or did not answer".into()))?;
            if msg.get("id").and_then(Value::as_i64) == Some(id) && msg.get("method").is_none() {
                if let Some(e) = msg.get("error") {
                    return Err(err(format!("request {id} failed: {e}")));
                }
                return Ok(msg.get("result").cloned().unwrap_or(Value::Null));
            }
        }
    };
    let result = (|| {
        send(json!({"id": 1, "method": "initialize", "params": {
            "clientInfo": {"name": "agentcol_setup", "title": "agentcol setup", "version": env!("CARGO_PKG_VERSION")},
            "capabilities": {"experimentalApi": true}}}))?;
        wait(1)?;
        send(json!({"method": "initialized"}))?;
        send(json!({"id": 2, "method": "hooks/list", "params": {"cwds": [codex_home]}}))?;
        wait(2)
    })();
    // EOF on stdin ends the server (and the native binary behind npm's launcher, which a kill
    // of the launcher would leave running with our stdout pipe open). The reader thread is left
    // to end with the pipe.
    drop(stdin);
    let gone = Instant::now() + Duration::from_secs(5);
    while Instant::now() < gone {
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if !matches!(child.try_wait(), Ok(Some(_))) {
        let _ = child.kill();
        let _ = child.wait();
    }
    drop(reader);
    let result = result?;
    let mut out = Vec::new();
    for entry in result
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for h in entry
            .get("hooks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let s = |k: &str| {
                h.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            if h.get("isManaged").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            out.push(ListedHook {
                key: s("key"),
                command: s("command"),
                source_path: s("sourcePath"),
                current_hash: s("currentHash"),
            });
        }
    }
    Ok(out)
}
