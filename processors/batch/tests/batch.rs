//! Behaviour of the batch processor through its public API: senders are answered from the
//! delivery of the batches that carry their items.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentcol_component::opentelemetry_proto::tonic::logs::v1::{
    LogRecord, ResourceLogs, ScopeLogs,
};
use agentcol_component::opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use agentcol_component::{
    async_trait, AnyConsumer, Component, ComponentKind, ConsumeError, Consumer, Host, Logs,
    SignalData, Traces,
};

type Policy = Box<dyn Fn(usize, &[u64]) -> Result<(), ConsumeError> + Send + Sync>;

/// A downstream consumer that takes `delay` to accept each batch and records what it accepted.
struct Recorder {
    delay: Duration,
    /// Decides the answer from the batch's number (0-based, in arrival order) and its ids.
    policy: Policy,
    arrived: AtomicUsize,
    /// Ids of every batch, recorded when its answer is decided (after the delay).
    batches: Mutex<Vec<Vec<u64>>>,
    accepted: Mutex<BTreeSet<u64>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Recorder {
    fn new(delay: Duration) -> Arc<Self> {
        Self::with_policy(delay, Box::new(|_, _| Ok(())))
    }

    fn with_policy(delay: Duration, policy: Policy) -> Arc<Self> {
        Arc::new(Recorder {
            delay,
            policy,
            arrived: AtomicUsize::new(0),
            batches: Mutex::new(Vec::new()),
            accepted: Mutex::new(BTreeSet::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        })
    }

    fn batch_sizes(&self) -> Vec<usize> {
        self.batches.lock().unwrap().iter().map(Vec::len).collect()
    }

    fn all_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.batches.lock().unwrap().concat();
        ids.sort_unstable();
        ids
    }

    fn has_accepted(&self, ids: &[u64]) -> bool {
        let accepted = self.accepted.lock().unwrap();
        ids.iter().all(|id| accepted.contains(id))
    }
}

fn ids_of(logs: &Logs) -> Vec<u64> {
    logs.resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .map(|r| r.time_unix_nano)
        .collect()
}

#[async_trait]
impl Consumer<Logs> for Recorder {
    async fn consume(&self, data: Logs) -> Result<(), ConsumeError> {
        let n = self.arrived.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let ids = ids_of(&data);
        assert_eq!(ids.len(), data.item_count());
        tokio::time::sleep(self.delay).await;
        let answer = (self.policy)(n, &ids);
        if answer.is_ok() {
            self.accepted.lock().unwrap().extend(ids.iter().copied());
        }
        self.batches.lock().unwrap().push(ids);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        answer
    }
}

/// Log records with the given ids (as `time_unix_nano`), split over two resources.
fn logs(ids: impl IntoIterator<Item = u64>) -> Logs {
    let records: Vec<LogRecord> = ids
        .into_iter()
        .map(|id| LogRecord {
            time_unix_nano: id,
            ..Default::default()
        })
        .collect();
    let half = records.len() / 2;
    let mut first = records;
    let second = first.split_off(half);
    let resource = |log_records: Vec<LogRecord>| ResourceLogs {
        scope_logs: vec![ScopeLogs {
            log_records,
            ..Default::default()
        }],
        ..Default::default()
    };
    Logs {
        resource_logs: vec![resource(first), resource(second)]
            .into_iter()
            .filter(|r| !r.scope_logs[0].log_records.is_empty())
            .collect(),
    }
}

struct Batch {
    consumer: Arc<dyn Consumer<Logs>>,
    component: Arc<dyn Component>,
    host: Host,
}

fn batch(config: serde_json::Value, next: Arc<Recorder>) -> Batch {
    let factory = agentcol_processor_batch::factory();
    let loaded = factory.load_config(config).expect("valid config");
    let host = Host::for_test(ComponentKind::Processor, "batch", &std::env::temp_dir());
    let inst = factory
        .create(host.clone(), "logs", &loaded, AnyConsumer::Logs(next))
        .expect("created");
    let AnyConsumer::Logs(consumer) = inst.consumer else {
        panic!("batch must keep the signal of its next consumer");
    };
    Batch {
        consumer,
        component: inst.component,
        host,
    }
}

#[tokio::test(start_paused = true)]
async fn senders_are_answered_only_after_their_batch_is_accepted() {
    let rec = Recorder::new(Duration::from_millis(50));
    let b = batch(
        serde_json::json!({"send_batch_size": 10, "timeout": "1h"}),
        rec.clone(),
    );
    let mut tasks = Vec::new();
    for i in 0..10u64 {
        let c = b.consumer.clone();
        let rec = rec.clone();
        tasks.push(tokio::spawn(async move {
            let res = c.consume(logs([i])).await;
            // When the answer arrives, the downstream already holds the items.
            assert!(rec.has_accepted(&[i]), "answered before delivery of {i}");
            res
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Ok(()));
    }
    assert_eq!(rec.batch_sizes(), vec![10]);
    assert_eq!(rec.all_ids(), (0..10).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_is_sent_at_once_and_the_rest_waits_for_the_timeout() {
    let rec = Recorder::new(Duration::ZERO);
    let b = batch(
        serde_json::json!({"send_batch_size": 5, "timeout": "200ms"}),
        rec.clone(),
    );
    let start = tokio::time::Instant::now();
    // 7 items: 5 leave on size, 2 wait for the timer.
    let c = b.consumer.clone();
    let full = tokio::spawn(async move { c.consume(logs(0..5)).await });
    let c = b.consumer.clone();
    let partial = tokio::spawn(async move {
        let r = c.consume(logs(5..7)).await;
        (r, tokio::time::Instant::now())
    });
    assert_eq!(full.await.unwrap(), Ok(()));
    assert!(start.elapsed() < Duration::from_millis(200));
    assert_eq!(rec.batch_sizes(), vec![5]);

    tokio::time::sleep(Duration::from_millis(199)).await;
    assert_eq!(rec.batch_sizes(), vec![5], "the timer fired early");
    let (r, answered_at) = partial.await.unwrap();
    assert_eq!(r, Ok(()));
    assert!(answered_at.duration_since(start) >= Duration::from_millis(200));
    assert_eq!(rec.batch_sizes(), vec![5, 2]);
}

#[tokio::test(start_paused = true)]
async fn the_timeout_counts_from_the_first_item_of_a_batch() {
    let rec = Recorder::new(Duration::ZERO);
    let b = batch(
        serde_json::json!({"send_batch_size": 100, "timeout": "200ms"}),
        rec.clone(),
    );
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..4u64 {
        let c = b.consumer.clone();
        tasks.push(tokio::spawn(async move {
            c.consume(logs([i]))
                .await
                .map(|_| tokio::time::Instant::now())
        }));
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    for t in tasks {
        let waited = t.await.unwrap().unwrap().duration_since(start);
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_millis(210),
            "{waited:?}"
        );
    }
    // 0, 60, 120, 180 ms all went out with the batch opened at 0; nothing left over.
    assert_eq!(rec.batch_sizes(), vec![4]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rec.batch_sizes(), vec![4]);
}

#[tokio::test(start_paused = true)]
async fn a_downstream_error_reaches_every_sender_of_the_batch() {
    let rec = Recorder::with_policy(
        Duration::from_millis(10),
        Box::new(|_, _| Err(ConsumeError::retryable("exporter queue is full"))),
    );
    let b = batch(
        serde_json::json!({"send_batch_size": 6, "timeout": "1h"}),
        rec.clone(),
    );
    let mut tasks = Vec::new();
    for i in 0..3u64 {
        let c = b.consumer.clone();
        tasks.push(tokio::spawn(async move {
            c.consume(logs([2 * i, 2 * i + 1])).await
        }));
    }
    for t in tasks {
        let err = t.await.unwrap().unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.reason(), "exporter queue is full");
    }
    assert_eq!(rec.batch_sizes(), vec![6]);
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_stay_permanent() {
    let rec = Recorder::with_policy(
        Duration::ZERO,
        Box::new(|_, _| Err(ConsumeError::permanent("rejected"))),
    );
    let b = batch(
        serde_json::json!({"send_batch_size": 1, "timeout": "1h"}),
        rec.clone(),
    );
    let err = b.consumer.consume(logs([1])).await.unwrap_err();
    assert_eq!(err, ConsumeError::permanent("rejected"));
}

#[tokio::test(start_paused = true)]
async fn large_requests_are_split_and_the_sender_needs_every_part_delivered() {
    // Batch number 1 (the second one) fails.
    let rec = Recorder::with_policy(
        Duration::from_millis(5),
        Box::new(|n, _| {
            if n == 1 {
                Err(ConsumeError::retryable("second batch failed"))
            } else {
                Ok(())
            }
        }),
    );
    let b = batch(
        serde_json::json!({"send_batch_size": 4, "send_batch_max_size": 4, "timeout": "100ms"}),
        rec.clone(),
    );
    // One request of 10 items: batches of 4, 4 and (after the timeout) 2.
    let err = b.consumer.consume(logs(0..10)).await.unwrap_err();
    assert_eq!(err.reason(), "second batch failed");
    assert_eq!(rec.batch_sizes(), vec![4, 4, 2]);
    assert_eq!(rec.all_ids(), (0..10).collect::<Vec<_>>());

    // A request that fits in a batch that succeeds is unaffected.
    assert_eq!(b.consumer.consume(logs(10..14)).await, Ok(()));
    assert_eq!(rec.batch_sizes(), vec![4, 4, 2, 4]);
}

#[tokio::test(start_paused = true)]
async fn split_fills_the_pending_batch_up_to_the_max() {
    let rec = Recorder::new(Duration::ZERO);
    let b = batch(
        serde_json::json!({"send_batch_size": 3, "send_batch_max_size": 5, "timeout": "1h"}),
        rec.clone(),
    );
    // 2 pending, then 9 more: [2 + 3] = 5 (max), then 5, then 1 pending.
    let c = b.consumer.clone();
    let first = tokio::spawn(async move { c.consume(logs(0..2)).await });
    tokio::task::yield_now().await;
    let c = b.consumer.clone();
    let second = tokio::spawn(async move { c.consume(logs(2..11)).await });
    assert_eq!(first.await.unwrap(), Ok(()));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(rec.batch_sizes(), vec![5, 5]);
    assert!(!second.is_finished(), "the last item is still pending");
    b.component.shutdown().await.unwrap();
    assert_eq!(second.await.unwrap(), Ok(()));
    assert_eq!(rec.batch_sizes(), vec![5, 5, 1]);
    assert_eq!(rec.all_ids(), (0..11).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn shutdown_flushes_what_is_pending_and_refuses_afterwards() {
    let rec = Recorder::new(Duration::from_millis(30));
    let b = batch(
        serde_json::json!({"send_batch_size": 1000, "timeout": "1h"}),
        rec.clone(),
    );
    b.component.start().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..3u64 {
        let c = b.consumer.clone();
        tasks.push(tokio::spawn(async move { c.consume(logs([i])).await }));
    }
    tokio::task::yield_now().await;
    assert!(rec.batch_sizes().is_empty());
    b.component.shutdown().await.unwrap();
    // Shutdown returned only after the flushed batch was answered.
    assert_eq!(rec.batch_sizes(), vec![3]);
    for t in tasks {
        assert_eq!(t.await.unwrap(), Ok(()));
    }
    let err = b.consumer.consume(logs([9])).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(b.consumer.consume(Logs::default()).await.is_err());
    // Idempotent.
    b.component.shutdown().await.unwrap();
    assert_eq!(rec.batch_sizes(), vec![3]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_without_start_or_data_is_fine() {
    let rec = Recorder::new(Duration::ZERO);
    let b = batch(serde_json::Value::Null, rec.clone());
    b.component.shutdown().await.unwrap();
    b.component.shutdown().await.unwrap();
    assert!(rec.batch_sizes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_batches_already_in_flight() {
    let rec = Recorder::new(Duration::from_millis(500));
    let b = batch(
        serde_json::json!({"send_batch_size": 2, "timeout": "1h"}),
        rec.clone(),
    );
    let c = b.consumer.clone();
    let sender = tokio::spawn(async move { c.consume(logs(0..2)).await });
    tokio::task::yield_now().await;
    let start = tokio::time::Instant::now();
    b.component.shutdown().await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(400));
    assert_eq!(rec.batch_sizes(), vec![2]);
    assert_eq!(sender.await.unwrap(), Ok(()));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_sender_does_not_lose_the_others_data() {
    let rec = Recorder::new(Duration::from_millis(100));
    let b = batch(
        serde_json::json!({"send_batch_size": 4, "timeout": "1h"}),
        rec.clone(),
    );
    let c = b.consumer.clone();
    let patient = tokio::spawn(async move { c.consume(logs(0..2)).await });
    tokio::task::yield_now().await;
    // This sender completes the batch, so its call starts the delivery; then it goes away.
    let c = b.consumer.clone();
    let impatient = tokio::spawn(async move { c.consume(logs(2..4)).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    impatient.abort();
    assert!(impatient.await.unwrap_err().is_cancelled());
    assert_eq!(patient.await.unwrap(), Ok(()));
    assert_eq!(rec.all_ids(), vec![0, 1, 2, 3]);

    // The same when the dropped future is the one whose items are still pending.
    let c = b.consumer.clone();
    let gone = tokio::spawn(async move { c.consume(logs(4..6)).await });
    tokio::task::yield_now().await;
    gone.abort();
    let _ = gone.await;
    assert_eq!(b.consumer.consume(logs(6..8)).await, Ok(()));
    assert_eq!(rec.all_ids(), (0..8).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn the_next_batch_accumulates_while_the_previous_one_is_delivered() {
    let rec = Recorder::new(Duration::from_secs(1));
    let b = batch(
        serde_json::json!({"send_batch_size": 2, "timeout": "1h"}),
        rec.clone(),
    );
    let mut tasks = Vec::new();
    for i in 0..6u64 {
        let c = b.consumer.clone();
        tasks.push(tokio::spawn(async move { c.consume(logs([i])).await }));
    }
    let start = tokio::time::Instant::now();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Ok(()));
    }
    // Three batches of one second each, delivered concurrently.
    assert!(start.elapsed() < Duration::from_millis(1500));
    assert_eq!(rec.max_in_flight.load(Ordering::SeqCst), 3);
    assert_eq!(rec.batch_sizes(), vec![2, 2, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_zero_timeout_sends_every_request_at_once() {
    let rec = Recorder::new(Duration::ZERO);
    let b = batch(
        serde_json::json!({"send_batch_size": 100, "timeout": "0s"}),
        rec.clone(),
    );
    assert_eq!(b.consumer.consume(logs(0..3)).await, Ok(()));
    assert_eq!(b.consumer.consume(logs(3..4)).await, Ok(()));
    assert_eq!(rec.batch_sizes(), vec![3, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_downstream_is_an_error_not_a_success() {
    struct Panics;
    #[async_trait]
    impl Consumer<Logs> for Panics {
        async fn consume(&self, _data: Logs) -> Result<(), ConsumeError> {
            panic!("exporter bug");
        }
    }
    let factory = agentcol_processor_batch::factory();
    let loaded = factory
        .load_config(serde_json::json!({"send_batch_size": 1}))
        .unwrap();
    let host = Host::for_test(ComponentKind::Processor, "batch", &std::env::temp_dir());
    let inst = factory
        .create(host, "logs", &loaded, AnyConsumer::Logs(Arc::new(Panics)))
        .unwrap();
    let AnyConsumer::Logs(c) = inst.consumer else {
        unreachable!()
    };
    let err = c.consume(logs([1])).await.unwrap_err();
    assert!(err.is_retryable());
    inst.component.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn items_are_conserved_under_concurrency() {
    // Every 7th batch fails: those senders must see an error, and every item must still reach
    // the downstream exactly once.
    let rec = Recorder::with_policy(
        Duration::from_micros(200),
        Box::new(|n, _| {
            if n % 7 == 3 {
                Err(ConsumeError::retryable("flaky"))
            } else {
                Ok(())
            }
        }),
    );
    let b = batch(
        serde_json::json!({"send_batch_size": 50, "send_batch_max_size": 64, "timeout": "2ms"}),
        rec.clone(),
    );
    let next_id = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for task in 0..32u64 {
        let c = b.consumer.clone();
        let rec = rec.clone();
        let next_id = next_id.clone();
        tasks.push(tokio::spawn(async move {
            let mut seed = task
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut sent = 0usize;
            for _ in 0..25 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let n = (seed >> 33) as usize % 150 + 1;
                let first = next_id.fetch_add(n, Ordering::SeqCst) as u64;
                let ids: Vec<u64> = (first..first + n as u64).collect();
                match c.consume(logs(ids.iter().copied())).await {
                    Ok(()) => assert!(rec.has_accepted(&ids), "Ok before acceptance"),
                    Err(e) => assert!(e.is_retryable() && e.reason().contains("flaky")),
                }
                sent += n;
            }
            sent
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    b.component.shutdown().await.unwrap();
    assert_eq!(total, next_id.load(Ordering::SeqCst));
    let ids = rec.all_ids();
    assert_eq!(ids.len(), total, "items lost or duplicated");
    assert!(ids.iter().copied().eq(0..total as u64));
    for size in rec.batch_sizes() {
        assert!(size <= 64, "batch of {size} exceeds send_batch_max_size");
    }
    // Incoming and outgoing telemetry agree with what was sent.
    let text = b.host.telemetry().render();
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l.contains("pipeline=\"logs\""))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<usize>().ok())
    };
    assert_eq!(
        line("agentcol_processor_incoming_items_total"),
        Some(total),
        "{text}"
    );
    assert_eq!(
        line("agentcol_processor_outgoing_items_total"),
        Some(total),
        "{text}"
    );
}

/// A traces pipeline uses the same implementation.
#[tokio::test(start_paused = true)]
async fn traces_are_batched_too() {
    struct Spans(Mutex<Vec<usize>>);
    #[async_trait]
    impl Consumer<Traces> for Spans {
        async fn consume(&self, data: Traces) -> Result<(), ConsumeError> {
            self.0.lock().unwrap().push(data.item_count());
            Ok(())
        }
    }
    let sink = Arc::new(Spans(Mutex::new(Vec::new())));
    let factory = agentcol_processor_batch::factory();
    let loaded = factory
        .load_config(serde_json::json!({"send_batch_size": 3, "timeout": "1s"}))
        .unwrap();
    let host = Host::for_test(ComponentKind::Processor, "batch", &std::env::temp_dir());
    let inst = factory
        .create(host, "traces", &loaded, AnyConsumer::Traces(sink.clone()))
        .unwrap();
    let AnyConsumer::Traces(c) = inst.consumer else {
        panic!("signal changed");
    };
    let spans = |n: usize| Traces {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span::default(); n],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let c2 = c.clone();
    let a = tokio::spawn(async move { c2.consume(spans(2)).await });
    assert_eq!(c.consume(spans(2)).await, Ok(()));
    assert_eq!(a.await.unwrap(), Ok(()));
    assert_eq!(*sink.0.lock().unwrap(), vec![4]);
}

/// Metrics split at whole-metric granularity: nothing is lost, including metrics without points.
#[tokio::test(start_paused = true)]
async fn metrics_split_by_whole_metric_without_loss() {
    use agentcol_component::opentelemetry_proto::tonic::metrics::v1::{
        metric::Data, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };
    use agentcol_component::Metrics;
    struct Sink(Mutex<Vec<Metrics>>);
    #[async_trait]
    impl Consumer<Metrics> for Sink {
        async fn consume(&self, data: Metrics) -> Result<(), ConsumeError> {
            self.0.lock().unwrap().push(data);
            Ok(())
        }
    }
    let gauge = |name: &str, points: usize| Metric {
        name: name.into(),
        data: Some(Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint::default(); points],
        })),
        ..Default::default()
    };
    let input = Metrics {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    gauge("a", 2),
                    gauge("big", 10),
                    gauge("c", 1),
                    gauge("empty", 0),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let sink = Arc::new(Sink(Mutex::new(Vec::new())));
    let factory = agentcol_processor_batch::factory();
    let loaded = factory
        .load_config(
            serde_json::json!({"send_batch_size": 4, "send_batch_max_size": 4, "timeout": "1s"}),
        )
        .unwrap();
    let host = Host::for_test(ComponentKind::Processor, "batch", &std::env::temp_dir());
    let inst = factory
        .create(host, "metrics", &loaded, AnyConsumer::Metrics(sink.clone()))
        .unwrap();
    let AnyConsumer::Metrics(c) = inst.consumer else {
        panic!("signal changed");
    };
    assert_eq!(c.consume(input).await, Ok(()));
    let names: Vec<String> = sink
        .0
        .lock()
        .unwrap()
        .iter()
        .flat_map(|m| &m.resource_metrics)
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| m.name.clone())
        .collect();
    // Batches may go out in any order (they are delivered concurrently).
    let mut names = names;
    names.sort();
    assert_eq!(names, ["a", "big", "c", "empty"]);
    let points: usize = sink
        .0
        .lock()
        .unwrap()
        .iter()
        .map(SignalData::item_count)
        .sum();
    assert_eq!(points, 13);
}
