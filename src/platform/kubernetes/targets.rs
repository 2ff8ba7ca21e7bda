//! What a fault can do on Kubernetes and what it would hit: whether the
//! platform supports it, what it does in words (for `plan`), the candidates
//! in the order a blast radius picks them, and what runs where
//! (`gameday status`, the plan's target section).
//!
//! Safety: everything is read in the scenario's namespace, except nodes,
//! which are cluster-wide. A node is a candidate of terminate-instance only
//! when it runs pods of the namespace, is Ready and schedulable, and is not
//! a control-plane node.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{
    cluster::Cluster,
    errors::Result,
    faults::{BROKER, CACHE, DATABASE},
    inventory::{NodeInfo, PodInfo},
};
use crate::{
    platform::{
        ComponentInfo, InstanceInfo, InstanceState, Inventory, ReplicaInfo, Support, Target,
        TargetKind,
    },
    scenario::{Fault, FaultKind, KubernetesTarget},
    shop::SERVICES,
};

/// Whether the kubernetes platform can perform `fault` for this target.
pub fn supports(target: &KubernetesTarget, fault: &Fault) -> Support {
    match &fault.kind {
        FaultKind::DbFailover {
            rebuild_standby: false,
        } => Support::No {
            why: "the database's StatefulSet always recreates its pod; `rebuild-standby: false` has no meaning on kubernetes".into(),
        },
        FaultKind::KillPod { service, .. } if target.replicas.get(service) == Some(&0) => {
            Support::No {
                why: format!("target.replicas runs no {service} pod to kill"),
            }
        }
        FaultKind::TerminateInstance { graceful: true, .. } => Support::No {
            why: "a node's machine is lost outright; drain-node is the planned, graceful stop \
                  (cordon, evict honouring PodDisruptionBudgets)"
                .into(),
        },
        FaultKind::RestartCache { reboot: true } => Support::No {
            why: "Redis here keeps its append-only file on its volume: there is no reboot that \
                  loses the cache (drop `reboot`)"
                .into(),
        },
        FaultKind::Network { .. } => Support::No {
            why: "network faults on kubernetes need Toxiproxy in front of the infra Services"
                .into(),
        },
        FaultKind::KillPod { .. }
        | FaultKind::TerminateInstance { .. }
        | FaultKind::DbFailover { .. }
            if fault.duration.is_some() =>
        {
            Support::No {
                why: format!(
                    "{} does not last: Kubernetes repairs it itself (drop `duration`)",
                    fault.kind.key()
                ),
            }
        }
        _ => Support::Yes,
    }
}

/// What `fault` does on the cluster, in words.
pub fn describe(target: &KubernetesTarget, fault: &Fault) -> String {
    let ns = &target.namespace;
    let lasting = fault
        .duration
        .map(|d| humantime::format_duration(d).to_string());
    let server = |statefulset: &str| match &lasting {
        Some(d) => format!(
            "scale StatefulSet {statefulset} in namespace {ns} to 0, back to its current replicas after {d}"
        ),
        None => format!(
            "delete pod {statefulset}-0 in namespace {ns} (its own grace period); its StatefulSet recreates it"
        ),
    };
    match &fault.kind {
        FaultKind::KillPod {
            service,
            graceful: true,
            ..
        } => format!(
            "delete a ready {service} pod in namespace {ns} with its own grace period (SIGTERM, \
             the shop drains); its ReplicaSet starts a new one"
        ),
        FaultKind::KillPod { service, .. } => format!(
            "crash a ready {service} pod in namespace {ns}: SIGKILL to every process of its \
             containers from its node (a pod of image {} in the host's PID namespace), no SIGTERM; \
             the kubelet restarts the container in place",
            target
                .image_of("toolbox")
                .unwrap_or(crate::scenario::target::DEFAULT_TOOLBOX_IMAGE)
        ),
        FaultKind::TerminateInstance { zone, .. } => format!(
            "lose a node's machine{}: {}; Kubernetes marks the node NotReady after its grace \
             period, evicts its pods after their tolerations and reschedules them. Nodes are \
             cluster-wide: only Ready, schedulable, non-control-plane nodes that run pods of \
             namespace {ns} are candidates",
            zone.as_deref()
                .map(|z| format!(" in zone {z}"))
                .unwrap_or_default(),
            match &target.node_provider {
                Some(command) =>
                    format!("EC2 TerminateInstances for an aws:/// providerID, else `{command}`"),
                None => "EC2 TerminateInstances for an aws:/// providerID (any other node is \
                         refused: set target.node-provider.command)"
                    .into(),
            }
        ),
        FaultKind::DrainNode { zone, .. } => format!(
            "drain a node{} (planned maintenance): cordon it, evict its pods through the Eviction \
             API (PodDisruptionBudgets honoured, every pod on the node, whatever its namespace; \
             DaemonSet pods, bare pods and gameday's own stay); undo: uncordon it",
            zone.as_deref()
                .map(|z| format!(" in zone {z}"))
                .unwrap_or_default()
        ),
        FaultKind::DbFailover { .. } => format!(
            "delete pod {DATABASE}-0 in namespace {ns} with a 1 s grace period (killed, not force-deleted); its StatefulSet recreates \
             it (a single member: a restart, there is no standby to promote)"
        ),
        FaultKind::RestartCache { .. } => server(CACHE),
        FaultKind::RestartBroker => server(BROKER),
        FaultKind::Network { .. } => "not available on kubernetes".into(),
    }
}

