//! Reading the store back: list, find, replay, export.

mod common;

use agentcol_component::agent::{attr, Agent, AgentRecord, EventKey, Kind, Source};
use agentcol_exporter_sqlite::query::{QueryError, Reader, SessionFilter, UsageTotals};
use agentcol_exporter_sqlite::{Store, StoreOptions};
use common::*;
use serde_json::json;

fn store_with_session() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentcol.db");
    let mut store = Store::open(&path, StoreOptions::default()).unwrap();
    store.apply(&logs(&merged_records())).unwrap();
    (dir, path)
}

fn position(text: &str, needle: &str) -> usize {
    text.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in replay:\n{text}"))
}

#[test]
fn replay_is_a_faithful_transcript_in_order() {
    let (_dir, path) = store_with_session();
    let r = Reader::open(&path).unwrap();
    let text = r.replay(&THREAD[..13]).unwrap();
    let in_order = [
        &format!("session {THREAD}  (codex)"),
        "model    gpt-5.1-codex",
        "cwd      /work/proj",
        "git      main @ abc123",
        "started  2026-11-22T14:11:14.000Z",
        "ended    2026-11-22T14:11:44.000Z",
        "status   ended",
        &format!("── turn 1  {TURN1}  2026-11-22T14:11:15.000Z"),
        "> fix the failing test",
        "(reasoning) Looking at the failing assertion",
        "I'll run the tests first.",
        "tool Bash call_1",
        r#"input  {"command":"cargo test"}"#,
        "exit 0 · 91 ms",
        "    running 1 test\n    test result: ok. 1 passed",
        "All tests pass now.",
        "(1 native event not shown)",
        "usage  in 2000 · out 400 · cache read 100 · reasoning 20 · total 2400 · $0.0125",
        &format!("── turn 2  {TURN2}"),
        "> now commit it\n> with a good message",
        "approval requested: git commit -am fix",
        "approval: approved",
        "tool exec_command call_2",
        "exit 1 · 12 ms",
        "    nothing to commit",
        "Nothing to commit: the fix was already committed.",
        "Done.",
        // The turn-scope row, not the sum with the response row (no double count).
        "usage  in 5000 · out 400 · total 5400",
        "── (unresolved turn)  ~trace:ffeeddccbbaa99887766554433221100",
        "a message whose turn is unknown",
        "total usage  in 7000 · out 800 · cache read 100 · reasoning 20 · total 7800 · $0.0125",
    ];
    let mut last = 0;
    for needle in in_order {
        let at = position(&text, needle);
        assert!(at >= last, "{needle:?} is out of order in:\n{text}");
        last = at;
    }
    assert!(
        !text.contains("codex.sse_event"),
        "natives are only counted:\n{text}"
    );
    assert!(
        !text.contains("~trace:0af7"),
        "the tombstoned provisional turn is gone:\n{text}"
    );
    assert_eq!(
        text.matches("tool Bash call_1").count(),
        1,
        "a call and its result print once"
    );
}

#[test]
fn export_is_jsonl_of_canonical_records_in_time_order() {
    let (_dir, path) = store_with_session();
    let r = Reader::open(&path).unwrap();
    let mut out = Vec::new();
    let n = r.export(THREAD, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let records: Vec<AgentRecord> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len() as u64, n);
    assert_eq!(n, r.events(THREAD).unwrap().len() as u64);
    assert!(records
        .windows(2)
        .all(|w| (w[0].time_unix_nano, w[0].key.to_string())
            <= (w[1].time_unix_nano, w[1].key.to_string())));
    assert!(records
        .iter()
        .all(|r| r.revision.is_some() && r.observations.is_empty()));
    let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(v["name"], "agent.session.start");
    assert_eq!(v["attributes"][attr::CWD], "/work/proj");
}

#[test]
fn list_filters_and_find_by_prefix() {
    let (_dir, path) = store_with_session();
    // A second, Claude Code session in another directory, a day later.
    let other = |id: &str| {
        let k = EventKey::new(Agent::ClaudeCode, id, None, None, Kind::SessionStart).unwrap();
        let mut o =
            AgentRecord::observation(k, "agent.session.start", Source::Hook, T0 + 86_400_000 * MS);
        o.set(attr::CWD, json!("/home/me/other"));
        o
    };
    let mut store = Store::open(&path, StoreOptions::default()).unwrap();
    store
        .apply(&logs(&[other("019a7c3e-ffff-aaaa"), other("c1aude-2")]))
        .unwrap();
    let r = Reader::open(&path).unwrap();
    let all = r.list_sessions(&SessionFilter::default()).unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].session_id, THREAD, "oldest first");
    let claude = r
        .list_sessions(&SessionFilter {
            agent: Some("claude_code".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(claude.len(), 2);
    assert_eq!(claude[0].status, "active");
    let by_cwd = r
        .list_sessions(&SessionFilter {
            cwd: Some("/work".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_cwd.len(), 1);
    let recent = r
        .list_sessions(&SessionFilter {
            since_ns: Some(T0 + 3_600_000 * MS),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(recent.len(), 2);
    assert_eq!(r.find_session("c1a").unwrap().session_id, "c1aude-2");
    assert_eq!(r.find_session(THREAD).unwrap().session_id, THREAD);
    match r.find_session("019a7c3e") {
        Err(QueryError::Ambiguous { candidates, .. }) => assert_eq!(candidates.len(), 2),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        r.find_session("zzz"),
        Err(QueryError::NotFound(_))
    ));
    assert!(matches!(r.find_session(""), Err(QueryError::NotFound(_))));
}

#[test]
fn usage_is_never_counted_twice() {
    let (_dir, path) = store_with_session();
    let r = Reader::open(&path).unwrap();
    let usage = r.usage(THREAD).unwrap();
    let total = UsageTotals::of_session(&usage);
    assert_eq!(total.input_tokens, Some(2000 + 5000));
    assert_eq!(total.total_tokens, Some(2400 + 5400));
}

#[test]
fn a_reader_works_next_to_a_live_writer() {
    let (_dir, path) = store_with_session();
    let mut store = Store::open(&path, StoreOptions::default()).unwrap();
    let r = Reader::open(&path).unwrap();
    assert_eq!(r.list_sessions(&SessionFilter::default()).unwrap().len(), 1);
    store.apply(&logs(&raw_observations()[..1])).unwrap();
    assert_eq!(r.events(THREAD).unwrap().len(), 24);
}
