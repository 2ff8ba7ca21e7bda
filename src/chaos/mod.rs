//! Faults on the local platform: what each kind would hit (for `plan` and
//! `inject`), how it is applied, and the scheduler that applies a
//! scenario's faults at their times on the run's clock.
//!
//! Safety (DESIGN.md section 6): a fault that lasts registers its undo
//! *before* it acts; pending undos run when the fault's duration ends, and
//! `Rollback::run_all` runs whatever is left on every way out of a run (its
//! end, a stop condition, Ctrl-C, SIGTERM, an error). Faults that do not last
//! (a SIGKILLed replica, a terminated instance, a failover) are repaired by
//! the platform itself, as Kubernetes and an Auto Scaling group would: the
//! reconciler replaces replicas, a new instance boots, a new standby is built.

pub mod stop;

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{
    errors::{Error, Result},
    events::EventLog,
    platform::local::{InfraServer, LocalPlatform},
    scenario::{BlastRadius, Fault, FaultKind},
};

/// What a fault would pick from, right now.
pub async fn candidates(platform: &LocalPlatform, kind: &FaultKind) -> Vec<String> {
    match kind {
        FaultKind::KillPod { service, .. } => {
            let status = platform.status().await;
            status
                .replicas
                .iter()
                .filter(|r| r.service == *service)
                .map(|r| r.name.clone())
                .collect()
        }
        FaultKind::TerminateInstance { .. } => platform.running_instances().await,
        FaultKind::DbFailover { .. } => vec!["mariadb-primary".into()],
        FaultKind::RestartCache => vec!["redis".into()],
        FaultKind::RestartBroker => vec!["rabbitmq".into()],
    }
}

/// How to put back what a lasting fault took away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undo {
    Start(InfraServer),
}

impl Undo {
    async fn run(self, platform: &LocalPlatform) -> Result<()> {
        match self {
            Undo::Start(server) => platform.set_server_running(server, true).await,
        }
    }
}

/// Undos registered and not yet run, by fault id.
#[derive(Default)]
pub struct Rollback {
    pending: Mutex<Vec<(String, Undo)>>,
}

impl Rollback {
    fn register(&self, id: &str, undo: Undo) {
        if let Ok(mut p) = self.pending.lock() {
            p.push((id.to_string(), undo));
        }
    }

    fn take(&self, id: &str) -> Vec<Undo> {
        let Ok(mut p) = self.pending.lock() else {
            return Vec::new();
        };
        let (mine, rest): (Vec<_>, Vec<_>) = p.drain(..).partition(|(i, _)| i == id);
        *p = rest;
        mine.into_iter().map(|(_, u)| u).collect()
    }

    /// Whether fault `id` has an undo waiting.
    pub fn is_pending(&self, id: &str) -> bool {
        self.pending
            .lock()
            .is_ok_and(|p| p.iter().any(|(i, _)| i == id))
    }

    pub fn is_empty(&self) -> bool {
        self.pending.lock().map_or(true, |p| p.is_empty())
    }

    /// Undoes one fault (when its duration is over).
    pub async fn undo(&self, platform: &LocalPlatform, events: &EventLog, id: &str) {
        for undo in self.take(id) {
            run_undo(platform, events, id, undo).await;
        }
    }

    /// Undoes every fault still active, newest first.
    pub async fn run_all(&self, platform: &LocalPlatform, events: &EventLog) {
        let all: Vec<(String, Undo)> = match self.pending.lock() {
            Ok(mut p) => p.drain(..).rev().collect(),
            Err(_) => Vec::new(),
        };
        for (id, undo) in all {
            run_undo(platform, events, &id, undo).await;
        }
    }
}

