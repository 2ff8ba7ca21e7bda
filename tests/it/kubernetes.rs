//! The gameday binary against Kubernetes: `plan` against a cluster that
//! does not answer, and (ignored unless a cluster is given) the
//! kubernetes-smoke scenario end to end: `up`, a port-forward to the
//! storefront, `run`, `down`.
//!
//! On a real cluster:
//!
//! ```sh
//! GAMEDAY_TEST_KUBECONTEXT=kind-gameday GAMEDAY_TEST_KUBE_IMAGE=gameday-shop:0.1.0 \
//!   cargo nextest run --run-ignored only -E 'test(on_a_real_cluster)'
//! ```

use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
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

/// `kubectl port-forward` to Service web, killed when dropped.
struct PortForward(Child);

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn port_forward(context: &str, namespace: &str, port: u16) -> PortForward {
    let child = Command::new("kubectl")
        .args(["--context", context, "-n", namespace, "port-forward"])
        .args(["svc/web", &format!("{port}:80")])
        .stdout(Stdio::null())
        .spawn()
        .expect("kubectl is installed");
    let forward = PortForward(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the port-forward did not open");
        std::thread::sleep(Duration::from_millis(200));
    }
    forward
}

#[test]
#[ignore = "needs a cluster"]
fn on_a_real_cluster_the_kubernetes_smoke_scenario_runs_end_to_end() {
    let context = required("GAMEDAY_TEST_KUBECONTEXT");
    let image = required("GAMEDAY_TEST_KUBE_IMAGE");
    let namespace = format!("gameday-e2e-{}", std::process::id());
    let port = free_port();
    let entry = std::env::var("GAMEDAY_TEST_KUBE_ENTRY_URL").ok();
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/kubernetes-smoke.yaml"
    ))
    .unwrap()
    .replace("context: kind-gameday", &format!("context: {context}"))
    .replace(
        "namespace: gameday-shop",
        &format!("namespace: {namespace}"),
    )
    .replace("image: gameday-shop:0.1.0", &format!("image: {image}"))
    .replace(
        "entry-url: http://127.0.0.1:8080",
        &format!(
            "entry-url: {}",
            entry.clone().unwrap_or(format!("http://127.0.0.1:{port}"))
        ),
    )
    .replace("dir: reports", &format!("dir: {}", dir.path().display()));
    let scenario = dir.path().join("kubernetes-smoke.yaml");
    std::fs::write(&scenario, text).unwrap();
    let file = scenario.to_str().unwrap();

    let up = gameday(&["up", "--scenario", file], None);
    let forward = entry
        .is_none()
        .then(|| {
            up.status
                .success()
                .then(|| port_forward(&context, &namespace, port))
        })
        .flatten();
    let run = gameday(&["run", file, "--yes"], None);
    drop(forward);
    let down = gameday(&["down", "--scenario", file], None);

    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        matches!(run.status.code(), Some(0 | 3)),
        "a verdict, not an error: {stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("Verdict:"), "{stdout}");
    let summary = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("summary.json"))
        .find(|p| p.exists())
        .expect("summary.json");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(summary).unwrap()).unwrap();
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
