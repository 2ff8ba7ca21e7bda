//! What each fault did to the shoppers, from the recorded run alone:
//!
//! - errors: time to the first second below the success threshold, and the
//!   failed requests from the injection's second until recovery or the end
//!   of the fault's action, whichever is later;
//! - latency: the seconds whose latency percentile exceeded the scenario's
//!   target, and the worst p99;
//! - capacity: replicas or instances it took away, and when they were back;
//! - recovery: the first good second after the first bad one (and after its
//!   action ended) that starts `settle_s` good seconds in a row, where good
//!   means the success ratio *and* the latency within target.
//!
//! A fault owns the seconds until the next fault's injection: errors after
//! that are the next fault's.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::{FaultSummary, RecoveryRule, capacity};
use crate::{
    events::{Event, EventKind},
    record::SecondRow,
};

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Per second: the rule's latency percentile and p99, in ms.
struct Latencies {
    target: BTreeMap<u64, f64>,
    p99: BTreeMap<u64, f64>,
}

impl Latencies {
    fn new(histograms: Option<&BTreeMap<u64, Histogram<u64>>>, rule: &RecoveryRule) -> Self {
        let mut target = BTreeMap::new();
        let mut p99 = BTreeMap::new();
        for (t, h) in histograms.into_iter().flatten() {
            if h.is_empty() {
                continue;
            }
            let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            p99.insert(*t, ms(0.99));
            if let Some(l) = rule.latency {
                target.insert(*t, ms(l.percentile.quantile()));
            }
        }
        Self { target, p99 }
    }

    /// Above the target in second `t` (false without a target or a figure).
    fn slow(&self, t: u64, rule: &RecoveryRule) -> bool {
        rule.latency
            .is_some_and(|l| self.target.get(&t).is_some_and(|v| *v > l.target_ms))
    }
}

/// A fault as the run injected it.
struct Injection<'a> {
    t_ms: u64,
    id: &'a str,
    name: &'a str,
    kind: &'a str,
    targets: &'a [String],
}

fn injections(events: &[Event]) -> Vec<Injection<'_>> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::FaultInjected {
                id,
                name,
                kind,
                targets,
                ..
            } => Some(Injection {
                t_ms: e.t_ms,
                id,
                name,
                kind,
                targets,
            }),
            _ => None,
        })
        .collect()
}

/// The run's seconds as the recovery rule judges them.
struct Judged<'a> {
    by_t: BTreeMap<u64, &'a SecondRow>,
    last_t: u64,
    latencies: Latencies,
    rule: RecoveryRule,
}

impl Judged<'_> {
    /// The success ratio is at or above the threshold (a second without
    /// requests is not held against anyone).
    fn ok(&self, t: u64) -> bool {
        self.by_t.get(&t).is_none_or(|r| {
            r.requests() == 0
                || (r.requests() - r.failed()) as f64 / r.requests() as f64 >= self.rule.threshold
        })
    }

    /// Ok, and the latency within target.
    fn good(&self, t: u64) -> bool {
        self.ok(t) && !self.latencies.slow(t, &self.rule)
    }

    fn failed(&self, seconds: std::ops::Range<u64>) -> u64 {
        seconds
            .filter_map(|t| self.by_t.get(&t))
            .map(|r| r.failed())
            .sum()
    }
}

/// One summary per injected fault, in injection order.
pub fn faults(
    events: &[Event],
    seconds: &[SecondRow],
    histograms: Option<&BTreeMap<u64, Histogram<u64>>>,
    rule: RecoveryRule,
) -> Vec<FaultSummary> {
    let judged = Judged {
        by_t: seconds.iter().map(|r| (r.t, r)).collect(),
        last_t: seconds.last().map_or(0, |r| r.t),
        latencies: Latencies::new(histograms, &rule),
        rule,
    };
    let ended: BTreeMap<&str, u64> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::FaultEnded { id, .. } => Some((id.as_str(), e.t_ms)),
            _ => None,
        })
        .collect();
    let injected = injections(events);
    let capacity = capacity::changes(events);
    injected
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let next_ms = injected.get(i + 1).map(|n| n.t_ms);
            let end_ms = ended.get(f.id).copied();
            let mut summary = judge(&judged, f, end_ms, next_ms);
            let loss = capacity::loss(&capacity, f.t_ms, next_ms.unwrap_or(u64::MAX));
            summary.replicas_lost = Some(loss.replicas);
            summary.instances_lost = Some(loss.instances);
            summary.capacity_back_at_s = loss.back_at_ms.map(secs);
            summary.alarm_after_s = alarm_after(events, f.t_ms, next_ms);
            summary.replacements = replacements(events, f.t_ms, f.targets);
            summary
        })
        .collect()
}

