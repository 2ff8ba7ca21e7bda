//! A whole reference shop for one test: real Redis, MariaDB and RabbitMQ
//! servers, one replica of each service (web with its API proxy, so the
//! storefront URL is the entry point), all stopped when the `Stack` drops.

#![allow(dead_code)]

/// moto's server, started as the aws platform's own tests start it.
#[allow(unused_imports)]
pub use gameday_test_support::moto as moto_server;

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use gameday::platform::local::{
    infra::{MariaDb, MariaDbOptions, RabbitMq, Redis},
    process::free_port,
    shop::{Replica, SERVICES, ShopEnv},
};
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::{Value, json};

pub const ADMIN_TOKEN: &str = "test-admin-token-7d1f";
pub const JWT_SECRET: &str = "test-jwt-secret-93ab";
pub const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Stack {
    pub redis: Redis,
    pub mariadb: MariaDb,
    pub rabbit: RabbitMq,
    pub replicas: HashMap<&'static str, Replica>,
    pub addrs: HashMap<&'static str, SocketAddr>,
    pub env: ShopEnv,
    pub http: reqwest::Client,
    // Last, so the servers above stop before their data disappears.
    pub dir: tempfile::TempDir,
}

/// Starts the three servers at once.
pub async fn start_infra(dir: &std::path::Path) -> (Redis, MariaDb, RabbitMq) {
    let (redis_dir, rabbit_dir) = (dir.join("redis"), dir.join("rabbitmq"));
    let (redis, mariadb, rabbit) = tokio::join!(
        Redis::start(&redis_dir, LOOPBACK, None),
        MariaDb::start(MariaDbOptions {
            dir: dir.join("mariadb"),
            ip: LOOPBACK,
            port: None,
            server_id: 1,
            replication: false,
        }),
        RabbitMq::start(&rabbit_dir, LOOPBACK, None),
    );
    (
        redis.expect("redis starts"),
        mariadb.expect("mariadb starts"),
        rabbit.expect("rabbitmq starts"),
    )
}

pub fn shop_env(
    redis: &Redis,
    mariadb: &MariaDb,
    rabbit: &RabbitMq,
    addrs: &HashMap<&'static str, SocketAddr>,
) -> ShopEnv {
    let mut env = ShopEnv::default();
    env.set("mysql_url", mariadb.shop_url())
        .set("redis_url", redis.url())
        .set("amqp_url", rabbit.url())
        .set("admin_token", ADMIN_TOKEN)
        .set("jwt_secret", JWT_SECRET)
        .set("payment_latency", "5ms")
        .set("stuck_after", "30s")
        .set("relay_interval", "100ms")
        .set("proxy_api", "true");
    env.set_service_urls(|service| format!("http://{}", addrs[service]));
    env
}

