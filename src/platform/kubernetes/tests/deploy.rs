//! `up` and `down`: the apply sequence, the rollout wait and its failures,
//! deleting the namespace; and a run's deploy, which removes only the
//! namespace it created.

use std::{path::Path, sync::Arc, time::Duration};

use serde_json::json;
use tokio::time::Instant;

use super::{
    ENTRY, IMAGE, all_ready, applies, applies_over_an_hpa_scaled_cart, apply_query, cluster_in,
    fixtures::{self, NS},
    mock::{self, Exchange},
    opened_with, run_purpose, target,
};
use crate::{
    events::{EventKind, EventLog},
    platform::{
        self, ADMIN_TOKEN_ENV,
        kubernetes::{
            Error, Timing,
            deploy::WorkloadKind,
            manifests::{self, Overrides, load, prepare, reference_app_dir},
        },
    },
};

#[tokio::test(start_paused = true)]
async fn deploying_applies_every_manifest_server_side_then_waits_for_the_rollout() {
    let (cluster, server) = cluster_in("shop-test");
    let mut script = applies("shop-test");
    let [_, statefulsets] = all_ready("shop-test");
    script.extend([
        Exchange::get("/apis/apps/v1/namespaces/shop-test/deployments").ok(fixtures::list(
            "Deployment",
            "apps/v1",
            "9",
            vec![fixtures::deployment("web", 2, 1)],
        )),
        statefulsets,
    ]);
    script.extend(all_ready("shop-test"));
    let server = server.run(script);
    let prepared = prepare(
        load(&reference_app_dir()).unwrap(),
        "shop-test",
        &Overrides {
            image: Some(IMAGE.into()),
            ..Overrides::default()
        },
    )
    .unwrap();

    let mut looks = Vec::new();
    let workloads = cluster
        .deploy(&prepared, |p| looks.push(p.clone()))
        .await
        .unwrap();
    drop(cluster);
    let seen = mock::finish(server).await;

    assert_eq!(seen.len(), 33 + 12 + 4, "applies, scales, looks");
    assert_eq!(workloads.len(), 9);
    assert!(workloads.iter().all(|w| w.available));
    assert_eq!(looks.len(), 2);
    let web = &looks[0].workloads.iter().find(|w| w.name == "web").unwrap();
    assert_eq!((web.ready, web.desired, web.available), (1, 2, false));
    let cart = &looks[0]
        .workloads
        .iter()
        .find(|w| w.name == "cart")
        .unwrap();
    assert_eq!(
        (cart.ready, cart.available),
        (0, false),
        "a missing Deployment is not ready"
    );
    assert_eq!(looks[1].elapsed, Timing::default().poll_every);
}

/// `up` again on a shop whose HPA had raised cart to 3: the apply carries
/// no replicas and the API server keeps 3 (its recorded answer), and the
/// scale step, reading 3, sends cart nothing, so the HPA's decision
/// stands; the five others are raised from 1 to 2 as on a first `up`.
#[tokio::test(start_paused = true)]
async fn deploying_again_leaves_a_deployment_its_hpa_scaled_up_at_its_replicas() {
    let (cluster, server) = cluster_in(NS);
    let mut script = applies_over_an_hpa_scaled_cart(NS);
    script.extend(all_ready(NS));
    let server = server.run(script);
    let prepared = prepare(
        load(&reference_app_dir()).unwrap(),
        NS,
        &Overrides {
            image: Some(IMAGE.into()),
            ..Overrides::default()
        },
    )
    .unwrap();

    cluster.deploy(&prepared, |_| {}).await.unwrap();
    drop(cluster);
    let seen = mock::finish(server).await;

    let scaled: Vec<&str> = seen
        .iter()
        .filter(|r| r.method == http::Method::PATCH && r.path.ends_with("/scale"))
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(scaled.len(), 5, "{scaled:?}");
    assert!(
        scaled.iter().all(|p| !p.contains("/deployments/cart/")),
        "cart's scale is left at the HPA's 3: {scaled:?}"
    );
    let cart = fixtures::applied_cart(NS);
    assert_eq!(cart["spec"]["replicas"], 3, "the recorded apply kept them");
}

fn expected_admin_token() -> String {
    std::env::var(ADMIN_TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "change-me-admin".into())
}

