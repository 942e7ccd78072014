//! The normaliser on real captures (tests/fixtures, made by tests/agents/capture_fixtures.sh
//! from the real agents) and on hand-made edge cases.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use agentcol_component::agent::{attr, AgentRecord, Kind, Source};
use agentcol_component::opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use agentcol_component::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use agentcol_component::opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use agentcol_component::opentelemetry_proto::tonic::logs::v1::{
    LogRecord, ResourceLogs, ScopeLogs,
};
use serde_json::Value as Json;

use super::*;

fn fixtures(agent: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(agent)
        .join("otlp")
}

/// Every captured request of an agent, normalised: the canonical records, in arrival order.
fn captured(agent: &str) -> Vec<AgentRecord> {
    let dir = fixtures(agent);
    let index = std::fs::read_to_string(dir.join("index.jsonl")).expect("fixture index");
    let mut out = Vec::new();
    for line in index.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Json = serde_json::from_str(line).expect("index line");
        let file = dir.join(entry["file"].as_str().expect("file"));
        let bytes = std::fs::read(&file).expect("fixture file");
        let logs = match entry["signal"].as_str() {
            Some("logs") => {
                let mut req: ExportLogsServiceRequest =
                    serde_json::from_slice(&bytes).expect("OTLP/JSON logs");
                normalize_logs(&mut req);
                req
            }
            Some("traces") => {
                let req: ExportTraceServiceRequest =
                    serde_json::from_slice(&bytes).expect("OTLP/JSON traces");
                match events_from_spans(&req) {
                    Some(l) => l,
                    None => continue,
                }
            }
            _ => continue,
        };
        for rl in &logs.resource_logs {
            for sl in &rl.scope_logs {
                for r in &sl.log_records {
                    if let Ok(a) = AgentRecord::from_log_record(r) {
                        out.push(a);
                    }
                }
            }
        }
    }
    out
}

fn of_kind(records: &[AgentRecord], kind: Kind) -> Vec<&AgentRecord> {
    records.iter().filter(|r| r.key.kind() == kind).collect()
}

/// alias turn → real turn, from every alias declaration.
fn aliases(records: &[AgentRecord]) -> BTreeMap<String, String> {
    records
        .iter()
        .filter_map(|r| {
            let t = r.get(attr::ALIAS_TRACE_ID)?.as_str()?;
            Some((
                agentcol_component::agent::trace_alias(t),
                r.key.turn().to_string(),
            ))
        })
        .collect()
}

