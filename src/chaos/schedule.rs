//! A scenario's faults on the run's clock: every injection time (`at`, or
//! `every` with `from`/`until`), fed to the engine loop when its time comes.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Rollback, serve};
use crate::{events::EventLog, platform::Platform, scenario::Fault};

/// A fault at one time after the load started.
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
    platform: &dyn Platform,
    events: &EventLog,
    rollback: &Rollback,
    plan: Vec<Planned>,
    start: Instant,
    stop: CancellationToken,
) {
    let (tx, rx) = mpsc::channel(1);
    let feed = {
        let stop = stop.clone();
        async move {
            for planned in plan {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep_until((start + planned.at).into()) => {}
                }
                if tx.send((planned.fault, None)).await.is_err() {
                    return;
                }
            }
        }
    };
    tokio::join!(feed, serve(platform, events, rollback, rx, stop));
}
