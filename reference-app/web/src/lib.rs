//! The web service: the storefront a person shops in (plain HTML, CSS and
//! JavaScript, no build step), talking to the API on the same origin. With
//! `proxy_api` it also forwards /api/* and /admin/* to the other services, so
//! the shop works without a load balancer in front.

use std::sync::Arc;

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderMap, HeaderName, Method, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::{any, get},
};
use shop_common::{
    ApiError, Settings,
    client::http_client,
    health::no_dependencies,
    server::{Kit, Service},
};

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/style.css");

pub async fn build(kit: Kit) -> anyhow::Result<Service> {
    let mut routes = Router::new()
        .route("/", get(|| async { Html(INDEX) }))
        .route(
            "/app.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    APP_JS,
                )
            }),
        )
        .route(
            "/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }),
        );
    if kit.settings.proxy_api {
        let proxy = Proxy {
            http: http_client(&kit.settings),
            upstreams: Arc::new(Upstreams::from(&kit.settings)),
        };
        routes = routes.merge(
            Router::new()
                .route("/api/{*rest}", any(forward))
                .route("/admin/{*rest}", any(forward))
                .with_state(proxy),
        );
    }
    Ok(Service {
        routes,
        probe: no_dependencies(),
    })
}

struct Upstreams {
    users: String,
    catalogue: String,
    cart: String,
    orders: String,
    shipping: String,
}

impl From<&Settings> for Upstreams {
    fn from(s: &Settings) -> Self {
        let t = |u: &str| u.trim_end_matches('/').to_string();
        Self {
            users: t(&s.users_url),
            catalogue: t(&s.catalogue_url),
            cart: t(&s.cart_url),
            orders: t(&s.orders_url),
            shipping: t(&s.shipping_url),
        }
    }
}

impl Upstreams {
    /// Which service owns a path, by the same rules as the load balancer.
    fn for_path(&self, path: &str) -> Option<&str> {
        let owner = if path.starts_with("/api/users") {
            &self.users
        } else if path.starts_with("/api/catalogue") {
            &self.catalogue
        } else if path.starts_with("/api/cart") {
            &self.cart
        } else if path.starts_with("/api/orders") || path.starts_with("/admin/") {
            &self.orders
        } else if path.starts_with("/api/shipping") {
            &self.shipping
        } else {
            return None;
        };
        Some(owner)
    }
}

#[derive(Clone)]
struct Proxy {
    http: reqwest::Client,
    upstreams: Arc<Upstreams>,
}

const FORWARDED: [HeaderName; 3] = [header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT];

async fn forward(State(proxy): State<Proxy>, request: Request) -> Result<Response, ApiError> {
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let base = proxy
        .upstreams
        .for_path(request.uri().path())
        .ok_or_else(|| ApiError::not_found("no such route"))?
        .to_string();
    let method: Method = request.method().clone();
    let headers: HeaderMap = request.headers().clone();
    // The body limit layer has refused anything larger already.
    let limit = shop_common::body::MAX_BODY_BYTES;
    let body: Bytes = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| ApiError::TooLarge { limit })?;
    let mut outgoing = proxy
        .http
        .request(method, format!("{base}{path_and_query}"))
        .body(body);
    for name in FORWARDED.iter() {
        if let Some(v) = headers.get(name) {
            outgoing = outgoing.header(name, v);
        }
    }
    if let Some(v) = headers.get("idempotency-key") {
        outgoing = outgoing.header("idempotency-key", v);
    }
    let upstream = outgoing
        .send()
        .await
        .map_err(|e| ApiError::unavailable("upstream", e))?;
    let status =
        StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = Response::builder().status(status);
    for name in [header::CONTENT_TYPE, header::RETRY_AFTER] {
        if let Some(v) = upstream.headers().get(&name) {
            response = response.header(name, v);
        }
    }
    for name in ["x-served-by", "idempotent-replayed"] {
        if let Some(v) = upstream.headers().get(name) {
            response = response.header(format!("x-upstream-{}", name.trim_start_matches("x-")), v);
        }
    }
    let bytes = upstream
        .bytes()
        .await
        .map_err(|e| ApiError::unavailable("upstream", e))?;
    response
        .body(Body::from(bytes))
        .map_err(|e| ApiError::Internal(e.into()))
        .map(IntoResponse::into_response)
}
