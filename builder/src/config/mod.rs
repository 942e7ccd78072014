//! Configuration: reading `--config` sources, expanding `${…}`, merging, `--set`, and turning
//! the result into a [`Plan`] with every fault reported at once, each with its YAML path (and
//! line when known). The format is otelcol's, so existing collector configs run unchanged.
//!
//! [`build_plan`] is pure: it decodes and validates every component's config and checks the
//! pipeline graph, but creates no component. `agentcol validate` is exactly this step.

mod emit;
mod node;
mod resolve;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use agentcol_component::{
    AnyFactory, ComponentId, ComponentKind, LoadedConfig, PipelineId, Signal,
};

use crate::plan::{PipelinePlan, Plan, Planned, TelemetrySettings};
use crate::registry::Registry;
use node::{Node, Value};

/// The embedded default configuration.
pub const DEFAULT_CONFIG: &str = include_str!("../../../config-examples/default.yaml");

/// One configuration fault: its YAML path (`service::pipelines::logs`), the line when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// `::`-separated path from the document root; empty for the document itself.
    pub path: String,
    /// 1-based line in the source that holds the value, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

/// The merged, expanded configuration document.
#[derive(Debug, Clone)]
pub struct Resolved {
    doc: Node,
    /// Where the configuration came from, for the start-up log.
    pub source: String,
}

impl Resolved {
    /// The listen addresses `agentcol setup` points the agents at: the HTTP endpoint of the
    /// first `otlp` receiver that serves HTTP, and the endpoint of the first `hook` receiver
    /// (each `None` when the configuration has no such receiver; a receiver whose key is
    /// present without a value listens on its default).
    pub fn agent_endpoints(&self) -> (Option<String>, Option<String>) {
        let (mut otlp, mut hook) = (None, None);
        let Some(receivers) = self.doc.get("receivers").and_then(Node::as_map) else {
            return (None, None);
        };
        for (id, node) in receivers {
            let ty = id.split('/').next().unwrap_or_default();
            if ty == "otlp" && otlp.is_none() {
                if let Some(http) = node.get("protocols").and_then(|p| p.get("http")) {
                    otlp = Some(
                        http.get("endpoint")
                            .and_then(Node::as_str)
                            .unwrap_or("127.0.0.1:4318")
                            .to_string(),
                    );
                }
            } else if ty == "hook" && hook.is_none() {
                hook = Some(
                    node.get("endpoint")
                        .and_then(Node::as_str)
                        .unwrap_or("127.0.0.1:4319")
                        .to_string(),
                );
            }
        }
        (otlp, hook)
    }
}

/// Reads and merges the `--config` sources (or, with none, `<root>/config.yaml`, or the embedded
/// default), applies `--set`, expands `${…}`.
pub fn resolve(root: &Path, uris: &[String], sets: &[String]) -> Result<Resolved, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut docs = Vec::new();
    let source;
    if uris.is_empty() {
        let at_root = root.join("config.yaml");
        if at_root.exists() {
            let uri = at_root.display().to_string();
            source = uri.clone();
            match resolve::retrieve(&uri) {
                Ok(d) => docs.push(d),
                Err(e) => errors.push(e),
            }
        } else {
            source = "embedded default (config-examples/default.yaml)".to_string();
            match node::parse(DEFAULT_CONFIG) {
                Ok(d) => docs.push(d),
                Err(e) => errors.push(Diagnostic {
                    path: String::new(),
                    line: e.line,
                    message: format!("embedded default: {}", e.message),
                }),
            }
        }
    } else {
        source = uris.join(", ");
        for uri in uris {
            match resolve::retrieve(uri) {
                Ok(d) => docs.push(d),
                Err(e) => errors.push(e),
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut doc = Node::empty_map();
    let mut any = false;
    for d in docs.into_iter().flatten() {
        any = true;
        resolve::merge(&mut doc, d);
    }
    if !any && sets.is_empty() {
        return Err(vec![Diagnostic {
            path: String::new(),
            line: None,
            message: "empty configuration file".into(),
        }]);
    }
    for set in sets {
        if let Err(e) = resolve::apply_set(&mut doc, set) {
            errors.push(e);
        }
    }
    errors.extend(resolve::expand(&mut doc));
    if errors.is_empty() {
        Ok(Resolved { doc, source })
    } else {
        Err(errors)
    }
}

struct Errors(Vec<Diagnostic>);

impl Errors {
    fn at(&mut self, path: impl Into<String>, node: Option<&Node>, message: impl Into<String>) {
        self.0.push(Diagnostic {
            path: path.into(),
            line: node.map(|n| n.line).filter(|l| *l > 0),
            message: message.into(),
        });
    }
}

/// The node at a `::` path below `node`, as deep as it exists (for line numbers).
fn deepest<'a>(node: &'a Node, path: &str) -> &'a Node {
    let mut cur = node;
    for part in path.split("::").filter(|p| !p.is_empty()) {
        let next = match &cur.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == part).map(|(_, v)| v),
            Value::Seq(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
            Value::Scalar { .. } => None,
        };
        match next {
            Some(n) => cur = n,
            None => break,
        }
    }
    cur
}

