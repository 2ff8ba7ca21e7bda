//! Capacity over time, from the platform's events: replicas serving per
//! service, and instances running and serving. The replicas and instances
//! charts are drawn from it, and a fault's capacity figures (what it took
//! away, when it was back) are read from it.

use std::collections::{BTreeMap, BTreeSet};

use crate::events::{Event, EventKind};

/// What a change is counted in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unit {
    /// Replicas of this service serving.
    Replicas(String),
    /// Instances healthy behind the load balancer (or running, where the
    /// platform does not tell health apart).
    Instances,
}

/// One change of a count: (ms on the run's clock, what, new count).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub t_ms: u64,
    pub unit: Unit,
    pub count: u32,
}

/// Every change of serving capacity, in time order.
pub fn changes(events: &[Event]) -> Vec<Change> {
    let mut replicas: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut instances: BTreeSet<String> = BTreeSet::new();
    // Platforms that report health count healthy instances; the others
    // count running ones.
    let health = events
        .iter()
        .any(|e| matches!(e.kind, EventKind::InstanceServing { .. }));
    let mut out = Vec::new();
    for e in events {
        let (unit, changed) = match &e.kind {
            EventKind::ReplicaServing { service, replica } => (
                Unit::Replicas(service.clone()),
                replicas
                    .entry(service.clone())
                    .or_default()
                    .insert(replica.clone()),
            ),
            EventKind::ReplicaExited {
                service, replica, ..
            }
            | EventKind::ReplicaUnready { service, replica }
            | EventKind::ReplicaKilled {
                service, replica, ..
            }
            | EventKind::ReplicaStopping {
                service, replica, ..
            }
            | EventKind::ReplicaStopped {
                service, replica, ..
            } => (
                Unit::Replicas(service.clone()),
                replicas.entry(service.clone()).or_default().remove(replica),
            ),
            EventKind::InstanceServing { instance, .. } if health => {
                (Unit::Instances, instances.insert(instance.clone()))
            }
            EventKind::InstanceRunning { instance, .. } if !health => {
                (Unit::Instances, instances.insert(instance.clone()))
            }
            EventKind::InstanceUnhealthy { instance, .. } if health => {
                (Unit::Instances, instances.remove(instance))
            }
            EventKind::InstanceTerminated { instance, .. } => {
                (Unit::Instances, instances.remove(instance))
            }
            _ => continue,
        };
        if changed {
            let count = match &unit {
                Unit::Replicas(s) => replicas.get(s).map_or(0, BTreeSet::len),
                Unit::Instances => instances.len(),
            } as u32;
            out.push(Change {
                t_ms: e.t_ms,
                unit,
                count,
            });
        }
    }
    out
}

/// Replicas serving per service over time: (seconds, count).
pub fn replicas_over_time(events: &[Event]) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for c in changes(events) {
        if let Unit::Replicas(service) = c.unit {
            out.entry(service)
                .or_default()
                .push((c.t_ms as f64 / 1000.0, c.count as f64));
        }
    }
    out
}