#[test]
fn codex_capture_becomes_one_session_with_two_turns() {
    let recs = captured("codex");
    assert!(recs.iter().all(|r| r.source == Some(Source::Otlp)));
    let sessions: BTreeSet<&str> = recs.iter().map(|r| r.key.session()).collect();
    assert_eq!(sessions.len(), 1, "one thread: {sessions:?}");
    let thread = *sessions.iter().next().unwrap();
    assert_eq!(
        of_kind(&recs, Kind::SessionStart).len(),
        2,
        "one per codex process"
    );

    let alias = aliases(&recs);
    let resolve = |r: &AgentRecord| -> String {
        let t = r.key.turn();
        alias.get(t).cloned().unwrap_or_else(|| t.to_string())
    };
    let starts: BTreeSet<String> = of_kind(&recs, Kind::TurnStart)
        .iter()
        .map(|r| r.key.turn().to_string())
        .collect();
    assert_eq!(starts.len(), 2, "two turns from run_turn spans");

    let prompts = of_kind(&recs, Kind::UserPrompt);
    let texts: Vec<&str> = prompts.iter().filter_map(|r| r.body_text()).collect();
    assert_eq!(texts, ["Say hello", "Run echo hi"]);
    for p in &prompts {
        assert!(
            p.key.has_alias_turn(),
            "codex logs know the turn by trace only"
        );
        assert!(
            starts.contains(&resolve(p)),
            "prompt's trace resolves to a turn"
        );
    }

    let results = of_kind(&recs, Kind::ToolResult);
    assert_eq!(results.len(), 1);
    let r = results[0];
    assert!(r.key.item().starts_with("call_"), "{}", r.key);
    assert_eq!(r.get(attr::TOOL_EXIT_CODE), Some(&Json::from(0)));
    assert!(r.body_text().unwrap_or_default().contains("hi"));
    assert_eq!(r.get(attr::TOOL_SUCCESS), Some(&Json::from(true)));
    assert!(starts.contains(&resolve(r)));
    let calls = of_kind(&recs, Kind::ToolCall);
    assert!(calls.iter().all(|c| c.key.item() == r.key.item()));
    assert!(calls.iter().any(|c| c
        .text(attr::TOOL_INPUT)
        .unwrap_or_default()
        .contains("echo hi")));

    let messages = of_kind(&recs, Kind::Message);
    assert_eq!(
        messages.len(),
        2,
        "codex.agent_response, one final answer per turn"
    );
    for m in &messages {
        assert!(starts.contains(m.key.turn()));
        assert!(m.body_text().is_some());
    }
    let usage = of_kind(&recs, Kind::Usage);
    assert_eq!(usage.len(), 2, "turn totals from session_task.turn");
    assert!(usage
        .iter()
        .all(|u| u.int(attr::USAGE_TOTAL_TOKENS).unwrap_or(0) > 0));
    // Native attributes are kept on canonical records.
    assert!(prompts[0].get("conversation.id").is_some());
    assert_eq!(
        prompts[0].text(attr::NATIVE_NAME).as_deref(),
        Some("codex.user_prompt")
    );
    assert!(recs.iter().all(|r| r.key.session() == thread));
    // Records with no canonical meaning (sse events, api requests) are kept as native events.
    assert!(recs
        .iter()
        .any(|r| r.key.kind() == Kind::Native && r.name == "codex.sse_event"));
}

