//! Observers and the figures they decide (DESIGN.md section 4), computed
//! from the recorded run directory only (events, timeline, probes), so
//! `gameday report RUN_DIR` derives them again:
//!
//! - per fault: injected at, time to first error, errors during it,
//!   recovered at, recovery time (from the shoppers' per-second success
//!   ratio, never from process state);
//! - scale-outs: autoscaling signal crossed to the added replicas serving;
//! - failover downtime: the prober's first failed write to its next good one.

pub mod prober;

use std::collections::BTreeMap;

use crate::{
    events::Event,
    record::SecondRow,
    report::{FaultSummary, ScaleOut},
};

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
    let ended: BTreeMap<&str, u64> = events
        .iter()
        .filter(|e| e.kind == "fault.ended")
        .filter_map(|e| Some((e.fields["id"].as_str()?, e.t_ms)))
        .collect();
    let injected_ms: Vec<u64> = events
        .iter()
        .filter(|e| e.kind == "fault.injected")
        .map(|e| e.t_ms)
        .collect();
    events
        .iter()
        .filter(|e| e.kind == "fault.injected")
        .map(|e| {
            let f = &e.fields;
            let injected = secs(e.t_ms);
            // Seconds are whole: the injection's own second counts.
            let start = e.t_ms / 1000;
            let end_ms = f["id"]
                .as_str()
                .and_then(|id| ended.get(id))
                .copied()
                .unwrap_or(e.t_ms);
            // Errors after the next fault's injection are that fault's.
            let next_s = injected_ms
                .iter()
                .find(|t| **t > e.t_ms)
                .map_or(u64::MAX, |t| (t / 1000).saturating_sub(1).max(start));
            let first_bad =
                (start..=(start + rule.horizon_s).min(last_t).min(next_s)).find(|t| !good(*t));
            let (first_error_at_s, recovered_at_s, errors) = match first_bad {
                None => (None, Some(injected.max(secs(end_ms))), Some(0)),
                Some(bad) => {
                    let recovered = (bad + 1..=last_t)
                        .filter(|s| s * 1000 >= end_ms)
                        // Good for the settle window, or until the run ended.
                        .find(|s| (*s..*s + rule.settle_s).all(|t| t > last_t || good(t)));
                    let until = recovered.unwrap_or(last_t + 1);
                    let errors = (start..until)
                        .filter_map(|t| by_t.get(&t))
                        .map(|r| r.failed())
                        .sum();
                    (
                        Some((bad as f64).max(injected)),
                        recovered.map(|s| s as f64),
                        Some(errors),
                    )
                }
            };
            FaultSummary {
                name: f["name"].as_str().unwrap_or_default().to_string(),
                kind: f["kind"].as_str().unwrap_or_default().to_string(),
                targets: f["targets"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|t| t.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
                injected_at_s: Some(injected),
                first_error_at_s,
                recovered_at_s,
                recovery_s: recovered_at_s.map(|r| (r - injected).max(0.0)),
                errors,
            }
        })
        .collect()
}

/// Each upward autoscaling decision: from the signal crossing its target
/// (the latest `autoscale.signal` of that service before the decision) to
/// the last of the added replicas serving.
pub fn scale_outs(events: &[Event]) -> Vec<ScaleOut> {
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if e.kind != "autoscale.decision" {
            continue;
        }
        let service = e.fields["service"].as_str().unwrap_or_default();
        let (Some(from), Some(to)) = (e.fields["from"].as_u64(), e.fields["to"].as_u64()) else {
            continue;
        };
        if to <= from {
            continue;
        }
        let signal_ms = events[..i]
            .iter()
            .rev()
            .find(|s| s.kind == "autoscale.signal" && s.fields["service"] == service)
            .map_or(e.t_ms, |s| s.t_ms);
        // The replicas started for this decision, then when each served.
        let started: Vec<&str> = events[i..]
            .iter()
            .filter(|s| {
                s.kind == "replica.started"
                    && s.fields["service"] == service
                    && s.fields["scale_out"] == true
            })
            .filter_map(|s| s.fields["replica"].as_str())
            .take((to - from) as usize)
            .collect();
        let serving: Vec<u64> = started
            .iter()
            .filter_map(|name| {
                events[i..]
                    .iter()
                    .find(|s| s.kind == "replica.serving" && s.fields["replica"] == *name)
                    .map(|s| s.t_ms)
            })
            .collect();
        let ready_ms = (serving.len() == started.len() && !serving.is_empty())
            .then(|| serving.iter().copied().max())
            .flatten();
        out.push(ScaleOut {
            service: service.to_string(),
            from: from as u32,
            to: to as u32,
            signal_at_s: secs(signal_ms),
            ready_at_s: ready_ms.map(secs),
            duration_s: ready_ms.map(|r| secs(r.saturating_sub(signal_ms))),
        });
    }
    out
}

/// Replicas serving per service over time, from the events: (seconds, count).
pub fn replicas_over_time(events: &[Event]) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut serving: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for e in events {
        let (Some(service), Some(replica)) =
            (e.fields["service"].as_str(), e.fields["replica"].as_str())
        else {
            continue;
        };
        let set = serving.entry(service.to_string()).or_default();
        let changed = match e.kind.as_str() {
            "replica.serving" => set.insert(replica.to_string()),
            "replica.exited" | "replica.killed" | "replica.stopping" | "replica.stopped"
            | "replica.lost" => set.remove(replica),
            _ => false,
        };
        if changed {
            out.entry(service.to_string())
                .or_default()
                .push((secs(e.t_ms), set.len() as f64));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::record::StepRow;

    fn ev(t_ms: u64, kind: &str, fields: serde_json::Value) -> Event {
        Event {
            t_ms,
            kind: kind.into(),
            fields,
        }
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
