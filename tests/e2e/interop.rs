//! Real clients in, real peers out: the OpenTelemetry Python SDK and otelcol-contrib send to
//! agentcol; agentcol forwards over gRPC (`otlp`) to a second agentcol and over HTTP
//! (`otlphttp`) to rotel. Counts and contents must match exactly.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

const N: usize = 25;

fn b_series(signal_items: &str, transport: &str) -> String {
    format!(
        "agentcol_receiver_accepted_{signal_items}_total{{receiver=\"otlp\",transport=\"{transport}\"}}"
    )
}

fn sdk_to_agentcol_to_peers(protocol: &str) {
    let test = format!("sdk_to_agentcol_to_peers_{protocol}");
    let Some(rotel) = peer(&test, "rotel-agent") else {
        return;
    };
    if !python_sdk(&test) {
        return;
    }
    // rotel: logs printed in detail, everything else discarded.
    let (r_grpc, r_http) = (free_port(), free_port());
    let rw = Workdir::new();
    let mut cmd = Command::new(&rotel);
    cmd.args([
        "start",
        "--exporter",
        "blackhole",
        "--debug-log",
        "logs",
        "--debug-log-verbosity",
        "detailed",
    ])
    .args(["--otlp-grpc-endpoint", &format!("127.0.0.1:{r_grpc}")])
    .args(["--otlp-http-endpoint", &format!("127.0.0.1:{r_http}")])
    .arg("--pid-file")
    .arg(rw.path().join("rotel.pid"))
    .arg("--log-file")
    .arg(rw.path().join("rotel.log"));
    let rotel = Running::spawn("rotel", cmd);
    rotel.wait_for("Starting Rotel", Duration::from_secs(15));

    // B: a second agentcol, printing logs in detail.
    let wb = Workdir::new();
    let (b_grpc, b_http, b_metrics) = (free_port(), free_port(), free_port());
    let fb = wb.write(
        "b.yaml",
        &crate::otlp::sink_config(
            b_grpc,
            b_http,
            b_metrics,
            "  debug:\n    verbosity: detailed",
        ),
    );
    let b = Running::agentcol("agentcol-b", &wb, &fb);

    // A: the collector under test, forwarding both ways. With the SDK on gRPC, A sends to B over
    // gRPC (`otlp`) and to rotel over HTTP (`otlphttp`); with the SDK on HTTP, the other way round,
    // so each peer receives from both exporters across the two runs.
    let wa = Workdir::new();
    let (a_grpc, a_http, a_metrics) = (free_port(), free_port(), free_port());
    let (b_transport, to_b, to_rotel, rotel_exporter) = if protocol == "grpc" {
        (
            "grpc",
            format!("otlp:\n    endpoint: 127.0.0.1:{b_grpc}\n    tls: {{insecure: true}}"),
            format!("otlphttp:\n    endpoint: http://127.0.0.1:{r_http}"),
            "otlphttp",
        )
    } else {
        (
            "http",
            format!("otlphttp:\n    endpoint: http://127.0.0.1:{b_http}"),
            format!("otlp:\n    endpoint: 127.0.0.1:{r_grpc}\n    tls: {{insecure: true}}"),
            "otlp",
        )
    };
    let fa = wa.write(
        "a.yaml",
        &format!(
            r#"
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:{a_grpc}}}
      http: {{endpoint: 127.0.0.1:{a_http}}}
processors:
  batch:
    timeout: 100ms
exporters:
  {to_b}
  {to_rotel}
service:
  pipelines:
    logs: {{receivers: [otlp], processors: [batch], exporters: [otlp, otlphttp]}}
    traces: {{receivers: [otlp], processors: [batch], exporters: [otlp, otlphttp]}}
    metrics: {{receivers: [otlp], processors: [batch], exporters: [otlp, otlphttp]}}
  telemetry:
    metrics: {{address: 127.0.0.1:{a_metrics}}}
"#
        ),
    );
    let a = Running::agentcol("agentcol-a", &wa, &fa);

    let run = format!("run-{protocol}");
    let endpoint = match protocol {
        "grpc" => format!("127.0.0.1:{a_grpc}"),
        _ => format!("http://127.0.0.1:{a_http}"),
    };
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/otel_sdk_client.py");
    let out = Command::new("python3")
        .arg(client)
        .args([protocol, &endpoint, &N.to_string(), &run])
        .output()
        .expect("run the Python SDK client");
    assert!(
        out.status.success(),
        "SDK client failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        a.output()
    );

    let want = N as f64;
    for items in ["log_records", "spans", "metric_points"] {
        let series = b_series(items, b_transport);
        assert!(
            eventually(Duration::from_secs(20), || metric(b_metrics, &series)
                >= want),
            "agentcol B got {} {items}, want {want}\nA:\n{}",
            metric(b_metrics, &series),
            a.output()
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    for items in ["log_records", "spans", "metric_points"] {
        assert_eq!(
            metric(b_metrics, &b_series(items, b_transport)),
            want,
            "{items}: duplicates at B"
        );
    }
    let b_out = b.output();
    let r_ok = rotel.wait_until(Duration::from_secs(20), |o| {
        (0..N).all(|i| o.contains(&format!("Body: Str(sdk-log {run} {i})")))
    });
    let r_out = rotel.output();
    for i in 0..N {
        let text = format!("sdk-log {run} {i}");
        assert!(b_out.contains(&text), "B lacks {text:?}");
        assert_eq!(
            r_out.matches(&format!("Body: Str({text})\n")).count(),
            1,
            "rotel must show {text:?} exactly once"
        );
    }
    assert!(r_ok);
    let sent = format!("agentcol_exporter_sent_log_records_total{{exporter=\"{rotel_exporter}\"}}");
    assert!(eventually(Duration::from_secs(5), || metric(
        a_metrics, &sent
    ) == want));
}

#[test]
fn sdk_over_grpc_to_agentcol_to_agentcol_and_rotel() {
    sdk_to_agentcol_to_peers("grpc");
}

#[test]
fn sdk_over_http_to_agentcol_to_agentcol_and_rotel() {
    sdk_to_agentcol_to_peers("http");
}

/// otelcol-contrib's filelog receiver ships every line of a file to agentcol over otlphttp.
#[test]
fn otelcol_filelog_to_agentcol() {
    let Some(otelcol) = peer("otelcol_filelog_to_agentcol", "otelcol-contrib") else {
        return;
    };
    let wa = Workdir::new();
    let (a_grpc, a_http, a_metrics) = (free_port(), free_port(), free_port());
    let fa = wa.write(
        "a.yaml",
        &crate::otlp::sink_config(
            a_grpc,
            a_http,
            a_metrics,
            "  debug:\n    verbosity: detailed",
        ),
    );
    let a = Running::agentcol("agentcol", &wa, &fa);

    let wo = Workdir::new();
    let lines: Vec<String> = (0..40).map(|i| format!("filelog-line-{i}-end")).collect();
    let input = wo.write("input.log", &(lines.join("\n") + "\n"));
    let cfg = wo.write(
        "otelcol.yaml",
        &format!(
            r#"
receivers:
  filelog:
    include: [{input}]
    start_at: beginning
exporters:
  otlphttp:
    endpoint: http://127.0.0.1:{a_http}
processors:
  batch:
    timeout: 100ms
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [filelog]
      processors: [batch]
      exporters: [otlphttp]
"#,
            input = input.display()
        ),
    );
    let mut cmd = Command::new(otelcol);
    cmd.arg("--config").arg(&cfg);
    let otel = Running::spawn("otelcol", cmd);
    let series =
        r#"agentcol_receiver_accepted_log_records_total{receiver="otlp",transport="http"}"#;
    assert!(
        eventually(Duration::from_secs(30), || metric(a_metrics, series)
            >= 40.0),
        "agentcol got {} of 40 lines\notelcol:\n{}",
        metric(a_metrics, series),
        otel.output()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(metric(a_metrics, series), 40.0);
    let out = a.output();
    for line in &lines {
        assert!(out.contains(line), "missing {line}");
    }
}
