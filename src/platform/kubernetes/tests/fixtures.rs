//! Recorded API objects for the mock server: the JSON a v1.35 API server
//! sends for the shop's pods, nodes, workloads and errors, trimmed to the
//! fields gameday reads (and a few it must ignore).

use serde_json::{Value, json};

pub const NS: &str = "gameday-shop";

/// A shop pod owned by a ReplicaSet, scheduled (or not) and ready (or not).
pub fn pod(name: &str, service: &str, node: Option<&str>, ready: bool) -> Value {
    let ready_text = if ready { "True" } else { "False" };
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": format!("uid-{name}"),
            "resourceVersion": "1000",
            "labels": {
                "app.kubernetes.io/name": service,
                "app.kubernetes.io/part-of": "gameday-shop",
                "pod-template-hash": "5d8f7c9b6"
            },
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": format!("{service}-5d8f7c9b6"), "uid": "rs-uid", "controller": true
            }]
        },
        "spec": {
            "terminationGracePeriodSeconds": 30,
            "containers": [{ "name": service, "image": "gameday-shop:0.1.0" }]
        },
        "status": {
            "phase": if node.is_some() { "Running" } else { "Pending" },
            "conditions": [
                { "type": "PodScheduled", "status": if node.is_some() { "True" } else { "False" } },
                { "type": "Ready", "status": ready_text }
            ],
            "containerStatuses": [{
                "name": service, "image": "gameday-shop:0.1.0", "imageID": "", "restartCount": 0,
                "ready": ready, "started": ready,
                "containerID": format!("containerd://{:0>64}", name.len()),
                "state": { "running": { "startedAt": "2026-11-22T10:00:00Z" } }
            }]
        }
    });
    if let Some(node) = node {
        pod["spec"]["nodeName"] = json!(node);
    }
    pod
}

/// gameday's crash agent for `pod`, as the API server answers once it has
/// run: terminated with `exit` and `killed` processes in its message.
pub fn crash_agent(name: &str, node: &str, exit: i32, killed: u32) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "namespace": NS, "uid": format!("uid-{name}"), "resourceVersion": "4000" },
        "spec": { "nodeName": node, "hostPID": true, "containers": [{ "name": "crash", "image": "busybox:1.36" }] },
        "status": {
            "phase": if exit == 0 { "Succeeded" } else { "Failed" },
            "containerStatuses": [{
                "name": "crash", "image": "busybox:1.36", "imageID": "", "restartCount": 0, "ready": false,
                "state": { "terminated": { "exitCode": exit, "reason": if exit == 0 { "Completed" } else { "Error" },
                           "message": format!("{killed}\n") } }
            }]
        }
    })
}

/// A StatefulSet's pod (mariadb-0, redis-0, rabbitmq-0).
pub fn stateful_pod(name: &str, app: &str, node: &str) -> Value {
    let mut pod = pod(name, app, Some(node), true);
    pod["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": "StatefulSet", "name": app, "uid": "sts-uid", "controller": true
    }]);
    pod
}

/// A pod whose image cannot be pulled, as the kubelet reports it.
pub fn pod_image_pull_backoff(name: &str, service: &str, node: &str) -> Value {
    let mut pod = pod(name, service, Some(node), false);
    pod["status"]["phase"] = json!("Pending");
    pod["status"]["containerStatuses"][0]["state"] = json!({
        "waiting": {
            "reason": "ImagePullBackOff",
            "message": "Back-off pulling image \"registry.invalid/gameday-shop:0.1.0\""
        }
    });
    pod
}

/// A pod that no node can take.
pub fn pod_unschedulable(name: &str, service: &str) -> Value {
    let mut pod = pod(name, service, None, false);
    pod["status"]["conditions"] = json!([{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient cpu."
    }]);
    pod["status"]["containerStatuses"] = json!([]);
    pod
}

/// A DaemonSet's pod, which a drain leaves alone.
pub fn daemon_pod(name: &str, node: &str) -> Value {
    let mut pod = pod(name, "kube-proxy", Some(node), true);
    pod["metadata"]["namespace"] = json!("kube-system");
    pod["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": "DaemonSet", "name": "kube-proxy", "uid": "ds-uid", "controller": true
    }]);
    pod
}

/// Marks an object as being deleted.
pub fn terminating(mut object: Value) -> Value {
    object["metadata"]["deletionTimestamp"] = json!("2026-11-22T10:05:00Z");
    object
}

