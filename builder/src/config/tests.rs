//! The broken-config catalogue at the unit level (the CLI repeats it end to end in tests/e2e).

use super::*;
use crate::testkit;

const GOOD: &str = r#"
receivers:
  fakercv:
    endpoint: 127.0.0.1:4317
  fakercv/b:
processors:
  fakeproc:
exporters:
  fakeexp:
    endpoint: somewhere
    headers: {authorization: "Bearer hunter2"}
extensions:
  fakeext:
service:
  extensions: [fakeext]
  pipelines:
    logs:
      receivers: [fakercv, fakercv/b]
      processors: [fakeproc]
      exporters: [fakeexp]
    traces:
      receivers: [fakercv]
      exporters: [fakeexp]
  telemetry:
    metrics:
      address: 127.0.0.1:18888
"#;

fn resolve_str(yaml: &str, sets: &[&str]) -> Result<Resolved, Vec<Diagnostic>> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yaml");
    std::fs::write(&file, yaml).unwrap();
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    resolve(dir.path(), &[file.display().to_string()], &sets)
}

fn errors(yaml: &str) -> Vec<Diagnostic> {
    let (registry, _, _) = testkit::registry();
    match resolve_str(yaml, &[]) {
        Err(d) => d,
        Ok(r) => match build_plan(&r, &registry) {
            Ok(_) => Vec::new(),
            Err(d) => d,
        },
    }
}

/// Asserts exactly one fault at `path` whose message contains `needle`.
fn one(yaml: &str, path: &str, needle: &str) {
    let errs = errors(yaml);
    assert!(
        errs.iter()
            .any(|e| e.path == path && e.message.contains(needle)),
        "expected {path}: …{needle}… in {errs:#?}"
    );
}

fn good_with(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    GOOD.replacen(from, to, 1)
}

#[test]
fn the_good_config_builds_the_plan() {
    let (registry, _, _) = testkit::registry();
    let plan = build_plan(&resolve_str(GOOD, &[]).unwrap(), &registry).unwrap();
    assert_eq!(plan.receivers.len(), 2);
    assert_eq!(plan.pipelines.len(), 2);
    assert_eq!(plan.service_extensions.len(), 1);
    assert_eq!(
        plan.telemetry.metrics_address,
        Some("127.0.0.1:18888".parse().unwrap())
    );
    let logs = &plan.pipelines[&"logs".parse().unwrap()];
    assert_eq!(logs.receivers.len(), 2);
}

#[test]
fn catalogue_unknown_type() {
    one(
        &good_with("  fakeexp:\n    endpoint", "  fakeexpx:\n    endpoint"),
        "exporters::fakeexpx",
        "unknown type: \"fakeexpx\" for id: \"fakeexpx\" (valid values: [fakeexp])",
    );
}

#[test]
fn catalogue_unknown_field_has_the_path() {
    one(
        &good_with(
            "    endpoint: somewhere",
            "    endpoint: somewhere\n    bogus_key: 1",
        ),
        "exporters::fakeexp::bogus_key",
        "unknown field `bogus_key`",
    );
}

#[test]
fn catalogue_unknown_top_level_key() {
    one(
        &format!("{GOOD}servce: {{}}\n"),
        "",
        "'' has invalid keys: servce",
    );
}

#[test]
fn catalogue_undefined_reference() {
    one(
        &good_with(
            "      exporters: [fakeexp]\n    traces",
            "      exporters: [fakeexp/missing]\n    traces",
        ),
        "service::pipelines::logs",
        "references exporter \"fakeexp/missing\" which is not configured",
    );
}

#[test]
fn catalogue_duplicate_reference() {
    one(
        &good_with("processors: [fakeproc]", "processors: [fakeproc, fakeproc]"),
        "service::pipelines::logs",
        "references processor \"fakeproc\" multiple times",
    );
}

#[test]
fn catalogue_empty_pipeline_parts() {
    one(
        &good_with(
            "      exporters: [fakeexp]\n    traces",
            "      exporters: []\n    traces",
        ),
        "service::pipelines::logs",
        "must have at least one exporter",
    );
    one(
        &good_with("receivers: [fakercv, fakercv/b]", "receivers: []"),
        "service::pipelines::logs",
        "must have at least one receiver",
    );
}

