//! Behaviour of the dedupe processor through its public API, on real SQLite files, with a
//! recording downstream.

mod common;

use std::time::Duration;

use agentcol_component::agent::{attr, AgentRecord, Kind, Precedence, Source};
use agentcol_component::opentelemetry_proto::tonic::common::v1::{
    any_value::Value as V, AnyValue, InstrumentationScope, KeyValue,
};
use agentcol_component::opentelemetry_proto::tonic::logs::v1::{
    LogRecord, ResourceLogs, ScopeLogs,
};
use agentcol_component::opentelemetry_proto::tonic::resource::v1::Resource;
use agentcol_component::{
    AnyConsumer, Component, ComponentKind, ConsumeError, Consumer, CreateError, Host, Logs,
    ProcessorFactory, Traces,
};
use agentcol_processor_dedupe::{
    decision_counts, default_state_path, pending_count, recent_decisions, state_files,
    DecisionKind, DedupeConfig, DedupeProcessorFactory,
};
use common::*;
use serde_json::Value as Json;

fn tool_result(source: Source, body: &str, extra: &[(&str, Json)]) -> AgentRecord {
    obs(
        key(Some(TURN), Some("call_1"), Kind::ToolResult),
        source,
        100,
        extra,
        body.into(),
    )
}

fn windowed(ms: u64) -> DedupeConfig {
    DedupeConfig {
        settle_window: agentcol_component::Duration::from_millis(ms),
        ..DedupeConfig::default()
    }
}

fn string_kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(V::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_refused_delivery_commits_nothing_and_its_retry_is_not_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let rec = Recorder::new();
    let p = processor(&h, &DedupeConfig::default(), rec.clone());
    let batch = logs_of(&[tool_result(Source::Otlp, "hi", &[])]);
    rec.refuse_next(ConsumeError::retryable("queue full"));
    let err = p.consume(batch.clone()).await.unwrap_err();
    assert!(err.is_retryable());
    assert!(rec.records().is_empty());
    assert_eq!(
        counter(&h, "unique"),
        0,
        "nothing counted before acceptance"
    );
    assert!(recent_decisions(p.state_path(), 10).unwrap().is_empty());

    p.consume(batch.clone()).await.unwrap();
    let out = rec.records();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].revision, Some(0));
    assert_eq!(counter(&h, "unique"), 1);
    assert_eq!(counter(&h, "duplicate"), 0, "the retry is not a duplicate");

    // The same data once more *is* a duplicate: dropped, counted, nothing sent.
    p.consume(batch).await.unwrap();
    assert_eq!(rec.records().len(), 1);
    assert_eq!(counter(&h, "duplicate"), 1);
}

#[tokio::test]
async fn a_permanent_refusal_is_returned_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let rec = Recorder::new();
    let p = processor(&h, &DedupeConfig::default(), rec.clone());
    let batch = logs_of(&[tool_result(Source::Otlp, "hi", &[])]);
    rec.refuse_next(ConsumeError::permanent("bad"));
    assert!(!p.consume(batch.clone()).await.unwrap_err().is_retryable());
    p.consume(batch).await.unwrap();
    assert_eq!(rec.records()[0].revision, Some(0));
}