pub fn node(name: &str, ready: bool, zone: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": format!("uid-{name}"),
            "resourceVersion": "2000",
            "labels": {
                "kubernetes.io/hostname": name,
                "topology.kubernetes.io/zone": zone
            }
        },
        "spec": {},
        "status": {
            "addresses": [
                { "type": "InternalIP", "address": "10.0.0.1" },
                { "type": "Hostname", "address": name }
            ],
            "conditions": [
                { "type": "MemoryPressure", "status": "False" },
                { "type": "Ready", "status": if ready { "True" } else { "Unknown" } }
            ]
        }
    })
}

/// A control-plane node (kubeadm's label).
pub fn control_plane(mut node: Value) -> Value {
    node["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] = json!("");
    node
}

pub fn cordoned(mut node: Value) -> Value {
    node["spec"]["unschedulable"] = json!(true);
    node
}

pub fn deployment(name: &str, replicas: i32, available: i32) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "namespace": NS, "generation": 1, "resourceVersion": "3000" },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app.kubernetes.io/name": name } },
            "template": { "spec": { "containers": [{ "name": name }] } }
        },
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": available,
            "availableReplicas": available
        }
    })
}

/// A Service of type LoadBalancer whose address is still pending.
pub fn service_pending(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": name, "namespace": NS, "resourceVersion": "3300" },
        "spec": {
            "type": "LoadBalancer",
            "ports": [{ "name": "http", "port": 80, "targetPort": "http", "nodePort": 30080 }]
        },
        "status": { "loadBalancer": {} }
    })
}

/// A Deployment's scale subresource (autoscaling/v1 Scale).
pub fn deployment_scale(name: &str, namespace: &str, replicas: i32) -> Value {
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": { "name": name, "namespace": namespace, "resourceVersion": "3200" },
        "spec": { "replicas": replicas },
        "status": { "replicas": replicas, "selector": format!("app.kubernetes.io/name={name}") }
    })
}

pub fn statefulset(name: &str, replicas: i32, ready: i32) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": { "name": name, "namespace": NS, "generation": 1, "resourceVersion": "3100" },
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": { "matchLabels": { "app.kubernetes.io/name": name } },
            "template": { "spec": { "containers": [{ "name": name }] } }
        },
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "updatedReplicas": replicas,
            "currentRevision": format!("{name}-7b9c"),
            "updateRevision": format!("{name}-7b9c")
        }
    })
}

pub fn scale(name: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": { "name": name, "namespace": NS, "resourceVersion": "3200" },
        "spec": { "replicas": replicas },
        "status": { "replicas": replicas, "selector": format!("app.kubernetes.io/name={name}") }
    })
}

/// One endpoint of a slice: the pod and its conditions.
pub struct Endpoint<'a> {
    pub pod: &'a str,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

pub fn endpoint_slice(name: &str, service: &str, endpoints: &[Endpoint<'_>]) -> Value {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| {
            json!({
                "addresses": [format!("10.244.1.{}", i + 10)],
                "conditions": { "ready": e.ready, "serving": e.serving, "terminating": e.terminating },
                "nodeName": "node-a",
                "targetRef": { "kind": "Pod", "name": e.pod, "namespace": NS, "uid": format!("uid-{}", e.pod) }
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": NS,
            "resourceVersion": "4000",
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"
            }
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{ "name": "http", "port": 8080, "protocol": "TCP" }]
    })
}

pub fn hpa(service: &str, current: i32, desired: i32, cpu: Option<i32>) -> Value {
    let mut hpa = json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": { "name": service, "namespace": NS, "resourceVersion": "5000" },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": service },
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": [{
                "type": "Resource",
                "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 70 } }
            }]
        },
        "status": { "currentReplicas": current, "desiredReplicas": desired }
    });
    if let Some(cpu) = cpu {
        hpa["status"]["currentMetrics"] = json!([{
            "type": "Resource",
            "resource": { "name": "cpu", "current": { "averageUtilization": cpu, "averageValue": "35m" } }
        }]);
    }
    hpa
}

pub fn namespace(name: &str, phase: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name, "uid": "ns-uid", "resourceVersion": "10",
            "labels": { "app.kubernetes.io/managed-by": "gameday", "kubernetes.io/metadata.name": name }
        },
        "spec": { "finalizers": ["kubernetes"] },
        "status": { "phase": phase }
    })
}

pub fn list(kind: &str, api_version: &str, resource_version: &str, items: Vec<Value>) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": format!("{kind}List"),
        "metadata": { "resourceVersion": resource_version },
        "items": items
    })
}

/// A watch event line.
pub fn event(kind: &str, object: Value) -> Value {
    json!({ "type": kind, "object": object })
}

/// A `Status` object with the code, reason and message the API server sends.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code
    })
}