/// What the shoppers saw of one fault: first error, recovery, errors and
/// slow seconds until it recovered (or as far as it owns).
fn judge(
    judged: &Judged<'_>,
    f: &Injection<'_>,
    end_ms: Option<u64>,
    next_ms: Option<u64>,
) -> FaultSummary {
    let rule = &judged.rule;
    let at = secs(f.t_ms);
    // Seconds are whole: the injection's own second counts.
    let start = f.t_ms / 1000;
    let action_end_ms = end_ms.unwrap_or(f.t_ms);
    // The last second this fault owns.
    let limit = next_ms
        .map_or(u64::MAX, |t| (t / 1000).saturating_sub(1).max(start))
        .min(start + rule.horizon_s)
        .min(judged.last_t);
    let first_bad = (start..=limit).find(|t| !judged.good(*t));
    let first_error = (start..=limit).find(|t| !judged.ok(*t));
    let last_t = judged.last_t;
    let recovered = first_bad.and_then(|bad| {
        (bad + 1..=last_t)
            .filter(|s| s * 1000 >= action_end_ms)
            // Good for the settle window, or until the run ended.
            .find(|s| (*s..*s + rule.settle_s).all(|t| t > last_t || judged.good(t)))
    });
    let recovered_at_s = match first_bad {
        None => Some(at.max(secs(action_end_ms))),
        Some(_) => recovered.map(|s| s as f64),
    };
    // The seconds the fault is judged over: until it recovered, or as far
    // as it owns.
    let until = recovered.unwrap_or(limit + 1).max(start + 1);
    let errors_until = match first_bad {
        Some(_) => until,
        None => start + 1,
    }
    .max(action_end_ms / 1000 + 1)
    .min(limit + 1)
    .max(start + 1);
    FaultSummary {
        id: f.id.to_string(),
        name: f.name.to_string(),
        kind: f.kind.to_string(),
        targets: f.targets.to_vec(),
        injected_at_s: Some(at),
        ended_at_s: end_ms.map(secs),
        first_error_at_s: first_error.map(|bad| (bad as f64).max(at)),
        recovered_at_s,
        recovery_s: recovered_at_s.map(|r| (r - at).max(0.0)),
        // Every failed request from the injection's second to the later
        // of its recovery and its action's end: a failover whose seconds
        // all stayed above the success threshold still failed requests.
        errors: Some(judged.failed(start..errors_until)),
        slow_seconds: rule.latency.map(|_| {
            (start..until)
                .filter(|t| judged.latencies.slow(*t, rule))
                .count() as u64
        }),
        worst_p99_ms: judged
            .latencies
            .p99
            .range(start..until)
            .map(|(_, v)| *v)
            .reduce(f64::max),
        replicas_lost: None,
        instances_lost: None,
        capacity_back_at_s: None,
        alarm_after_s: None,
        replacements: Vec::new(),
        link_latency: None,
    }
}

/// Seconds from the injection to the first monitoring alarm firing, before
/// the next fault.
fn alarm_after(events: &[Event], t_ms: u64, next_ms: Option<u64>) -> Option<f64> {
    events
        .iter()
        .filter(|e| e.t_ms >= t_ms && next_ms.is_none_or(|n| e.t_ms < n))
        .find(|e| matches!(&e.kind, EventKind::AlarmState { state, .. } if state == "ALARM"))
        .map(|e| secs(e.t_ms - t_ms))
}

