//! The platform as the engine and `plan` see it: what it supports and
//! says, a read-only preview, and the inventory through the trait.

use std::{sync::Arc, time::Duration};

use super::{
    ENTRY,
    fixtures::{self, NS},
    mock::{self, Exchange},
    namespace_there, opened, target,
};
use crate::{
    events::EventLog,
    platform::{
        Platform, Purpose, Support, Target, TargetKind, Undo,
        kubernetes::{KubernetesPlatform, describe, supports},
    },
    scenario::{BlastRadius, Fault, FaultKind, Schedule},
};

fn fault(kind: FaultKind, duration_s: Option<u64>) -> Fault {
    Fault {
        name: "f".into(),
        kind,
        schedule: Schedule::At(Duration::ZERO),
        duration: duration_s.map(Duration::from_secs),
    }
}

fn kill_cart() -> FaultKind {
    FaultKind::KillPod {
        service: "cart".into(),
        radius: BlastRadius::Count(1),
        graceful: false,
    }
}

fn preview() -> (KubernetesPlatform, mock::ApiServer) {
    let (cluster, server) = mock::cluster();
    let platform = KubernetesPlatform::new(
        cluster,
        target(true),
        ENTRY.into(),
        Arc::new(EventLog::new(None).unwrap()),
    );
    (platform, server)
}

/// The platform as `plan` opens it (the namespace is there).
async fn plan_with(
    exchanges: Vec<Exchange>,
) -> (
    Box<dyn Platform>,
    tokio::task::JoinHandle<Vec<mock::Recorded>>,
) {
    let (cluster, server) = mock::cluster();
    let server = server.run([vec![namespace_there()], exchanges].concat());
    let events = Arc::new(EventLog::new(None).unwrap());
    let platform = opened(cluster, true, Purpose::Plan, events)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (platform, server)
}

#[test]
fn faults_kubernetes_repairs_by_itself_cannot_last_and_there_is_no_standby_to_keep() {
    let t = target(true);
    let refused = |f: &Fault| match supports(&t, f) {
        Support::No { why } => why,
        Support::Yes => String::new(),
    };

    assert!(refused(&fault(kill_cart(), Some(10))).contains("does not last"));
    assert!(
        refused(&fault(
            FaultKind::DbFailover {
                rebuild_standby: false
            },
            None
        ))
        .contains("rebuild-standby")
    );
    assert_eq!(
        supports(
            &t,
            &fault(FaultKind::RestartCache { reboot: false }, Some(30))
        ),
        Support::Yes
    );
    assert_eq!(supports(&t, &fault(kill_cart(), None)), Support::Yes);
    let mut none = target(true);
    none.replicas.insert("cart".into(), 0);
    assert!(matches!(
        supports(&none, &fault(kill_cart(), None)),
        Support::No { .. }
    ));
}

#[test]
fn the_plan_says_nodes_are_chosen_only_among_those_running_the_namespace_s_pods() {
    let t = target(true);
    let terminate = fault(
        FaultKind::TerminateInstance {
            radius: BlastRadius::Count(1),
            zone: Some("zone-b".into()),
            graceful: false,
        },
        None,
    );

    let text = describe(&t, &terminate);

    assert!(
        text.contains("lose a node's machine in zone zone-b"),
        "{text}"
    );
    assert!(
        text.contains("only Ready, schedulable, non-control-plane nodes that run pods of namespace gameday-shop"),
        "{text}"
    );
    assert!(text.contains("set target.node-provider.command"), "{text}");
    let drain = describe(
        &t,
        &fault(
            FaultKind::DrainNode {
                radius: BlastRadius::Count(1),
                zone: None,
            },
            None,
        ),
    );
    assert!(drain.contains("PodDisruptionBudgets honoured"), "{drain}");
    let cache = describe(
        &t,
        &fault(FaultKind::RestartCache { reboot: false }, Some(30)),
    );
    assert!(
        cache.starts_with("scale StatefulSet redis in namespace gameday-shop to 0"),
        "{cache}"
    );
}

#[tokio::test]
async fn a_preview_of_a_shop_not_deployed_yet_says_it_will_be_deployed_first() {
    let (cluster, server) = mock::cluster();
    let server = server.run(vec![
        Exchange::get(&format!("/api/v1/namespaces/{NS}"))
            .reply(404, fixtures::not_found("namespaces", NS)),
    ]);
    let events = Arc::new(EventLog::new(None).unwrap());

    let platform = opened(cluster, true, Purpose::Plan, events).await.unwrap();
    let error = platform.candidates(&kill_cart()).await.unwrap_err();
    drop(platform);
    mock::finish(server).await;

    assert_eq!(
        error.to_string(),
        "kill-pod: namespace gameday-shop on context mock (https://mock.invalid/) does not \
         exist yet: a run creates it first, and what it runs is known only then"
    );
}

