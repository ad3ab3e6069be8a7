//! The role tasks of one process, watched.
//!
//! A role that stops, whether with an error it cannot recover from or a
//! panic, leaves a process that still takes bids and chat messages nobody
//! answers. So the first role to stop makes `/readyz` fail (traffic moves
//! elsewhere) and, after `role_exit_delay_ms`, ends the process with an error
//! (an orchestrator restarts it).

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::task::JoinSet;

/// Whether every role of the process still runs; cheap to clone and read.
#[derive(Clone, Debug)]
pub struct RolesAlive(Arc<AtomicBool>);

impl RolesAlive {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// How a role ended.
#[derive(Debug, PartialEq, Eq)]
pub struct RoleStopped {
    pub role: &'static str,
    pub reason: String,
}

impl Display for RoleStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the {} role stopped: {}", self.role, self.reason)
    }
}

pub struct Roles {
    tasks: JoinSet<RoleStopped>,
    /// The role of each task, for a task that panicked.
    names: HashMap<tokio::task::Id, &'static str>,
    alive: RolesAlive,
}

impl Default for Roles {
    fn default() -> Self {
        Roles {
            tasks: JoinSet::new(),
            names: HashMap::new(),
            alive: RolesAlive(Arc::new(AtomicBool::new(true))),
        }
    }
}

impl Roles {
    /// Runs `task` as a member of `role`. A role is meant to run until the
    /// process ends, so any return counts as stopping.
    pub fn spawn<E: Display>(
        &mut self,
        role: &'static str,
        task: impl Future<Output = Result<(), E>> + Send + 'static,
    ) {
        let handle = self.tasks.spawn(async move {
            let reason = match task.await {
                Ok(()) => "it returned".to_string(),
                Err(e) => e.to_string(),
            };
            RoleStopped { role, reason }
        });
        self.names.insert(handle.id(), role);
    }

    pub fn alive(&self) -> RolesAlive {
        self.alive.clone()
    }

    /// Waits until a role stops and marks the process not alive. Pending
    /// forever when no role runs (a gateway-only process).
    pub async fn stopped(&mut self) -> RoleStopped {
        let stopped = match self.tasks.join_next().await {
            Some(Ok(stopped)) => stopped,
            Some(Err(e)) => RoleStopped {
                role: self.names.get(&e.id()).copied().unwrap_or("unknown"),
                reason: if e.is_panic() {
                    format!("it panicked: {}", panic_message(e.into_panic()))
                } else {
                    "it was cancelled".to_string()
                },
            },
            None => std::future::pending().await,
        };
        self.alive.0.store(false, Ordering::Relaxed);
        stopped
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_error_stops_the_roles() {
        let mut roles = Roles::default();
        let alive = roles.alive();
        roles.spawn("auction", async { Err::<(), _>("the bus closed") });
        roles.spawn("chat", std::future::pending::<Result<(), String>>());
        let stopped = roles.stopped().await;
        assert_eq!(
            stopped,
            RoleStopped {
                role: "auction",
                reason: "the bus closed".into()
            }
        );
        assert!(!alive.get());
    }

    #[tokio::test]
    async fn a_panic_stops_the_roles_with_its_message() {
        let mut roles = Roles::default();
        let alive = roles.alive();
        assert!(alive.get());
        roles.spawn("chat", async move {
            if alive.get() {
                panic!("boom");
            }
            Ok::<(), String>(())
        });
        let stopped = roles.stopped().await;
        assert_eq!(stopped.role, "chat");
        assert!(stopped.reason.contains("boom"), "{stopped}");
        assert!(!roles.alive().get());
    }

    #[tokio::test]
    async fn no_roles_never_stop() {
        let mut roles = Roles::default();
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(20), roles.stopped()).await;
        assert!(waited.is_err());
        assert!(roles.alive().get());
    }
}
