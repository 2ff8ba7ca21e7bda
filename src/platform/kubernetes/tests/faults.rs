//! Each fault and its undo, driven through `chaos::apply` as a run drives
//! it (candidates, pick, undo registered, inject; the engine's rollback),
//! with every request it makes pinned in order. terminate-instance is in
//! `nodes`.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::{
    MERGE, attached,
    fixtures::{self, NS},
    mock::{self, Exchange},
};
use crate::{
    chaos::{self, Rollback},
    events::{Event, EventKind},
    platform::{Platform, Target, TargetKind, Undo, kubernetes::Error},
    scenario::{BlastRadius, Fault, FaultKind, Schedule},
};

pub(super) fn fault(kind: FaultKind, duration_s: Option<u64>) -> Fault {
    Fault {
        name: "test fault".into(),
        kind,
        schedule: Schedule::At(Duration::ZERO),
        duration: duration_s.map(Duration::from_secs),
    }
}

fn kill(service: &str, graceful: bool) -> Fault {
    fault(
        FaultKind::KillPod {
            service: service.into(),
            radius: BlastRadius::Count(1),
            graceful,
        },
        None,
    )
}

pub(super) fn terminate(zone: Option<&str>) -> Fault {
    fault(
        FaultKind::TerminateInstance {
            radius: BlastRadius::Count(1),
            zone: zone.map(String::from),
            graceful: false,
        },
        None,
    )
}

pub(super) fn drain_node(zone: Option<&str>) -> Fault {
    fault(
        FaultKind::DrainNode {
            radius: BlastRadius::Count(1),
            zone: zone.map(String::from),
        },
        None,
    )
}

pub(super) fn pod_path(name: &str) -> String {
    format!("/api/v1/namespaces/{NS}/pods/{name}")
}

/// The candidates' list: the pods labelled `service`.
fn pods_of(service: &str, pods: Vec<Value>) -> Exchange {
    Exchange::get(&format!("/api/v1/namespaces/{NS}/pods"))
        .query(&[(
            "labelSelector",
            &format!("app.kubernetes.io/name={service}"),
        )])
        .ok(fixtures::list("Pod", "v1", "7", pods))
}

pub(super) fn drain(rx: &mut broadcast::Receiver<Event>) -> Vec<EventKind> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e.kind);
    }
    out
}

pub(super) fn names(events: &[EventKind]) -> Vec<String> {
    events.iter().map(EventKind::name).collect()
}

#[tokio::test]
async fn killing_a_pod_crashes_it_from_its_node_and_needs_no_undo() {
    let (platform, events, server) = attached();
    let cart_a = fixtures::pod("cart-a", "cart", Some("node-a"), true);
    let agent = "gameday-crash-cart-a-x7k2p";
    let server = server.run(vec![
        pods_of(
            "cart",
            vec![
                fixtures::pod("cart-b", "cart", Some("node-b"), true),
                fixtures::pod("cart-a", "cart", Some("node-a"), true),
            ],
        ),
        Exchange::get(&pod_path("cart-a")).ok(cart_a.clone()),
        Exchange::post(&format!("/api/v1/namespaces/{NS}/pods"))
            .reply(201, fixtures::crash_agent(agent, "node-a", 0, 1)),
        Exchange::get(&pod_path(agent)).ok(fixtures::crash_agent(agent, "node-a", 0, 1)),
        Exchange::delete(&pod_path(agent)).ok(fixtures::crash_agent(agent, "node-a", 0, 1)),
    ]);
    let mut rx = events.subscribe();
    let rollback = Rollback::default();

    let injected = chaos::apply(&platform, &events, &rollback, &kill("cart", false))
        .await
        .unwrap();
    drop(platform);
    let requests = mock::finish(server).await;

    // The agent: on the pod's node, in the host's PID namespace, killing
    // the pod's container by its ID.
    let created = requests[2].body.clone().unwrap();
    assert_eq!(created["spec"]["nodeName"], "node-a");
    assert_eq!(created["spec"]["hostPID"], true);
    let script = created["spec"]["containers"][0]["command"][2]
        .as_str()
        .unwrap();
    let id = cart_a["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap()
        .trim_start_matches("containerd://");
    assert!(
        script.contains("kill -9") && script.contains(id),
        "{script}"
    );

    let ids: Vec<&str> = injected.targets.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["cart-a"], "the first by name");
    assert_eq!(injected.targets[0].on.as_deref(), Some("node-a"));
    assert!(rollback.is_empty(), "the ReplicaSet replaces the pod");
    let seen = drain(&mut rx);
    assert_eq!(
        names(&seen),
        ["fault.injected", "replica.killed", "fault.ended"]
    );
    assert_eq!(
        seen[1],
        EventKind::ReplicaKilled {
            service: "cart".into(),
            replica: "cart-a".into(),
            instance: Some("node-a".into())
        }
    );
}

