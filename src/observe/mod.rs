//! Observers and the figures they decide (DESIGN.md section 4), computed
//! from the recorded run directory only (events, timeline, probes), so
//! `gameday report RUN_DIR` derives them again:
//!
//! - per fault: injected at, time to first error, errors during it,
//!   recovered at, recovery time (from the shoppers' per-second success
//!   ratio, never from process state);
//! - scale-outs: autoscaling signal crossed to the added replicas serving;
//! - failover downtime: the prober's first failed write to its next good one.

pub mod audit;
pub mod prober;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{
    events::{Event, EventKind},
    record::SecondRow,
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
}

/// How recovery is judged: a second is good when at least `threshold` of
/// its requests succeeded; recovered once `settle_s` good seconds follow in
/// a row (or good seconds until the run ended, when it ended sooner).
/// Errors are looked for within `horizon_s` of the injection.
#[derive(Debug, Clone, Copy)]
pub struct RecoveryRule {
    pub threshold: f64,
    pub settle_s: u64,
    pub horizon_s: u64,
}

impl Default for RecoveryRule {
    fn default() -> Self {
        Self {
            threshold: 0.99,
            settle_s: 5,
            horizon_s: 60,
        }
    }
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// When each fault's action ended, by fault id.
fn fault_ends(events: &[Event]) -> BTreeMap<&str, u64> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::FaultEnded { id, .. } => Some((id.as_str(), e.t_ms)),
            _ => None,
        })
        .collect()
}

/// One summary per injected fault, in injection order.
pub fn faults(events: &[Event], seconds: &[SecondRow], rule: RecoveryRule) -> Vec<FaultSummary> {
    let by_t: BTreeMap<u64, &SecondRow> = seconds.iter().map(|r| (r.t, r)).collect();
    let last_t = seconds.last().map_or(0, |r| r.t);
    let good = |t: u64| {
        by_t.get(&t).is_none_or(|r| {
            r.requests() == 0
                || (r.requests() - r.failed()) as f64 / r.requests() as f64 >= rule.threshold
        })
    };
    let ended = fault_ends(events);
    let injected: Vec<(u64, &str, &str, &str, &[String])> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::FaultInjected {
                id,
                name,
                kind,
                targets,
                ..
            } => Some((
                e.t_ms,
                id.as_str(),
                name.as_str(),
                kind.as_str(),
                targets.as_slice(),
            )),
            _ => None,
        })
        .collect();
    injected
        .iter()
        .map(|&(t_ms, id, name, kind, targets)| {
            let at = secs(t_ms);
            // Seconds are whole: the injection's own second counts.
            let start = t_ms / 1000;
            let end_ms = ended.get(id).copied();
            let action_end_ms = end_ms.unwrap_or(t_ms);
            // Errors after the next fault's injection are that fault's.
            let next_s = injected
                .iter()
                .map(|i| i.0)
                .find(|t| *t > t_ms)
                .map_or(u64::MAX, |t| (t / 1000).saturating_sub(1).max(start));
            let first_bad =
                (start..=(start + rule.horizon_s).min(last_t).min(next_s)).find(|t| !good(*t));
            let (first_error_at_s, recovered_at_s, errors) = match first_bad {
                None => (None, Some(at.max(secs(action_end_ms))), Some(0)),
                Some(bad) => {
                    let recovered = (bad + 1..=last_t)
                        .filter(|s| s * 1000 >= action_end_ms)
                        // Good for the settle window, or until the run ended.
                        .find(|s| (*s..*s + rule.settle_s).all(|t| t > last_t || good(t)));
                    let until = recovered.unwrap_or(last_t + 1);
                    let errors = (start..until)
                        .filter_map(|t| by_t.get(&t))
                        .map(|r| r.failed())
                        .sum();
                    (
                        Some((bad as f64).max(at)),
                        recovered.map(|s| s as f64),
                        Some(errors),
                    )
                }
            };
            FaultSummary {
                id: id.to_string(),
                name: name.to_string(),
                kind: kind.to_string(),
                targets: targets.to_vec(),
                injected_at_s: Some(at),
                ended_at_s: end_ms.map(secs),
                first_error_at_s,
                recovered_at_s,
                recovery_s: recovered_at_s.map(|r| (r - at).max(0.0)),
                errors,
            }
        })
        .collect()
}

