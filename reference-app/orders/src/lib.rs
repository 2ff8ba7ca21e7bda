//! The orders service: idempotent checkout, a simulated payment gateway, the
//! transactional outbox and its relay to RabbitMQ, the shopper's order
//! history, and the admin audit that lets gameday count lost and duplicated
//! orders instead of guessing.

mod audit;
mod checkout;
mod relay;

use std::sync::Arc;

use axum::{
    Router,
    extract::{FromRef, State},
    routing::{get, post},
};
use serde::Serialize;
use shop_common::{
    ApiError, ApiResult,
    auth::{AdminToken, AuthUser, Jwt},
    broker::Broker,
    client::http_client,
    db::Database,
    extract::{Json, Path},
    server::{Kit, Service},
};
use tokio::sync::Notify;

#[derive(Clone)]
pub(crate) struct AppState {
    db: Database,
    jwt: Jwt,
    admin: AdminToken,
    http: reqwest::Client,
    cart_url: Arc<str>,
    payment: checkout::PaymentGateway,
    relay_wakeup: Arc<Notify>,
    stuck_after: std::time::Duration,
    /// A PENDING order older than this has no live request behind it.
    pending_takeover: std::time::Duration,
}

impl FromRef<AppState> for Jwt {
    fn from_ref(s: &AppState) -> Jwt {
        s.jwt.clone()
    }
}

impl FromRef<AppState> for AdminToken {
    fn from_ref(s: &AppState) -> AdminToken {
        s.admin.clone()
    }
}

pub async fn build(kit: Kit) -> anyhow::Result<Service> {
    let settings = &kit.settings;
    if !(0.0..=1.0).contains(&settings.payment_failure_rate) {
        anyhow::bail!("payment_failure_rate must be between 0 and 1");
    }
    let db = Database::connect_lazy(settings)?;
    db.bootstrap(kit.shutdown.clone(), |_| async { Ok(()) });
    let broker = Arc::new(Broker::new(settings));
    let relay_wakeup = Arc::new(Notify::new());
    tokio::spawn(relay::run(
        db.clone(),
        broker.clone(),
        relay_wakeup.clone(),
        kit.shutdown.clone(),
        settings.relay_interval,
        settings.outbound_timeout,
    ));
    let state = AppState {
        db: db.clone(),
        jwt: kit.jwt(),
        admin: AdminToken(settings.admin_token.clone()),
        http: http_client(settings),
        cart_url: settings.cart_url.trim_end_matches('/').into(),
        payment: checkout::PaymentGateway {
            latency: settings.payment_latency,
            failure_rate: settings.payment_failure_rate,
        },
        relay_wakeup,
        stuck_after: settings.stuck_after,
        pending_takeover: settings.request_timeout + settings.grace_period,
    };
    let routes = Router::new()
        .route("/api/orders", post(checkout::checkout).get(list_orders))
        .route("/api/orders/{id}", get(get_order))
        .route(
            "/admin/orders/verify",
            get(audit::verify).post(audit::verify_ids),
        )
        .route("/admin/reset", post(audit::reset))
        .with_state(state);
    let probe: shop_common::health::ReadyProbe = Arc::new(move || {
        let (db, broker) = (db.clone(), broker.clone());
        Box::pin(async move {
            // The broker is optional for readiness: paid orders wait in the
            // outbox until it is back.
            vec![db.check().await, broker.check(false).await]
        })
    });
    Ok(Service { routes, probe })
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct OrderLine {
    sku: String,
    name: String,
    qty: u32,
    unit_price_cents: i64,
}

#[derive(Debug, Serialize)]
pub struct Order {
    order_id: String,
    status: String,
    total_cents: i64,
    created_at: chrono::DateTime<chrono::Utc>,
    lines: Vec<OrderLine>,
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: String,
    status: String,
    total_cents: i64,
    created_at: chrono::DateTime<chrono::Utc>,
}

pub(crate) fn valid_order_id(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok()
}

/// The order with this id if it belongs to `user_id`.
pub(crate) async fn load_order(
    conn: &mut sqlx::MySqlConnection,
    user_id: u64,
    id: &str,
) -> ApiResult<Option<Order>> {
    let row: Option<OrderRow> = sqlx::query_as(
        "SELECT id, status, total_cents, created_at FROM orders WHERE id = ? AND user_id = ?",
    )
    .bind(id)
    .bind(user_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let lines = sqlx::query_as(
        "SELECT sku, name, qty, unit_price_cents FROM order_lines WHERE order_id = ? ORDER BY sku",
    )
    .bind(&row.id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Some(Order {
        order_id: row.id,
        status: row.status,
        total_cents: row.total_cents,
        created_at: row.created_at,
        lines,
    }))
}

async fn get_order(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Order>> {
    if !valid_order_id(&id) {
        return Err(ApiError::not_found("no such order"));
    }
    let (pool, user_id, id) = (&state.db.pool, user.id, id.as_str());
    state
        .db
        .retry_once(|| async move {
            // One connection for the order and its lines.
            load_order(&mut *pool.acquire().await?, user_id, id).await
        })
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no such order"))
}

#[derive(Serialize)]
struct OrderSummary {
    order_id: String,
    status: String,
    total_cents: i64,
    created_at: chrono::DateTime<chrono::Utc>,
}

async fn list_orders(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<Json<Vec<OrderSummary>>> {
    let (pool, user_id) = (&state.db.pool, user.id);
    let rows: Vec<OrderRow> = state
        .db
        .retry_once(|| async move {
            Ok(sqlx::query_as(
                "SELECT id, status, total_cents, created_at FROM orders WHERE user_id = ?
                 ORDER BY created_at DESC LIMIT 100",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await?)
        })
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| OrderSummary {
                order_id: r.id,
                status: r.status,
                total_cents: r.total_cents,
                created_at: r.created_at,
            })
            .collect(),
    ))
}
