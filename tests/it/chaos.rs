//! Faults under load, end to end on the local platform (real servers, real
//! HAProxy, the shop's replicas, goose shoppers): every fault kind is
//! injected and measured, a stop condition aborts a run with everything
//! undone, Ctrl-C in the middle of an active fault cleans up, and `inject`
//! hits a stack started by `up`.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::support::{gameday_in as gameday, processes_of};

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn summary(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Each event's kind; a server's events also name the server
/// (`server.stopped cache`).
fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let kind = e["kind"].as_str().unwrap_or_default();
            match e["fields"]["server"].as_str() {
                Some(server) if kind.starts_with("server.") => format!("{kind} {server}"),
                _ => kind.to_string(),
            }
        })
        .collect()
}

#[test]
fn every_fault_kind_under_light_load_has_a_measured_recovery_and_loses_no_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "faults",
        "name: faults
target:
  instances: 3
  boot-delay: 3s
  replicas: { web: 2, user: 2, catalogue: 2, cart: 2, orders: 2, shipping: 2 }
load:
  stages:
    - { users: 20, over: 3s }
    - { users: 20, over: 67s }
    - { users: 0, over: 2s }
  think-time: 200ms..500ms
  journeys: { browse: 40, buy: 50, abandon: 10 }
faults:
  - name: kill a cart pod
    at: 6s
    kill-pod: { service: cart, count: 1 }
  - name: terminate an instance
    at: 18s
    terminate-instance: { count: 1 }
  - name: fail over
    at: 32s
    db-failover: {}
  - name: cache outage
    at: 40s
    duration: 3s
    restart-cache: {}
  - name: broker outage
    at: 50s
    duration: 4s
    restart-broker: {}
slo:
  recovery: 60s
  failover-downtime: 2m
  lost-orders: 0
report:
  dir: reports