#[tokio::test(start_paused = true)]
async fn a_run_that_created_the_namespace_deletes_it_on_shutdown_and_knows_the_admin_token() {
    let (cluster, server) = mock::cluster();
    let namespace = format!("/api/v1/namespaces/{NS}");
    let mut script =
        vec![Exchange::get(&namespace).reply(404, fixtures::not_found("namespaces", NS))];
    script.extend(applies(NS));
    script.extend(all_ready(NS));
    script.extend([
        // Gameday created it: it carries gameday's label.
        Exchange::get(&namespace).ok(fixtures::namespace(NS, "Active")),
        Exchange::delete(&namespace)
            .body(json!({}))
            .ok(fixtures::namespace(NS, "Terminating")),
        Exchange::get(&namespace).reply(404, fixtures::not_found("namespaces", NS)),
    ]);
    let server = server.run(script);
    let events = Arc::new(EventLog::new(None).unwrap());
    let mut rx = events.subscribe();

    let platform = opened_with(cluster, target(true), run_purpose(), events.clone())
        .await
        .unwrap();
    let (entry, token) = (
        platform.entry_url().to_string(),
        platform.admin_token().map(String::from),
    );
    platform.shutdown().await;
    mock::finish(server).await;

    assert_eq!(entry, ENTRY);
    assert_eq!(token, Some(expected_admin_token()));
    let mut last = None;
    while let Ok(e) = rx.try_recv() {
        last = Some(e.kind);
    }
    assert_eq!(last, Some(EventKind::PlatformStopped {}));
}