#[test]
fn catalogue_no_pipelines() {
    one(
        "receivers: {fakercv: }\nexporters: {fakeexp: {endpoint: x}}\nservice: {}\n",
        "service::pipelines",
        "service must have at least one pipeline",
    );
}

#[test]
fn catalogue_bad_pipeline_signal() {
    one(
        &good_with("    traces:", "    spans:"),
        "service::pipelines::spans",
        "unknown pipeline signal: \"spans\"",
    );
}

#[test]
fn catalogue_bad_ids() {
    one(
        &good_with("  fakercv/b:", "  fakercv/:"),
        "receivers::fakercv/",
        "the part after / should not be empty",
    );
    one(
        &good_with("  fakercv/b:", "  fake rcv:"),
        "receivers::fake rcv",
        "invalid character(s) in type",
    );
}

#[test]
fn catalogue_wrong_value_type_and_duration_with_lines() {
    let yaml = good_with(
        "    endpoint: 127.0.0.1:4317",
        "    endpoint: 127.0.0.1:4317\n    limit: abc\n    timeout: 5x",
    );
    let errs = errors(&yaml);
    // serde reports the first field error of one component.
    assert!(
        errs.iter()
            .any(|e| e.path == "receivers::fakercv::limit" && e.line == Some(5)),
        "{errs:#?}"
    );
    one(
        &good_with(
            "    endpoint: 127.0.0.1:4317",
            "    endpoint: 127.0.0.1:4317\n    timeout: 5x",
        ),
        "receivers::fakercv::timeout",
        "unknown unit",
    );
}

#[test]
fn catalogue_yaml_syntax_and_duplicates() {
    let errs = errors("receivers:\n  fakercv: [1, 2\nservice: {}\n");
    assert!(errs[0].line.is_some(), "{errs:?}");
    assert!(errs[0].message.contains("yaml: line"), "{errs:?}");
    let errs = errors("service: {}\nreceivers: {}\nservice: {}\n");
    assert_eq!(errs[0].line, Some(3));
    assert!(errs[0]
        .message
        .contains("mapping key \"service\" already defined at line 1"));
}

#[test]
fn catalogue_missing_file_and_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = resolve(dir.path(), &["nope.yaml".into()], &[]).unwrap_err();
    assert!(e[0]
        .message
        .starts_with("unable to read the file file:nope.yaml"));
    let e = errors("# nothing\n");
    assert_eq!(e[0].message, "empty configuration file");
}

#[test]
fn catalogue_unset_env_and_bad_set() {
    one(
        &good_with(
            "endpoint: somewhere",
            "endpoint: ${env:AGENTCOL_TEST_SURELY_UNSET}",
        ),
        "exporters::fakeexp::endpoint",
        "\"AGENTCOL_TEST_SURELY_UNSET\" is not set",
    );
    let e = resolve_str(GOOD, &["nonsense"]).unwrap_err();
    assert!(e[0].message.contains("missing equal sign"));
}

#[test]
fn catalogue_component_validation() {
    one(
        &good_with("    endpoint: 127.0.0.1:4317", "    endpoint: 0.0.0.0:4317"),
        "receivers::fakercv::endpoint",
        "is not loopback",
    );
    one(
        &good_with("    endpoint: somewhere\n", ""),
        "exporters::fakeexp",
        "at least one endpoint must be specified",
    );
}

#[test]
fn catalogue_unsupported_signal() {
    one(
        &good_with("      receivers: [fakercv]\n      exporters", "      receivers: [fakercv]\n      processors: [fakeproc]\n      exporters"),
        "service::pipelines::traces",
        "failed to create \"fakeproc\" processor for data type \"traces\": telemetry type is not supported",
    );
}