#[tokio::test]
async fn duplicates_are_dropped_revisions_increment_and_sources_accumulate() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let rec = Recorder::new();
    let p = processor(&h, &DedupeConfig::default(), rec.clone());
    let otlp = tool_result(Source::Otlp, "hi", &[(attr::TOOL_SUCCESS, true.into())]);
    let hook = tool_result(Source::Hook, "hi\n", &[(attr::TOOL_EXIT_CODE, 0.into())]);
    let rollout = tool_result(Source::Rollout, "hi\n", &[(attr::DURATION_MS, 91.into())]);

    // Within one request: one emission, duplicates folded.
    p.consume(logs_of(&[otlp.clone(), otlp.clone(), hook.clone()]))
        .await
        .unwrap();
    let out = rec.records();
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].revision, Some(1));
    assert_eq!(out[0].sources, vec![Source::Otlp, Source::Hook]);
    assert_eq!(out[0].source, Some(Source::Hook));
    assert_eq!(out[0].body, Json::from("hi\n"));
    assert_eq!(
        out[0].observations.len(),
        2,
        "each distinct observation attached once"
    );

    p.consume(logs_of(std::slice::from_ref(&hook)))
        .await
        .unwrap();
    assert_eq!(rec.records().len(), 1, "a duplicate emits nothing");

    p.consume(logs_of(&[rollout])).await.unwrap();
    let out = rec.records();
    assert_eq!(out.len(), 2);
    let last = &out[1];
    assert_eq!(last.revision, Some(2));
    assert_eq!(
        last.sources,
        vec![Source::Otlp, Source::Hook, Source::Rollout]
    );
    assert_eq!(last.get(attr::TOOL_SUCCESS), Some(&Json::from(true)));
    assert_eq!(last.get(attr::DURATION_MS), Some(&Json::from(91)));
    assert_eq!(
        last.observations.len(),
        1,
        "only what is new since the last emission"
    );
    assert_eq!(
        last.provenance.get("a:agent.tool.success"),
        Some(&Source::Otlp)
    );

    assert_eq!(counter(&h, "unique"), 1);
    assert_eq!(counter(&h, "merged"), 2);
    assert_eq!(counter(&h, "duplicate"), 2);
    assert_eq!(counter(&h, "revised"), 2);

    let counts = decision_counts(p.state_path()).unwrap();
    assert_eq!(counts[&DecisionKind::Unique], 1);
    assert_eq!(counts[&DecisionKind::Duplicate], 2);
    assert_eq!(counts[&DecisionKind::Merged], 2);
    assert_eq!(counts[&DecisionKind::Revised], 2);
}

#[tokio::test]
async fn precedence_is_configurable_and_changes_the_winner() {
    let o = tool_result(
        Source::Otlp,
        "from otlp",
        &[(attr::TOOL_NAME, "exec_command".into())],
    );
    let k = tool_result(
        Source::Hook,
        "from hook",
        &[(attr::TOOL_NAME, "Bash".into())],
    );
    for (precedence, winner, body) in [
        (Precedence::default(), "Bash", "from hook"),
        (
            Precedence {
                codex: vec![Source::Otlp, Source::Hook],
                ..Precedence::default()
            },
            "exec_command",
            "from otlp",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::new();
        let config = DedupeConfig {
            precedence,
            ..DedupeConfig::default()
        };
        let p = processor(&host(dir.path()), &config, rec.clone());
        p.consume(logs_of(std::slice::from_ref(&o))).await.unwrap();
        p.consume(logs_of(std::slice::from_ref(&k))).await.unwrap();
        let last = rec.records().pop().unwrap();
        assert_eq!(last.get(attr::TOOL_NAME), Some(&Json::from(winner)));
        assert_eq!(last.body, Json::from(body));
    }
}

fn provisional_result(body: &str) -> AgentRecord {
    obs(
        key(Some(&alias_turn()), Some("call_1"), Kind::ToolResult),
        Source::Otlp,
        100,
        &[(attr::TOOL_SUCCESS, true.into())],
        body.into(),
    )
}

fn declaration() -> AgentRecord {
    obs(
        key(Some(TURN), None, Kind::TurnStart),
        Source::Rollout,
        90,
        &[(attr::ALIAS_TRACE_ID, TRACE.to_uppercase().into())],
        Json::Null,
    )
}

#[tokio::test]
async fn an_alias_learned_after_provisional_records_emits_the_real_key_and_a_tombstone() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let rec = Recorder::new();
    let p = processor(&h, &DedupeConfig::default(), rec.clone());
    p.consume(logs_of(&[provisional_result("a\nb")]))
        .await
        .unwrap();
    let first = rec.records();
    assert_eq!(first.len(), 1);
    assert!(first[0].key.has_alias_turn());
    let provisional = first[0].key.clone();

    rec.clear();
    p.consume(logs_of(&[declaration()])).await.unwrap();
    let out = rec.records();
    let names: Vec<String> = out.iter().map(|r| r.key.to_string()).collect();
    assert_eq!(out.len(), 3, "{names:#?}");
    // The declaration itself, then the real key, then the tombstone right after it.
    assert_eq!(out[0].key.kind(), Kind::TurnStart);
    let real = &out[1];
    assert_eq!(real.key, provisional.with_turn(TURN));
    assert_eq!(real.revision, Some(0));
    assert_eq!(real.body, Json::from("a\nb"));
    assert!(
        real.observations.is_empty(),
        "already archived under the provisional key"
    );
    let tomb = &out[2];
    assert_eq!(tomb.key, provisional);
    assert_eq!(tomb.superseded_by.as_ref(), Some(&real.key));
    assert_eq!(tomb.name, "agent.tool.result");
    assert!(tomb.attributes.is_empty());
    assert_eq!(tomb.revision, Some(1));
    assert_eq!(counter(&h, "rekeyed"), 1);
    assert_eq!(counter(&h, "tombstone"), 1);

    // From now on the alias is known, across restarts: a later provisional observation goes
    // straight to the real key.
    drop(p);
    rec.clear();
    let h = host(dir.path());
    let p = processor(&h, &DedupeConfig::default(), rec.clone());
    p.consume(logs_of(&[provisional_result("a\nb\n")]))
        .await
        .unwrap();
    let out = rec.records();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].key, provisional.with_turn(TURN));
    assert_eq!(out[0].revision, Some(1));
    assert_eq!(counter(&h, "rekeyed"), 1);
    // The provisional observation seen again is a duplicate even though it is re-keyed now.
    p.consume(logs_of(&[provisional_result("a\nb")]))
        .await
        .unwrap();
    assert_eq!(rec.records().len(), 1);
    assert_eq!(counter(&h, "duplicate"), 1);
}