async fn run_undo(platform: &LocalPlatform, events: &EventLog, id: &str, undo: Undo) {
    // An undo that fails is retried: leaving the stack broken is the one
    // outcome a game day must not have.
    for attempt in 1..=3 {
        match undo.run(platform).await {
            Ok(()) => {
                events.emit(
                    "fault.ended",
                    json!({"id": id, "undo": format!("{undo:?}")}),
                );
                return;
            }
            Err(e) => {
                events.emit(
                    "fault.undo_failed",
                    json!({"id": id, "attempt": attempt, "error": e.to_string()}),
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Picks the targets of a fault with a blast radius (the first ones, in the
/// platform's order, so a plan and a run pick alike).
fn pick(candidates: Vec<String>, radius: &BlastRadius) -> Vec<String> {
    let n = radius.of(candidates.len());
    candidates.into_iter().take(n).collect()
}

static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// Applies one fault now: emits `fault.injected` (id, name, kind, targets)
/// and, for a fault without a duration, `fault.ended` once its action is
/// done. A lasting fault's undo is registered in `rollback` before it acts;
/// the caller undoes it when its duration is over. Returns (id, targets).
pub async fn apply(
    platform: &LocalPlatform,
    events: &EventLog,
    rollback: &Rollback,
    fault: &Fault,
) -> Result<(String, Vec<String>)> {
    let id = format!("f{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let candidates = candidates(platform, &fault.kind).await;
    let injected = |targets: &[String]| {
        events.emit(
            "fault.injected",
            json!({"id": id, "name": fault.name, "kind": fault.kind.key(), "targets": targets,
                   "duration_ms": fault.duration.map(|d| d.as_millis() as u64)}),
        );
    };
    let nothing = |what: &str| Error::Command {
        name: fault.kind.key().into(),
        detail: format!("nothing to hit: {what}"),
    };
    let targets = match &fault.kind {
        FaultKind::KillPod { service, radius } => {
            let targets = pick(candidates, radius);
            if targets.is_empty() {
                return Err(nothing(&format!("no running replica of {service}")));
            }
            injected(&targets);
            for t in &targets {
                platform.kill_replicas(t, 1).await?;
            }
            targets
        }
        FaultKind::TerminateInstance { radius } => {
            let targets = pick(candidates, radius);
            if targets.is_empty() {
                return Err(nothing("no running instance"));
            }
            injected(&targets);
            for t in &targets {
                platform.terminate_instance(t).await?;
            }
            targets
        }
        FaultKind::DbFailover { rebuild_standby } => {
            injected(&candidates);
            platform.failover_database(*rebuild_standby).await?;
            candidates
        }
        FaultKind::RestartCache | FaultKind::RestartBroker => {
            let server = if matches!(fault.kind, FaultKind::RestartCache) {
                InfraServer::Cache
            } else {
                InfraServer::Broker
            };
            injected(&candidates);
            match fault.duration {
                Some(_) => {
                    rollback.register(&id, Undo::Start(server));
                    platform.set_server_running(server, false).await?;
                }
                None => match server {
                    InfraServer::Cache => platform.restart_cache().await?,
                    InfraServer::Broker => platform.restart_broker().await?,
                },
            }
            candidates
        }
    };
    if !rollback.is_pending(&id) {
        events.emit("fault.ended", json!({"id": id}));
    }
    Ok((id, targets))
}

/// A fault at one time of the run's clock.
#[derive(Debug, Clone)]
pub struct Planned {
    pub at: Duration,
    pub fault: Fault,
}

/// Every injection of the scenario's faults within a run of `length`, in order.
pub fn schedule(faults: &[Fault], length: Duration) -> Vec<Planned> {
    let mut out: Vec<Planned> = faults
        .iter()
        .flat_map(|f| {
            f.schedule.times(length).into_iter().map(|at| Planned {
                at,
                fault: f.clone(),
            })
        })
        .collect();
    out.sort_by_key(|p| p.at);
    out
}

/// Applies `plan` at its times after `start`, undoes lasting faults when
/// their duration ends, until the plan is done or `stop` is cancelled.
/// Whatever is still active is left in `rollback` for the caller, which
/// must run it on every way out.
pub async fn run_schedule(
    platform: &LocalPlatform,
    events: &EventLog,
    rollback: &Rollback,
    plan: Vec<Planned>,
    start: Instant,
    stop: CancellationToken,
) {
    let mut next = plan.into_iter().peekable();
    let mut ends: Vec<(Instant, String)> = Vec::new();
    loop {
        ends.sort_by_key(|(t, _)| *t);
        let next_fault = next.peek().map(|p| start + p.at);
        let next_end = ends.first().map(|(t, _)| *t);
        let wake = match (next_fault, next_end) {
            (None, None) => break,
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        if next_end.is_some_and(|t| t <= Instant::now()) {
            let (_, id) = ends.remove(0);
            rollback.undo(platform, events, &id).await;
            continue;
        }
        let Some(planned) = next.next() else { continue };
        match apply(platform, events, rollback, &planned.fault).await {
            Ok((id, targets)) => {
                tracing::info!(fault = %planned.fault.name, ?targets, "injected");
                if let Some(d) = planned.fault.duration
                    && rollback.is_pending(&id)
                {
                    ends.push((Instant::now() + d, id));
                }
            }
            Err(e) => {
                events.emit(
                    "fault.failed",
                    json!({"name": planned.fault.name, "kind": planned.fault.kind.key(), "error": e.to_string()}),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Schedule;

    fn fault(name: &str, schedule: Schedule) -> Fault {
        Fault {
            name: name.into(),
            kind: FaultKind::RestartCache,
            schedule,
            duration: None,
        }
    }

    #[test]
    fn a_schedule_lists_every_injection_in_time_order() {
        let plan = schedule(
            &[
                fault("late", Schedule::At(Duration::from_secs(50))),
                fault(
                    "often",
                    Schedule::Every {
                        every: Duration::from_secs(20),
                        from: Duration::from_secs(10),
                        until: Some(Duration::from_secs(45)),
                    },
                ),
            ],
            Duration::from_secs(60),
        );
        let got: Vec<(u64, &str)> = plan
            .iter()
            .map(|p| (p.at.as_secs(), p.fault.name.as_str()))
            .collect();
        assert_eq!(got, [(10, "often"), (30, "often"), (50, "late")]);
    }

    #[test]
    fn a_blast_radius_picks_at_most_its_share() {
        let c = |n: usize| (1..=n).map(|i| format!("cart-{i}")).collect::<Vec<_>>();
        assert_eq!(pick(c(3), &BlastRadius::Count(1)), ["cart-1"]);
        assert_eq!(
            pick(
                c(10),
                &BlastRadius::Percent {
                    percent: 50.0,
                    max: Some(2)
                }
            ),
            ["cart-1", "cart-2"]
        );
        assert!(pick(Vec::new(), &BlastRadius::Count(2)).is_empty());
    }

    #[test]
    fn rollback_undoes_each_registered_fault_once() {
        let r = Rollback::default();
        r.register("f1", Undo::Start(InfraServer::Cache));
        r.register("f2", Undo::Start(InfraServer::Broker));
        assert_eq!(r.take("f1"), [Undo::Start(InfraServer::Cache)]);
        assert!(r.take("f1").is_empty(), "taken once");
        assert!(!r.is_empty());
        assert_eq!(r.take("f2").len(), 1);
        assert!(r.is_empty());
    }
}
