//! Behaviour of the memory limiter through its public API, with memory figures injected.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentcol_component::agent::{AgentRecord, EventKey, Source};
use agentcol_component::opentelemetry_proto::tonic::logs::v1::{
    LogRecord, ResourceLogs, ScopeLogs,
};
use agentcol_component::{
    async_trait, erase_processor, AgentInput, AgentLogs, AnyConsumer, AnyProcessorFactory,
    Component, ComponentId, ComponentKind, ComponentStatus, ConsumeError, Consumer, Host,
    KeyedRecord, Logs, SignalData,
};
use agentcol_processor_memory_limiter::{MemoryLimiterFactory, MemorySource, REFUSED_ITEMS_METRIC};

const MIB: u64 = 1024 * 1024;

#[derive(Debug)]
struct FakeMemory {
    rss: AtomicU64,
    total: u64,
}

impl FakeMemory {
    fn new(rss_mib: u64) -> Arc<Self> {
        Arc::new(FakeMemory {
            rss: AtomicU64::new(rss_mib * MIB),
            total: 1000 * MIB,
        })
    }
    fn set_mib(&self, mib: u64) {
        self.rss.store(mib * MIB, Ordering::SeqCst);
    }
}

impl MemorySource for FakeMemory {
    fn rss_bytes(&self) -> io::Result<u64> {
        Ok(self.rss.load(Ordering::SeqCst))
    }
    fn total_bytes(&self) -> io::Result<u64> {
        Ok(self.total)
    }
}

#[derive(Default)]
struct Sink {
    items: AtomicUsize,
    /// Offers an agent-record input (as a `dedupe` in front of its store does).
    records: Option<Arc<RecordSink>>,
}

#[derive(Debug)]
struct RecordSink {
    id: ComponentId,
    items: AtomicUsize,
}

#[async_trait]
impl AgentInput for RecordSink {
    fn owner(&self) -> &ComponentId {
        &self.id
    }

    async fn consume_agent(&self, batch: AgentLogs) -> Result<(), ConsumeError> {
        self.items.fetch_add(batch.item_count(), Ordering::SeqCst);
        Ok(())
    }
}

#[async_trait]
impl Consumer<Logs> for Sink {
    async fn consume(&self, data: Logs) -> Result<(), ConsumeError> {
        self.items.fetch_add(data.item_count(), Ordering::SeqCst);
        Ok(())
    }

    fn agent_input(&self) -> Option<Arc<dyn AgentInput>> {
        self.records.clone().map(|r| r as Arc<dyn AgentInput>)
    }
}

fn records(n: usize) -> AgentLogs {
    let key: EventKey = "v1|codex|s|t||user_prompt".parse().expect("key");
    let record = AgentRecord::observation(key.clone(), "agent.user_prompt", Source::Otlp, 1);
    AgentLogs {
        records: vec![KeyedRecord::new(record, key.to_string()); n],
        logs: logs(1),
    }
}