#[tokio::test]
async fn an_alias_known_before_gives_no_tombstone() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let rec = Recorder::new();
    let p = processor(&h, &DedupeConfig::default(), rec.clone());
    p.consume(logs_of(&[declaration()])).await.unwrap();
    p.consume(logs_of(&[provisional_result("a\nb")]))
        .await
        .unwrap();
    let out = rec.records();
    assert_eq!(out.len(), 2);
    assert!(out
        .iter()
        .all(|r| !r.is_tombstone() && !r.key.has_alias_turn()));
    assert_eq!(counter(&h, "tombstone"), 0);

    // Provisional and declaration in the same request: resolved before anything goes out.
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::new();
    let p = processor(&host(dir.path()), &DedupeConfig::default(), rec.clone());
    p.consume(logs_of(&[provisional_result("a\nb"), declaration()]))
        .await
        .unwrap();
    let out = rec.records();
    assert_eq!(out.len(), 2, "{out:#?}");
    assert_eq!(out[0].key.item(), "call_1", "emitted where it arrived");
    assert_eq!(out[0].key.turn(), TURN);
    assert!(out.iter().all(|r| !r.is_tombstone()));
}

#[tokio::test]
async fn with_a_settle_window_the_ack_comes_first_and_each_key_goes_out_once() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let rec = Recorder::new();
    let p = processor(&h, &windowed(600), rec.clone());
    p.start().await.unwrap();
    let pool = session_pool();
    for chunk in pool.chunks(3) {
        p.consume(logs_of(chunk)).await.unwrap();
    }
    assert_eq!(
        *rec.calls.lock().unwrap(),
        0,
        "acknowledged before any emission"
    );
    assert!(p.pending().await > 0);
    assert!(wait_for(|| rec.records().len() >= 9).await);
    // Nothing more comes once every key is out.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let out = rec.records();
    assert_no_repeat(&out);
    assert_eq!(out.len(), 9, "one emission per logical event: {out:#?}");
    assert!(out
        .iter()
        .all(|r| !r.is_tombstone() && !r.key.has_alias_turn()));
    assert_eq!(p.pending().await, 0);
    assert_eq!(counter(&h, "tombstone"), 0);

    // After the first emission, a new observation goes out at once.
    let extra = obs(
        key(Some(TURN), Some("msg_1"), Kind::Message),
        Source::Hook,
        1_061,
        &[("hook.extra", "x".into())],
        Json::Null,
    );
    let sent = std::time::Instant::now();
    p.consume(logs_of(&[extra])).await.unwrap();
    assert!(wait_for(|| rec.records().len() >= 10).await);
    assert!(
        sent.elapsed() < Duration::from_millis(500),
        "not held for the window again"
    );
    let out = rec.records();
    assert_eq!(out.len(), 10);
    assert_eq!(out[9].revision, Some(2));
    p.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_flushes_what_is_pending() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::new();
    let p = processor(&host(dir.path()), &windowed(60_000), rec.clone());
    p.start().await.unwrap();
    p.consume(logs_of(&session_pool())).await.unwrap();
    assert!(rec.records().is_empty());
    p.shutdown().await.unwrap();
    assert_eq!(rec.records().len(), 9);
    assert_eq!(pending_count(p.state_path()).unwrap(), 0);
    let e = p.consume(logs_of(&session_pool())).await.unwrap_err();
    assert!(e.is_retryable(), "refuses after shutdown");
}