/// Every component defined in one section, decoded.
struct Section {
    loaded: BTreeMap<ComponentId, LoadedConfig>,
}

fn load_section<F: AnyFactory + ?Sized>(
    doc: &Node,
    kind: ComponentKind,
    factories: &BTreeMap<&'static str, Arc<F>>,
    errors: &mut Errors,
) -> Section {
    let mut loaded = BTreeMap::new();
    let name = kind.section();
    let Some(section) = doc.get(name) else {
        return Section { loaded };
    };
    if section.is_null() {
        return Section { loaded };
    }
    let Some(entries) = section.as_map() else {
        errors.at(
            name,
            Some(section),
            format!("expected a map of components, got a {}", section.kind()),
        );
        return Section { loaded };
    };
    for (key, cfg) in entries {
        let path = format!("{name}::{key}");
        let id = match ComponentId::from_str(key) {
            Ok(id) => id,
            Err(e) => {
                errors.at(&path, Some(cfg), e.to_string());
                continue;
            }
        };
        let Some(factory) = factories.get(id.ty()) else {
            let valid: Vec<&str> = factories.keys().copied().collect();
            errors.at(
                &path,
                Some(cfg),
                format!(
                    "unknown type: {:?} for id: {:?} (valid values: [{}])",
                    id.ty(),
                    key,
                    valid.join(", ")
                ),
            );
            continue;
        };
        match factory.load_config(cfg.to_json()) {
            Ok(c) => {
                loaded.insert(id, c);
            }
            Err(errs) => {
                for e in errs {
                    let full = agentcol_component::config::join_path(&path, &e.path);
                    let at = deepest(cfg, &e.path);
                    errors.at(full, Some(at), e.message);
                }
            }
        }
    }
    Section { loaded }
}

const TOP_LEVEL: [&str; 6] = [
    "receivers",
    "processors",
    "exporters",
    "extensions",
    "connectors",
    "service",
];

/// Everything decoded: sections and the service part, with all faults.
struct Loaded {
    receivers: Section,
    processors: Section,
    exporters: Section,
    extensions: Section,
}

fn load_all(doc: &Node, registry: &Registry, errors: &mut Errors) -> Loaded {
    match doc.as_map() {
        Some(entries) => {
            let bad: Vec<&str> = entries
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| !TOP_LEVEL.contains(k))
                .collect();
            if !bad.is_empty() {
                errors.at("", None, format!("'' has invalid keys: {}", bad.join(", ")));
            }
        }
        None => errors.at(
            "",
            Some(doc),
            format!("the configuration must be a map, got a {}", doc.kind()),
        ),
    }
    let receivers = load_section(doc, ComponentKind::Receiver, &registry.receivers, errors);
    let processors = load_section(doc, ComponentKind::Processor, &registry.processors, errors);
    let exporters = load_section(doc, ComponentKind::Exporter, &registry.exporters, errors);
    let extensions = load_section(doc, ComponentKind::Extension, &registry.extensions, errors);
    let no_connectors: BTreeMap<&'static str, Arc<dyn AnyFactory>> = BTreeMap::new();
    load_section(doc, ComponentKind::Connector, &no_connectors, errors);
    Loaded {
        receivers,
        processors,
        exporters,
        extensions,
    }
}

