//! What runs where, read from the cluster without changing it: the
//! namespace's pods (a service's by the manifests' label
//! `app.kubernetes.io/name=<service>`, each with its node, readiness and
//! address), which of them a Service's EndpointSlices call serving, and the
//! cluster's nodes (ready, cordoned, zone, control plane). Pods already
//! terminating are left out of what a fault may pick: hitting one would hit
//! nothing.

use std::collections::BTreeSet;

use k8s_openapi::api::{
    core::v1::{Namespace, Node, Pod},
    discovery::v1::EndpointSlice,
};
use kube::{Api, ResourceExt, api::ListParams};

use super::{
    cluster::Cluster,
    errors::{Error, Result, api_error, is_not_found},
};

/// The label that names a pod's service (or infrastructure) in the manifests.
pub const SERVICE_LABEL: &str = "app.kubernetes.io/name";
/// The label that names a node's zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// The label an EndpointSlice names its Service with.
pub const SLICE_SERVICE_LABEL: &str = "kubernetes.io/service-name";
/// Labels that mark a control-plane node (the second is the old name).
pub const CONTROL_PLANE_LABELS: [&str; 2] = [
    "node-role.kubernetes.io/control-plane",
    "node-role.kubernetes.io/master",
];

/// One pod of the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    /// Its `app.kubernetes.io/name` label (empty without one).
    pub service: String,
    pub name: String,
    /// The node it runs on; `None` while it is not scheduled.
    pub node: Option<String>,
    pub ready: bool,
    pub ip: Option<String>,
    pub phase: Option<String>,
    /// Being deleted (it has a deletion timestamp).
    pub terminating: bool,
}

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub ready: bool,
    /// False once cordoned.
    pub schedulable: bool,
    pub zone: Option<String>,
    /// Its InternalIP.
    pub address: Option<String>,
    pub control_plane: bool,
    /// How its machine is known to the cloud (`aws:///us-east-1a/i-…`).
    pub provider_id: Option<String>,
}

impl Cluster {
    /// The pods labelled as `service` that are not terminating, by name.
    pub async fn replicas_of(&self, service: &str) -> Result<Vec<PodInfo>> {
        let params = ListParams::default().labels(&format!("{SERVICE_LABEL}={service}"));
        let pods = self
            .list_pods(
                &params,
                format!("list the pods of {service} in namespace {}", self.namespace),
            )
            .await?;
        Ok(pods.into_iter().filter(|p| !p.terminating).collect())
    }

    /// Every pod of the namespace, terminating ones included, by name.
    pub async fn namespace_pods(&self) -> Result<Vec<PodInfo>> {
        self.list_pods(
            &ListParams::default(),
            format!("list the pods in namespace {}", self.namespace),
        )
        .await
    }

    async fn list_pods(&self, params: &ListParams, action: String) -> Result<Vec<PodInfo>> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let listed = pods.list(params).await.map_err(api_error(action))?;
        if listed.items.is_empty() {
            // Listing in a namespace that does not exist answers an empty list.
            self.check_namespace().await?;
        }
        let mut pods: Vec<PodInfo> = listed.items.iter().map(pod_info).collect();
        pods.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(pods)
    }

    /// The pods that some Service's EndpointSlice lists as serving.
    pub async fn serving_pods(&self) -> Result<BTreeSet<String>> {
        let slices: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &self.namespace);
        let listed = slices
            .list(&ListParams::default().labels(SLICE_SERVICE_LABEL))
            .await
            .map_err(api_error(format!(
                "list the EndpointSlices in namespace {}",
                self.namespace
            )))?;
        Ok(listed.items.iter().flat_map(serving_in).collect())
    }

    /// Every node, by name.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let listed = nodes
            .list(&ListParams::default())
            .await
            .map_err(api_error("list nodes"))?;
        let mut nodes: Vec<NodeInfo> = listed.items.iter().map(node_info).collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(nodes)
    }

    /// Fails with [`Error::NamespaceMissing`] when the namespace is not there.
    pub async fn check_namespace(&self) -> Result<()> {
        if self.namespace_exists().await? {
            Ok(())
        } else {
            Err(Error::NamespaceMissing {
                namespace: self.namespace.clone(),
            })
        }
    }

    /// Whether the namespace exists (a namespace being deleted still does).
    pub async fn namespace_exists(&self) -> Result<bool> {
        Ok(self.namespace_object().await?.is_some())
    }

    /// The namespace, when it exists.
    pub async fn namespace_object(&self) -> Result<Option<Namespace>> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        match namespaces.get(&self.namespace).await {
            Ok(ns) => Ok(Some(ns)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api_error(format!("read namespace {}", self.namespace))(e)),
        }
    }
}

pub fn pod_is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn pod_info(pod: &Pod) -> PodInfo {
    let status = pod.status.as_ref();
    PodInfo {
        service: pod.labels().get(SERVICE_LABEL).cloned().unwrap_or_default(),
        name: pod.name_any(),
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        ready: pod_is_ready(pod),
        ip: status.and_then(|s| s.pod_ip.clone()),
        phase: status.and_then(|s| s.phase.clone()),
        terminating: pod.metadata.deletion_timestamp.is_some(),
    }
}

pub fn node_info(node: &Node) -> NodeInfo {
    let labels = node.labels();
    let status = node.status.as_ref();
    NodeInfo {
        name: node.name_any(),
        ready: status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
        schedulable: !node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false),
        zone: labels.get(ZONE_LABEL).cloned(),
        address: status
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .map(|a| a.address.clone()),
        control_plane: CONTROL_PLANE_LABELS.iter().any(|l| labels.contains_key(*l)),
        provider_id: node.spec.as_ref().and_then(|s| s.provider_id.clone()),
    }
}

/// The pods an EndpointSlice lists as serving. A missing `serving` means
/// the same as `ready`; a missing `ready` means ready.
pub fn serving_in(slice: &EndpointSlice) -> BTreeSet<String> {
    slice
        .endpoints
        .iter()
        .filter(|e| {
            let conditions = e.conditions.clone().unwrap_or_default();
            conditions.serving.or(conditions.ready).unwrap_or(true)
        })
        .filter_map(|e| e.target_ref.as_ref().and_then(|r| r.name.clone()))
        .collect()
}
