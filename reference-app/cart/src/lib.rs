//! The cart service: one cart per shopper in Redis (a hash of sku -> line),
//! priced when a line is set from the catalogue service. Every route needs a
//! shopper token, and the cart key comes from the token, so a shopper can only
//! ever see and change their own cart.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Router,
    extract::{FromRef, State},
    http::StatusCode,
    routing::{delete, get},
};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use shop_common::{
    ApiError, ApiResult,
    auth::{AuthUser, Jwt},
    cache::Redis,
    client::http_client,
    extract::{Json, Path},
    model::{Cart, CartLine, Product},
    server::{Kit, Service},
};

/// A cart left alone this long is forgotten.
const CART_TTL_SECS: i64 = 7 * 24 * 3600;
pub const MAX_QTY: u32 = 99;

#[derive(Clone)]
struct AppState {
    redis: Arc<Redis>,
    jwt: Jwt,
    http: reqwest::Client,
    catalogue_url: Arc<str>,
}

impl FromRef<AppState> for Jwt {
    fn from_ref(s: &AppState) -> Jwt {
        s.jwt.clone()
    }
}

pub async fn build(kit: Kit) -> anyhow::Result<Service> {
    let redis = Arc::new(Redis::new(&kit.settings)?);
    let state = AppState {
        redis: redis.clone(),
        jwt: kit.jwt(),
        http: http_client(&kit.settings),
        catalogue_url: kit.settings.catalogue_url.trim_end_matches('/').into(),
    };
    let routes = Router::new()
        .route("/api/cart", get(get_cart).delete(clear_cart))
        .route("/api/cart/items/{sku}", delete(remove_line).put(set_line))
        .with_state(state);
    let probe: shop_common::health::ReadyProbe = Arc::new(move || {
        let redis = redis.clone();
        Box::pin(async move { vec![redis.check(true).await] })
    });
    Ok(Service { routes, probe })
}

fn cart_key(user: &AuthUser) -> String {
    format!("cart:v1:{}", user.id)
}

#[derive(Serialize, Deserialize)]
struct StoredLine {
    qty: u32,
    name: String,
    unit_price_cents: i64,
}

async fn load_cart(state: &AppState, user: &AuthUser) -> ApiResult<Cart> {
    let mut conn = state.redis.conn().await?;
    let raw: HashMap<String, String> = conn.hgetall(cart_key(user)).await?;
    Ok(cart_from(raw))
}

/// The cart from its stored lines (sku to JSON); unreadable lines are left out.
fn cart_from(raw: HashMap<String, String>) -> Cart {
    let mut lines: Vec<CartLine> = raw
        .into_iter()
        .filter_map(|(sku, json)| {
            let stored: StoredLine = serde_json::from_str(&json).ok()?;
            Some(CartLine {
                line_total_cents: stored.unit_price_cents * i64::from(stored.qty),
                sku,
                name: stored.name,
                qty: stored.qty,
                unit_price_cents: stored.unit_price_cents,
            })
        })
        .collect();
    lines.sort_by(|a, b| a.sku.cmp(&b.sku));
    let total_cents = lines.iter().map(|l| l.line_total_cents).sum();
    Cart { lines, total_cents }
}

async fn get_cart(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Cart>> {
    Ok(Json(load_cart(&state, &user).await?))
}

#[derive(Deserialize)]
struct SetQuantity {
    qty: u32,
}

async fn lookup_product(state: &AppState, sku: &str) -> ApiResult<Product> {
    let valid = !sku.is_empty()
        && sku.len() <= 32
        && sku.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !valid {
        return Err(ApiError::not_found(format!("no product '{sku}'")));
    }
    let url = format!("{}/api/catalogue/products/{sku}", state.catalogue_url);
    let response = state
        .http
        .get(&url)
        .send()
        .await
        .map_err(|e| ApiError::unavailable("catalogue", e))?;
    match response.status() {
        s if s.is_success() => response
            .json()
            .await
            .map_err(|e| ApiError::unavailable("catalogue", e)),
        StatusCode::NOT_FOUND => Err(ApiError::not_found(format!("no product '{sku}'"))),
        s => Err(ApiError::unavailable("catalogue", format!("status {s}"))),
    }
}

/// Sets a line's quantity (not adds to it), so repeating the call is harmless.
async fn set_line(
    State(state): State<AppState>,
    user: AuthUser,
    Path(sku): Path<String>,
    Json(body): Json<SetQuantity>,
) -> ApiResult<Json<Cart>> {
    if !(1..=MAX_QTY).contains(&body.qty) {
        return Err(ApiError::bad_request(format!(
            "qty must be between 1 and {MAX_QTY}"
        )));
    }
    let product = lookup_product(&state, &sku).await?;
    let stored = StoredLine {
        qty: body.qty,
        name: product.name,
        unit_price_cents: product.price_cents,
    };
    let json = serde_json::to_string(&stored).map_err(|e| ApiError::Internal(e.into()))?;
    let key = cart_key(&user);
    let mut conn = state.redis.conn().await?;
    // One round trip: the write, its expiry and the cart as it now is.
    let (raw,): (HashMap<String, String>,) = redis::pipe()
        .atomic()
        .hset(&key, &product.sku, json)
        .ignore()
        .expire(&key, CART_TTL_SECS)
        .ignore()
        .hgetall(&key)
        .query_async(&mut conn)
        .await?;
    Ok(Json(cart_from(raw)))
}

async fn remove_line(
    State(state): State<AppState>,
    user: AuthUser,
    Path(sku): Path<String>,
) -> ApiResult<Json<Cart>> {
    let mut conn = state.redis.conn().await?;
    let removed: i64 = conn.hdel(cart_key(&user), &sku).await?;
    if removed == 0 {
        return Err(ApiError::not_found(format!("'{sku}' is not in the cart")));
    }
    Ok(Json(load_cart(&state, &user).await?))
}

async fn clear_cart(State(state): State<AppState>, user: AuthUser) -> ApiResult<StatusCode> {
    let mut conn = state.redis.conn().await?;
    let _: i64 = conn.del(cart_key(&user)).await?;
    Ok(StatusCode::NO_CONTENT)
}