/// Instances over time: (seconds, count), running and (where the platform
/// tells) serving.
pub fn instances_over_time(events: &[Event]) -> Vec<(&'static str, Vec<(f64, f64)>)> {
    let mut running: BTreeSet<&str> = BTreeSet::new();
    let mut serving: BTreeSet<&str> = BTreeSet::new();
    let (mut run_series, mut serve_series) = (Vec::new(), Vec::new());
    for e in events {
        let at = e.at_s();
        match &e.kind {
            EventKind::InstanceRunning { instance, .. } if running.insert(instance) => {
                run_series.push((at, running.len() as f64));
            }
            EventKind::InstanceServing { instance, .. } if serving.insert(instance) => {
                serve_series.push((at, serving.len() as f64));
            }
            EventKind::InstanceUnhealthy { instance, .. } if serving.remove(instance.as_str()) => {
                serve_series.push((at, serving.len() as f64));
            }
            EventKind::InstanceTerminated { instance, .. } => {
                if running.remove(instance.as_str()) {
                    run_series.push((at, running.len() as f64));
                }
                if serving.remove(instance.as_str()) {
                    serve_series.push((at, serving.len() as f64));
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if !run_series.is_empty() {
        out.push(("running", run_series));
    }
    if !serve_series.is_empty() {
        out.push(("serving", serve_series));
    }
    out
}

/// What a fault took away and when it was back.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Loss {
    pub replicas: u32,
    pub instances: u32,
    /// When every count was back at its level before the fault (None: it
    /// was never lost, or not back before `until`).
    pub back_at_ms: Option<u64>,
}

/// Capacity lost between `from_ms` (the injection) and `until_ms` (the next
/// fault, or the end): the largest shortfall against the counts just before
/// `from_ms`, and when the shortfall last came back to zero.
pub fn loss(changes: &[Change], from_ms: u64, until_ms: u64) -> Loss {
    let mut counts: BTreeMap<&Unit, u32> = BTreeMap::new();
    for c in changes.iter().take_while(|c| c.t_ms < from_ms) {
        counts.insert(&c.unit, c.count);
    }
    let baseline = counts.clone();
    let short = |counts: &BTreeMap<&Unit, u32>, replicas: bool| -> u32 {
        baseline
            .iter()
            .filter(|(u, _)| matches!(u, Unit::Replicas(_)) == replicas)
            .map(|(u, b)| b.saturating_sub(counts.get(*u).copied().unwrap_or(0)))
            .sum()
    };
    let mut loss = Loss::default();
    let mut short_now = false;
    for c in changes
        .iter()
        .filter(|c| c.t_ms >= from_ms && c.t_ms < until_ms)
    {
        counts.insert(&c.unit, c.count);
        let (r, i) = (short(&counts, true), short(&counts, false));
        loss.replicas = loss.replicas.max(r);
        loss.instances = loss.instances.max(i);
        if r + i > 0 {
            short_now = true;
            loss.back_at_ms = None;
        } else if short_now {
            short_now = false;
            loss.back_at_ms = Some(c.t_ms);
        }
    }
    loss
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ev(t_ms: u64, kind: &str, fields: serde_json::Value) -> Event {
        serde_json::from_value(json!({"t_ms": t_ms, "kind": kind, "fields": fields})).unwrap()
    }

    fn serving(t: u64, replica: &str) -> Event {
        ev(
            t,
            "replica.serving",
            json!({"service": "cart", "replica": replica}),
        )
    }

    #[test]
    fn a_killed_replica_is_capacity_lost_until_its_replacement_serves() {
        let events = vec![
            serving(1_000, "cart-1"),
            serving(1_100, "cart-2"),
            ev(
                10_000,
                "replica.killed",
                json!({"service": "cart", "replica": "cart-1"}),
            ),
            serving(11_500, "cart-3"),
        ];
        let c = changes(&events);
        let l = loss(&c, 10_000, u64::MAX);
        assert_eq!((l.replicas, l.instances), (1, 0));
        assert_eq!(l.back_at_ms, Some(11_500));
        // Before the fault nothing was lost.
        assert_eq!(loss(&c, 2_000, 9_000), Loss::default());
        // Cut off before the replacement: not back.
        assert_eq!(loss(&c, 10_000, 11_000).back_at_ms, None);
        assert_eq!(
            replicas_over_time(&events)["cart"].last(),
            Some(&(11.5, 2.0))
        );
    }

    #[test]
    fn a_lost_instance_counts_its_replicas_and_itself_until_all_are_back() {
        let events = vec![
            ev(500, "instance.running", json!({"instance": "i-1"})),
            ev(600, "instance.running", json!({"instance": "i-2"})),
            serving(1_000, "cart-1"),
            serving(1_100, "cart-2"),
            ev(20_000, "instance.terminated", json!({"instance": "i-1"})),
            ev(
                20_200,
                "replica.exited",
                json!({"service": "cart", "replica": "cart-1", "reason": "lost"}),
            ),
            ev(40_000, "instance.running", json!({"instance": "i-3"})),
            serving(41_000, "cart-3"),
        ];
        let l = loss(&changes(&events), 20_000, u64::MAX);
        assert_eq!((l.replicas, l.instances), (1, 1));
        assert_eq!(l.back_at_ms, Some(41_000));
        let inst = instances_over_time(&events);
        assert_eq!(inst[0].0, "running");
        assert_eq!(
            inst[0].1,
            [(0.5, 1.0), (0.6, 2.0), (20.0, 1.0), (40.0, 2.0)]
        );
    }
}