impl Cluster {
    /// What a fault of this kind would hit now, in the order it picks.
    pub async fn candidates(&self, kind: &FaultKind) -> Result<Vec<Target>> {
        match kind {
            // Only ready pods: hitting one that does not serve hits nothing.
            FaultKind::KillPod { service, .. } => Ok(self
                .replicas_of(service)
                .await?
                .iter()
                .filter(|p| p.ready && super::faults::own_pod().is_none_or(|own| own != p.name))
                .map(|p| {
                    pod_target(TargetKind::Replica, p)
                        .service(service)
                        .detail(if p.ready { "ready" } else { "not ready" })
                })
                .collect()),
            FaultKind::TerminateInstance { zone, .. } | FaultKind::DrainNode { zone, .. } => {
                let pods = self.namespace_pods().await?;
                let nodes = self.nodes().await?;
                Ok(node_candidates(&pods, &nodes, zone.as_deref()))
            }
            FaultKind::Network { .. } => Ok(Vec::new()),
            FaultKind::DbFailover { .. } => {
                self.first_pod(DATABASE, TargetKind::Database, "the MariaDB primary")
                    .await
            }
            FaultKind::RestartCache { .. } => {
                self.first_pod(CACHE, TargetKind::Cache, "Redis").await
            }
            FaultKind::RestartBroker => {
                self.first_pod(BROKER, TargetKind::Broker, "RabbitMQ").await
            }
        }
    }

    /// Pod 0 of a StatefulSet, if it runs and is not terminating.
    async fn first_pod(
        &self,
        statefulset: &str,
        kind: TargetKind,
        what: &str,
    ) -> Result<Vec<Target>> {
        let name = format!("{statefulset}-0");
        Ok(self
            .replicas_of(statefulset)
            .await?
            .iter()
            .filter(|p| p.name == name)
            .map(|p| pod_target(kind, p).detail(what))
            .collect())
    }

    /// What runs where: the shop's pods as replicas (with their nodes as
    /// instances) and the StatefulSets' pods as infrastructure.
    pub async fn inventory(&self) -> Result<Inventory> {
        let pods = self.namespace_pods().await?;
        let serving = self.serving_pods().await?;
        let nodes = self.nodes().await?;
        Ok(inventory(&pods, &serving, &nodes))
    }
}

fn pod_target(kind: TargetKind, pod: &PodInfo) -> Target {
    let target = Target::new(kind, &pod.name);
    match &pod.node {
        Some(node) => target.on(node),
        None => target,
    }
}

/// The nodes terminate-instance may hit: Ready, schedulable, not control
/// plane, in `zone` when given, and running a pod of the namespace; by name.
pub fn node_candidates(pods: &[PodInfo], nodes: &[NodeInfo], zone: Option<&str>) -> Vec<Target> {
    let mut shop_pods: BTreeMap<&str, usize> = BTreeMap::new();
    for pod in pods.iter().filter(|p| !p.terminating) {
        if let Some(node) = &pod.node {
            *shop_pods.entry(node.as_str()).or_default() += 1;
        }
    }
    nodes
        .iter()
        .filter(|n| n.ready && n.schedulable && !n.control_plane)
        .filter(|n| zone.is_none() || n.zone.as_deref() == zone)
        .filter_map(|n| {
            let count = shop_pods.get(n.name.as_str())?;
            let target = Target::new(TargetKind::Instance, &n.name).detail(match &n.provider_id {
                Some(id) => format!("{count} pods of the namespace, {id}"),
                None => format!("{count} pods of the namespace"),
            });
            Some(match &n.zone {
                Some(z) => target.zone(z),
                None => target,
            })
        })
        .collect()
}

/// The inventory from what was listed: nodes that run the namespace's pods
/// are its instances.
pub fn inventory(pods: &[PodInfo], serving: &BTreeSet<String>, nodes: &[NodeInfo]) -> Inventory {
    let used: BTreeSet<&str> = pods.iter().filter_map(|p| p.node.as_deref()).collect();
    let instances = nodes
        .iter()
        .filter(|n| used.contains(n.name.as_str()))
        .map(|n| {
            let mut details = BTreeMap::new();
            if !n.schedulable {
                details.insert("cordoned".into(), Value::Bool(true));
            }
            if n.control_plane {
                details.insert("control_plane".into(), Value::Bool(true));
            }
            InstanceInfo {
                name: n.name.clone(),
                address: n.address.clone(),
                zone: n.zone.clone(),
                state: if n.ready {
                    InstanceState::Running
                } else {
                    InstanceState::Booting
                },
                healthy: Some(n.ready),
                details,
            }
        })
        .collect();
    let mut replicas = Vec::new();
    let mut infra = Vec::new();
    for pod in pods {
        let mut details = BTreeMap::new();
        if let Some(phase) = &pod.phase {
            details.insert("phase".into(), Value::from(phase.as_str()));
        }
        if pod.terminating {
            details.insert("terminating".into(), Value::Bool(true));
        }
        if let Some(port) = SERVICES.iter().position(|s| *s == pod.service) {
            replicas.push(ReplicaInfo {
                service: pod.service.clone(),
                name: pod.name.clone(),
                instance: pod.node.clone(),
                url: pod
                    .ip
                    .as_ref()
                    .map(|ip| format!("http://{ip}:{}", 8080 + port)),
                ready: pod.ready,
                serving: serving.contains(&pod.name),
                usage: None,
                details,
            });
        } else if [DATABASE, CACHE, BROKER].contains(&pod.service.as_str()) {
            details.insert("ready".into(), Value::Bool(pod.ready));
            if let Some(node) = &pod.node {
                details.insert("node".into(), Value::from(node.as_str()));
            }
            infra.push(ComponentInfo {
                name: pod.name.clone(),
                address: pod.ip.clone(),
                usage: None,
                details,
            });
        }
    }
    Inventory {
        platform: "kubernetes".into(),
        instances,
        replicas,
        infra,
        ..Inventory::default()
    }
}
