//! drain-node and terminate-instance through `chaos::apply`: which nodes
//! are candidates, cordon and drain through the Eviction API
//! (PodDisruptionBudgets) with the uncordon registered before acting, and a
//! node's machine lost through its provider.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{
    MERGE, attached,
    faults::{drain, drain_node, names, pod_path, terminate},
    fixtures::{self, NS},
    mock::{self, Exchange},
};
use crate::{
    chaos::{self, Rollback},
    platform::{
        Platform, Target, TargetKind, Undo,
        kubernetes::{Action, Timing, faults::eviction},
    },
    scenario::{BlastRadius, FaultKind},
};

/// The requests terminate-instance's candidates make: the namespace's
/// pods (where they run), then the nodes.
fn node_candidates(pods: Vec<Value>, nodes: Vec<Value>) -> [Exchange; 2] {
    [
        Exchange::get(&format!("/api/v1/namespaces/{NS}/pods"))
            .ok(fixtures::list("Pod", "v1", "7", pods)),
        Exchange::get("/api/v1/nodes").ok(fixtures::list("Node", "v1", "8", nodes)),
    ]
}

fn pods_on(node: &str, pods: Vec<Value>) -> Exchange {
    Exchange::get("/api/v1/pods")
        .query(&[("fieldSelector", &format!("spec.nodeName={node}"))])
        .ok(fixtures::list("Pod", "v1", "20", pods))
}

fn eviction_of(pod: &str) -> Exchange {
    Exchange::post(&format!("{}/eviction", pod_path(pod))).body(json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": { "name": pod, "namespace": NS }
    }))
}

fn cordon(node: &str, unschedulable: bool) -> Exchange {
    Exchange::patch(&format!("/api/v1/nodes/{node}"))
        .content_type(MERGE)
        .body(json!({ "spec": { "unschedulable": unschedulable } }))
}

#[tokio::test]
async fn only_ready_schedulable_worker_nodes_running_the_namespace_s_pods_are_instances_to_terminate()
 {
    let (platform, _events, server) = attached();
    let script: Vec<Exchange> = node_candidates(
        vec![
            fixtures::pod("cart-a", "cart", Some("node-a"), true),
            fixtures::pod("web-a", "web", Some("node-a"), true),
            fixtures::pod("web-b", "web", Some("node-b"), true),
            fixtures::pod("web-cp", "web", Some("node-cp"), true),
            fixtures::pod("web-d", "web", Some("node-d"), true),
            fixtures::terminating(fixtures::pod("web-e", "web", Some("node-e"), true)),
            fixtures::pod("web-f", "web", Some("node-f"), true),
        ],
        vec![
            fixtures::node("node-a", true, "zone-a"),
            fixtures::node("node-b", true, "zone-b"),
            fixtures::control_plane(fixtures::node("node-cp", true, "zone-a")),
            fixtures::cordoned(fixtures::node("node-d", true, "zone-a")),
            fixtures::node("node-e", true, "zone-a"),
            fixtures::node("node-f", false, "zone-a"),
            fixtures::node("node-idle", true, "zone-a"),
        ],
    )
    .into_iter()
    .chain(node_candidates(
        vec![fixtures::pod("cart-a", "cart", Some("node-a"), true)],
        vec![fixtures::node("node-a", true, "zone-a")],
    ))
    .collect();
    let server = server.run(script);

    let any_zone = platform.candidates(&terminate(None).kind).await.unwrap();
    let zone_b = platform
        .candidates(&terminate(Some("zone-b")).kind)
        .await
        .unwrap();
    drop(platform);
    mock::finish(server).await;

    let ids: Vec<&str> = any_zone.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["node-a", "node-b"]);
    assert_eq!(
        any_zone[0].detail.as_deref(),
        Some("2 pods of the namespace")
    );
    assert!(zone_b.is_empty(), "node-a is in zone-a: {zone_b:?}");
}

