//! Shards as the pods of one Indexed Job (`load.generators.platform:
//! kubernetes`). The coordinator needs only the API server: it creates the
//! Job, waits until every pod runs, attaches to each pod's input and output
//! through the API server (`pods/attach`, as `kubectl attach` does) and
//! speaks the same lines as to a local shard. No connection comes back to
//! the coordinator. The container's input is `stdinOnce`: when the
//! coordinator goes away, the shard's input ends and the shard stops. The
//! Job is deleted, with its pods, when the load is over or fails to start;
//! its `activeDeadlineSeconds` ends it if the coordinator itself is killed.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use k8s_openapi::api::{batch::v1::Job, core::v1::Pod};
use kube::{
    Api, Client, ResourceExt,
    api::{AttachParams, DeleteParams, ListParams, PostParams},
};
use serde_json::{Value, json};

use super::{
    coordinator::{ShardLink, Shards, Teardown},
    wire::ShardPlan,
};
use crate::{
    errors::{Error, Result},
    platform::kubernetes::{Cluster, ClusterTarget},
    scenario::KubernetesGenerators,
};

/// The Job's name is this and the run's id.
pub const JOB_NAME_PREFIX: &str = "gameday-shards-";
/// The container's name in every shard pod.
const CONTAINER: &str = "shard";
/// How long every pod may take to be scheduled and start (an image pull
/// included).
pub const RUNNING_WITHIN: Duration = Duration::from_secs(180);
/// Container states a pod does not leave by itself.
const STUCK: [&str; 5] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
];

/// The label every object of a run's shards carries, with the Job's name
/// (the pods' spread is over the pods of this one Job).
pub const RUN_LABEL: &str = "gameday.dev/shards-of";

/// The Job's name for run `run_id` (a DNS label: lowercase, at most 63).
pub fn job_name(run_id: &str) -> String {
    let id: String = run_id
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut name = format!("{JOB_NAME_PREFIX}{id}");
    name.truncate(52);
    name.trim_end_matches('-').to_string()
}

/// The Indexed Job of `shards` pods, each `gameday shard` waiting for its
/// plan on its input; `deadline`: how long the Job may live at most.
pub fn job_manifest(
    name: &str,
    g: &KubernetesGenerators,
    shards: u32,
    deadline: Duration,
) -> Value {
    let labels = json!({
        "app.kubernetes.io/name": "gameday",
        "app.kubernetes.io/component": "load-generator",
        "app.kubernetes.io/managed-by": "gameday",
        RUN_LABEL: name,
    });
    // No CPU limit: CFS throttles a limited pod in bursts, which a load
    // generator sees as timer lag (a saturated shard) at a low average CPU.
    let requests = json!({ "cpu": g.cpu, "memory": g.memory });
    let limits = json!({ "memory": g.memory });
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": { "name": name, "namespace": g.namespace, "labels": labels },
        "spec": {
            "completionMode": "Indexed",
            "completions": shards,
            "parallelism": shards,
            // A shard that fails is lost, not started again half way.
            "backoffLimit": 0,
            "activeDeadlineSeconds": deadline.as_secs().max(60),
            "ttlSecondsAfterFinished": 300,
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 5,
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    // One shard a machine where the cluster has machines.
                    "topologySpreadConstraints": [{
                        "maxSkew": 1,
                        "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": { "matchLabels": { RUN_LABEL: labels[RUN_LABEL] } },
                    }],
                    "containers": [{
                        "name": CONTAINER,
                        "image": g.image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["gameday", "shard", "--index", "$(JOB_COMPLETION_INDEX)"],
                        "stdin": true,
                        "stdinOnce": true,
                        "resources": { "requests": requests, "limits": limits },
                        "securityContext": { "allowPrivilegeEscalation": false },
                    }],
                },
            },
        },
    })
}

