//! On a real cluster, when GAMEDAY_TEST_KUBECONTEXT names one (README:
//! "Tests on a real cluster"; scripts/test.sh runs the ignored tests then):
//!
//! ```sh
//! GAMEDAY_TEST_KUBECONTEXT=gameday-local scripts/test.sh -E 'test(on_a_real_cluster)'
//! ```
//!
//! The test takes the target of scenarios/kubernetes-smoke.yaml (images,
//! node provider) for that context, deploys the shop into a namespace of
//! its own (deleted after), crashes a cart container through the chaos
//! engine, and waits for the watchers to report that pod out of its
//! Service and serving again (the kubelet restarts it in place).

use std::{sync::Arc, time::Duration};

use crate::{
    chaos::{self, Rollback},
    events::{EventKind, EventLog},
    platform::{
        kubernetes::{KubernetesBackend, tests::run_purpose},
        lifecycle,
    },
    scenario::{BlastRadius, Fault, FaultKind, PlatformSpec, Scenario, Schedule},
};

fn required(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("set {name} to run the tests that need a cluster (see README)"))
}

#[tokio::test]
#[ignore = "needs a cluster: GAMEDAY_TEST_KUBECONTEXT (scripts/test.sh runs it when set)"]
async fn on_a_real_cluster_a_crashed_cart_container_restarts_in_place_and_serves_again() {
    let smoke = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/kubernetes-smoke.yaml"
    );
    let mut spec = match Scenario::load(std::path::Path::new(smoke)).map(|s| s.target) {
        Ok(PlatformSpec::Kubernetes(spec)) => spec,
        other => panic!("the smoke scenario is on kubernetes: {other:?}"),
    };
    spec.context = Some(required("GAMEDAY_TEST_KUBECONTEXT"));
    if let Ok(image) = std::env::var("GAMEDAY_TEST_KUBE_IMAGE") {
        spec.image = Some(image);
    }
    spec.namespace = format!("gameday-it-{}", std::process::id());
    // Nothing here goes through the entry; the run's own test does.
    spec.entry_url = Some("http://unused.invalid".into());
    let events = Arc::new(EventLog::new(None).unwrap());
    let mut rx = events.subscribe();
    let backend = Arc::new(KubernetesBackend::new(spec.clone()));
    let platform = lifecycle::open(backend, run_purpose(), events.clone())
        .await
        .expect("the shop rolls out");
    let kill = Fault {
        name: "kill a cart pod".into(),
        kind: FaultKind::KillPod {
            service: "cart".into(),
            radius: BlastRadius::Count(1),
            graceful: false,
        },
        schedule: Schedule::At(Duration::ZERO),
        duration: None,
    };

    let injected = chaos::apply(&*platform, &events, &Rollback::default(), &kill).await;
    let victim = injected
        .as_ref()
        .map(|i| i.targets[0].id.clone())
        .unwrap_or_default();
    // A crash is no delete: the kubelet restarts the container in place,
    // so the same pod leaves its Service and serves again.
    let back = tokio::time::timeout(Duration::from_secs(180), async {
        let mut down = false;
        while let Ok(event) = rx.recv().await {
            match event.kind {
                EventKind::ReplicaUnready { replica, .. }
                | EventKind::ReplicaKilled { replica, .. }
                    if replica == victim =>
                {
                    down = true
                }
                EventKind::ReplicaServing { service, replica }
                    if down && service == "cart" && replica == victim =>
                {
                    return replica;
                }
                _ => {}
            }
        }
        String::new()
    })
    .await;
    platform.shutdown().await;

    injected.expect("the container was crashed");
    let back = back.expect("the crashed pod served again within 3 minutes");
    assert_eq!(back, victim);
}
