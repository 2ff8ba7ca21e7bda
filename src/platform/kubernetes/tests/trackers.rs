//! The trackers' transitions, one watch event at a time: what each kind of
//! object's change becomes in the run's events.

use k8s_openapi::api::{
    apps::v1::Deployment,
    autoscaling::v2::HorizontalPodAutoscaler,
    core::v1::{Node, Pod},
};
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::{
    fixtures,
    watch::{exited, feed, listed, ready, started, typed},
};
use crate::{
    events::{EventKind, ServerRole},
    platform::kubernetes::watch::{Observed, View},
};

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

#[test]
fn an_hpa_not_synced_yet_is_no_decision_when_its_status_arrives() {
    let mut fresh = fixtures::hpa("web", 2, 2, None);
    fresh.as_object_mut().unwrap().remove("status");
    let mut view = View::default();
    let mut on = |h: Value| hpa_seen(&mut view, h);

    let created = on(fresh);
    let synced = on(fixtures::hpa("web", 2, 2, Some(10)));

    assert_eq!(created, []);
    assert_eq!(synced, []);
}

#[test]
fn a_fresh_hpa_recorded_from_a_real_cluster_is_no_scale_in_to_zero() {
    let fresh = fixtures::hpa_fresh();
    assert_eq!(fresh["status"]["desiredReplicas"], 0, "as recorded");
    assert_eq!(fresh["status"]["currentReplicas"], 2, "as recorded");
    let mut view = View::default();
    let mut on = |h: Value| hpa_seen(&mut view, h);

    let created = on(fresh);
    let synced = on(fixtures::hpa("cart", 2, 2, Some(10)));
    let scaled = on(fixtures::hpa("cart", 2, 4, Some(90)));

    assert_eq!(
        created,
        [],
        "desiredReplicas 0 with no metrics is no decision"
    );
    assert_eq!(synced, []);
    assert!(
        scaled
            .iter()
            .any(|e| matches!(e, EventKind::ScalingDecision { .. })),
        "a real decision still is one: {scaled:?}"
    );
}

/// What the watcher makes of an HPA as the API server serves it.
fn hpa_seen(view: &mut View, hpa: Value) -> Vec<EventKind> {
    feed(
        view,
        Observed::Hpa,
        vec![watcher::Event::Apply(typed::<HorizontalPodAutoscaler>(hpa))],
    )
}