/// Creates the Job, waits until each shard's pod runs (within
/// [`RUNNING_WITHIN`], else an error with each pod's reason), attaches to
/// each and hands them to the coordinator. On any failure the Job is
/// deleted before the error returns.
pub async fn spawn(
    plans: Vec<ShardPlan>,
    g: &KubernetesGenerators,
    run_id: &str,
    length: Duration,
    origin: Instant,
) -> Result<Shards> {
    let target = ClusterTarget {
        kubeconfig: None,
        context: g.context.clone(),
    };
    let cluster = Cluster::connect(&target, &g.namespace)
        .await
        .map_err(|e| Error::Load(format!("the shards' cluster: {e}")))?;
    let client = cluster.client().clone();
    let name = job_name(run_id);
    let deadline = length + RUNNING_WITHIN + Duration::from_secs(300);
    let manifest = job_manifest(&name, g, plans.len() as u32, deadline);
    let job: Job = serde_json::from_value(manifest).map_err(|source| Error::Json {
        what: "the shards' Job",
        source,
    })?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &g.namespace);
    jobs.create(&PostParams::default(), &job)
        .await
        .map_err(|e| {
            Error::Load(format!(
                "cannot create the shards' Job {}/{name}: {e}",
                g.namespace
            ))
        })?;
    eprintln!(
        "gameday: shards: Job {}/{name} created ({} pods of {}); waiting for them to run",
        g.namespace,
        plans.len(),
        g.image
    );
    let links = match attach_all(&client, &g.namespace, &name, plans.len() as u32).await {
        Ok(links) => links,
        Err(e) => {
            if let Err(why) = delete_job(client, g.namespace.clone(), name).await {
                eprintln!("gameday: {why}");
            }
            return Err(e);
        }
    };
    let teardown: Teardown = Box::pin(delete_job(client, g.namespace.clone(), name));
    Shards::connect(links, plans, origin, Some(teardown)).await
}

/// The pods of Job `job` (the label the Job controller sets on them).
fn pods_of(job: &str) -> ListParams {
    ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"))
}

/// The shard index of a pod of an Indexed Job.
fn index_of(pod: &Pod) -> Option<u32> {
    pod.annotations()
        .get("batch.kubernetes.io/job-completion-index")
        .and_then(|i| i.parse().ok())
}

/// Why a pod does not run yet (or will not), from its status.
fn pod_state(pod: &Pod) -> PodState {
    let status = pod.status.clone().unwrap_or_default();
    let container = status
        .container_statuses
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.name == CONTAINER);
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .map(|n| format!(" on node {n}"))
        .unwrap_or_default();
    if let Some(state) = container.as_ref().and_then(|c| c.state.clone()) {
        if state.running.is_some() {
            return PodState::Running;
        }
        if let Some(t) = state.terminated {
            return PodState::Ended(format!(
                "its container ended{node}: exit code {}{}",
                t.exit_code,
                t.reason.map(|r| format!(" ({r})")).unwrap_or_default()
            ));
        }
        if let Some(w) = state.waiting {
            let reason = w.reason.unwrap_or_default();
            let text = format!(
                "{reason}{node}{}",
                w.message.map(|m| format!(": {m}")).unwrap_or_default()
            );
            return if STUCK.contains(&reason.as_str()) {
                PodState::Ended(text)
            } else {
                PodState::Pending(text)
            };
        }
    }
    if matches!(status.phase.as_deref(), Some("Failed" | "Succeeded")) {
        return PodState::Ended(format!(
            "the pod {}{node}{}",
            status.phase.unwrap_or_default().to_lowercase(),
            status.message.map(|m| format!(": {m}")).unwrap_or_default()
        ));
    }
    let unscheduled = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False");
    PodState::Pending(match unscheduled {
        Some(c) => format!(
            "not scheduled{}",
            c.message.map(|m| format!(": {m}")).unwrap_or_default()
        ),
        None => format!("{}{node}", status.phase.unwrap_or_else(|| "Pending".into())),
    })
}

