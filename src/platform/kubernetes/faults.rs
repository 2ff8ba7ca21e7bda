//! The faults gameday injects into a Kubernetes shop, as calls to the API
//! server, and their undo. Which pod or node is hit, and the undo's
//! registration before acting, are the platform's (see `mod.rs`); this
//! module only acts.
//!
//! - kill-pod: a crash (see `crash`), or a delete with the pod's own grace
//!   period (`graceful`).
//! - terminate-instance: the node's machine is lost (see `providers`).
//! - drain-node: cordon the node, evict its pods through the Eviction API
//!   (PodDisruptionBudgets honoured, refusals retried within a bound), wait
//!   for them to go. Undo: uncordon, if the node is still there.
//! - db-failover: delete the database's primary pod (`mariadb-0`), at once.
//! - restart-cache / restart-broker: delete `redis-0` / `rabbitmq-0`; with a
//!   duration, scale the StatefulSet to 0 and, as the undo, back.

use k8s_openapi::{
    api::{
        apps::v1::StatefulSet,
        core::v1::{Node, Pod},
        policy::v1::Eviction,
    },
    apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta},
};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use tokio::time::{Instant, sleep};

use super::{
    cluster::Cluster,
    errors::{Error, Result, api_error, api_status, is_not_found},
};

/// The database's StatefulSet; its pod 0 is the primary.
pub const DATABASE: &str = "mariadb";
/// The cache's StatefulSet.
pub const CACHE: &str = "redis";
/// The broker's StatefulSet.
pub const BROKER: &str = "rabbitmq";

/// What a fault did, step by step (logged, and asserted by tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    PodDeleted {
        pod: String,
        grace_seconds: Option<u32>,
    },
    NodeCordoned {
        node: String,
    },
    PodEvicted {
        namespace: String,
        pod: String,
        attempts: u32,
    },
    /// Left on the node, as `kubectl drain --ignore-daemonsets` does.
    PodLeft {
        namespace: String,
        pod: String,
        why: &'static str,
    },
    /// Evicted pods still there when the drain's time ran out.
    DrainIncomplete {
        pods: Vec<String>,
    },
    Scaled {
        statefulset: String,
        replicas: i32,
    },
}

/// What uncordoning found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uncordoned {
    Done,
    /// The node was deleted (terminated): nothing to uncordon.
    NodeGone,
}

impl Cluster {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Deletes one of the shop's pods; `None` keeps the pod's own grace period.
    pub async fn delete_pod(&self, pod: &str, grace_seconds: Option<u32>) -> Result<Action> {
        let params = DeleteParams {
            grace_period_seconds: grace_seconds,
            ..DeleteParams::default()
        };
        let action = format!("delete pod {pod} in namespace {}", self.namespace);
        match self.pods().delete(pod, &params).await {
            Ok(_) => Ok(Action::PodDeleted {
                pod: pod.to_string(),
                grace_seconds,
            }),
            Err(e) if is_not_found(&e) => {
                self.check_namespace().await?;
                Err(Error::NotFound {
                    action,
                    what: format!("pod {pod}"),
                })
            }
            Err(e) => Err(api_error(action)(e)),
        }
    }

