//! `agentcol`: the collector binary.
//!
//! `agentcol --config f.yaml` runs like `otelcol --config f.yaml`. Subcommands: `validate`,
//! `components`, `print-config`. With no `--config`, `<root>/config.yaml` is used if present,
//! else the embedded `config-examples/default.yaml`. The root is `AGENTCOL_ROOT` or
//! `~/.agents/otel/collector`, created with mode 0700.

mod agents;
mod config;
mod plan;
mod registry;
mod service;
mod sessions;
mod status;
#[cfg(test)]
mod testkit;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::registry::Registry;

/// Decoding OTLP allocates one small object per attribute; with glibc's allocator malloc and
/// free took ~40% of the collector's CPU under load (perf, BENCHMARKS.md). mimalloc is faster for
/// that pattern and returns memory to the OS well.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "agentcol",
    version,
    about = "Capture every AI coding-agent session, exactly once, and forward it anywhere."
)]
struct Cli {
    /// A configuration source: a file path, `file:path`, `env:VAR` or `yaml:a::b: value`.
    /// Repeat to merge several (maps merge, lists are replaced).
    #[arg(long = "config", global = true, value_name = "URI")]
    config: Vec<String>,
    /// Override one setting after merging, e.g. `--set processors.batch.timeout=3s`.
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    set: Vec<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the collector (the default).
    Run,
    /// Check the configuration, report every fault, exit 1 if there is any.
    Validate,
    /// List the components compiled into this binary.
    Components,
    /// Print the merged, expanded configuration with defaults filled in and secrets redacted.
    PrintConfig,
    /// Read the session store: `list`, `show`, `replay`, `export`.
    Sessions(sessions::SessionsArgs),
    /// Show what the state says: `--dedupe` prints each dedupe instance's decisions.
    Status(status::StatusArgs),
    /// Point Codex and Claude Code at agentcol (OTLP and hooks); `--undo` reverts exactly.
    Setup(agents::SetupArgs),
    /// The command-hook shim agents run: posts stdin to the hook receiver, prints nothing,
    /// exits 0 (see `agentcol hook --help`).
    Hook {
        /// `--agent codex|claude [--url URL] [--root DIR] [--timeout-ms N]`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// The state root: `AGENTCOL_ROOT`, else `~/.agents/otel/collector`.
fn root_dir() -> anyhow::Result<PathBuf> {
    if let Some(r) = std::env::var_os("AGENTCOL_ROOT").filter(|r| !r.is_empty()) {
        return Ok(PathBuf::from(r));
    }
    let home = std::env::var_os("HOME").context("neither AGENTCOL_ROOT nor HOME is set")?;
    Ok(PathBuf::from(home).join(".agents/otel/collector"))
}

/// Creates the root (and parents) and makes it private to the user.
fn prepare_root(root: &PathBuf) -> anyhow::Result<()> {
    std::fs::create_dir_all(root)
        .with_context(|| format!("cannot create the root directory {}", root.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(root)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode != 0o700 {
            if mode & 0o077 != 0 {
                tracing::warn!(root = %root.display(), mode = format!("{mode:o}"), "root directory was accessible to others; restricting it to 0700");
            }
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot set mode 0700 on {}", root.display()))?;
        }
    }
    Ok(())
}

fn init_logging(level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

fn print_diagnostics(diags: &[config::Diagnostic]) {
    for d in diags {
        eprintln!("Error: {d}");
    }
}

fn main() -> ExitCode {
    // The shim runs inside agents' hooks: it must never print a usage error or exit non-zero,
    // so it is dispatched before clap sees the arguments.
    let args = std::env::args_os();
    if std::env::args_os().nth(1).is_some_and(|a| a == "hook") {
        return agents::hook_main(args.skip(2));
    }
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    let registry = Registry::builtin();
    let command = cli.command.unwrap_or(Command::Run);
    if let Command::Components = command {
        print!("{}", config::components_yaml(&registry));
        return Ok(ExitCode::SUCCESS);
    }
    let command = match command {
        Command::Sessions(args) => return sessions::run(args),
        Command::Status(args) => return status::run(args),
        other => other,
    };
    let root = root_dir()?;
    let resolved = match config::resolve(&root, &cli.config, &cli.set) {
        Ok(r) => r,
        Err(diags) => {
            print_diagnostics(&diags);
            return Ok(ExitCode::FAILURE);
        }
    };
    let command = match command {
        Command::Setup(args) => {
            prepare_root(&root)?;
            return agents::setup_main(args, root, resolved.agent_endpoints());
        }
        Command::Hook { .. } => return Ok(agents::hook_main(std::env::args_os().skip(2))),
        other => other,
    };
    match command {
        Command::Validate => match config::build_plan(&resolved, &registry) {
            Ok(_) => Ok(ExitCode::SUCCESS),
            Err(diags) => {
                print_diagnostics(&diags);
                Ok(ExitCode::FAILURE)
            }
        },
        Command::PrintConfig => match config::print_config(&resolved, &registry) {
            Ok(text) => {
                print!("{text}");
                Ok(ExitCode::SUCCESS)
            }
            Err(diags) => {
                print_diagnostics(&diags);
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Run => {
            let plan = match config::build_plan(&resolved, &registry) {
                Ok(p) => p,
                Err(diags) => {
                    print_diagnostics(&diags);
                    return Ok(ExitCode::FAILURE);
                }
            };
            init_logging(&plan.telemetry.log_level);
            prepare_root(&root)?;
            tracing::info!(version = env!("CARGO_PKG_VERSION"), config = %resolved.source, root = %root.display(), "Starting agentcol");
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            match runtime.block_on(service::run(plan, root)) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "collector server run finished with error");
                    eprintln!("Error: {e:#}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Components => Ok(ExitCode::SUCCESS),
        Command::Sessions(_) => Ok(ExitCode::SUCCESS),
        Command::Status(_) | Command::Setup(_) | Command::Hook { .. } => Ok(ExitCode::SUCCESS),
    }
}