#[tokio::test(start_paused = true)]
async fn draining_a_node_cordons_it_evicts_through_the_eviction_api_and_the_undo_uncordons() {
    let (platform, events, server) = attached();
    let cart = fixtures::pod("cart-a", "cart", Some("node-a"), true);
    let web = fixtures::pod("web-a", "web", Some("node-a"), true);
    let proxy = fixtures::daemon_pod("kube-proxy-x", "node-a");
    let mut script: Vec<Exchange> = node_candidates(
        vec![cart.clone(), web.clone()],
        vec![fixtures::node("node-a", true, "zone-a")],
    )
    .into();
    script.extend([
        cordon("node-a", true)
            .query(&[])
            .ok(fixtures::cordoned(fixtures::node("node-a", true, "zone-a"))),
        pods_on("node-a", vec![cart, proxy.clone(), web.clone()]),
        eviction_of("cart-a").reply(201, fixtures::success()),
        eviction_of("web-a").reply(201, fixtures::success()),
        pods_on("node-a", vec![fixtures::terminating(web), proxy.clone()]),
        pods_on("node-a", vec![proxy]),
        // The registered undo, when the run ends.
        cordon("node-a", false).ok(fixtures::node("node-a", true, "zone-a")),
    ]);
    let server = server.run(script);
    let rollback = Rollback::default();
    let mut rx = events.subscribe();

    let injected = chaos::apply(&platform, &events, &rollback, &drain_node(Some("zone-a")))
        .await
        .unwrap();
    let registered = rollback.is_pending(&injected.id);
    rollback.run_all(&platform, &events).await;
    drop(platform);
    mock::finish(server).await;

    assert!(registered, "uncordon was registered before acting");
    assert_eq!(injected.targets[0].zone.as_deref(), Some("zone-a"));
    assert_eq!(
        names(&drain(&mut rx)),
        ["fault.injected", "fault.ended", "fault.ended"],
        "the action, then the undo"
    );
}

#[tokio::test(start_paused = true)]
async fn an_eviction_a_disruption_budget_refuses_is_retried_until_it_is_allowed() {
    let (platform, _events, server) = attached();
    let server = server.run(vec![
        eviction_of("cart-a").reply(429, fixtures::pdb_refusal("cart")),
        eviction_of("cart-a").reply(429, fixtures::pdb_refusal("cart")),
        eviction_of("cart-a").reply(201, fixtures::success()),
    ]);

    let started = Instant::now();
    let attempts = platform
        .cluster()
        .evict(NS, "cart-a", "node-a", None)
        .await
        .unwrap();
    let waited = started.elapsed();
    drop(platform);
    mock::finish(server).await;

    assert_eq!(attempts, 3);
    assert_eq!(waited, Timing::default().eviction_retry_every * 2);
}

#[tokio::test(start_paused = true)]
async fn an_eviction_refused_past_the_bound_fails_the_fault_and_the_registered_undo_uncordons() {
    let (platform, events, server) = attached();
    let cart = fixtures::pod("cart-a", "cart", Some("node-a"), true);
    let mut script: Vec<Exchange> = node_candidates(
        vec![cart.clone()],
        vec![fixtures::node("node-a", true, "zone-a")],
    )
    .into();
    script.extend([
        cordon("node-a", true).ok(fixtures::cordoned(fixtures::node("node-a", true, "zone-a"))),
        pods_on("node-a", vec![cart]),
    ]);
    // Tried at once, then every 5 s, the last at 120 s: another would pass the bound.
    script.extend((0..25).map(|_| eviction_of("cart-a").reply(429, fixtures::pdb_refusal("cart"))));
    script.push(cordon("node-a", false).ok(fixtures::node("node-a", true, "zone-a")));
    let server = server.run(script);
    let rollback = Rollback::default();
    let mut rx = events.subscribe();

    let started = Instant::now();
    let error = chaos::apply(&platform, &events, &rollback, &drain_node(None))
        .await
        .unwrap_err();
    let waited = started.elapsed();
    drop(platform);
    mock::finish(server).await;

    let message = error.to_string();
    assert!(
        message.contains(
            "gave up evicting pod gameday-shop/cart-a from node node-a after 25 attempts in 120s"
        ),
        "{message}"
    );
    assert!(
        message.contains("The disruption budget cart needs 1 healthy pods"),
        "{message}"
    );
    assert_eq!(waited, Timing::default().eviction_give_up_after);
    assert!(rollback.is_empty(), "the undo ran");
    let seen = names(&drain(&mut rx));
    assert_eq!(seen, ["fault.injected", "fault.failed", "fault.ended"]);
}