#[derive(Debug, PartialEq)]
enum PodState {
    Running,
    Pending(String),
    Ended(String),
}

/// Waits until every shard's pod runs, then attaches to each.
async fn attach_all(
    client: &Client,
    namespace: &str,
    job: &str,
    shards: u32,
) -> Result<Vec<ShardLink>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = pods_of(job);
    let started = Instant::now();
    let running: BTreeMap<u32, String> = loop {
        let list = pods.list(&selector).await.map_err(|e| {
            Error::Load(format!(
                "cannot list the shards' pods of Job {namespace}/{job}: {e}"
            ))
        })?;
        let mut running = BTreeMap::new();
        let mut waiting = BTreeMap::new();
        for pod in &list.items {
            let Some(index) = index_of(pod) else { continue };
            match pod_state(pod) {
                PodState::Running => {
                    running.insert(index, pod.name_any());
                }
                PodState::Pending(why) => {
                    waiting.insert(index, format!("{} {why}", pod.name_any()));
                }
                PodState::Ended(why) => {
                    return Err(Error::Load(format!(
                        "shard {index} cannot start: its pod {namespace}/{} {why}",
                        pod.name_any()
                    )));
                }
            }
        }
        if running.len() as u32 == shards {
            break running;
        }
        if started.elapsed() > RUNNING_WITHIN {
            let missing: Vec<String> = (0..shards)
                .filter(|i| !running.contains_key(i))
                .map(|i| match waiting.get(&i) {
                    Some(why) => format!("shard {i}: pod {why}"),
                    None => format!(
                        "shard {i}: no pod (see `kubectl describe job -n {namespace} {job}`)"
                    ),
                })
                .collect();
            return Err(Error::Load(format!(
                "the shards' pods did not all run within {} s: {}",
                RUNNING_WITHIN.as_secs(),
                missing.join("; ")
            )));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    eprintln!("gameday: shards: {shards} pods running; attaching");
    let mut links = Vec::new();
    for (index, pod) in running {
        let params = AttachParams::default()
            .container(CONTAINER)
            .stdin(true)
            .stdout(true)
            .stderr(false);
        let mut attached = pods.attach(&pod, &params).await.map_err(|e| {
            Error::Load(format!(
                "cannot attach to shard {index}'s pod {namespace}/{pod}: {e}"
            ))
        })?;
        let (Some(input), Some(output)) = (attached.stdin(), attached.stdout()) else {
            return Err(Error::Load(format!(
                "shard {index}'s pod {namespace}/{pod} gave no input or output to attach to"
            )));
        };
        let (api, name) = (pods.clone(), pod.clone());
        let ended = Box::pin(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), attached.join()).await;
            why_ended(&api, &name).await
        });
        let log_hint = format!(" (kubectl logs -n {namespace} {pod})");
        links.push(ShardLink {
            index,
            input: Box::new(input),
            output: Box::new(output),
            ended,
            log: Box::new(move || log_hint.clone()),
            pid: None,
        });
    }
    Ok(links)
}

