//! The gameday binary against Kubernetes: `plan` against a cluster that
//! does not answer, and (ignored unless a cluster is given) the
//! kubernetes-smoke scenario end to end: `up`, `run` through the cluster's
//! load balancer, `down`.
//!
//! On a real cluster (scripts/cluster.sh up gives gameday-local; scripts/test.sh
//! runs the ignored tests when GAMEDAY_TEST_KUBECONTEXT is set):
//!
//! ```sh
//! GAMEDAY_TEST_KUBECONTEXT=gameday-local scripts/test.sh -E 'test(on_a_real_cluster)'
//! ```

use std::{
    net::TcpListener,
    path::Path,
    process::{Command, Output},
};

fn gameday(args: &[&str], kubeconfig: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gameday"));
    command.args(args);
    if let Some(path) = kubeconfig {
        command.env("KUBECONFIG", path);
    }
    command.output().expect("gameday runs")
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("local addr").port()
}

fn kubeconfig(server: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
current-context: gameday-test
clusters:
- name: gameday-test
  cluster:
    server: {server}
contexts:
- name: gameday-test
  context:
    cluster: gameday-test
    user: tester
users:
- name: tester
  user:
    token: not-a-real-token
"
    )
}

#[test]
fn plan_against_a_cluster_that_does_not_answer_exits_1_and_names_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port(); // bound, then released: nothing listens there
    let config = dir.path().join("kubeconfig");
    std::fs::write(&config, kubeconfig(&format!("http://127.0.0.1:{port}"))).unwrap();
    let scenario = dir.path().join("k8s.yaml");
    std::fs::write(
        &scenario,
        "name: k8s\ntarget:\n  platform: kubernetes\n  context: gameday-test\n  deploy: false\n\
         load:\n  stages:\n    - { users: 10, over: 10s }\n\
         faults:\n  - at: 5s\n    kill-pod: { service: cart, count: 1 }\n",
    )
    .unwrap();

    let out = gameday(&["plan", scenario.to_str().unwrap()], Some(&config));

    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot reach the Kubernetes API server at http://127.0.0.1:{port}/ (context gameday-test)"
        )),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no plan is printed");
}

#[test]
fn the_kubernetes_scenario_validates_without_a_cluster() {
    let smoke = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/kubernetes-smoke.yaml"
    );

    let out = gameday(&["validate", smoke], None);

    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn required(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("set {name} to run the tests that need a cluster (see README)"))
}

/// scenarios/kubernetes-smoke.yaml for the cluster the environment names:
/// its context (GAMEDAY_TEST_KUBECONTEXT), a namespace of this test's own,
/// the shop image (GAMEDAY_TEST_KUBE_IMAGE, default gameday-shop:0.1.0)
/// and the entry (GAMEDAY_TEST_KUBE_ENTRY_URL, default the scenario's: the
/// load balancer scripts/cluster.sh runs in front of every node).
fn smoke_on_the_cluster(dir: &Path) -> std::path::PathBuf {
    on_the_cluster(dir, "kubernetes-smoke")
}