fn id_list(
    node: Option<&Node>,
    path: &str,
    errors: &mut Errors,
) -> Vec<(ComponentId, Option<Node>)> {
    let Some(node) = node else {
        return Vec::new();
    };
    if node.is_null() {
        return Vec::new();
    }
    let Value::Seq(items) = &node.value else {
        errors.at(
            path,
            Some(node),
            format!("expected a list of component ids, got a {}", node.kind()),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        match item.as_str().map(ComponentId::from_str) {
            Some(Ok(id)) => out.push((id, Some(item.clone()))),
            Some(Err(e)) => errors.at(path, Some(item), e.to_string()),
            None => errors.at(path, Some(item), "expected a component id"),
        }
    }
    out
}

fn parse_telemetry(node: Option<&Node>, errors: &mut Errors) -> TelemetrySettings {
    let mut t = TelemetrySettings::default();
    let Some(node) = node.filter(|n| !n.is_null()) else {
        return t;
    };
    let base = "service::telemetry";
    let Some(entries) = node.as_map() else {
        errors.at(base, Some(node), "expected a map");
        return t;
    };
    for (key, value) in entries {
        let path = format!("{base}::{key}");
        match key.as_str() {
            "logs" => {
                for (k, v) in value.as_map().cloned().unwrap_or_default() {
                    match (k.as_str(), v.as_str()) {
                        ("level", Some(l)) => {
                            let l = l.to_ascii_lowercase();
                            if ["debug", "info", "warn", "error"].contains(&l.as_str()) {
                                t.log_level = l;
                            } else {
                                errors.at(format!("{path}::level"), Some(&v), format!("unknown log level {l:?} (valid values: [debug, info, warn, error])"));
                            }
                        }
                        (
                            "encoding" | "development" | "disable_caller" | "disable_stacktrace",
                            _,
                        ) => {}
                        _ => errors.at(&path, Some(&v), format!("'' has invalid keys: {k}")),
                    }
                }
            }
            "metrics" => {
                let mut level_none = false;
                for (k, v) in value.as_map().cloned().unwrap_or_default() {
                    let p = format!("{path}::{k}");
                    match k.as_str() {
                        "level" => match v.as_str().map(str::to_ascii_lowercase).as_deref() {
                            Some("none") => level_none = true,
                            Some("basic" | "normal" | "detailed") => {}
                            other => errors.at(
                                &p,
                                Some(&v),
                                format!("'level' unknown metrics level {:?}", other.unwrap_or("")),
                            ),
                        },
                        "address" => {
                            match v.as_str().map(agentcol_component::net::parse_endpoint) {
                                Some(Ok(a)) => set_metrics_addr(&mut t, a, &p, &v, errors),
                                Some(Err(e)) => errors.at(&p, Some(&v), e),
                                None => errors.at(&p, Some(&v), "expected host:port"),
                            }
                        }
                        "readers" => {
                            let Value::Seq(readers) = &v.value else {
                                errors.at(&p, Some(&v), "expected a list");
                                continue;
                            };
                            for (i, r) in readers.iter().enumerate() {
                                let prom = r
                                    .get("pull")
                                    .and_then(|n| n.get("exporter"))
                                    .and_then(|n| n.get("prometheus"));
                                let Some(prom) = prom else {
                                    errors.at(
                                        format!("{p}::{i}"),
                                        Some(r),
                                        "only pull.exporter.prometheus readers are supported",
                                    );
                                    continue;
                                };
                                let host = prom
                                    .get("host")
                                    .and_then(Node::as_str)
                                    .unwrap_or("127.0.0.1");
                                let port =
                                    prom.get("port").and_then(Node::as_str).unwrap_or("8888");
                                match agentcol_component::net::parse_endpoint(&format!(
                                    "{host}:{port}"
                                )) {
                                    Ok(a) => set_metrics_addr(&mut t, a, &p, r, errors),
                                    Err(e) => errors.at(format!("{p}::{i}"), Some(r), e),
                                }
                            }
                        }
                        _ => errors.at(&path, Some(&v), format!("'' has invalid keys: {k}")),
                    }
                }
                if level_none {
                    t.metrics_address = None;
                }
            }
            "traces" | "resource" => {}
            _ => errors.at(base, Some(value), format!("'' has invalid keys: {key}")),
        }
    }
    t
}

fn set_metrics_addr(
    t: &mut TelemetrySettings,
    addr: SocketAddr,
    path: &str,
    node: &Node,
    errors: &mut Errors,
) {
    if agentcol_component::net::is_loopback(&addr) {
        t.metrics_address = Some(addr);
    } else {
        errors.at(
            path,
            Some(node),
            format!("the internal metrics endpoint must be on loopback (got {addr}): it has no authentication"),
        );
    }
}

fn take_planned<F: ?Sized>(
    section: &mut Section,
    used: &BTreeSet<ComponentId>,
    factory: impl Fn(&ComponentId) -> Option<Arc<F>>,
) -> BTreeMap<ComponentId, Planned<F>> {
    let mut out = BTreeMap::new();
    for id in used {
        if let (Some(config), Some(factory)) = (section.loaded.remove(id), factory(id)) {
            out.insert(id.clone(), Planned { factory, config });
        }
    }
    out
}

/// Decodes and validates every component and the pipeline graph.
pub fn build_plan(resolved: &Resolved, registry: &Registry) -> Result<Plan, Vec<Diagnostic>> {
    let doc = &resolved.doc;
    let mut errors = Errors(Vec::new());
    let mut loaded = load_all(doc, registry, &mut errors);

    let service = doc.get("service").filter(|s| !s.is_null());
    if let Some(s) = service {
        if let Some(entries) = s.as_map() {
            for (k, v) in entries {
                if !["extensions", "pipelines", "telemetry"].contains(&k.as_str()) {
                    errors.at("service", Some(v), format!("'' has invalid keys: {k}"));
                }
            }
        }
    }

    // service.extensions
    let mut service_extensions = Vec::new();
    for (id, node) in id_list(
        service.and_then(|s| s.get("extensions")),
        "service::extensions",
        &mut errors,
    ) {
        if !loaded.extensions.loaded.contains_key(&id) && !defined(doc, "extensions", &id) {
            errors.at(
                "service::extensions",
                node.as_ref(),
                format!(
                    "references extension {:?} which is not configured",
                    id.to_string()
                ),
            );
        } else if service_extensions.contains(&id) {
            errors.at(
                "service::extensions",
                node.as_ref(),
                format!("references extension {:?} multiple times", id.to_string()),
            );
        } else {
            service_extensions.push(id);
        }
    }

    // service.pipelines
    let mut pipelines = BTreeMap::new();
    let pipelines_node = service
        .and_then(|s| s.get("pipelines"))
        .filter(|p| !p.is_null());
    match pipelines_node.and_then(Node::as_map) {
        None => {
            if let Some(p) = pipelines_node {
                errors.at(
                    "service::pipelines",
                    Some(p),
                    format!("expected a map of pipelines, got a {}", p.kind()),
                );
            } else {
                errors.at(
                    "service::pipelines",
                    None,
                    "service must have at least one pipeline",
                );
            }
        }
        Some(entries) if entries.is_empty() => errors.at(
            "service::pipelines",
            pipelines_node,
            "service must have at least one pipeline",
        ),
        Some(entries) => {
            for (key, pnode) in entries {
                let path = format!("service::pipelines::{key}");
                let pid = match PipelineId::from_str(key) {
                    Ok(p) => p,
                    Err(e) => {
                        errors.at(&path, Some(pnode), e.to_string());
                        continue;
                    }
                };
                if let Some(pm) = pnode.as_map() {
                    for (k, v) in pm {
                        if !["receivers", "processors", "exporters"].contains(&k.as_str()) {
                            errors.at(&path, Some(v), format!("'' has invalid keys: {k}"));
                        }
                    }
                } else if !pnode.is_null() {
                    errors.at(
                        &path,
                        Some(pnode),
                        format!("expected a map, got a {}", pnode.kind()),
                    );
                    continue;
                }
                let signal = pid.signal();
                let mut plan = PipelinePlan::default();
                for (kind, list_key, target) in [
                    (ComponentKind::Receiver, "receivers", &mut plan.receivers),
                    (ComponentKind::Processor, "processors", &mut plan.processors),
                    (ComponentKind::Exporter, "exporters", &mut plan.exporters),
                ] {
                    let ids = id_list(pnode.get(list_key), &path, &mut errors);
                    for (id, node) in ids {
                        let section = match kind {
                            ComponentKind::Receiver => &loaded.receivers,
                            ComponentKind::Processor => &loaded.processors,
                            _ => &loaded.exporters,
                        };
                        if target.contains(&id) {
                            errors.at(
                                &path,
                                node.as_ref(),
                                format!("references {kind} {:?} multiple times", id.to_string()),
                            );
                            continue;
                        }
                        if !section.loaded.contains_key(&id) {
                            // Defined but broken: its own errors are already reported.
                            if !defined(doc, kind.section(), &id) {
                                errors.at(
                                    &path,
                                    node.as_ref(),
                                    format!(
                                        "references {kind} {:?} which is not configured",
                                        id.to_string()
                                    ),
                                );
                            }
                            target.push(id);
                            continue;
                        }
                        let supported = match kind {
                            ComponentKind::Receiver => registry
                                .receivers
                                .get(id.ty())
                                .map(|f| f.stability().get(signal)),
                            ComponentKind::Processor => registry
                                .processors
                                .get(id.ty())
                                .map(|f| f.stability().get(signal)),
                            _ => registry
                                .exporters
                                .get(id.ty())
                                .map(|f| f.stability().get(signal)),
                        };
                        if let Some(None) = supported {
                            errors.at(&path, node.as_ref(), format!("failed to create {:?} {kind} for data type {:?}: telemetry type is not supported", id.to_string(), signal.as_str()));
                        }
                        target.push(id);
                    }
                }
                if plan.receivers.is_empty() {
                    errors.at(&path, Some(pnode), "must have at least one receiver");
                }
                if plan.exporters.is_empty() {
                    errors.at(&path, Some(pnode), "must have at least one exporter");
                }
                pipelines.insert(pid, plan);
            }
        }
    }

    let telemetry = parse_telemetry(service.and_then(|s| s.get("telemetry")), &mut errors);

    if !errors.0.is_empty() {
        return Err(errors.0);
    }

    let mut used_r = BTreeSet::new();
    let mut used_p = BTreeSet::new();
    let mut used_e = BTreeSet::new();
    for p in pipelines.values() {
        used_r.extend(p.receivers.iter().cloned());
        used_p.extend(p.processors.iter().cloned());
        used_e.extend(p.exporters.iter().cloned());
    }
    let used_x: BTreeSet<ComponentId> = service_extensions.iter().cloned().collect();
    Ok(Plan {
        receivers: take_planned(&mut loaded.receivers, &used_r, |id| {
            registry.receivers.get(id.ty()).cloned()
        }),
        processors: take_planned(&mut loaded.processors, &used_p, |id| {
            registry.processors.get(id.ty()).cloned()
        }),
        exporters: take_planned(&mut loaded.exporters, &used_e, |id| {
            registry.exporters.get(id.ty()).cloned()
        }),
        extensions: take_planned(&mut loaded.extensions, &used_x, |id| {
            registry.extensions.get(id.ty()).cloned()
        }),
        service_extensions,
        pipelines,
        telemetry,
    })
}

/// Whether `section` has a key that parses to `id` (defined, even if its config is broken).
fn defined(doc: &Node, section: &str, id: &ComponentId) -> bool {
    doc.get(section).and_then(Node::as_map).is_some_and(|e| {
        e.iter()
            .any(|(k, _)| ComponentId::from_str(k).as_ref() == Ok(id))
    })
}

/// The merged, expanded config as YAML, with every component shown as its effective config
/// (defaults filled in) and secrets redacted.
pub fn print_config(resolved: &Resolved, registry: &Registry) -> Result<String, Vec<Diagnostic>> {
    build_plan(resolved, registry)?;
    let mut errors = Errors(Vec::new());
    let loaded = load_all(&resolved.doc, registry, &mut errors);
    let mut json = resolved.doc.to_json();
    for (name, section) in [
        ("receivers", &loaded.receivers),
        ("processors", &loaded.processors),
        ("exporters", &loaded.exporters),
        ("extensions", &loaded.extensions),
    ] {
        if let Some(serde_json::Value::Object(map)) = json.get_mut(name) {
            for (key, value) in map.iter_mut() {
                if let Ok(id) = ComponentId::from_str(key) {
                    if let Some(c) = section.loaded.get(&id) {
                        *value = c.shown().clone();
                    }
                }
            }
        }
    }
    if let Some(t) = json.pointer_mut("/service/telemetry") {
        redact_all_strings_named(t, &["token", "password", "headers"]);
    }
    Ok(emit::to_yaml(&json))
}

fn redact_all_strings_named(v: &mut serde_json::Value, names: &[&str]) {
    if let serde_json::Value::Object(map) = v {
        for (k, child) in map.iter_mut() {
            if names.iter().any(|n| k.contains(n)) {
                *child = serde_json::Value::String(agentcol_component::config::REDACTED.into());
            } else {
                redact_all_strings_named(child, names);
            }
        }
    }
}

fn stability_yaml(out: &mut String, s: agentcol_component::SignalStability) {
    out.push_str("    stability:\n");
    for signal in Signal::ALL {
        if let Some(level) = s.get(signal) {
            out.push_str(&format!("      {signal}: {level}\n"));
        }
    }
}

/// The `components` listing (YAML, shaped like otelcol's).
pub fn components_yaml(registry: &Registry) -> String {
    let mut out = String::new();
    out.push_str("buildinfo:\n  command: agentcol\n  description: agentcol, a collector for AI coding-agent sessions\n");
    out.push_str(&format!("  version: {}\n", env!("CARGO_PKG_VERSION")));
    out.push_str("receivers:\n");
    for f in registry.receivers.values() {
        out.push_str(&format!(
            "  - name: {}\n    module: {}\n",
            f.type_name(),
            f.module()
        ));
        stability_yaml(&mut out, f.stability());
    }
    out.push_str("processors:\n");
    for f in registry.processors.values() {
        out.push_str(&format!(
            "  - name: {}\n    module: {}\n",
            f.type_name(),
            f.module()
        ));
        stability_yaml(&mut out, f.stability());
    }
    out.push_str("exporters:\n");
    for f in registry.exporters.values() {
        out.push_str(&format!(
            "  - name: {}\n    module: {}\n",
            f.type_name(),
            f.module()
        ));
        stability_yaml(&mut out, f.stability());
    }
    out.push_str("connectors: []\nextensions:\n");
    for f in registry.extensions.values() {
        out.push_str(&format!(
            "  - name: {}\n    module: {}\n    stability:\n      extension: Beta\n",
            f.type_name(),
            f.module()
        ));
    }
    out.push_str("providers:\n  - scheme: env\n  - scheme: file\n  - scheme: yaml\n");
    out
}

#[cfg(test)]
mod tests;
