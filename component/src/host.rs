//! What the service gives each component when it creates it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::id::{ComponentId, ComponentKind};
use crate::status::{StatusBoard, StatusReporter};
use crate::telemetry::Telemetry;

/// Host services for one component instance.
#[derive(Debug, Clone)]
pub struct Host {
    id: ComponentId,
    kind: ComponentKind,
    root: Arc<PathBuf>,
    status: StatusReporter,
    board: StatusBoard,
    telemetry: Telemetry,
    shutdown: CancellationToken,
}

impl Host {
    /// Built by the service (and by tests) for one component.
    pub fn new(
        kind: ComponentKind,
        id: ComponentId,
        root: Arc<PathBuf>,
        board: StatusBoard,
        telemetry: Telemetry,
        shutdown: CancellationToken,
    ) -> Self {
        let status = board.reporter(kind, id.clone());
        Host {
            id,
            kind,
            root,
            status,
            board,
            telemetry,
            shutdown,
        }
    }

    /// A host for tests: a fresh board and telemetry, the given root.
    pub fn for_test(kind: ComponentKind, id: &str, root: &Path) -> Self {
        let id = id
            .parse()
            .unwrap_or_else(|_| ComponentId::new("test").unwrap_or_else(|_| unreachable!()));
        Host::new(
            kind,
            id,
            Arc::new(root.to_path_buf()),
            StatusBoard::new(),
            Telemetry::new(),
            CancellationToken::new(),
        )
    }

    /// This component's id.
    pub fn id(&self) -> &ComponentId {
        &self.id
    }

    /// This component's kind.
    pub fn kind(&self) -> ComponentKind {
        self.kind
    }

    /// The canonical root directory (`~/.agents/otel/collector` unless overridden), already
    /// created with mode 0700. Components keep their state under it.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where this component reports its status.
    pub fn status(&self) -> &StatusReporter {
        &self.status
    }

    /// Every component's status (for extensions such as health checks).
    pub fn status_board(&self) -> &StatusBoard {
        &self.board
    }

    /// Internal metrics.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Cancelled when the collector begins to stop. Use it to end long waits (polls, sleeps
    /// between reconnects); delivery of accepted data must still complete in `shutdown`.
    pub fn shutdown_signal(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}
