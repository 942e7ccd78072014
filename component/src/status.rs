//! Component status: one event model that feeds health checks, `status`, and shutdown decisions.
//!
//! Each component reports through its [`StatusReporter`]; the service keeps every report on one
//! [`StatusBoard`]. Transitions are checked by [`ComponentStatus::can_become`]; an invalid one is
//! logged and ignored rather than silently dropped.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use tokio::sync::watch;

use crate::id::{ComponentId, ComponentKind};

/// Where a component stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentStatus {
    /// Created, starting.
    Starting,
    /// Working normally.
    Ok,
    /// Working, but something is wrong that may clear by itself (destination down, retrying).
    Degraded(String),
    /// Not working, and will not recover without intervention.
    Failed(String),
    /// Shutting down (draining).
    Stopping,
    /// Shut down.
    Stopped,
}

impl ComponentStatus {
    /// Short name: `starting`, `ok`, `degraded`, `failed`, `stopping`, `stopped`.
    pub fn name(&self) -> &'static str {
        match self {
            ComponentStatus::Starting => "starting",
            ComponentStatus::Ok => "ok",
            ComponentStatus::Degraded(_) => "degraded",
            ComponentStatus::Failed(_) => "failed",
            ComponentStatus::Stopping => "stopping",
            ComponentStatus::Stopped => "stopped",
        }
    }

    /// The reason, for degraded and failed.
    pub fn reason(&self) -> Option<&str> {
        match self {
            ComponentStatus::Degraded(r) | ComponentStatus::Failed(r) => Some(r),
            _ => None,
        }
    }

    /// Whether moving from `self` to `next` is allowed: `stopped` is final, `failed` only goes
    /// on to stopping or stopped, and nothing returns to `starting`.
    pub fn can_become(&self, next: &ComponentStatus) -> bool {
        use ComponentStatus::*;
        match (self, next) {
            (Stopped, _) => false,
            (_, Starting) => false,
            (Failed(_), Stopping | Stopped) => true,
            (Failed(_), _) => false,
            (Stopping, Stopped) => true,
            (Stopping, Failed(_)) => true,
            (Stopping, _) => false,
            _ => true,
        }
    }
}

/// The service as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    /// Components are being built and started.
    Starting,
    /// Everything started: data flows.
    Running,
    /// Shutdown has begun.
    Stopping,
}

/// One component's last report.
#[derive(Debug, Clone)]
pub struct StatusEntry {
    /// Its status.
    pub status: ComponentStatus,
    /// When it was reported.
    pub since: SystemTime,
}

#[derive(Debug)]
struct BoardInner {
    service: ServiceState,
    started_at: SystemTime,
    components: BTreeMap<(ComponentKind, ComponentId), StatusEntry>,
}

/// Every component's status, shared by the service and its extensions.
#[derive(Debug, Clone)]
pub struct StatusBoard {
    inner: Arc<RwLock<BoardInner>>,
    changed: Arc<watch::Sender<u64>>,
}

impl Default for StatusBoard {
    fn default() -> Self {
        Self::new()
    }
}

