//! The write path on real SQLite files: idempotence, order independence, restarts, tombstones,
//! the raw-observation path, bad and plain records, migrations.

mod common;

use std::path::{Path, PathBuf};

use agentcol_component::agent::{attr, AgentRecord, Kind, Source};
use agentcol_component::opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use agentcol_component::opentelemetry_proto::tonic::logs::v1::LogRecord;
use agentcol_exporter_sqlite::query::Reader;
use agentcol_exporter_sqlite::store::skip;
use agentcol_exporter_sqlite::{Store, StoreError, StoreOptions};
use common::*;
use serde_json::json;

fn db(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("agentcol.db")
}

fn open(path: &Path) -> Store {
    Store::open(path, StoreOptions::default()).unwrap()
}

/// Writes `records` in batches of `batch`, reopening the store every `restart_every` batches.
fn write(path: &Path, records: &[AgentRecord], batch: usize, restart_every: Option<usize>) {
    let mut store = open(path);
    for (i, chunk) in records.chunks(batch.max(1)).enumerate() {
        if let Some(n) = restart_every {
            if i > 0 && i % n == 0 {
                drop(store);
                store = open(path);
            }
        }
        store.apply(&logs(chunk)).unwrap();
    }
}

fn dump_after(records: &[AgentRecord], batch: usize, restart_every: Option<usize>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    write(&path, records, batch, restart_every);
    dump(&path)
}

#[test]
fn the_same_batch_twice_leaves_identical_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let records = merged_records();
    let mut store = open(&path);
    let first = store.apply(&logs(&records)).unwrap();
    assert!(first.upserted > 0 && first.archived > 0);
    let once = dump(&path);
    let second = store.apply(&logs(&records)).unwrap();
    assert_eq!(dump(&path), once);
    assert_eq!(second.upserted, 0, "{second:?}");
    assert_eq!(second.archived, 0, "{second:?}");
}

#[test]
fn merged_records_in_any_order_give_identical_tables() {
    let records = merged_records();
    let reference = dump_after(&records, records.len(), None);
    assert!(
        reference.contains("I'll run the tests first."),
        "{reference}"
    );
    let mut reversed = records.clone();
    reversed.reverse();
    assert_eq!(
        dump_after(&reversed, records.len(), None),
        reference,
        "reversed, one batch"
    );
    assert_eq!(
        dump_after(&reversed, 1, None),
        reference,
        "reversed, one record per batch"
    );
    for seed in [1, 7, 42, 1234, 99_999] {
        let s = shuffled(&records, seed);
        assert_eq!(
            dump_after(&s, 5, None),
            reference,
            "shuffled with seed {seed}"
        );
    }
}

#[test]
fn restarts_in_between_change_nothing() {
    let records = merged_records();
    let reference = dump_after(&records, records.len(), None);
    assert_eq!(dump_after(&records, 3, Some(2)), reference);
    let s = shuffled(&records, 5);
    assert_eq!(dump_after(&s, 4, Some(1)), reference);
    // Everything delivered twice across a restart.
    let mut twice = s.clone();
    twice.extend(shuffled(&records, 6));
    assert_eq!(dump_after(&twice, 7, Some(1)), reference);
}

#[test]
fn raw_observations_in_any_order_give_identical_tables() {
    let records = raw_observations();
    let reference = dump_after(&records, records.len(), None);
    let mut reversed = records.clone();
    reversed.reverse();
    assert_eq!(dump_after(&reversed, 1, None), reference);
    for seed in [3, 11, 2024] {
        assert_eq!(
            dump_after(&shuffled(&records, seed), 2, Some(3)),
            reference,
            "seed {seed}"
        );
    }
}

#[test]
fn derived_tables_are_a_function_of_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    write(&path, &shuffled(&merged_records(), 77), 3, None);
    let incremental = dump(&path);
    open(&path).rebuild_derived().unwrap();
    assert_eq!(dump(&path), incremental);
}

