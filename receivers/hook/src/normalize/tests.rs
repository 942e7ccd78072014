use super::*;
use agentcol_component::agent::attr;

fn fixture(agent: &str) -> Vec<String> {
    let path = format!(
        "{}/../../tests/fixtures/{agent}/hooks.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn keys(agent: Agent, lines: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for l in lines {
        let n = normalize(agent, l.as_bytes(), 1_000).unwrap();
        let event: Json = serde_json::from_str(l).unwrap();
        for r in n.records {
            out.push((
                event["hook_event_name"].as_str().unwrap().to_string(),
                r.key.to_string(),
            ));
        }
    }
    out
}

#[test]
fn codex_hooks_land_on_the_keys_every_other_channel_uses() {
    let lines = fixture("codex");
    let got = keys(Agent::Codex, &lines);
    let thread = "01a20398-c9df-7663-a2ef-5b9717d3a988";
    let turn2 = "01a20398-cd59-7982-9622-ecc04569599b";
    let has = |event: &str, key: String| {
        assert!(
            got.iter().any(|(e, k)| e == event && *k == key),
            "{event} → {key} not in {got:#?}"
        )
    };
    has("SessionStart", format!("v1|codex|{thread}|||session.start"));
    has("SessionEnd", format!("v1|codex|{thread}|||session.end"));
    has(
        "UserPromptSubmit",
        format!("v1|codex|{thread}|{turn2}||user_prompt"),
    );
    has(
        "UserPromptSubmit",
        format!("v1|codex|{thread}|{turn2}||turn.start"),
    );
    has(
        "PreToolUse",
        format!("v1|codex|{thread}|{turn2}|call_mock0004|tool.call"),
    );
    has(
        "PostToolUse",
        format!("v1|codex|{thread}|{turn2}|call_mock0004|tool.result"),
    );
    has("Stop", format!("v1|codex|{thread}|{turn2}||turn.end"));
    // Model-request usage has no response id: a flagged fallback key in the turn.
    assert!(got.iter().any(|(e, k)| e == "PostModelRequest"
        && k.starts_with(&format!("v1|codex|{thread}|{turn2}|#"))
        && k.ends_with("|usage")));
    // PreModelRequest has no canonical meaning: kept native.
    assert!(got
        .iter()
        .any(|(e, k)| e == "PreModelRequest" && k.ends_with("|native")));
}