impl StatusBoard {
    /// An empty board, service starting.
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(0);
        StatusBoard {
            inner: Arc::new(RwLock::new(BoardInner {
                service: ServiceState::Starting,
                started_at: SystemTime::now(),
                components: BTreeMap::new(),
            })),
            changed: Arc::new(tx),
        }
    }

    fn write<R>(&self, f: impl FnOnce(&mut BoardInner) -> R) -> R {
        let r = match self.inner.write() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        };
        self.changed.send_modify(|n| *n += 1);
        r
    }

    fn read<R>(&self, f: impl FnOnce(&BoardInner) -> R) -> R {
        match self.inner.read() {
            Ok(g) => f(&g),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// A reporter for one component, registered as `starting`.
    pub fn reporter(&self, kind: ComponentKind, id: ComponentId) -> StatusReporter {
        self.write(|b| {
            b.components.insert(
                (kind, id.clone()),
                StatusEntry {
                    status: ComponentStatus::Starting,
                    since: SystemTime::now(),
                },
            )
        });
        StatusReporter {
            board: self.clone(),
            kind,
            id,
        }
    }

    /// Sets the service state.
    pub fn set_service(&self, state: ServiceState) {
        self.write(|b| {
            if state == ServiceState::Running {
                b.started_at = SystemTime::now();
            }
            b.service = state;
        });
    }

    /// The service state.
    pub fn service(&self) -> ServiceState {
        self.read(|b| b.service)
    }

    /// When the service entered `Running` (or was created).
    pub fn started_at(&self) -> SystemTime {
        self.read(|b| b.started_at)
    }

    /// Every component's status.
    pub fn snapshot(&self) -> Vec<(ComponentKind, ComponentId, StatusEntry)> {
        self.read(|b| {
            b.components
                .iter()
                .map(|((k, id), e)| (*k, id.clone(), e.clone()))
                .collect()
        })
    }

    /// A receiver that changes whenever any status does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// How one component reports its status.
#[derive(Debug, Clone)]
pub struct StatusReporter {
    board: StatusBoard,
    kind: ComponentKind,
    id: ComponentId,
}

impl StatusReporter {
    /// Reports `status`, if the transition from the current one is allowed (otherwise logs it).
    pub fn report(&self, status: ComponentStatus) {
        let key = (self.kind, self.id.clone());
        let id = &self.id;
        self.board.write(|b| {
            let entry = b.components.entry(key).or_insert(StatusEntry {
                status: ComponentStatus::Starting,
                since: SystemTime::now(),
            });
            if entry.status == status {
                return;
            }
            if entry.status.can_become(&status) {
                match &status {
                    ComponentStatus::Degraded(r) => tracing::warn!(component = %id, reason = %r, "component degraded"),
                    ComponentStatus::Failed(r) => tracing::error!(component = %id, reason = %r, "component failed"),
                    ComponentStatus::Ok if matches!(entry.status, ComponentStatus::Degraded(_)) => {
                        tracing::info!(component = %id, "component recovered")
                    }
                    _ => {}
                }
                *entry = StatusEntry {
                    status,
                    since: SystemTime::now(),
                };
            } else {
                tracing::debug!(component = %id, from = entry.status.name(), to = status.name(), "ignored invalid status transition");
            }
        });
    }

    /// Shorthand for `report(Ok)`.
    pub fn ok(&self) {
        self.report(ComponentStatus::Ok);
    }

    /// Shorthand for `report(Degraded(reason))`.
    pub fn degraded(&self, reason: impl Into<String>) {
        self.report(ComponentStatus::Degraded(reason.into()));
    }

    /// Shorthand for `report(Failed(reason))`.
    pub fn failed(&self, reason: impl Into<String>) {
        self.report(ComponentStatus::Failed(reason.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ComponentStatus::*;

    #[test]
    fn transitions_follow_the_rules() {
        assert!(Starting.can_become(&Ok));
        assert!(Ok.can_become(&Degraded("x".into())));
        assert!(Degraded("x".into()).can_become(&Ok));
        assert!(!Failed("x".into()).can_become(&Ok));
        assert!(Failed("x".into()).can_become(&Stopping));
        assert!(!Stopped.can_become(&Ok));
        assert!(!Ok.can_become(&Starting));
        assert!(!Stopping.can_become(&Ok));
    }

    #[test]
    fn board_keeps_last_valid_report() {
        let board = StatusBoard::new();
        let r = board.reporter(ComponentKind::Exporter, "otlp".parse().unwrap());
        r.ok();
        r.failed("boom");
        r.ok(); // ignored: failed does not come back
        let snap = board.snapshot();
        assert_eq!(snap[0].2.status, Failed("boom".into()));
    }
}