#[test]
fn derived_rows_follow_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    write(&path, &merged_records(), 100, None);
    let r = Reader::open(&path).unwrap();
    let s = r.find_session(&THREAD[..8]).unwrap();
    assert_eq!(s.agent, "codex");
    assert_eq!(s.cwd.as_deref(), Some("/work/proj"));
    assert_eq!(s.git_branch.as_deref(), Some("main"));
    assert_eq!(s.git_commit.as_deref(), Some("abc123"));
    assert_eq!(s.model.as_deref(), Some("gpt-5.1-codex"));
    assert_eq!(s.status, "ended");
    assert_eq!(s.started_ns, Some(T0));
    assert_eq!(s.ended_ns, Some(T0 + 30_000 * MS));
    assert_eq!(s.turns, 2, "the unresolved ~trace turn is not counted");
    let turns = r.turns(THREAD).unwrap();
    assert_eq!(turns.len(), 3);
    assert_eq!(
        (turns[0].turn_id.as_str(), turns[0].ordinal),
        (TURN1, Some(1))
    );
    assert_eq!(
        (turns[1].turn_id.as_str(), turns[1].ordinal),
        (TURN2, Some(2))
    );
    assert!(turns[2].is_provisional() && turns[2].ordinal.is_none());
    assert_eq!(turns[0].prompt.as_deref(), Some("fix the failing test"));
    assert_eq!(turns[0].model.as_deref(), Some("gpt-5.1-codex"));
    assert_eq!(turns[0].started_ns, Some(T0 + 1000 * MS));
    assert_eq!(turns[0].ended_ns, Some(T0 + 3000 * MS));
    let tools = r.tool_calls(THREAD).unwrap();
    assert_eq!(tools.len(), 2);
    let t = &tools[0];
    assert_eq!(t.call_id, "call_1");
    assert_eq!(
        t.tool_name.as_deref(),
        Some("Bash"),
        "hook outranks otlp for codex"
    );
    assert_eq!(t.input.as_deref(), Some(r#"{"command":"cargo test"}"#));
    assert_eq!(
        t.output.as_deref(),
        Some("running 1 test\ntest result: ok. 1 passed")
    );
    assert_eq!(t.exit_code, Some(0));
    assert_eq!(t.success, Some(true), "only otlp had it: gaps are filled");
    assert_eq!(
        t.duration_ms,
        Some(91),
        "a numeric string is read as a number"
    );
    assert_eq!(t.started_ns, Some(T0 + 2100 * MS));
    assert_eq!(
        t.ended_ns,
        Some(T0 + 2290 * MS),
        "the hook outranks otlp for the time too"
    );
    let usage = r.usage(THREAD).unwrap();
    let u1 = usage.iter().find(|u| u.item_id == "resp_1").unwrap();
    assert_eq!(
        (
            u1.input_tokens,
            u1.output_tokens,
            u1.cache_read_tokens,
            u1.reasoning_tokens,
            u1.total_tokens
        ),
        (Some(1200), Some(300), Some(100), Some(20), Some(1500))
    );
    assert_eq!(u1.cost_usd, Some(0.0125));
    assert_eq!(u1.scope, "response");
    let u2 = usage.iter().find(|u| u.item_id == "resp_2").unwrap();
    assert_eq!(u2.scope, "response", "a missing scope means response");
    let events = r.events(THREAD).unwrap();
    assert!(events.windows(2).all(
        |w| (w[0].record.time_unix_nano, &w[0].key) <= (w[1].record.time_unix_nano, &w[1].key)
    ));
    let prompt = events
        .iter()
        .find(|e| e.kind == "user_prompt" && e.key.contains(TURN1))
        .unwrap();
    assert_eq!(prompt.revision, 1);
    assert_eq!(prompt.sources, ["otlp", "rollout"]);
}

#[test]
fn a_tombstone_removes_the_provisional_row_and_its_derived_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let (o, resolved) = provisional();
    let provisional_key = o.key.to_string();
    let p = agentcol_component::agent::Precedence::default();
    let m = agentcol_component::agent::Merged::from_observation(&o, &p);
    let mut store = open(&path);
    store.apply(&logs(&[m.to_record()])).unwrap();
    let q = |sql: &str| count(&path, sql);
    assert_eq!(
        q(&format!(
            "SELECT count(*) FROM events WHERE key = '{provisional_key}'"
        )),
        1
    );
    assert_eq!(
        q("SELECT count(*) FROM turns WHERE turn_id LIKE '~trace:%'"),
        1
    );
    assert_eq!(q("SELECT events FROM sessions"), 1);
    let mut tomb = m.to_record();
    tomb.superseded_by = Some(resolved.clone());
    let stats = store
        .apply(&logs(&[
            tomb.clone(),
            m.clone().rekey(resolved.clone()).to_record(),
        ]))
        .unwrap();
    assert_eq!(stats.tombstones, 1);
    assert_eq!(
        q(&format!(
            "SELECT count(*) FROM events WHERE key = '{provisional_key}'"
        )),
        0
    );
    assert_eq!(
        q("SELECT count(*) FROM turns WHERE turn_id LIKE '~trace:%'"),
        0
    );
    assert_eq!(
        q(&format!(
            "SELECT count(*) FROM turns WHERE turn_id = '{TURN2}'"
        )),
        1
    );
    assert_eq!(q("SELECT events FROM sessions"), 1);
    let after = dump(&path);
    // The provisional record replayed later (or overtaken by its tombstone) stays deleted.
    let again = store.apply(&logs(&[m.to_record()])).unwrap();
    assert_eq!(again.skipped.get(skip::SUPERSEDED), Some(&1));
    assert_eq!(dump(&path), after);
    let dir2 = tempfile::tempdir().unwrap();
    let path2 = db(&dir2);
    open(&path2)
        .apply(&logs(&[
            m.clone().rekey(resolved).to_record(),
            tomb,
            m.to_record(),
        ]))
        .unwrap();
    assert_eq!(dump(&path2), after, "tombstone first");
}

