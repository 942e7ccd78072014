//! Property: the real agents' observations (the captured OTLP of tests/fixtures, normalised by
//! the otlp receiver's code), in **any** permutation, with **any** duplication, cut into any
//! batches and with the pipeline restarted at any point, go through the real `dedupe` processor
//! (settle window 0, state on disk: in its own state file, or read from the store with
//! `storage`, its observations and emissions sent as OTLP or as records: [`Mode`]) into the
//! real SQLite store and leave every table with the same content as one ordered delivery
//! through a `dedupe` with its own state file.

use std::path::Path;
use std::sync::{Arc, Mutex};

use agentcol_component::agent::{Agent, AgentRecord, EventKey, Kind, Source};
use agentcol_component::lifecycle::Component;
use agentcol_component::opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use agentcol_component::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use agentcol_component::opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use agentcol_component::{
    async_trait, AgentInput, AgentLogs, ComponentId, ComponentKind, ConsumeError, Consumer, Host,
    KeyStates, KeyStatesError, KeyedRecord, Logs, StoredKey,
};
use agentcol_exporter_sqlite::query::Reader;
use agentcol_exporter_sqlite::{Store, StoreOptions};
use agentcol_processor_dedupe::{DedupeConfig, DedupeProcessor};
use agentcol_receiver_otlp::agent::{events_from_spans, normalize_logs};
use proptest::prelude::*;

/// Every canonical observation the receiver makes of an agent's captured requests, one
/// single-record request each (resource and scope kept).
fn observations(agent: &str) -> Vec<Logs> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(agent)
        .join("otlp");
    let index = std::fs::read_to_string(dir.join("index.jsonl")).expect("fixture index");
    let mut out = Vec::new();
    for line in index.lines().filter(|l| !l.trim().is_empty()) {
        let e: serde_json::Value = serde_json::from_str(line).expect("index line");
        let bytes = std::fs::read(dir.join(e["file"].as_str().expect("file"))).expect("fixture");
        let logs = match e["signal"].as_str() {
            Some("logs") => {
                let mut req: ExportLogsServiceRequest =
                    serde_json::from_slice(&bytes).expect("OTLP/JSON");
                normalize_logs(&mut req);
                req
            }
            Some("traces") => {
                let req: ExportTraceServiceRequest =
                    serde_json::from_slice(&bytes).expect("OTLP/JSON");
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
                    out.push(Logs {
                        resource_logs: vec![ResourceLogs {
                            resource: rl.resource.clone(),
                            scope_logs: vec![ScopeLogs {
                                scope: sl.scope.clone(),
                                log_records: vec![r.clone()],
                                schema_url: String::new(),
                            }],
                            schema_url: String::new(),
                        }],
                    });
                }
            }
        }
    }
    out
}

fn merge(batch: &[Logs]) -> Logs {
    Logs {
        resource_logs: batch.iter().flat_map(|l| l.resource_logs.clone()).collect(),
    }
}

/// The store as the downstream of dedupe: one transaction per request, answered after commit;
/// its rows offered as key states (as the `sqlite` exporter's input offers them), and, when
/// `records`, its input for records.
struct StoreSink {
    store: Arc<Mutex<Store>>,
    records: bool,
}

#[derive(Debug)]
struct StoreStates(Arc<Mutex<Store>>, ComponentId);

impl KeyStates for StoreStates {
    fn owner(&self) -> &ComponentId {
        &self.1
    }

    fn load(&self, key: &EventKey, text: &str) -> Result<Option<StoredKey>, KeyStatesError> {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.key_state(key, text).map_err(|e| KeyStatesError {
            reason: e.to_string(),
            retryable: e.is_retryable(),
        })
    }
}

#[async_trait]
impl AgentInput for StoreStates {
    fn owner(&self) -> &ComponentId {
        &self.1
    }

    async fn consume_agent(&self, batch: AgentLogs) -> Result<(), ConsumeError> {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.apply_records(batch)
            .map(|_| ())
            .map_err(|e| ConsumeError::permanent(e.to_string()))
    }
}