/// scenarios/NAME.yaml, made for the cluster as [`smoke_on_the_cluster`].
fn on_the_cluster(dir: &Path, name: &str) -> std::path::PathBuf {
    let context = required("GAMEDAY_TEST_KUBECONTEXT");
    let namespace = format!("gameday-e2e-{}", std::process::id());
    let mut text = std::fs::read_to_string(format!(
        "{}/scenarios/{name}.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut swap = |from: &str, to: String| {
        assert!(text.contains(from), "the smoke scenario has {from}");
        text = text.replace(from, &to);
    };
    swap("context: gameday-local", format!("context: {context}"));
    swap("namespace: gameday-shop", format!("namespace: {namespace}"));
    if let Ok(image) = std::env::var("GAMEDAY_TEST_KUBE_IMAGE") {
        swap("image: gameday-shop:0.1.0", format!("image: {image}"));
    }
    if let Ok(entry) = std::env::var("GAMEDAY_TEST_KUBE_ENTRY_URL") {
        swap(
            "entry-url: http://127.0.0.1:30080",
            format!("entry-url: {entry}"),
        );
    }
    swap("dir: reports", format!("dir: {}", dir.display()));
    let scenario = dir.join(format!("{name}.yaml"));
    std::fs::write(&scenario, text).unwrap();
    scenario
}

#[test]
#[ignore = "needs a cluster: GAMEDAY_TEST_KUBECONTEXT (scripts/test.sh runs it when set)"]
fn on_a_real_cluster_the_kubernetes_smoke_scenario_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = smoke_on_the_cluster(dir.path());
    let file = scenario.to_str().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = kube_client(&rt);
    let namespace = format!("gameday-e2e-{}", std::process::id());

    let up = gameday(&["up", "--yes", "--scenario", file], None);
    let replicas_owned = applied_replicas(&rt, &client, &namespace);
    let run = gameday(&["run", file, "--yes"], None);
    let after = settled(&rt, &client, &namespace);
    let down = gameday(&["down", "--scenario", file], None);

    let up_out = String::from_utf8_lossy(&up.stdout);
    assert!(
        up.status.success(),
        "{up_out}{}",
        String::from_utf8_lossy(&up.stderr)
    );
    // The storefront is the cluster's load balancer, not a port-forward.
    assert!(
        up_out.contains("http://"),
        "up names the storefront: {up_out}"
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("Verdict:"), "{stdout}");
    let summary = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("summary.json"))
        .find(|p| p.exists())
        .expect("summary.json");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(summary).unwrap()).unwrap();
    crate::support::assert_exit(
        run.status.code(),
        &summary,
        &[0, 3],
        &format!(
            "a verdict, not an error: {stdout}\n{}",
            String::from_utf8_lossy(&run.stderr)
        ),
    );
    assert_eq!(
        replicas_owned,
        Vec::<String>::new(),
        "gameday's server-side apply owns no HPA-managed Deployment's spec.replicas \
         (re-applying would reset what the HPA set)"
    );
    let faults = summary["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 2, "{summary}");
    // What an SRE checks: each fault hit a real pod of what it names and
    // has a measured recovery; no order lost or made twice; the cluster is
    // whole again; nothing is left.
    let targets = |i: usize| -> Vec<String> {
        faults[i]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect()
    };
    let crashed = targets(0);
    assert!(
        crashed.len() == 1 && after.cart_pods_seen.contains(&crashed[0]),
        "kill-pod hit a cart pod of the cluster: {crashed:?}, pods seen {:?}",
        after.cart_pods_seen
    );
    assert_eq!(targets(1), ["mariadb-0"], "{summary}");
    for f in faults {
        assert!(
            f["injected_at_s"].is_number() && f["recovery_s"].is_number(),
            "a measured recovery: {f}"
        );
    }
    assert_eq!(summary["orders"]["lost"], 0, "{}", summary["orders"]);
    assert_eq!(summary["orders"]["duplicated"], 0, "{}", summary["orders"]);
    assert_eq!(
        after.ready_nodes, 3,
        "3 Ready nodes after the run: {after:?}"
    );
    assert!(
        after.unready_statefulsets.is_empty(),
        "every StatefulSet Ready after the run: {after:?}"
    );
    assert_down_left_nothing(&down, &rt, &client, &namespace);
}

/// The Deployments of `namespace` whose `spec.replicas` gameday's
/// server-side apply (manager `gameday`, operation Apply) owns, as their
/// managedFields say. Every shop Deployment has an HPA, so this must be
/// none: an owned field is set again at every apply. Panics if the
/// namespace has no Deployment, or one has no Apply entry of gameday's.
fn applied_replicas(
    rt: &tokio::runtime::Runtime,
    client: &kube::Client,
    namespace: &str,
) -> Vec<String> {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::{Api, ResourceExt, api::ListParams};
    rt.block_on(async {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
        let list = deployments.list(&ListParams::default()).await.unwrap();
        assert_eq!(list.items.len(), 6, "the shop's six Deployments");
        list.items
            .iter()
            .filter(|d| {
                let applied: Vec<_> = d
                    .managed_fields()
                    .iter()
                    .filter(|f| {
                        f.manager.as_deref() == Some("gameday")
                            && f.operation.as_deref() == Some("Apply")
                    })
                    .collect();
                assert!(
                    !applied.is_empty(),
                    "{} was applied by gameday",
                    d.name_any()
                );
                applied.iter().any(|f| {
                    f.fields_v1
                        .as_ref()
                        .is_some_and(|v| v.0.pointer("/f:spec/f:replicas").is_some())
                })
            })
            .map(|d| d.name_any())
            .collect()
    })
}

/// The cluster after a run, as an SRE would look at it.
#[derive(Debug)]
struct Settled {
    ready_nodes: usize,
    /// `name ready/wanted` of each StatefulSet not all Ready.
    unready_statefulsets: Vec<String>,
    /// The cart pods in the namespace after the run (a crashed pod stays
    /// the same pod: its container restarts in place).
    cart_pods_seen: Vec<String>,
}