#[test]
fn raw_observations_merge_with_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let k = key(Some(TURN1), Some("call_1"), Kind::ToolResult);
    let otlp = obs(
        &k,
        Source::Otlp,
        5,
        &[
            (attr::TOOL_NAME, json!("exec_command")),
            (attr::TOOL_SUCCESS, json!(true)),
        ],
        json!("ok"),
    );
    let hook = obs(
        &k,
        Source::Hook,
        7,
        &[(attr::TOOL_NAME, json!("Bash"))],
        json!("ok\n"),
    );
    let mut store = open(&path);
    store.apply(&logs(std::slice::from_ref(&otlp))).unwrap();
    let r = Reader::open(&path).unwrap();
    let e = &r.events(THREAD).unwrap()[0];
    assert_eq!((e.revision, e.record.body.clone()), (0, json!("ok")));
    let stats = store.apply(&logs(&[hook.clone(), otlp.clone()])).unwrap();
    assert_eq!(stats.skipped.get(skip::DUPLICATE), Some(&1), "{stats:?}");
    let e = &r.events(THREAD).unwrap()[0];
    assert_eq!(e.revision, 1);
    assert_eq!(e.record.body, json!("ok\n"), "hook outranks otlp");
    assert_eq!(e.record.get(attr::TOOL_NAME), Some(&json!("Bash")));
    assert_eq!(e.record.get(attr::TOOL_SUCCESS), Some(&json!(true)));
    assert_eq!(e.record.source, Some(Source::Hook));
    assert_eq!(e.sources, ["otlp", "hook"]);
    assert_eq!(count(&path, "SELECT count(*) FROM observations"), 2);
    assert_eq!(
        count(&path, "SELECT count(*) FROM events WHERE state IS NOT NULL"),
        1
    );
}

#[test]
fn a_lower_revision_never_replaces_a_higher_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let records = merged_records();
    let prompt: Vec<&AgentRecord> = records
        .iter()
        .filter(|r| r.key.kind() == Kind::UserPrompt && r.key.turn() == TURN1)
        .collect();
    assert_eq!(prompt.len(), 2);
    let mut store = open(&path);
    store.apply(&logs(&[prompt[1].clone()])).unwrap();
    let stats = store.apply(&logs(&[prompt[0].clone()])).unwrap();
    assert_eq!(stats.skipped.get(skip::OLDER_REVISION), Some(&1));
    assert_eq!(
        count(
            &path,
            "SELECT revision FROM events WHERE kind = 'user_prompt'"
        ),
        1
    );
}

