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
    let context = required("GAMEDAY_TEST_KUBECONTEXT");
    let namespace = format!("gameday-e2e-{}", std::process::id());
    let mut text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/kubernetes-smoke.yaml"
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
    let scenario = dir.join("kubernetes-smoke.yaml");
    std::fs::write(&scenario, text).unwrap();
    scenario
}

#[test]
#[ignore = "needs a cluster: GAMEDAY_TEST_KUBECONTEXT (scripts/test.sh runs it when set)"]
fn on_a_real_cluster_the_kubernetes_smoke_scenario_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = smoke_on_the_cluster(dir.path());
    let file = scenario.to_str().unwrap();

    let up = gameday(&["up", "--scenario", file], None);
    let run = gameday(&["run", file, "--yes"], None);
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
    let faults = summary["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 2, "{summary}");
    assert!(
        faults.iter().all(|f| f["injected_at_s"].is_number()),
        "{summary}"
    );
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
}
