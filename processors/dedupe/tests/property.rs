//! The dedupe contract as a property: whatever the arrival order, duplication, batching and
//! restarts, the final state downstream is byte-identical to one ordered delivery.

mod common;

use std::path::Path;

use agentcol_component::agent::AgentRecord;
use agentcol_component::{Component, Consumer};
use agentcol_processor_dedupe::DedupeConfig;
use common::*;
use proptest::prelude::*;

fn deliver(
    dir: &Path,
    config: &DedupeConfig,
    batches: &[Vec<AgentRecord>],
    restart_after: Option<usize>,
) -> Vec<AgentRecord> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rec = Recorder::new();
    rt.block_on(async {
        let mut p = processor(&host(dir), config, rec.clone());
        for (i, b) in batches.iter().enumerate() {
            p.consume(logs_of(b)).await.unwrap();
            if restart_after == Some(i) {
                // A crash: no shutdown, a new instance on the same state file.
                drop(p);
                p = processor(&host(dir), config, rec.clone());
            }
        }
        p.shutdown().await.unwrap();
    });
    rec.records()
}

fn serialised(records: &[AgentRecord]) -> String {
    serde_json::to_string(&fold(records)).unwrap()
}

fn reference() -> &'static (String, Vec<String>) {
    static REFERENCE: std::sync::OnceLock<(String, Vec<String>)> = std::sync::OnceLock::new();
    REFERENCE.get_or_init(compute_reference)
}

fn compute_reference() -> (String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let out = deliver(
        dir.path(),
        &DedupeConfig::default(),
        &[session_pool()],
        None,
    );
    let mut distinct: Vec<String> = session_pool()
        .iter()
        .map(AgentRecord::observation_json)
        .collect();
    distinct.sort();
    (serialised(&out), distinct)
}

/// An arrival sequence: a permutation of the pool with duplicates inserted anywhere.
fn arrivals() -> impl Strategy<Value = Vec<usize>> {
    let n = session_pool().len();
    (
        Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
        proptest::collection::vec((0..n, any::<prop::sample::Index>()), 0..10),
    )
        .prop_map(|(mut seq, dups)| {
            for (i, at) in dups {
                let pos = at.index(seq.len() + 1);
                seq.insert(pos, i);
            }
            seq
        })
}

fn split(seq: &[usize], sizes: &[usize]) -> Vec<Vec<AgentRecord>> {
    let pool = session_pool();
    let mut out = Vec::new();
    let mut rest = seq;
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        out.push(rest[..n].iter().map(|i| pool[*i].clone()).collect());
        rest = &rest[n..];
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn any_order_duplication_batching_and_restart_gives_the_same_final_state(
        seq in arrivals(),
        sizes in proptest::collection::vec(1..6usize, 1..6),
        restart in proptest::option::of(0..8usize),
        cache_keys in prop_oneof![Just(1usize), Just(3), Just(100_000)],
    ) {
        let (expected, distinct) = reference();
        let batches = split(&seq, &sizes);
        let restart = restart.filter(|r| *r + 1 < batches.len());
        let dir = tempfile::tempdir().unwrap();
        let config = DedupeConfig { cache_keys, ..DedupeConfig::default() };
        let out = deliver(dir.path(), &config, &batches, restart);
        assert_no_repeat(&out);
        prop_assert_eq!(&serialised(&out), expected);
        // The archive is lossless and exact: every distinct observation is attached to exactly
        // one emission, whatever the order.
        let mut attached: Vec<String> = out.iter().flat_map(|r| r.observations.clone()).collect();
        attached.sort();
        prop_assert_eq!(&attached, distinct);
    }
}

#[test]
fn the_reference_state_is_what_the_contract_says() {
    let dir = tempfile::tempdir().unwrap();
    let out = deliver(
        dir.path(),
        &DedupeConfig::default(),
        &[session_pool()],
        None,
    );
    let state = fold(&out);
    // Nine logical events; every provisional key resolved to the real turn.
    let keys: Vec<&String> = state.keys().collect();
    assert_eq!(state.len(), 9, "{keys:#?}");
    assert!(keys.iter().all(|k| !k.contains("~trace")), "{keys:#?}");
    let call = state
        .values()
        .find(|r| r.key.item() == "call_1" && r.name == "agent.tool.call")
        .unwrap();
    assert_eq!(call.revision, Some(1));
    assert_eq!(
        call.get("gen_ai.tool.name"),
        Some(&serde_json::Value::from("Bash")),
        "hook outranks otlp"
    );
}