fn kv(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

#[test]
fn unreadable_and_plain_records_are_kept_or_counted_and_the_batch_survives() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let good = raw_observations()[0].to_log_record();
    let bad = LogRecord {
        attributes: vec![kv(attr::EVENT_KEY, "v1|nope")],
        ..Default::default()
    };
    let plain = LogRecord {
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue("GET /healthz".into())),
        }),
        time_unix_nano: 5,
        ..Default::default()
    };
    let mut store = open(&path);
    let stats = store
        .apply(&logs_of(vec![
            bad.clone(),
            plain.clone(),
            good.clone(),
            bad.clone(),
        ]))
        .unwrap();
    assert_eq!(stats.unreadable, 2);
    assert_eq!(stats.skipped.get(skip::NOT_AGENT), Some(&1));
    assert_eq!(stats.upserted, 1);
    assert_eq!(
        count(&path, "SELECT count(*) FROM raw_records"),
        1,
        "same bytes, one row"
    );
    let reason: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT reason FROM raw_records", [], |r| r.get(0))
        .unwrap();
    assert!(reason.contains("agent.event.key"), "{reason}");
    assert_eq!(count(&path, "SELECT count(*) FROM other_logs"), 0);
    drop(store);
    let mut keep = Store::open(
        &path,
        StoreOptions {
            keep_other_logs: true,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let stats = keep.apply(&logs_of(vec![plain.clone(), plain])).unwrap();
    assert_eq!(stats.other_logs, 1);
    assert_eq!(count(&path, "SELECT count(*) FROM other_logs"), 1);
    assert_eq!(count(&path, "SELECT time_ns FROM other_logs"), 5);
}

#[cfg(unix)]
#[test]
fn files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/agentcol.db");
    let mut store = open(&path);
    store.apply(&logs(&merged_records())).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    for suffix in ["-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        assert!(p.exists(), "{} exists in WAL mode", p.display());
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    assert_eq!(mode(&dir.path().join("a")), 0o700);
    assert_eq!(mode(&dir.path().join("a/b")), 0o700);
    let journal: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
}

#[test]
fn new_files_get_8_kib_pages_and_older_4_kib_files_keep_theirs() {
    let page_size = |p: &Path| -> i64 {
        rusqlite::Connection::open(p)
            .unwrap()
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    open(&path).apply(&logs(&merged_records())).unwrap();
    assert_eq!(
        page_size(&path),
        i64::from(agentcol_exporter_sqlite::schema::PAGE_SIZE)
    );

    // A file created with 4 KiB pages (as before) is opened, written and read as it is.
    let old = dir.path().join("old.db");
    rusqlite::Connection::open(&old)
        .unwrap()
        .execute_batch(
            "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE t (x); DROP TABLE t;",
        )
        .unwrap();
    let records = merged_records();
    open(&old).apply(&logs(&records)).unwrap();
    assert_eq!(page_size(&old), 4096);
    let fresh = dir.path().join("fresh.db");
    open(&fresh).apply(&logs(&records)).unwrap();
    assert_eq!(dump(&old), dump(&fresh));
}

#[test]
fn a_newer_schema_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    drop(open(&path));
    let latest = agentcol_exporter_sqlite::schema::latest_version();
    let v: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, latest);
    // Reopening a current file migrates nothing and keeps the data.
    drop(open(&path));
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(&format!("PRAGMA user_version = {}", latest + 1))
        .unwrap();
    let err = Store::open(&path, StoreOptions::default()).unwrap_err();
    assert!(
        matches!(err, StoreError::TooNew { found, .. } if found == latest + 1),
        "{err}"
    );
    assert!(err.to_string().contains("newer agentcol"), "{err}");
    let err = Reader::open(&path).unwrap_err();
    assert!(err.to_string().contains("schema version"), "{err}");
}