/// Each upward autoscaling decision: from the signal crossing its target
/// (the latest scaling signal of that service before the decision) to the
/// last of the added replicas or instances serving.
pub fn scale_outs(events: &[Event]) -> Vec<ScaleOut> {
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let EventKind::ScalingDecision {
            service, from, to, ..
        } = &e.kind
        else {
            continue;
        };
        if to <= from {
            continue;
        }
        let signal_ms = events[..i]
            .iter()
            .rev()
            .find(|s| matches!(&s.kind, EventKind::ScalingSignal { service: s2, .. } if s2 == service))
            .map_or(e.t_ms, |s| s.t_ms);
        // The units started for this decision, then when each served.
        let started: Vec<&str> = events[i..]
            .iter()
            .filter_map(|s| match &s.kind {
                EventKind::ReplicaStarted {
                    service: s2,
                    replica,
                    scale_out: true,
                    ..
                } if s2 == service => Some(replica.as_str()),
                EventKind::InstanceLaunching {
                    instance,
                    group: Some(g),
                    scale_out: true,
                    ..
                } if g == service => Some(instance.as_str()),
                _ => None,
            })
            .take((to - from) as usize)
            .collect();
        let serving: Vec<u64> = started
            .iter()
            .filter_map(|name| {
                events[i..]
                    .iter()
                    .find(|s| match &s.kind {
                        EventKind::ReplicaServing { replica, .. } => replica == name,
                        EventKind::InstanceServing { instance, .. } => instance == name,
                        _ => false,
                    })
                    .map(|s| s.t_ms)
            })
            .collect();
        let ready_ms = (serving.len() == started.len() && !serving.is_empty())
            .then(|| serving.iter().copied().max())
            .flatten();
        out.push(ScaleOut {
            service: service.clone(),
            from: *from,
            to: *to,
            signal_at_s: secs(signal_ms),
            ready_at_s: ready_ms.map(secs),
            duration_s: ready_ms.map(|r| secs(r.saturating_sub(signal_ms))),
        });
    }
    out
}

