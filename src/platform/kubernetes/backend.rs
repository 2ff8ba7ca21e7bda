//! The kubernetes platform as the lifecycle sees it: connect to the
//! target's cluster; create is applying reference-app/k8s by server-side
//! apply and waiting for the rollout (`deploy: true`, again on every run so
//! the scenario's image and replicas hold); resolve finds the entry URL and
//! the admin token; remove deletes the namespace, only one this created.

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Service;
use kube::{Api, ResourceExt};

use super::{
    Cluster, ClusterTarget, KubernetesPlatform,
    deploy::{RolloutProgress, Workload},
    describe,
    errors::{Error, Result, api_error},
    manifests::{self, Manifest, Overrides},
    supports,
};
use crate::{
    events::EventLog,
    platform::{
        self, Planned, Purpose, Removed, Support,
        lifecycle::{Backend, Shop, Site, progress},
    },
    scenario::{Fault, KubernetesTarget},
    shop::ENTRY_SERVICE,
};

/// The kubernetes platform for a scenario's target.
pub struct KubernetesBackend {
    target: KubernetesTarget,
}

impl KubernetesBackend {
    pub fn new(target: KubernetesTarget) -> Self {
        Self { target }
    }
}

/// Connects to the cluster the target names (its context, or the current
/// one) and checks that the API server answers.
pub async fn connect(target: &KubernetesTarget) -> Result<Cluster> {
    let cluster_target = ClusterTarget {
        kubeconfig: None,
        context: target.context.clone(),
    };
    Cluster::connect(&cluster_target, &target.namespace).await
}

/// The reference shop's manifests as this target deploys them.
pub fn prepared(target: &KubernetesTarget, namespace: &str) -> Result<Vec<Manifest>> {
    let overrides = Overrides {
        image: target.image.clone(),
        replicas: target.replicas.clone(),
        autoscale: target.autoscale.clone(),
        images: target
            .images
            .iter()
            .filter(|(role, _)| role.as_str() != "toolbox")
            .map(|(role, image)| (role.clone(), image.clone()))
            .collect(),
        storage_class: target.storage_class.clone(),
    };
    manifests::prepare(
        manifests::load(&manifests::reference_app_dir())?,
        namespace,
        &overrides,
    )
}

#[async_trait]
impl Backend for KubernetesBackend {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn supports(&self, fault: &Fault) -> Support {
        supports(&self.target, fault)
    }

    fn describe(&self, fault: &Fault) -> String {
        describe(&self.target, fault)
    }

    fn creates(&self) -> bool {
        self.target.deploy
    }

    async fn confirmation(&self) -> platform::Result<Option<platform::Confirmation>> {
        let k = &self.target;
        let text = format!(
            "This acts on the Kubernetes cluster of kubeconfig context `{}`: namespace `{}`{}, \
             and nodes that run its pods.",
            k.context.as_deref().unwrap_or("(the current one)"),
            k.namespace,
            if k.deploy {
                " (deployed, then deleted if this creates it)"
            } else {
                ""
            }
        );
        Ok(Some(platform::Confirmation { text, ask: true }))
    }

    fn left_behind(&self) -> Option<String> {
        self.target.deploy.then(|| {
            format!(
                "namespace {} may be left on the cluster; `gameday down --scenario FILE` deletes it",
                self.target.namespace
            )
        })
    }

    fn planned(&self) -> Planned {
        Planned {
            entry_url: self
                .target
                .entry_url
                .clone()
                .unwrap_or_else(|| "(not known: target.entry-url is not set)".into()),
            inventory: None,
        }
    }

    async fn connect(&self, _purpose: &Purpose) -> platform::Result<Box<dyn Site>> {
        let cluster = connect(&self.target).await?;
        Ok(Box::new(KubernetesSite::new(cluster, self.target.clone())))
    }
}

/// The shop's namespace on a connected cluster.
pub struct KubernetesSite {
    cluster: Cluster,
    target: KubernetesTarget,
    /// Whether the platforms it resolves start watchers for a run.
    watching: bool,
}

impl KubernetesSite {
    /// A site over a cluster already connected (tests use a mock transport).
    pub fn new(cluster: Cluster, target: KubernetesTarget) -> Self {
        Self {
            cluster,
            target,
            watching: true,
        }
    }

    /// Platforms without watchers (tests that script every API request).
    #[must_use]
    pub fn unwatched(mut self) -> Self {
        self.watching = false;
        self
    }
}

#[async_trait]
impl Site for KubernetesSite {
    fn place(&self) -> String {
        let id = self.cluster.identity();
        format!(
            "namespace {} on context {} ({})",
            self.cluster.namespace(),
            id.context,
            id.url
        )
    }

    async fn exists(&self) -> platform::Result<bool> {
        Ok(self.cluster.namespace_exists().await?)
    }

    fn refreshes(&self) -> bool {
        true
    }

