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
//!   one, or the span of the shoppers' failed writes if longer; uptime
//!   (`prober`);
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

/// The longest write outage after any database failover (None without a
/// failover, without probes, or when writes never succeeded again): the
/// longer of the prober's (its first failed write to its next good one)
/// and the shoppers' (`shopper_write_outage`), so a failover that failed
/// shoppers' checkouts between two prober writes is not read as 0.
pub fn failover_downtime(
    events: &[Event],
    probes: &[crate::record::Probe],
    seconds: &[crate::record::timeline::SecondRow],
    settle_s: u64,
) -> Option<f64> {
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
            let shoppers = shopper_write_outage(seconds, *from, until, settle_s);
            prober::write_downtime(probes, *from, until).map(|d| d.max(shoppers))
        })
        .try_fold(0.0f64, |m, d| d.map(|d| m.max(d)))
}

/// The shoppers' writes: a cart line added, a checkout.
fn write_steps() -> [&'static str; 2] {
    [
        crate::load::Step::AddToCart.name(),
        crate::load::Step::Checkout.name(),
    ]
}

/// A step's failures that say the shop was unavailable (5xx, timeouts,
/// lost connections; not a 202 for a pending order or a 4xx).
fn unavailable(step: &crate::record::timeline::StepRow) -> u64 {
    step.errors
        .iter()
        .filter(|(kind, _)| crate::load::is_unavailable(kind))
        .map(|(_, n)| n)
        .sum()
}

/// The span of the shoppers' failed writes (the shop unavailable, not a
/// refusal or a pending order) after `from_ms` (before
/// `until_ms`), in seconds: from the failover (or the first second with a
/// failed write, if later) to the end of the last second with one before
/// `settle_s` seconds of writes in a row that all succeeded. The timeline
/// counts whole seconds, so this covers the outage: it may read up to a
/// second more at each end, never less. 0 when no write failed.
pub fn shopper_write_outage(
    seconds: &[crate::record::timeline::SecondRow],
    from_ms: u64,
    until_ms: u64,
    settle_s: u64,
) -> f64 {
    let steps = write_steps();
    let (mut first, mut last, mut good) = (None, 0u64, 0u64);
    for row in seconds
        .iter()
        .filter(|r| r.t >= from_ms / 1000 && r.t.saturating_mul(1000) < until_ms)
    {
        let (writes, failed) = steps
            .iter()
            .filter_map(|s| row.steps.get(*s))
            .fold((0, 0), |(w, f), s| (w + s.requests, f + unavailable(s)));
        if failed > 0 {
            first.get_or_insert(row.t);
            last = row.t;
            good = 0;
        } else if writes > 0 && first.is_some() {
            good += 1;
            if good >= settle_s {
                break;
            }
        }
    }
    first.map_or(0.0, |first| {
        let start = (first * 1000).max(from_ms);
        ((last + 1) * 1000).saturating_sub(start) as f64 / 1000.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Probe, ProbePath, timeline::SecondRow, timeline::StepRow};

    /// A second with `checkouts` checkouts, `failed` of them failed, and as
    /// many product reads that all failed (reads are not writes).
    fn second(t: u64, checkouts: u64, failed: u64) -> SecondRow {
        let row = |requests, failed| StepRow {
            requests,
            failed,
            errors: [("status 503".to_string(), failed)].into(),
        };
        SecondRow {
            t,
            users: None,
            steps: [
                ("checkout".to_string(), row(checkouts, failed)),
                ("product".to_string(), row(checkouts, checkouts)),
            ]
            .into(),
        }
    }

    #[test]
    fn the_shoppers_write_outage_spans_their_failed_writes_until_writes_settle() {
        // Failover at 10.4 s; checkouts fail in seconds 10 and 12, second
        // 11 has none, then 5 good seconds; a failure at 30 is not its.
        let mut seconds: Vec<SecondRow> = (8..40).map(|t| second(t, 4, 0)).collect();
        for (t, failed) in [(8, 1), (10, 2), (12, 4), (30, 1)] {
            seconds[t - 8] = second(t as u64, 4, failed);
        }
        seconds[11 - 8] = second(11, 0, 0);
        assert_eq!(shopper_write_outage(&seconds, 10_400, u64::MAX, 5), 2.6);
        // A checkout answered 202 (its order still pending) is no outage:
        // as in a smoke run, where two such 5 s later would have made 6 s.
        let mut pending = seconds.clone();
        let checkout = pending[15 - 8].steps.get_mut("checkout").unwrap();
        checkout.failed = 2;
        checkout.errors = [("status 202".to_string(), 2)].into();
        assert_eq!(shopper_write_outage(&pending, 10_400, u64::MAX, 5), 2.6);
        pending[15 - 8] = second(15, 4, 1);
        assert_eq!(shopper_write_outage(&pending, 10_400, u64::MAX, 5), 5.6);
        // Only second 8 failed, before the failover: no outage after it.
        assert_eq!(
            shopper_write_outage(&seconds[..2], 10_400, u64::MAX, 5),
            0.0
        );
        // A later failover bounds the earlier one's outage.
        assert_eq!(shopper_write_outage(&seconds, 10_400, 12_000, 5), 0.6);
    }

    #[test]
    fn failover_downtime_is_the_longer_of_the_probers_and_the_shoppers() {
        let events = vec![Event {
            t_ms: 10_400,
            kind: EventKind::FaultInjected {
                id: "f1".into(),
                name: "fail the database over".into(),
                kind: "db-failover".into(),
                targets: vec!["mariadb".into()],
                duration_ms: None,
            },
        }];
        let probe = |t_ms, ok| Probe {
            t_ms,
            path: ProbePath::Write,
            ok,
            ms: 1.0,
            error: None,
        };
        // The prober's writes never failed; the shoppers' checkouts did.
        let probes: Vec<Probe> = (0..100).map(|i| probe(i * 200, true)).collect();
        let seconds = vec![second(10, 4, 3), second(11, 4, 0)];
        assert_eq!(failover_downtime(&events, &probes, &seconds, 1), Some(0.6));
        let quiet = vec![second(10, 4, 0)];
        assert_eq!(failover_downtime(&events, &probes, &quiet, 1), Some(0.0));
        // The prober's outage when it is the longer one.
        let mut probes = probes;
        probes[53].ok = false; // 10.6 s
        probes[54].ok = false;
        assert_eq!(failover_downtime(&events, &probes, &seconds, 1), Some(0.6));
        probes[55].ok = false;
        probes[56].ok = false;
        assert_eq!(
            failover_downtime(&events, &probes, &seconds, 1).map(|d| (d * 1000.0).round()),
            Some(800.0)
        );
        assert_eq!(failover_downtime(&[], &probes, &seconds, 1), None);
    }
}
