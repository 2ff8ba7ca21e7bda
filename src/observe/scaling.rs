//! Scale-outs, over the whole run (the ramp included): each upward scaling
//! decision, from the signal crossing its target to the last added replica
//! or instance serving. One that never served is a breach, unless the
//! autoscaler withdrew it before it served (a later decision below it, or
//! its new replicas stopped first), or the run ended before its target
//! time had passed.

use serde::{Deserialize, Serialize};

use super::ScaleOut;
use crate::events::{Event, EventKind};

/// What became of a scale-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScaleOutcome {
    /// Every added unit served.
    Served,
    /// The autoscaler took it back before its units served.
    Withdrawn,
    /// The run ended while its units were still coming.
    CutOff,
    /// Its units never served although there was time.
    NeverServed,
}

impl ScaleOutcome {
    pub fn words(self) -> &'static str {
        match self {
            ScaleOutcome::Served => "served",
            ScaleOutcome::Withdrawn => "withdrawn by the autoscaler before it served",
            ScaleOutcome::CutOff => "cut off by the end of the run",
            ScaleOutcome::NeverServed => "never served",
        }
    }
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Every upward decision; `end_ms` is when the run ended and `grace` how
/// long a scale-out may take before not serving is a breach (the SLO's
/// target, or none: then any unserved one that was not withdrawn is).
pub fn scale_outs(events: &[Event], end_ms: u64, grace_ms: Option<u64>) -> Vec<ScaleOut> {
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
            .find(|s| {
                matches!(&s.kind, EventKind::ScalingSignal { service: s2, .. } if s2 == service)
            })
            .map_or(e.t_ms, |s| s.t_ms);
        let later = &events[i + 1..];
        // The units started for this decision.
        let started: Vec<&str> = later
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
        let served_at = |name: &str| {
            later
                .iter()
                .find(|s| match &s.kind {
                    EventKind::ReplicaServing { replica, .. } => replica == name,
                    EventKind::InstanceServing { instance, .. } => instance == name,
                    _ => false,
                })
                .map(|s| s.t_ms)
        };
        let serving: Vec<Option<u64>> = started.iter().map(|n| served_at(n)).collect();
        let all_served = !started.is_empty()
            && started.len() == (to - from) as usize
            && serving.iter().all(Option::is_some);
        let ready_ms = all_served
            .then(|| serving.iter().flatten().copied().max())
            .flatten();
        let outcome = if ready_ms.is_some() {
            ScaleOutcome::Served
        } else {
            // Withdrawn: a later decision for the service below this one's
            // target, or an added unit going away, before all served.
            let withdrawn = later.iter().any(|s| match &s.kind {
                EventKind::ScalingDecision {
                    service: s2,
                    to: t2,
                    ..
                } => s2 == service && t2 < to,
                EventKind::ReplicaExited { replica, .. }
                | EventKind::ReplicaStopping { replica, .. } => {
                    started.contains(&replica.as_str()) && served_at(replica).is_none()
                }
                EventKind::InstanceTerminated { instance, .. } => {
                    started.contains(&instance.as_str()) && served_at(instance).is_none()
                }
                _ => false,
            });
            let had_time = grace_ms.is_none_or(|g| end_ms.saturating_sub(signal_ms) >= g);
            if withdrawn {
                ScaleOutcome::Withdrawn
            } else if had_time {
                ScaleOutcome::NeverServed
            } else {
                ScaleOutcome::CutOff
            }
        };
        out.push(ScaleOut {
            service: service.clone(),
            from: *from,
            to: *to,
            signal_at_s: secs(signal_ms),
            ready_at_s: ready_ms.map(secs),
            duration_s: ready_ms.map(|r| secs(r.saturating_sub(signal_ms))),
            outcome,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ev(t_ms: u64, kind: &str, fields: serde_json::Value) -> Event {
        serde_json::from_value(json!({"t_ms": t_ms, "kind": kind, "fields": fields})).unwrap()
    }

    fn decision(t: u64, from: u32, to: u32) -> Event {
        ev(
            t,
            "autoscale.decision",
            json!({"service": "catalogue", "from": from, "to": to}),
        )
    }

    fn started(t: u64, name: &str) -> Event {
        ev(
            t,
            "replica.started",
            json!({"service": "catalogue", "replica": name, "scale_out": true}),
        )
    }

    fn serving(t: u64, name: &str) -> Event {
        ev(
            t,
            "replica.serving",
            json!({"service": "catalogue", "replica": name}),
        )
    }

    #[test]
    fn a_scale_out_runs_from_the_signal_to_the_added_replica_serving() {
        let events = vec![
            ev(1_000, "autoscale.signal", json!({"service": "catalogue"})),
            decision(3_000, 2, 3),
            started(3_100, "catalogue-3"),
            serving(4_700, "catalogue-3"),
        ];
        let s = &scale_outs(&events, 60_000, None)[0];
        assert_eq!((s.from, s.to), (2, 3));
        assert_eq!(s.signal_at_s, 1.0);
        assert_eq!(s.ready_at_s, Some(4.7));
        assert_eq!(s.duration_s, Some(3.7));
        assert_eq!(s.outcome, ScaleOutcome::Served);
    }

    #[test]
    fn an_unserved_scale_out_is_never_served_withdrawn_or_cut_off() {
        let stuck = vec![
            decision(3_000, 2, 4),
            started(3_100, "c-3"),
            started(3_100, "c-4"),
            serving(5_000, "c-3"),
        ];
        let s = &scale_outs(&stuck, 400_000, Some(300_000))[0];
        assert_eq!((s.outcome, s.duration_s), (ScaleOutcome::NeverServed, None));
        // The run ended 10 s after the signal, with a 5 min target: cut off.
        assert_eq!(
            scale_outs(&stuck, 13_000, Some(300_000))[0].outcome,
            ScaleOutcome::CutOff
        );
        // The autoscaler went back down before c-4 served: withdrawn.
        let mut withdrawn = stuck.clone();
        withdrawn.push(decision(6_000, 4, 3));
        assert_eq!(
            scale_outs(&withdrawn, 400_000, Some(300_000))[0].outcome,
            ScaleOutcome::Withdrawn
        );
        let mut stopped = stuck;
        stopped.push(ev(
            6_000,
            "replica.stopping",
            json!({"service": "catalogue", "replica": "c-4"}),
        ));
        assert_eq!(
            scale_outs(&stopped, 400_000, Some(300_000))[0].outcome,
            ScaleOutcome::Withdrawn
        );
    }
}
