//! `up` and `down` on Kubernetes: server-side apply of the shop's manifests,
//! a wait (with progress) until every Deployment and StatefulSet is
//! available — or the reasons its pods are not, such as an image that cannot
//! be pulled — and deleting the namespace until the API server says it is gone.

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    core::v1::{Namespace, Pod},
};
use kube::{
    Api,
    api::{DeleteParams, ListParams, Patch, PatchParams},
    core::DynamicObject,
};
use tokio::time::{Duration, Instant, sleep};

use super::{
    cluster::Cluster,
    errors::{Error, PodProblem, Result, api_error, is_not_found},
    manifests::Manifest,
};

/// The field manager of every server-side apply gameday makes.
pub const FIELD_MANAGER: &str = "gameday";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WorkloadKind {
    StatefulSet,
    Deployment,
}

/// How far one Deployment or StatefulSet has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub name: String,
    /// Replicas that are available (Deployment) or ready (StatefulSet).
    pub ready: i32,
    pub desired: i32,
    /// Whether the rollout is complete: every replica updated and available.
    pub available: bool,
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} {} {}/{}",
            self.kind, self.name, self.ready, self.desired
        )
    }
}

/// What a rollout wait reports on each look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutProgress {
    pub elapsed: Duration,
    pub workloads: Vec<Workload>,
}

impl Cluster {
    /// Applies `manifests` (see [`manifests::prepare`](super::manifests::prepare))
    /// into this cluster's namespace, then waits until every Deployment and
    /// StatefulSet among them is available.
    pub async fn deploy(
        &self,
        manifests: &[Manifest],
        progress: impl FnMut(&RolloutProgress),
    ) -> Result<Vec<Workload>> {
        self.apply(manifests).await?;
        self.scale_up(manifests).await?;
        let expected: Vec<(WorkloadKind, String)> = manifests
            .iter()
            .filter_map(|m| match m.kind.kind {
                "Deployment" => Some((WorkloadKind::Deployment, m.name.clone())),
                "StatefulSet" => Some((WorkloadKind::StatefulSet, m.name.clone())),
                _ => None,
            })
            .collect();
        self.wait_for_rollout(&expected, progress).await
    }

    /// Server-side applies each manifest, in order, as field manager
    /// `gameday`, taking over fields others own (force).
    pub async fn apply(&self, manifests: &[Manifest]) -> Result<()> {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        for manifest in manifests {
            let resource = manifest.kind.api_resource();
            let api: Api<DynamicObject> = if manifest.kind.namespaced {
                Api::namespaced_with(self.client.clone(), &self.namespace, &resource)
            } else {
                Api::all_with(self.client.clone(), &resource)
            };
            let object = manifest.to_dynamic()?;
            if let Err(e) = api
                .patch(&manifest.name, &params, &Patch::Apply(&object))
                .await
            {
                if is_not_found(&e) && manifest.kind.namespaced {
                    // The namespace is gone, or the API server does not serve the kind.
                    self.check_namespace().await?;
                }
                return Err(api_error(format!(
                    "apply {} (from {} document {})",
                    manifest.label(),
                    manifest.file.display(),
                    manifest.document
                ))(e));
            }
        }
        Ok(())
    }

    /// Raises each Deployment an HPA manages to its replicas through the
    /// scale subresource, when it has fewer (a new Deployment has 1); the
    /// HPA's own scaling above that is left alone.
    pub async fn scale_up(&self, manifests: &[Manifest]) -> Result<()> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        for m in manifests {
            let Some(want) = m.scale_to else { continue };
            let action = format!(
                "scale Deployment {} in namespace {}",
                m.name, self.namespace
            );
            let scale = api
                .get_scale(&m.name)
                .await
                .map_err(api_error(action.clone()))?;
            let now = scale.spec.and_then(|s| s.replicas).map_or(0, i64::from);
            if now < want {
                let patch = serde_json::json!({ "spec": { "replicas": want } });
                api.patch_scale(&m.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(api_error(action))?;
            }
        }
        Ok(())
    }

    /// Looks every [`Timing::poll_every`](super::cluster::Timing) until each
    /// expected workload is available, calling `progress` after each look.
    /// Past the rollout timeout, reports why the pods are not ready.
    pub async fn wait_for_rollout(
        &self,
        expected: &[(WorkloadKind, String)],
        mut progress: impl FnMut(&RolloutProgress),
    ) -> Result<Vec<Workload>> {
        let started = Instant::now();
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        let statefulsets: Api<StatefulSet> = Api::namespaced(self.client.clone(), &self.namespace);
        loop {
            let listed_deployments =
                deployments
                    .list(&ListParams::default())
                    .await
                    .map_err(api_error(format!(
                        "list Deployments in namespace {}",
                        self.namespace
                    )))?;
            let listed_statefulsets =
                statefulsets
                    .list(&ListParams::default())
                    .await
                    .map_err(api_error(format!(
                        "list StatefulSets in namespace {}",
                        self.namespace
                    )))?;
            let mut found: Vec<Workload> = listed_deployments
                .items
                .iter()
                .map(deployment_state)
                .chain(listed_statefulsets.items.iter().map(statefulset_state))
                .collect();
            found.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
            let workloads: Vec<Workload> = expected
                .iter()
                .map(|(kind, name)| {
                    found
                        .iter()
                        .find(|w| w.kind == *kind && &w.name == name)
                        .cloned()
                        .unwrap_or(Workload {
                            kind: *kind,
                            name: name.clone(),
                            ready: 0,
                            desired: 0,
                            available: false,
                        })
                })
                .collect();
            let elapsed = started.elapsed();
            progress(&RolloutProgress {
                elapsed,
                workloads: workloads.clone(),
            });
            if workloads.iter().all(|w| w.available) {
                return Ok(workloads);
            }
            if elapsed >= self.timing.rollout_timeout {
                let problems = self.pod_problems().await?;
                return Err(Error::RolloutTimedOut {
                    namespace: self.namespace.clone(),
                    waited: elapsed,
                    not_ready: workloads
                        .iter()
                        .filter(|w| !w.available)
                        .map(ToString::to_string)
                        .collect(),
                    problems,
                });
            }
            sleep(self.timing.poll_every).await;
        }
    }

