//! Watchers: scripted watch streams, and the trackers' transitions, become
//! the run's typed events.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::{
    apps::v1::Deployment,
    autoscaling::v2::HorizontalPodAutoscaler,
    core::v1::{Node, Pod},
};
use kube::{Api, runtime::watcher};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{
    fixtures::{self, Endpoint, NS},
    mock::{self, Exchange, Route},
};
use crate::{
    events::{EventKind, EventLog, ServerRole},
    platform::kubernetes::watch::{self, Observed, View},
};

fn at(mut object: Value, resource_version: &str) -> Value {
    object["metadata"]["resourceVersion"] = json!(resource_version);
    object
}

fn typed<K: DeserializeOwned>(object: Value) -> K {
    serde_json::from_value(object).expect("a fixture of this kind")
}

fn started(service: &str, replica: &str, node: &str, scale_out: bool) -> EventKind {
    EventKind::ReplicaStarted {
        service: service.into(),
        replica: replica.into(),
        instance: Some(node.into()),
        address: None,
        scale_out,
    }
}

fn ready(service: &str, replica: &str) -> EventKind {
    EventKind::ReplicaReady {
        service: service.into(),
        replica: replica.into(),
    }
}

fn exited(service: &str, replica: &str, node: &str) -> EventKind {
    EventKind::ReplicaExited {
        service: service.into(),
        replica: replica.into(),
        instance: Some(node.into()),
        reason: Some("pod deleted".into()),
    }
}

fn serving(service: &str, replica: &str) -> EventKind {
    EventKind::ReplicaServing {
        service: service.into(),
        replica: replica.into(),
    }
}

/// A first list of these objects, then the changes, as the watcher yields them.
fn listed<K>(objects: Vec<K>) -> Vec<watcher::Event<K>> {
    let mut events = vec![watcher::Event::Init];
    events.extend(objects.into_iter().map(watcher::Event::InitApply));
    events.push(watcher::Event::InitDone);
    events
}

fn feed<K>(
    view: &mut View,
    wrap: fn(watcher::Event<K>) -> Observed,
    events: Vec<watcher::Event<K>>,
) -> Vec<EventKind> {
    events.into_iter().flat_map(|e| view.on(wrap(e))).collect()
}