    /// Applies the manifests and waits for the rollout.
    async fn create(&self, events: &Arc<EventLog>) -> platform::Result<()> {
        let manifests = prepared(&self.target, self.cluster.namespace())?;
        if self.target.entry_url.is_none() && !entry_is_load_balancer(&manifests) {
            return Err(Error::NoEntryUrl {
                namespace: self.cluster.namespace().to_string(),
                why: "target.entry-url is not set, and the manifests' Service web is not a \
                      LoadBalancer, so nothing outside the cluster reaches it"
                    .into(),
            }
            .into());
        }
        let workloads = self
            .cluster
            .deploy(&manifests, rollout_progress(events))
            .await?;
        progress(events, available(&workloads, self.cluster.namespace()));
        Ok(())
    }

    async fn resolve(
        &self,
        purpose: &Purpose,
        events: Arc<EventLog>,
    ) -> platform::Result<Box<dyn Shop>> {
        let entry = match purpose {
            Purpose::Run { .. } => {
                if !self.target.deploy {
                    self.cluster.check_namespace().await?;
                }
                entry_url(&self.cluster, &self.target).await?
            }
            Purpose::Inject => {
                self.cluster.check_namespace().await?;
                match &self.target.entry_url {
                    Some(url) => url.clone(),
                    None => entry_url(&self.cluster, &self.target)
                        .await
                        .unwrap_or_else(|_| {
                            format!("(target.entry-url not set; Service {ENTRY_SERVICE})")
                        }),
                }
            }
            Purpose::Plan => match &self.target.entry_url {
                Some(url) => url.clone(),
                None => entry_url(&self.cluster, &self.target)
                    .await
                    .unwrap_or_else(|_| "(not known: target.entry-url is not set)".into()),
            },
        };
        let token = self
            .target
            .deploy
            .then(|| prepared(&self.target, self.cluster.namespace()).ok())
            .flatten()
            .and_then(|m| manifests::admin_token(&m));
        let mut platform =
            KubernetesPlatform::new(self.cluster.clone(), self.target.clone(), entry, events)
                .with_admin_token(token);
        platform.watching = self.watching;
        Ok(Box::new(platform))
    }

    /// Deletes the namespace, only one gameday created (it carries the
    /// label [`manifests::MANAGED_BY`]).
    async fn remove(&self, events: &EventLog) -> platform::Result<Removed> {
        let what = format!("namespace {}", self.cluster.namespace());
        if let Some(ns) = self.cluster.namespace_object().await? {
            let (key, value) = manifests::MANAGED_BY;
            if ns.labels().get(key).map(String::as_str) != Some(value) {
                return Err(platform::Error::refused(
                    format!("delete {what}"),
                    format!(
                        "gameday did not create it (it has no label {key}={value}); delete it \
                         yourself if it must go"
                    ),
                ));
            }
        }
        let id = self.cluster.identity();
        let place = format!("on context {} ({})", id.context, id.url);
        progress(
            events,
            format!("deleting {what} {place} and waiting until it is gone"),
        );
        let existed = self.cluster.delete_namespace().await?;
        if existed {
            progress(
                events,
                format!("namespace {} is gone", self.cluster.namespace()),
            );
        }
        Ok(Removed {
            what,
            place,
            existed,
            notes: Vec::new(),
        })
    }
}

fn entry_is_load_balancer(manifests: &[Manifest]) -> bool {
    manifests.iter().any(|m| {
        m.kind.kind == "Service"
            && m.name == ENTRY_SERVICE
            && m.object["spec"]["type"] == "LoadBalancer"
    })
}

/// Where shoppers enter: `target.entry-url`, else the address a load
/// balancer gave Service web.
async fn entry_url(cluster: &Cluster, target: &KubernetesTarget) -> Result<String> {
    if let Some(url) = &target.entry_url {
        return Ok(url.clone());
    }
    let services: Api<Service> = Api::namespaced(cluster.client().clone(), cluster.namespace());
    let web = services
        .get(ENTRY_SERVICE)
        .await
        .map_err(api_error(format!(
            "read Service {ENTRY_SERVICE} in namespace {}",
            cluster.namespace()
        )))?;
    let ingress = web
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .and_then(|i| i.first())
        .and_then(|i| i.hostname.clone().or_else(|| i.ip.clone()));
    let port = web
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|p| p.first())
        .map_or(80, |p| p.port);
    match ingress {
        Some(host) if port == 80 => Ok(format!("http://{host}")),
        Some(host) => Ok(format!("http://{host}:{port}")),
        None => Err(Error::NoEntryUrl {
            namespace: cluster.namespace().to_string(),
            why: "target.entry-url is not set, and Service web has no load balancer address".into(),
        }),
    }
}

/// A progress event whenever what is still rolling out changes.
fn rollout_progress(events: &EventLog) -> impl FnMut(&RolloutProgress) + '_ {
    let mut last = String::new();
    move |p: &RolloutProgress| {
        let waiting: Vec<String> = p
            .workloads
            .iter()
            .filter(|w| !w.available)
            .map(ToString::to_string)
            .collect();
        let line = if waiting.is_empty() {
            "every Deployment and StatefulSet is available".to_string()
        } else {
            format!("waiting for {}", waiting.join(", "))
        };
        if line != last {
            progress(events, format!("{:>4}s {line}", p.elapsed.as_secs()));
            last = line;
        }
    }
}

fn available(workloads: &[Workload], namespace: &str) -> String {
    format!(
        "the shop is available in namespace {namespace} ({} workloads)",
        workloads.len()
    )
}
