//! The hook spool: hook calls that could not be delivered, kept under `<root>/spool/hook/` until
//! the receiver delivers them.
//!
//! The `agentcol hook` shim appends here when the collector is down, refuses, or does not answer
//! within its deadline; the receiver appends here when its pipeline refuses a call (so an agent
//! never sees a failed hook). The receiver drains the spool when it starts and then every
//! `spool.check_interval`, oldest first, deleting an entry only after the pipeline accepted it.
//!
//! * **Atomic**: an entry is written to a `.tmp-` file, synced, then renamed into place, so a
//!   reader sees whole entries or none.
//! * **Ordered**: names start with the zero-padded observation time, then pid and a sequence
//!   number, so name order is time order.
//! * **Exactly once**: an entry carries the time its call was observed, which is part of the
//!   observation, so one delivered twice (crash between the pipeline's accept and the delete,
//!   or a shim that timed out on a call the collector then accepted) is the same observation,
//!   and `dedupe` drops the repeat.
//! * **Bounded**: at most [`MAX_ENTRIES`] entries and [`MAX_BYTES`] in all; a call that does not
//!   fit is counted in the `dropped` file (one byte per call), which the receiver reports and
//!   clears, so a drop is never silent.
//! * **Private**: the directory is 0700 and entries 0600.
//!
//! Entry format: one JSON header line `{"v":1,"agent":"codex","time":<unix ns>}`, then the hook
//! body exactly as the agent sent it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use agentcol_component::agent::Agent;

/// Most entries the spool holds.
pub const MAX_ENTRIES: usize = 10_000;
/// Most bytes the spool holds.
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;
const SUFFIX: &str = ".hook";
const DROPPED: &str = "dropped";

/// Why a spool operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file-system call failed.
    #[error("{context} {path}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The spool is full; the call was counted as dropped.
    #[error("the hook spool is full ({MAX_ENTRIES} entries or {MAX_BYTES} bytes)")]
    Full,
    /// An entry is not in the spool format.
    #[error("spool entry {path} is unreadable: {reason}")]
    BadEntry {
        /// The entry.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

fn io<'a>(context: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        context,
        path: path.to_path_buf(),
        source,
    }
}

/// One spooled hook call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Where it is.
    pub path: PathBuf,
    /// The agent whose hook it was.
    pub agent: Agent,
    /// When the call was observed (Unix ns).
    pub time: u64,
    /// The body as the agent sent it.
    pub body: Vec<u8>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    v: u32,
    agent: String,
    time: u64,
}

/// The spool directory of a root.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn private_dir(dir: &Path) -> Result<(), SpoolError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("cannot create", dir))
    }
    #[cfg(not(unix))]
    {
        fs::create_dir_all(dir).map_err(io("cannot create", dir))
    }
}

fn private_file(path: &Path) -> Result<fs::File, SpoolError> {
    let mut o = fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path).map_err(io("cannot create", path))
}

