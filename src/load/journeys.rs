//! The shoppers' journeys through the reference shop. Every request is a
//! named step with a check on its status and body; a failed check is a
//! failed request. Latency is measured here, around goose's request and the
//! body read, and recorded into the run's recorder.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use goose::prelude::*;
use rand::Rng;
use serde_json::{Value, json};

use super::{LoadContext, Step};

/// What a shopper keeps between steps.
#[derive(Clone, Default)]
pub struct Shopper {
    token: Option<String>,
    skus: Vec<String>,
    order_id: Option<String>,
    checkouts: u64,
    /// Lines in the cart as the shop last showed them: a shopper whose
    /// items could not be added (the cart service down) does not go on to
    /// check out an empty cart.
    cart_lines: usize,
}

/// The outcome of one request: the status and body, or why it failed.
struct Outcome {
    body: Value,
    failure: Option<String>,
}

/// Names a transport error (goose's reqwest, whichever version it is).
macro_rules! transport_failure {
    ($e:expr) => {
        if $e.is_timeout() {
            "timeout".to_string()
        } else if $e.is_connect() {
            "connection refused".to_string()
        } else {
            "connection error".to_string()
        }
    };
}

/// One request: method, path, JSON body, extra headers.
struct Req<'a> {
    method: GooseMethod,
    path: &'a str,
    body: Option<Value>,
    headers: Vec<(&'static str, String)>,
}

impl<'a> Req<'a> {
    fn get(path: &'a str) -> Self {
        Self {
            method: GooseMethod::Get,
            path,
            body: None,
            headers: Vec::new(),
        }
    }
    fn send(method: GooseMethod, path: &'a str, body: Option<Value>) -> Self {
        Self {
            method,
            path,
            body,
            headers: Vec::new(),
        }
    }
    fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// Sends one request of `step`, checks it with `check`, records it.
async fn call(
    user: &mut GooseUser,
    ctx: &LoadContext,
    step: Step,
    req: Req<'_>,
    check: impl FnOnce(u16, &Value) -> Result<(), String>,
) -> Outcome {
    let Req {
        method,
        path,
        body,
        headers,
    } = req;
    let started = Instant::now();
    let outcome = async {
        let mut rb = match user.get_request_builder(&method, path) {
            Ok(rb) => rb,
            Err(e) => {
                return Outcome {
                    body: Value::Null,
                    failure: Some(format!("request: {e}")),
                };
            }
        };
        if let Some(token) = user
            .get_session_data::<Shopper>()
            .and_then(|s| s.token.clone())
        {
            rb = rb.bearer_auth(token);
        }
        for (k, v) in &headers {
            rb = rb.header(*k, v);
        }
        if let Some(b) = &body {
            rb = rb.json(b);
        }
        let request = GooseRequest::builder()
            .set_request_builder(rb)
            .name(step.name())
            .build();
        let response = match user.request(request).await {
            Ok(r) => r.response,
            Err(e) => {
                return Outcome {
                    body: Value::Null,
                    failure: Some(format!("request: {e}")),
                };
            }
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                return Outcome {
                    body: Value::Null,
                    failure: Some(transport_failure!(e)),
                };
            }
        };
        let status = response.status().as_u16();
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) => {
                return Outcome {
                    body: Value::Null,
                    failure: Some(transport_failure!(e)),
                };
            }
        };
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let failure = check(status, &body).err();
        Outcome { body, failure }
    }
    .await;
    ctx.recorder.record(
        step as usize,
        started.elapsed(),
        outcome.failure.as_deref(),
        ctx.expected_interval,
    );
    outcome
}

fn expect(status: u16, want: u16, ok: bool, what: &str) -> Result<(), String> {
    if status != want {
        Err(format!("status {status}"))
    } else if !ok {
        Err(format!("check: {what}"))
    } else {
        Ok(())
    }
}

fn shopper(user: &mut GooseUser) -> &mut Shopper {
    if user.get_session_data::<Shopper>().is_none() {
        user.set_session_data(Shopper::default());
    }
    user.get_session_data_unchecked_mut::<Shopper>()
}

pub async fn home(user: &mut GooseUser, ctx: &LoadContext) -> TransactionResult {
    call(user, ctx, Step::Home, Req::get("/"), |s, b| {
        expect(
            s,
            200,
            b.as_str().is_some_and(|t| t.contains("/app.js")),
            "storefront page",
        )
    })
    .await;
    Ok(())
}

pub async fn categories(user: &mut GooseUser, ctx: &LoadContext) -> TransactionResult {
    call(
        user,
        ctx,
        Step::Categories,
        Req::get("/api/catalogue/categories"),
        |s, b| {
            expect(
                s,
                200,
                b.as_array().is_some_and(|a| !a.is_empty()),
                "categories listed",
            )
        },
    )
    .await;
    Ok(())
}

