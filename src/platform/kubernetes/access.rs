//! `plan`'s dry run on Kubernetes: would the user of this kube context be
//! allowed to do what a fault does? Asked with SelfSubjectAccessReviews,
//! which change nothing, one per permission the fault needs.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::{Api, api::PostParams};

use super::{
    cluster::Cluster,
    errors::{Error, Result, api_error},
};
use crate::scenario::{Fault, FaultKind};

/// One permission: a verb on a resource (and subresource) of an API
/// group, in the namespace or (None) cluster-wide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
    pub subresource: Option<&'static str>,
    pub namespaced: bool,
}

impl Permission {
    const fn new(verb: &'static str, group: &'static str, resource: &'static str) -> Self {
        Self {
            verb,
            group,
            resource,
            subresource: None,
            namespaced: true,
        }
    }

    const fn sub(mut self, subresource: &'static str) -> Self {
        self.subresource = Some(subresource);
        self
    }

    const fn cluster_wide(mut self) -> Self {
        self.namespaced = false;
        self
    }

    /// `delete pods in namespace shop`, `create pods/eviction in every namespace`.
    pub fn describe(&self, namespace: &str) -> String {
        let resource = match self.subresource {
            Some(sub) => format!("{}/{sub}", self.resource),
            None => self.resource.to_string(),
        };
        let scope = if self.namespaced {
            format!("in namespace {namespace}")
        } else if self.resource == "nodes" {
            "(cluster-wide)".to_string()
        } else {
            "in every namespace".to_string()
        };
        format!("{} {resource} {scope}", self.verb)
    }
}

/// What a run's watchers read: without these, a run would see nothing of
/// what the cluster does (and a user scoped to the namespace cannot list
/// nodes).
pub const READS: [Permission; 6] = [
    Permission::new("list", "", "pods"),
    Permission::new("watch", "", "pods"),
    Permission::new("watch", "discovery.k8s.io", "endpointslices"),
    Permission::new("watch", "apps", "deployments"),
    Permission::new("watch", "autoscaling", "horizontalpodautoscalers"),
    Permission::new("watch", "", "nodes").cluster_wide(),
];

/// What `fault` needs to be allowed to do, the reads included.
pub fn needed(fault: &Fault) -> Vec<Permission> {
    let delete_pods = Permission::new("delete", "", "pods");
    let mut needed = match (&fault.kind, fault.duration) {
        (FaultKind::RestartCache { .. } | FaultKind::RestartBroker, Some(_)) => vec![
            Permission::new("get", "apps", "statefulsets").sub("scale"),
            Permission::new("patch", "apps", "statefulsets").sub("scale"),
        ],
        (
            FaultKind::KillPod {
                graceful: false, ..
            },
            _,
        ) => vec![
            // The crash agent: a pod on the target's node, read, deleted.
            Permission::new("create", "", "pods"),
            Permission::new("get", "", "pods"),
            delete_pods,
        ],
        (FaultKind::TerminateInstance { .. }, _) => {
            vec![Permission::new("get", "", "nodes").cluster_wide()]
        }
        (FaultKind::DrainNode { .. }, _) => vec![
            Permission::new("patch", "", "nodes").cluster_wide(),
            Permission::new("list", "", "pods").cluster_wide(),
            Permission::new("create", "", "pods")
                .sub("eviction")
                .cluster_wide(),
        ],
        _ => vec![delete_pods],
    };
    needed.extend(READS);
    needed
}

impl Cluster {
    /// The permissions of `needed` this user lacks, each with the reason
    /// the API server gave (if any).
    pub async fn missing(&self, needed: &[Permission]) -> Result<Vec<String>> {
        let reviews: Api<SelfSubjectAccessReview> = Api::all(self.client.clone());
        let mut missing = Vec::new();
        for permission in needed {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        verb: Some(permission.verb.into()),
                        group: Some(permission.group.into()),
                        resource: Some(permission.resource.into()),
                        subresource: permission.subresource.map(String::from),
                        namespace: permission.namespaced.then(|| self.namespace.clone()),
                        ..ResourceAttributes::default()
                    }),
                    ..SelfSubjectAccessReviewSpec::default()
                },
                ..SelfSubjectAccessReview::default()
            };
            let what = permission.describe(&self.namespace);
            let answer = reviews
                .create(&PostParams::default(), &review)
                .await
                .map_err(api_error(format!("ask whether this user may {what}")))?;
            let status = answer.status.unwrap_or_default();
            if !status.allowed {
                missing.push(match status.reason.filter(|r| !r.is_empty()) {
                    Some(reason) => format!("{what} ({reason})"),
                    None => what,
                });
            }
        }
        Ok(missing)
    }

    /// Fails with the permissions `fault` needs and this user lacks.
    pub async fn check_allowed(&self, fault: &Fault) -> Result<()> {
        let missing = self.missing(&needed(fault)).await?;
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::NotAllowed {
            context: self.identity.context.clone(),
            fault: fault.kind.key(),
            missing,
        })
    }
}
