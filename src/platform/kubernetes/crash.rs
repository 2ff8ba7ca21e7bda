//! kill-pod as a true crash: every process of the pod's containers gets
//! SIGKILL from the node, with no SIGTERM and no grace period, as when a
//! process dies. Deleting a pod cannot do that: even with grace period 0 the
//! kubelet sends SIGTERM first and waits (at least 2 s in this cluster's
//! kubelet), and a SIGKILL sent from inside the container's PID namespace
//! to its PID 1 is ignored by the kernel.
//!
//! So gameday starts a short-lived pod on the target's node, in the host's
//! PID namespace (`hostPID`), that finds the container's processes by their
//! cgroup (which names the container's ID, whatever the cgroup driver and
//! version) and kills them. The kubelet then sees the container die and
//! restarts it (`restartPolicy: Always`), as after any crash. The agent runs
//! the toolbox image (`target.images.toolbox`, default busybox), needs to
//! create pods with `hostPID` and privileges in the namespace, and reports
//! how many processes it killed through its termination message.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, PostParams},
};
use serde_json::json;
use tokio::time::{Instant, sleep};

use super::{
    cluster::Cluster,
    errors::{Error, Result, api_error},
};

/// How long the agent may take to be scheduled, start and finish.
const AGENT_TIMEOUT: Duration = Duration::from_secs(60);

/// The label on gameday's own agent pods.
pub const AGENT_LABEL: (&str, &str) = ("app.kubernetes.io/component", "gameday-crash-agent");

/// The script the agent runs: SIGKILL to every process whose cgroup names
/// one of the container IDs, then the count as its termination message.
fn script(container_ids: &[String]) -> String {
    format!(
        "n=0; for p in /proc/[0-9]*; do \
           for id in {ids}; do \
             if grep -q \"$id\" \"$p/cgroup\" 2>/dev/null; then kill -9 \"${{p#/proc/}}\" 2>/dev/null && n=$((n+1)); fi; \
           done; \
         done; \
         echo \"$n\" > /dev/termination-log; [ \"$n\" -gt 0 ]",
        ids = container_ids.join(" ")
    )
}

/// The agent pod for `pod`'s containers on `node`.
pub fn agent(pod: &str, node: &str, container_ids: &[String], image: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": format!("gameday-crash-{}-", pod.chars().take(40).collect::<String>()),
            "labels": { AGENT_LABEL.0: AGENT_LABEL.1, "app.kubernetes.io/managed-by": "gameday" }
        },
        "spec": {
            "nodeName": node,
            "hostPID": true,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "tolerations": [{ "operator": "Exists" }],
            "containers": [{
                "name": "crash",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script(container_ids)],
                "securityContext": { "privileged": true, "runAsUser": 0 },
                "resources": { "requests": { "cpu": "10m", "memory": "16Mi" } }
            }]
        }
    })
}

/// The IDs of a pod's running containers (`containerd://abc` gives `abc`).
pub fn container_ids(pod: &Pod) -> Vec<String> {
    pod.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter_map(|c| c.container_id.as_deref())
        .filter_map(|id| id.split_once("://").map(|(_, id)| id.to_string()))
        .filter(|id| id.len() >= 12 && id.chars().all(|c| c.is_ascii_hexdigit()))
        .collect()
}

impl Cluster {
    /// Crashes `pod`: SIGKILL to its containers' processes from its node.
    /// Returns how many processes died.
    pub async fn crash_pod(&self, pod: &str, image: &str) -> Result<u32> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let failed = |why: String| Error::Crash {
            pod: pod.to_string(),
            why,
        };
        let target = pods.get(pod).await.map_err(api_error(format!(
            "read pod {pod} in namespace {}",
            self.namespace
        )))?;
        let node = target
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .ok_or_else(|| failed("it is not running on a node".into()))?;
        let ids = container_ids(&target);
        if ids.is_empty() {
            return Err(failed("it has no running container".into()));
        }
        let spec: Pod = serde_json::from_value(agent(pod, &node, &ids, image))
            .map_err(|e| failed(e.to_string()))?;
        let created = pods
            .create(&PostParams::default(), &spec)
            .await
            .map_err(api_error(format!(
                "create the crash agent for pod {pod} on node {node} in namespace {}",
                self.namespace
            )))?;
        let name = created.name_any();
        let outcome = self.wait_agent(&pods, &name).await;
        let _ = pods.delete(&name, &DeleteParams::default()).await;
        outcome.map_err(failed)
    }

    /// Waits for the agent to end; its count of killed processes.
    async fn wait_agent(&self, pods: &Api<Pod>, name: &str) -> std::result::Result<u32, String> {
        let started = Instant::now();
        loop {
            let pod = pods.get(name).await.map_err(|e| e.to_string())?;
            let status = pod.status.unwrap_or_default();
            let terminated = status
                .container_statuses
                .iter()
                .flatten()
                .find_map(|c| c.state.as_ref().and_then(|s| s.terminated.clone()));
            if let Some(t) = terminated {
                let killed: u32 = t
                    .message
                    .as_deref()
                    .and_then(|m| m.trim().parse().ok())
                    .unwrap_or(0);
                return if t.exit_code == 0 && killed > 0 {
                    Ok(killed)
                } else {
                    Err(format!(
                        "the agent found no process of the pod on its node (exit {})",
                        t.exit_code
                    ))
                };
            }
            if started.elapsed() > AGENT_TIMEOUT {
                let waiting = status
                    .container_statuses
                    .iter()
                    .flatten()
                    .find_map(|c| c.state.as_ref().and_then(|s| s.waiting.clone()))
                    .map(|w| {
                        format!(
                            "{}: {}",
                            w.reason.unwrap_or_default(),
                            w.message.unwrap_or_default()
                        )
                    })
                    .unwrap_or_else(|| status.phase.unwrap_or_default());
                return Err(format!(
                    "the agent did not finish within {} s ({waiting})",
                    AGENT_TIMEOUT.as_secs()
                ));
            }
            sleep(Duration::from_millis(250)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_runs_on_the_pod_s_node_in_the_host_s_pid_namespace_and_kills_by_container() {
        let ids = vec!["3f2a9c0d1e4b5a6978".to_string()];
        let a = agent("cart-7d9f-abcde", "node-b", &ids, "busybox:1.36");
        assert_eq!(a["spec"]["nodeName"], "node-b");
        assert_eq!(a["spec"]["hostPID"], true);
        assert_eq!(a["spec"]["restartPolicy"], "Never");
        let command = a["spec"]["containers"][0]["command"][2].as_str().unwrap();
        assert!(command.contains("kill -9") && command.contains("3f2a9c0d1e4b5a6978"));
        // The spec is a valid Pod.
        let pod: Pod = serde_json::from_value(a).unwrap();
        assert_eq!(pod.spec.unwrap().host_pid, Some(true));
    }

    #[test]
    fn only_running_containers_ids_are_taken() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": { "name": "cart-a" },
            "status": { "containerStatuses": [
                { "name": "cart", "image": "x", "imageID": "", "ready": true, "restartCount": 0,
                  "containerID": "containerd://0123456789abcdef0123" },
                { "name": "side", "image": "x", "imageID": "", "ready": false, "restartCount": 0 }
            ]}
        }))
        .unwrap();
        assert_eq!(container_ids(&pod), ["0123456789abcdef0123"]);
    }
}
