//! Network faults on the local platform with the real servers and a real
//! Toxiproxy: only the links a scenario names go through the proxy, a fault
//! slows (or cuts) exactly those, and its undo leaves no toxic behind.

use std::{sync::Arc, time::Duration};

use gameday::{
    chaos::{self, Rollback},
    events::EventLog,
    platform::{Platform, local::LocalPlatform, local::process::pid_alive},
    scenario::{Fault, FaultKind, NetworkEffect, PartitionMode, Schedule, Topology},
};

fn topology(links: &[(&str, &str)]) -> Topology {
    let mut t = Topology {
        instances: 1,
        ..Topology::default()
    };
    for n in t.replicas.values_mut() {
        *n = 1;
    }
    t.links = links
        .iter()
        .map(|(c, s)| (c.to_string(), s.to_string()))
        .collect();
    t
}

fn network(name: &str, to: &str, from: &str, effect: NetworkEffect) -> Fault {
    Fault {
        name: name.into(),
        kind: FaultKind::Network {
            effect,
            to: to.into(),
            from: Some(from.into()),
        },
        schedule: Schedule::At(Duration::ZERO),
        duration: Some(Duration::from_secs(60)),
    }
}

/// The median time of a few GET /health/ready of `service`'s replica
/// (a readiness check runs `SELECT 1` on the service's database link).
async fn ready_ms(platform: &LocalPlatform, service: &str) -> f64 {
    let url = platform
        .status()
        .await
        .replicas
        .iter()
        .find(|r| r.service == service)
        .and_then(|r| r.url.clone())
        .unwrap_or_else(|| panic!("no {service} replica"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let r = http.get(format!("{url}/health/ready")).send().await;
        assert!(r.is_ok_and(|r| r.status().is_success()), "{service} ready");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    times[2]
}

#[tokio::test]
async fn a_latency_fault_slows_only_its_link_and_the_rollback_leaves_no_toxic() {
    let dir = tempfile::tempdir().unwrap();
    let events = Arc::new(EventLog::new(Some(&dir.path().join("events.jsonl"))).unwrap());
    let platform = LocalPlatform::start(
        dir.path(),
        topology(&[("user", "database"), ("orders", "broker")]),
        events.clone(),
    )
    .await
    .unwrap_or_else(|e| panic!("up: {e}"));
    let inventory = platform.status().await;
    let proxy = inventory
        .infra
        .iter()
        .find(|c| c.name == "toxiproxy")
        .expect("toxiproxy runs when the scenario has network faults")
        .clone();
    let proxies = proxy.details["proxies"].as_object().unwrap();
    assert_eq!(
        proxies.keys().collect::<Vec<_>>(),
        ["orders→broker", "user→database"],
        "one proxy per link the faults name, no more"
    );
    let (user_before, catalogue_before) = (
        ready_ms(&platform, "user").await,
        ready_ms(&platform, "catalogue").await,
    );

    let rollback = Rollback::default();
    let latency = network(
        "slow database for user",
        "database",
        "user",
        NetworkEffect::Latency {
            latency: Duration::from_millis(300),
            jitter: Duration::ZERO,
        },
    );
    let injected = chaos::apply(&platform, &events, &rollback, &latency)
        .await
        .unwrap_or_else(|e| panic!("inject: {e}"));
    assert_eq!(injected.targets.len(), 1);
    assert_eq!(injected.targets[0].id, "user→database");
    let partition = network(
        "orders cut off from the broker",
        "broker",
        "orders",
        NetworkEffect::Partition {
            mode: PartitionMode::Hang,
        },
    );
    chaos::apply(&platform, &events, &rollback, &partition)
        .await
        .unwrap_or_else(|e| panic!("inject: {e}"));
    assert_eq!(platform.toxics_left().await.unwrap().len(), 3);

    let (user_during, catalogue_during) = (
        ready_ms(&platform, "user").await,
        ready_ms(&platform, "catalogue").await,
    );
    assert!(
        user_during >= user_before + 290.0,
        "user's readiness (SELECT 1) took {user_during:.0} ms with 300 ms on its link, {user_before:.0} ms before"
    );
    assert!(
        catalogue_during < catalogue_before + 250.0,
        "catalogue's database link is direct: {catalogue_during:.0} ms, {catalogue_before:.0} ms before"
    );
    // orders does without the broker (the outbox): still ready, quickly.
    assert!(ready_ms(&platform, "orders").await < 1000.0);

    // What Ctrl-C, a stop rule and the end of a run do: undo everything.
    rollback.run_all(&platform, &events).await;
    assert_eq!(platform.toxics_left().await.unwrap(), Vec::new());
    let user_after = ready_ms(&platform, "user").await;
    assert!(
        user_after < user_before + 150.0,
        "healed: {user_after:.0} ms, {user_before:.0} ms before"
    );

    let pid = proxy.details["pid"].as_u64().unwrap() as u32;
    platform.shutdown().await;
    assert!(!pid_alive(pid), "toxiproxy stopped with the stack");
}

#[tokio::test]
async fn without_network_faults_nothing_goes_through_a_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let events = Arc::new(EventLog::new(None).unwrap());
    let platform = LocalPlatform::start(dir.path(), topology(&[]), events)
        .await
        .unwrap_or_else(|e| panic!("up: {e}"));
    let inventory = platform.status().await;
    assert!(inventory.infra.iter().all(|c| c.name != "toxiproxy"));
    let fault = network(
        "slow",
        "database",
        "user",
        NetworkEffect::Latency {
            latency: Duration::from_millis(10),
            jitter: Duration::ZERO,
        },
    );
    assert!(
        matches!(platform.supports(&fault), gameday::platform::Support::No { why } if why.contains("not routed through Toxiproxy")),
    );
    platform.shutdown().await;
}

fn game_day_scenario(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("network-short.yaml");
    std::fs::write(
        &path,
        "name: network-short
target:
  instances: 2
  replicas: { web: 1, user: 1, catalogue: 1, cart: 1, orders: 1, shipping: 1 }
load:
  stages:
    - { users: 20, over: 3s }
    - { users: 20, over: 37s }
    - { users: 0, over: 2s }
  think-time: 100ms..300ms
  journeys: { browse: 30, buy: 60, abandon: 10 }
faults:
  - name: a slow database for orders
    at: 8s
    duration: 10s
    network-latency: { to: database, from: orders, latency: 200ms }
  - name: orders cut off from the broker
    at: 24s
    duration: 8s
    network-partition: { to: broker, from: orders }
slo:
  lost-orders: 0
report:
  dir: reports
",
    )
    .unwrap();
    path
}

/// p50 (ms) of `steps` over the seconds in `range`, from the run's record.
fn p50(timeline: &gameday::record::Timeline, steps: &[String], range: std::ops::Range<u64>) -> f64 {
    let mut all = gameday::record::new_histogram();
    for s in steps {
        if let Some(h) = timeline.merged(s, false, range.clone()) {
            all.add(&h).unwrap();
        }
    }
    assert!(!all.is_empty(), "no requests of {steps:?} in {range:?}");
    all.value_at_quantile(0.5) as f64 / 1000.0
}

#[test]
fn a_game_day_of_network_faults_slows_the_database_steps_only_while_it_lasts_and_loses_no_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = game_day_scenario(dir.path());
    let out = crate::support::gameday_in(dir.path(), &["run", file.to_str().unwrap()]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let run = std::fs::read_dir(dir.path().join("reports"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("summary.json").is_file())
        .unwrap_or_else(|| panic!("no run directory\n{stdout}\n{stderr}"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    crate::support::assert_exit(
        out.status.code(),
        &summary,
        &[0],
        &format!("{stdout}\n{stderr}"),
    );

    // The latency fault: the database-backed steps of orders, slower by
    // at least the latency while it lasted, and not after.
    let faults = summary["faults"].as_array().unwrap();
    let slow = &faults[0];
    assert_eq!(slow["targets"], serde_json::json!(["orders→database"]));
    let link = &slow["link_latency"];
    let steps: Vec<String> = serde_json::from_value(link["steps"].clone()).unwrap();
    assert!(steps.contains(&"order-status".to_string()), "{link}");
    assert!(
        link["added_p50_ms"].as_f64().unwrap() >= 200.0,
        "p50 of {steps:?} rose by less than the 200 ms injected: {link}"
    );
    let timeline = gameday::record::read_timeline(&run).unwrap();
    let (start, end) = (
        slow["injected_at_s"].as_f64().unwrap() as u64,
        slow["ended_at_s"].as_f64().unwrap().ceil() as u64,
    );
    let before = p50(&timeline, &steps, 4..start);
    let after = p50(&timeline, &steps, end + 1..end + 6);
    assert!(
        after < before + 100.0,
        "p50 of {steps:?} {after:.0} ms after the fault, {before:.0} ms before it"
    );

    // The partition: checkouts went on through the outbox; every order
    // accepted was dispatched after the heal.
    let orders = &summary["orders"];
    assert!(orders["accepted"].as_u64().unwrap() > 0, "{orders}");
    assert_eq!(orders["lost"], 0, "{orders}");
    assert_eq!(orders["accepted"], orders["dispatched"], "{orders}");
    // No request outlived the shop's deadline (15 s request timeout).
    assert!(summary["latency_ms"]["max"].as_f64().unwrap() < 16_000.0);

    // Every toxic was removed: each network fault ended by its undo, none
    // failed, and Toxiproxy stopped with the stack.
    let events = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
    let healed = events
        .lines()
        .filter(|l| l.contains("\"fault.ended\"") && l.contains("remove its toxics"))
        .count();
    assert_eq!(healed, 2, "{events}");
    assert!(!events.contains("fault.undo_failed"), "{events}");
    let left = crate::support::processes_of(dir.path());
    assert!(left.is_empty(), "left running: {left:?}");
}
