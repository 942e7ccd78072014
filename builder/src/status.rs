//! `agentcol status`: what the collector's state files say.
//!
//! Everything is opened read-only, so it is safe next to a running collector. One section so
//! far, `--dedupe` (also the default): for each `<root>/state/dedupe/*.db`, the totals per
//! decision, the keys pending emission, and the last `--limit` decisions, one line each.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;

/// `agentcol status …`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The dedupe processors' decisions (shown by default while it is the only section).
    #[arg(long)]
    dedupe: bool,
    /// How many of the latest decisions to print per dedupe instance.
    #[arg(long, value_name = "N", default_value_t = 20)]
    limit: usize,
}

pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let root = crate::root_dir()?;
    let _ = args.dedupe;
    let (text, ok) = dedupe_section(&root, args.limit);
    print!("{text}");
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The dedupe section, and whether every state file could be read.
#[cfg(feature = "processor-dedupe")]
fn dedupe_section(root: &Path, limit: usize) -> (String, bool) {
    use agentcol_processor_dedupe as dedupe;
    let mut out = String::new();
    let files = dedupe::state_files(root);
    let dir = dedupe::state_dir(root);
    if files.is_empty() {
        let _ = writeln!(out, "dedupe: no state under {}", dir.display());
        return (out, true);
    }
    let mut ok = true;
    for file in files {
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let _ = writeln!(out, "dedupe {name} ({})", file.display());
        let read = (|| -> Result<(), dedupe::StateError> {
            let counts = dedupe::decision_counts(&file)?;
            let pending = dedupe::pending_count(&file)?;
            let totals: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let _ = writeln!(out, "  totals: {}, pending {pending}", totals.join(", "));
            let recent = dedupe::recent_decisions(&file, limit)?;
            if limit > 0 {
                let _ = writeln!(out, "  last {} decisions:", recent.len());
                for d in recent {
                    let _ = writeln!(out, "    {d}");
                }
            }
            Ok(())
        })();
        if let Err(e) = read {
            ok = false;
            let _ = writeln!(out, "  error: {e}");
        }
    }
    (out, ok)
}

#[cfg(not(feature = "processor-dedupe"))]
fn dedupe_section(_root: &Path, _limit: usize) -> (String, bool) {
    ("dedupe: not compiled into this binary\n".to_string(), true)
}

#[cfg(all(test, feature = "processor-dedupe"))]
mod tests {
    use super::*;
    use agentcol_component::agent::{Agent, AgentRecord, EventKey, Kind, Source};
    use agentcol_component::opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    use agentcol_component::{
        async_trait, Component, ComponentKind, ConsumeError, Consumer, Host, Logs,
    };
    use agentcol_processor_dedupe::{DedupeConfig, DedupeProcessor};

    struct Sink;

    #[async_trait]
    impl Consumer<Logs> for Sink {
        async fn consume(&self, _: Logs) -> Result<(), ConsumeError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn prints_totals_and_the_last_decisions_of_each_instance() {
        let dir = tempfile::tempdir().unwrap();
        let (text, ok) = dedupe_section(dir.path(), 5);
        assert!(ok && text.starts_with("dedupe: no state under"), "{text}");

        let host = Host::for_test(ComponentKind::Processor, "dedupe/store", dir.path());
        let p = DedupeProcessor::new(
            &host,
            "logs",
            &DedupeConfig::default(),
            std::sync::Arc::new(Sink),
        )
        .unwrap();
        let key = EventKey::new(Agent::Codex, "t", Some("u"), Some("c"), Kind::ToolCall).unwrap();
        let rec = AgentRecord::observation(key, "agent.tool.call", Source::Hook, 1).to_log_record();
        let logs = Logs {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![rec.clone(), rec],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        p.consume(logs).await.unwrap();
        p.shutdown().await.unwrap();

        let (text, ok) = dedupe_section(dir.path(), 5);
        assert!(ok, "{text}");
        assert!(text.contains("dedupe dedupe_store ("), "{text}");
        assert!(text.contains("unique 1, duplicate 1, merged 0"), "{text}");
        assert!(text.contains("pending 0"), "{text}");
        assert!(text.contains("last 2 decisions:"), "{text}");
        assert!(text.contains("duplicate rev=0"), "{text}");
        assert!(text.contains("v1|codex|t|u|c|tool.call"), "{text}");
    }
}
