//! The life of a service process: settings and logging, the router with
//! health, metrics and X-Served-By, and graceful shutdown on SIGTERM
//! (readiness fails at once, in-flight requests finish within the grace
//! period, then the process exits 0).

use std::{
    future::{Future, IntoFuture},
    net::SocketAddr,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::Context;
use axum::{
    Router,
    http::{HeaderValue, StatusCode},
    middleware::from_fn_with_state,
    response::IntoResponse,
    routing::get,
};
use tokio::net::TcpListener;
pub use tokio_util::sync::CancellationToken;
use tower_http::{catch_panic::CatchPanicLayer, timeout::TimeoutLayer};

use crate::{
    ApiError, Settings,
    auth::Jwt,
    health::{self, HealthState, ReadyProbe},
    metrics::{self, Metrics, Observer},
};

/// What a service is given to build itself.
#[derive(Clone)]
pub struct Kit {
    pub service: &'static str,
    pub settings: Settings,
    /// Cancelled when the process starts shutting down; background loops
    /// (outbox relay, consumers, schema bootstrap) watch it.
    pub shutdown: CancellationToken,
    draining: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

/// A built service: its API routes and its readiness probe.
pub struct Service {
    pub routes: Router,
    pub probe: ReadyProbe,
}

impl Kit {
    pub fn new(service: &'static str, settings: Settings) -> Self {
        Self {
            service,
            settings,
            shutdown: CancellationToken::new(),
            draining: Arc::new(AtomicBool::new(false)),
            metrics: Arc::new(Metrics::new(service)),
        }
    }

    /// The service's metrics, for counters of its own (cache lookups).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    pub fn jwt(&self) -> Jwt {
        Jwt::new(&self.settings.jwt_secret, self.settings.token_ttl)
    }

    pub fn served_by(&self) -> String {
        format!(
            "{}; replica={}; instance={}; pid={}",
            self.service,
            self.settings.replica,
            self.settings.instance,
            std::process::id()
        )
    }

    /// The service's routes plus health, metrics, X-Served-By, a request
    /// timeout, panic catching, the body limit (a readable 413) and a JSON
    /// 404 fallback.
    pub fn app(&self, service: Service) -> Router {
        let health = Router::new()
            .route("/health/live", get(health::live))
            .route("/health/ready", get(health::ready))
            .with_state(HealthState {
                draining: self.draining.clone(),
                probe: service.probe,
            });
        let metrics = Router::new()
            .route("/metrics", get(metrics::render))
            .with_state(self.metrics.clone());
        let observer = Observer {
            metrics: self.metrics.clone(),
            served_by: HeaderValue::from_str(&self.served_by())
                .unwrap_or_else(|_| HeaderValue::from_static("invalid")),
        };
        service
            .routes
            .merge(health)
            .merge(metrics)
            .fallback(|| async { ApiError::not_found("no such route") })
            .layer(axum::middleware::from_fn(crate::body::limit))
            .layer(CatchPanicLayer::custom(|_| {
                ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
            }))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                self.settings.request_timeout,
            ))
            .layer(from_fn_with_state(observer, metrics::observe))
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Serves until SIGTERM or SIGINT, then drains.
    pub async fn serve(&self, app: Router) -> anyhow::Result<()> {
        let addr = SocketAddr::new(self.settings.bind, self.settings.port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        tracing::info!(
            %addr,
            service = self.service,
            replica = %self.settings.replica,
            instance = %self.settings.instance,
            "listening"
        );
        let (shutdown, draining) = (self.shutdown.clone(), self.draining.clone());
        tokio::spawn(async move {
            wait_for_stop_signal().await;
            tracing::info!("stop signal: readiness now fails, draining");
            draining.store(true, Ordering::SeqCst);
            shutdown.cancel();
        });
        let drain_delay = self.settings.drain_delay;
        let stop = self.shutdown.clone();
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            stop.cancelled().await;
            tokio::time::sleep(drain_delay).await;
        });
        let mut running = tokio::spawn(server.into_future());
        tokio::select! {
            r = &mut running => { r.context("server task")?.context("server")?; return Ok(()); }
            _ = self.shutdown.cancelled() => {}
        }
        match tokio::time::timeout(drain_delay + self.settings.grace_period, &mut running).await {
            Ok(r) => r.context("server task")?.context("server")?,
            Err(_) => tracing::warn!("grace period over with requests in flight; exiting"),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

pub fn init_logging(settings: &Settings) {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,lapin=warn,tower_http=warn"));
    if settings.log_json {
        let _ = fmt().json().with_env_filter(filter).try_init();
    } else {
        let _ = fmt().with_env_filter(filter).try_init();
    }
}

/// The whole `main` of a service binary: load settings, log, build, serve.
pub async fn main<F, Fut>(service: &'static str, build: F) -> ExitCode
where
    F: FnOnce(Kit) -> Fut,
    Fut: Future<Output = anyhow::Result<Service>>,
{
    let settings = match Settings::load(service) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("shop-{service}: invalid settings: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings);
    let kit = Kit::new(service, settings);
    let result = async {
        let built = build(kit.clone()).await?;
        let app = kit.app(built);
        kit.serve(app).await
    }
    .await;
    kit.shutdown.cancel();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "service failed");
            ExitCode::FAILURE
        }
    }
}
