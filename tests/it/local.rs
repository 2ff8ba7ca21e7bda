//! The local platform with real processes: HAProxy, a MariaDB primary and
//! standby, Redis, RabbitMQ and the shop's replicas on loopback instances.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::{Duration, Instant},
};

use gameday::{
    events::EventLog,
    platform::local::{LocalPlatform, process::pid_alive},
    scenario::{Autoscale, Topology},
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection, mysql::MySqlConnection};

fn small_topology() -> Topology {
    let mut t = Topology {
        instances: 2,
        boot_delay: Duration::from_secs(1),
        ..Topology::default()
    };
    for (service, n) in t.replicas.iter_mut() {
        *n = if service == "cart" { 2 } else { 1 };
    }
    t
}

async fn up(topology: Topology) -> (LocalPlatform, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let events = Arc::new(EventLog::new(Some(&dir.path().join("events.jsonl"))).unwrap());
    let platform = LocalPlatform::start(dir.path(), topology, events)
        .await
        .unwrap_or_else(|e| panic!("up: {e}"));
    (platform, dir)
}

fn served_by(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get("x-served-by")
        .map(|v| v.to_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn login(http: &reqwest::Client, entry: &str) -> String {
    let email = format!("p-{}@example.com", uuid::Uuid::new_v4().simple());
    let r = http
        .post(format!("{entry}/api/users/register"))
        .json(&json!({"name": "p", "email": email, "password": "password1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r: Value = http
        .post(format!("{entry}/api/users/login"))
        .json(&json!({"email": email, "password": "password1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_request_through_the_public_frontend_reaches_each_service() {
    let (platform, _dir) = up(small_topology()).await;
    let entry = platform.entry_url();
    let http = client();
    let token = login(&http, &entry).await;
    let cases = [
        ("/", "web"),
        ("/api/users/me", "user"),
        ("/api/catalogue/categories", "catalogue"),
        ("/api/cart", "cart"),
        ("/api/orders", "orders"),
        (
            "/api/shipping/00000000-0000-0000-0000-000000000000",
            "shipping",
        ),
    ];
    for (path, service) in cases {
        let r = http
            .get(format!("{entry}{path}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let by = served_by(r.headers());
        assert!(
            by.starts_with(&format!("{service};")),
            "{path} was served by `{by}`"
        );
    }
    // The two cart replicas both take traffic, and they run on different instances.
    let mut seen = BTreeSet::new();
    for _ in 0..8 {
        let r = http
            .get(format!("{entry}/api/cart"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        seen.insert(served_by(r.headers()));
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    let status = platform.status().await;
    let cart_instances: BTreeSet<_> = status
        .replicas
        .iter()
        .filter(|r| r.service == "cart")
        .map(|r| r.instance.clone())
        .collect();
    assert_eq!(cart_instances.len(), 2, "{:?}", status.replicas);
    for r in &status.replicas {
        let instance = status
            .instances
            .iter()
            .find(|i| Some(&i.name) == r.instance.as_ref())
            .unwrap();
        assert!(
            r.url
                .as_deref()
                .unwrap()
                .contains(instance.address.as_deref().unwrap()),
            "{} binds on its instance's address",
            r.name
        );
    }
    platform.shutdown().await;
}

#[tokio::test]
async fn after_sigkill_of_a_cart_replica_haproxy_routes_around_it_within_two_seconds() {
    let (platform, _dir) = up(small_topology()).await;
    let entry = platform.entry_url();
    let http = client();
    let token = login(&http, &entry).await;
    let killed = platform.kill_replicas("cart", 1).await.unwrap();
    let killed_at = Instant::now();
    let victim = killed[0].clone();

    let mut ok = 0;
    let mut failed = Vec::new();
    let mut last_seen_victim = None;
    // Bounded: 3 s of requests.
    while killed_at.elapsed() < Duration::from_secs(3) {
        match http
            .get(format!("{entry}/api/cart"))
            .bearer_auth(&token)
            .send()
            .await
        {
            Ok(r) if r.status() == StatusCode::OK => {
                ok += 1;
                if served_by(r.headers()).contains(&format!("replica={victim};")) {
                    last_seen_victim = Some(killed_at.elapsed());
                }
            }
            Ok(r) => failed.push(r.status().to_string()),
            Err(e) => failed.push(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ok > 50, "only {ok} requests succeeded");
    assert!(
        failed.is_empty(),
        "requests failed after the kill: {failed:?}"
    );
    assert!(
        last_seen_victim.is_none_or(|t| t < Duration::from_secs(2)),
        "the killed replica was still served at {last_seen_victim:?}"
    );
    let servers = platform.lb().servers().await.unwrap();
    assert!(
        !servers.iter().any(|s| s.server == victim && s.is_up()),
        "{victim} still UP: {servers:?}"
    );

    // Like a pod, it is replaced on its instance.
    platform
        .wait_all_serving(Duration::from_secs(30))
        .await
        .unwrap();
    let status = platform.status().await;
    assert_eq!(
        status
            .replicas
            .iter()
            .filter(|r| r.service == "cart")
            .count(),
        2
    );
    assert!(!status.replicas.iter().any(|r| r.name == victim));
    platform.shutdown().await;
}

#[tokio::test]
async fn a_terminated_instance_is_replaced_with_a_new_address_and_its_replicas_serve_again() {
    // Two replicas of everything over two instances: one instance can carry the shop.
    let topology = Topology {
        instances: 2,
        boot_delay: Duration::from_secs(1),
        ..Topology::default()
    };
    let (platform, dir) = up(topology).await;
    let before = platform.status().await;
    let victim = before.instances[0].clone();
    let lost: Vec<_> = before
        .replicas
        .iter()
        .filter(|r| r.instance.as_ref() == Some(&victim.name))
        .cloned()
        .collect();
    assert!(!lost.is_empty());
    let replacement = platform.terminate_instance(&victim.name).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for r in &lost {
        assert!(
            !pid_alive(r.details["pid"].as_u64().unwrap() as u32),
            "{} survived its instance",
            r.name
        );
    }
    // The other instance keeps the shop up meanwhile.
    let http = client();
    let r = http
        .get(format!("{}/api/catalogue/categories", platform.entry_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    platform
        .wait_all_serving(Duration::from_secs(60))
        .await
        .unwrap();
    let after = platform.status().await;
    let new = after
        .instances
        .iter()
        .find(|i| i.name == replacement)
        .unwrap();
    assert_ne!(new.address, victim.address);
    let replaced: BTreeMap<String, usize> = after
        .replicas
        .iter()
        .filter(|r| r.instance.as_ref() == Some(&replacement))
        .fold(BTreeMap::new(), |mut m, r| {
            *m.entry(r.service.clone()).or_default() += 1;
            m
        });
    let expected: BTreeMap<String, usize> = lost.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.service.clone()).or_default() += 1;
        m
    });
    assert_eq!(replaced, expected);
    assert!(
        after
            .replicas
            .iter()
            .filter(|r| r.instance.as_ref() == Some(&replacement))
            .all(|r| r.serving)
    );
    let events = gameday::events::read_events(&dir.path().join("events.jsonl")).unwrap();
    let kinds: Vec<String> = events.iter().map(|e| e.kind.name()).collect();
    for kind in [
        "instance.terminated",
        "instance.launching",
        "instance.running",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "no {kind} event in {kinds:?}"
        );
    }
    platform.shutdown().await;
}

#[tokio::test]
async fn after_a_database_failover_writes_succeed_where_the_writer_file_points_and_no_acknowledged_write_is_missing()
 {
    let (platform, _dir) = up(small_topology()).await;
    // A client that re-reads the writer file before each connection, as the
    // shop does (and as an RDS client re-resolves the endpoint's name).
    let writer_file = platform.writer_file().to_path_buf();
    let writer_url = move || {
        let text = std::fs::read_to_string(&writer_file).unwrap();
        format!("mysql://shop:shop@{}/shop?ssl-mode=disabled", text.trim())
    };
    let before = platform.writer_addr().unwrap();
    let mut conn = MySqlConnection::connect(&writer_url()).await.unwrap();
    sqlx::query("CREATE TABLE probe (id BIGINT PRIMARY KEY) ENGINE=InnoDB")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);

    let writer = tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut failures = 0u32;
        let mut conn: Option<MySqlConnection> = None;
        let started = Instant::now();
        let mut id = 0i64;
        // Bounded: at most 40 s or 600 acknowledged writes.
        while started.elapsed() < Duration::from_secs(40) && acked.len() < 600 {
            if conn.is_none() {
                let url = writer_url();
                conn = tokio::time::timeout(Duration::from_secs(1), MySqlConnection::connect(&url))
                    .await
                    .ok()
                    .and_then(Result::ok);
            }
            let Some(c) = conn.as_mut() else {
                failures += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            id += 1;
            match tokio::time::timeout(
                Duration::from_secs(2),
                sqlx::query("INSERT INTO probe (id) VALUES (?)")
                    .bind(id)
                    .execute(&mut *c),
            )
            .await
            {
                Ok(Ok(_)) => acked.push((id, started.elapsed())),
                _ => {
                    failures += 1;
                    conn = None;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (acked, failures)
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = platform.failover_database(false).await.unwrap();
    let (acked, failures) = writer.await.unwrap();
    assert!(
        acked.len() >= 600,
        "only {} writes acknowledged ({failures} failures)",
        acked.len()
    );

    let after = platform.writer_addr().unwrap();
    assert_ne!(after, before, "the writer file still names the old primary");
    let mut conn =
        MySqlConnection::connect(&format!("mysql://shop:shop@{after}/shop?ssl-mode=disabled"))
            .await
            .unwrap();
    let stored: BTreeSet<i64> = sqlx::query_scalar("SELECT id FROM probe")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let missing: Vec<i64> = acked
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !stored.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged writes lost in the failover: {missing:?}"
    );
    assert_ne!(report.new_primary, report.old_primary);
    let status = platform.status().await;
    assert!(
        !status.infra.iter().any(|i| i.name == "mariadb-standby"),
        "no standby until one is rebuilt"
    );
    let primary = status.infra.iter().find(|i| i.name == "mariadb-primary");
    assert_eq!(
        primary.and_then(|p| p.address.clone()),
        Some(after.to_string()),
        "the writer file names the promoted primary"
    );
    // Downtime as a writer saw it: the longest pause between two acknowledged writes.
    let gap = acked
        .windows(2)
        .map(|w| w[1].1 - w[0].1)
        .max()
        .unwrap_or_default();
    println!(
        "failover: promoted after {} ms, writer moved after {} ms; longest pause between acknowledged writes {} ms; {failures} failed writes",
        report.promoted_ms,
        report.writer_moved_ms,
        gap.as_millis()
    );
    platform.shutdown().await;
}

#[tokio::test]
async fn the_autoscaler_adds_a_replica_when_cpu_crosses_its_target_and_logs_every_step() {
    let mut topology = small_topology();
    topology.autoscale.insert(
        "catalogue".into(),
        Autoscale {
            min: 1,
            max: 2,
            cpu_percent: 5.0,
        },
    );
    let (platform, dir) = up(topology).await;
    let entry = platform.entry_url();
    let http = client();
    // Load on the catalogue, bounded to 40 s, until a second replica serves.
    let started = Instant::now();
    let mut scaled = false;
    while started.elapsed() < Duration::from_secs(40) {
        let batch = (0..20).map(|i| {
            http.get(format!(
                "{entry}/api/catalogue/products?page={}",
                1 + i % 40
            ))
            .send()
        });
        futures::future::join_all(batch).await;
        let status = platform.status().await;
        if status
            .replicas
            .iter()
            .filter(|r| r.service == "catalogue" && r.serving)
            .count()
            >= 2
        {
            scaled = true;
            break;
        }
    }
    assert!(scaled, "the catalogue never scaled out");
    // The events as written to events.jsonl.
    let events: Vec<Value> = gameday::events::read_events(&dir.path().join("events.jsonl"))
        .unwrap()
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    let at = |kind: &str, pred: &dyn Fn(&Value) -> bool| {
        events
            .iter()
            .find(|e| e["kind"] == kind && pred(&e["fields"]))
            .and_then(|e| e["t_ms"].as_u64())
    };
    let signal = at("autoscale.signal", &|f| f["service"] == "catalogue").expect("signal event");
    let decision = at("autoscale.decision", &|f| {
        f["service"] == "catalogue" && f["to"] == 2
    })
    .expect("decision event");
    let started_ms = at("replica.started", &|f| {
        f["service"] == "catalogue" && f["scale_out"] == true
    })
    .expect("scale-out start event");
    let new_name = events
        .iter()
        .find(|e| e["kind"] == "replica.started" && e["fields"]["scale_out"] == true)
        .unwrap()["fields"]["replica"]
        .clone();
    let ready = at("replica.ready", &|f| f["replica"] == new_name).expect("ready event");
    let serving = at("replica.serving", &|f| f["replica"] == new_name).expect("serving event");
    assert!(
        signal <= decision && decision <= started_ms && started_ms <= ready && ready <= serving,
        "{signal} {decision} {started_ms} {ready} {serving}"
    );
    println!("scale-out: signal to serving {} ms", serving - signal);
    platform.shutdown().await;
}

#[tokio::test]
async fn the_shop_keeps_working_after_redis_and_rabbitmq_restart() {
    let (platform, _dir) = up(small_topology()).await;
    let entry = platform.entry_url();
    let http = client();
    let token = login(&http, &entry).await;
    let put = |sku: &'static str| {
        http.put(format!("{entry}/api/cart/items/{sku}"))
            .bearer_auth(&token)
            .json(&json!({"qty": 1}))
            .send()
    };
    assert_eq!(put("SKU-00001").await.unwrap().status(), StatusCode::OK);
    platform.restart_cache().await.unwrap();
    platform.restart_broker().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if put("SKU-00002")
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cart never recovered after the restarts"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cart: Value = http
        .get(format!("{entry}/api/cart"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        cart["lines"].as_array().unwrap().len(),
        2,
        "the cart survived the Redis restart: {cart}"
    );
    let order = http
        .post(format!("{entry}/api/orders"))
        .bearer_auth(&token)
        .header("Idempotency-Key", "after-restarts")
        .send()
        .await
        .unwrap();
    assert_eq!(order.status(), StatusCode::CREATED);
    platform.shutdown().await;
}

/// HAProxy keeps its connections to the replicas and reuses them: with
/// servers added at run time (`add server`), HAProxy 2.6 opened a new TCP
/// connection to a replica for every request.
#[tokio::test]
async fn the_balancer_reuses_its_connections_to_the_replicas() {
    let (platform, _dir) = up(small_topology()).await;
    let entry = platform.entry_url();
    let http = client();
    for i in 0..60 {
        let r = http
            .get(format!("{entry}/api/catalogue/products?page={}", 1 + i % 5))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let stats = platform.lb().stats().await.unwrap();
    let row = stats
        .iter()
        .find(|r| r["pxname"] == "be_catalogue" && r["svname"] == "BACKEND")
        .expect("a be_catalogue backend");
    let number = |name: &str| row[name].parse::<u64>().unwrap_or(0);
    let (connects, reuses) = (number("connect"), number("reuse"));
    assert!(
        reuses >= 40,
        "60 requests over one client connection: {connects} new connections to the replica, {reuses} reused"
    );
    platform.shutdown().await;
}