fn logs(n: usize) -> Logs {
    Logs {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord::default(); n],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn messages(factory: &Arc<dyn AnyProcessorFactory>, v: serde_json::Value) -> Vec<String> {
    match factory.load_config(v) {
        Ok(_) => Vec::new(),
        Err(errs) => errs.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn validation_messages_follow_otelcol() {
    let f = agentcol_processor_memory_limiter::factory();
    assert_eq!(
        messages(&f, serde_json::Value::Null),
        vec![
            "check_interval: 'check_interval' must be greater than zero",
            "limit_mib: 'limit_mib' or 'limit_percentage' must be greater than zero",
        ]
    );
    assert_eq!(
        messages(
            &f,
            serde_json::json!({"check_interval": "1s", "limit_mib": 512, "spike_limit_mib": 512})
        ),
        vec!["spike_limit_mib: 'spike_limit_mib' must be smaller than 'limit_mib'"]
    );
    assert_eq!(
        messages(
            &f,
            serde_json::json!({"check_interval": "1s", "limit_percentage": 50, "spike_limit_percentage": 50})
        ),
        vec!["spike_limit_percentage: 'spike_limit_percentage' must be smaller than 'limit_percentage'"]
    );
    let m = messages(
        &f,
        serde_json::json!({"check_interval": "1s", "limit_percentage": 120}),
    );
    assert_eq!(m.len(), 1);
    assert!(m[0].contains("less than or equal to hundred"), "{m:?}");
    let m = messages(
        &f,
        serde_json::json!({"check_interval": "1s", "limit_mib": 100,
            "min_gc_interval_when_soft_limited": "1s", "min_gc_interval_when_hard_limited": "5s"}),
    );
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].contains("should be larger than"));
    assert!(!messages(
        &f,
        serde_json::json!({"check_interval": "1s", "limit_mib": 100, "bogus": 1})
    )
    .is_empty());
    assert!(messages(
        &f,
        serde_json::json!({"check_interval": "1s", "limit_mib": 100})
    )
    .is_empty());
    assert!(messages(&f, serde_json::json!({"check_interval": "100ms", "limit_percentage": 80, "spike_limit_percentage": 20})).is_empty());
}

struct Limiter {
    consumer: Arc<dyn Consumer<Logs>>,
    component: Arc<dyn Component>,
}

fn limiter(
    host: &Host,
    pipeline: &str,
    memory: Arc<FakeMemory>,
    config: serde_json::Value,
    sink: Arc<Sink>,
) -> Limiter {
    let factory = erase_processor(MemoryLimiterFactory::with_source(memory), "test");
    let loaded = factory.load_config(config).expect("valid config");
    let inst = factory
        .create(host.clone(), pipeline, &loaded, AnyConsumer::Logs(sink))
        .expect("created");
    let AnyConsumer::Logs(consumer) = inst.consumer else {
        panic!("signal changed");
    };
    Limiter {
        consumer,
        component: inst.component,
    }
}

fn refused_line(host: &Host, pipeline: &str) -> Option<u64> {
    let text = host.telemetry().render();
    assert_eq!(
        text.matches(&format!("# TYPE {REFUSED_ITEMS_METRIC} counter"))
            .count(),
        1,
        "{text}"
    );
    text.lines()
        .find(|l| {
            l.starts_with(&format!("{REFUSED_ITEMS_METRIC}_total{{"))
                && l.contains(&format!("pipeline=\"{pipeline}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(start_paused = true)]
async fn refuses_above_the_soft_limit_and_recovers_below_it() {
    // limit 100 MiB, spike 20 MiB by default: soft limit 80 MiB.
    let memory = FakeMemory::new(10);
    let sink = Arc::new(Sink::default());
    let host = Host::for_test(
        ComponentKind::Processor,
        "memory_limiter",
        &std::env::temp_dir(),
    );
    let l = limiter(
        &host,
        "logs",
        memory.clone(),
        serde_json::json!({"check_interval": "1s", "limit_mib": 100}),
        sink.clone(),
    );
    l.component.start().await.unwrap();
    assert_eq!(l.consumer.consume(logs(2)).await, Ok(()));
    assert_eq!(sink.items.load(Ordering::SeqCst), 2);

    // Between soft and hard: refused after the next check, not before.
    memory.set_mib(85);
    assert_eq!(l.consumer.consume(logs(1)).await, Ok(()));
    tokio::time::sleep(Duration::from_millis(1001)).await;
    let err = l.consumer.consume(logs(3)).await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.http_status(), 503);
    assert_eq!(err.grpc_code(), 14);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    assert!(
        err.reason().starts_with("memory usage above soft limit"),
        "{err}"
    );
    assert_eq!(
        sink.items.load(Ordering::SeqCst),
        3,
        "refused data reached the next consumer"
    );
    assert_eq!(refused_line(&host, "logs"), Some(3));
    let snapshot = host.status_board().snapshot();
    assert!(
        matches!(snapshot[0].2.status, ComponentStatus::Degraded(_)),
        "{snapshot:?}"
    );

    // Above the hard limit: still refused.
    memory.set_mib(150);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(l.consumer.consume(logs(1)).await.is_err());
    assert_eq!(refused_line(&host, "logs"), Some(4));

    // Back below the soft limit: data flows again.
    memory.set_mib(79);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(l.consumer.consume(logs(5)).await, Ok(()));
    assert_eq!(sink.items.load(Ordering::SeqCst), 8);
    assert_eq!(
        host.status_board().snapshot()[0].2.status,
        ComponentStatus::Ok
    );

    l.component.shutdown().await.unwrap();
    l.component.shutdown().await.unwrap();
    // No more checks after shutdown: the last state stays.
    memory.set_mib(500);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(l.consumer.consume(logs(1)).await, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn start_checks_at_once() {
    let memory = FakeMemory::new(900);
    let sink = Arc::new(Sink::default());
    let host = Host::for_test(
        ComponentKind::Processor,
        "memory_limiter",
        &std::env::temp_dir(),
    );
    // 50% of 1000 MiB with a 10% spike: soft limit 400 MiB.
    let l = limiter(
        &host,
        "logs",
        memory.clone(),
        serde_json::json!({"check_interval": "10s", "limit_percentage": 50, "spike_limit_percentage": 10}),
        sink.clone(),
    );
    l.component.start().await.unwrap();
    let err = l.consumer.consume(logs(1)).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(10)));
    memory.set_mib(399);
    tokio::time::sleep(Duration::from_millis(10_001)).await;
    assert_eq!(l.consumer.consume(logs(1)).await, Ok(()));
    l.component.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn one_metric_family_serves_every_pipeline() {
    let memory = FakeMemory::new(95);
    let host = Host::for_test(
        ComponentKind::Processor,
        "memory_limiter",
        &std::env::temp_dir(),
    );
    let config = serde_json::json!({"check_interval": "1s", "limit_mib": 100});
    let a = limiter(
        &host,
        "logs",
        memory.clone(),
        config.clone(),
        Arc::new(Sink::default()),
    );
    let b = limiter(
        &host,
        "logs/other",
        memory.clone(),
        config.clone(),
        Arc::new(Sink::default()),
    );
    // A second, unrelated telemetry registry gets its own family.
    let other_host = Host::for_test(
        ComponentKind::Processor,
        "memory_limiter",
        &std::env::temp_dir(),
    );
    let c = limiter(
        &other_host,
        "logs",
        memory.clone(),
        config,
        Arc::new(Sink::default()),
    );
    for l in [&a, &b, &c] {
        l.component.start().await.unwrap();
    }
    assert!(a.consumer.consume(logs(2)).await.is_err());
    assert!(b.consumer.consume(logs(5)).await.is_err());
    assert!(c.consumer.consume(logs(7)).await.is_err());
    assert_eq!(refused_line(&host, "logs"), Some(2));
    assert_eq!(refused_line(&host, "logs/other"), Some(5));
    assert_eq!(refused_line(&other_host, "logs"), Some(7));
    assert!(!host.telemetry().render().contains("probe"));
    for l in [&a, &b, &c] {
        l.component.shutdown().await.unwrap();
    }
}

#[test]
fn percentage_limits_need_total_memory() {
    #[derive(Debug)]
    struct NoTotal;
    impl MemorySource for NoTotal {
        fn rss_bytes(&self) -> io::Result<u64> {
            Ok(0)
        }
        fn total_bytes(&self) -> io::Result<u64> {
            Err(io::Error::other("no /proc"))
        }
    }
    let factory = erase_processor(MemoryLimiterFactory::with_source(Arc::new(NoTotal)), "test");
    let loaded = factory
        .load_config(serde_json::json!({"check_interval": "1s", "limit_percentage": 50}))
        .unwrap();
    let host = Host::for_test(
        ComponentKind::Processor,
        "memory_limiter",
        &std::env::temp_dir(),
    );
    let err = factory
        .create(
            host,
            "logs",
            &loaded,
            AnyConsumer::Logs(Arc::new(Sink::default())),
        )
        .unwrap_err();
    assert!(err.to_string().contains("limit_percentage"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn the_record_input_after_it_is_offered_behind_the_same_check() {
    let memory = FakeMemory::new(10);
    let host = Host::for_test(
        ComponentKind::Processor,
        "memory_limiter",
        &std::env::temp_dir(),
    );
    let config = serde_json::json!({"check_interval": "1s", "limit_mib": 100});
    let plain = limiter(
        &host,
        "logs/plain",
        memory.clone(),
        config.clone(),
        Arc::new(Sink::default()),
    );
    assert!(
        plain.consumer.agent_input().is_none(),
        "offered without an input after it"
    );

    let inner = Arc::new(RecordSink {
        id: "dedupe/store".parse().expect("id"),
        items: AtomicUsize::new(0),
    });
    let sink = Arc::new(Sink {
        records: Some(inner.clone()),
        ..Sink::default()
    });
    let l = limiter(&host, "logs", memory.clone(), config, sink.clone());
    l.component.start().await.unwrap();
    let input = l
        .consumer
        .agent_input()
        .expect("the input after it, passed on");
    assert_eq!(input.owner().to_string(), "dedupe/store");
    assert_eq!(input.consume_agent(records(2)).await, Ok(()));
    assert_eq!(inner.items.load(Ordering::SeqCst), 3);

    memory.set_mib(85);
    tokio::time::sleep(Duration::from_millis(1001)).await;
    let err = input.consume_agent(records(4)).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(
        inner.items.load(Ordering::SeqCst),
        3,
        "refused records reached the input"
    );
    assert_eq!(refused_line(&host, "logs"), Some(5));
    assert_eq!(sink.items.load(Ordering::SeqCst), 0);
    l.component.shutdown().await.unwrap();
}