#[tokio::test(start_paused = true)]
async fn a_run_into_a_namespace_that_was_already_there_leaves_it_on_shutdown() {
    let (cluster, server) = mock::cluster();
    let mut script = vec![
        Exchange::get(&format!("/api/v1/namespaces/{NS}")).ok(fixtures::namespace(NS, "Active")),
    ];
    script.extend(applies(NS));
    script.extend(all_ready(NS));
    let server = server.run(script);
    let events = Arc::new(EventLog::new(None).unwrap());

    let platform = opened_with(cluster, target(true), run_purpose(), events)
        .await
        .unwrap();
    platform.shutdown().await;
    let seen = mock::finish(server).await;

    assert!(
        seen.iter().all(|r| r.method != http::Method::DELETE),
        "nothing deleted: {seen:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_image_that_cannot_be_pulled_fails_the_deploy_with_the_reason_and_removes_the_new_namespace()
 {
    let (cluster, server) = mock::cluster();
    let cluster = cluster.with_timing(Timing {
        rollout_timeout: Duration::from_secs(4),
        poll_every: Duration::from_secs(2),
        ..Timing::default()
    });
    let namespace = format!("/api/v1/namespaces/{NS}");
    let apps = format!("/apis/apps/v1/namespaces/{NS}");
    let mut script =
        vec![Exchange::get(&namespace).reply(404, fixtures::not_found("namespaces", NS))];
    script.extend(applies(NS));
    for _ in 0..3 {
        script.push(
            Exchange::get(&format!("{apps}/deployments")).ok(fixtures::list(
                "Deployment",
                "apps/v1",
                "9",
                vec![fixtures::deployment("cart", 2, 0)],
            )),
        );
        script.push(
            Exchange::get(&format!("{apps}/statefulsets")).ok(fixtures::list(
                "StatefulSet",
                "apps/v1",
                "9",
                vec![],
            )),
        );
    }
    script.extend([
        Exchange::get(&format!("{namespace}/pods")).ok(fixtures::list(
            "Pod",
            "v1",
            "12",
            vec![fixtures::pod_image_pull_backoff(
                "cart-5d8f7c9b6-abcde",
                "cart",
                "node-a",
            )],
        )),
        Exchange::get(&namespace).ok(fixtures::namespace(NS, "Active")),
        Exchange::get(&namespace).ok(fixtures::namespace(NS, "Active")),
        Exchange::delete(&namespace).ok(fixtures::namespace(NS, "Terminating")),
        Exchange::get(&namespace).reply(404, fixtures::not_found("namespaces", NS)),
    ]);
    let server = server.run(script);

    let error = match opened_with(
        cluster,
        target(true),
        run_purpose(),
        Arc::new(EventLog::new(None).unwrap()),
    )
    .await
    {
        Ok(_) => panic!("the rollout cannot succeed"),
        Err(e) => e,
    };
    mock::finish(server).await;

    let message = error.to_string();
    assert!(
        message.starts_with("the shop in namespace gameday-shop was not available after 4s"),
        "{message}"
    );
    assert!(
        message.contains("pod cart-5d8f7c9b6-abcde container cart: ImagePullBackOff"),
        "{message}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_without_an_entry_url_whose_load_balancer_has_no_address_removes_what_it_created() {
    let (cluster, server) = mock::cluster();
    let namespace = format!("/api/v1/namespaces/{NS}");
    let mut script =
        vec![Exchange::get(&namespace).reply(404, fixtures::not_found("namespaces", NS))];
    script.extend(applies(NS));
    script.extend(all_ready(NS));
    script.extend([
        // Service web is a LoadBalancer whose address is still pending.
        Exchange::get(&format!("{namespace}/services/web")).ok(fixtures::service_pending("web")),
        Exchange::get(&namespace).ok(fixtures::namespace(NS, "Active")),
        Exchange::get(&namespace).ok(fixtures::namespace(NS, "Active")),
        Exchange::delete(&namespace)
            .body(json!({}))
            .ok(fixtures::namespace(NS, "Terminating")),
        Exchange::get(&namespace).reply(404, fixtures::not_found("namespaces", NS)),
    ]);
    let server = server.run(script);
    let mut no_entry = target(true);
    no_entry.entry_url = None;

    let events = Arc::new(EventLog::new(None).unwrap());
    let error = match opened_with(cluster, no_entry, run_purpose(), events).await {
        Ok(_) => panic!("there is no way to the shop"),
        Err(e) => e,
    };
    mock::finish(server).await;

    assert!(
        matches!(error, platform::Error::Kubernetes(Error::NoEntryUrl { .. })),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("no load balancer address"), "{message}");
    assert!(message.contains("set target.entry-url"), "{message}");
    assert!(message.contains("http://127.0.0.1:30080"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn a_rollout_that_cannot_pull_its_image_times_out_naming_the_pods_and_the_reason() {
    let (cluster, server) = mock::cluster();
    let cluster = cluster.with_timing(Timing {
        rollout_timeout: Duration::from_secs(10),
        poll_every: Duration::from_secs(5),
        ..Timing::default()
    });
    let apps = format!("/apis/apps/v1/namespaces/{NS}");
    let look = || {
        [
            Exchange::get(&format!("{apps}/deployments")).ok(fixtures::list(
                "Deployment",
                "apps/v1",
                "9",
                vec![fixtures::deployment("web", 2, 0)],
            )),
            Exchange::get(&format!("{apps}/statefulsets")).ok(fixtures::list(
                "StatefulSet",
                "apps/v1",
                "9",
                vec![fixtures::statefulset("redis", 1, 1)],
            )),
        ]
    };
    let mut script: Vec<Exchange> = look().into_iter().chain(look()).chain(look()).collect();
    script.push(
        Exchange::get(&format!("/api/v1/namespaces/{NS}/pods")).ok(fixtures::list(
            "Pod",
            "v1",
            "12",
            vec![
                fixtures::pod_image_pull_backoff("web-5d8f7c9b6-abcde", "web", "node-a"),
                fixtures::pod_unschedulable("web-5d8f7c9b6-fghij", "web"),
                fixtures::stateful_pod("redis-0", "redis", "node-b"),
                fixtures::terminating(fixtures::pod("web-old", "web", Some("node-a"), false)),
            ],
        )),
    );
    let server = server.run(script);

    let mut looks = 0;
    let expected = [
        (WorkloadKind::Deployment, "web".to_string()),
        (WorkloadKind::StatefulSet, "redis".to_string()),
    ];
    let error = cluster
        .wait_for_rollout(&expected, |_| looks += 1)
        .await
        .unwrap_err();
    drop(cluster);
    mock::finish(server).await;

    assert_eq!(looks, 3);
    let Error::RolloutTimedOut {
        not_ready,
        problems,
        waited,
        ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(*waited, Duration::from_secs(10));
    assert_eq!(not_ready, &["Deployment web 0/2"]);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(problems[0].reason, "ImagePullBackOff");
    assert_eq!(problems[0].container.as_deref(), Some("web"));
    assert_eq!(problems[1].reason, "Unschedulable");
    let message = error.to_string();
    assert!(
        message.contains(
            "pod web-5d8f7c9b6-abcde container web: ImagePullBackOff (Back-off pulling image"
        ),
        "{message}"
    );
    assert!(message.contains("3 Insufficient cpu"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn applying_into_a_namespace_that_is_gone_says_so() {
    let (cluster, server) = mock::cluster();
    let manifest = manifests::parse(
        Path::new("m.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shop-config}\n",
    )
    .unwrap();
    let server = server.run(vec![
        Exchange::patch(&format!("/api/v1/namespaces/{NS}/configmaps/shop-config"))
            .query(&apply_query())
            .reply(404, fixtures::not_found("namespaces", NS)),
        Exchange::get(&format!("/api/v1/namespaces/{NS}"))
            .reply(404, fixtures::not_found("namespaces", NS)),
    ]);

    let error = cluster.apply(&manifest).await.unwrap_err();
    drop(cluster);
    mock::finish(server).await;

    assert!(matches!(error, Error::NamespaceMissing { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("namespace gameday-shop does not exist")
    );
}

#[tokio::test(start_paused = true)]
async fn applying_into_a_namespace_still_being_deleted_says_so_rather_than_blaming_rbac() {
    let (cluster, server) = mock::cluster();
    let manifest = manifests::parse(
        Path::new("m.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shop-config}\n",
    )
    .unwrap();
    let server = server.run(vec![
        Exchange::patch(&format!("/api/v1/namespaces/{NS}/configmaps/shop-config"))
            .query(&apply_query())
            .reply(
                403,
                fixtures::namespace_terminating("configmaps", "shop-config"),
            ),
    ]);

    let error = cluster.apply(&manifest).await.unwrap_err();
    drop(cluster);
    mock::finish(server).await;

    assert!(
        matches!(error, Error::NamespaceTerminating { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("is still being deleted"), "{message}");
    assert!(!message.contains("RBAC"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn deleting_the_namespace_waits_until_the_api_server_answers_404() {
    let (cluster, server) = mock::cluster();
    let path = format!("/api/v1/namespaces/{NS}");
    let server = server.run(vec![
        Exchange::delete(&path)
            .body(json!({}))
            .ok(fixtures::namespace(NS, "Terminating")),
        Exchange::get(&path).ok(fixtures::namespace(NS, "Terminating")),
        Exchange::get(&path).ok(fixtures::namespace(NS, "Terminating")),
        Exchange::get(&path).reply(404, fixtures::not_found("namespaces", NS)),
    ]);

    let started = Instant::now();
    cluster.delete_namespace().await.unwrap();
    let waited = started.elapsed();
    drop(cluster);
    mock::finish(server).await;

    assert_eq!(waited, Timing::default().poll_every * 2);
}

#[tokio::test(start_paused = true)]
async fn a_namespace_stuck_terminating_is_reported_with_its_conditions() {
    let (cluster, server) = mock::cluster();
    let cluster = cluster.with_timing(Timing {
        namespace_deletion_timeout: Duration::from_secs(4),
        ..Timing::default()
    });
    let path = format!("/api/v1/namespaces/{NS}");
    let mut stuck = fixtures::namespace(NS, "Terminating");
    stuck["status"]["conditions"] = json!([{
        "type": "NamespaceContentRemaining", "status": "True",
        "message": "Some resources are remaining: persistentvolumeclaims. has 3 resource instances"
    }]);
    let server = server.run(vec![
        Exchange::delete(&path).ok(stuck.clone()),
        Exchange::get(&path).ok(stuck.clone()),
        Exchange::get(&path).ok(stuck.clone()),
        Exchange::get(&path).ok(stuck),
    ]);

    let error = cluster.delete_namespace().await.unwrap_err();
    drop(cluster);
    mock::finish(server).await;

    let message = error.to_string();
    assert!(
        message.contains("namespace gameday-shop was still there after 4s"),
        "{message}"
    );
    assert!(message.contains("persistentvolumeclaims"), "{message}");
}