#[tokio::test]
async fn pending_keys_survive_a_crash_and_go_out_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::new();
    let p = processor(&host(dir.path()), &windowed(200), rec.clone());
    p.start().await.unwrap();
    p.consume(logs_of(&[tool_result(Source::Otlp, "hi", &[])]))
        .await
        .unwrap();
    drop(p); // no shutdown
    assert!(rec.records().is_empty());
    let p = processor(&host(dir.path()), &windowed(200), rec.clone());
    assert_eq!(p.pending().await, 1);
    p.start().await.unwrap();
    assert!(wait_for(|| !rec.records().is_empty()).await);
    let out = rec.records();
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].observations.len(),
        1,
        "the pending observation was kept on disk"
    );
    p.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_flush_retries_until_downstream_accepts_and_shutdown_leaves_the_rest_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let rec = Recorder::new();
    let mut config = windowed(50);
    config.shutdown_timeout = agentcol_component::Duration::from_millis(300);
    let p = processor(&h, &config, rec.clone());
    p.start().await.unwrap();
    rec.refuse_next(ConsumeError::retryable("down"));
    rec.refuse_next(ConsumeError::retryable("down"));
    p.consume(logs_of(&[tool_result(Source::Otlp, "hi", &[])]))
        .await
        .unwrap();
    assert!(wait_for(|| !rec.records().is_empty()).await);
    assert_eq!(*rec.calls.lock().unwrap(), 3, "two refusals, then accepted");
    assert_eq!(rec.records().len(), 1, "delivered once it was accepted");

    rec.refuse_always(ConsumeError::retryable("down for good"));
    p.consume(logs_of(&[tool_result(Source::Hook, "hi\n", &[])]))
        .await
        .unwrap();
    p.shutdown().await.unwrap();
    assert_eq!(rec.records().len(), 1);
    assert_eq!(counter(&h, "unflushed"), 1);
    let path = p.state_path().to_path_buf();
    drop(p);
    assert_eq!(pending_count(&path).unwrap(), 1);

    rec.accept_again();
    let p = processor(&host(dir.path()), &config, rec.clone());
    p.start().await.unwrap();
    assert!(wait_for(|| rec.records().len() >= 2).await);
    let out = rec.records();
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].revision, Some(1));
    p.shutdown().await.unwrap();
}

