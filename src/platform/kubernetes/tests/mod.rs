//! The kubernetes platform without a cluster: a kube `Client` over
//! `tower_test::mock::pair`, answered by a scripted API server that asserts
//! each request (method, path, query, body, content type) and replies with
//! objects recorded from a v1.35 API server (`mock`, `fixtures`). Faults are
//! driven through `chaos::apply`, as a run drives them, and each test pins
//! the requests they make. `on_a_cluster` holds the tests that need a real
//! cluster (ignored unless asked for).

mod cluster;
mod deploy;
mod faults;
mod fixtures;
mod inventory;
mod manifests;
mod mock;
mod nodes;
mod on_a_cluster;
mod platform;
mod trackers;
mod watch;

use std::{collections::BTreeMap, path::Path, sync::Arc};

use serde_json::{Value, json};

use self::{
    fixtures::NS,
    mock::{ApiServer, Exchange},
};
use super::{
    Cluster, KubernetesBackend, KubernetesPlatform, KubernetesSite, manifests as shop_manifests,
};
use crate::{
    events::EventLog,
    platform::{Platform, Purpose, lifecycle},
    scenario::KubernetesTarget,
};

pub const APPLY: &str = "application/apply-patch+yaml";
pub const MERGE: &str = "application/merge-patch+json";
pub const IMAGE: &str = "registry.example.com/gameday-shop:0.2.0";
pub const ENTRY: &str = "http://shop.example.com";

pub fn apply_query() -> [(&'static str, &'static str); 2] {
    [("fieldManager", "gameday"), ("force", "true")]
}

/// The scenario's target: namespace `gameday-shop`, the test image, an
/// entry URL.
pub fn target(deploy: bool) -> KubernetesTarget {
    KubernetesTarget {
        context: None,
        namespace: NS.into(),
        deploy,
        image: Some(IMAGE.into()),
        entry_url: Some(ENTRY.into()),
        replicas: BTreeMap::new(),
        autoscale: BTreeMap::new(),
        images: BTreeMap::new(),
        storage_class: None,
        node_provider: None,
    }
}

/// A platform attached to the mock cluster, and its event log.
pub fn attached() -> (KubernetesPlatform, Arc<EventLog>, ApiServer) {
    let (cluster, server) = mock::cluster();
    let events = Arc::new(EventLog::new(None).expect("an event log in memory"));
    let platform = KubernetesPlatform::new(cluster, target(false), ENTRY.into(), events.clone());
    (platform, events, server)
}

/// The lifecycle's answer to `GET namespace` when the shop's namespace is
/// there.
pub fn namespace_there() -> Exchange {
    Exchange::get(&format!("/api/v1/namespaces/{}", fixtures::NS))
        .ok(fixtures::namespace(fixtures::NS, "Active"))
}

/// The platform as the lifecycle opens it on the mock cluster for
/// `purpose` (it first asks whether the namespace is there).
pub async fn opened(
    cluster: Cluster,
    deploy: bool,
    purpose: Purpose,
    events: Arc<EventLog>,
) -> crate::platform::Result<Box<dyn Platform>> {
    opened_with(cluster, target(deploy), purpose, events).await
}

/// [`opened`] with a target of the test's own; the platform starts no
/// watchers (every request is scripted).
pub async fn opened_with(
    cluster: Cluster,
    target: KubernetesTarget,
    purpose: Purpose,
    events: Arc<EventLog>,
) -> crate::platform::Result<Box<dyn Platform>> {
    let backend = Arc::new(KubernetesBackend::new(target.clone()));
    let site = Box::new(KubernetesSite::new(cluster, target).unwatched());
    lifecycle::open_at(backend, site, purpose, events).await
}

/// A run's purpose (the files of a platform that runs processes are not
/// used here).
pub fn run_purpose() -> Purpose {
    Purpose::Run {
        files: std::env::temp_dir(),
    }
}

/// Every server-side apply of the reference shop into `namespace`, in the
/// order gameday sends them: the Namespace, ConfigMap and Secret, the
/// Services, StatefulSets, Deployments, then HPAs and PDBs. The Namespace's
/// and the cart Deployment's bodies are checked exactly, and answered with
/// what a real API server answered to them (recorded/). Then each
/// Deployment an HPA manages (all six) is raised from the 1 replica a new
/// Deployment has to its 2, through the scale subresource.
pub fn applies(namespace: &str) -> Vec<Exchange> {
    applies_over(namespace, false)
}

/// [`applies`] into a shop already running, whose HPA had raised cart to 3
/// replicas: the answers to cart's apply and scale are the ones recorded
/// from a cluster in that state, and cart's scale is left alone.
pub fn applies_over_an_hpa_scaled_cart(namespace: &str) -> Vec<Exchange> {
    applies_over(namespace, true)
}