#[test]
fn codex_tool_records_carry_the_canonical_tool_fields() {
    let lines = fixture("codex");
    let post = lines
        .iter()
        .find(|l| l.contains("\"PostToolUse\""))
        .unwrap();
    let n = normalize(Agent::Codex, post.as_bytes(), 5).unwrap();
    let r = &n.records[0];
    assert_eq!(r.source, Some(Source::Hook));
    assert_eq!(r.time_unix_nano, 5);
    assert_eq!(r.body, Json::String("hi\n".into()));
    assert_eq!(r.text(attr::TOOL_CALL_ID).as_deref(), Some("call_mock0004"));
    assert_eq!(
        r.text(attr::TOOL_INPUT).as_deref(),
        Some(r#"{"command":"echo hi"}"#)
    );
    // "Bash" is Codex's hook alias of its shell tool, not the tool's name elsewhere.
    assert_eq!(r.get(attr::TOOL_NAME), None);
    assert_eq!(r.text("hook.tool_name").as_deref(), Some("Bash"));
    // The output moved to the body is not repeated as an attribute.
    assert_eq!(r.get("hook.tool_response"), None);
    assert_eq!(
        r.text(attr::CONVERSATION_ID).as_deref(),
        Some("01a20398-c9df-7663-a2ef-5b9717d3a988")
    );

    let usage = lines
        .iter()
        .find(|l| l.contains("\"PostModelRequest\""))
        .unwrap();
    let n = normalize(Agent::Codex, usage.as_bytes(), 5).unwrap();
    assert!(n.fallback && !n.native);
    let u = &n.records[0];
    assert_eq!(u.int(attr::USAGE_INPUT_TOKENS), Some(9817));
    assert_eq!(u.int(attr::USAGE_TOTAL_TOKENS), Some(9829));
    assert_eq!(u.text(attr::USAGE_SCOPE).as_deref(), Some("request"));
}

#[test]
fn claude_hooks_land_on_the_keys_every_other_channel_uses() {
    let lines = fixture("claude");
    let got = keys(Agent::ClaudeCode, &lines);
    let s = "fd4f9005-d186-450f-b3d5-9caf5c1e1c87";
    let p = "08081dd4-0261-4274-bdba-7e4fc4582d13";
    let call = "toolu_mock_39be9ffb33604afea787";
    for (event, key) in [
        (
            "SessionStart",
            format!("v1|claude_code|{s}|||session.start"),
        ),
        (
            "UserPromptSubmit",
            format!("v1|claude_code|{s}|{p}||user_prompt"),
        ),
        (
            "UserPromptSubmit",
            format!("v1|claude_code|{s}|{p}||turn.start"),
        ),
        (
            "PreToolUse",
            format!("v1|claude_code|{s}|{p}|{call}|tool.call"),
        ),
        (
            "PostToolUse",
            format!("v1|claude_code|{s}|{p}|{call}|tool.result"),
        ),
        ("Stop", format!("v1|claude_code|{s}|{p}||turn.end")),
        ("SessionEnd", format!("v1|claude_code|{s}|||session.end")),
    ] {
        assert!(
            got.iter().any(|(e, k)| e == event && *k == key),
            "{event} → {key} not in {got:#?}"
        );
    }
    let post = lines
        .iter()
        .find(|l| l.contains("\"PostToolUse\""))
        .unwrap();
    let r = normalize(Agent::ClaudeCode, post.as_bytes(), 1)
        .unwrap()
        .records
        .remove(0);
    assert_eq!(r.text(attr::TOOL_NAME).as_deref(), Some("Bash"));
    assert_eq!(r.body.as_str().map(str::trim), Some("hi"));
    assert_eq!(r.get(attr::TOOL_SUCCESS), Some(&Json::Bool(true)));
    assert_eq!(r.text(attr::PROMPT_ID).as_deref(), Some(p));
}

#[test]
fn the_same_call_at_the_same_time_is_the_same_observation() {
    for (agent, lines) in [
        (Agent::Codex, fixture("codex")),
        (Agent::ClaudeCode, fixture("claude")),
    ] {
        for l in &lines {
            let a = normalize(agent, l.as_bytes(), 77).unwrap();
            let b = normalize(agent, l.as_bytes(), 77).unwrap();
            let json = |n: &Normalized| {
                n.records
                    .iter()
                    .map(|r| r.observation_json())
                    .collect::<Vec<_>>()
            };
            assert_eq!(json(&a), json(&b));
        }
    }
}

#[test]
fn bad_payloads_are_errors_or_native_records_never_panics() {
    assert!(matches!(
        normalize(Agent::Codex, b"not json", 1),
        Err(PayloadError::NotJson(_))
    ));
    assert!(matches!(
        normalize(Agent::Codex, b"[1,2]", 1),
        Err(PayloadError::NotObject("an array"))
    ));
    assert!(normalize(Agent::Codex, b"\xff\xfe", 1).is_err());

    // No session id: kept, under the #unknown session.
    let n = normalize(Agent::ClaudeCode, br#"{"hook_event_name":"Stop"}"#, 1).unwrap();
    assert!(n.native);
    assert_eq!(n.records[0].key.session(), "#unknown");

    // An unknown event: kept as it came.
    let n = normalize(
        Agent::ClaudeCode,
        br#"{"session_id":"s","hook_event_name":"FutureEvent","x":{"y":1}}"#,
        1,
    )
    .unwrap();
    assert!(n.native);
    let r = &n.records[0];
    assert_eq!(r.name, "claude_code.hook.FutureEvent");
    assert_eq!(r.get("hook.x"), Some(&serde_json::json!({"y": 1})));

    // A tool event without its id cannot be keyed canonically: native, not dropped.
    let n = normalize(
        Agent::Codex,
        br#"{"session_id":"s","turn_id":"t","hook_event_name":"PreToolUse","tool_name":"Bash"}"#,
        1,
    )
    .unwrap();
    assert!(n.native && n.records.len() == 1);

    // A permission request has no call id in either agent: a flagged fallback key.
    let n = normalize(
        Agent::ClaudeCode,
        br#"{"session_id":"s","prompt_id":"p","hook_event_name":"PermissionRequest","tool_name":"Bash","tool_input":{"command":"touch x"}}"#,
        1,
    )
    .unwrap();
    assert!(n.fallback && !n.native);
    assert_eq!(n.records[0].key.kind(), Kind::ApprovalRequest);
    assert!(n.records[0].key.is_fallback());
}