#[tokio::test]
async fn with_a_window_a_refused_pass_through_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let rec = Recorder::new();
    let p = processor(&h, &windowed(60_000), rec.clone());
    let mut records = vec![LogRecord {
        body: Some(AnyValue {
            value: Some(V::StringValue("plain".into())),
        }),
        ..Default::default()
    }];
    records.push(tool_result(Source::Otlp, "hi", &[]).to_log_record());
    let batch = raw_logs(records);
    rec.refuse_next(ConsumeError::retryable("down"));
    assert!(p.consume(batch.clone()).await.is_err());
    assert_eq!(p.pending().await, 0);
    p.consume(batch).await.unwrap();
    assert_eq!(
        rec.log_records().len(),
        1,
        "only the plain record went out at once"
    );
    assert_eq!(p.pending().await, 1);
    assert_eq!(counter(&h, "duplicate"), 0);
    assert_eq!(counter(&h, "unique"), 1);
    p.shutdown().await.unwrap();
    assert_eq!(rec.records().len(), 1);
}

#[tokio::test]
async fn non_agent_unreadable_and_merged_records_pass_through_untouched_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let rec = Recorder::new();
    let p = processor(&h, &DedupeConfig::default(), rec.clone());
    let plain = LogRecord {
        time_unix_nano: 7,
        attributes: vec![string_kv("service.name", "x")],
        body: Some(AnyValue {
            value: Some(V::StringValue("plain".into())),
        }),
        ..Default::default()
    };
    let unreadable = LogRecord {
        attributes: vec![string_kv(attr::EVENT_KEY, "v1|gemini|s|||session.start")],
        ..Default::default()
    };
    let mut merged = tool_result(Source::Hook, "x", &[]);
    merged.revision = Some(3);
    merged.sources = vec![Source::Hook];
    let merged = merged.to_log_record();
    let agent = tool_result(Source::Otlp, "hi", &[]);
    let input = raw_logs(vec![
        plain.clone(),
        agent.to_log_record(),
        unreadable.clone(),
        agent.to_log_record(),
        merged.clone(),
    ]);
    p.consume(input).await.unwrap();
    let out = rec.log_records();
    assert_eq!(out.len(), 4);
    assert_eq!(out[0], plain);
    let emitted = AgentRecord::from_log_record(&out[1]).unwrap();
    assert_eq!(emitted.revision, Some(0));
    assert_eq!(out[2], unreadable);
    assert_eq!(out[3], merged);
    assert_eq!(counter(&h, "unreadable"), 1);
    assert_eq!(counter(&h, "duplicate"), 1);
}

fn resource(name: &str) -> Resource {
    Resource {
        attributes: vec![string_kv("service.name", name)],
        ..Default::default()
    }
}

