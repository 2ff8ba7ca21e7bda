//! Checkout: Idempotency-Key required; the order is saved PENDING, the
//! simulated gateway charges it, and the PAID status and its outbox event are
//! written in one transaction. A replayed key returns the same order (also
//! when replays race: the unique key (user, idempotency key) lets exactly one
//! insert win, and the losers return the winner's order). A checkout holds
//! one database connection from start to end, and runs once more on a fresh
//! one if that connection breaks under it (`Database::retry_once`): the
//! key makes the second run safe, and it finishes the order the first run
//! left PENDING instead of waiting for a takeover.

use std::time::Duration;

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use rand::Rng;
use shop_common::{
    ApiError, ApiResult,
    auth::AuthUser,
    db::is_duplicate_key,
    extract::Json,
    model::{Cart, OrderPaid},
};
use sqlx::{Connection, MySqlConnection};

use crate::{AppState, load_order};

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";

#[derive(Clone, Copy)]
pub(crate) struct PaymentGateway {
    pub latency: Duration,
    pub failure_rate: f64,
}

impl PaymentGateway {
    /// Charges the order; `false` means the card was declined.
    async fn charge(&self) -> bool {
        tokio::time::sleep(self.latency).await;
        self.failure_rate <= 0.0 || rand::rng().random::<f64>() >= self.failure_rate
    }
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<String> {
    let key = headers
        .get(IDEMPOTENCY_KEY)
        .ok_or_else(|| ApiError::bad_request("the Idempotency-Key header is required"))?
        .to_str()
        .map_err(|_| ApiError::bad_request("Idempotency-Key must be printable ASCII"))?
        .trim();
    if key.is_empty() || key.len() > 128 {
        return Err(ApiError::bad_request(
            "Idempotency-Key must be 1 to 128 characters",
        ));
    }
    Ok(key.to_string())
}

async fn existing_order(
    conn: &mut MySqlConnection,
    user_id: u64,
    key: &str,
) -> ApiResult<Option<String>> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT id FROM orders WHERE user_id = ? AND idempotency_key = ?")
            .bind(user_id)
            .bind(key)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(id,)| id))
}