    /// The replicas a StatefulSet asks for now (its scale subresource).
    pub async fn statefulset_replicas(&self, statefulset: &str) -> Result<i32> {
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &self.namespace);
        let action = format!("read the scale of StatefulSet {statefulset}");
        match api.get_scale(statefulset).await {
            Ok(scale) => Ok(scale.spec.and_then(|s| s.replicas).unwrap_or(0)),
            Err(e) if is_not_found(&e) => {
                self.check_namespace().await?;
                Err(Error::NotFound {
                    action,
                    what: format!("StatefulSet {statefulset}"),
                })
            }
            Err(e) => Err(api_error(action)(e)),
        }
    }

    pub async fn scale(&self, statefulset: &str, replicas: i32) -> Result<Action> {
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &self.namespace);
        let patch = json!({ "spec": { "replicas": replicas } });
        api.patch_scale(statefulset, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_error(format!(
                "scale StatefulSet {statefulset} to {replicas} in namespace {}",
                self.namespace
            )))?;
        Ok(Action::Scaled {
            statefulset: statefulset.to_string(),
            replicas,
        })
    }

    /// Makes a node schedulable again; a node that is gone is not an error.
    pub async fn uncordon(&self, node: &str) -> Result<Uncordoned> {
        match self.set_unschedulable(node, false).await {
            Ok(()) => Ok(Uncordoned::Done),
            Err(Error::NotFound { .. }) => Ok(Uncordoned::NodeGone),
            Err(e) => Err(e),
        }
    }

    async fn set_unschedulable(&self, node: &str, unschedulable: bool) -> Result<()> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let patch = json!({ "spec": { "unschedulable": unschedulable } });
        let action = if unschedulable {
            format!("cordon node {node}")
        } else {
            format!("uncordon node {node}")
        };
        match nodes
            .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Err(Error::NotFound {
                action,
                what: format!("node {node}"),
            }),
            Err(e) => Err(api_error(action)(e)),
        }
    }

    /// Cordon, then drain through the Eviction API, as planned maintenance
    /// does (`kubectl drain --ignore-daemonsets`, without `--force`: a pod
    /// no controller would replace is left, and so is gameday's own).
    pub async fn drain_node(&self, node: &str) -> Result<Vec<Action>> {
        self.set_unschedulable(node, true).await?;
        let mut actions = vec![Action::NodeCordoned {
            node: node.to_string(),
        }];

        let all_pods: Api<Pod> = Api::all(self.client.clone());
        let on_node = ListParams::default().fields(&format!("spec.nodeName={node}"));
        let listed = all_pods
            .list(&on_node)
            .await
            .map_err(api_error(format!("list the pods on node {node}")))?;
        let mut evicted = Vec::new();
        for pod in &listed.items {
            let namespace = pod.namespace().unwrap_or_default();
            let name = pod.name_any();
            if let Some(why) = left_by_drain(pod) {
                actions.push(Action::PodLeft {
                    namespace,
                    pod: name,
                    why,
                });
                continue;
            }
            let attempts = self.evict(&namespace, &name, node, None).await?;
            evicted.push(pod.uid().unwrap_or_default());
            actions.push(Action::PodEvicted {
                namespace,
                pod: name,
                attempts,
            });
        }

        if !evicted.is_empty() {
            let started = Instant::now();
            loop {
                let listed = all_pods
                    .list(&on_node)
                    .await
                    .map_err(api_error(format!("list the pods on node {node}")))?;
                let remaining: Vec<String> = listed
                    .items
                    .iter()
                    .filter(|p| p.uid().is_some_and(|uid| evicted.contains(&uid)))
                    .map(|p| format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()))
                    .collect();
                if remaining.is_empty() {
                    break;
                }
                if started.elapsed() >= self.timing.drain_timeout {
                    actions.push(Action::DrainIncomplete { pods: remaining });
                    break;
                }
                sleep(self.timing.poll_every).await;
            }
        }

        Ok(actions)
    }

    /// Evicts one pod, retrying while a PodDisruptionBudget refuses (429)
    /// until [`Timing::eviction_give_up_after`](super::cluster::Timing).
    /// Returns how many tries it took; a pod already gone counts as evicted.
    ///
    /// The body is a policy/v1 `Eviction` sent through `create_subresource`:
    /// kube-core 5.0's `EvictParams` writes its options under
    /// `delete_options`, a key policy/v1 does not know (it is `deleteOptions`),
    /// so the API server would drop them.
    pub async fn evict(
        &self,
        namespace: &str,
        pod: &str,
        node: &str,
        options: Option<DeleteOptions>,
    ) -> Result<u32> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let body = eviction(namespace, pod, options);
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let error = match pods
                .create_subresource::<Eviction, Value>(
                    "eviction",
                    pod,
                    &PostParams::default(),
                    &body,
                )
                .await
            {
                Ok(_) => return Ok(attempts),
                Err(e) if is_not_found(&e) => return Ok(attempts),
                Err(e) => e,
            };
            let Some(status) = api_status(&error).filter(|s| s.code == 429) else {
                return Err(api_error(format!(
                    "evict pod {namespace}/{pod} from node {node}"
                ))(error));
            };
            let waited = started.elapsed();
            if waited + self.timing.eviction_retry_every > self.timing.eviction_give_up_after {
                let causes: Vec<String> = status
                    .details
                    .iter()
                    .flat_map(|d| d.causes.iter())
                    .map(|c| c.message.clone())
                    .collect();
                let mut message = status.message.clone();
                if !causes.is_empty() {
                    message = format!("{message} {}", causes.join("; "));
                }
                return Err(Error::EvictionBlocked {
                    namespace: namespace.to_string(),
                    pod: pod.to_string(),
                    node: node.to_string(),
                    attempts,
                    waited,
                    message,
                });
            }
            sleep(self.timing.eviction_retry_every).await;
        }
    }
}

/// The pod this process runs in, when it runs in the cluster (a pod's
/// hostname is its name).
pub fn own_pod() -> Option<String> {
    std::env::var_os("KUBERNETES_SERVICE_HOST")?;
    std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
}

/// The policy/v1 Eviction of one pod.
pub fn eviction(namespace: &str, pod: &str, options: Option<DeleteOptions>) -> Eviction {
    Eviction {
        metadata: ObjectMeta {
            name: Some(pod.to_string()),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
        delete_options: options,
    }
}

/// Why a drain leaves this pod alone, if it does: DaemonSet pods come back
/// on the node anyway, mirror pods belong to the kubelet, terminating pods
/// are already going, a bare pod would not come back, and gameday's own pod
/// runs the game day.
fn left_by_drain(pod: &Pod) -> Option<&'static str> {
    if pod.metadata.deletion_timestamp.is_some() {
        return Some("already terminating");
    }
    if own_pod().is_some_and(|own| own == pod.name_any()) {
        return Some("gameday's own pod");
    }
    if !pod
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true))
    {
        return Some("no controller would replace it (a bare pod)");
    }
    if pod
        .annotations()
        .contains_key("kubernetes.io/config.mirror")
    {
        return Some("mirror pod");
    }
    if pod
        .owner_references()
        .iter()
        .any(|o| o.kind == "DaemonSet" && o.controller == Some(true))
    {
        return Some("DaemonSet pod");
    }
    None
}