#[test]
fn catalogue_service_extension_and_telemetry() {
    one(
        &good_with("extensions: [fakeext]", "extensions: [fakeext/nope]"),
        "service::extensions",
        "references extension \"fakeext/nope\" which is not configured",
    );
    one(
        &good_with("      address: 127.0.0.1:18888", "      level: verbose"),
        "service::telemetry::metrics::level",
        "unknown metrics level \"verbose\"",
    );
    one(
        &good_with(
            "      address: 127.0.0.1:18888",
            "      address: 0.0.0.0:8888",
        ),
        "service::telemetry::metrics::address",
        "must be on loopback",
    );
}

#[test]
fn catalogue_connectors_are_unknown() {
    one(
        &format!("{GOOD}connectors:\n  forward:\n"),
        "connectors::forward",
        "unknown type: \"forward\"",
    );
}

#[test]
fn every_fault_is_reported_at_once() {
    let yaml = GOOD
        .replacen("  fakeexp:\n    endpoint", "  fakeexpx:\n    endpoint", 1)
        .replacen(
            "processors: [fakeproc]",
            "processors: [fakeproc, fakeproc]",
            1,
        )
        .replacen("      address: 127.0.0.1:18888", "      level: verbose", 1);
    let errs = errors(&yaml);
    assert!(errs.len() >= 3, "{errs:#?}");
}

#[test]
fn unused_components_are_validated_but_not_planned() {
    let yaml = GOOD.replacen(
        "  fakercv/b:\n",
        "  fakercv/b:\n  fakercv/unused:\n    limit: nope\n",
        1,
    );
    one(&yaml, "receivers::fakercv/unused::limit", "invalid type");
    let yaml = GOOD.replacen("  fakercv/b:\n", "  fakercv/b:\n  fakercv/unused:\n", 1);
    let (registry, _, _) = testkit::registry();
    let plan = build_plan(&resolve_str(&yaml, &[]).unwrap(), &registry).unwrap();
    assert!(!plan
        .receivers
        .contains_key(&"fakercv/unused".parse().unwrap()));
}

#[test]
fn merge_set_and_print_config_redacts_secrets() {
    let (registry, _, _) = testkit::registry();
    let r = resolve_str(
        GOOD,
        &[
            "receivers.fakercv.limit=42",
            "receivers.fakercv.token=tok3n",
        ],
    )
    .unwrap();
    let text = print_config(&r, &registry).unwrap();
    assert!(text.contains("limit: 42"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!text.contains("tok3n"), "{text}");
    assert!(text.contains("[REDACTED]"), "{text}");
    // Defaults are filled in.
    assert!(text.contains("timeout: 5s"), "{text}");
}

#[test]
fn no_config_uses_root_file_then_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let r = resolve(dir.path(), &[], &[]).unwrap();
    assert!(r.source.contains("embedded default"));
    std::fs::write(dir.path().join("config.yaml"), GOOD).unwrap();
    let r = resolve(dir.path(), &[], &[]).unwrap();
    assert!(r.source.ends_with("config.yaml"));
}

#[test]
fn components_listing_names_every_factory() {
    let (registry, _, _) = testkit::registry();
    let text = components_yaml(&registry);
    for name in ["fakercv", "fakeproc", "fakeexp", "fakeext"] {
        assert!(text.contains(&format!("name: {name}")), "{text}");
    }
    assert!(node::parse(&text).is_ok());
}

#[test]
fn setup_finds_the_agent_endpoints_in_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let default = resolve(dir.path(), &[], &[]).unwrap();
    assert_eq!(
        default.agent_endpoints(),
        (Some("127.0.0.1:4318".into()), Some("127.0.0.1:4319".into()))
    );
    let custom = resolve_str(
        "receivers:\n  otlp/a:\n    protocols:\n      grpc:\n  otlp/b:\n    protocols:\n      http:\n  hook/x:\n    endpoint: 127.0.0.1:9999\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        custom.agent_endpoints(),
        (Some("127.0.0.1:4318".into()), Some("127.0.0.1:9999".into()))
    );
    let none = resolve_str("receivers:\n  otlp:\n    protocols:\n      grpc:\n", &[]).unwrap();
    assert_eq!(none.agent_endpoints(), (None, None));
}
