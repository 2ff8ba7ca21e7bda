//! The reference shop against real Redis, MariaDB and RabbitMQ servers.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use gameday::platform::local::infra::Server;

use crate::support::{ADMIN_TOKEN, JWT_SECRET, Stack};

const DISPATCH_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_shopper_registers_logs_in_browses_fills_a_cart_checks_out_and_the_order_is_dispatched() {
    let stack = Stack::start().await;

    // The storefront itself.
    let home = stack.http.get(stack.entry()).send().await.unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    assert!(
        home.text()
            .await
            .unwrap()
            .contains("<script src=\"/app.js\">")
    );

    let shopper = stack.shopper("ada").await;
    let (status, me) = stack.get("/api/users/me", Some(&shopper.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["email"], shopper.email.to_lowercase());

    // Browse: at least 10 categories and 1,000 products were seeded.
    let (status, categories) = stack.get("/api/catalogue/categories", None).await;
    assert_eq!(status, StatusCode::OK);
    let categories = categories.as_array().unwrap().clone();
    assert!(categories.len() >= 10, "{categories:?}");
    let (_, all) = stack.get("/api/catalogue/products?page=1", None).await;
    assert!(all["total"].as_i64().unwrap() >= 1000, "{all}");
    let slug = categories[2]["slug"].as_str().unwrap();
    let (status, page) = stack
        .get(
            &format!("/api/catalogue/products?category={slug}&page=2"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let products = page["products"].as_array().unwrap();
    assert!(!products.is_empty());
    assert!(products.iter().all(|p| p["category"] == slug));
    let first = products[0]["sku"].as_str().unwrap().to_string();
    let second = products[1]["sku"].as_str().unwrap().to_string();
    let (status, detail) = stack
        .get(&format!("/api/catalogue/products/{first}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // A second read is served from the cache and is the same.
    let (_, again) = stack
        .get(&format!("/api/catalogue/products/{first}"), None)
        .await;
    assert_eq!(detail, again);

    // Cart: setting a quantity twice is idempotent.
    stack.add_to_cart(&shopper, &first, 2).await;
    stack.add_to_cart(&shopper, &first, 2).await;
    stack.add_to_cart(&shopper, &second, 1).await;
    let (_, cart) = stack.get("/api/cart", Some(&shopper.token)).await;
    assert_eq!(cart["lines"].as_array().unwrap().len(), 2, "{cart}");
    let unit = detail["price_cents"].as_i64().unwrap();
    let first_line = cart["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["sku"] == first.as_str())
        .unwrap()
        .clone();
    assert_eq!(first_line["qty"], 2);
    assert_eq!(first_line["line_total_cents"].as_i64().unwrap(), 2 * unit);
    let expected_total: i64 = cart["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line_total_cents"].as_i64().unwrap())
        .sum();
    assert_eq!(cart["total_cents"].as_i64().unwrap(), expected_total);

    // Checkout.
    let (status, order, headers) = stack.checkout(&shopper, "journey-1").await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["status"], "PAID");
    assert_eq!(order["total_cents"].as_i64().unwrap(), expected_total);
    assert!(headers.get("x-upstream-served-by").is_some());
    let order_id = order["order_id"].as_str().unwrap().to_string();

    // The cart was spent.
    let (_, cart) = stack.get("/api/cart", Some(&shopper.token)).await;
    assert_eq!(cart["lines"].as_array().unwrap().len(), 0);

    stack
        .wait_for_status(&shopper, &order_id, "DISPATCHED", DISPATCH_TIMEOUT)
        .await;
    let (status, shipment) = stack
        .get(&format!("/api/shipping/{order_id}"), Some(&shopper.token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shipment["dispatched"], true, "{shipment}");
    let (_, history) = stack.get("/api/orders", Some(&shopper.token)).await;
    assert_eq!(history.as_array().unwrap().len(), 1);

    let audit = stack.audit().await;
    assert_eq!(audit["accepted"], 1, "{audit}");
    assert_eq!(audit["paid"], 1);
    assert_eq!(audit["dispatched"], 1);
    assert_eq!(audit["duplicated"], 0);
    assert_eq!(audit["stuck"], json!([]));

    // Secrets never reach the logs.
    for service in ["user", "cart", "orders", "shipping", "catalogue", "web"] {
        let log = stack.log(service);
        assert!(log.contains("listening"), "{service} log: {log}");
        for secret in [
            JWT_SECRET,
            ADMIN_TOKEN,
            shopper.password.as_str(),
            shopper.token.as_str(),
        ] {
            assert!(!log.contains(secret), "{service} logged a secret");
        }
    }
}

#[tokio::test]
async fn a_replayed_or_concurrently_replayed_idempotency_key_gives_one_order() {
    let stack = Stack::start().await;
    let shopper = stack.shopper("bo").await;
    stack.add_to_cart(&shopper, "SKU-00001", 1).await;

    let (status, first, _) = stack.checkout(&shopper, "key-sequential").await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, replay, headers) = stack.checkout(&shopper, "key-sequential").await;
    assert_eq!(status, StatusCode::CREATED, "{replay}");
    assert_eq!(replay["order_id"], first["order_id"]);
    assert_eq!(
        headers
            .get("x-upstream-idempotent-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );

    // Ten requests with one new key at the same moment.
    stack.add_to_cart(&shopper, "SKU-00002", 3).await;
    let attempts = (0..10).map(|_| stack.checkout(&shopper, "key-concurrent"));
    let results = futures::future::join_all(attempts).await;
    let mut ids: Vec<Value> = Vec::new();
    for (status, body, _) in &results {
        assert_eq!(*status, StatusCode::CREATED, "{body}");
        ids.push(body["order_id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one order for one key: {ids:?}");
    assert_ne!(ids[0], first["order_id"]);

    let (_, history) = stack.get("/api/orders", Some(&shopper.token)).await;
    assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
    let audit = stack.audit().await;
    assert_eq!(audit["accepted"], 2, "{audit}");
    assert_eq!(audit["duplicated"], 0, "{audit}");
}

#[tokio::test]
async fn an_order_placed_while_shipping_is_down_is_dispatched_when_shipping_returns() {
    let mut stack = Stack::start().await;
    stack.kill_service("shipping");
    let shopper = stack.shopper("cy").await;
    stack.add_to_cart(&shopper, "SKU-00010", 1).await;
    let (status, order, _) = stack.checkout(&shopper, "while-shipping-down").await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let order_id = order["order_id"].as_str().unwrap().to_string();

    // Published and confirmed by the broker, but nobody consumes it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let audit = stack.audit().await;
        if audit["outbox_unsent"] == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "outbox never drained: {audit}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, seen) = stack
        .get(&format!("/api/orders/{order_id}"), Some(&shopper.token))
        .await;
    assert_eq!(seen["status"], "PAID");

    stack.start_service("shipping").await;
    stack
        .wait_for_status(&shopper, &order_id, "DISPATCHED", DISPATCH_TIMEOUT)
        .await;
    let audit = stack.audit().await;
    assert_eq!(audit["dispatched"], 1, "{audit}");
}

#[tokio::test]
async fn a_confirmed_order_event_survives_a_rabbitmq_crash() {
    let mut stack = Stack::start().await;
    stack.kill_service("shipping");
    let shopper = stack.shopper("di").await;
    stack.add_to_cart(&shopper, "SKU-00020", 2).await;
    let (status, order, _) = stack.checkout(&shopper, "before-broker-crash").await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let order_id = order["order_id"].as_str().unwrap().to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while stack.audit().await["outbox_unsent"] != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "outbox never drained"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // SIGKILL: only what the broker confirmed (persisted) survives.
    stack.rabbit.kill();
    // Checkout keeps working while the broker is down: the event waits in the outbox.
    stack.add_to_cart(&shopper, "SKU-00021", 1).await;
    let (status, second, _) = stack.checkout(&shopper, "while-broker-down").await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert!(stack.audit().await["outbox_unsent"].as_i64().unwrap() >= 1);

    stack.rabbit.start_again().await.expect("rabbitmq restarts");
    stack.start_service("shipping").await;
    stack
        .wait_for_status(&shopper, &order_id, "DISPATCHED", DISPATCH_TIMEOUT)
        .await;
    let second_id = second["order_id"].as_str().unwrap();
    stack
        .wait_for_status(&shopper, second_id, "DISPATCHED", DISPATCH_TIMEOUT)
        .await;
    let audit = stack.audit().await;
    assert_eq!(audit["dispatched"], 2, "{audit}");
    assert_eq!(audit["outbox_unsent"], 0, "{audit}");
}

#[tokio::test]
async fn a_shopper_can_never_read_or_change_another_shoppers_cart_or_orders() {
    let stack = Stack::start().await;
    let alice = stack.shopper("alice").await;
    let mallory = stack.shopper("mallory").await;
    stack.add_to_cart(&alice, "SKU-00005", 4).await;
    let (_, order, _) = stack.checkout(&alice, "alice-1").await;
    let order_id = order["order_id"].as_str().unwrap().to_string();
    stack.add_to_cart(&alice, "SKU-00006", 1).await;

    // Mallory's cart is her own.
    let (_, cart) = stack.get("/api/cart", Some(&mallory.token)).await;
    assert_eq!(cart["lines"], json!([]));
    let (status, _, _) = stack
        .call(
            Method::DELETE,
            "/api/cart/items/SKU-00006",
            Some(&mallory.token),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, alices) = stack.get("/api/cart", Some(&alice.token)).await;
    assert_eq!(alices["lines"].as_array().unwrap().len(), 1);

    // Alice's order is invisible to Mallory.
    let (status, body) = stack
        .get(&format!("/api/orders/{order_id}"), Some(&mallory.token))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = stack
        .get(&format!("/api/shipping/{order_id}"), Some(&mallory.token))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, history) = stack.get("/api/orders", Some(&mallory.token)).await;
    assert_eq!(history, json!([]));
    // Replaying Alice's key as Mallory is Mallory's own (empty-cart) checkout.
    let (status, body, _) = stack.checkout(&mallory, "alice-1").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = stack
        .get(&format!("/api/orders/{order_id}"), Some(&alice.token))
        .await;
    assert_eq!(status, StatusCode::OK);
}

fn assert_json_error(what: &str, got: (StatusCode, Value), want: StatusCode) {
    let (status, body) = got;
    assert_eq!(status, want, "{what}: {body}");
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{what}: not a JSON error: {body}"
    );
}

#[tokio::test]
async fn bad_input_gets_a_json_4xx_never_a_500() {
    let stack = Stack::start().await;
    let shopper = stack.shopper("eve").await;
    let t = Some(shopper.token.as_str());
    let stack_ref = &stack;
    let put = |sku: &str, body: Value| {
        let path = format!("/api/cart/items/{sku}");
        let stack = stack_ref;
        async move {
            let (s, b, _) = stack.call(Method::PUT, &path, t, Some(body), &[]).await;
            (s, b)
        }
    };

    assert_json_error(
        "unknown sku in cart",
        put("NO-SUCH-SKU", json!({"qty": 1})).await,
        StatusCode::NOT_FOUND,
    );
    assert_json_error(
        "unknown sku detail",
        stack.get("/api/catalogue/products/NO-SUCH-SKU", None).await,
        StatusCode::NOT_FOUND,
    );
    assert_json_error(
        "odd sku detail",
        stack.get("/api/catalogue/products/%27%3B--", None).await,
        StatusCode::NOT_FOUND,
    );
    assert_json_error(
        "qty 0",
        put("SKU-00001", json!({"qty": 0})).await,
        StatusCode::BAD_REQUEST,
    );
    assert_json_error(
        "qty 100",
        put("SKU-00001", json!({"qty": 100})).await,
        StatusCode::BAD_REQUEST,
    );
    assert_json_error(
        "qty -1",
        put("SKU-00001", json!({"qty": -1})).await,
        StatusCode::BAD_REQUEST,
    );
    assert_json_error(
        "qty text",
        put("SKU-00001", json!({"qty": "two"})).await,
        StatusCode::BAD_REQUEST,
    );

    let malformed = stack
        .http
        .put(format!("{}/api/cart/items/SKU-00001", stack.entry()))
        .bearer_auth(&shopper.token)
        .header("content-type", "application/json")
        .body("{\"qty\": ")
        .send()
        .await
        .unwrap();
    let status = malformed.status();
    let body: Value = malformed.json().await.unwrap();
    assert_json_error("malformed JSON", (status, body), StatusCode::BAD_REQUEST);
    let (s, b, _) = stack
        .call(
            Method::POST,
            "/api/users/login",
            None,
            Some(json!({"email": 3})),
            &[],
        )
        .await;
    assert_json_error("login with a wrong shape", (s, b), StatusCode::BAD_REQUEST);

    assert_json_error(
        "cart without token",
        stack.get("/api/cart", None).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_json_error(
        "garbage token",
        stack.get("/api/cart", Some("not-a-jwt")).await,
        StatusCode::UNAUTHORIZED,
    );
    let jwt = shop_common::auth::Jwt::new(
        &shop_common::Secret::new(JWT_SECRET),
        Duration::from_secs(60),
    );
    let now = shop_common::auth::unix_now();
    let expired = jwt
        .issue_at(1, "x@example.com", now - 7200, now - 3600)
        .unwrap();
    let (status, body) = stack.get("/api/orders", Some(&expired)).await;
    assert_json_error(
        "expired token",
        (status, body.clone()),
        StatusCode::UNAUTHORIZED,
    );
    assert_eq!(body["message"], "token expired");
    let forged =
        shop_common::auth::Jwt::new(&shop_common::Secret::new("guess"), Duration::from_secs(60))
            .issue(1, "x@example.com")
            .unwrap();
    assert_json_error(
        "forged token",
        stack.get("/api/users/me", Some(&forged)).await,
        StatusCode::UNAUTHORIZED,
    );

    stack.add_to_cart(&shopper, "SKU-00001", 1).await;
    let (s, b, _) = stack.call(Method::POST, "/api/orders", t, None, &[]).await;
    assert_json_error(
        "checkout without Idempotency-Key",
        (s, b),
        StatusCode::BAD_REQUEST,
    );
    let long_key = "k".repeat(200);
    let (s, b, _) = stack.checkout(&shopper, &long_key).await;
    assert_json_error(
        "checkout with a 200-character key",
        (s, b),
        StatusCode::BAD_REQUEST,
    );

    assert_json_error(
        "audit without token",
        stack.get("/admin/orders/verify", None).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_json_error(
        "audit with a shopper token",
        stack.get("/admin/orders/verify", t).await,
        StatusCode::UNAUTHORIZED,
    );
    let (s, b, _) = stack
        .call(Method::POST, "/admin/reset", None, None, &[])
        .await;
    assert_json_error("reset without token", (s, b), StatusCode::UNAUTHORIZED);

    assert_json_error(
        "malformed order id",
        stack.get("/api/orders/nope", t).await,
        StatusCode::NOT_FOUND,
    );
    assert_json_error(
        "unknown order id",
        stack
            .get("/api/orders/0192f0c4-0000-7000-8000-000000000000", t)
            .await,
        StatusCode::NOT_FOUND,
    );
    assert_json_error(
        "page 0",
        stack.get("/api/catalogue/products?page=0", None).await,
        StatusCode::BAD_REQUEST,
    );
    assert_json_error(
        "page text",
        stack.get("/api/catalogue/products?page=two", None).await,
        StatusCode::BAD_REQUEST,
    );
    assert_json_error(
        "unknown category",
        stack
            .get("/api/catalogue/products?category=nothing", None)
            .await,
        StatusCode::NOT_FOUND,
    );
    let (s, b, _) = stack
        .call(
            Method::POST,
            "/api/users/register",
            None,
            Some(json!({"name": "x", "email": "not-an-email", "password": "long enough"})),
            &[],
        )
        .await;
    assert_json_error("register with a bad email", (s, b), StatusCode::BAD_REQUEST);
    let (s, b, _) = stack
        .call(
            Method::POST,
            "/api/users/register",
            None,
            Some(json!({"name": "x", "email": shopper.email, "password": "long enough"})),
            &[],
        )
        .await;
    assert_json_error("register twice", (s, b), StatusCode::CONFLICT);
    let (s, b, _) = stack
        .call(
            Method::POST,
            "/api/users/login",
            None,
            Some(json!({"email": shopper.email, "password": "wrong password"})),
            &[],
        )
        .await;
    assert_json_error("wrong password", (s, b), StatusCode::UNAUTHORIZED);

    // Each service answers an unknown route with a JSON 404 too.
    let cart = format!("http://{}/api/nothing", stack.addrs["cart"]);
    let res = stack.http.get(cart).send().await.unwrap();
    let status = res.status();
    assert_json_error(
        "unknown route",
        (status, res.json().await.unwrap()),
        StatusCode::NOT_FOUND,
    );

    // And none of this produced a server error.
    for service in ["user", "catalogue", "cart", "orders", "shipping"] {
        let metrics = stack
            .http
            .get(format!("http://{}/metrics", stack.addrs[service]))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !metrics.contains("status=\"500\""),
            "{service} answered 500:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn every_service_has_health_metrics_and_says_who_served() {
    let stack = Stack::start().await;
    for service in ["web", "user", "catalogue", "cart", "orders", "shipping"] {
        let base = format!("http://{}", stack.addrs[service]);
        let live = stack
            .http
            .get(format!("{base}/health/live"))
            .send()
            .await
            .unwrap();
        assert_eq!(live.status(), StatusCode::OK, "{service}");
        let served_by = live.headers()["x-served-by"].to_str().unwrap().to_string();
        assert!(
            served_by.starts_with(&format!(
                "{service}; replica={service}-1; instance=i-1; pid="
            )),
            "{served_by}"
        );
        let ready: Value = stack
            .http
            .get(format!("{base}/health/ready"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ready["status"], "ready", "{service}: {ready}");
        let metrics = stack
            .http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains(
                "shop_http_requests_total{method=\"GET\",route=\"/health/live\",status=\"200\"} 1"
            ),
            "{service}:\n{metrics}"
        );
        assert!(
            metrics.contains("shop_http_request_duration_seconds_bucket"),
            "{service}"
        );
    }
}

#[tokio::test]
async fn services_start_while_dependencies_are_down_and_become_ready_when_they_come() {
    use gameday::platform::local::shop::{Replica, SERVICES};
    let dir = tempfile::tempdir().unwrap();
    let addrs = crate::support::service_addrs();
    // Reserve the servers' ports now; start the servers later.
    let loopback = crate::support::LOOPBACK;
    let free = || gameday::platform::local::process::free_port(loopback).unwrap();
    let (redis_port, mariadb_port, rabbit_port) = (free(), free(), free());
    let mut env = gameday::platform::local::shop::ShopEnv::default();
    env.set(
        "mysql_url",
        format!("mysql://shop:shop@127.0.0.1:{mariadb_port}/shop?ssl-mode=disabled"),
    )
    .set("redis_url", format!("redis://127.0.0.1:{redis_port}/"))
    .set(
        "amqp_url",
        format!("amqp://guest:guest@127.0.0.1:{rabbit_port}/%2f"),
    )
    .set("catalogue_url", format!("http://{}", addrs["catalogue"]))
    .set("cart_url", format!("http://{}", addrs["cart"]));
    let mut replicas: Vec<Replica> = SERVICES
        .iter()
        .map(|s| {
            Replica::spawn(
                s,
                &format!("{s}-1"),
                "i-1",
                addrs[s],
                &env,
                &dir.path().join(format!("{s}.log")),
            )
            .unwrap()
        })
        .collect();
    let http = reqwest::Client::new();
    tokio::time::sleep(Duration::from_secs(2)).await;
    for r in replicas.iter_mut() {
        assert!(
            r.is_running(),
            "{} exited with its dependencies down",
            r.name
        );
        let live = http
            .get(format!("{}/health/live", r.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(live.status(), StatusCode::OK, "{} not live", r.name);
        let ready = http
            .get(format!("{}/health/ready", r.url()))
            .send()
            .await
            .unwrap();
        let want = if r.service == "web" {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        assert_eq!(
            ready.status(),
            want,
            "{} readiness with dependencies down",
            r.name
        );
    }
    let (_redis, _mariadb, _rabbit) = tokio::join!(
        gameday::platform::local::infra::Redis::start(
            dir.path().join("redis"),
            loopback,
            Some(redis_port)
        ),
        gameday::platform::local::infra::MariaDb::start(
            gameday::platform::local::infra::MariaDbOptions {
                dir: dir.path().join("mariadb"),
                ip: loopback,
                port: Some(mariadb_port),
                server_id: 1,
                replication: false,
            }
        ),
        gameday::platform::local::infra::RabbitMq::start(
            dir.path().join("rabbitmq"),
            loopback,
            Some(rabbit_port)
        ),
    );
    for r in replicas.iter_mut() {
        r.wait_ready(Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

#[tokio::test]
async fn services_reconnect_after_mariadb_and_redis_restart() {
    let mut stack = Stack::start().await;
    let shopper = stack.shopper("fay").await;
    stack.add_to_cart(&shopper, "SKU-00030", 1).await;

    stack.mariadb.kill();
    let (status, _) = stack.get("/api/users/me", Some(&shopper.token)).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a dead database is a 503, not a 500"
    );
    stack.mariadb.start_again().await.expect("mariadb restarts");
    stack.redis.kill();
    stack.redis.start_again().await.expect("redis restarts");

    // Pooled connections to the old processes are detected and replaced.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (me, _) = stack.get("/api/users/me", Some(&shopper.token)).await;
        let (cart, body) = stack.get("/api/cart", Some(&shopper.token)).await;
        if me == StatusCode::OK && cart == StatusCode::OK {
            // The cart survived the Redis restart (append-only file).
            assert_eq!(body["lines"].as_array().unwrap().len(), 1, "{body}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not recovered: me {me}, cart {cart}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, order, _) = stack.checkout(&shopper, "after-restarts").await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
}

/// The catalogue with a read replica (`mysql_read_url`, RDS's read replica
/// on AWS): its reads go to the replica, and to the writer while the
/// replica is down, with the service still ready. The "replica" here is a
/// MariaDB of its own holding a product the writer lacks, so where each
/// read went shows in what it found.
#[tokio::test]
async fn the_catalogue_reads_from_its_replica_and_from_the_writer_while_the_replica_is_down() {
    use gameday::platform::local::infra::{MariaDb, MariaDbOptions};
    use sqlx::Connection;
    let mut stack = Stack::start().await;
    let mut replica = MariaDb::start(MariaDbOptions {
        dir: stack.dir.path().join("replica"),
        ip: crate::support::LOOPBACK,
        port: None,
        server_id: 2,
        replication: false,
    })
    .await
    .expect("the replica starts");
    let mut conn = sqlx::MySqlConnection::connect(&replica.shop_url())
        .await
        .expect("the replica answers");
    for statement in shop_common::schema::STATEMENTS {
        sqlx::query(statement).execute(&mut conn).await.unwrap();
    }
    sqlx::query("INSERT INTO categories (id, slug, name) VALUES (1, 'books', 'Books')")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO products (sku, category_id, name, description, price_cents) \
         VALUES ('ONLY-ON-REPLICA', 1, 'Replica', 'read from the replica', 100)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    stack.kill_service("catalogue");
    stack
        .env
        .set_for("catalogue", "mysql_read_url", Some(replica.shop_url()));
    stack.start_service("catalogue").await;
    let (status, found) = stack
        .get("/api/catalogue/products/ONLY-ON-REPLICA", None)
        .await;
    assert_eq!(status, StatusCode::OK, "read from the replica: {found}");
    assert_eq!(found["description"], "read from the replica");
    let (status, _) = stack.get("/api/catalogue/products/SKU-00001", None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the writer's product, not on the replica: the read went to the replica"
    );

    replica.kill();
    let (status, found) = stack.get("/api/catalogue/products/SKU-00002", None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the replica down, the writer answers: {found}"
    );
    let (status, page) = stack.get("/api/catalogue/products?page=1", None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page["total"].as_i64().unwrap() >= 1000,
        "the writer's: {page}"
    );
    let ready = stack
        .http
        .get(format!("http://{}/health/ready", stack.addrs["catalogue"]))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK, "ready without its replica");
    let body: Value = ready.json().await.unwrap();
    let replica_status = body["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "mariadb-replica")
        .unwrap_or_else(|| panic!("the replica in the readiness answer: {body}"))
        .clone();
    assert_eq!(replica_status["ok"], false, "{body}");
    assert!(
        stack
            .log("catalogue")
            .contains("the read replica failed a read"),
        "the fallback is logged"
    );
}

#[tokio::test]
async fn sigterm_fails_readiness_finishes_in_flight_checkouts_and_exits_zero() {
    let mut stack = Stack::start_with(|env| {
        env.set("payment_latency", "1500ms")
            .set("drain_delay", "600ms");
    })
    .await;
    let shopper = stack.shopper("gus").await;
    stack.add_to_cart(&shopper, "SKU-00040", 1).await;
    let in_flight = stack.checkout_in_background(&shopper, "in-flight");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut replica = stack.replicas.remove("orders").unwrap();
    let ready_url = format!("{}/health/ready", replica.url());
    let http = stack.http.clone();
    let readiness = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        http.get(ready_url).send().await.map(|r| r.status())
    });
    let exit = tokio::task::spawn_blocking(move || replica.terminate(Duration::from_secs(15)))
        .await
        .unwrap();
    assert_eq!(
        readiness.await.unwrap().unwrap(),
        StatusCode::SERVICE_UNAVAILABLE,
        "readiness must fail while draining"
    );
    assert_eq!(
        in_flight.await.unwrap().unwrap().status(),
        StatusCode::CREATED,
        "the in-flight checkout finished"
    );
    let exit = exit.expect("exited within the grace period");
    assert!(exit.success(), "exit status {exit:?}");
}

#[tokio::test]
async fn a_checkout_cut_off_by_a_killed_orders_process_is_finished_by_the_shoppers_retry() {
    let mut stack = Stack::start_with(|env| {
        env.set("payment_latency", "1500ms")
            .set("request_timeout", "2s")
            .set("grace_period", "1s");
    })
    .await;
    let shopper = stack.shopper("hal").await;
    stack.add_to_cart(&shopper, "SKU-00050", 2).await;
    let cut_off = stack.checkout_in_background(&shopper, "cut-off");
    // The order is saved PENDING and the payment is under way: kill the process.
    tokio::time::sleep(Duration::from_millis(600)).await;
    stack.kill_service("orders");
    assert!(
        cut_off.await.unwrap().is_err(),
        "the shopper saw the connection drop"
    );
    stack.start_service("orders").await;
    let audit = stack.audit().await;
    assert_eq!(audit["pending"], 1, "{audit}");

    // The shopper retries with the same key until the shop answers 201.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let order = loop {
        let (status, body, _) = stack.checkout(&shopper, "cut-off").await;
        if status == StatusCode::CREATED {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never completed: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(order["status"], "PAID", "{order}");
    let id = order["order_id"].as_str().unwrap().to_string();
    stack
        .wait_for_status(&shopper, &id, "DISPATCHED", DISPATCH_TIMEOUT)
        .await;
    let audit = stack.audit().await;
    assert_eq!(
        (
            audit["accepted"].as_i64(),
            audit["pending"].as_i64(),
            audit["dispatched"].as_i64()
        ),
        (Some(1), Some(0), Some(1)),
        "{audit}"
    );
    let (_, cart) = stack.get("/api/cart", Some(&shopper.token)).await;
    assert_eq!(
        cart["lines"],
        json!([]),
        "the cart was spent by the takeover"
    );
}

/// Every route of the shop that takes a body: (method, path, owner).
const BODY_ROUTES: [(&str, &str, &str); 6] = [
    ("POST", "/api/users/register", "user"),
    ("POST", "/api/users/login", "user"),
    ("PUT", "/api/cart/items/SKU-1", "cart"),
    ("POST", "/api/orders", "orders"),
    ("POST", "/admin/orders/verify", "orders"),
    ("POST", "/admin/reset", "orders"),
];

#[tokio::test]
async fn every_oversize_body_gets_a_413_the_client_can_read_at_every_route_that_takes_one() {
    let stack = Stack::start().await;
    // A fresh connection per request, as a new user's first request is:
    // a pooled one would hide a close that resets the next request.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut failures = Vec::new();
    for mb in [3usize, 8, 32] {
        let body = vec![b'x'; mb << 20];
        for (method, path, owner) in BODY_ROUTES {
            // Through the storefront (web forwards /api and /admin) and
            // straight to the service that owns the route.
            for base in [stack.entry(), format!("http://{}", stack.addrs[owner])] {
                let method = Method::from_bytes(method.as_bytes()).unwrap();
                let sent = http
                    .request(method.clone(), format!("{base}{path}"))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                let what = format!("{method} {base}{path} with {mb} MB");
                match sent {
                    Ok(r) => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        if status != StatusCode::PAYLOAD_TOO_LARGE || json["error"] != "too_large" {
                            failures.push(format!("{what}: {status} {text}"));
                        }
                    }
                    Err(e) => failures.push(format!("{what}: no answer: {e:?}")),
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // A body within the limit still reaches its handler.
    let (status, _, _) = stack
        .call(
            Method::POST,
            "/api/users/login",
            None,
            Some(json!({"email": "nobody@example.com", "password": "wrong-password"})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