/// What became of a shard's pod once its stream ended: deleted, ended with
/// a status, or still running (the stream itself broke).
async fn why_ended(pods: &Api<Pod>, name: &str) -> String {
    for _ in 0..10 {
        match pods.get_opt(name).await {
            Ok(None) => return format!("its pod {name} was deleted"),
            Ok(Some(pod)) => {
                if pod.metadata.deletion_timestamp.is_some() {
                    return format!("its pod {name} was deleted");
                }
                if let PodState::Ended(why) = pod_state(&pod) {
                    return format!("its pod {name}: {why}");
                }
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    format!("the stream attached to its pod {name} ended while the pod still ran")
}

/// Deletes the Job and waits (up to a minute) until its pods are gone.
async fn delete_job(
    client: Client,
    namespace: String,
    name: String,
) -> std::result::Result<String, String> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    match jobs.delete(&name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => {
            return Err(format!(
                "cannot delete the shards' Job {namespace}/{name}: {e} (delete it: kubectl delete job -n {namespace} {name})"
            ));
        }
    }
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    let selector = pods_of(&name);
    let started = Instant::now();
    loop {
        match pods.list(&selector).await {
            Ok(list) if list.items.is_empty() => {
                return Ok(format!(
                    "shards: deleted Job {namespace}/{name} and its pods"
                ));
            }
            Ok(list) if started.elapsed() > Duration::from_secs(60) => {
                let names: Vec<String> = list.items.iter().map(|p| p.name_any()).collect();
                return Err(format!(
                    "the shards' Job {namespace}/{name} is deleted but its pods {} are still there after 60 s",
                    names.join(", ")
                ));
            }
            Err(e) if started.elapsed() > Duration::from_secs(60) => {
                return Err(format!(
                    "cannot see whether the shards' pods of {namespace}/{name} are gone: {e}"
                ));
            }
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generators() -> KubernetesGenerators {
        KubernetesGenerators {
            context: Some("gameday-local".into()),
            namespace: "shop".into(),
            image: "gameday-shop:0.1.0".into(),
            entry_url: "http://web.shop.svc".into(),
            cpu: "500m".into(),
            memory: "512Mi".into(),
        }
    }

    #[test]
    fn the_job_is_indexed_one_pod_a_shard_never_retried_and_bounded_in_time() {
        let name = job_name("20261203-164500");
        assert_eq!(name, "gameday-shards-20261203-164500");
        let manifest = job_manifest(&name, &generators(), 4, Duration::from_secs(900));
        let job: Job = serde_json::from_value(manifest).expect("a Job");
        let spec = job.spec.unwrap();
        assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
        assert_eq!((spec.completions, spec.parallelism), (Some(4), Some(4)));
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.active_deadline_seconds, Some(900));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let c = &pod.containers[0];
        assert_eq!((c.stdin, c.stdin_once), (Some(true), Some(true)));
        assert_eq!(c.command.as_ref().unwrap()[3], "$(JOB_COMPLETION_INDEX)");
        let resources = c.resources.as_ref().unwrap();
        assert_eq!(resources.requests.as_ref().unwrap()["cpu"].0, "500m");
        let limits = resources.limits.as_ref().unwrap();
        assert_eq!(limits["memory"].0, "512Mi");
        assert!(
            !limits.contains_key("cpu"),
            "a CPU limit throttles the generator"
        );
    }

    #[test]
    fn a_long_run_id_still_makes_a_dns_label() {
        let name =
            job_name("A_very_long_RUN_id_with_Upper_case_and_more_than_sixty_three_chars_in_it");
        assert!(name.len() <= 63 && name.starts_with(JOB_NAME_PREFIX));
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        assert!(!name.ends_with('-'));
    }

    #[test]
    fn a_pod_that_cannot_pull_its_image_is_ended_with_the_reason_not_pending() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": { "name": "gameday-shards-x-0-abcde" },
            "spec": { "nodeName": "gameday-a-1", "containers": [{ "name": "shard" }] },
            "status": { "phase": "Pending", "containerStatuses": [{
                "name": "shard", "image": "nope:1", "imageID": "", "ready": false, "restartCount": 0,
                "state": { "waiting": { "reason": "ErrImageNeverPull", "message": "image nope:1 is not present" } }
            }]}
        }))
        .unwrap();
        assert_eq!(
            pod_state(&pod),
            PodState::Ended(
                "ErrImageNeverPull on node gameday-a-1: image nope:1 is not present".into()
            )
        );
        let unscheduled: Pod = serde_json::from_value(json!({
            "metadata": { "name": "p" },
            "status": { "phase": "Pending", "conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient cpu."
            }]}
        }))
        .unwrap();
        assert_eq!(
            pod_state(&unscheduled),
            PodState::Pending("not scheduled: 0/3 nodes are available: 3 Insufficient cpu.".into())
        );
    }
}