/// Answers a replay with the original order. If the original request is
/// still charging, waits (bounded) for it to settle. `own` says this
/// request created the order in a run whose connection broke: nobody else
/// is finishing it, so it takes over at once.
async fn replay(
    state: &AppState,
    conn: &mut MySqlConnection,
    user: &AuthUser,
    order_id: &str,
    own: bool,
) -> ApiResult<Response> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let order = load_order(conn, user.id, order_id)
            .await?
            .ok_or_else(|| ApiError::not_found("no such order"))?;
        if order.status != "PENDING" {
            return Ok(respond(order, !own));
        }
        // The request that created it died before finishing (its replica was
        // killed, say): a replay older than any live request takes over.
        let age = chrono::Utc::now() - order.created_at;
        if own || age.to_std().unwrap_or_default() > state.pending_takeover {
            tracing::info!(order_id, own, "taking over a pending order");
            match complete_payment(state, conn, user, order_id, order.total_cents).await {
                Ok(()) | Err(ApiError::PaymentDeclined) => continue,
                Err(e) => return Err(e),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(respond(order, true));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Charges a PENDING order and, if this request is the one that moves it to
/// PAID, writes its event in the same transaction (the outbox) and clears the
/// cart. `WHERE status = 'PENDING'` makes exactly one request win when the
/// original request and a takeover race; the loser writes nothing.
async fn complete_payment(
    state: &AppState,
    conn: &mut MySqlConnection,
    user: &AuthUser,
    order_id: &str,
    total_cents: i64,
) -> ApiResult<()> {
    if !state.payment.charge().await {
        sqlx::query(
            "UPDATE orders SET status = 'PAYMENT_FAILED', updated_at = NOW(3) WHERE id = ? AND status = 'PENDING'",
        )
        .bind(order_id)
        .execute(&mut *conn)
        .await?;
        return Err(ApiError::PaymentDeclined);
    }
    let event = OrderPaid {
        order_id: order_id.to_string(),
        user_id: user.id,
        total_cents,
    };
    let payload = serde_json::to_string(&event).map_err(|e| ApiError::Internal(e.into()))?;
    let mut tx = conn.begin().await?;
    let moved = sqlx::query(
        "UPDATE orders SET status = 'PAID', paid_at = NOW(3), updated_at = NOW(3) WHERE id = ? AND status = 'PENDING'",
    )
    .bind(order_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if moved == 0 {
        // Another request completed (or failed) it first.
        return Ok(());
    }
    sqlx::query("INSERT INTO outbox (order_id, event_type, payload) VALUES (?, 'order.paid', ?)")
        .bind(order_id)
        .bind(&payload)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    state.relay_wakeup.notify_one();

    // The cart is spent; failing to clear it does not undo the order.
    let cleared = state
        .http
        .delete(format!("{}/api/cart", state.cart_url))
        .bearer_auth(&user.token)
        .send()
        .await;
    if let Err(e) = cleared {
        tracing::warn!(error = %e, "could not clear the cart after checkout");
    }
    Ok(())
}

fn respond(order: crate::Order, replayed: bool) -> Response {
    let status = match order.status.as_str() {
        "PAYMENT_FAILED" => StatusCode::PAYMENT_REQUIRED,
        "PENDING" => StatusCode::ACCEPTED,
        _ => StatusCode::CREATED,
    };
    let mut response = (status, Json(order)).into_response();
    if replayed {
        response
            .headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

async fn fetch_cart(state: &AppState, user: &AuthUser) -> ApiResult<Cart> {
    let response = state
        .http
        .get(format!("{}/api/cart", state.cart_url))
        .bearer_auth(&user.token)
        .send()
        .await
        .map_err(|e| ApiError::unavailable("cart", e))?;
    if !response.status().is_success() {
        return Err(ApiError::unavailable(
            "cart",
            format!("status {}", response.status()),
        ));
    }
    response
        .json()
        .await
        .map_err(|e| ApiError::unavailable("cart", e))
}

pub(crate) async fn checkout(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let key = idempotency_key(&headers)?;
    // Chosen once: a second run that finds this id under the key knows the
    // order is its own.
    let order_id = uuid::Uuid::now_v7().to_string();
    let (state, user, key, order_id) = (&state, &user, key.as_str(), order_id.as_str());
    state
        .db
        .retry_once(|| attempt(state, user, key, order_id))
        .await
}

/// One run of a checkout, on one connection.
async fn attempt(
    state: &AppState,
    user: &AuthUser,
    key: &str,
    order_id: &str,
) -> ApiResult<Response> {
    // One connection from start to end: each acquisition costs a ping when
    // the connection goes back to the pool.
    let mut conn = state.db.pool.acquire().await?;
    if let Some(id) = existing_order(&mut conn, user.id, key).await? {
        let own = id == order_id;
        return replay(state, &mut conn, user, &id, own).await;
    }
    let cart = fetch_cart(state, user).await?;
    if cart.lines.is_empty() {
        return Err(ApiError::Unprocessable("the cart is empty".into()));
    }

    // 1. The order, PENDING, with its lines.
    let mut tx = conn.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO orders (id, user_id, idempotency_key, status, total_cents) VALUES (?, ?, ?, 'PENDING', ?)",
    )
    .bind(order_id)
    .bind(user.id)
    .bind(key)
    .bind(cart.total_cents)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(e) if is_duplicate_key(&e) => {
            tx.rollback().await?;
            // A concurrent request with the same key won the race.
            let id = existing_order(&mut conn, user.id, key)
                .await?
                .ok_or_else(|| ApiError::Conflict("idempotency key in use".into()))?;
            return replay(state, &mut conn, user, &id, false).await;
        }
        Err(e) => return Err(e.into()),
    }
    let mut lines = sqlx::QueryBuilder::new(
        "INSERT INTO order_lines (order_id, sku, name, qty, unit_price_cents) ",
    );
    lines.push_values(&cart.lines, |mut b, line| {
        b.push_bind(order_id)
            .push_bind(&line.sku)
            .push_bind(&line.name)
            .push_bind(line.qty)
            .push_bind(line.unit_price_cents);
    });
    lines.build().execute(&mut *tx).await?;
    tx.commit().await?;

    complete_payment(state, &mut conn, user, order_id, cart.total_cents).await?;

    let order = load_order(&mut conn, user.id, order_id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("order vanished after commit")))?;
    Ok(respond(order, false))
}
