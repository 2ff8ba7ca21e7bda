//! What `plan` and `status` read: a service's pods, the nodes, and the
//! inventory of pods, nodes and StatefulSets.

use std::collections::BTreeMap;

use serde_json::json;

use super::{
    fixtures::{self, Endpoint, NS},
    mock::{self, Exchange},
};
use crate::platform::{
    InstanceState,
    kubernetes::{Error, inventory::NodeInfo},
};

#[tokio::test]
async fn a_services_replicas_are_listed_by_label_with_node_and_readiness_skipping_terminating_ones()
{
    let (cluster, server) = mock::cluster();
    let server = server.run(vec![
        Exchange::get(&format!("/api/v1/namespaces/{NS}/pods"))
            .query(&[("labelSelector", "app.kubernetes.io/name=cart")])
            .ok(fixtures::list(
                "Pod",
                "v1",
                "7",
                vec![
                    fixtures::pod("cart-b", "cart", Some("node-b"), false),
                    fixtures::pod("cart-a", "cart", Some("node-a"), true),
                    fixtures::terminating(fixtures::pod("cart-c", "cart", Some("node-a"), true)),
                    fixtures::pod("cart-d", "cart", None, false),
                ],
            )),
    ]);

    let replicas = cluster.replicas_of("cart").await.unwrap();
    drop(cluster);
    mock::finish(server).await;

    let seen: Vec<(&str, Option<&str>, bool)> = replicas
        .iter()
        .map(|r| (r.name.as_str(), r.node.as_deref(), r.ready))
        .collect();
    assert_eq!(
        seen,
        [
            ("cart-a", Some("node-a"), true),
            ("cart-b", Some("node-b"), false),
            ("cart-d", None, false)
        ]
    );
}

#[tokio::test]
async fn no_pods_in_a_namespace_that_does_not_exist_is_an_error_not_an_empty_plan() {
    let (cluster, server) = mock::cluster();
    let server = server.run(vec![
        Exchange::get(&format!("/api/v1/namespaces/{NS}/pods"))
            .query(&[("labelSelector", "app.kubernetes.io/name=cart")])
            .ok(fixtures::list("Pod", "v1", "7", vec![])),
        Exchange::get(&format!("/api/v1/namespaces/{NS}"))
            .reply(404, fixtures::not_found("namespaces", NS)),
    ]);

    let error = cluster.replicas_of("cart").await.unwrap_err();
    drop(cluster);
    mock::finish(server).await;

    assert!(matches!(error, Error::NamespaceMissing { .. }), "{error:?}");
}

#[tokio::test]
async fn nodes_are_listed_with_readiness_cordon_and_zone() {
    let (cluster, server) = mock::cluster();
    let server = server.run(vec![Exchange::get("/api/v1/nodes").ok(fixtures::list(
        "Node",
        "v1",
        "8",
        vec![
            fixtures::node("node-b", false, "zone-b"),
            fixtures::cordoned(fixtures::node("node-a", true, "zone-a")),
        ],
    ))]);

    let nodes = cluster.nodes().await.unwrap();
    drop(cluster);
    mock::finish(server).await;

    assert_eq!(
        nodes,
        [
            NodeInfo {
                name: "node-a".into(),
                ready: true,
                schedulable: false,
                zone: Some("zone-a".into()),
                address: Some("10.0.0.1".into()),
                control_plane: false,
                provider_id: None,
            },
            NodeInfo {
                name: "node-b".into(),
                ready: false,
                schedulable: true,
                zone: Some("zone-b".into()),
                address: Some("10.0.0.1".into()),
                control_plane: false,
                provider_id: None,
            },
        ]
    );
}

#[tokio::test]
async fn listing_nodes_without_permission_names_the_missing_permission() {
    let (cluster, server) = mock::cluster();
    let server = server.run(vec![
        Exchange::get("/api/v1/nodes").reply(403, fixtures::forbidden("list", "nodes", "")),
    ]);

    let error = cluster.nodes().await.unwrap_err();
    drop(cluster);
    mock::finish(server).await;

    let message = error.to_string();
    assert!(
        message.starts_with("the Kubernetes API refused to list nodes (403 Forbidden"),
        "{message}"
    );
    assert!(
        message.contains("cannot list resource \"nodes\""),
        "{message}"
    );
}

#[tokio::test]
async fn the_inventory_lists_pods_as_replicas_on_their_nodes_and_stateful_pods_as_infrastructure() {
    let (cluster, server) = mock::cluster();
    let mut cart_a = fixtures::pod("cart-a", "cart", Some("node-a"), true);
    cart_a["status"]["podIP"] = json!("10.244.1.7");
    let server = server.run(vec![
        Exchange::get(&format!("/api/v1/namespaces/{NS}/pods")).ok(fixtures::list(
            "Pod",
            "v1",
            "7",
            vec![
                cart_a,
                fixtures::pod("cart-b", "cart", Some("node-b"), false),
                fixtures::stateful_pod("redis-0", "redis", "node-b"),
            ],
        )),
        Exchange::get(&format!(
            "/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"
        ))
        .query(&[("labelSelector", "kubernetes.io/service-name")])
        .ok(fixtures::list(
            "EndpointSlice",
            "discovery.k8s.io/v1",
            "8",
            vec![fixtures::endpoint_slice(
                "cart-x1",
                "cart",
                &[Endpoint {
                    pod: "cart-a",
                    ready: true,
                    serving: true,
                    terminating: false,
                }],
            )],
        )),
        Exchange::get("/api/v1/nodes").ok(fixtures::list(
            "Node",
            "v1",
            "9",
            vec![
                fixtures::node("node-a", true, "zone-a"),
                fixtures::cordoned(fixtures::node("node-b", true, "zone-b")),
                fixtures::node("node-elsewhere", true, "zone-a"),
            ],
        )),
    ]);

    let inventory = cluster.inventory().await.unwrap();
    drop(cluster);
    mock::finish(server).await;

    let nodes: Vec<(&str, Option<&str>, InstanceState)> = inventory
        .instances
        .iter()
        .map(|i| (i.name.as_str(), i.zone.as_deref(), i.state))
        .collect();
    assert_eq!(
        nodes,
        [
            ("node-a", Some("zone-a"), InstanceState::Running),
            ("node-b", Some("zone-b"), InstanceState::Running)
        ],
        "only the nodes that run the namespace's pods"
    );
    assert_eq!(
        inventory.instances[1].details,
        BTreeMap::from([("cordoned".to_string(), json!(true))])
    );
    let replicas: Vec<(&str, &str, Option<&str>, bool, bool)> = inventory
        .replicas
        .iter()
        .map(|r| {
            (
                r.service.as_str(),
                r.name.as_str(),
                r.instance.as_deref(),
                r.ready,
                r.serving,
            )
        })
        .collect();
    assert_eq!(
        replicas,
        [
            ("cart", "cart-a", Some("node-a"), true, true),
            ("cart", "cart-b", Some("node-b"), false, false)
        ]
    );
    assert_eq!(
        inventory.replicas[0].url.as_deref(),
        Some("http://10.244.1.7:8083")
    );
    assert_eq!(inventory.infra.len(), 1);
    assert_eq!(inventory.infra[0].name, "redis-0");
    assert_eq!(inventory.infra[0].details["node"], json!("node-b"));
}
