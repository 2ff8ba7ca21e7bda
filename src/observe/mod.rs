//! Observers and the figures they decide (DESIGN.md section 4), computed
//! from the recorded run directory only (events, timeline, probes), so
//! `gameday report RUN_DIR` derives them again:
//!
//! - per fault (`faults`): time to first error, errors, seconds over the
//!   latency target, worst p99, capacity lost and back, recovery (from what
//!   the shoppers saw, never from process state);
//! - scale-outs (`scaling`): the signal crossing its target to the added
//!   capacity serving;
//! - capacity over time (`capacity`): replicas and instances serving;
//! - failover downtime: the prober's first failed write to its next good
//!   one; uptime (`prober`);
//! - the order audit (`audit`).

pub mod audit;
pub mod capacity;
mod faults;
pub mod network;
pub mod prober;
pub mod scaling;

pub use capacity::{instances_over_time, replicas_over_time};
pub use faults::faults;
pub use scaling::{ScaleOutcome, scale_outs};

use serde::{Deserialize, Serialize};

use crate::{
    events::{Event, EventKind},
    scenario::Percentile,
};

/// What one injected fault did to the shoppers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaultSummary {
    /// The fault's id in the run's events (`f1`, ...).
    #[serde(default)]
    pub id: String,
    pub name: String,
    pub kind: String,
    pub targets: Vec<String>,
    pub injected_at_s: Option<f64>,
    /// When its action was over (or it was undone).
    #[serde(default)]
    pub ended_at_s: Option<f64>,
    pub first_error_at_s: Option<f64>,
    pub recovered_at_s: Option<f64>,
    pub recovery_s: Option<f64>,
    pub errors: Option<u64>,
    /// Seconds (from injection to recovery) whose latency percentile was
    /// above the scenario's target (null without a latency target).
    #[serde(default)]
    pub slow_seconds: Option<u64>,
    /// The worst per-second p99 in those seconds, in ms.
    #[serde(default)]
    pub worst_p99_ms: Option<f64>,
    /// Replicas and instances it took out of service.
    #[serde(default)]
    pub replicas_lost: Option<u32>,
    #[serde(default)]
    pub instances_lost: Option<u32>,
    /// When every replica and instance it took was serving again.
    #[serde(default)]
    pub capacity_back_at_s: Option<f64>,
    /// Seconds from the injection to the first monitoring alarm firing
    /// (how soon the team would have known; null without an alarm).
    #[serde(default)]
    pub alarm_after_s: Option<f64>,
    /// The instances launched to replace the ones it took (a group's or
    /// the platform's replacements), in launch order.
    #[serde(default)]
    pub replacements: Vec<String>,
    /// A network fault: the latency of the shoppers' steps that use its
    /// links, before it and while it lasted (absent for other faults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_latency: Option<LinkLatency>,
}

/// What a network fault added to the latency of the steps using its links:
/// p50 and p99 over the fault's window against the same span before it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LinkLatency {
    /// The steps whose service uses one of the fault's links.
    pub steps: Vec<String>,
    /// The seconds compared: [before_from_s, injected) and [injected, ended).
    pub before_from_s: f64,
    pub during_until_s: f64,
    pub before_p50_ms: Option<f64>,
    pub before_p99_ms: Option<f64>,
    pub during_p50_ms: Option<f64>,
    pub during_p99_ms: Option<f64>,
    /// during - before (null when either is unmeasured).
    pub added_p50_ms: Option<f64>,
    pub added_p99_ms: Option<f64>,
}

/// One upward scaling decision and how long its capacity took to serve.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScaleOut {
    pub service: String,
    pub from: u32,
    pub to: u32,
    pub signal_at_s: f64,
    pub ready_at_s: Option<f64>,
    pub duration_s: Option<f64>,
    #[serde(default = "served")]
    pub outcome: ScaleOutcome,
}

fn served() -> ScaleOutcome {
    ScaleOutcome::Served
}

/// The latency a second must stay within to be good, for recovery.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyRule {
    pub percentile: Percentile,
    pub target_ms: f64,
}

/// How recovery is judged: a second is good when at least `threshold` of
/// its requests succeeded and (with a latency rule) its percentile was
/// within target; recovered once `settle_s` good seconds follow in a row (or
/// good seconds until the run ended, when it ended sooner). A fault's
/// impact is looked for within `horizon_s` of its injection.
#[derive(Debug, Clone, Copy)]
pub struct RecoveryRule {
    pub threshold: f64,
    pub settle_s: u64,
    pub horizon_s: u64,
    pub latency: Option<LatencyRule>,
}

impl Default for RecoveryRule {
    fn default() -> Self {
        Self {
            threshold: 0.99,
            settle_s: 5,
            horizon_s: 60,
            latency: None,
        }
    }
}

/// The longest write outage the prober saw after any database failover
/// (None without a failover, or without probes).
pub fn failover_downtime(events: &[Event], probes: &[crate::record::Probe]) -> Option<f64> {
    let failovers: Vec<u64> = events
        .iter()
        .filter(
            |e| matches!(&e.kind, EventKind::FaultInjected { kind, .. } if kind == "db-failover"),
        )
        .map(|e| e.t_ms)
        .collect();
    if failovers.is_empty() || probes.is_empty() {
        return None;
    }
    failovers
        .iter()
        .enumerate()
        .map(|(i, from)| {
            let until = failovers.get(i + 1).copied().unwrap_or(u64::MAX);
            prober::write_downtime(probes, *from, until)
        })
        .try_fold(0.0f64, |m, d| d.map(|d| m.max(d)))
}