",
    );
    let run = dir.path().join("run");
    let out = gameday(
        dir.path(),
        &["run", &file, "--output", run.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let s = summary(&run);
    let faults = s["faults"].as_array().unwrap();
    let got: Vec<&str> = faults.iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(
        got,
        [
            "kill-pod",
            "terminate-instance",
            "db-failover",
            "restart-cache",
            "restart-broker"
        ],
        "{stderr}"
    );
    for f in faults {
        assert!(f["recovery_s"].is_f64(), "recovery measured: {f}");
        assert!(!f["targets"].as_array().unwrap().is_empty(), "{f}");
    }
    assert_eq!(s["orders"]["lost"], 0, "{}", s["orders"]);
    // Each shopper has an account of its own: no checkout finds its cart
    // emptied by another shopper's checkout.
    let checkout = s["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["step"] == "checkout")
        .unwrap();
    assert!(checkout["errors"].get("status 422").is_none(), "{checkout}");
    assert_eq!(s["orders"]["duplicated"], 0);
    assert!(s["orders"]["accepted"].as_u64().unwrap() > 0);
    assert!(s["uptime"].is_f64(), "the prober measured uptime");
    let schema = crate::support::summary_schema();
    let problems: Vec<String> = schema.iter_errors(&s).map(|e| e.to_string()).collect();
    assert!(problems.is_empty(), "{problems:?}");
    let downtime = s["slos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "failover-downtime")
        .unwrap();
    assert!(downtime["observed"].is_string(), "{downtime}");
    // The shop followed the writer to the promoted primary: the prober's
    // registrations (rows written by shop-user) succeed again afterwards.
    let all = events(&run);
    let moved_ms = all
        .iter()
        .find(|e| e["kind"] == "db.writer_moved")
        .and_then(|e| e["t_ms"].as_u64())
        .expect("a db.writer_moved event");
    let probes: Vec<Value> = std::fs::read_to_string(run.join("probe.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let writes_after = probes
        .iter()
        .filter(|p| p["path"] == "write" && p["t_ms"].as_u64() > Some(moved_ms + 2_000))
        .collect::<Vec<_>>();
    let ok_after = writes_after.iter().filter(|p| p["ok"] == true).count();
    assert!(
        !writes_after.is_empty() && ok_after * 10 >= writes_after.len() * 9,
        "{ok_after} of {} writes after the failover succeeded: {:?}",
        writes_after.len(),
        writes_after
            .iter()
            .filter(|p| p["ok"] != true)
            .take(5)
            .collect::<Vec<_>>()
    );
    // The cache and the broker were started again (their undo ran).
    let k = kinds(&all);
    for kind in [
        "server.stopped cache",
        "server.started cache",
        "server.stopped broker",
        "server.started broker",
    ] {
        assert!(k.iter().any(|x| x == kind), "no {kind} event");
    }
    let junit = std::fs::read_to_string(run.join("junit.xml")).unwrap();
    assert!(
        junit.contains("testcase name=\"fail over (db-failover)\""),
        "{junit}"
    );
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("id=\"faults\"") && html.contains("cache outage"));
    assert!(
        processes_of(dir.path()).is_empty(),
        "{:?}",
        processes_of(dir.path())
    );
    crate::support::assert_exit(out.status.code(), &s, &[0, 3], &stderr);
}

/// Issue 23: at a failover the shop drops the connections to the old
/// primary at the first broken one and retries safe work once on a fresh
/// connection, so shoppers barely see it. Each failover's failed requests,
/// as the summary counts them, stay within a bound that holds on a slow
/// machine; no order is lost or duplicated.
#[test]
fn a_failover_under_load_fails_at_most_a_few_shopper_requests() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "failover",
        "name: failover
target:
  instances: 2
  replicas: { web: 1, user: 2, catalogue: 2, cart: 2, orders: 2, shipping: 1 }
load:
  stages:
    - { users: 60, over: 3s }
    - { users: 60, over: 42s }
    - { users: 0, over: 2s }
  think-time: 100ms..300ms
  journeys: { browse: 40, buy: 50, abandon: 10 }
faults:
  - name: first failover
    at: 12s
    db-failover: {}
  - name: second failover
    at: 30s
    db-failover: {}
slo:
  failover-downtime: 2m
  lost-orders: 0
report:
  dir: reports
",
    );
    let run = dir.path().join("run");
    let out = gameday(
        dir.path(),
        &["run", &file, "--output", run.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let s = summary(&run);
    let failovers: Vec<&Value> = s["faults"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "db-failover")
        .collect();
    assert_eq!(failovers.len(), 2, "{stderr}");
    for f in &failovers {
        let errors = f["errors"].as_u64().expect("errors counted");
        assert!(errors <= 5, "{errors} failed requests at {f}; {stderr}");
    }
    assert!(
        s["orders"]["accepted"].as_u64().unwrap() > 0,
        "{}",
        s["orders"]
    );
    assert_eq!(s["orders"]["lost"], 0, "{}", s["orders"]);
    assert_eq!(s["orders"]["duplicated"], 0, "{}", s["orders"]);
    crate::support::assert_exit(out.status.code(), &s, &[0, 3], &stderr);
}

#[test]
fn a_stop_condition_aborts_the_run_with_exit_4_and_undoes_the_active_fault() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "abort",
        "name: abort
target:
  instances: 2
  replicas: { web: 1, user: 1, catalogue: 1, cart: 1, orders: 1, shipping: 1 }
load:
  stages:
    - { users: 20, over: 2s }
    - { users: 20, over: 60s }
  think-time: 100ms..300ms
  journeys: { buy: 80, abandon: 20 }
faults:
  - name: cache outage
    at: 5s
    duration: 50s
    restart-cache: {}
stop-when:
  - error-rate > 5% for 3s
slo:
  availability: 99%
report:
  dir: reports
",
    );
    let run = dir.path().join("run");
    let started = Instant::now();
    let out = gameday(
        dir.path(),
        &["run", &file, "--output", run.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    let s = summary(&run);
    assert_eq!(s["verdict"], "aborted");
    assert!(
        s["aborted_by"]
            .as_str()
            .unwrap()
            .contains("error-rate > 5% for 3s"),
        "{}",
        s["aborted_by"]
    );
    let k = kinds(&events(&run));
    let fired = k
        .iter()
        .position(|x| x == "stop.fired")
        .expect("stop.fired");
    let restarted = k
        .iter()
        .position(|x| x == "server.started cache")
        .expect("the cache came back");
    assert!(
        restarted > fired,
        "undone after the stop, not after its 50 s"
    );
    // Stopped early: the outage would have lasted until 55 s.
    assert!(
        started.elapsed() < Duration::from_secs(75),
        "{:?}",
        started.elapsed()
    );
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("id=\"aborted\""));
    assert!(processes_of(dir.path()).is_empty());
}

#[test]
fn ctrl_c_during_an_active_fault_exits_130_and_leaves_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "interrupt",
        "name: interrupt
target:
  instances: 2
  replicas: { web: 1, user: 1, catalogue: 1, cart: 1, orders: 1, shipping: 1 }
load:
  stages:
    - { users: 10, over: 60s }
  think-time: 200ms..500ms
  journeys: { browse: 100 }
faults:
  - name: broker outage
    at: 2s
    duration: 40s
    restart-broker: {}
report:
  dir: reports
",
    );
    let run = dir.path().join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gameday"))
        .args(["run", &file, "--output", run.to_str().unwrap()])
        .current_dir(dir.path())
        .env("GAMEDAY_STATE_DIR", dir.path().join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !kinds(&events(&run))
        .iter()
        .any(|k| k == "server.stopped broker")
    {
        assert!(Instant::now() < deadline, "the fault was never injected");
        assert!(child.try_wait().unwrap().is_none(), "gameday ended early");
        std::thread::sleep(Duration::from_millis(200));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let k = kinds(&events(&run));
    let stopped = k.iter().position(|x| x == "server.stopped broker").unwrap();
    assert!(
        k[stopped..].iter().any(|x| x == "server.started broker"),
        "the outage was undone before teardown: {k:?}"
    );
    assert!(k.iter().any(|x| x == "platform.stopped"));
    assert!(
        processes_of(dir.path()).is_empty(),
        "{:?}",
        processes_of(dir.path())
    );
}

#[test]
fn inject_hits_a_stack_started_by_up_and_a_lasting_fault_is_undone() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("stack");
    let up = gameday(
        dir.path(),
        &["up", "--detach", "--run-dir", stack.to_str().unwrap()],
    );
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let finish = || gameday(dir.path(), &["down"]);

    let bad = gameday(dir.path(), &["inject", "kill-pod", "--count", "1"]);
    assert_eq!(bad.status.code(), Some(2), "no service: invalid usage");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("service"));

    let hit = gameday(
        dir.path(),
        &["inject", "kill-pod", "--service", "cart", "--count", "1"],
    );
    let said = String::from_utf8_lossy(&hit.stdout).into_owned();
    assert!(
        hit.status.success() && said.contains("hit: cart-"),
        "{said}{}",
        String::from_utf8_lossy(&hit.stderr)
    );

    let outage = gameday(dir.path(), &["inject", "restart-cache", "--duration", "2s"]);
    assert!(
        outage.status.success(),
        "{}",
        String::from_utf8_lossy(&outage.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let k = kinds(&events(&stack));
        if k.iter().any(|x| x == "server.started cache")
            && k.iter().filter(|x| *x == "replica.serving").count() > 12
        {
            break;
        }
        if Instant::now() > deadline {
            finish();
            panic!("the cache or the cart replica did not come back: {k:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let down = finish();
    assert!(down.status.success());
    assert!(
        processes_of(&stack).is_empty(),
        "{:?}",
        processes_of(&stack)
    );
}
