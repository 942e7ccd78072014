//! `validate`, `print-config`, `components` and the embedded default, through the binary.

use crate::support::*;

const BASE: &str = r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:4317
      http:
        endpoint: 127.0.0.1:4318
processors:
  batch:
  memory_limiter:
    check_interval: 1s
    limit_mib: 256
exporters:
  otlphttp:
    endpoint: http://127.0.0.1:4999
  debug:
extensions:
  health_check:
service:
  extensions: [health_check]
  pipelines:
    logs:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [otlphttp, debug]
"#;

fn validate(yaml: &str, extra: &[&str]) -> Output {
    let w = Workdir::new();
    let f = w.write("c.yaml", yaml);
    let mut args = vec!["validate", "--config", f.to_str().unwrap()];
    args.extend_from_slice(extra);
    agentcol(&w.root(), &args)
}

fn with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

/// Each broken config: exit 1, and an `Error:` line naming the path and the fault.
#[test]
fn broken_config_catalogue() {
    let cases: Vec<(&str, String, Vec<&str>, &str, &str)> = vec![
        ("unknown type", with("  debug:\n", "  debugx:\n"), vec![], "exporters::debugx", "unknown type: \"debugx\""),
        ("unknown field", with("  batch:\n", "  batch:\n    bogus_key: 1\n"), vec![], "processors::batch::bogus_key", "unknown field `bogus_key`"),
        ("unknown top-level key", format!("{BASE}servce: {{}}\n"), vec![], "", "'' has invalid keys: servce"),
        ("undefined reference", with("exporters: [otlphttp, debug]", "exporters: [otlphttp/missing, debug]"), vec![], "service::pipelines::logs", "references exporter \"otlphttp/missing\" which is not configured"),
        ("duplicate reference", with("processors: [memory_limiter, batch]", "processors: [memory_limiter, batch, batch]"), vec![], "service::pipelines::logs", "references processor \"batch\" multiple times"),
        ("no exporters", with("exporters: [otlphttp, debug]", "exporters: []"), vec![], "service::pipelines::logs", "must have at least one exporter"),
        ("no receivers", with("receivers: [otlp]", "receivers: []"), vec![], "service::pipelines::logs", "must have at least one receiver"),
        ("no pipelines", with("  pipelines:\n    logs:\n      receivers: [otlp]\n      processors: [memory_limiter, batch]\n      exporters: [otlphttp, debug]\n", "  pipelines: {}\n"), vec![], "service::pipelines", "service must have at least one pipeline"),
        ("bad pipeline signal", with("    logs:\n", "    spans:\n"), vec![], "service::pipelines::spans", "unknown pipeline signal: \"spans\""),
        ("empty name after slash", with("  debug:\n", "  debug/:\n"), vec![], "exporters::debug/", "the part after / should not be empty"),
        ("space in type", with("  debug:\n", "  \"de bug\":\n"), vec![], "exporters::de bug", "invalid character(s) in type"),
        ("wrong value type", with("limit_mib: 256", "limit_mib: lots"), vec![], "processors::memory_limiter::limit_mib", "invalid type"),
        ("bad duration", with("check_interval: 1s", "check_interval: 1x"), vec![], "processors::memory_limiter::check_interval", "unknown unit"),
        ("yaml syntax", with("      receivers: [otlp]", "      receivers: [otlp"), vec![], "", "yaml: line"),
        ("duplicate yaml key", format!("{BASE}receivers: {{}}\n"), vec![], "", "mapping key \"receivers\" already defined at line 2"),
        ("unset env var", with("endpoint: http://127.0.0.1:4999", "endpoint: ${env:AGENTCOL_E2E_SURELY_UNSET}"), vec![], "exporters::otlphttp::endpoint", "\"AGENTCOL_E2E_SURELY_UNSET\" is not set"),
        ("bad --set", BASE.to_string(), vec!["--set", "nonsense"], "", "missing equal sign"),
        ("non-loopback without token", with("endpoint: 127.0.0.1:4317", "endpoint: 0.0.0.0:4317"), vec![], "receivers::otlp::protocols::grpc::endpoint", "auth.bearer_token"),
        ("memory_limiter without limit", with("    limit_mib: 256\n", ""), vec![], "processors::memory_limiter::limit_mib", "'limit_mib' or 'limit_percentage' must be greater than zero"),
        ("otlphttp without endpoint", with("    endpoint: http://127.0.0.1:4999\n", "    compression: gzip\n"), vec![], "exporters::otlphttp", "at least one endpoint must be specified"),
        ("unknown metrics level", format!("{BASE}  telemetry:\n    metrics:\n      level: verbose\n"), vec![], "service::telemetry::metrics::level", "unknown metrics level \"verbose\""),
        ("undefined service extension", with("extensions: [health_check]", "extensions: [health_check/nope]"), vec![], "service::extensions", "references extension \"health_check/nope\" which is not configured"),
        ("otlp receiver without protocols", with("    protocols:\n      grpc:\n        endpoint: 127.0.0.1:4317\n      http:\n        endpoint: 127.0.0.1:4318\n", "    protocols: {}\n"), vec![], "receivers::otlp::protocols", "must specify at least one protocol"),
        ("connector type unknown", format!("{BASE}connectors:\n  forward:\n"), vec![], "connectors::forward", "unknown type: \"forward\""),
    ];
    assert!(cases.len() >= 20);
    let mut failures = Vec::new();
    for (name, yaml, extra, path, needle) in &cases {
        let out = validate(yaml, extra);
        let line_ok = out.stderr.lines().any(|l| {
            l.starts_with("Error: ")
                && (path.is_empty() || l.contains(&format!("{path}: ")))
                && l.contains(needle)
        });
        if out.code != Some(1) || !line_ok {
            failures.push(format!(
                "{name}: exit {:?}, want 1 and an Error line with {path:?} and {needle:?}; stderr:\n{}",
                out.code, out.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    let missing = agentcol(
        &Workdir::new().root(),
        &["validate", "--config", "/nonexistent/agentcol.yaml"],
    );
    assert_eq!(missing.code, Some(1));
    assert!(
        missing
            .stderr
            .contains("unable to read the file file:/nonexistent/agentcol.yaml"),
        "{}",
        missing.stderr
    );
}

#[test]
fn every_fault_is_reported_at_once() {
    let yaml = with("  debug:\n", "  debugx:\n")
        .replacen("check_interval: 1s", "check_interval: 1x", 1)
        .replacen(
            "processors: [memory_limiter, batch]",
            "processors: [memory_limiter, batch, batch]",
            1,
        );
    let out = validate(&yaml, &[]);
    assert_eq!(out.code, Some(1));
    let errors = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("Error: "))
        .count();
    assert!(errors >= 3, "{}", out.stderr);
}

#[test]
fn a_valid_config_validates() {
    let out = validate(BASE, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[test]
fn print_config_fills_defaults_and_redacts_secrets() {
    let yaml = with(
        "    endpoint: http://127.0.0.1:4999\n",
        "    endpoint: http://127.0.0.1:4999\n    headers:\n      authorization: Bearer sup3rsecret\n",
    )
    .replacen(
        "        endpoint: 127.0.0.1:4318\n",
        "        endpoint: 127.0.0.1:4318\n        auth:\n          bearer_token: t0ken-value\n",
        1,
    );
    let w = Workdir::new();
    let f = w.write("c.yaml", &yaml);
    let out = agentcol(
        &w.root(),
        &[
            "print-config",
            "--config",
            f.to_str().unwrap(),
            "--set",
            "processors.batch.timeout=3s",
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(!out.stdout.contains("sup3rsecret"), "{}", out.stdout);
    assert!(!out.stdout.contains("t0ken-value"), "{}", out.stdout);
    assert!(out.stdout.contains("[REDACTED]"));
    assert!(out.stdout.contains("timeout: 3s"), "{}", out.stdout);
    assert!(
        out.stdout.contains("send_batch_size: 8192"),
        "defaults filled in:\n{}",
        out.stdout
    );
}

#[test]
fn components_lists_the_distribution() {
    let out = agentcol(&Workdir::new().root(), &["components"]);
    assert_eq!(out.code, Some(0));
    for name in [
        "otlp",
        "otlphttp",
        "batch",
        "memory_limiter",
        "debug",
        "nop",
        "health_check",
    ] {
        assert!(
            out.stdout.contains(&format!("name: {name}\n")),
            "{name}:\n{}",
            out.stdout
        );
    }
    assert!(out.stdout.starts_with("buildinfo:"));
}

/// With no --config and nothing at the root, the embedded default runs (ports moved by --set so
/// the test can run beside anything else), and the root is created 0700.
#[test]
fn embedded_default_runs_and_creates_a_private_root() {
    let w = Workdir::new();
    let (grpc, http, health, metrics) = (free_port(), free_port(), free_port(), free_port());
    let hook = free_port();
    let mut cmd = std::process::Command::new(BIN);
    cmd.env("AGENTCOL_ROOT", w.root())
        .env_remove("RUST_LOG")
        .arg("--set")
        .arg(format!(
            "receivers.otlp.protocols.grpc.endpoint=127.0.0.1:{grpc}"
        ))
        .arg("--set")
        .arg(format!(
            "receivers.otlp.protocols.http.endpoint=127.0.0.1:{http}"
        ))
        .arg("--set")
        .arg(format!("receivers.hook.endpoint=127.0.0.1:{hook}"))
        .arg("--set")
        .arg(format!(
            "extensions.health_check.endpoint=127.0.0.1:{health}"
        ))
        .arg("--set")
        .arg(format!(
            "service.telemetry.metrics.address=127.0.0.1:{metrics}"
        ));
    let mut run = Running::spawn("default", cmd);
    run.wait_for("Everything is ready", std::time::Duration::from_secs(30));
    assert!(
        run.output().contains("embedded default"),
        "{}",
        run.output()
    );
    assert_eq!(http_get_status(health, "/livez"), 200);
    assert!(eventually(
        std::time::Duration::from_secs(5),
        || http_get_status(health, "/") == 200
    ));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(w.root()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert_eq!(run.terminate(std::time::Duration::from_secs(20)), Some(0));
    assert!(run.output().contains("Shutdown complete."));
}

fn http_get_status(port: u16, path: &str) -> u16 {
    http(port, "GET", path, &[], b"").status
}