pub fn success() -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success" })
}

pub fn not_found(resource: &str, name: &str) -> Value {
    let mut status = status(404, "NotFound", &format!("{resource} \"{name}\" not found"));
    status["details"] = json!({ "name": name, "kind": resource });
    status
}

/// What the eviction subresource answered on the local cluster
/// (scripts/cluster.sh, Kubernetes v1.34.4) when PodDisruptionBudget
/// `cart` forbade an eviction: recorded/eviction-refused-by-pdb.json, with
/// the budget's name put in.
pub fn pdb_refusal(pdb: &str) -> Value {
    let recorded = include_str!("recorded/eviction-refused-by-pdb.json")
        .replace("budget cart needs", &format!("budget {pdb} needs"));
    recorded_json(&recorded)
}

/// HorizontalPodAutoscaler `cart` as the local cluster's API server
/// served it seconds after it was created: `desiredReplicas: 0`, no
/// metrics yet (recorded/hpa-fresh.json).
pub fn hpa_fresh() -> Value {
    recorded_json(include_str!("recorded/hpa-fresh.json"))
}

pub fn forbidden(verb: &str, resource: &str, name: &str) -> Value {
    status(
        403,
        "Forbidden",
        &format!(
            "{resource} \"{name}\" is forbidden: User \"system:serviceaccount:ci:runner\" cannot \
             {verb} resource \"{resource}\" in API group \"\" in the namespace \"{NS}\""
        ),
    )
}

/// What the API server answers for new objects in a namespace being deleted.
pub fn namespace_terminating(resource: &str, name: &str) -> Value {
    let mut status = status(
        403,
        "Forbidden",
        &format!(
            "{resource} \"{name}\" is forbidden: unable to create new content in namespace \
             {NS} because it is being terminated"
        ),
    );
    status["details"] = json!({
        "name": name,
        "kind": resource,
        "causes": [{
            "reason": "NamespaceTerminating",
            "message": format!("namespace {NS} is being terminated"),
            "field": "metadata.namespace"
        }]
    });
    status
}

/// `text` (a recording from namespace gameday-shop) moved to `namespace`.
fn in_namespace(text: &str, namespace: &str) -> Value {
    let text = text.replace(
        "\"namespace\": \"gameday-shop\"",
        &format!("\"namespace\": \"{namespace}\""),
    );
    recorded_json(&text)
}

/// A recording (recorded/*.json) as JSON.
fn recorded_json(text: &str) -> Value {
    serde_json::from_str(text).expect("recorded JSON")
}

/// What the local cluster's API server (v1.34.4) answered to gameday's
/// server-side apply of its Namespace (recorded/apply-namespace.json,
/// recorded by scripts/record-k8s-fixtures.sh, as are the others below).
pub fn applied_namespace(namespace: &str) -> Value {
    let mut ns = in_namespace(include_str!("recorded/apply-namespace.json"), namespace);
    ns["metadata"]["name"] = json!(namespace);
    ns["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(namespace);
    ns
}

/// The answer to gameday's server-side apply of Deployment cart, which
/// carries no `spec.replicas` (its HPA manages them), after cart's scale
/// had been raised to 3 as its HPA would: `spec.replicas` stays 3, and
/// manager `gameday` owns no `f:replicas`
/// (recorded/apply-deployment-cart.json).
pub fn applied_cart(namespace: &str) -> Value {
    in_namespace(
        include_str!("recorded/apply-deployment-cart.json"),
        namespace,
    )
}

/// Deployment cart's scale subresource at that moment: 3 replicas
/// (recorded/scale-cart.json).
pub fn cart_scale_raised_by_its_hpa(namespace: &str) -> Value {
    in_namespace(include_str!("recorded/scale-cart.json"), namespace)
}

/// The answer to `DELETE pods/mariadb-0` with `gracePeriodSeconds: 1`
/// (db-failover): the pod, with its deletionTimestamp and
/// `deletionGracePeriodSeconds: 1` (recorded/delete-pod-grace-1.json).
pub fn mariadb_deleted_with_grace_1() -> Value {
    recorded_json(include_str!("recorded/delete-pod-grace-1.json"))
}

/// The answer to `DELETE` of a cart pod with its own grace period
/// (kill-pod graceful): the pod, terminating in 30 s
/// (recorded/delete-pod-own-grace.json), named `name`.
pub fn cart_pod_deleted_with_its_grace(name: &str) -> Value {
    let mut pod = recorded_json(include_str!("recorded/delete-pod-own-grace.json"));
    pod["metadata"]["name"] = json!(name);
    pod
}