#[tokio::test]
async fn a_preview_acts_on_nothing() {
    let (platform, server) = plan_with(vec![]).await;
    let cart = Target::new(TargetKind::Replica, "cart-a").service("cart");

    let error = platform
        .inject(&fault(kill_cart(), None), &[cart])
        .await
        .unwrap_err();
    drop(platform);
    mock::finish(server).await;

    assert!(error.to_string().contains("acts on nothing"), "{error}");
}

#[tokio::test]
async fn the_inventory_through_the_platform_carries_the_entry_url() {
    let (platform, server) = preview();
    let server = server.run(vec![
        Exchange::get(&format!("/api/v1/namespaces/{NS}/pods")).ok(fixtures::list(
            "Pod",
            "v1",
            "7",
            vec![fixtures::pod("web-a", "web", Some("node-a"), true)],
        )),
        Exchange::get(&format!(
            "/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"
        ))
        .query(&[("labelSelector", "kubernetes.io/service-name")])
        .ok(fixtures::list(
            "EndpointSlice",
            "discovery.k8s.io/v1",
            "8",
            vec![],
        )),
        Exchange::get("/api/v1/nodes").ok(fixtures::list(
            "Node",
            "v1",
            "9",
            vec![fixtures::node("node-a", true, "zone-a")],
        )),
    ]);

    let inventory = platform.inventory().await.unwrap();
    drop(platform);
    mock::finish(server).await;

    assert_eq!(inventory.platform, "kubernetes");
    assert_eq!(inventory.entry_url, ENTRY);
    assert_eq!(inventory.replicas.len(), 1);
    assert_eq!(inventory.instances[0].name, "node-a");
}

#[tokio::test]
async fn an_undo_the_platform_never_registers_is_refused_by_name() {
    let (platform, server) = preview();
    let server = server.run(vec![]);

    let error = platform
        .undo(&Undo::Start(Target::new(TargetKind::Cache, "redis")))
        .await
        .unwrap_err();
    drop(platform);
    mock::finish(server).await;

    assert!(
        error.to_string().contains("undo (start redis again)"),
        "{error}"
    );
}

#[test]
fn the_bundled_kubernetes_scenario_validates_against_the_platform() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/kubernetes-smoke.yaml");

    let scenario = crate::scenario::Scenario::load_with(&path, crate::platform::check_faults)
        .unwrap_or_else(|e| panic!("{e}"));

    let crate::scenario::PlatformSpec::Kubernetes(k) = &scenario.target else {
        panic!("{:?}", scenario.target);
    };
    assert!(k.deploy);
    assert_eq!(k.namespace, "gameday-shop");
    assert_eq!(scenario.faults.len(), 2);
}

fn access_review(verb: &str, resource: &str, namespace: Option<&str>, allowed: bool) -> Exchange {
    review_in("", verb, resource, namespace, allowed)
}

/// The reviews of what a run's watchers read, each answered `allowed`
/// except cluster-wide nodes (`nodes`).
fn reads(nodes: bool) -> Vec<Exchange> {
    vec![
        review_in("", "list", "pods", Some(NS), true),
        review_in("", "watch", "pods", Some(NS), true),
        review_in(
            "discovery.k8s.io",
            "watch",
            "endpointslices",
            Some(NS),
            true,
        ),
        review_in("apps", "watch", "deployments", Some(NS), true),
        review_in(
            "autoscaling",
            "watch",
            "horizontalpodautoscalers",
            Some(NS),
            true,
        ),
        review_in("", "watch", "nodes", None, nodes),
    ]
}

fn review_in(
    group: &str,
    verb: &str,
    resource: &str,
    namespace: Option<&str>,
    allowed: bool,
) -> Exchange {
    let mut attributes = serde_json::json!({ "group": group, "resource": resource, "verb": verb });
    if let Some(ns) = namespace {
        attributes["namespace"] = serde_json::json!(ns);
    }
    Exchange::post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
        .body(serde_json::json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "metadata": {},
            "spec": { "resourceAttributes": attributes }
        }))
        .reply(
            201,
            serde_json::json!({
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "metadata": {},
                "spec": { "resourceAttributes": attributes },
                "status": if allowed {
                    serde_json::json!({ "allowed": true, "reason": "RBAC: allowed by ClusterRoleBinding \"chaos\"" })
                } else {
                    serde_json::json!({ "allowed": false })
                }
            }),
        )
}