#[test]
fn claude_capture_becomes_one_session_with_its_turn() {
    let recs = captured("claude");
    let sessions: BTreeSet<&str> = recs.iter().map(|r| r.key.session()).collect();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let prompts = of_kind(&recs, Kind::UserPrompt);
    assert_eq!(prompts.len(), 1);
    let prompt_id = prompts[0].key.turn().to_string();
    assert!(!prompts[0].key.has_alias_turn());
    assert!(prompts[0].body_text().is_some_and(|t| !t.is_empty()));

    let usage = of_kind(&recs, Kind::Usage);
    assert!(usage.len() >= 2, "one per model request");
    for u in &usage {
        let input = u.int(attr::USAGE_INPUT_TOKENS).unwrap_or(-1);
        let native: i64 = ["input_tokens", "cache_read_tokens", "cache_creation_tokens"]
            .iter()
            .map(|k| u.int(k).unwrap_or(0))
            .sum();
        assert_eq!(
            input, native,
            "Anthropic rule: input includes cache reads and writes"
        );
        assert_eq!(u.key.turn(), prompt_id);
    }
    let messages = of_kind(&recs, Kind::Message);
    assert!(!messages.is_empty());
    assert!(messages
        .iter()
        .all(|m| m.key.item().starts_with("req_") || !m.key.is_fallback()));

    let alias = aliases(&recs);
    let results = of_kind(&recs, Kind::ToolResult);
    let with_output: Vec<_> = results.iter().filter(|r| r.body_text().is_some()).collect();
    assert_eq!(with_output.len(), 1, "the tool span carries the output");
    let r = with_output[0];
    assert!(r.body_text().unwrap_or_default().contains("hi"));
    assert_eq!(
        alias.get(r.key.turn()),
        Some(&prompt_id),
        "span trace resolves to the prompt"
    );
    let items: BTreeSet<&str> = results.iter().map(|r| r.key.item()).collect();
    assert_eq!(items.len(), 1, "log and span agree on tool_use_id");
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn request(scope: &str, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                scope: Some(agentcol_component::opentelemetry_proto::tonic::common::v1::InstrumentationScope {
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

fn records(req: &ExportLogsServiceRequest) -> Vec<&LogRecord> {
    req.resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .collect()
}

#[test]
fn missing_ids_give_flagged_fallback_keys_never_drops() {
    let no_call = LogRecord {
        attributes: vec![
            kv("event.name", "codex.tool_result"),
            kv("conversation.id", "thread-1"),
            kv("output", "Process exited with code 2\n"),
        ],
        trace_id: vec![7; 16],
        ..Default::default()
    };
    let no_session = LogRecord {
        attributes: vec![kv("event.name", "codex.user_prompt"), kv("prompt", "hi")],
        ..Default::default()
    };
    let unknown = LogRecord {
        attributes: vec![
            kv("event.name", "codex.brand_new_event"),
            kv("conversation.id", "thread-1"),
        ],
        ..Default::default()
    };
    let mut req = request("codex_otel.log_only", vec![no_call, no_session, unknown]);
    let stats = normalize_logs(&mut req);
    let out: Vec<AgentRecord> = records(&req)
        .into_iter()
        .map(|r| AgentRecord::from_log_record(r).unwrap())
        .collect();
    // The result (and the call it implies), then two native records.
    assert_eq!(out.len(), 4, "{out:#?}");
    let result = out
        .iter()
        .find(|r| r.key.kind() == Kind::ToolResult)
        .unwrap();
    assert!(result.key.is_fallback());
    assert_eq!(result.get(attr::TOOL_EXIT_CODE), Some(&Json::from(2)));
    assert!(
        result
            .to_log_record()
            .attributes
            .iter()
            .any(|a| a.key == attr::KEY_FALLBACK),
        "fallback keys are flagged on the wire"
    );
    let orphan = out.iter().find(|r| r.name == "codex.user_prompt").unwrap();
    assert_eq!(orphan.key.session(), "#unknown");
    assert!(orphan.key.is_fallback());
    let new = out
        .iter()
        .find(|r| r.name == "codex.brand_new_event")
        .unwrap();
    assert_eq!(
        new.key.kind(),
        Kind::Native,
        "an unknown event name is stored as it came"
    );
    assert_eq!(stats.fallback, 2);
    assert_eq!(stats.native, 2);
}

#[test]
fn other_otlp_passes_untouched_and_normalising_twice_changes_nothing() {
    let plain = LogRecord {
        attributes: vec![kv("event.name", "app.login"), kv("user", "x")],
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue("hello".into())),
        }),
        ..Default::default()
    };
    let mut req = request("my.app", vec![plain.clone()]);
    assert_eq!(normalize_logs(&mut req), Stats::default());
    assert_eq!(records(&req), vec![&plain]);

    let codex = LogRecord {
        attributes: vec![
            kv("event.name", "codex.conversation_starts"),
            kv("conversation.id", "t"),
            kv("event.timestamp", "2026-11-22T14:11:14.530Z"),
            kv("model", "gpt-5.5"),
        ],
        ..Default::default()
    };
    let mut req = request("codex_otel.log_only", vec![codex]);
    normalize_logs(&mut req);
    let once = req.clone();
    assert_eq!(normalize_logs(&mut req), Stats::default());
    assert_eq!(req, once);
    let r = AgentRecord::from_log_record(records(&req)[0]).unwrap();
    assert_eq!(r.key.to_string(), "v1|codex|t|||session.start");
    assert_eq!(
        r.time_unix_nano, 1_795_356_674_530_000_000,
        "event.timestamp, not timeUnixNano"
    );
    assert_eq!(r.text(attr::REQUEST_MODEL).as_deref(), Some("gpt-5.5"));
}

#[test]
fn exit_codes_are_read_from_tool_output() {
    assert_eq!(
        exit_code("Chunk ID: x\nProcess exited with code 0\nOutput:\nhi\n"),
        Some(0)
    );
    assert_eq!(exit_code("Exit code: 127\n"), Some(127));
    assert_eq!(exit_code("no code here"), None);
}

/// Native attributes whose names clash with canonical ones, repeat, or are reserved.
fn edge_records() -> Vec<LogRecord> {
    let base = |name: &str| -> Vec<KeyValue> {
        vec![
            kv("event.name", name),
            kv("conversation.id", "019a7c3e-0000-7000-8000-000000000001"),
            kv("gen_ai.tool.name", "native_tool"),
            kv("call_id", "call_7"),
            kv("agent.source", "spoof"),
            kv("agent.native.body", "native body attr"),
            kv("tool_name", "exec_command"),
            kv("gen_ai.tool.name", "second native"),
            kv("arguments", "{}"),
            kv("output", "Process exited with code 3\nx"),
            kv("event.timestamp", "2026-11-22T14:11:14.530Z"),
        ]
    };
    let rec = |name: &str| LogRecord {
        attributes: base(name),
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue("the body".into())),
        }),
        ..Default::default()
    };
    vec![
        rec("codex.tool_result"),
        rec("codex.tool_decision"),
        rec("codex.something_new"),
        rec("codex.user_prompt"),
    ]
}