pub fn service_addrs() -> HashMap<&'static str, SocketAddr> {
    SERVICES
        .iter()
        .map(|s| {
            (
                *s,
                SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("free port")),
            )
        })
        .collect()
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(|_| {}).await
    }

    /// Starts everything; `tweak` may change the services' environment.
    pub async fn start_with(tweak: impl FnOnce(&mut ShopEnv)) -> Stack {
        let dir = tempfile::tempdir().expect("temp dir");
        let (redis, mariadb, rabbit) = start_infra(dir.path()).await;
        let addrs = service_addrs();
        let mut env = shop_env(&redis, &mariadb, &rabbit, &addrs);
        tweak(&mut env);
        let mut stack = Stack {
            redis,
            mariadb,
            rabbit,
            replicas: HashMap::new(),
            addrs,
            env,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
            dir,
        };
        for service in SERVICES {
            stack.spawn_service(service);
        }
        for service in SERVICES {
            stack.wait_ready(service).await;
        }
        stack
    }

    /// Starts one service's replica without waiting for it.
    pub fn spawn_service(&mut self, service: &'static str) {
        let log = self.dir.path().join("logs").join(format!("{service}.log"));
        let replica = Replica::spawn(
            service,
            &format!("{service}-1"),
            "i-1",
            self.addrs[service],
            &self.env.for_service(service),
            &log,
        )
        .expect("service starts");
        self.replicas.insert(service, replica);
    }

    pub async fn wait_ready(&mut self, service: &'static str) {
        let replica = self.replicas.get_mut(service).expect("service was started");
        if let Err(e) = replica.wait_ready(READY_TIMEOUT).await {
            panic!("{service} not ready: {e}");
        }
    }

    pub async fn start_service(&mut self, service: &'static str) {
        self.spawn_service(service);
        self.wait_ready(service).await;
    }

    pub fn kill_service(&mut self, service: &'static str) {
        if let Some(mut r) = self.replicas.remove(service) {
            r.kill();
        }
    }

    pub fn entry(&self) -> String {
        format!("http://{}", self.addrs["web"])
    }

    pub fn log(&self, service: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("logs").join(format!("{service}.log")))
            .unwrap_or_default()
    }

    /// A request through the storefront; returns status, JSON body (Null if
    /// none) and headers.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value, HeaderMap) {
        let mut req = self.http.request(method, format!("{}{path}", self.entry()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap_or_default();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json, headers)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let (s, b, _) = self.call(Method::GET, path, token, None, &[]).await;
        (s, b)
    }

    /// Registers and logs in a new shopper.
    pub async fn shopper(&self, name: &str) -> Shopper {
        let email = format!("{name}-{}@example.com", uuid::Uuid::new_v4().simple());
        let password = "correct horse battery";
        let (status, body, _) = self
            .call(
                Method::POST,
                "/api/users/register",
                None,
                Some(json!({"name": name, "email": email, "password": password})),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "register: {body}");
        let (status, body, _) = self
            .call(
                Method::POST,
                "/api/users/login",
                None,
                Some(json!({"email": email, "password": password})),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login: {body}");
        Shopper {
            token: body["token"].as_str().expect("token").to_string(),
            email,
            password: password.to_string(),
        }
    }

    /// Puts `qty` of `sku` in the shopper's cart.
    pub async fn add_to_cart(&self, shopper: &Shopper, sku: &str, qty: u32) {
        let (status, body, _) = self
            .call(
                Method::PUT,
                &format!("/api/cart/items/{sku}"),
                Some(&shopper.token),
                Some(json!({"qty": qty})),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "add to cart: {body}");
    }

    /// Starts a checkout straight at the orders replica, in the background.
    pub fn checkout_in_background(
        &self,
        shopper: &Shopper,
        key: &str,
    ) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
        let (http, token, key) = (self.http.clone(), shopper.token.clone(), key.to_string());
        let url = format!("http://{}/api/orders", self.addrs["orders"]);
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .send()
                .await
        })
    }

    pub async fn checkout(&self, shopper: &Shopper, key: &str) -> (StatusCode, Value, HeaderMap) {
        self.call(
            Method::POST,
            "/api/orders",
            Some(&shopper.token),
            None,
            &[("Idempotency-Key", key)],
        )
        .await
    }

    pub async fn audit(&self) -> Value {
        let (status, body, _) = self
            .call(
                Method::GET,
                "/admin/orders/verify",
                Some(ADMIN_TOKEN),
                None,
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "audit: {body}");
        body
    }

    /// Polls the order until its status is `want`, or panics after `timeout`.
    pub async fn wait_for_status(
        &self,
        shopper: &Shopper,
        order_id: &str,
        want: &str,
        timeout: Duration,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = Value::Null;
        while tokio::time::Instant::now() < deadline {
            let (status, body) = self
                .get(&format!("/api/orders/{order_id}"), Some(&shopper.token))
                .await;
            if status == StatusCode::OK && body["status"] == want {
                return;
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let tail = |service: &str| {
            let log = self.log(service);
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(25)..].join("\n")
        };
        panic!(
            "order {order_id} never reached {want}; last seen {last}\n--- orders log ---\n{}\n--- shipping log ---\n{}",
            tail("orders"),
            tail("shipping")
        );
    }
}

pub struct Shopper {
    pub token: String,
    pub email: String,
    pub password: String,
}

/// The committed summary.json schema, compiled.
pub fn summary_schema() -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/summary.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("schema file"))
        .expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

/// A report opens offline: no script, and nothing loaded from anywhere
/// (SVG's xmlns names a namespace; it loads nothing).
pub fn assert_self_contained(html: &str) {
    for outside in ["<script", "src=", "<link", "@import", "url(", "<iframe"] {
        assert!(
            !html.contains(outside),
            "the report must open offline: {outside}"
        );
    }
}

/// Runs the gameday binary from `dir`, with its state directory under it.
/// From `dir`, a scenario's relative `report.dir` lands there too (servers
/// never see a relative path: mariadb resolves it against its basedir).
pub fn gameday_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gameday"))
        .args(args)
        .current_dir(dir)
        .env("GAMEDAY_STATE_DIR", dir.join("state"))
        .output()
        .expect("gameday runs")
}

/// Processes whose command line or environment mention `dir` (every server
/// and replica of a run is started with its files there).
pub fn processes_of(dir: &std::path::Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let pid = e.ok()?.file_name().to_string_lossy().into_owned();
            pid.parse::<u32>().ok()?;
            if pid == me {
                return None;
            }
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let text = String::from_utf8_lossy(&[cmd, env].concat()).into_owned();
            text.contains(&needle).then(|| {
                format!(
                    "{pid}: {}",
                    text.replace('\0', " ")
                        .chars()
                        .take(120)
                        .collect::<String>()
                )
            })
        })
        .collect()
}

/// Whether a run's only reason to be inconclusive is its saturated load
/// generator: the machine was too busy for trustworthy figures, which the
/// verdict is right to say, and which a test about something else may
/// accept (a test about the verdict itself may not).
pub fn saturated_only(summary: &Value) -> bool {
    let reasons = summary["inconclusive"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    summary["verdict"] == "inconclusive"
        && !reasons.is_empty()
        && reasons.iter().all(|r| {
            r.as_str()
                .is_some_and(|r| r.starts_with("the load generator was saturated"))
        })
}

/// Asserts a run ended with one of `wanted`, or with 5 (inconclusive)
/// because, and only because, its load generator was saturated. Says so on
/// stderr when it was.
pub fn assert_exit(code: Option<i32>, summary: &Value, wanted: &[i32], context: &str) {
    if code == Some(5) && saturated_only(summary) {
        eprintln!(
            "note: the load generator was saturated (a busy machine): {}",
            summary["inconclusive"]
        );
        return;
    }
    assert!(
        code.is_some_and(|c| wanted.contains(&c)),
        "exit code {code:?}, wanted one of {wanted:?}: {context}"
    );
}