#[tokio::test]
async fn a_scripted_pod_watch_becomes_started_ready_and_exited_events() {
    let (cluster, server) = mock::cluster();
    let pods = format!("/api/v1/namespaces/{NS}/pods");
    let watch = |rv: &str| {
        Exchange::get(&pods).query(&[
            ("watch", "true"),
            ("timeoutSeconds", "290"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", rv),
        ])
    };
    let server = server.run(vec![
        Exchange::get(&pods)
            .query(&[("limit", "500")])
            .ok(fixtures::list(
                "Pod",
                "v1",
                "100",
                vec![fixtures::pod("cart-a", "cart", Some("node-a"), true)],
            )),
        watch("100").watch_events(&[
            fixtures::event(
                "ADDED",
                at(fixtures::pod("cart-b", "cart", None, false), "101"),
            ),
            fixtures::event(
                "MODIFIED",
                at(
                    fixtures::pod("cart-b", "cart", Some("node-b"), false),
                    "102",
                ),
            ),
            fixtures::event(
                "MODIFIED",
                at(fixtures::pod("cart-b", "cart", Some("node-b"), true), "103"),
            ),
            fixtures::event(
                "DELETED",
                at(
                    fixtures::pod("cart-a", "cart", Some("node-a"), false),
                    "104",
                ),
            ),
        ]),
        watch("104").hold(),
    ]);

    let mut stream = watch::stream(
        Api::<Pod>::namespaced(cluster.client().clone(), NS),
        watcher::Config::default(),
        Observed::Pod,
    );
    let mut view = View::default();
    let mut events = Vec::new();
    let collect = async {
        while events.len() < 5 {
            let next = stream.next().await.expect("the stream goes on");
            assert!(!matches!(next, Observed::Failed { .. }), "{next:?}");
            events.extend(view.on(next));
        }
    };
    tokio::time::timeout(Duration::from_secs(10), collect)
        .await
        .expect("the events came");
    // The watch answer has ended: the watcher watches again from the last
    // version it saw, and that watch stays open.
    let more = tokio::time::timeout(Duration::from_millis(200), stream.next()).await;
    drop((stream, cluster));
    mock::finish(server).await;

    assert!(more.is_err(), "nothing after the open watch: {more:?}");
    assert_eq!(
        events,
        [
            started("cart", "cart-a", "node-a", false),
            ready("cart", "cart-a"),
            started("cart", "cart-b", "node-b", false),
            ready("cart", "cart-b"),
            exited("cart", "cart-a", "node-a"),
        ]
    );
}

#[tokio::test]
async fn all_watchers_together_emit_pods_endpoints_scaling_and_nodes_into_the_run_s_log() {
    let (cluster, server) = mock::cluster();
    let ns = format!("/api/v1/namespaces/{NS}");
    let slices = format!("/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices");
    let hpas = format!("/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers");
    let slice = |endpoints: &[Endpoint<'_>]| {
        fixtures::endpoint_slice("catalogue-x1", "catalogue", endpoints)
    };
    let a = |up: bool| Endpoint {
        pod: "catalogue-a",
        ready: up,
        serving: up,
        terminating: !up,
    };
    let c = Endpoint {
        pod: "catalogue-c",
        ready: true,
        serving: true,
        terminating: false,
    };
    let server = server.route(vec![
        Route::list(
            &format!("{ns}/pods"),
            fixtures::list("Pod", "v1", "1", vec![]),
        ),
        Route::watch(
            &format!("{ns}/pods"),
            &[fixtures::event(
                "ADDED",
                at(
                    fixtures::pod("catalogue-c", "catalogue", Some("node-b"), true),
                    "2",
                ),
            )],
        ),
        Route::list(
            &slices,
            fixtures::list(
                "EndpointSlice",
                "discovery.k8s.io/v1",
                "1",
                vec![slice(&[a(true)])],
            ),
        ),
        Route::watch(
            &slices,
            &[fixtures::event("MODIFIED", at(slice(&[a(false), c]), "3"))],
        ),
        Route::list(
            &format!("/apis/apps/v1/namespaces/{NS}/deployments"),
            fixtures::list(
                "Deployment",
                "apps/v1",
                "1",
                vec![fixtures::deployment("catalogue", 3, 2)],
            ),
        ),
        Route::watch(&format!("/apis/apps/v1/namespaces/{NS}/deployments"), &[]),
        Route::list(
            &hpas,
            fixtures::list(
                "HorizontalPodAutoscaler",
                "autoscaling/v2",
                "1",
                vec![fixtures::hpa("catalogue", 2, 3, Some(91))],
            ),
        ),
        Route::watch(&hpas, &[]),
        Route::list(
            "/api/v1/nodes",
            fixtures::list(
                "Node",
                "v1",
                "1",
                vec![fixtures::node("node-b", true, "zone-b")],
            ),
        ),
        Route::watch(
            "/api/v1/nodes",
            &[fixtures::event(
                "DELETED",
                at(fixtures::node("node-b", true, "zone-b"), "2"),
            )],
        ),
    ]);
    let log = Arc::new(EventLog::new(None).unwrap());
    let mut rx = log.subscribe();

    let mut watchers = watch::spawn(&cluster, log.clone());
    let synced = watchers.wait_synced(Duration::from_secs(10)).await;
    let mut events = Vec::new();
    let collect = async {
        while events.len() < 9 {
            events.push(rx.recv().await.expect("the log goes on").kind);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), collect)
        .await
        .unwrap_or_else(|_| panic!("only these came: {events:#?}"));
    watchers.stop().await;
    drop(cluster);
    let requests = mock::finish(server).await;

    assert!(synced, "every watcher listed");
    let slice_list = requests
        .iter()
        .find(|r| r.path.ends_with("/endpointslices"))
        .expect("EndpointSlices were listed");
    assert!(
        slice_list
            .query
            .contains(&("labelSelector".into(), "kubernetes.io/service-name".into())),
        "{slice_list:?}"
    );
    let mut expected = vec![
        started("catalogue", "catalogue-c", "node-b", false),
        ready("catalogue", "catalogue-c"),
        serving("catalogue", "catalogue-a"),
        serving("catalogue", "catalogue-c"),
        EventKind::ScalingSignal {
            service: "catalogue".into(),
            observed_cpu_percent: Some(91.0),
            target_cpu_percent: Some(70.0),
            replicas: Some(2),
        },
        EventKind::ScalingDecision {
            service: "catalogue".into(),
            from: 2,
            to: 3,
            observed_cpu_percent: Some(91.0),
            target_cpu_percent: Some(70.0),
        },
        EventKind::InstanceRunning {
            instance: "node-b".into(),
            address: Some("10.0.0.1".into()),
            zone: Some("zone-b".into()),
        },
        EventKind::InstanceServing {
            instance: "node-b".into(),
            group: None,
        },
        EventKind::InstanceTerminated {
            instance: "node-b".into(),
            address: Some("10.0.0.1".into()),
            zone: Some("zone-b".into()),
        },
    ];
    // The five watchers race: their events interleave in any order.
    let key = |e: &EventKind| format!("{e:?}");
    events.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(events, expected);
}

#[test]
fn a_relist_that_no_longer_has_a_pod_reports_it_exited() {
    let pod = |name: &str| typed::<Pod>(fixtures::pod(name, "web", Some("node-a"), false));
    let mut view = View::default();

    feed(
        &mut view,
        Observed::Pod,
        listed(vec![pod("web-a"), pod("web-b")]),
    );
    let relisted = feed(&mut view, Observed::Pod, listed(vec![pod("web-b")]));

    assert_eq!(relisted, [exited("web", "web-a", "node-a")]);
}

#[test]
fn the_cache_s_pod_restarted_under_the_same_name_is_stopped_then_started_again() {
    let mut first = fixtures::stateful_pod("redis-0", "redis", "node-a");
    first["metadata"]["uid"] = json!("uid-1");
    let mut replacement = fixtures::stateful_pod("redis-0", "redis", "node-b");
    replacement["metadata"]["uid"] = json!("uid-2");
    replacement["status"]["conditions"][1]["status"] = json!("False");
    let mut replacement_ready = replacement.clone();
    replacement_ready["status"]["conditions"][1]["status"] = json!("True");
    let mut view = View::default();
    let apply = |object: Value| watcher::Event::Apply(typed::<Pod>(object));

    let events = feed(
        &mut view,
        Observed::Pod,
        vec![
            apply(first.clone()),
            apply(fixtures::terminating(first)),
            apply(replacement),
            apply(replacement_ready),
        ],
    );

    let address = Some("redis-0".to_string());
    assert_eq!(
        events,
        [
            EventKind::ServerStarted {
                server: ServerRole::Cache,
                address: address.clone()
            },
            EventKind::ServerStopping {
                server: ServerRole::Cache
            },
            EventKind::ServerStopped {
                server: ServerRole::Cache,
                address: address.clone()
            },
            EventKind::ServerStarted {
                server: ServerRole::Cache,
                address
            },
        ]
    );
}

#[test]
fn the_database_pod_s_deletion_and_return_are_database_status_events() {
    let pod = fixtures::stateful_pod("mariadb-0", "mariadb", "node-a");
    let mut view = View::default();

    let events = feed(
        &mut view,
        Observed::Pod,
        vec![
            watcher::Event::Apply(typed::<Pod>(pod.clone())),
            watcher::Event::Delete(typed::<Pod>(pod)),
        ],
    );

    let status = |s: &str| EventKind::DbStatus {
        database: "mariadb-0".into(),
        status: s.into(),
    };
    assert_eq!(events, [status("ready"), status("deleted")]);
}

#[test]
fn a_killed_replica_is_stopping_when_its_pod_terminates_and_exited_when_it_is_gone() {
    let pod = fixtures::pod("cart-a", "cart", Some("node-a"), true);
    let mut view = View::default();
    let mut events = feed(
        &mut view,
        Observed::Pod,
        listed(vec![typed::<Pod>(pod.clone())]),
    );

    events.extend(feed(
        &mut view,
        Observed::Pod,
        vec![
            watcher::Event::Apply(typed::<Pod>(fixtures::terminating(pod.clone()))),
            watcher::Event::Delete(typed::<Pod>(pod)),
        ],
    ));

    assert_eq!(
        events,
        [
            started("cart", "cart-a", "node-a", false),
            ready("cart", "cart-a"),
            EventKind::ReplicaStopping {
                service: "cart".into(),
                replica: "cart-a".into(),
                instance: Some("node-a".into()),
                reason: Some("pod terminating".into())
            },
            exited("cart", "cart-a", "node-a"),
        ]
    );
}

#[test]
fn pods_placed_after_their_deployment_asked_for_more_are_a_scale_out_and_a_replacement_is_not() {
    let deployment = |replicas| typed::<Deployment>(fixtures::deployment("catalogue", replicas, 2));
    let pod = |name: &str| typed::<Pod>(fixtures::pod(name, "catalogue", Some("node-a"), false));
    let mut view = View::default();
    feed(&mut view, Observed::Deployment, listed(vec![deployment(2)]));
    feed(
        &mut view,
        Observed::Pod,
        listed(vec![pod("catalogue-a"), pod("catalogue-b")]),
    );

    let scaled = feed(
        &mut view,
        Observed::Deployment,
        vec![watcher::Event::Apply(deployment(3))],
    );
    let added = feed(
        &mut view,
        Observed::Pod,
        vec![watcher::Event::Apply(pod("catalogue-c"))],
    );
    let replaced = feed(
        &mut view,
        Observed::Pod,
        vec![watcher::Event::Apply(pod("catalogue-d"))],
    );

    assert_eq!(scaled, []);
    assert_eq!(added, [started("catalogue", "catalogue-c", "node-a", true)]);
    assert_eq!(
        replaced,
        [started("catalogue", "catalogue-d", "node-a", false)]
    );
}

#[test]
fn an_hpa_reports_a_decision_when_desired_replicas_change_and_a_signal_when_cpu_crosses_its_target()
{
    let hpa = |current, desired, cpu| {
        typed::<HorizontalPodAutoscaler>(fixtures::hpa("cart", current, desired, cpu))
    };
    let mut view = View::default();
    let mut on = |h| feed(&mut view, Observed::Hpa, vec![watcher::Event::Apply(h)]);

    let cool = on(hpa(2, 2, Some(40)));
    let hotter = on(hpa(2, 4, Some(140)));
    let still_hot = on(hpa(4, 4, Some(120)));
    let no_metrics = on(hpa(4, 4, None));

    assert_eq!(cool, []);
    assert_eq!(
        hotter,
        [
            EventKind::ScalingSignal {
                service: "cart".into(),
                observed_cpu_percent: Some(140.0),
                target_cpu_percent: Some(70.0),
                replicas: Some(2),
            },
            EventKind::ScalingDecision {
                service: "cart".into(),
                from: 2,
                to: 4,
                observed_cpu_percent: Some(140.0),
                target_cpu_percent: Some(70.0),
            },
        ]
    );
    assert_eq!(still_hot, [], "above its target already");
    assert_eq!(no_metrics, []);
}

#[test]
fn a_node_going_not_ready_and_back_then_deleted_is_reported_each_time() {
    let node = |ready| typed::<Node>(fixtures::node("node-a", ready, "zone-a"));
    let mut view = View::default();
    let mut on = |e| feed(&mut view, Observed::Node, vec![e]);

    let launching = on(watcher::Event::Apply(node(false)));
    let up = on(watcher::Event::Apply(node(true)));
    let down = on(watcher::Event::Apply(node(false)));
    let still = on(watcher::Event::Apply(node(false)));
    let back = on(watcher::Event::Apply(node(true)));
    let deleted = on(watcher::Event::Delete(node(true)));

    let instance = || "node-a".to_string();
    let zone = Some("zone-a".to_string());
    let address = Some("10.0.0.1".to_string());
    let serving = EventKind::InstanceServing {
        instance: instance(),
        group: None,
    };
    assert_eq!(
        launching,
        [EventKind::InstanceLaunching {
            instance: instance(),
            replaces: None,
            address: address.clone(),
            zone: zone.clone(),
            boot_delay_ms: None,
            group: None,
            scale_out: false
        }]
    );
    assert_eq!(
        up,
        [
            EventKind::InstanceRunning {
                instance: instance(),
                address: address.clone(),
                zone: zone.clone()
            },
            serving.clone()
        ]
    );
    assert_eq!(
        down,
        [EventKind::InstanceUnhealthy {
            instance: instance(),
            reason: Some("node not Ready".into())
        }]
    );
    assert_eq!(still, []);
    assert_eq!(back, [serving]);
    assert_eq!(
        deleted,
        [EventKind::InstanceTerminated {
            instance: instance(),
            address,
            zone
        }]
    );
}

#[test]
fn pods_of_other_apps_in_the_namespace_are_not_the_run_s_business() {
    let mut view = View::default();

    let events = feed(
        &mut view,
        Observed::Pod,
        listed(vec![typed::<Pod>(fixtures::pod(
            "debug-shell",
            "netshoot",
            Some("node-a"),
            true,
        ))]),
    );

    assert_eq!(events, []);
    assert!(!view.synced(), "only the pods were listed");
}
