//! Delivery guarantees through a real forwarding collector: backpressure instead of loss when the
//! destination is down, and nothing acknowledged lost on shutdown.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::otlp::*;
use crate::support::*;

const B_ACCEPTED: &str =
    r#"agentcol_receiver_accepted_log_records_total{receiver="otlp",transport="grpc"}"#;

/// The destination is down: the forwarder accepts only what its queue holds, then answers 503
/// with Retry-After; once the destination is up, everything acknowledged arrives exactly once.
#[test]
fn backpressure_then_exactly_once_delivery() {
    let wa = Workdir::new();
    let wb = Workdir::new();
    let (a_http, a_grpc, a_metrics) = (free_port(), free_port(), free_port());
    let (b_grpc, b_http, b_metrics) = (free_port(), free_port(), free_port());
    let exporter_extra = r#"    sending_queue:
      queue_size: 3
      num_consumers: 1
    retry_on_failure:
      initial_interval: 100ms
      max_interval: 200ms"#;
    let fa = wa.write(
        "a.yaml",
        &forwarder_config(a_http, a_grpc, a_metrics, b_grpc, exporter_extra),
    );
    let a = Running::agentcol("forwarder", &wa, &fa);

    let run = "bp";
    let proto = ("content-type", "application/x-protobuf");
    let mut acked = Vec::new();
    let mut refused = 0;
    let mut i = 0;
    while refused < 3 && i < 200 {
        let r = http(a_http, "POST", "/v1/logs", &[proto], &logs_proto(run, i, 1));
        match r.status {
            200 => acked.push(i),
            503 => {
                assert!(r.header("retry-after").is_some(), "503 without Retry-After");
                refused += 1;
            }
            other => panic!(
                "unexpected status {other}: {}",
                String::from_utf8_lossy(&r.body)
            ),
        }
        i += 1;
    }
    assert_eq!(
        refused,
        3,
        "the forwarder never pushed back:\n{}",
        a.output()
    );
    // Queue of 3 plus at most one request being retried by the single consumer.
    assert!((3..=4).contains(&acked.len()), "acked {acked:?}");

    let fb = wb.write(
        "b.yaml",
        &sink_config(
            b_grpc,
            b_http,
            b_metrics,
            "  debug:\n    verbosity: detailed",
        ),
    );
    let b = Running::agentcol("destination", &wb, &fb);
    let want = acked.len() as f64;
    assert!(
        eventually(Duration::from_secs(20), || metric(b_metrics, B_ACCEPTED)
            >= want),
        "destination got {} of {want}:\n{}",
        metric(b_metrics, B_ACCEPTED),
        a.output()
    );
    // Give a duplicate time to show up, then check exactly once.
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        metric(b_metrics, B_ACCEPTED),
        want,
        "duplicates reached the destination"
    );
    let out = b.output();
    for id in &acked {
        assert!(
            out.contains(&body(run, *id)),
            "record {id} missing at the destination"
        );
    }
    for id in (0..i).filter(|id| !acked.contains(id)) {
        assert!(
            !out.contains(&body(run, id)),
            "refused record {id} was delivered anyway"
        );
    }
}

/// SIGTERM while a client is sending: every record the forwarder acknowledged reaches the
/// destination exactly once, and the forwarder exits 0.
#[test]
fn shutdown_under_load_delivers_every_acknowledged_record() {
    let wa = Workdir::new();
    let wb = Workdir::new();
    let (a_http, a_grpc, a_metrics) = (free_port(), free_port(), free_port());
    let (b_grpc, b_http, b_metrics) = (free_port(), free_port(), free_port());
    let fb = wb.write("b.yaml", &sink_config(b_grpc, b_http, b_metrics, "  nop:"));
    let _b = Running::agentcol("destination", &wb, &fb);
    let fa = wa.write(
        "a.yaml",
        &forwarder_config(a_http, a_grpc, a_metrics, b_grpc, ""),
    );
    let mut a = Running::agentcol("forwarder", &wa, &fa);

    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..4)
        .map(|t| {
            let acked = acked.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let body = logs_proto(&format!("sd{t}"), n * 10, 10);
                    let Ok(conn) = std::net::TcpStream::connect(("127.0.0.1", a_http)) else {
                        break;
                    };
                    drop(conn);
                    let r = std::panic::catch_unwind(|| {
                        http(
                            a_http,
                            "POST",
                            "/v1/logs",
                            &[("content-type", "application/x-protobuf")],
                            &body,
                        )
                        .status
                    });
                    match r {
                        Ok(200) => {
                            acked.fetch_add(10, Ordering::SeqCst);
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                    n += 1;
                }
            })
        })
        .collect();
    assert!(eventually(Duration::from_secs(10), || acked
        .load(Ordering::SeqCst)
        >= 500));
    let code = a.terminate(Duration::from_secs(30));
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        let _ = s.join();
    }
    assert_eq!(code, Some(0), "{}", a.output());
    assert!(a.output().contains("Shutdown complete."));
    let want = acked.load(Ordering::SeqCst) as f64;
    assert!(
        eventually(Duration::from_secs(10), || metric(b_metrics, B_ACCEPTED)
            >= want),
        "destination got {} of {want} acknowledged records",
        metric(b_metrics, B_ACCEPTED)
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        metric(b_metrics, B_ACCEPTED),
        want,
        "more records than acknowledged arrived"
    );
}