impl Spool {
    /// The spool of `root` (`<root>/spool/hook`).
    pub fn under(root: &Path) -> Spool {
        Spool {
            dir: root.join("spool").join("hook"),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entries_on_disk(&self) -> Result<Vec<(PathBuf, u64)>, SpoolError> {
        let read = match fs::read_dir(&self.dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("cannot list", &self.dir)(e)),
        };
        let mut out = Vec::new();
        for e in read.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(SUFFIX) && !name.starts_with('.') {
                let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                out.push((e.path(), len));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Appends one call. Fails with [`SpoolError::Full`] (and counts the drop) when the bounds
    /// would be exceeded.
    pub fn append(&self, agent: Agent, time: u64, body: &[u8]) -> Result<PathBuf, SpoolError> {
        private_dir(&self.dir)?;
        let existing = self.entries_on_disk()?;
        let bytes: u64 = existing.iter().map(|(_, n)| n).sum();
        if existing.len() >= MAX_ENTRIES || bytes + body.len() as u64 > MAX_BYTES {
            self.count_drop();
            return Err(SpoolError::Full);
        }
        let header = serde_json::to_string(&Header {
            v: 1,
            agent: agent.as_str().to_string(),
            time,
        })
        .map_err(|e| SpoolError::BadEntry {
            path: self.dir.clone(),
            reason: e.to_string(),
        })?;
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("{time:020}-{:010}-{seq:06}{SUFFIX}", std::process::id());
        let tmp = self.dir.join(format!(".tmp-{name}"));
        let path = self.dir.join(&name);
        let write = || -> Result<(), SpoolError> {
            let mut f = private_file(&tmp)?;
            f.write_all(header.as_bytes())
                .and_then(|_| f.write_all(b"\n"))
                .and_then(|_| f.write_all(body))
                .and_then(|_| f.sync_all())
                .map_err(io("cannot write", &tmp))?;
            fs::rename(&tmp, &path).map_err(io("cannot rename", &tmp))
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(path)
    }

    fn count_drop(&self) {
        let path = self.dir.join(DROPPED);
        let mut o = fs::OpenOptions::new();
        o.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        if let Ok(mut f) = o.open(&path) {
            let _ = f.write_all(b".");
        }
    }

    /// How many calls were dropped because the spool was full, and resets the count.
    pub fn take_dropped(&self) -> u64 {
        let path = self.dir.join(DROPPED);
        let n = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if n > 0 {
            let _ = fs::remove_file(&path);
        }
        n
    }

    /// The spooled entries' paths, oldest first.
    pub fn list(&self) -> Result<Vec<PathBuf>, SpoolError> {
        Ok(self
            .entries_on_disk()?
            .into_iter()
            .map(|(p, _)| p)
            .collect())
    }

    /// Reads one entry.
    pub fn read(&self, path: &Path) -> Result<Entry, SpoolError> {
        let bytes = fs::read(path).map_err(io("cannot read", path))?;
        let bad = |reason: String| SpoolError::BadEntry {
            path: path.to_path_buf(),
            reason,
        };
        let nl = bytes
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| bad("no header line".into()))?;
        let header: Header =
            serde_json::from_slice(&bytes[..nl]).map_err(|e| bad(format!("bad header: {e}")))?;
        if header.v != 1 {
            return Err(bad(format!("unknown version {}", header.v)));
        }
        let agent = header
            .agent
            .parse::<Agent>()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Entry {
            path: path.to_path_buf(),
            agent,
            time: header.time,
            body: bytes[nl + 1..].to_vec(),
        })
    }

    /// Removes a delivered entry.
    pub fn remove(&self, path: &Path) -> Result<(), SpoolError> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("cannot remove", path)(e)),
        }
    }

    /// Moves an entry that can never be delivered to `bad/`, kept for inspection.
    pub fn quarantine(&self, path: &Path) -> Result<PathBuf, SpoolError> {
        let bad = self.dir.join("bad");
        private_dir(&bad)?;
        let to = bad.join(path.file_name().unwrap_or_default());
        fs::rename(path, &to).map_err(io("cannot move", path))?;
        Ok(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_in_time_order_and_privately() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::under(dir.path());
        spool.append(Agent::ClaudeCode, 20, b"{\"b\":2}").unwrap();
        spool
            .append(Agent::Codex, 10, b"{\"a\":1}\nnot json")
            .unwrap();
        let list = spool.list().unwrap();
        assert_eq!(list.len(), 2);
        let first = spool.read(&list[0]).unwrap();
        assert_eq!(
            (first.agent, first.time, first.body.as_slice()),
            (Agent::Codex, 10, &b"{\"a\":1}\nnot json"[..])
        );
        assert_eq!(spool.read(&list[1]).unwrap().agent, Agent::ClaudeCode);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(spool.dir()), 0o700);
            assert_eq!(mode(&list[0]), 0o600);
        }
        spool.remove(&list[0]).unwrap();
        spool.remove(&list[0]).unwrap();
        assert_eq!(spool.list().unwrap().len(), 1);
    }

    #[test]
    fn a_full_spool_refuses_and_counts_the_drop() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::under(dir.path());
        let big = vec![b'x'; (MAX_BYTES / 2) as usize];
        spool.append(Agent::Codex, 1, &big).unwrap();
        assert!(matches!(
            spool.append(Agent::Codex, 2, &big),
            Err(SpoolError::Full)
        ));
        assert_eq!(spool.take_dropped(), 1);
        assert_eq!(spool.take_dropped(), 0);
        assert_eq!(spool.list().unwrap().len(), 1);
    }

    #[test]
    fn unreadable_entries_are_reported_and_quarantined() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::under(dir.path());
        fs::create_dir_all(spool.dir()).unwrap();
        let p = spool.dir().join("00000000000000000001-1-1.hook");
        fs::write(&p, b"garbage without header").unwrap();
        assert!(matches!(spool.read(&p), Err(SpoolError::BadEntry { .. })));
        let moved = spool.quarantine(&p).unwrap();
        assert!(moved.exists());
        assert!(spool.list().unwrap().is_empty());
    }
}
