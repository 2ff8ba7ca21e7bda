//! Prometheus metrics of one service: requests and latency by method, route
//! and status. prometheus-client (the Prometheus project's own Rust client)
//! keeps a registry per service instead of a process-global recorder.

use std::{sync::Arc, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `hit`, `miss` (read from the source of truth), or `unavailable`
    /// (the cache could not be asked).
    pub result: &'static str,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RouteLabels, Counter>,
    latency: HistogramFamily,
    cache: Family<CacheLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    pub fn new(service: &str) -> Self {
        let mut registry = Registry::with_prefix("shop");
        let requests = Family::<RouteLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_requests",
            format!("HTTP requests served by the {service} service"),
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            format!("HTTP request latency of the {service} service"),
            latency.clone(),
        );
        let cache = Family::<CacheLabels, Counter>::default();
        registry.register(
            "cache_lookups",
            format!("Read-through cache lookups of the {service} service, by result"),
            cache.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            cache,
        }
    }

    /// Counts one read-through cache lookup.
    pub fn cache_lookup(&self, result: &'static str) {
        self.cache.get_or_create(&CacheLabels { result }).inc();
    }

    pub fn record(&self, labels: RouteLabels, seconds: f64) {
        self.latency.get_or_create(&labels).observe(seconds);
        self.requests.get_or_create(&labels).inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// What the observing middleware needs: the metrics and the X-Served-By value.
#[derive(Clone)]
pub struct Observer {
    pub metrics: Arc<Metrics>,
    pub served_by: HeaderValue,
}

pub const SERVED_BY: &str = "x-served-by";

/// Records every request and stamps the response with X-Served-By.
pub async fn observe(State(obs): State<Observer>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let mut response = next.run(req).await;
    obs.metrics.record(
        RouteLabels {
            method,
            route,
            status: response.status().as_u16(),
        },
        started.elapsed().as_secs_f64(),
    );
    response
        .headers_mut()
        .insert(SERVED_BY, obs.served_by.clone());
    response
}

pub async fn render(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
}