    /// Why the namespace's pods that are not ready are not.
    pub async fn pod_problems(&self) -> Result<Vec<PodProblem>> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let listed = pods
            .list(&ListParams::default())
            .await
            .map_err(api_error(format!(
                "list pods in namespace {}",
                self.namespace
            )))?;
        let mut problems: Vec<PodProblem> = listed.items.iter().flat_map(problems_of).collect();
        problems.sort_by(|a, b| a.pod.cmp(&b.pod));
        Ok(problems)
    }

    /// Deletes the namespace (and with it the shop) and waits until the API
    /// server answers 404 for it. A namespace that is already gone is fine
    /// (false: there was nothing to delete).
    pub async fn delete_namespace(&self) -> Result<bool> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        match namespaces
            .delete(&self.namespace, &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => return Err(api_error(format!("delete namespace {}", self.namespace))(e)),
        }
        let started = Instant::now();
        loop {
            let state = match namespaces.get(&self.namespace).await {
                Err(e) if is_not_found(&e) => return Ok(true),
                Err(e) => return Err(api_error(format!("read namespace {}", self.namespace))(e)),
                Ok(namespace) => namespace_state(&namespace),
            };
            let elapsed = started.elapsed();
            if elapsed >= self.timing.namespace_deletion_timeout {
                return Err(Error::NamespaceDeletionTimedOut {
                    namespace: self.namespace.clone(),
                    waited: elapsed,
                    state,
                });
            }
            sleep(self.timing.poll_every).await;
        }
    }
}

/// A Deployment is rolled out when the controller has seen its latest
/// spec, every replica is updated and available, and no old one is left
/// (the test `kubectl rollout status` makes).
fn deployment_state(deployment: &Deployment) -> Workload {
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let status = deployment.status.clone().unwrap_or_default();
    let generation = deployment.metadata.generation.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    Workload {
        kind: WorkloadKind::Deployment,
        name: deployment.metadata.name.clone().unwrap_or_default(),
        ready: available,
        desired,
        available: status.observed_generation.unwrap_or(0) >= generation
            && updated >= desired
            && total == updated
            && available >= desired,
    }
}

fn statefulset_state(statefulset: &StatefulSet) -> Workload {
    let desired = statefulset
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let status = statefulset.status.clone().unwrap_or_default();
    let generation = statefulset.metadata.generation.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    Workload {
        kind: WorkloadKind::StatefulSet,
        name: statefulset.metadata.name.clone().unwrap_or_default(),
        ready,
        desired,
        available: status.observed_generation.unwrap_or(0) >= generation
            && ready >= desired
            && status.updated_replicas.unwrap_or(0) >= desired
            && status.current_revision == status.update_revision,
    }
}

/// What keeps one pod from being ready: waiting or failed containers, an
/// unschedulable pod, or else the Ready condition's own message.
fn problems_of(pod: &Pod) -> Vec<PodProblem> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    if pod.metadata.deletion_timestamp.is_some() {
        return Vec::new();
    }
    let status = pod.status.clone().unwrap_or_default();
    let conditions = status.conditions.clone().unwrap_or_default();
    let condition = |kind: &str| conditions.iter().find(|c| c.type_ == kind);
    if condition("Ready").is_some_and(|c| c.status == "True") {
        return Vec::new();
    }
    let mut problems = Vec::new();
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for container in containers {
        let state = container.state.clone().unwrap_or_default();
        let (reason, message) = if let Some(waiting) = state.waiting {
            (waiting.reason, waiting.message)
        } else if let Some(terminated) = state.terminated.filter(|t| t.exit_code != 0) {
            (terminated.reason, terminated.message)
        } else {
            continue;
        };
        problems.push(PodProblem {
            pod: name.clone(),
            container: Some(container.name.clone()),
            reason: reason.unwrap_or_else(|| "Waiting".into()),
            message: message.unwrap_or_default(),
        });
    }
    if let Some(scheduled) = condition("PodScheduled").filter(|c| c.status == "False") {
        problems.push(PodProblem {
            pod: name.clone(),
            container: None,
            reason: scheduled
                .reason
                .clone()
                .unwrap_or_else(|| "NotScheduled".into()),
            message: scheduled.message.clone().unwrap_or_default(),
        });
    }
    if problems.is_empty() {
        problems.push(PodProblem {
            pod: name,
            container: None,
            reason: "NotReady".into(),
            message: condition("Ready")
                .and_then(|c| c.message.clone())
                .unwrap_or_else(|| format!("phase {}", status.phase.unwrap_or_default())),
        });
    }
    problems
}

fn namespace_state(namespace: &Namespace) -> String {
    let status = namespace.status.clone().unwrap_or_default();
    let mut state = format!("phase {}", status.phase.unwrap_or_else(|| "unknown".into()));
    for condition in status
        .conditions
        .iter()
        .flatten()
        .filter(|c| c.status == "True")
    {
        state.push_str(&format!(
            "; {}: {}",
            condition.type_,
            condition.message.clone().unwrap_or_default()
        ));
    }
    state
}