fn group(name: &str, records: &[AgentRecord]) -> ResourceLogs {
    ResourceLogs {
        resource: Some(resource(name)),
        scope_logs: vec![ScopeLogs {
            scope: Some(InstrumentationScope {
                name: format!("{name}.scope"),
                ..Default::default()
            }),
            log_records: records.iter().map(|r| r.to_log_record()).collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn service_of(r: &ResourceLogs) -> String {
    match r.resource.as_ref().and_then(|r| r.attributes.first()) {
        Some(KeyValue {
            value: Some(AnyValue {
                value: Some(V::StringValue(s)),
            }),
            ..
        }) => s.clone(),
        _ => String::new(),
    }
}

#[tokio::test]
async fn emissions_keep_the_resource_and_scope_they_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::new();
    let p = processor(&host(dir.path()), &DedupeConfig::default(), rec.clone());
    let input = Logs {
        resource_logs: vec![
            group("codex", &[provisional_result("a\nb")]),
            group(
                "hook",
                &[obs(
                    key(Some(TURN), Some("call_9"), Kind::ToolResult),
                    Source::Hook,
                    100,
                    &[],
                    "hi".into(),
                )],
            ),
        ],
    };
    p.consume(input).await.unwrap();
    let out = rec.requests();
    let services: Vec<String> = out[0].resource_logs.iter().map(service_of).collect();
    assert_eq!(services, ["codex", "hook"]);
    assert_eq!(
        out[0].resource_logs[1].scope_logs[0]
            .scope
            .as_ref()
            .unwrap()
            .name,
        "hook.scope"
    );

    // The alias arrives from another resource: the real key moved from the provisional one is
    // re-emitted under the provisional record's original resource.
    rec.clear();
    p.consume(Logs {
        resource_logs: vec![group("rollout", &[declaration()])],
    })
    .await
    .unwrap();
    let out = rec.requests();
    let services: Vec<String> = out[0].resource_logs.iter().map(service_of).collect();
    assert_eq!(services, ["rollout", "codex"]);
    let moved = &out[0].resource_logs[1].scope_logs[0];
    assert_eq!(moved.scope.as_ref().unwrap().name, "codex.scope");
    let moved: Vec<AgentRecord> = moved
        .log_records
        .iter()
        .map(|r| AgentRecord::from_log_record(r).unwrap())
        .collect();
    assert_eq!(moved.len(), 2);
    assert!(!moved[0].is_tombstone() && moved[1].is_tombstone());
}

#[tokio::test]
async fn decisions_are_inspectable_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::new();
    let config = DedupeConfig {
        decisions_kept: 5,
        ..DedupeConfig::default()
    };
    let h = host(dir.path());
    let p = processor(&h, &config, rec.clone());
    assert_eq!(
        p.state_path(),
        default_state_path(dir.path(), h.id()).as_path()
    );
    assert!(p.state_path().ends_with("state/dedupe/dedupe_store.db"));
    p.consume(logs_of(&[provisional_result("a")]))
        .await
        .unwrap();
    p.consume(logs_of(&session_pool())).await.unwrap();
    p.consume(logs_of(&session_pool())).await.unwrap();
    let d = recent_decisions(p.state_path(), 100).unwrap();
    assert_eq!(d.len(), 5, "trimmed to decisions_kept");
    assert!(
        d.windows(2).all(|w| w[0].seq + 1 == w[1].seq),
        "oldest first"
    );
    assert!(d
        .iter()
        .all(|d| matches!(d.decision, DecisionKind::Duplicate | DecisionKind::Rekeyed)));
    let last2 = recent_decisions(p.state_path(), 2).unwrap();
    assert_eq!(last2, d[3..].to_vec());
    let line = d[4].to_string();
    assert!(
        line.contains("duplicate") && line.contains("v1|codex|"),
        "{line}"
    );
    let counts = decision_counts(p.state_path()).unwrap();
    assert_eq!(counts[&DecisionKind::Tombstone], 1);
    assert_eq!(counts[&DecisionKind::Duplicate], 16);
    assert_eq!(state_files(dir.path()), vec![p.state_path().to_path_buf()]);
}

#[tokio::test]
async fn cold_keys_are_read_back_from_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path());
    let rec = Recorder::new();
    let config = DedupeConfig {
        cache_keys: 1,
        ..DedupeConfig::default()
    };
    let p = processor(&h, &config, rec.clone());
    p.consume(logs_of(&session_pool())).await.unwrap();
    p.consume(logs_of(&session_pool())).await.unwrap();
    assert_eq!(rec.records().len(), 9);
    assert_eq!(counter(&h, "duplicate"), 16);
}

#[tokio::test]
async fn attach_observations_false_attaches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::new();
    let config = DedupeConfig {
        attach_observations: false,
        ..DedupeConfig::default()
    };
    let p = processor(&host(dir.path()), &config, rec.clone());
    p.consume(logs_of(&session_pool())).await.unwrap();
    assert!(rec.records().iter().all(|r| r.observations.is_empty()));
    let plain = rec.log_records().iter().all(|r| {
        r.attributes
            .iter()
            .all(|a| a.key != attr::EVENT_OBSERVATIONS)
    });
    assert!(plain);
}

