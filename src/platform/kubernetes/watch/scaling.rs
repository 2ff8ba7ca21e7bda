//! Scaling: the replicas each Deployment asks for (its next pods are a
//! scale-out when it asked for more) and the HPAs' signals and decisions.

use std::collections::BTreeMap;

use k8s_openapi::api::{apps::v1::Deployment, autoscaling::v2::HorizontalPodAutoscaler};
use kube::ResourceExt;

use super::{Seen, Track};
use crate::events::EventKind;

/// Deployments by name: the replicas each asks for. More than before (an
/// HPA or a person scaled it) means its next pods are a scale-out.
#[derive(Debug, Default)]
pub struct Deployments {
    desired: BTreeMap<String, i32>,
}

impl Track<Deployment> for Deployments {
    fn key(&self, deployment: &Deployment) -> String {
        deployment.name_any()
    }

    fn apply(&mut self, deployment: &Deployment, seen: &mut Seen, _out: &mut Vec<EventKind>) {
        let name = deployment.name_any();
        let desired = deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1);
        let before = self.desired.insert(name.clone(), desired);
        if seen.first_list {
            return;
        }
        let pending = seen.scale_outs.entry(name).or_default();
        match before {
            Some(before) if desired > before => *pending += (desired - before) as u32,
            Some(before) if desired < before => *pending = 0,
            _ => {}
        }
    }

    fn remove(&mut self, key: &str, _out: &mut Vec<EventKind>) {
        self.desired.remove(key);
    }

    fn keys(&self) -> Vec<String> {
        self.desired.keys().cloned().collect()
    }
}

#[derive(Debug, Clone, Copy)]
struct HpaState {
    desired: i32,
    above: bool,
}

/// HPAs by name: a decision when the desired replicas change, a signal when
/// the CPU the HPA sees crosses above its target. The service is what the
/// HPA scales (its `scaleTargetRef`).
#[derive(Debug, Default)]
pub struct Hpas {
    seen: BTreeMap<String, HpaState>,
}

impl Track<HorizontalPodAutoscaler> for Hpas {
    fn key(&self, hpa: &HorizontalPodAutoscaler) -> String {
        hpa.name_any()
    }

    fn apply(&mut self, hpa: &HorizontalPodAutoscaler, _seen: &mut Seen, out: &mut Vec<EventKind>) {
        let service = hpa
            .spec
            .as_ref()
            .map(|s| s.scale_target_ref.name.clone())
            .unwrap_or_else(|| hpa.name_any());
        // A new HPA has no status until the controller's first sync, and
        // then one with `desiredReplicas: 0` and no metrics until it has
        // read them: neither is a scaling decision.
        let Some(status) = hpa.status.clone() else {
            return;
        };
        let has_metrics = status
            .current_metrics
            .as_ref()
            .is_some_and(|m| !m.is_empty());
        if status.desired_replicas == 0 || !has_metrics {
            return;
        }
        let desired = status.desired_replicas;
        let current = status.current_replicas.unwrap_or(desired);
        let cpu = status
            .current_metrics
            .iter()
            .flatten()
            .filter_map(|m| m.resource.as_ref())
            .find(|r| r.name == "cpu")
            .and_then(|r| r.current.average_utilization);
        let target = hpa
            .spec
            .iter()
            .flat_map(|s| s.metrics.iter().flatten())
            .filter_map(|m| m.resource.as_ref())
            .find(|r| r.name == "cpu")
            .and_then(|r| r.target.average_utilization);
        let above = matches!((cpu, target), (Some(c), Some(t)) if c > t);
        let before = self
            .seen
            .insert(hpa.name_any(), HpaState { desired, above });
        let percent = |v: Option<i32>| v.map(f64::from);
        if above && !before.is_some_and(|b| b.above) {
            out.push(EventKind::ScalingSignal {
                service: service.clone(),
                observed_cpu_percent: percent(cpu),
                target_cpu_percent: percent(target),
                replicas: u32::try_from(current).ok(),
            });
        }
        let from = before.map_or(current, |b| b.desired);
        if from != desired {
            out.push(EventKind::ScalingDecision {
                service,
                from: u32::try_from(from).unwrap_or(0),
                to: u32::try_from(desired).unwrap_or(0),
                observed_cpu_percent: percent(cpu),
                target_cpu_percent: percent(target),
            });
        }
    }

    fn remove(&mut self, key: &str, _out: &mut Vec<EventKind>) {
        self.seen.remove(key);
    }

    fn keys(&self) -> Vec<String> {
        self.seen.keys().cloned().collect()
    }
}
