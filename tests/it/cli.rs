//! The gameday binary as an SRE uses it: `up --detach`, `status`, `down`,
//! from separate invocations (as from separate shells).

use std::{
    path::Path,
    process::{Command, Output},
    time::{Duration, Instant},
};

use gameday::platform::local::process::pid_alive;
use serde_json::Value;

fn gameday(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gameday"))
        .args(args)
        .env("GAMEDAY_STATE_DIR", state)
        .output()
        .expect("gameday runs")
}

fn small_scenario(dir: &Path) -> String {
    let path = dir.join("small.yaml");
    std::fs::write(
        &path,
        "name: small\ntarget:\n  platform: local\n  instances: 2\n  replicas: { web: 1, user: 1, catalogue: 1, cart: 2, orders: 1, shipping: 1 }\n",
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

fn stack_pids(state: &Path) -> (Vec<u32>, Value) {
    let out = gameday(state, &["status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    let pids = status["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .chain(status["infra"].as_array().unwrap())
        .filter_map(|p| p["pid"].as_u64())
        .map(|p| p as u32)
        .collect();
    (pids, status)
}

fn wait_gone(pids: &[u32], timeout: Duration) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|p| pid_alive(*p)).collect();
        if alive.is_empty() || Instant::now() > deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn up_detached_then_down_from_another_shell_leaves_no_process_and_frees_the_port() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let scenario = small_scenario(dir.path());
    let up = gameday(&state, &["up", "--detach", "--scenario", &scenario]);
    let stdout = String::from_utf8_lossy(&up.stdout).into_owned();
    assert!(
        up.status.success(),
        "up failed: {stdout}\n{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert!(stdout.contains("storefront: http://127.0.0.1:"), "{stdout}");

    let (pids, status) = stack_pids(&state);
    for key in [
        "entry_url",
        "admin_token",
        "run_dir",
        "instances",
        "replicas",
        "infra",
    ] {
        assert!(!status[key].is_null(), "status --json lacks {key}");
    }
    assert_eq!(status["instances"].as_array().unwrap().len(), 2);
    assert_eq!(status["replicas"].as_array().unwrap().len(), 7);
    assert!(pids.len() >= 12, "{pids:?}");
    let entry = status["entry_url"].as_str().unwrap().to_string();
    let addr: std::net::SocketAddr = entry.trim_start_matches("http://").parse().unwrap();

    // A second `up` is refused while this one runs.
    let again = gameday(&state, &["up", "--detach", "--scenario", &scenario]);
    assert_eq!(again.status.code(), Some(1));

    let down = gameday(&state, &["down"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert_eq!(wait_gone(&pids, Duration::from_secs(5)), Vec::<u32>::new());
    assert!(
        std::net::TcpListener::bind(addr).is_ok(),
        "{addr} still taken"
    );
    let status = gameday(&state, &["status"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("No stack is up"));
}

#[test]
fn sigterm_to_a_detached_supervisor_stops_every_process_of_the_stack() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let scenario = small_scenario(dir.path());
    let up = gameday(&state, &["up", "--detach", "--scenario", &scenario]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let (pids, _) = stack_pids(&state);
    let current: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("current.json")).unwrap())
            .unwrap();
    let supervisor = current["supervisor_pid"].as_u64().unwrap() as u32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(
        wait_gone(&[supervisor], Duration::from_secs(60)),
        Vec::<u32>::new(),
        "the supervisor did not exit"
    );
    assert_eq!(wait_gone(&pids, Duration::from_secs(5)), Vec::<u32>::new());
    assert!(
        !state.join("current.json").exists(),
        "the supervisor forgets its stack on the way out"
    );
}

#[test]
fn an_invalid_target_is_refused_with_exit_code_2_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "name: bad\ntarget:\n  instances: 0\n").unwrap();
    let out = gameday(
        &dir.path().join("state"),
        &["up", "--scenario", path.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("target.instances"), "{stderr}");
}

#[test]
fn a_missing_shop_binary_is_named_with_how_to_build_it_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gameday"))
        .args(["up"])
        .env("GAMEDAY_STATE_DIR", dir.path().join("state"))
        .env("GAMEDAY_SHOP_BIN_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("shop-web") && stderr.contains("cargo build --workspace --bins"),
        "{stderr}"
    );
}

#[test]
fn validate_names_the_line_of_a_problem_and_exits_2_and_plan_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "name: bad\nload:\n  stages:\n    - { users: 10, over: 10s }\n  journeys: { browse: 0 }\n",
    )
    .unwrap();
    let out = gameday(&state, &["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.yaml:5:3: load.journeys: the weights sum to zero"),
        "{stderr}"
    );

    let smoke = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/smoke.yaml");
    let out = gameday(&state, &["validate", smoke]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = gameday(&state, &["plan", smoke]);
    assert!(out.status.success());
    let plan = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "ramp 0 -> 200 shoppers",
        "hold 200 shoppers",
        "lose a cart pod [kill-pod { service: cart, count: 1 }]",
        "would hit 1 of 2: cart-1",
        "candidates: cart-1 (i-1), cart-2 (i-2)",
        "availability at least 99.9%",
        "lose a cart pod",
    ] {
        assert!(plan.contains(expected), "plan lacks `{expected}`:\n{plan}");
    }
    assert!(!state.join("current.json").exists(), "plan started nothing");
}