#[tokio::test]
async fn killing_a_pod_gracefully_leaves_the_grace_period_to_the_pod() {
    let (platform, events, server) = attached();
    let server = server.run(vec![
        pods_of(
            "cart",
            vec![fixtures::pod("cart-a", "cart", Some("node-a"), true)],
        ),
        Exchange::delete(&pod_path("cart-a"))
            .body(json!({}))
            .ok(fixtures::cart_pod_deleted_with_its_grace("cart-a")),
    ]);
    let mut rx = events.subscribe();

    chaos::apply(
        &platform,
        &events,
        &Rollback::default(),
        &kill("cart", true),
    )
    .await
    .unwrap();
    drop(platform);
    mock::finish(server).await;

    assert!(names(&drain(&mut rx)).contains(&"replica.stopped".to_string()));
}

#[tokio::test]
async fn killing_a_pod_without_permission_names_the_action_and_the_permission() {
    let (platform, events, server) = attached();
    let server = server.run(vec![
        pods_of(
            "cart",
            vec![fixtures::pod("cart-a", "cart", Some("node-a"), true)],
        ),
        Exchange::get(&pod_path("cart-a")).ok(fixtures::pod(
            "cart-a",
            "cart",
            Some("node-a"),
            true,
        )),
        Exchange::post(&format!("/api/v1/namespaces/{NS}/pods")).reply(
            403,
            fixtures::forbidden("create", "pods", "gameday-crash-cart-a-"),
        ),
    ]);
    let mut rx = events.subscribe();

    let error = chaos::apply(
        &platform,
        &events,
        &Rollback::default(),
        &kill("cart", false),
    )
    .await
    .unwrap_err();
    drop(platform);
    mock::finish(server).await;

    let message = error.to_string();
    assert!(
        message.starts_with(
            "the Kubernetes API refused to create the crash agent for pod cart-a on node node-a in namespace gameday-shop (403 Forbidden"
        ),
        "{message}"
    );
    assert!(message.contains("needs RBAC permission"), "{message}");
    assert_eq!(names(&drain(&mut rx)), ["fault.injected", "fault.failed"]);
}

#[tokio::test]
async fn failing_the_database_over_kills_its_primary_pod_with_a_one_second_grace_period() {
    let (platform, events, server) = attached();
    let server = server.run(vec![
        pods_of(
            "mariadb",
            vec![fixtures::stateful_pod("mariadb-0", "mariadb", "node-a")],
        ),
        Exchange::delete(&pod_path("mariadb-0"))
            .body(json!({ "gracePeriodSeconds": 1 }))
            .ok(fixtures::mariadb_deleted_with_grace_1()),
    ]);
    let mut rx = events.subscribe();
    let rollback = Rollback::default();
    let failover = fault(
        FaultKind::DbFailover {
            rebuild_standby: true,
        },
        None,
    );

    let injected = chaos::apply(&platform, &events, &rollback, &failover)
        .await
        .unwrap();
    drop(platform);
    mock::finish(server).await;

    assert_eq!(injected.targets[0].kind, TargetKind::Database);
    assert!(rollback.is_empty());
    assert!(drain(&mut rx).contains(&EventKind::DbPrimaryKilled {
        server: "mariadb-0".into()
    }));
}

#[tokio::test]
async fn failing_the_database_over_in_a_namespace_deleted_meanwhile_says_the_namespace_is_missing()
{
    let (platform, events, server) = attached();
    let server = server.run(vec![
        pods_of(
            "mariadb",
            vec![fixtures::stateful_pod("mariadb-0", "mariadb", "node-a")],
        ),
        Exchange::delete(&pod_path("mariadb-0"))
            .body(json!({ "gracePeriodSeconds": 1 }))
            .reply(404, fixtures::not_found("pods", "mariadb-0")),
        Exchange::get(&format!("/api/v1/namespaces/{NS}"))
            .reply(404, fixtures::not_found("namespaces", NS)),
    ]);
    let failover = fault(
        FaultKind::DbFailover {
            rebuild_standby: true,
        },
        None,
    );

    let error = chaos::apply(&platform, &events, &Rollback::default(), &failover)
        .await
        .unwrap_err();
    drop(platform);
    mock::finish(server).await;

    assert_eq!(
        error.to_string(),
        "namespace gameday-shop does not exist on this cluster; deploy the shop first \
         (`deploy: true`) or set target.namespace to where it runs"
    );
}