pub async fn products(user: &mut GooseUser, ctx: &LoadContext) -> TransactionResult {
    let page = rand::rng().random_range(1..=40);
    let out = call(
        user,
        ctx,
        Step::Products,
        Req::get(&format!("/api/catalogue/products?page={page}")),
        |s, b| {
            expect(
                s,
                200,
                b["products"].as_array().is_some_and(|a| !a.is_empty()),
                "products listed",
            )
        },
    )
    .await;
    let skus: Vec<String> = out.body["products"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["sku"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if !skus.is_empty() {
        shopper(user).skus = skus;
    }
    Ok(())
}

fn pick_sku(user: &mut GooseUser, ctx: &LoadContext) -> String {
    let s = shopper(user);
    let mut rng = rand::rng();
    if s.skus.is_empty() {
        format!("SKU-{:05}", rng.random_range(1..=ctx.catalogue_size))
    } else {
        s.skus[rng.random_range(0..s.skus.len())].clone()
    }
}

pub async fn product(user: &mut GooseUser, ctx: &LoadContext) -> TransactionResult {
    let sku = pick_sku(user, ctx);
    call(
        user,
        ctx,
        Step::Product,
        Req::get(&format!("/api/catalogue/products/{sku}")),
        |s, b| expect(s, 200, b["sku"] == sku.as_str(), "the product asked for"),
    )
    .await;
    Ok(())
}

pub async fn login(user: &mut GooseUser, ctx: &LoadContext) -> TransactionResult {
    // One account per login, in order: two shoppers sharing an account
    // share a cart, and one's checkout empties the other's (a 422 that is
    // the harness's fault, not the shop's). There are as many accounts as
    // peak shoppers, so accounts are only reused after that many logins.
    let n = ctx.accounts.len().max(1);
    let account = &ctx.accounts[ctx.next_login.fetch_add(1, Ordering::Relaxed) % n];
    let out = call(
        user,
        ctx,
        Step::Login,
        Req::send(
            GooseMethod::Post,
            "/api/users/login",
            Some(json!({"email": account.0, "password": account.1})),
        ),
        |s, b| expect(s, 200, b["token"].is_string(), "a token"),
    )
    .await;
    if let Some(token) = out.body["token"].as_str() {
        shopper(user).token = Some(token.to_string());
    }
    Ok(())
}

pub async fn add_to_cart(user: &mut GooseUser, ctx: &LoadContext) -> TransactionResult {
    if shopper(user).token.is_none() {
        login(user, ctx).await?;
    }
    let items = rand::rng().random_range(1..=3);
    for _ in 0..items {
        let sku = pick_sku(user, ctx);
        let qty = rand::rng().random_range(1..=3);
        let out = call(
            user,
            ctx,
            Step::AddToCart,
            Req::send(
                GooseMethod::Put,
                &format!("/api/cart/items/{sku}"),
                Some(json!({"qty": qty})),
            ),
            |s, b| {
                expect(
                    s,
                    200,
                    b["lines"]
                        .as_array()
                        .is_some_and(|l| l.iter().any(|x| x["sku"] == sku.as_str())),
                    "the item in the cart",
                )
            },
        )
        .await;
        remember_cart(user, &out);
    }
    Ok(())
}

fn remember_cart(user: &mut GooseUser, out: &Outcome) {
    if out.failure.is_none()
        && let Some(lines) = out.body["lines"].as_array()
    {
        shopper(user).cart_lines = lines.len();
    }
}

pub async fn view_cart(user: &mut GooseUser, ctx: &LoadContext) -> TransactionResult {
    let out = call(user, ctx, Step::ViewCart, Req::get("/api/cart"), |s, b| {
        expect(s, 200, b["lines"].is_array(), "cart lines")
    })
    .await;
    remember_cart(user, &out);
    Ok(())
}

/// Checks out with an Idempotency-Key; on a 5xx or a dropped connection the
/// shopper retries once with the same key, as a real storefront would.
pub async fn checkout(user: &mut GooseUser, ctx: &LoadContext) -> TransactionResult {
    let s = shopper(user);
    s.order_id = None;
    if s.cart_lines == 0 {
        return Ok(());
    }
    s.checkouts += 1;
    let n = s.checkouts;
    let key = format!("gd-{}-{}-{n}", ctx.run_id, user.weighted_users_index);
    for attempt in 0..2 {
        let out = call(
            user,
            ctx,
            Step::Checkout,
            Req::send(GooseMethod::Post, "/api/orders", None)
                .header("Idempotency-Key", key.clone()),
            |s, b| expect(s, 201, b["order_id"].is_string(), "an order id"),
        )
        .await;
        if let Some(id) = out.body["order_id"]
            .as_str()
            .filter(|_| out.failure.is_none())
        {
            ctx.acknowledged
                .lock()
                .map(|mut ids| ids.push(id.to_string()))
                .ok();
            let s = shopper(user);
            s.order_id = Some(id.to_string());
            s.cart_lines = 0;
            return Ok(());
        }
        let retryable = out.failure.as_deref().is_some_and(is_unavailable);
        if !retryable || attempt == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// A failure that says the shop was unavailable (a 5xx, a timeout, a lost
/// connection), not that it answered otherwise (a 4xx, a 202 for an order
/// still pending, a body that failed its check): worth a retry, and part
/// of an outage.
pub fn is_unavailable(failure: &str) -> bool {
    failure.starts_with("status 5")
        || !failure.starts_with("status") && !failure.starts_with("check")
}

/// Polls the order until it is PAID or DISPATCHED (a few times at most).
pub async fn order_status(user: &mut GooseUser, ctx: &LoadContext) -> TransactionResult {
    let Some(id) = shopper(user).order_id.clone() else {
        return Ok(());
    };
    for _ in 0..5 {
        let out = call(
            user,
            ctx,
            Step::OrderStatus,
            Req::get(&format!("/api/orders/{id}")),
            |s, b| expect(s, 200, b["order_id"] == id.as_str(), "the order"),
        )
        .await;
        if matches!(out.body["status"].as_str(), Some("PAID" | "DISPATCHED"))
            || out.failure.is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

/// A goose transaction running `f` with the run's context.
pub fn transaction<F>(ctx: &Arc<LoadContext>, name: &str, f: F) -> Transaction
where
    F: for<'u> Fn(
            &'u mut GooseUser,
            Arc<LoadContext>,
        )
            -> std::pin::Pin<Box<dyn Future<Output = TransactionResult> + Send + 'u>>
        + Send
        + Sync
        + 'static,
{
    let ctx = ctx.clone();
    Transaction::new(Arc::new(move |user| f(user, ctx.clone()))).set_name(name)
}
