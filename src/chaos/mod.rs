//! Faults, on any platform: what a fault picks (its blast radius over the
//! platform's candidates), how it is applied, the rollback registry, and
//! one engine loop that applies faults as they come (from a scenario's
//! schedule, or from `gameday inject`) and undoes lasting ones when their
//! duration ends.
//!
//! Safety (DESIGN.md section 6): a fault that lasts registers its undo
//! *before* it acts; pending undos run when the fault's duration ends, and
//! `Rollback::run_all` runs whatever is left on every way out of a run (its
//! end, a stop condition, Ctrl-C, SIGTERM, an error). Faults that do not
//! last (a killed replica, a terminated instance, a failover) are repaired
//! by the platform itself, as Kubernetes and an Auto Scaling group would.

pub mod schedule;
pub mod stop;

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use schedule::{Planned, run_schedule, schedule};

use crate::{
    errors::{Error, Result},
    events::{EventKind, EventLog},
    platform::{self, FaultRequest, Injected, Platform, Support, Target, Undo},
    scenario::{BlastRadius, Fault},
};

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
    pub async fn undo(&self, platform: &dyn Platform, events: &EventLog, id: &str) {
        for undo in self.take(id) {
            run_undo(platform, events, id, undo).await;
        }
    }

    /// Undoes every fault still active, newest first.
    pub async fn run_all(&self, platform: &dyn Platform, events: &EventLog) {
        let all: Vec<(String, Undo)> = match self.pending.lock() {
            Ok(mut p) => p.drain(..).rev().collect(),
            Err(_) => Vec::new(),
        };
        for (id, undo) in all {
            run_undo(platform, events, &id, undo).await;
        }
    }
}

/// Tries an undo up to this many times: leaving the shop broken is the one
/// outcome a game day must not have.
pub const UNDO_ATTEMPTS: u32 = 3;
const UNDO_RETRY_AFTER: Duration = Duration::from_secs(1);

async fn run_undo(platform: &dyn Platform, events: &EventLog, id: &str, undo: Undo) {
    for attempt in 1..=UNDO_ATTEMPTS {
        match platform.undo(&undo).await {
            Ok(()) => {
                events.emit(EventKind::FaultEnded {
                    id: id.into(),
                    undo: Some(undo.describe()),
                });
                return;
            }
            Err(e) => {
                events.emit(EventKind::FaultUndoFailed {
                    id: id.into(),
                    attempt,
                    error: e.to_string(),
                });
                if attempt < UNDO_ATTEMPTS {
                    tokio::time::sleep(UNDO_RETRY_AFTER).await;
                }
            }
        }
    }
}

/// Picks the targets of a fault with a blast radius (the first ones, in the
/// platform's order, so a plan and a run pick alike); a fault without one
/// hits every candidate (the database primary, the cache).
pub fn pick(candidates: Vec<Target>, radius: Option<&BlastRadius>) -> Vec<Target> {
    let n = radius.map_or(candidates.len(), |r| r.of(candidates.len()));
    candidates.into_iter().take(n).collect()
}

static NEXT_ID: AtomicU32 = AtomicU32::new(1);