#[tokio::test]
async fn the_plan_s_dry_run_asks_the_api_server_and_names_each_permission_missing() {
    // A user scoped to the namespace: may delete its pods and read them,
    // not watch the cluster's nodes, nor evict.
    let mut script = vec![access_review("delete", "pods", Some(NS), true)];
    script.extend(reads(false));
    script.extend([
        access_review("patch", "nodes", None, true),
        access_review("list", "pods", None, true),
        Exchange::post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews").reply(
            201,
            serde_json::json!({
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "metadata": {},
                "spec": {},
                "status": { "allowed": false }
            }),
        ),
    ]);
    script.extend(reads(false));
    let (platform, server) = plan_with(script).await;
    let delete_gracefully = FaultKind::KillPod {
        service: "cart".into(),
        radius: BlastRadius::Count(1),
        graceful: true,
    };
    let drain = fault(
        FaultKind::DrainNode {
            radius: BlastRadius::Count(1),
            zone: None,
        },
        None,
    );

    let kill = platform
        .dry_run(&fault(delete_gracefully, None), &[])
        .await
        .unwrap_err();
    let error = platform.dry_run(&drain, &[]).await.unwrap_err();
    drop(platform);
    mock::finish(server).await;

    assert_eq!(
        kill.to_string(),
        "kill-pod would be refused: the user of kube context mock may not watch nodes \
         (cluster-wide); it needs RBAC permission for it",
        "a clear refusal, not a run whose watchers see nothing"
    );
    assert_eq!(
        error.to_string(),
        "drain-node would be refused: the user of kube context mock may not create \
         pods/eviction in every namespace, watch nodes (cluster-wide); it needs RBAC permission \
         for it"
    );
}

#[tokio::test]
async fn the_plan_lists_the_pods_and_nodes_each_fault_would_hit_after_asking_for_permission() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/kubernetes-smoke.yaml");
    let scenario = crate::scenario::Scenario::load(&path).unwrap();
    let pods = vec![
        fixtures::pod("cart-a", "cart", Some("node-a"), true),
        fixtures::pod("cart-b", "cart", Some("node-b"), false),
        fixtures::stateful_pod("mariadb-0", "mariadb", "node-b"),
    ];
    let (platform, server) = plan_with(
        vec![
            Exchange::get(&format!("/api/v1/namespaces/{NS}/pods")).ok(fixtures::list(
                "Pod",
                "v1",
                "7",
                pods.clone(),
            )),
            Exchange::get(&format!(
                "/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"
            ))
            .query(&[("labelSelector", "kubernetes.io/service-name")])
            .ok(fixtures::list(
                "EndpointSlice",
                "discovery.k8s.io/v1",
                "8",
                vec![],
            )),
            Exchange::get("/api/v1/nodes").ok(fixtures::list(
                "Node",
                "v1",
                "9",
                vec![
                    fixtures::node("node-a", true, "zone-a"),
                    fixtures::node("node-b", true, "zone-b"),
                ],
            )),
            Exchange::get(&format!("/api/v1/namespaces/{NS}/pods"))
                .query(&[("labelSelector", "app.kubernetes.io/name=cart")])
                .ok(fixtures::list("Pod", "v1", "7", pods[..2].to_vec())),
            access_review("create", "pods", Some(NS), true),
            access_review("get", "pods", Some(NS), true),
            access_review("delete", "pods", Some(NS), true),
        ]
        .into_iter()
        .chain(reads(true))
        .chain([
            Exchange::get(&format!("/api/v1/namespaces/{NS}/pods"))
                .query(&[("labelSelector", "app.kubernetes.io/name=mariadb")])
                .ok(fixtures::list("Pod", "v1", "7", pods[2..].to_vec())),
            access_review("delete", "pods", Some(NS), false),
        ])
        .chain(reads(true))
        .collect(),
    )
    .await;

    let plan = crate::plan::render(&scenario, &*platform).await;
    drop(platform);
    mock::finish(server).await;

    for expected in [
        "Target: the kubernetes platform; shoppers enter at http://shop.example.com",
        "instances (2): node-a (10.0.0.1, zone-a), node-b (10.0.0.1, zone-b)",
        "replicas: web 0, user 0, catalogue 0, cart 2, orders 0, shipping 0",
        "infrastructure: mariadb-0",
        // Only ready pods are candidates: cart-b serves nothing.
        "would hit 1 of 1: cart-a",
        "would hit 1 of 1: mariadb-0",
        "DRY RUN REFUSED: db-failover would be refused: the user of kube context mock may not \
         delete pods in namespace gameday-shop",
    ] {
        assert!(plan.contains(expected), "{expected}\nnot in:\n{plan}");
    }
}
