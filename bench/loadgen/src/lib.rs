//! The agent-shaped OTLP requests of agentcol's benchmarks, shared by the load generator
//! (`agentcol-loadgen`) and the in-process measurements (`agentcol-sqlite-floor`'s lean path),
//! so both measure the same records.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// Request `seq`: `n` records of a fresh Codex thread, four per turn, shaped as Codex 0.169
/// sends them (every attribute a string, the turn known by trace id, the answer by turn id).
pub fn unique_request(n: usize, seq: u64) -> ExportLogsServiceRequest {
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
    codex_request("codex_exec", "codex_otel.log_only", records)
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
pub fn request(n: usize) -> ExportLogsServiceRequest {
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
    codex_request("codex_cli_rs", "codex_otel", records)
}

/// `records` under one Codex 0.169 resource (`service.name` = `service`) and scope.
fn codex_request(service: &str, scope: &str, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", service),
                    kv("service.version", "0.169.0"),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: scope.into(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// CPU time of this whole process (every thread), for measurements that must hold on a shared
/// machine: the budgets are per core, and the wall clock measures the neighbours too.
pub fn process_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes into it.
    #[allow(unsafe_code)]
    unsafe {
        libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts);
    }
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
