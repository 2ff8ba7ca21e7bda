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

/// How many times the front sends a request upstream at most.
const UPSTREAM_TRIES: u32 = 3;

/// Sends the request upstream, again on a fresh connection when it is
/// known to be safe: a request that got no connection never reached the
/// service (any method, up to [`UPSTREAM_TRIES`]); a read that failed any
/// other way (a timeout on a pooled connection to a replica that is gone)
/// goes once more. Behind a Kubernetes Service each new connection picks
/// an endpoint afresh, so a replica on a lost node, still listed until the
/// node is declared NotReady, costs a retry, not the shopper's request.
async fn send_upstream(
    http: &reqwest::Client,
    method: &Method,
    url: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<reqwest::Response, ApiError> {
    let read = matches!(*method, Method::GET | Method::HEAD);
    let mut tries = 0;
    loop {
        tries += 1;
        let mut outgoing = http.request(method.clone(), url).body(body.clone());
        for name in FORWARDED.iter() {
            if let Some(v) = headers.get(name) {
                outgoing = outgoing.header(name, v);
            }
        }
        if let Some(v) = headers.get("idempotency-key") {
            outgoing = outgoing.header("idempotency-key", v);
        }
        match outgoing.send().await {
            Ok(upstream) => return Ok(upstream),
            Err(e) if e.is_connect() && tries < UPSTREAM_TRIES => continue,
            Err(_) if read && tries < 2 => continue,
            Err(e) => return Err(ApiError::unavailable("upstream", e)),
        }
    }
}

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
    let url = format!("{base}{path_and_query}");
    let upstream = send_upstream(&proxy.http, &method, &url, &headers, body).await?;
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

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    /// A server whose first connection is closed as soon as a request
    /// arrives (as a replica that dies mid-request), then answers 200 on
    /// the next; it counts the requests it saw.
    async fn dies_once() -> (String, Arc<std::sync::atomic::AtomicU32>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let seen = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let count = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n > 0 {
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                }
            }
        });
        (url, seen)
    }

    #[tokio::test]
    async fn a_read_that_breaks_goes_again_but_a_write_that_reached_the_service_does_not() {
        let http = reqwest::Client::new();
        let headers = HeaderMap::new();
        let (url, seen) = dies_once().await;
        let got = send_upstream(&http, &Method::GET, &url, &headers, Bytes::new()).await;
        assert_eq!(got.map(|r| r.status().as_u16()).ok(), Some(200));
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 2);

        let (url, seen) = dies_once().await;
        let got = send_upstream(&http, &Method::POST, &url, &headers, Bytes::new()).await;
        assert!(
            got.is_err(),
            "a write the service may have done is not sent twice"
        );
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_service_nobody_answers_is_unavailable_to_the_shopper() {
        // A port nobody listens on: every try is refused before sending.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/");
        let got = send_upstream(&http, &Method::POST, &url, &HeaderMap::new(), Bytes::new()).await;
        let Err(ApiError::Unavailable { detail, .. }) = got else {
            panic!("not unavailable");
        };
        assert!(
            detail.contains("connect") || detail.contains("error sending"),
            "{detail}"
        );
    }
}