#[test]
fn foreign_databases_and_missing_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let err = Store::open(&path, StoreOptions::default()).unwrap_err();
    assert!(err.to_string().contains("not an agentcol store"), "{err}");
    let err = Reader::open(&dir.path().join("missing.db")).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(
        !dir.path().join("missing.db").exists(),
        "the reader creates nothing"
    );
}

/// An archive row: key, digest, source, time, json.
type ArchiveRow = (String, String, Option<String>, Option<i64>, String);

/// The archive (`archive` view: explicit rows ∪ rows implied by events), sorted; and how many
/// of them are implied.
fn archive(path: &Path) -> (Vec<ArchiveRow>, i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let rows = conn
        .prepare("SELECT key, digest, source, time_ns, json FROM archive ORDER BY key, digest")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let implied = conn
        .query_row(
            "SELECT count(*) FROM events WHERE archive_digest IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    (rows, implied)
}

/// What version 1 archived: every attached observation once, its columns read from its JSON.
fn expected_archive(records: &[AgentRecord]) -> Vec<ArchiveRow> {
    let mut v: Vec<_> = records
        .iter()
        .flat_map(|r| r.observations.iter())
        .map(|o| {
            let rec = AgentRecord::from_observation_json(o).unwrap();
            (
                rec.key.to_string(),
                agentcol_component::agent::merge::digest(o),
                rec.source.map(|s| s.as_str().to_string()),
                Some(rec.time_unix_nano as i64),
                o.clone(),
            )
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn the_archive_holds_every_attached_observation_once_whatever_the_order() {
    let records = merged_records();
    let expected = expected_archive(&records);
    let mut orders = vec![(records.clone(), records.len(), None)];
    let mut reversed = records.clone();
    reversed.reverse();
    orders.push((reversed.clone(), 1, None));
    for seed in [3, 11, 2024] {
        orders.push((shuffled(&records, seed), 2, Some(1)));
    }
    let mut twice = reversed;
    twice.extend(records.clone());
    orders.push((twice, 3, Some(2)));
    for (i, (order, batch, restart)) in orders.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let path = db(&dir);
        write(&path, &order, batch, restart);
        let (rows, implied) = archive(&path);
        assert_eq!(rows, expected, "order {i}");
        // Content stored once: events of one observation imply it instead of copying it.
        assert!(implied > 0, "order {i}");
        assert_eq!(
            count(&path, "SELECT count(*) FROM observations") + implied,
            expected.len() as i64,
            "order {i}"
        );
    }
}

#[test]
fn a_version_1_file_keeps_its_archive_and_stores_new_content_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let records = merged_records();
    let v1 = agentcol_exporter_sqlite::schema::MIGRATIONS[0];
    assert_eq!(v1.version, 1);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA page_size = 8192; PRAGMA journal_mode = WAL;")
            .unwrap();
        conn.execute_batch(v1.sql).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA application_id = {}; PRAGMA user_version = 1;",
            agentcol_exporter_sqlite::schema::APPLICATION_ID
        ))
        .unwrap();
        // What a version-1 writer left: the first record's row and its explicit archive row.
        let r = &records[0];
        let o = &r.observations[0];
        let mut plain = r.clone();
        plain.observations.clear();
        let k = &r.key;
        conn.execute(
            "INSERT INTO events (key, agent, session_id, turn_id, item_id, kind, name, time_ns,
                 revision, sources, key_fallback, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?11)",
            rusqlite::params![
                k.to_string(),
                k.agent().as_str(),
                k.session(),
                k.turn(),
                k.item(),
                k.kind().key_part(),
                r.name,
                r.time_unix_nano as i64,
                r.revision.unwrap() as i64,
                r.source.unwrap().as_str(),
                serde_json::to_string(&plain).unwrap()
            ],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO observations (key, digest, source, time_ns, json) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![
                k.to_string(),
                agentcol_component::agent::merge::digest(o),
                r.source.unwrap().as_str(),
                r.time_unix_nano as i64,
                o
            ],
        )
        .unwrap();
    }
    drop(open(&path));
    assert_eq!(
        archive(&path).0,
        expected_archive(&records[..1]),
        "migrated"
    );
    write(&path, &records[1..], 4, None);
    let reference = dump_after(&records, records.len(), None);
    let (rows, _) = archive(&path);
    assert_eq!(rows, expected_archive(&records));
    // Everything but the hand-written row's `events` columns that version 1 did not derive
    // is what a new file holds; the archive is the same whichever way it is represented.
    let got = dump(&path);
    let section = |d: &str, t: &str| {
        d.split("## ")
            .find(|s| s.starts_with(&format!("{t}\n")))
            .unwrap()
            .to_string()
    };
    assert_eq!(section(&got, "archive"), section(&reference, "archive"));
    assert_eq!(
        count(
            &path,
            &format!(
                "SELECT count(*) FROM observations WHERE digest = '{}'",
                agentcol_component::agent::merge::digest(&records[0].observations[0])
            )
        ),
        1,
        "the version-1 row stays explicit"
    );
    // Delivered once more, the first record finds its row and stores its content once.
    write(&path, &records, records.len(), None);
    assert_eq!(archive(&path).0, expected_archive(&records));
    assert_eq!(dump(&path), reference);
}

