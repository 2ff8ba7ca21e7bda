//! Liveness (the process answers; never looks at dependencies) and readiness
//! (required dependencies answer and the service is not draining).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::json;

#[derive(Debug, Clone, Serialize)]
pub struct DependencyStatus {
    pub name: &'static str,
    pub ok: bool,
    /// A required dependency that is down makes the service not ready; an
    /// optional one (a cache, a broker behind an outbox) is only reported.
    pub required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl DependencyStatus {
    pub fn from_result(name: &'static str, required: bool, r: Result<(), String>) -> Self {
        match r {
            Ok(()) => Self {
                name,
                ok: true,
                required,
                detail: None,
            },
            Err(detail) => Self {
                name,
                ok: false,
                required,
                detail: Some(detail),
            },
        }
    }
}

/// Checks a service's dependencies when readiness is asked.
pub type ReadyProbe = Arc<dyn Fn() -> BoxFuture<'static, Vec<DependencyStatus>> + Send + Sync>;

pub fn no_dependencies() -> ReadyProbe {
    Arc::new(|| Box::pin(async { Vec::new() }))
}

#[derive(Clone)]
pub struct HealthState {
    pub draining: Arc<AtomicBool>,
    pub probe: ReadyProbe,
}

pub async fn live() -> impl IntoResponse {
    Json(json!({"status": "live"}))
}

pub async fn ready(State(h): State<HealthState>) -> impl IntoResponse {
    if h.draining.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining"})),
        );
    }
    let deps = (h.probe)().await;
    let ready = deps.iter().all(|d| d.ok || !d.required);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = if ready { "ready" } else { "not ready" };
    (status, Json(json!({"status": word, "dependencies": deps})))
}