#[tokio::test]
async fn undoing_a_drain_whose_node_is_gone_is_not_an_error() {
    let (platform, _events, server) = attached();
    let server = server.run(vec![
        cordon("node-a", false).reply(404, fixtures::not_found("nodes", "node-a")),
    ]);

    let outcome = platform
        .undo(&Undo::Uncordon(Target::new(TargetKind::Instance, "node-a")))
        .await;
    drop(platform);
    mock::finish(server).await;

    assert!(outcome.is_ok(), "{outcome:?}");
}

#[tokio::test]
async fn two_nodes_drained_at_once_register_an_uncordon_for_each() {
    let (platform, _events, server) = attached();
    let server = server.run(vec![]);
    let nodes = [
        Target::new(TargetKind::Instance, "node-a"),
        Target::new(TargetKind::Instance, "node-b"),
    ];
    let mut two = drain_node(None);
    two.kind = FaultKind::DrainNode {
        radius: BlastRadius::Count(2),
        zone: None,
    };

    let undo = platform.undo_for(&two, &nodes).await;
    drop(platform);
    mock::finish(server).await;

    assert_eq!(
        undo,
        Some(Undo::Each(vec![
            Undo::Uncordon(nodes[0].clone()),
            Undo::Uncordon(nodes[1].clone())
        ]))
    );
    assert_eq!(
        undo.map(|u| u.describe()).as_deref(),
        Some("uncordon node-a; uncordon node-b")
    );
}

#[tokio::test(start_paused = true)]
async fn a_drain_that_outlasts_its_time_is_reported_and_leaves_the_node_cordoned() {
    let (platform, _events, server) = attached();
    let cluster = platform.cluster().clone().with_timing(Timing {
        drain_timeout: Duration::from_secs(2),
        poll_every: Duration::from_secs(2),
        ..Timing::default()
    });
    drop(platform);
    let stuck = fixtures::terminating(fixtures::pod("orders-a", "orders", Some("node-a"), true));
    let server = server.run(vec![
        Exchange::patch("/api/v1/nodes/node-a").ok(fixtures::node("node-a", true, "zone-a")),
        pods_on(
            "node-a",
            vec![fixtures::pod("orders-a", "orders", Some("node-a"), true)],
        ),
        eviction_of("orders-a").reply(201, fixtures::success()),
        pods_on("node-a", vec![stuck.clone()]),
        pods_on("node-a", vec![stuck]),
    ]);

    let actions = cluster.drain_node("node-a").await.unwrap();
    drop(cluster);
    mock::finish(server).await;

    assert_eq!(
        actions[2..],
        [Action::DrainIncomplete {
            pods: vec![format!("{NS}/orders-a")]
        }]
    );
}

#[tokio::test]
async fn a_drain_leaves_a_bare_pod_and_gameday_s_own_alone() {
    let (platform, _events, server) = attached();
    let mut bare = fixtures::pod("debug", "web", Some("node-a"), true);
    bare["metadata"]["ownerReferences"] = json!([]);
    let server = server.run(vec![
        cordon("node-a", true).ok(fixtures::cordoned(fixtures::node("node-a", true, "zone-a"))),
        pods_on("node-a", vec![bare]),
    ]);

    let actions = platform.cluster().drain_node("node-a").await.unwrap();
    drop(platform);
    mock::finish(server).await;

    assert_eq!(
        actions[1],
        Action::PodLeft {
            namespace: NS.into(),
            pod: "debug".into(),
            why: "no controller would replace it (a bare pod)"
        }
    );
}