#[tokio::test]
async fn restarting_the_cache_or_broker_deletes_its_pod_with_its_own_grace_period() {
    let (platform, events, server) = attached();
    let server = server.run(vec![
        pods_of(
            "redis",
            vec![fixtures::stateful_pod("redis-0", "redis", "node-a")],
        ),
        Exchange::delete(&pod_path("redis-0"))
            .body(json!({}))
            .ok(fixtures::success()),
        pods_of(
            "rabbitmq",
            vec![fixtures::stateful_pod("rabbitmq-0", "rabbitmq", "node-b")],
        ),
        Exchange::delete(&pod_path("rabbitmq-0"))
            .body(json!({}))
            .ok(fixtures::terminating(fixtures::stateful_pod(
                "rabbitmq-0",
                "rabbitmq",
                "node-b",
            ))),
    ]);
    let rollback = Rollback::default();

    let cache = chaos::apply(
        &platform,
        &events,
        &rollback,
        &fault(FaultKind::RestartCache { reboot: false }, None),
    )
    .await
    .unwrap();
    let broker = chaos::apply(
        &platform,
        &events,
        &rollback,
        &fault(FaultKind::RestartBroker, None),
    )
    .await
    .unwrap();
    drop(platform);
    mock::finish(server).await;

    assert_eq!(cache.targets[0].id, "redis-0");
    assert_eq!(broker.targets[0].id, "rabbitmq-0");
    assert!(rollback.is_empty());
}

#[tokio::test]
async fn taking_the_cache_down_for_a_while_reads_its_replicas_before_scaling_to_zero_and_back() {
    let (platform, events, server) = attached();
    let scale = format!("/apis/apps/v1/namespaces/{NS}/statefulsets/redis/scale");
    let server = server.run(vec![
        pods_of(
            "redis",
            vec![fixtures::stateful_pod("redis-0", "redis", "node-a")],
        ),
        Exchange::get(&scale).ok(fixtures::scale("redis", 3)),
        Exchange::patch(&scale)
            .content_type(MERGE)
            .body(json!({ "spec": { "replicas": 0 } }))
            .ok(fixtures::scale("redis", 0)),
        Exchange::patch(&scale)
            .content_type(MERGE)
            .body(json!({ "spec": { "replicas": 3 } }))
            .ok(fixtures::scale("redis", 3)),
    ]);
    let rollback = Rollback::default();
    let mut rx = events.subscribe();

    let injected = chaos::apply(
        &platform,
        &events,
        &rollback,
        &fault(FaultKind::RestartCache { reboot: false }, Some(30)),
    )
    .await
    .unwrap();
    let pending = rollback.is_pending(&injected.id);
    rollback.undo(&platform, &events, &injected.id).await;
    drop(platform);
    mock::finish(server).await;

    assert!(pending, "the undo was registered");
    assert_eq!(injected.undo_after_s, Some(30.0));
    let ended = drain(&mut rx).pop();
    assert_eq!(
        ended,
        Some(EventKind::FaultEnded {
            id: injected.id,
            undo: Some("scale redis back to 3".into())
        })
    );
}

#[tokio::test]
async fn taking_down_a_broker_that_is_already_at_zero_is_refused_before_acting() {
    let (platform, events, server) = attached();
    let scale = format!("/apis/apps/v1/namespaces/{NS}/statefulsets/rabbitmq/scale");
    let server = server.run(vec![
        pods_of(
            "rabbitmq",
            vec![fixtures::stateful_pod("rabbitmq-0", "rabbitmq", "node-b")],
        ),
        Exchange::get(&scale).ok(fixtures::scale("rabbitmq", 0)),
    ]);
    let rollback = Rollback::default();

    let error = chaos::apply(
        &platform,
        &events,
        &rollback,
        &fault(FaultKind::RestartBroker, Some(30)),
    )
    .await
    .unwrap_err();
    drop(platform);
    mock::finish(server).await;

    assert_eq!(
        error.to_string(),
        "take StatefulSet rabbitmq down: its replicas could not be read before acting, so they \
         could not be restored: StatefulSet rabbitmq is already scaled to 0"
    );
    assert!(rollback.is_empty());
}

#[tokio::test]
async fn undo_errors_name_what_could_not_be_undone() {
    let (platform, _events, server) = attached();
    let scale = format!("/apis/apps/v1/namespaces/{NS}/statefulsets/redis/scale");
    let server = server.run(vec![
        Exchange::patch(&scale).reply(403, fixtures::forbidden("patch", "statefulsets", "redis")),
    ]);

    let error = platform
        .undo(&Undo::ScaleTo {
            target: Target::new(TargetKind::Cache, "redis"),
            replicas: 1,
        })
        .await
        .unwrap_err();
    drop(platform);
    mock::finish(server).await;

    assert!(
        matches!(
            &error,
            crate::platform::Error::Kubernetes(Error::Forbidden { .. })
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("refused to scale StatefulSet redis to 1 in namespace gameday-shop"),
        "{error}"
    );
}
