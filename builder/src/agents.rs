//! The agent-facing commands: `agentcol hook` (the command-hook shim) and `agentcol setup`.
//!
//! `hook` runs inside an agent's hook: it must print nothing and exit 0 whatever happens (Codex
//! reads exit code 2 as "block this tool call"), so it is dispatched before clap's usual error
//! handling, reads no configuration, and never panics outward.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use agentcol_component::agent::Agent;
use agentcol_receiver_hook::setup::{
    self, shell_quote, ClaudeHooks, Outcome, SetupOptions, Target,
};
use agentcol_receiver_hook::shim::{self, ShimOptions};
use anyhow::Context;
use clap::{Parser, ValueEnum};

/// `agentcol hook`.
#[derive(Debug, Parser)]
#[command(
    name = "agentcol hook",
    about = "Command-hook shim: posts the hook payload on stdin to agentcol; prints nothing, exits 0."
)]
pub struct HookArgs {
    /// Whose hook this is.
    #[arg(long, value_enum)]
    agent: AgentArg,
    /// The hook receiver's base URL.
    #[arg(long, default_value = "http://127.0.0.1:4319")]
    url: String,
    /// The root whose spool takes undelivered calls (default: AGENTCOL_ROOT or
    /// ~/.agents/otel/collector).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Deadline for the whole post, in milliseconds.
    #[arg(long, default_value_t = 100)]
    timeout_ms: u64,
    /// Say on stderr what happened (for debugging; agents must not be given this flag).
    #[arg(long)]
    verbose: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AgentArg {
    Codex,
    Claude,
}

impl From<AgentArg> for Agent {
    fn from(a: AgentArg) -> Agent {
        match a {
            AgentArg::Codex => Agent::Codex,
            AgentArg::Claude => Agent::ClaudeCode,
        }
    }
}

/// Runs the shim from the raw arguments (`agentcol hook …`). Always exit code 0.
pub fn hook_main(args: impl Iterator<Item = std::ffi::OsString>) -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::iter::once("agentcol hook".into())
        .chain(args)
        .collect();
    let _ = std::panic::catch_unwind(move || {
        let a = match HookArgs::try_parse_from(args) {
            Ok(a) => a,
            // Only a person asks for help; anything else stays silent.
            Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
                let _ = e.print();
                return;
            }
            Err(_) => return,
        };
        let agent: Agent = a.agent.into();
        let root = a.root.clone().or_else(|| crate::root_dir().ok());
        let segment = match agent {
            Agent::Codex => "codex",
            Agent::ClaudeCode => "claude",
        };
        let options = ShimOptions {
            agent,
            url: format!("{}/hook/{segment}", a.url.trim_end_matches('/')),
            root,
            timeout: Duration::from_millis(a.timeout_ms),
            token: std::env::var("AGENTCOL_HOOK_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
        };
        let d = shim::run(&options, std::io::stdin().lock());
        if a.verbose {
            eprintln!("agentcol hook: {d:?}");
        }
    });
    ExitCode::SUCCESS
}

/// `agentcol setup`.
#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// Which agents: codex, claude or all.
    #[arg(value_enum, default_value = "all")]
    which: Which,
    /// Print the changes as a diff; touch nothing.
    #[arg(long)]
    dry_run: bool,
    /// Remove what setup installed (the exact original bytes when the files were not edited
    /// since).
    #[arg(long)]
    undo: bool,
    /// The codex binary used to write hook trust (default: `codex` on PATH).
    #[arg(long, value_name = "PATH")]
    codex: Option<PathBuf>,
    /// Base URL of agentcol's OTLP/HTTP receiver (default: from the configuration).
    #[arg(long, value_name = "URL")]
    otlp_url: Option<String>,
    /// Base URL of agentcol's hook receiver (default: from the configuration).
    #[arg(long, value_name = "URL")]
    hook_url: Option<String>,
    /// Claude Code hooks as `http` (no process per call) or `command` (the shim for every
    /// event, so calls made while the collector is down are spooled, not lost).
    #[arg(long, value_enum, default_value = "http")]
    claude_hooks: ClaudeHooksArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ClaudeHooksArg {
    Http,
    Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Codex,
    Claude,
    All,
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn home_dir(var: &str, default: &str) -> anyhow::Result<PathBuf> {
    if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(v));
    }
    let home =
        std::env::var_os("HOME").with_context(|| format!("neither {var} nor HOME is set"))?;
    Ok(PathBuf::from(home).join(default))
}