#[tokio::test]
async fn terminating_an_instance_loses_its_machine_through_the_node_provider_with_no_drain() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("lost");
    let (cluster, server) = super::mock::cluster();
    let mut target = super::target(false);
    target.node_provider = Some(format!("echo {{node}} {{zone}} > {}", marker.display()));
    let events = std::sync::Arc::new(crate::events::EventLog::new(None).unwrap());
    let platform = crate::platform::kubernetes::KubernetesPlatform::new(
        cluster,
        target,
        super::ENTRY.into(),
        events.clone(),
    );
    let mut node = fixtures::node("node-a", true, "zone-a");
    node["spec"]["providerID"] = json!("gameday-cluster://local/zone-a/node-a");
    let server = server.run(
        node_candidates(
            vec![fixtures::pod("cart-a", "cart", Some("node-a"), true)],
            vec![node.clone()],
        )
        .into_iter()
        .chain([Exchange::get("/api/v1/nodes").ok(fixtures::list("Node", "v1", "9", vec![node]))])
        .collect(),
    );
    let rollback = Rollback::default();

    let injected = chaos::apply(&platform, &events, &rollback, &terminate(None))
        .await
        .unwrap();
    drop(platform);
    let seen = mock::finish(server).await;

    assert_eq!(injected.targets[0].id, "node-a");
    assert!(
        injected.targets[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("gameday-cluster://local/zone-a/node-a")),
        "the plan names the provider: {:?}",
        injected.targets[0]
    );
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "node-a zone-a\n");
    assert!(
        rollback.is_empty(),
        "nothing to undo: the group replaces the machine"
    );
    assert!(
        seen.iter().all(|r| r.method == http::Method::GET),
        "no cordon, eviction or delete: the machine is lost, not drained: {seen:?}"
    );
}

#[tokio::test]
async fn a_node_whose_provider_is_unknown_is_refused_with_what_to_set() {
    let (platform, events, server) = attached();
    let mut node = fixtures::node("node-a", true, "zone-a");
    node["spec"]["providerID"] = json!("kind://docker/kind/kind-worker");
    let server = server.run(
        node_candidates(
            vec![fixtures::pod("cart-a", "cart", Some("node-a"), true)],
            vec![node.clone()],
        )
        .into_iter()
        .chain([Exchange::get("/api/v1/nodes").ok(fixtures::list("Node", "v1", "9", vec![node]))])
        .collect(),
    );

    let error = chaos::apply(&platform, &events, &Rollback::default(), &terminate(None))
        .await
        .unwrap_err();
    drop(platform);
    mock::finish(server).await;

    assert!(
        error
            .to_string()
            .contains("set target.node-provider.command"),
        "{error}"
    );
}

#[test]
fn kube_cores_evict_params_write_delete_options_in_snake_case() {
    // Pins the finding behind `Cluster::evict`: if kube fixes the key,
    // this fails and EvictParams becomes usable again.
    let params = kube::api::EvictParams {
        delete_options: Some(kube::api::DeleteParams {
            grace_period_seconds: Some(5),
            ..kube::api::DeleteParams::default()
        }),
        ..kube::api::EvictParams::default()
    };
    let request = kube::core::Request::new("/api/v1/namespaces/ns/pods")
        .evict("p", &params)
        .unwrap();
    let body: Value = serde_json::from_slice(request.body()).unwrap();

    assert_eq!(body["delete_options"]["gracePeriodSeconds"], 5);
    assert!(body.get("deleteOptions").is_none());
    assert!(body.get("apiVersion").is_none(), "{body}");
}

#[test]
fn our_eviction_body_carries_policy_v1_delete_options() {
    let options = DeleteOptions {
        grace_period_seconds: Some(5),
        ..DeleteOptions::default()
    };

    let body = serde_json::to_value(eviction(NS, "cart-a", Some(options))).unwrap();

    assert_eq!(
        body,
        json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": { "name": "cart-a", "namespace": NS },
            "deleteOptions": { "gracePeriodSeconds": 5 }
        })
    );
}