/// Waits (up to 2 minutes) until the cluster has 3 Ready nodes and every
/// StatefulSet of `namespace` is Ready, and says what it found.
fn settled(rt: &tokio::runtime::Runtime, client: &kube::Client, namespace: &str) -> Settled {
    use k8s_openapi::api::{
        apps::v1::StatefulSet,
        core::v1::{Node, Pod},
    };
    use kube::{Api, ResourceExt, api::ListParams};
    rt.block_on(async {
        let nodes: Api<Node> = Api::all(client.clone());
        let sets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let mut last = None;
        for _ in 0..60 {
            let ready_nodes = nodes
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .filter(|n| {
                    n.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .count();
            let unready_statefulsets: Vec<String> = sets
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .filter_map(|s| {
                    let wanted = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                    let ready = s
                        .status
                        .as_ref()
                        .and_then(|s| s.ready_replicas)
                        .unwrap_or(0);
                    (ready < wanted).then(|| format!("{} {ready}/{wanted}", s.name_any()))
                })
                .collect();
            let cart_pods_seen: Vec<String> = pods
                .list(&ListParams::default().labels("app.kubernetes.io/name=cart"))
                .await
                .map(|l| l.items.iter().map(|p| p.name_any()).collect())
                .unwrap_or_default();
            let done = ready_nodes == 3 && unready_statefulsets.is_empty();
            last = Some(Settled {
                ready_nodes,
                unready_statefulsets,
                cart_pods_seen,
            });
            if done {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
        last.unwrap()
    })
}

/// `down` succeeded and the namespace the run created is gone.
fn assert_down_left_nothing(
    down: &Output,
    rt: &tokio::runtime::Runtime,
    client: &kube::Client,
    namespace: &str,
) {
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(
        namespace_gone(rt, client, namespace),
        "nothing is left: namespace {namespace} is gone after down"
    );
}

fn namespace_gone(rt: &tokio::runtime::Runtime, client: &kube::Client, namespace: &str) -> bool {
    rt.block_on(async {
        let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
            kube::Api::all(client.clone());
        namespaces.get_opt(namespace).await.unwrap().is_none()
    })
}

/// The run directory of the one run under `dir`.
fn run_in(dir: &Path) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join("summary.json").exists())
        .expect("a run directory with summary.json")
}

fn summary_of(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
}

/// The cluster the environment names, through kube (as gameday reaches it).
fn kube_client(rt: &tokio::runtime::Runtime) -> kube::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let context = required("GAMEDAY_TEST_KUBECONTEXT");
    rt.block_on(async {
        let options = kube::config::KubeConfigOptions {
            context: Some(context),
            ..Default::default()
        };
        let config = kube::Config::from_kubeconfig(&options).await.unwrap();
        kube::Client::try_from(config).unwrap()
    })
}

const SHARD_PODS: &str = "app.kubernetes.io/component=load-generator";

/// The names of the shards' Jobs and pods left in `namespace`.
fn shard_objects(
    rt: &tokio::runtime::Runtime,
    client: &kube::Client,
    namespace: &str,
) -> Vec<String> {
    use k8s_openapi::api::{batch::v1::Job, core::v1::Pod};
    use kube::{Api, ResourceExt, api::ListParams};
    rt.block_on(async {
        let selector = ListParams::default().labels(SHARD_PODS);
        let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let mut names: Vec<String> = jobs
            .list(&selector)
            .await
            .unwrap()
            .items
            .iter()
            .map(|j| format!("job/{}", j.name_any()))
            .collect();
        names.extend(
            pods.list(&selector)
                .await
                .unwrap()
                .items
                .iter()
                .map(|p| format!("pod/{}", p.name_any())),
        );
        names
    })
}

/// Four shards as the pods of one Indexed Job, attached through the API
/// server: their seconds add up to the run's timeline, none is lost, no
/// order is lost, and the Job and its pods are gone after the run. Then a
/// shard's pod deleted mid-run makes the verdict inconclusive, naming the
/// shard, and its Job is gone too.
#[test]
#[ignore = "needs a cluster: GAMEDAY_TEST_KUBECONTEXT (scripts/test.sh runs it when set)"]
fn on_a_real_cluster_four_shards_in_an_indexed_job_give_one_exact_verdict() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = kube_client(&rt);
    let namespace = format!("gameday-e2e-{}", std::process::id());
    let healthy = tempfile::tempdir().unwrap();
    let scenario = on_the_cluster(healthy.path(), "kubernetes-shards");
    let file = scenario.to_str().unwrap();

    let up = gameday(&["up", "--yes", "--scenario", file], None);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );

    let run = gameday(&["run", file, "--yes"], None);
    let stdout = String::from_utf8_lossy(&run.stdout).to_string();
    let stderr = String::from_utf8_lossy(&run.stderr).to_string();
    let left_after_run = shard_objects(&rt, &client, &namespace);

    // The same shop, a second run: one shard's pod deleted 25 s in.
    let lossy = tempfile::tempdir().unwrap();
    let lossy_scenario = on_the_cluster(lossy.path(), "kubernetes-shards");
    let child = Command::new(env!("CARGO_BIN_EXE_gameday"))
        .args(["run", lossy_scenario.to_str().unwrap(), "--yes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deleted = rt.block_on(async {
        use k8s_openapi::api::core::v1::Pod;
        use kube::{
            Api, ResourceExt,
            api::{DeleteParams, ListParams},
        };
        let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        let selector = ListParams::default().labels(SHARD_PODS);
        for _ in 0..240 {
            let running: Vec<Pod> = pods
                .list(&selector)
                .await
                .map(|l| l.items)
                .unwrap_or_default()
                .into_iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .collect();
            if running.len() == 4 {
                tokio::time::sleep(std::time::Duration::from_secs(25)).await;
                let victim = running
                    .iter()
                    .find(|p| {
                        p.annotations()
                            .get("batch.kubernetes.io/job-completion-index")
                            .map(String::as_str)
                            == Some("2")
                    })
                    .unwrap()
                    .name_any();
                pods.delete(&victim, &DeleteParams::default().grace_period(0))
                    .await
                    .unwrap();
                return Some(victim);
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        None
    });
    let lossy_run = child.wait_with_output().unwrap();
    let left_after_lossy = shard_objects(&rt, &client, &namespace);
    let down = gameday(&["down", "--scenario", file], None);

    assert!(stdout.contains("Verdict:"), "{stdout}\n{stderr}");
    let healthy_run = run_in(healthy.path());
    let summary = summary_of(&healthy_run);
    crate::support::assert_exit(
        run.status.code(),
        &summary,
        &[0, 3],
        &format!("{stdout}\n{stderr}"),
    );
    let shards = summary["load_generator"]["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 4, "{summary}");
    assert!(
        shards
            .iter()
            .all(|s| s["lost"].is_null() && s["requests"].as_u64().unwrap() > 0),
        "{summary}"
    );
    let by_shards: u64 = shards.iter().map(|s| s["requests"].as_u64().unwrap()).sum();
    assert_eq!(
        crate::shards::timeline_requests(&healthy_run),
        by_shards,
        "the merge adds every shard's requests"
    );
    crate::shards::assert_hlog_gives_the_summary_s_percentiles(&healthy_run, &summary);
    let faults = summary["faults"].as_array().unwrap();
    assert!(
        faults
            .iter()
            .any(|f| f["kind"] == "kill-pod" && f["injected_at_s"].is_number()),
        "the kill-pod went in: {summary}"
    );
    assert_eq!(summary["orders"]["lost"], 0, "{summary}");
    assert!(
        summary["orders"]["accepted"].as_u64().unwrap() > 0,
        "{summary}"
    );
    assert!(stderr.contains("created (4 pods"), "{stderr}");
    assert!(
        left_after_run.is_empty(),
        "the shards' Job is deleted: {left_after_run:?}"
    );

    let victim = deleted.expect("the four shard pods ran in the second run");
    let lossy_out = String::from_utf8_lossy(&lossy_run.stdout);
    let lossy_summary = summary_of(&run_in(lossy.path()));
    assert_eq!(
        lossy_run.status.code(),
        Some(5),
        "{lossy_out}\n{}",
        String::from_utf8_lossy(&lossy_run.stderr)
    );
    let reasons = lossy_summary["inconclusive"].to_string();
    assert!(reasons.contains("shard 2 was lost"), "{reasons}");
    assert!(
        reasons.contains(&victim),
        "names the pod {victim}: {reasons}"
    );
    assert!(
        left_after_lossy.is_empty(),
        "the shards' Job is deleted: {left_after_lossy:?}"
    );
    assert_down_left_nothing(&down, &rt, &client, &namespace);
}
