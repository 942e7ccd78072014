//! Store errors, and which of them a sender should retry.

use std::path::PathBuf;

use agentcol_component::ConsumeError;
use rusqlite::ErrorCode;

/// Why the store could not be opened, written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An SQLite call failed.
    #[error("{context}: {source}")]
    Sqlite {
        /// What was being done.
        context: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A file-system call failed (directories, modes).
    #[error("{context} {}: {source}", path.display())]
    Io {
        /// What was being done.
        context: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file was written by a newer agentcol.
    #[error(
        "{} has store schema version {found}, but this agentcol knows versions up to {supported}: \
         use a newer agentcol (or another `path`)",
        path.display()
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// The newest this binary knows.
        supported: i64,
    },
    /// There is no store file to read.
    #[error("no session store at {} (the file does not exist)", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file is not an agentcol store at the schema this reader needs.
    #[error("{} is not an agentcol store: {reason}", path.display())]
    NotAStore {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// WAL mode could not be enabled (a file system without shared memory, for example).
    #[error("cannot put {} in WAL mode (journal mode is {mode:?})", path.display())]
    NoWal {
        /// The file.
        path: PathBuf,
        /// What SQLite answered.
        mode: String,
    },
    /// The exporter is not started (or already shut down).
    #[error("the sqlite store is not open (the exporter is not started or is shutting down)")]
    NotOpen,
    /// Stored data that the store itself wrote could not be read back.
    #[error("stored {what} is unreadable: {reason}")]
    Corrupt {
        /// Which data.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

impl StoreError {
    pub(crate) fn sql(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + Copy {
        move |source| StoreError::Sqlite { context, source }
    }

    /// Whether the same write can succeed later without anyone changing the data: locks,
    /// I/O errors, a full disk, memory pressure, a store that is not open yet.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Sqlite { source, .. } => sqlite_retryable(source),
            StoreError::Io { .. } | StoreError::NotOpen => true,
            StoreError::TooNew { .. }
            | StoreError::Missing { .. }
            | StoreError::NotAStore { .. }
            | StoreError::NoWal { .. }
            | StoreError::Corrupt { .. } => false,
        }
    }
}

fn sqlite_retryable(e: &rusqlite::Error) -> bool {
    match e.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::OutOfMemory
            | ErrorCode::CannotOpen
            | ErrorCode::FileLockingProtocolFailed
            // A read-only file or directory is an operator's fix away from working.
            | ErrorCode::ReadOnly,
        ) => true,
        _ => false,
    }
}

impl From<StoreError> for ConsumeError {
    fn from(e: StoreError) -> Self {
        if e.is_retryable() {
            ConsumeError::retryable(format!("sqlite: {e}"))
        } else {
            ConsumeError::permanent(format!("sqlite: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_and_io_are_retryable_the_rest_is_not() {
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        let e = StoreError::Sqlite {
            context: "commit",
            source: busy,
        };
        assert!(ConsumeError::from(e).is_retryable());
        let constraint = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            None,
        );
        let e = StoreError::Sqlite {
            context: "insert",
            source: constraint,
        };
        assert!(!ConsumeError::from(e).is_retryable());
        assert!(StoreError::NotOpen.is_retryable());
    }
}