/// The instances launched to replace the fault's targets.
fn replacements(events: &[Event], t_ms: u64, targets: &[String]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.t_ms >= t_ms)
        .filter_map(|e| match &e.kind {
            EventKind::InstanceLaunching {
                instance,
                replaces: Some(old),
                ..
            } if targets.contains(old) => Some(instance.clone()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{
        observe::LatencyRule,
        record::{StepRow, new_histogram},
        scenario::Percentile,
    };

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

    fn kill_at(t_ms: u64, end_ms: u64) -> Vec<Event> {
        vec![
            ev(
                t_ms,
                "fault.injected",
                json!({"id": "f1", "name": "kill cart", "kind": "kill-pod", "targets": ["cart-1"]}),
            ),
            ev(end_ms, "fault.ended", json!({"id": "f1"})),
        ]
    }

    #[test]
    fn recovery_is_read_from_what_shoppers_saw() {
        // Errors in seconds 11 and 12 after a fault at 10.5 s; good after.
        let seconds: Vec<SecondRow> = (0..30)
            .map(|t| row(t, 100, if t == 11 || t == 12 { 30 } else { 0 }))
            .collect();
        let events = kill_at(10_500, 10_600);
        let f = &faults(&events, &seconds, None, RecoveryRule::default())[0];
        assert_eq!(
            (f.id.as_str(), f.targets.as_slice()),
            ("f1", &["cart-1".to_string()][..])
        );
        assert_eq!(f.ended_at_s, Some(10.6));
        assert_eq!(f.first_error_at_s, Some(11.0));
        assert_eq!(f.recovered_at_s, Some(13.0));
        assert_eq!(f.recovery_s, Some(2.5));
        assert_eq!(f.errors, Some(60));
        assert_eq!(f.slow_seconds, None, "no latency target, no figure");

        // No error at all: recovered at once (measured, zero).
        let clean: Vec<SecondRow> = (0..30).map(|t| row(t, 100, 0)).collect();
        let f = &faults(&events, &clean, None, RecoveryRule::default())[0];
        assert_eq!(f.errors, Some(0));
        assert!((f.recovery_s.unwrap() - 0.1).abs() < 1e-9, "{f:?}");

        // Bad until the last second, which alone is good: recovered there
        // (the run ended while good).
        let late: Vec<SecondRow> = (0..20)
            .map(|t| row(t, 100, if (11..19).contains(&t) { 50 } else { 0 }))
            .collect();
        let f = &faults(&events, &late, None, RecoveryRule::default())[0];
        assert_eq!(f.recovered_at_s, Some(19.0));

        // Never good again: not recovered (null), errors counted to the end.
        let broken: Vec<SecondRow> = (0..20)
            .map(|t| row(t, 100, if t >= 11 { 50 } else { 0 }))
            .collect();
        let f = &faults(&events, &broken, None, RecoveryRule::default())[0];
        assert_eq!((f.recovered_at_s, f.recovery_s), (None, None));
        assert_eq!(f.errors, Some(450));
    }

    #[test]
    fn failures_during_a_fault_s_action_count_though_no_second_went_bad() {
        // A failover from 20.0 s to 22.5 s: 3 of 1,000 requests fail in
        // second 20 and 1 in second 22 (every second above the threshold),
        // 2 more long after it is over.
        let seconds: Vec<SecondRow> = (0..40)
            .map(|t| {
                let failed = match t {
                    20 => 3,
                    22 => 1,
                    30 => 2,
                    _ => 0,
                };
                row(t, 1000, failed)
            })
            .collect();
        let events = vec![
            ev(
                20_001,
                "fault.injected",
                json!({"id": "f1", "name": "failover", "kind": "db-failover"}),
            ),
            ev(22_500, "fault.ended", json!({"id": "f1"})),
        ];
        let f = &faults(&events, &seconds, None, RecoveryRule::default())[0];
        assert_eq!(f.errors, Some(4), "{f:?}");
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
        let f = faults(&events, &seconds, None, RecoveryRule::default());
        assert_eq!((f[0].first_error_at_s, f[0].errors), (None, Some(0)));
        assert_eq!(
            (f[1].first_error_at_s, f[1].errors),
            (Some(40.0), Some(250))
        );
        assert_eq!(f[1].recovered_at_s, Some(45.0));
    }

    /// One histogram per second: 100 requests at 10 ms, and `slow` of them
    /// at `ms`.
    fn latencies(slow_at: &[(u64, u64, u64)], n: u64) -> BTreeMap<u64, Histogram<u64>> {
        (0..n)
            .map(|t| {
                let mut h = new_histogram();
                h.record_n(10_000, 100).unwrap();
                for (s, count, ms) in slow_at {
                    if *s == t {
                        h.record_n(ms * 1000, *count).unwrap();
                    }
                }
                (t, h)
            })
            .collect()
    }

    #[test]
    fn a_fault_felt_only_as_latency_has_slow_seconds_a_worst_p99_and_a_recovery() {
        // No failed request, but p99 above the 500 ms target in seconds 21
        // and 22 after a failover at 20 s.
        let seconds: Vec<SecondRow> = (0..40).map(|t| row(t, 100, 0)).collect();
        let histograms = latencies(&[(21, 5, 1200), (22, 5, 800)], 40);
        let rule = RecoveryRule {
            latency: Some(LatencyRule {
                percentile: Percentile::P99,
                target_ms: 500.0,
            }),
            ..RecoveryRule::default()
        };
        let events = vec![
            ev(
                20_000,
                "fault.injected",
                json!({"id": "f1", "name": "failover", "kind": "db-failover", "targets": ["mariadb-1"]}),
            ),
            ev(20_300, "fault.ended", json!({"id": "f1"})),
        ];
        let f = &faults(&events, &seconds, Some(&histograms), rule)[0];
        assert_eq!(f.errors, Some(0));
        assert_eq!(f.first_error_at_s, None);
        assert_eq!(f.slow_seconds, Some(2));
        assert!((f.worst_p99_ms.unwrap() - 1200.0).abs() < 2.0, "{f:?}");
        // Not "recovery 0 s": it recovered when p99 came back, at second 23.
        assert_eq!(f.recovered_at_s, Some(23.0));
        assert_eq!(f.recovery_s, Some(3.0));
        // Without a latency target the same run reads as no impact.
        let f = &faults(
            &events,
            &seconds,
            Some(&histograms),
            RecoveryRule::default(),
        )[0];
        assert_eq!(f.slow_seconds, None);
        assert!((f.recovery_s.unwrap() - 0.3).abs() < 1e-9, "{f:?}");
    }

    #[test]
    fn a_fault_s_capacity_figures_come_from_the_platform_s_events() {
        let seconds: Vec<SecondRow> = (0..30).map(|t| row(t, 100, 0)).collect();
        let mut events = vec![
            ev(
                1_000,
                "replica.serving",
                json!({"service": "cart", "replica": "cart-1"}),
            ),
            ev(
                1_000,
                "replica.serving",
                json!({"service": "cart", "replica": "cart-2"}),
            ),
        ];
        events.extend(kill_at(10_000, 10_010));
        events.push(ev(
            10_050,
            "replica.killed",
            json!({"service": "cart", "replica": "cart-1"}),
        ));
        events.push(ev(
            12_400,
            "replica.serving",
            json!({"service": "cart", "replica": "cart-3"}),
        ));
        events.push(ev(
            13_500,
            "alarm.state",
            json!({"alarm": "shop-unhealthy-hosts", "state": "ALARM"}),
        ));
        let f = &faults(&events, &seconds, None, RecoveryRule::default())[0];
        assert_eq!((f.replicas_lost, f.instances_lost), (Some(1), Some(0)));
        assert_eq!(f.capacity_back_at_s, Some(12.4));
        assert_eq!(
            f.alarm_after_s,
            Some(3.5),
            "the alarm fired 3.5 s after the kill"
        );
    }

    #[test]
    fn a_terminated_instance_s_replacement_is_listed_and_other_launches_are_not() {
        let seconds: Vec<SecondRow> = (0..30).map(|t| row(t, 100, 0)).collect();
        let launching = |t_ms, id: &str, replaces: Option<&str>| {
            ev(
                t_ms,
                "instance.launching",
                json!({"instance": id, "replaces": replaces}),
            )
        };
        let events = vec![
            launching(1_000, "i-0", Some("i-1")),
            ev(
                10_000,
                "fault.injected",
                json!({"id": "f1", "name": "lose one", "kind": "terminate-instance", "targets": ["i-1"]}),
            ),
            ev(10_100, "fault.ended", json!({"id": "f1"})),
            launching(12_000, "i-9", None),
            launching(13_000, "i-2", Some("i-1")),
            launching(14_000, "i-3", Some("i-7")),
        ];
        let f = &faults(&events, &seconds, None, RecoveryRule::default())[0];
        assert_eq!(f.targets, ["i-1"]);
        assert_eq!(
            f.replacements,
            ["i-2"],
            "not the launch before the fault, a scale-out, nor another's replacement"
        );
    }
}