#[tokio::test]
async fn traces_and_metrics_pipelines_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    struct Nothing;
    #[agentcol_component::async_trait]
    impl Consumer<Traces> for Nothing {
        async fn consume(&self, _: Traces) -> Result<(), ConsumeError> {
            Ok(())
        }
    }
    let f = DedupeProcessorFactory;
    assert!(f.stability().traces.is_none() && f.stability().metrics.is_none());
    assert!(f.stability().logs.is_some());
    let r = f.create(
        host(dir.path()),
        "traces",
        DedupeConfig::default(),
        AnyConsumer::Traces(std::sync::Arc::new(Nothing)),
    );
    assert!(matches!(r, Err(CreateError::SignalNotSupported(_))));
}

#[tokio::test]
async fn two_instances_cannot_share_a_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = processor(&host(dir.path()), &DedupeConfig::default(), Recorder::new());
    let second = agentcol_processor_dedupe::DedupeProcessor::new(
        &host(dir.path()),
        "logs/other",
        &DedupeConfig::default(),
        Recorder::new(),
    );
    let err = second.unwrap_err().to_string();
    assert!(err.contains("already used"), "{err}");
    drop(a);
    // Released with the instance.
    let _b = processor(&host(dir.path()), &DedupeConfig::default(), Recorder::new());
}

#[cfg(unix)]
#[tokio::test]
async fn state_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = processor(&host(dir.path()), &DedupeConfig::default(), Recorder::new());
    p.consume(logs_of(&[tool_result(Source::Otlp, "hi", &[])]))
        .await
        .unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(p.state_path()), 0o600);
    assert_eq!(mode(p.state_path().parent().unwrap()), 0o700);
    assert_eq!(mode(&dir.path().join("state")), 0o700);
    let wal = p.state_path().with_extension("db-wal");
    if wal.exists() {
        assert_eq!(mode(&wal), 0o600);
    }
}

#[tokio::test]
async fn a_relative_state_path_is_under_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let config = DedupeConfig {
        state_path: Some("custom/d.db".into()),
        ..DedupeConfig::default()
    };
    let h = Host::for_test(ComponentKind::Processor, "dedupe", dir.path());
    let p = agentcol_processor_dedupe::DedupeProcessor::new(&h, "logs", &config, Recorder::new())
        .unwrap();
    assert_eq!(p.state_path(), dir.path().join("custom/d.db"));
}

#[tokio::test]
async fn a_provisional_repeat_in_the_request_that_declares_its_alias_is_a_duplicate() {
    // The provisional observation is stored under its provisional key (alias unknown); a later
    // request repeats it before declaring the alias. It must meet that state (a duplicate),
    // not be re-keyed on arrival as if it were new, and the state then moves as usual.
    let (_dir, h, rec, p) = fresh();
    p.consume(logs_of(&[provisional_result("a\nb")]))
        .await
        .unwrap();
    let provisional = rec.records()[0].key.clone();
    rec.clear();
    p.consume(logs_of(&[provisional_result("a\nb"), declaration()]))
        .await
        .unwrap();
    assert_eq!(counter(&h, "duplicate"), 1);
    let out = rec.records();
    let real = out
        .iter()
        .find(|r| r.key == provisional.with_turn(TURN))
        .unwrap();
    assert_eq!(real.revision, Some(0));
    assert!(
        real.observations.is_empty(),
        "archived once, under the provisional key"
    );
    assert!(out.iter().any(|r| r.is_tombstone() && r.key == provisional));

    // A new provisional observation in a request that declares its alias goes straight to the
    // real key: no provisional state, nothing to tombstone.
    let (_dir, h, rec, p) = fresh();
    p.consume(logs_of(&[provisional_result("a\nb"), declaration()]))
        .await
        .unwrap();
    assert_eq!(counter(&h, "unique"), 2);
    assert_eq!(counter(&h, "rekeyed"), 1);
    let out = rec.records();
    assert_eq!(out[0].key, provisional.with_turn(TURN));
    assert_eq!(out[0].observations.len(), 1);
    assert!(out.iter().all(|r| !r.is_tombstone()));
}