#[async_trait]
impl Consumer<Logs> for StoreSink {
    fn key_states(&self) -> Option<Arc<dyn KeyStates>> {
        let id = "sqlite".parse().expect("id");
        Some(Arc::new(StoreStates(self.store.clone(), id)))
    }

    fn agent_input(&self) -> Option<Arc<dyn AgentInput>> {
        let id = "sqlite".parse().expect("id");
        self.records
            .then(|| Arc::new(StoreStates(self.store.clone(), id)) as Arc<dyn AgentInput>)
    }

    async fn consume(&self, data: Logs) -> Result<(), ConsumeError> {
        let mut s = self.store.lock().unwrap_or_else(|p| p.into_inner());
        s.apply(&data)
            .map(|_| ())
            .map_err(|e| ConsumeError::permanent(e.to_string()))
    }
}

/// How `dedupe` and the store are connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `dedupe` keeps its own state file; OTLP in and out.
    File,
    /// `storage`: key states read from the store; OTLP in and out.
    Storage,
    /// `storage`, emissions handed to the store as records.
    RecordsOut,
    /// `storage`, observations handed to `dedupe` as records too (as the `otlp` receiver
    /// does), emissions as records.
    RecordsInOut,
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![
        Just(Mode::File),
        Just(Mode::Storage),
        Just(Mode::RecordsOut),
        Just(Mode::RecordsInOut),
    ]
}

/// The request as the `otlp` receiver hands it to an agent-record input: its agent records
/// as records, the rest as log records.
fn as_records(mut logs: Logs) -> AgentLogs {
    let mut records = Vec::new();
    for rl in &mut logs.resource_logs {
        for sl in &mut rl.scope_logs {
            let mut kept = Vec::new();
            for mut r in std::mem::take(&mut sl.log_records) {
                match AgentRecord::take_from_log_record(&mut r, |_| true) {
                    Ok(record) if record.revision.is_none() => {
                        let key = record.key.to_string();
                        records.push(KeyedRecord::new(record, key));
                    }
                    _ => kept.push(r),
                }
            }
            sl.log_records = kept;
        }
    }
    AgentLogs { records, logs }
}

/// Delivers `batches` through dedupe into a fresh store under `root`, restarting both after
/// the batch numbered `restart_after` (if any), and dumps the store.
async fn deliver(
    root: &Path,
    batches: &[Vec<Logs>],
    restart_after: Option<usize>,
    mode: Mode,
) -> String {
    let db = root.join("agentcol.db");
    let records = matches!(mode, Mode::RecordsOut | Mode::RecordsInOut);
    let config = DedupeConfig {
        storage: (mode != Mode::File).then(|| "sqlite".to_string()),
        ..DedupeConfig::default()
    };
    let start = || {
        let store = Store::open(&db, StoreOptions::default()).expect("open store");
        let sink: Arc<dyn Consumer<Logs>> = Arc::new(StoreSink {
            store: Arc::new(Mutex::new(store)),
            records,
        });
        let host = Host::for_test(ComponentKind::Processor, "dedupe/store", root);
        DedupeProcessor::new(&host, "logs", &config, sink).expect("dedupe")
    };
    let mut p = start();
    p.start().await.expect("start");
    for (i, b) in batches.iter().enumerate() {
        if mode == Mode::RecordsInOut {
            let input = p.agent_input().expect("dedupe takes records");
            input
                .consume_agent(as_records(merge(b)))
                .await
                .expect("delivered");
        } else {
            assert!(records || p.agent_input().is_none(), "{mode:?}");
            p.consume(merge(b)).await.expect("delivered");
        }
        if restart_after == Some(i) {
            p.shutdown().await.expect("shutdown");
            drop(p);
            p = start();
            p.start().await.expect("start");
        }
    }
    p.shutdown().await.expect("shutdown");
    drop(p);
    dump(&db)
}