/// Replicas serving per service over time, from the events: (seconds, count).
pub fn replicas_over_time(events: &[Event]) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut serving: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for e in events {
        let (service, replica, up) = match &e.kind {
            EventKind::ReplicaServing { service, replica } => (service, replica, true),
            EventKind::ReplicaExited {
                service, replica, ..
            }
            | EventKind::ReplicaKilled {
                service, replica, ..
            }
            | EventKind::ReplicaStopping {
                service, replica, ..
            }
            | EventKind::ReplicaStopped {
                service, replica, ..
            } => (service, replica, false),
            _ => continue,
        };
        let set = serving.entry(service.clone()).or_default();
        let changed = if up {
            set.insert(replica.clone())
        } else {
            set.remove(replica)
        };
        if changed {
            out.entry(service.clone())
                .or_default()
                .push((e.at_s(), set.len() as f64));
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::record::StepRow;

    /// An event as it reads back from `events.jsonl`.
    fn ev(t_ms: u64, kind: &str, fields: serde_json::Value) -> Event {
        serde_json::from_value(json!({"t_ms": t_ms, "kind": kind, "fields": fields})).unwrap()
    }

    fn row(t: u64, requests: u64, failed: u64) -> SecondRow {
        SecondRow {
            t,
            users: None,
            steps: [(
                "home".to_string(),
                StepRow {
                    requests,
                    failed,
                    errors: BTreeMap::new(),
                },
            )]
            .into(),
        }
    }

    #[test]
    fn recovery_is_read_from_what_shoppers_saw() {
        // Errors in seconds 11 and 12 after a fault at 10.5 s; good after.
        let seconds: Vec<SecondRow> = (0..30)
            .map(|t| row(t, 100, if t == 11 || t == 12 { 30 } else { 0 }))
            .collect();
        let events = vec![
            ev(
                10_500,
                "fault.injected",
                json!({"id": "f1", "name": "kill cart", "kind": "kill-pod", "targets": ["cart-1"]}),
            ),
            ev(10_600, "fault.ended", json!({"id": "f1"})),
        ];
        let f = &faults(&events, &seconds, RecoveryRule::default())[0];
        assert_eq!(f.targets, ["cart-1"]);
        assert_eq!(f.first_error_at_s, Some(11.0));
        assert_eq!(f.recovered_at_s, Some(13.0));
        assert_eq!(f.recovery_s, Some(2.5));
        assert_eq!(f.errors, Some(60));

        // No error at all: recovered at once (measured, zero).
        let clean: Vec<SecondRow> = (0..30).map(|t| row(t, 100, 0)).collect();
        let f = &faults(&events, &clean, RecoveryRule::default())[0];
        assert_eq!(f.errors, Some(0));
        assert!((f.recovery_s.unwrap() - 0.1).abs() < 1e-9, "{f:?}");

        // Bad until the last second, which alone is good: recovered there
        // (the run ended while good).
        let late: Vec<SecondRow> = (0..20)
            .map(|t| row(t, 100, if (11..19).contains(&t) { 50 } else { 0 }))
            .collect();
        let f = &faults(&events, &late, RecoveryRule::default())[0];
        assert_eq!(f.recovered_at_s, Some(19.0));

        // Never good again: not recovered (null), errors counted to the end.
        let broken: Vec<SecondRow> = (0..20)
            .map(|t| row(t, 100, if t >= 11 { 50 } else { 0 }))
            .collect();
        let f = &faults(&events, &broken, RecoveryRule::default())[0];
        assert_eq!((f.recovered_at_s, f.recovery_s), (None, None));
        assert_eq!(f.errors, Some(450));
    }

    #[test]
    fn errors_after_the_next_fault_are_not_the_earlier_fault_s() {
        let seconds: Vec<SecondRow> = (0..60)
            .map(|t| row(t, 100, if (40..45).contains(&t) { 50 } else { 0 }))
            .collect();
        let events = vec![
            ev(
                10_000,
                "fault.injected",
                json!({"id": "f1", "name": "failover", "kind": "db-failover"}),
            ),
            ev(11_000, "fault.ended", json!({"id": "f1"})),
            ev(
                40_000,
                "fault.injected",
                json!({"id": "f2", "name": "cache", "kind": "restart-cache"}),
            ),
            ev(45_000, "fault.ended", json!({"id": "f2"})),
        ];
        let f = faults(&events, &seconds, RecoveryRule::default());
        assert_eq!((f[0].first_error_at_s, f[0].errors), (None, Some(0)));
        assert_eq!(
            (f[1].first_error_at_s, f[1].errors),
            (Some(40.0), Some(250))
        );
        assert_eq!(f[1].recovered_at_s, Some(45.0));
    }

    #[test]
    fn a_scale_out_runs_from_the_signal_to_the_added_replica_serving() {
        let events = vec![
            ev(1_000, "autoscale.signal", json!({"service": "catalogue"})),
            ev(
                3_000,
                "autoscale.decision",
                json!({"service": "catalogue", "from": 2, "to": 3}),
            ),
            ev(
                3_100,
                "replica.started",
                json!({"service": "catalogue", "replica": "catalogue-3", "scale_out": true}),
            ),
            ev(
                4_700,
                "replica.serving",
                json!({"service": "catalogue", "replica": "catalogue-3"}),
            ),
        ];
        let s = &scale_outs(&events)[0];
        assert_eq!((s.from, s.to), (2, 3));
        assert_eq!(s.signal_at_s, 1.0);
        assert_eq!(s.ready_at_s, Some(4.7));
        assert_eq!(s.duration_s, Some(3.7));
        let over_time = replicas_over_time(&events);
        assert_eq!(over_time["catalogue"], [(4.7, 1.0)]);
    }
}