fn next_id() -> String {
    format!("f{}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// Applies one fault now: emits `fault.injected` (id, name, kind, targets)
/// and, for a fault without a lasting effect, `fault.ended` once its action
/// is done. A lasting fault's undo is registered in `rollback` before it
/// acts; the caller undoes it when its duration is over. A fault whose
/// action fails is undone at once.
pub async fn apply(
    platform: &dyn Platform,
    events: &EventLog,
    rollback: &Rollback,
    fault: &Fault,
) -> Result<Injected> {
    // A fault refused before it acts is still a fault the run meant to
    // inject: it says so, and why.
    let refused = |e: Error| {
        events.emit(EventKind::FaultFailed {
            id: None,
            name: fault.name.clone(),
            kind: fault.kind.key().into(),
            error: e.to_string(),
        });
        Err(e)
    };
    let refuse = |why: String| Error::from(platform::Error::refused(fault.kind.key(), why));
    if let Support::No { why } = platform.supports(fault) {
        return refused(refuse(why));
    }
    let candidates = match platform.candidates(&fault.kind).await {
        Ok(c) => c,
        Err(e) => return refused(e.into()),
    };
    let targets = pick(candidates, fault.kind.radius());
    if targets.is_empty() {
        return refused(refuse(format!(
            "nothing to hit: no candidate is running ({})",
            platform.describe(fault)
        )));
    }
    let id = next_id();
    let undo = platform.undo_for(fault, &targets).await;
    if let Some(u) = undo.clone() {
        rollback.register(&id, u);
    }
    events.emit(EventKind::FaultInjected {
        id: id.clone(),
        name: fault.name.clone(),
        kind: fault.kind.key().into(),
        targets: targets.iter().map(|t| t.id.clone()).collect(),
        duration_ms: fault.duration.map(|d| d.as_millis() as u64),
    });
    if let Err(e) = platform.inject(fault, &targets).await {
        events.emit(EventKind::FaultFailed {
            id: Some(id.clone()),
            name: fault.name.clone(),
            kind: fault.kind.key().into(),
            error: e.to_string(),
        });
        rollback.undo(platform, events, &id).await;
        return Err(e.into());
    }
    let lasting = fault.duration.filter(|_| rollback.is_pending(&id));
    if lasting.is_none() {
        events.emit(EventKind::FaultEnded {
            id: id.clone(),
            undo: None,
        });
    }
    Ok(Injected {
        id,
        targets,
        undo_after_s: lasting.map(|d| d.as_secs_f64()),
    })
}

/// What one piece of the engine's work came to.
enum Done {
    Applied {
        /// The fault's name (the fault itself is large: the variant stays small).
        name: String,
        reply: Option<tokio::sync::oneshot::Sender<std::result::Result<Injected, String>>>,
        outcome: Result<Injected>,
    },
    Undone,
}

/// The engine loop: applies each fault that arrives on `requests`, answers
/// its sender, and undoes lasting faults when their duration ends. Faults
/// and undos run side by side: one fault waiting (on a PodDisruptionBudget,
/// a slow API) delays neither the next fault nor an undo that is due. It
/// ends when `stop` is cancelled, or when no more requests can come and no
/// work or undo is left. Whatever is still active is left in `rollback` for
/// the caller, which must run it on every way out.
pub async fn serve(
    platform: &dyn Platform,
    events: &EventLog,
    rollback: &Rollback,
    mut requests: mpsc::Receiver<FaultRequest>,
    stop: CancellationToken,
) {
    use futures::{FutureExt, StreamExt, stream::FuturesUnordered};
    let mut ends: Vec<(tokio::time::Instant, String)> = Vec::new();
    let mut work = FuturesUnordered::new();
    let mut open = true;
    loop {
        ends.sort_by_key(|(t, _)| *t);
        let next_end = ends.first().map(|(t, _)| *t);
        if !open && next_end.is_none() && work.is_empty() {
            break;
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = async { tokio::time::sleep_until(next_end.unwrap_or_else(tokio::time::Instant::now)).await }, if next_end.is_some() => {
                let (_, id) = ends.remove(0);
                work.push(async move {
                    rollback.undo(platform, events, &id).await;
                    Done::Undone
                }.boxed());
            }
            request = requests.recv(), if open => {
                let Some((fault, reply)) = request else {
                    open = false;
                    continue;
                };
                work.push(async move {
                    let outcome = apply(platform, events, rollback, &fault).await;
                    Done::Applied { name: fault.name, reply, outcome }
                }.boxed());
            }
            Some(done) = work.next(), if !work.is_empty() => {
                if let Done::Applied { name, reply, outcome } = done {
                    match &outcome {
                        Ok(injected) => {
                            let ids: Vec<&str> = injected.targets.iter().map(|t| t.id.as_str()).collect();
                            tracing::info!(fault = %name, ?ids, "injected");
                            if let Some(d) = injected.undo_after_s {
                                ends.push((
                                    tokio::time::Instant::now() + Duration::from_secs_f64(d),
                                    injected.id.clone(),
                                ));
                            }
                        }
                        Err(e) => tracing::warn!(fault = %name, error = %e, "not applied"),
                    }
                    if let Some(reply) = reply {
                        let _ = reply.send(outcome.map_err(|e| e.to_string()));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