#[test]
fn an_observation_of_a_re_keyed_event_is_stored_once_in_any_order() {
    // `dedupe` re-keyed a provisional event: the provisional record (its observation
    // attached), its tombstone, and the record under the real key, which carries the
    // observation again (a re-emission after a restart) or, usually, not (it was sent with
    // the provisional record). Either way the real row ends up implying it.
    for real_attached in [true, false] {
        let p = agentcol_component::agent::Precedence::default();
        let (o, resolved) = provisional();
        let m = agentcol_component::agent::Merged::from_observation(&o, &p);
        let mut first = m.to_record();
        first.observations = vec![o.observation_json()];
        let mut tomb = m.to_record();
        tomb.superseded_by = Some(resolved.clone());
        let mut real = m.rekey(resolved).to_record();
        if real_attached {
            real.observations = vec![o.observation_json()];
        }
        let records = [first, tomb, real];
        let expected = expected_archive(&records);
        assert_eq!(expected.len(), 1);
        let mut reference = None;
        for order in [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ] {
            let ordered: Vec<AgentRecord> = order.iter().map(|i| records[*i].clone()).collect();
            for batch in [1, 3] {
                let what =
                    format!("{order:?} by {batch}, attached to the real one: {real_attached}");
                let dir = tempfile::tempdir().unwrap();
                let path = db(&dir);
                write(&path, &ordered, batch, None);
                let (rows, implied) = archive(&path);
                assert_eq!(rows, expected, "{what}");
                assert_eq!(implied, 1, "{what}: the real row implies it");
                assert_eq!(
                    count(&path, "SELECT count(*) FROM observations"),
                    0,
                    "{what}"
                );
                let d = dump(&path);
                assert_eq!(reference.get_or_insert_with(|| d.clone()), &d, "{what}");
            }
        }
    }
}

#[test]
fn a_record_delivered_with_two_archive_forms_keeps_both() {
    // The same record, once with its observation under the provisional key it was re-keyed
    // from and once under its own key (two observations that differ only in the key).
    let p = agentcol_component::agent::Precedence::default();
    let (o, resolved) = provisional();
    let mut with_provisional = agentcol_component::agent::Merged::from_observation(&o, &p)
        .rekey(resolved)
        .to_record();
    let mut own = with_provisional.clone();
    own.observations = vec![own.observation_json()];
    with_provisional.observations = vec![o.observation_json()];
    let records = [with_provisional, own];
    let expected = expected_archive(&records);
    assert_eq!(expected.len(), 2);
    for order in [[0, 1], [1, 0]] {
        let dir = tempfile::tempdir().unwrap();
        let path = db(&dir);
        let ordered: Vec<AgentRecord> = order.iter().map(|i| records[*i].clone()).collect();
        write(&path, &ordered, 1, None);
        assert_eq!(archive(&path).0, expected, "{order:?}");
    }
}