fn applies_over(namespace: &str, hpa_scaled_cart: bool) -> Vec<Exchange> {
    let mut all = server_side_applies(namespace);
    let apps = format!("/apis/apps/v1/namespaces/{namespace}");
    for s in ["web", "user", "catalogue", "cart", "orders", "shipping"] {
        let scale = format!("{apps}/deployments/{s}/scale");
        if hpa_scaled_cart && s == "cart" {
            all.push(Exchange::get(&scale).ok(fixtures::cart_scale_raised_by_its_hpa(namespace)));
            continue;
        }
        all.push(Exchange::get(&scale).ok(fixtures::deployment_scale(s, namespace, 1)));
        all.push(
            Exchange::patch(&scale)
                .content_type(MERGE)
                .body(json!({ "spec": { "replicas": 2 } }))
                .ok(fixtures::deployment_scale(s, namespace, 2)),
        );
    }
    all
}

fn server_side_applies(namespace: &str) -> Vec<Exchange> {
    let ns = format!("/api/v1/namespaces/{namespace}");
    let apps = format!("/apis/apps/v1/namespaces/{namespace}");
    let mut paths = vec![
        ns.clone(),
        format!("{ns}/configmaps/shop-config"),
        format!("{ns}/secrets/shop-secrets"),
    ];
    let services = ["web", "user", "catalogue", "cart", "orders", "shipping"];
    let stateful = ["mariadb", "redis", "rabbitmq"];
    paths.extend(stateful.iter().map(|s| format!("{ns}/services/{s}")));
    paths.extend(services.iter().map(|s| format!("{ns}/services/{s}")));
    paths.extend(stateful.iter().map(|s| format!("{apps}/statefulsets/{s}")));
    paths.extend(services.iter().map(|s| format!("{apps}/deployments/{s}")));
    for s in services {
        paths.push(format!(
            "/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers/{s}"
        ));
        paths.push(format!(
            "/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets/{s}"
        ));
    }
    paths
        .into_iter()
        .map(|path| {
            let exchange = Exchange::patch(&path)
                .query(&apply_query())
                .content_type(APPLY);
            if path == ns {
                exchange
                    .body(
                        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
                            "name": namespace,
                            "labels": { "app.kubernetes.io/managed-by": "gameday" }
                        }}),
                    )
                    .ok(fixtures::applied_namespace(namespace))
            } else if path.ends_with("deployments/cart") {
                exchange
                    .body(cart_deployment_as_applied(namespace))
                    .ok(fixtures::applied_cart(namespace))
            } else {
                exchange
            }
        })
        .collect()
}

/// The cart Deployment exactly as the manifest has it, but in `namespace`
/// and on the scenario's image.
fn cart_deployment_as_applied(namespace: &str) -> Value {
    let dir = shop_manifests::reference_app_dir();
    let text = std::fs::read_to_string(dir.join("services.yaml")).expect("services.yaml");
    let mut cart = shop_manifests::parse(Path::new("services.yaml"), &text)
        .expect("the manifests parse")
        .into_iter()
        .find(|m| m.label() == "Deployment cart")
        .expect("a cart Deployment")
        .object;
    cart["metadata"]["namespace"] = json!(namespace);
    cart["spec"]["template"]["spec"]["containers"][0]["image"] = json!(IMAGE);
    // An HPA manages it: its replicas go through the scale subresource.
    cart["spec"].as_object_mut().unwrap().remove("replicas");
    cart
}

/// One look at the rollout in `namespace`: every workload available.
pub fn all_ready(namespace: &str) -> [Exchange; 2] {
    let deployments = ["web", "user", "catalogue", "cart", "orders", "shipping"]
        .map(|s| fixtures::deployment(s, 2, 2));
    let statefulsets = ["mariadb", "redis", "rabbitmq"].map(|s| fixtures::statefulset(s, 1, 1));
    [
        Exchange::get(&format!("/apis/apps/v1/namespaces/{namespace}/deployments")).ok(
            fixtures::list("Deployment", "apps/v1", "10", deployments.to_vec()),
        ),
        Exchange::get(&format!(
            "/apis/apps/v1/namespaces/{namespace}/statefulsets"
        ))
        .ok(fixtures::list(
            "StatefulSet",
            "apps/v1",
            "11",
            statefulsets.to_vec(),
        )),
    ]
}

/// The mock cluster, for namespace `namespace`.
pub fn cluster_in(namespace: &str) -> (Cluster, ApiServer) {
    let (cluster, server) = mock::cluster();
    (
        Cluster {
            namespace: namespace.into(),
            ..cluster
        },
        server,
    )
}