fn edge_request(r: LogRecord) -> ExportLogsServiceRequest {
    let mut req = request("codex_otel", vec![r]);
    req.resource_logs[0].resource = Some(
        agentcol_component::opentelemetry_proto::tonic::resource::v1::Resource {
            attributes: vec![kv("service.name", "codex_exec")],
            ..Default::default()
        },
    );
    req
}

fn text_of(v: &Option<AnyValue>) -> Option<&str> {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

#[test]
fn native_attributes_keep_their_place_and_canonical_ones_follow() {
    // The native attributes are moved in at the end of the pass, not copied: the layout must
    // be what setting the canonical ones on top of the natives gives.
    let [_, decision, unknown, _] = <[LogRecord; 4]>::try_from(edge_records()).expect("four");
    let mut req = edge_request(decision);
    normalize_logs(&mut req);
    let out = records(&req);
    assert_eq!(out.len(), 1);
    let keys: Vec<&str> = out[0].attributes.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "event.name",
            attr::EVENT_KEY,
            attr::SOURCE,
            "conversation.id",
            "gen_ai.tool.name",
            "call_id",
            "agent.native.attr.agent.source",
            "agent.native.body",
            "tool_name",
            "gen_ai.tool.name",
            "arguments",
            "output",
            "event.timestamp",
            "agent.native.body",
            attr::NATIVE_NAME,
            attr::AGENT_NAME,
            attr::PROVIDER_NAME,
            attr::CONVERSATION_ID,
            attr::TOOL_CALL_ID,
            attr::TOOL_INPUT,
        ]
    );
    let values: Vec<Option<&str>> = out[0]
        .attributes
        .iter()
        .map(|kv| text_of(&kv.value))
        .collect();
    assert_eq!(
        values[4],
        Some("exec_command"),
        "the first native of a canonical name takes its value"
    );
    assert_eq!(
        values[9],
        Some("second native"),
        "a second one keeps its own"
    );
    assert_eq!(values[7], Some("native body attr"));
    assert_eq!(
        values[13],
        Some("the body"),
        "the native body follows the native attributes"
    );
    // Read back, the last of equal names counts (the second native one here).
    let back = AgentRecord::from_log_record(out[0]).expect("record");
    assert_eq!(
        back.get(attr::TOOL_NAME),
        Some(&Json::from("second native"))
    );

    // A record with no canonical meaning keeps its body as the body, and no attribute named
    // `agent.native.body`, not even the native one.
    let mut req = edge_request(unknown);
    normalize_logs(&mut req);
    let out = records(&req);
    assert_eq!(out.len(), 1);
    assert!(out[0]
        .attributes
        .iter()
        .all(|kv| kv.key != "agent.native.body"));
    assert_eq!(text_of(&out[0].body), Some("the body"));

    // Both ways out of the normaliser agree on every edge record.
    for r in edge_records() {
        let mut as_logs = edge_request(r.clone());
        normalize_logs(&mut as_logs);
        let read: Vec<AgentRecord> = records(&as_logs)
            .into_iter()
            .map(|l| AgentRecord::from_log_record(l).expect("record"))
            .collect();
        let mut as_records = edge_request(r);
        let (taken, _) = normalize_logs_into_records(&mut as_records);
        let taken: Vec<AgentRecord> = taken.into_iter().map(|k| k.record).collect();
        assert_eq!(taken, read);
    }
}
