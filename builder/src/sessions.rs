//! `agentcol sessions list|show|replay|export`: read the session store.
//!
//! The store is `--db PATH`, else `<root>/agentcol.db`. It is opened read-only, so these
//! commands are safe next to a running collector. Every failure (no store, an unknown or
//! ambiguous id, a bad `--since`) is one line on stderr and exit status 1.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

/// `agentcol sessions …`.
#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// The store file (default: `<root>/agentcol.db`).
    #[arg(long, value_name = "PATH", global = true)]
    db: Option<PathBuf>,
    #[command(subcommand)]
    command: SessionsCommand,
}

#[derive(Debug, Subcommand)]
enum SessionsCommand {
    /// List sessions, oldest first.
    List {
        /// Only this agent (`codex`, `claude_code`).
        #[arg(long)]
        agent: Option<String>,
        /// Only sessions active since then: an RFC 3339 date or time (`2026-11-22`,
        /// `2026-11-22T14:00:00Z`) or a duration ago (`24h`, `7d`).
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Only sessions whose working directory starts with this (relative paths are taken
        /// from the current directory).
        #[arg(long, value_name = "PATH")]
        cwd: Option<String>,
        /// JSON (an array of session rows) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a session: its row, turns with prompts, tool calls and usage totals.
    Show {
        /// Session id, or a unique prefix of one.
        id: String,
    },
    /// Print a readable transcript of a session from the store alone.
    Replay {
        /// Session id, or a unique prefix of one.
        id: String,
    },
    /// Write a session's canonical records as JSON lines, in time order.
    Export {
        /// Session id, or a unique prefix of one.
        id: String,
        /// Write to this file (mode 0600) instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// Runs `agentcol sessions …`.
pub fn run(args: SessionsArgs) -> anyhow::Result<ExitCode> {
    imp::run(args)
}

#[cfg(not(feature = "exporter-sqlite"))]
mod imp {
    use super::*;

    pub fn run(_args: SessionsArgs) -> anyhow::Result<ExitCode> {
        anyhow::bail!(
            "this agentcol was built without the sqlite exporter (feature exporter-sqlite)"
        )
    }
}

#[cfg(feature = "exporter-sqlite")]
mod imp {
    use std::collections::BTreeMap;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use agentcol_exporter_sqlite::query::{
        rfc3339, Reader, Session, SessionFilter, ToolCall, Turn, UsageTotals,
    };
    use anyhow::Context;

    use super::*;

    pub fn run(args: SessionsArgs) -> anyhow::Result<ExitCode> {
        let db = match args.db {
            Some(p) => p,
            None => crate::root_dir()?.join("agentcol.db"),
        };
        let reader = Reader::open(&db)?;
        match args.command {
            SessionsCommand::List {
                agent,
                since,
                cwd,
                json,
            } => {
                let filter = SessionFilter {
                    agent,
                    since_ns: since.as_deref().map(parse_since).transpose()?,
                    cwd: cwd.map(absolute),
                };
                let sessions = reader.list_sessions(&filter)?;
                if json {
                    let mut text = serde_json::to_string_pretty(&sessions)?;
                    text.push('\n');
                    emit(&text)
                } else {
                    emit(&table(&sessions))
                }
            }
            SessionsCommand::Show { id } => {
                let s = reader.find_session(&id)?;
                let turns = reader.turns(&s.session_id)?;
                let tools = reader.tool_calls(&s.session_id)?;
                let usage = UsageTotals::of_session(&reader.usage(&s.session_id)?);
                emit(&show(&s, &turns, &tools, &usage))
            }
            SessionsCommand::Replay { id } => emit(&reader.replay(&id)?),
            SessionsCommand::Export { id, output } => {
                let s = reader.find_session(&id)?;
                match output {
                    None => {
                        let stdout = std::io::stdout();
                        let mut out = std::io::BufWriter::new(stdout.lock());
                        match reader.export(&s.session_id, &mut out) {
                            Ok(_) => Ok(ExitCode::SUCCESS),
                            Err(agentcol_exporter_sqlite::query::QueryError::Write(e))
                                if e.kind() == std::io::ErrorKind::BrokenPipe =>
                            {
                                Ok(ExitCode::SUCCESS)
                            }
                            Err(e) => Err(e.into()),
                        }
                    }
                    Some(path) => {
                        let file = create_private(&path)?;
                        let mut out = std::io::BufWriter::new(file);
                        let n = reader
                            .export(&s.session_id, &mut out)
                            .with_context(|| format!("exporting to {}", path.display()))?;
                        eprintln!(
                            "wrote {n} events of session {} to {}",
                            s.session_id,
                            path.display()
                        );
                        Ok(ExitCode::SUCCESS)
                    }
                }
            }
        }
    }

    /// Writes to stdout; a closed pipe (`| head`) is not an error.
    fn emit(text: &str) -> anyhow::Result<ExitCode> {
        let mut out = std::io::stdout().lock();
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
            Err(e) => Err(anyhow::Error::new(e).context("cannot write to stdout")),
        }
    }

    fn create_private(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        o.open(path)
            .with_context(|| format!("cannot create {}", path.display()))
    }

    fn absolute(p: String) -> String {
        if p.starts_with('/') || p.starts_with('~') {
            return p;
        }
        match std::env::current_dir() {
            Ok(d) => {
                let joined = d.join(&p);
                let s = joined.to_string_lossy().to_string();
                // `--cwd .` means the current directory itself.
                s.strip_suffix("/.").map(str::to_string).unwrap_or(s)
            }
            Err(_) => p,
        }
    }

    /// `--since`: an RFC 3339 time, a date (midnight UTC), or a duration before now.
    pub(super) fn parse_since(s: &str) -> anyhow::Result<u64> {
        let s = s.trim();
        if let Some(ns) = agentcol_component::agent::value::parse_rfc3339_nanos(s) {
            return Ok(ns);
        }
        let is_date = s.len() == 10
            && s.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        if is_date {
            if let Some(ns) =
                agentcol_component::agent::value::parse_rfc3339_nanos(&format!("{s}T00:00:00Z"))
            {
                return Ok(ns);
            }
        }
        let ago = humantime::parse_duration(s).map_err(|_| {
            anyhow::anyhow!(
                "--since {s:?} is neither an RFC 3339 date/time (2026-11-22, 2026-11-22T14:00:00Z) nor a duration (24h, 7d)"
            )
        })?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let at = now.saturating_sub(ago);
        Ok(u64::try_from(at.as_nanos()).unwrap_or(u64::MAX))
    }

    fn seconds(ns: Option<u64>) -> String {
        match ns {
            Some(ns) => {
                humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
            }
            None => "-".into(),
        }
    }

    fn table(sessions: &[Session]) -> String {
        let mut rows: Vec<[String; 7]> = vec![[
            "ID".into(),
            "AGENT".into(),
            "STARTED".into(),
            "TURNS".into(),
            "EVENTS".into(),
            "STATUS".into(),
            "CWD".into(),
        ]];
        for s in sessions {
            rows.push([
                s.session_id.clone(),
                s.agent.clone(),
                seconds(s.started_ns),
                s.turns.to_string(),
                s.events.to_string(),
                s.status.clone(),
                s.cwd.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        let mut widths = [0usize; 7];
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in &rows {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                let pad = widths[i].saturating_sub(c.chars().count());
                if i == 6 {
                    line.push_str(c);
                } else if i == 3 || i == 4 {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(c);
                    line.push_str("  ");
                } else {
                    line.push_str(c);
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        if sessions.is_empty() {
            out.push_str("(no sessions)\n");
        }
        out
    }

    fn first_line(s: &str, max: usize) -> String {
        let line = s.lines().next().unwrap_or("");
        let more = s.lines().nth(1).is_some();
        let mut out: String = line.chars().take(max).collect();
        if more || line.chars().count() > max {
            out.push('…');
        }
        out
    }

    fn show(s: &Session, turns: &[Turn], tools: &[ToolCall], usage: &UsageTotals) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let mut field = |label: &str, v: Option<String>| {
            if let Some(v) = v {
                let _ = writeln!(out, "{label:<8} {v}");
            }
        };
        field("session", Some(s.session_id.clone()));
        field("agent", Some(s.agent.clone()));
        field("model", s.model.clone());
        field("cwd", s.cwd.clone());
        field("git", s.git());
        field("started", s.started_ns.map(rfc3339));
        field("ended", s.ended_ns.map(rfc3339));
        field("status", Some(s.status.clone()));
        field("turns", Some(s.turns.to_string()));
        field("events", Some(s.events.to_string()));
        let ordinal: BTreeMap<&str, String> = turns
            .iter()
            .map(|t| {
                (
                    t.turn_id.as_str(),
                    t.ordinal
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "?".into()),
                )
            })
            .collect();
        if !turns.is_empty() {
            let _ = writeln!(out, "\nturns");
            for t in turns {
                let line = format!(
                    "  {:>3}  {}  {}  {}",
                    ordinal
                        .get(t.turn_id.as_str())
                        .map(String::as_str)
                        .unwrap_or("?"),
                    t.turn_id,
                    t.started_ns.map(rfc3339).unwrap_or_else(|| "-".into()),
                    t.prompt
                        .as_deref()
                        .map(|p| format!("> {}", first_line(p, 72)))
                        .unwrap_or_default()
                );
                let _ = writeln!(out, "{}", line.trim_end());
            }
        }
        if !tools.is_empty() {
            let _ = writeln!(out, "\ntool calls");
            for t in tools {
                let _ = writeln!(
                    out,
                    "  turn {:>3}  {}  {}  {}",
                    ordinal
                        .get(t.turn_id.as_str())
                        .map(String::as_str)
                        .unwrap_or("?"),
                    t.tool_name.as_deref().unwrap_or("?"),
                    t.call_id,
                    t.status_line()
                );
            }
        }
        if !usage.is_empty() {
            let _ = writeln!(out, "\nusage\n  {}", usage.summary());
        }
        out
    }
}

#[cfg(all(test, feature = "exporter-sqlite"))]
mod tests {
    use super::imp::parse_since;
    use super::*;
    use agentcol_component::agent::{
        attr, Agent, AgentRecord, EventKey, Kind, Merged, Precedence, Source,
    };
    use agentcol_component::opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    use agentcol_component::Logs;

    fn store(dir: &std::path::Path) -> PathBuf {
        let path = dir.join("agentcol.db");
        let mut store = agentcol_exporter_sqlite::Store::open(&path, Default::default()).unwrap();
        let p = Precedence::default();
        let mut records = Vec::new();
        for (kind, turn, item, body) in [
            (Kind::SessionStart, None, None, serde_json::Value::Null),
            (Kind::UserPrompt, Some("t1"), None, "hello".into()),
            (Kind::Message, Some("t1"), Some("m1"), "hi there".into()),
        ] {
            let k = EventKey::new(Agent::ClaudeCode, "sess-1", turn, item, kind).unwrap();
            let mut o = AgentRecord::observation(
                k,
                kind.event_name(),
                Source::Transcript,
                1_795_356_674_000_000_000,
            );
            o.set(attr::CWD, "/w");
            o.body = body;
            records.push(Merged::from_observation(&o, &p).to_record().to_log_record());
        }
        let logs = Logs {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        store.apply(&logs).unwrap();
        path
    }

    fn args(db: &std::path::Path, command: SessionsCommand) -> SessionsArgs {
        SessionsArgs {
            db: Some(db.to_path_buf()),
            command,
        }
    }

    #[test]
    fn export_to_a_private_file_and_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let db = store(dir.path());
        let out = dir.path().join("s.jsonl");
        let code = run(args(
            &db,
            SessionsCommand::Export {
                id: "sess".into(),
                output: Some(out.clone()),
            },
        ))
        .unwrap();
        assert_eq!(code, ExitCode::SUCCESS);
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(text.lines().count(), 3);
        for l in text.lines() {
            serde_json::from_str::<AgentRecord>(l).unwrap();
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let err = run(args(&db, SessionsCommand::Replay { id: "nope".into() })).unwrap_err();
        assert_eq!(format!("{err:#}"), "no session matches \"nope\"");
        let missing = dir.path().join("missing.db");
        let err = run(args(&missing, SessionsCommand::Show { id: "x".into() })).unwrap_err();
        assert!(
            format!("{err:#}").contains("no session store at"),
            "{err:#}"
        );
        let err = run(args(
            &db,
            SessionsCommand::List {
                agent: None,
                since: Some("soon".into()),
                cwd: None,
                json: false,
            },
        ))
        .unwrap_err();
        assert!(format!("{err:#}").contains("--since"), "{err:#}");
    }

    #[test]
    fn the_cli_parses_the_documented_shapes() {
        use clap::Parser;
        #[derive(Debug, clap::Parser)]
        struct T {
            #[command(subcommand)]
            c: Wrap,
        }
        #[derive(Debug, clap::Subcommand)]
        enum Wrap {
            Sessions(SessionsArgs),
        }
        for argv in [
            &[
                "t", "sessions", "list", "--agent", "codex", "--since", "24h", "--cwd", "/w",
                "--json",
            ][..],
            &["t", "sessions", "--db", "/x.db", "show", "abc"],
            &["t", "sessions", "replay", "abc", "--db", "/x.db"],
            &["t", "sessions", "export", "abc", "--output", "f.jsonl"],
        ] {
            T::try_parse_from(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        }
    }

    #[test]
    fn since_takes_times_dates_and_durations() {
        assert_eq!(
            parse_since("2026-11-22T14:11:14.530Z").unwrap(),
            1_795_356_674_530_000_000
        );
        assert_eq!(
            parse_since("2026-11-22").unwrap(),
            1_795_305_600_000_000_000
        );
        let day_ago = parse_since("24h").unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        assert!(now - day_ago >= 86_400_000_000_000 && now - day_ago < 86_500_000_000_000);
        assert!(parse_since("yesterday").is_err());
    }
}
