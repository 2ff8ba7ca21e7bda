//! Watchers: scripted watch streams become the run's typed events (the
//! trackers' transitions one by one are in `trackers`).

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, runtime::watcher};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{
    fixtures::{self, Endpoint, NS},
    mock::{self, Exchange, Route},
};
use crate::{
    events::{EventKind, EventLog},
    platform::kubernetes::watch::{self, Observed, View},
};

pub(super) fn at(mut object: Value, resource_version: &str) -> Value {
    object["metadata"]["resourceVersion"] = json!(resource_version);
    object
}

pub(super) fn typed<K: DeserializeOwned>(object: Value) -> K {
    serde_json::from_value(object).expect("a fixture of this kind")
}

pub(super) fn started(service: &str, replica: &str, node: &str, scale_out: bool) -> EventKind {
    EventKind::ReplicaStarted {
        service: service.into(),
        replica: replica.into(),
        instance: Some(node.into()),
        address: None,
        scale_out,
    }
}

pub(super) fn ready(service: &str, replica: &str) -> EventKind {
    EventKind::ReplicaReady {
        service: service.into(),
        replica: replica.into(),
    }
}

pub(super) fn exited(service: &str, replica: &str, node: &str) -> EventKind {
    EventKind::ReplicaExited {
        service: service.into(),
        replica: replica.into(),
        instance: Some(node.into()),
        reason: Some("pod deleted".into()),
    }
}

pub(super) fn serving(service: &str, replica: &str) -> EventKind {
    EventKind::ReplicaServing {
        service: service.into(),
        replica: replica.into(),
    }
}

/// A first list of these objects, then the changes, as the watcher yields them.
pub(super) fn listed<K>(objects: Vec<K>) -> Vec<watcher::Event<K>> {
    let mut events = vec![watcher::Event::Init];
    events.extend(objects.into_iter().map(watcher::Event::InitApply));
    events.push(watcher::Event::InitDone);
    events
}

pub(super) fn feed<K>(
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
        while events.len() < 10 {
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
        // catalogue-a left the Service's endpoints (its readiness failed).
        EventKind::ReplicaUnready {
            service: "catalogue".into(),
            replica: "catalogue-a".into(),
        },
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