fn http_base(endpoint: &str) -> String {
    let e = endpoint.trim();
    if e.starts_with("http://") || e.starts_with("https://") {
        return e.trim_end_matches('/').to_string();
    }
    // An otelcol-style listen address: all-interfaces binds are reached on loopback.
    let e = e
        .strip_prefix("0.0.0.0")
        .map(|p| format!("127.0.0.1{p}"))
        .unwrap_or_else(|| e.to_string());
    let e = if e.starts_with(':') {
        format!("127.0.0.1{e}")
    } else {
        e
    };
    format!("http://{e}")
}

/// Runs `agentcol setup`.
pub fn setup_main(
    args: SetupArgs,
    root: PathBuf,
    endpoints: (Option<String>, Option<String>),
) -> anyhow::Result<ExitCode> {
    let targets = match args.which {
        Which::Codex => vec![Target::Codex],
        Which::Claude => vec![Target::Claude],
        Which::All => vec![Target::Codex, Target::Claude],
    };
    let otlp_http = match (args.otlp_url, endpoints.0) {
        (Some(u), _) => u.trim_end_matches('/').to_string(),
        (None, Some(e)) => http_base(&e),
        (None, None) => anyhow::bail!(
            "the configuration has no otlp receiver with http: give --otlp-url, or add one"
        ),
    };
    let hook_url = match (args.hook_url, endpoints.1) {
        (Some(u), _) => u.trim_end_matches('/').to_string(),
        (None, Some(e)) => http_base(&e),
        (None, None) => anyhow::bail!(
            "the configuration has no hook receiver: give --hook-url, or add `hook` to it"
        ),
    };
    let exe = std::env::current_exe()
        .context("cannot tell where this agentcol binary is (needed for the hook command)")?;
    let mut hook_command = format!("{} hook", shell_quote(&exe.display().to_string()));
    if hook_url != "http://127.0.0.1:4319" {
        hook_command.push_str(&format!(" --url {}", shell_quote(&hook_url)));
    }
    if std::env::var_os("AGENTCOL_ROOT").is_some_and(|r| !r.is_empty()) {
        hook_command.push_str(&format!(
            " --root {}",
            shell_quote(&root.display().to_string())
        ));
    }
    let options = SetupOptions {
        targets,
        dry_run: args.dry_run,
        undo: args.undo,
        root,
        codex_home: home_dir("CODEX_HOME", ".codex")?,
        claude_dir: home_dir("CLAUDE_CONFIG_DIR", ".claude")?,
        hook_command,
        otlp_http,
        hook_url,
        codex_bin: args.codex.or_else(|| on_path("codex")),
        claude_hooks: match args.claude_hooks {
            ClaudeHooksArg::Http => ClaudeHooks::Http,
            ClaudeHooksArg::Command => ClaudeHooks::Command,
        },
    };
    let mut out = std::io::stdout().lock();
    let reports = setup::run(&options, &mut out)?;
    for r in &reports {
        let what = match (&r.outcome, options.dry_run) {
            (Outcome::Unchanged, _) => "unchanged",
            (Outcome::Changed, true) => "would change",
            (Outcome::Changed, false) => "changed",
            (Outcome::Removed, true) => "would remove",
            (Outcome::Removed, false) => "removed",
        };
        match &r.note {
            Some(n) => println!("  {what}: {} ({n})", r.path.display()),
            None => println!("  {what}: {}", r.path.display()),
        }
    }
    if !options.dry_run && !options.undo {
        println!(
            "backups and the undo manifest: {}",
            options.root.join("backups").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::http_base;

    #[test]
    fn listen_addresses_become_loopback_urls() {
        assert_eq!(http_base("127.0.0.1:4318"), "http://127.0.0.1:4318");
        assert_eq!(http_base("0.0.0.0:4319"), "http://127.0.0.1:4319");
        assert_eq!(http_base(":4319"), "http://127.0.0.1:4319");
        assert_eq!(http_base("http://h:1/"), "http://h:1");
    }
}