fn dump(db: &Path) -> String {
    Reader::open(db)
        .and_then(|r| r.dump_tables())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// One case: the permutation `order`, then the duplicates `dups`, cut at `cuts`, restarted
/// after batch `restart`, `dedupe` and the store connected as `mode` says.
fn check(
    agent: &str,
    order: &[usize],
    dups: &[usize],
    cuts: &[usize],
    restart: Option<usize>,
    mode: Mode,
) {
    let obs = observations(agent);
    let rt = runtime();
    let reference = {
        let dir = tempfile::tempdir().expect("tempdir");
        rt.block_on(deliver(
            dir.path(),
            std::slice::from_ref(&obs),
            None,
            Mode::File,
        ))
    };
    assert!(reference.contains("user_prompt"), "{reference}");
    let mut seq: Vec<Logs> = order.iter().map(|i| obs[*i % obs.len()].clone()).collect();
    seq.extend(dups.iter().map(|i| obs[*i % obs.len()].clone()));
    let mut batches = Vec::new();
    let mut rest = seq.as_slice();
    for c in cuts {
        if rest.is_empty() {
            break;
        }
        let n = (c % rest.len()).max(1);
        batches.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    if !rest.is_empty() {
        batches.push(rest.to_vec());
    }
    let restart = restart.map(|r| r % batches.len().max(1));
    let dir = tempfile::tempdir().expect("tempdir");
    let got = rt.block_on(deliver(dir.path(), &batches, restart, mode));
    assert!(
        got == reference,
        "{agent} ({mode:?}): the store differs from one ordered delivery"
    );
}

fn permutation(n: usize) -> impl Strategy<Value = Vec<usize>> {
    Just((0..n).collect::<Vec<_>>()).prop_shuffle()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn codex_any_order_duplication_batching_restart_gives_identical_store(
        order in permutation(observations("codex").len()),
        dups in proptest::collection::vec(0..1000usize, 0..20),
        cuts in proptest::collection::vec(1..40usize, 0..8),
        restart in proptest::option::of(0..8usize),
        mode in mode(),
    ) {
        check("codex", &order, &dups, &cuts, restart, mode);
    }

    #[test]
    fn claude_any_order_duplication_batching_restart_gives_identical_store(
        order in permutation(observations("claude").len()),
        dups in proptest::collection::vec(0..1000usize, 0..20),
        cuts in proptest::collection::vec(1..40usize, 0..8),
        restart in proptest::option::of(0..8usize),
        mode in mode(),
    ) {
        check("claude", &order, &dups, &cuts, restart, mode);
    }
}

/// A request of one record, as a sender would write it.
fn one(r: AgentRecord) -> Logs {
    agentcol_component::data::logs_from(vec![r.into_log_record()])
}

#[test]
fn a_float_attribute_is_stored_the_same_whatever_the_mode_and_restarts() {
    // A state is read back from text in several places (`dedupe`'s cache of a key of one
    // observation, the store's key states after a restart): a double must come back exactly,
    // which serde_json's default float parser does not promise (`float_roundtrip` does). This
    // value reads back one unit in the last place off without it.
    let key =
        EventKey::new(Agent::Codex, "s1", Some("t1"), Some("m1"), Kind::Message).expect("key");
    let mut a = AgentRecord::observation(key.clone(), "agent.message", Source::Otlp, 1_000);
    a.set("x", serde_json::json!(0.9941414234139935f64));
    a.body = serde_json::json!("hi");
    let mut b = AgentRecord::observation(key, "agent.message", Source::Hook, 2_000);
    b.set("y", serde_json::json!(1));
    b.body = serde_json::json!("hi");
    let batches = vec![vec![one(a)], vec![one(b)]];
    let rt = runtime();
    let reference = {
        let dir = tempfile::tempdir().expect("tempdir");
        rt.block_on(deliver(dir.path(), &batches, None, Mode::File))
    };
    assert!(reference.contains("0.9941414234139935"), "{reference}");
    for mode in [
        Mode::File,
        Mode::Storage,
        Mode::RecordsOut,
        Mode::RecordsInOut,
    ] {
        for restart in [None, Some(0)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let got = rt.block_on(deliver(dir.path(), &batches, restart, mode));
            assert!(
                got == reference,
                "{mode:?}, restart {restart:?}: the store differs from one ordered delivery"
            );
        }
    }
}