#[test]
fn a_version_2_file_loses_its_event_indexes_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let records = shuffled(&merged_records(), 5);
    let (first, rest) = records.split_at(records.len() / 2);
    write(&path, first, 3, None);
    let written = dump(&path);
    {
        // What a version-2 writer left: the same rows, the indexes on `events`, no picks.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE INDEX events_session_time ON events(session_id, time_ns, key);
             CREATE INDEX events_cwd ON events(session_id, time_ns, key, cwd) WHERE cwd IS NOT NULL;
             CREATE INDEX events_git_branch ON events(session_id, time_ns, key, git_branch)
                 WHERE git_branch IS NOT NULL;
             CREATE INDEX events_git_commit ON events(session_id, time_ns, key, git_commit)
                 WHERE git_commit IS NOT NULL;
             CREATE INDEX events_model ON events(session_id, time_ns, key, model)
                 WHERE model IS NOT NULL;
             ALTER TABLE sessions DROP COLUMN picks;
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    drop(open(&path));
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
    let indexes: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 0, "the events indexes are gone");
    drop(conn);
    assert_eq!(
        dump(&path),
        written,
        "migrated: the same rows, picks filled"
    );
    write(&path, rest, 2, None);
    assert_eq!(dump(&path), dump_after(&records, records.len(), None));
}

#[test]
fn session_picks_follow_replaced_and_deleted_events() {
    // Every prefix of every order, written one record per batch: the session row (its picks
    // included) equals a rebuild from the events at every step.
    let records = merged_records();
    for seed in [1, 9] {
        let dir = tempfile::tempdir().unwrap();
        let path = db(&dir);
        let mut store = open(&path);
        for r in shuffled(&records, seed) {
            store.apply(&logs(std::slice::from_ref(&r))).unwrap();
            let incremental = dump(&path);
            store.rebuild_derived().unwrap();
            assert_eq!(dump(&path), incremental, "seed {seed}, after {}", r.key);
        }
    }
}

#[test]
fn a_provisional_raw_row_is_re_keyed_when_its_alias_comes_with_or_without_the_key_filter() {
    // The raw path (no `dedupe`): the store re-keys a provisional row itself when a record
    // declares its turn's alias. A store that serves key states keeps a filter of its keys and
    // of its provisional turns, and skips looking for a turn's rows when the filter says it has
    // none: it must say "maybe" for a provisional turn with rows, whether they were written
    // before the filter was built (at reopen) or after.
    let (provisional, resolved) = provisional();
    let declaring = obs(
        &key(Some(TURN2), Some("msg_5"), Kind::Message),
        Source::Otlp,
        10_600,
        &[(attr::ALIAS_TRACE_ID, json!(TRACE_RESOLVED))],
        json!("The answer."),
    );
    let resolved_text = resolved.to_string();
    let cases: [(&str, bool, bool); 4] = [
        ("no filter", false, false),
        ("filter built before both", true, false),
        (
            "filter built from the file, after the provisional row",
            false,
            true,
        ),
        ("both", true, true),
    ];
    let mut reference = None;
    for (what, filter_first, reopen_with_filter) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = db(&dir);
        let mut store = open(&path);
        if filter_first {
            assert!(store
                .key_state(&resolved, &resolved_text)
                .unwrap()
                .is_none());
        }
        store
            .apply(&logs(std::slice::from_ref(&provisional)))
            .unwrap();
        if reopen_with_filter {
            drop(store);
            store = open(&path);
            assert!(store
                .key_state(&resolved, &resolved_text)
                .unwrap()
                .is_none());
        }
        store
            .apply(&logs(std::slice::from_ref(&declaring)))
            .unwrap();
        drop(store);
        assert_eq!(
            count(&path, "SELECT count(*) FROM events WHERE turn_id LIKE '~%'"),
            0,
            "{what}: the provisional row is gone"
        );
        assert_eq!(
            count(
                &path,
                &format!("SELECT count(*) FROM events WHERE key = '{resolved_text}'")
            ),
            1,
            "{what}: re-keyed to its turn"
        );
        let d = dump(&path);
        assert_eq!(reference.get_or_insert_with(|| d.clone()), &d, "{what}");
    }
    // And the other order (alias first): the same tables.
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    write(&path, &[declaring, provisional], 1, None);
    assert_eq!(reference.as_ref(), Some(&dump(&path)), "alias first");
}
