//! The kubernetes platform: the reference shop in one namespace of a
//! cluster, reached with kube's standard configuration (KUBECONFIG or
//! ~/.kube/config, else in-cluster; `target.context` picks a context).
//!
//! `deploy: true` applies reference-app/k8s by server-side apply and waits
//! for the rollout; the namespace is deleted afterwards only when this run
//! created it. `deploy: false` attaches to what runs. A run's watchers turn
//! what the cluster does into the run's typed events (see `watch`). Faults
//! act only in the scenario's context and namespace, and on nodes that run
//! its pods (see `targets`).

mod access;
mod backend;
mod cluster;
mod crash;
mod deploy;
pub mod errors;
mod faults;
mod inventory;
pub mod manifests;
mod providers;
mod targets;
pub mod watch;

#[cfg(test)]
mod tests;

use std::{collections::BTreeMap, sync::Arc, sync::Mutex};

use async_trait::async_trait;

pub use backend::{KubernetesBackend, KubernetesSite, connect, prepared};
pub use cluster::{Cluster, ClusterTarget, Identity, Timing};
pub use errors::{Error, PodProblem};
pub use faults::Action;
pub use providers::NodeProvider;
pub use targets::{describe, supports};

use self::faults::{BROKER, CACHE};
use crate::{
    events::{EventKind, EventLog},
    platform::{
        self, Inventory, Platform, Support, Target, TargetKind, Undo,
        lifecycle::{Shop, Watchers, progress},
    },
    scenario::{Fault, FaultKind, KubernetesTarget},
};

/// The grace period db-failover deletes the database's pod with. Not 0:
/// through the API that is a force delete, which removes the pod object at
/// once, so its StatefulSet may start a new `mariadb-0` on the same volume
/// while the old container still runs (Kubernetes warns against
/// force-deleting StatefulSet pods). With 1 s the kubelet kills it first,
/// as good as a crash.
pub const DATABASE_GRACE_SECONDS: u32 = 1;

/// The shop on a Kubernetes cluster, for a run, `plan` or `inject`.
pub struct KubernetesPlatform {
    cluster: Cluster,
    target: KubernetesTarget,
    entry_url: String,
    admin_token: Option<String>,
    events: Arc<EventLog>,
    /// Whether a run's watchers start (tests that script every request
    /// turn them off).
    watching: bool,
    /// The replicas a lasting cache or broker fault will scale back to, as
    /// read before acting (or why they could not be), by StatefulSet.
    scale_undos: Mutex<BTreeMap<String, std::result::Result<i32, String>>>,
}

impl KubernetesPlatform {
    /// The platform over a connected cluster, without watchers.
    pub fn new(
        cluster: Cluster,
        target: KubernetesTarget,
        entry_url: String,
        events: Arc<EventLog>,
    ) -> Self {
        Self {
            cluster,
            target,
            entry_url,
            admin_token: None,
            events,
            watching: true,
            scale_undos: Mutex::new(BTreeMap::new()),
        }
    }

    /// The shop's admin token (the manifests' secret).
    #[must_use]
    pub fn with_admin_token(mut self, token: Option<String>) -> Self {
        self.admin_token = token;
        self
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    fn refuse(&self, action: &str, why: impl Into<String>) -> platform::Error {
        platform::Error::refused(action, why)
    }

    /// kill-pod: a crash (SIGKILL from the node), or a delete with the pod's
    /// own grace period.
    async fn kill_pod(&self, t: &Target, graceful: bool) -> platform::Result<()> {
        let (service, replica, instance) = (
            t.service.clone().unwrap_or_default(),
            t.id.clone(),
            t.on.clone(),
        );
        if graceful {
            self.cluster.delete_pod(&t.id, None).await?;
            self.events.emit(EventKind::ReplicaStopped {
                service,
                replica,
                instance,
            });
        } else {
            let image = self
                .target
                .image_of("toolbox")
                .unwrap_or(crate::scenario::target::DEFAULT_TOOLBOX_IMAGE);
            let killed = self.cluster.crash_pod(&t.id, image).await?;
            tracing::info!(pod = %t.id, killed, "kill-pod: crashed");
            self.events.emit(EventKind::ReplicaKilled {
                service,
                replica,
                instance,
            });
        }
        Ok(())
    }

    /// terminate-instance: the node's machine lost through its provider.
    async fn lose_node(&self, node: &str) -> platform::Result<()> {
        let info = self
            .cluster
            .nodes()
            .await?
            .into_iter()
            .find(|n| n.name == node)
            .ok_or_else(|| self.refuse("terminate-instance", format!("node {node} is gone")))?;
        let provider = NodeProvider::of(&info, self.target.node_provider.as_deref())
            .map_err(|why| self.refuse("terminate-instance", why))?;
        progress(
            &self.events,
            format!("losing node {node}: {}", provider.describe()),
        );
        provider.lose(node).await
    }

    /// Reads the replicas a StatefulSet will be scaled back to, before a
    /// lasting fault scales it to 0.
    async fn read_scale_undo(&self, statefulset: &str, kind: TargetKind) -> Option<Undo> {
        let read = match self.cluster.statefulset_replicas(statefulset).await {
            Ok(0) => Err(format!("StatefulSet {statefulset} is already scaled to 0")),
            Ok(n) => Ok(n),
            Err(e) => Err(e.to_string()),
        };
        let undo = read.as_ref().ok().map(|n| Undo::ScaleTo {
            target: Target::new(kind, statefulset).detail("StatefulSet"),
            replicas: u32::try_from(*n).unwrap_or(0),
        });
        if let Ok(mut undos) = self.scale_undos.lock() {
            undos.insert(statefulset.to_string(), read);
        }
        undo
    }

    /// Scales a StatefulSet to 0, only when its way back was read first.
    async fn take_down(&self, statefulset: &str) -> platform::Result<()> {
        let action = format!("take StatefulSet {statefulset} down");
        let read = self
            .scale_undos
            .lock()
            .ok()
            .and_then(|mut u| u.remove(statefulset));
        match read {
            Some(Ok(_)) => {
                self.cluster.scale(statefulset, 0).await?;
                Ok(())
            }
            Some(Err(why)) => Err(self.refuse(
                &action,
                format!("its replicas could not be read before acting, so they could not be restored: {why}"),
            )),
            None => Err(self.refuse(
                &action,
                "its undo was not registered before acting",
            )),
        }
    }
}

fn server_of(kind: &FaultKind) -> Option<(&'static str, TargetKind)> {
    match kind {
        FaultKind::RestartCache { .. } => Some((CACHE, TargetKind::Cache)),
        FaultKind::RestartBroker => Some((BROKER, TargetKind::Broker)),
        _ => None,
    }
}

#[async_trait]
impl Platform for KubernetesPlatform {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn entry_url(&self) -> &str {
        &self.entry_url
    }

    fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    fn supports(&self, fault: &Fault) -> Support {
        supports(&self.target, fault)
    }

    fn describe(&self, fault: &Fault) -> String {
        describe(&self.target, fault)
    }

    async fn inventory(&self) -> platform::Result<Inventory> {
        let mut inventory = self.cluster.inventory().await?;
        inventory.entry_url = self.entry_url.clone();
        inventory.admin_token = self.admin_token.clone();
        Ok(inventory)
    }

    async fn candidates(&self, fault: &FaultKind) -> platform::Result<Vec<Target>> {
        Ok(self.cluster.candidates(fault).await?)
    }

    async fn undo_for(&self, fault: &Fault, targets: &[Target]) -> Option<Undo> {
        match (&fault.kind, fault.duration) {
            (FaultKind::DrainNode { .. }, _) => {
                let mut each: Vec<Undo> = targets.iter().cloned().map(Undo::Uncordon).collect();
                match each.len() {
                    0 => None,
                    1 => each.pop(),
                    _ => Some(Undo::Each(each)),
                }
            }
            (kind, Some(_)) => match server_of(kind) {
                Some((statefulset, kind)) => self.read_scale_undo(statefulset, kind).await,
                None => None,
            },
            _ => None,
        }
    }

    /// Asks the API server whether this user may do what `fault` does.
    async fn dry_run(&self, fault: &Fault, targets: &[Target]) -> platform::Result<()> {
        self.cluster.check_allowed(fault).await?;
        if matches!(fault.kind, FaultKind::TerminateInstance { .. }) {
            let nodes = self.cluster.nodes().await?;
            for t in targets {
                if let Some(node) = nodes.iter().find(|n| n.name == t.id) {
                    NodeProvider::of(node, self.target.node_provider.as_deref())
                        .map_err(|why| self.refuse(fault.kind.key(), why))?;
                }
            }
        }
        Ok(())
    }

    async fn inject(&self, fault: &Fault, targets: &[Target]) -> platform::Result<()> {
        match &fault.kind {
            FaultKind::KillPod { graceful, .. } => {
                for t in targets {
                    self.kill_pod(t, *graceful).await?;
                }
            }
            FaultKind::TerminateInstance { .. } => {
                for t in targets {
                    self.lose_node(&t.id).await?;
                }
            }
            FaultKind::DrainNode { .. } => {
                for t in targets {
                    let actions = self.cluster.drain_node(&t.id).await?;
                    for action in actions {
                        tracing::info!(node = %t.id, ?action, "drain-node");
                        if let Action::DrainIncomplete { pods } = action {
                            progress(
                                &self.events,
                                format!(
                                    "node {}: evicted pods still there when the drain's time ran out: {}",
                                    t.id,
                                    pods.join(", ")
                                ),
                            );
                        }
                    }
                }
            }
            FaultKind::Network { .. } => {
                return Err(self.refuse(fault.kind.key(), "not available on kubernetes"));
            }
            FaultKind::DbFailover { .. } => {
                for t in targets {
                    self.cluster
                        .delete_pod(&t.id, Some(DATABASE_GRACE_SECONDS))
                        .await?;
                    self.events.emit(EventKind::DbPrimaryKilled {
                        server: t.id.clone(),
                    });
                }
            }
            kind @ (FaultKind::RestartCache { .. } | FaultKind::RestartBroker) => {
                match (fault.duration, server_of(kind)) {
                    (Some(_), Some((statefulset, _))) => self.take_down(statefulset).await?,
                    _ => {
                        for t in targets {
                            self.cluster.delete_pod(&t.id, None).await?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn undo(&self, undo: &Undo) -> platform::Result<()> {
        match undo {
            Undo::Uncordon(node) => {
                let outcome = self.cluster.uncordon(&node.id).await?;
                tracing::info!(node = %node.id, ?outcome, "uncordon");
                Ok(())
            }
            Undo::ScaleTo { target, replicas } => {
                let replicas = i32::try_from(*replicas).unwrap_or(i32::MAX);
                self.cluster.scale(&target.id, replicas).await?;
                Ok(())
            }
            Undo::Each(all) => platform::undo_each(self, all).await,
            Undo::Start(_) => Err(self.refuse(
                &format!("undo ({})", undo.describe()),
                "the kubernetes platform never registers such an undo",
            )),
        }
    }

    async fn shutdown(self: Box<Self>) {}
}

#[async_trait]
impl Shop for KubernetesPlatform {
    async fn watch(&self) -> Option<Box<dyn Watchers>> {
        self.watching.then(|| {
            Box::new(watch::spawn(&self.cluster, self.events.clone())) as Box<dyn Watchers>
        })
    }
}
