//! MariaDB access. The pool connects lazily (a service starts while the
//! database is down), pings a pooled connection before handing it out (a
//! connection to a primary that died or moved is detected and replaced), and
//! every acquire has a timeout. The schema is applied by a background task
//! that retries until the database answers.

use std::{
    future::Future,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use sqlx::{
    MySqlPool,
    mysql::{MySqlConnectOptions, MySqlPoolOptions},
};
use tokio_util::sync::CancellationToken;

use crate::{Settings, health::DependencyStatus, schema};

#[derive(Clone)]
pub struct Database {
    pub pool: MySqlPool,
    schema_ready: Arc<AtomicBool>,
    timeout: Duration,
}

impl Database {
    pub fn connect_lazy(settings: &Settings) -> anyhow::Result<Self> {
        let options = MySqlConnectOptions::from_str(&settings.mysql_url)
            .map_err(|e| anyhow::anyhow!("invalid mysql_url: {e}"))?;
        let pool = MySqlPoolOptions::new()
            .max_connections(settings.mysql_pool_size)
            .min_connections(0)
            .acquire_timeout(settings.outbound_timeout)
            .test_before_acquire(true)
            .idle_timeout(Some(Duration::from_secs(30)))
            .max_lifetime(Some(Duration::from_secs(300)))
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            schema_ready: Arc::new(AtomicBool::new(false)),
            timeout: settings.outbound_timeout,
        })
    }

    /// Applies the schema, then `after` (seeding), retrying with back-off
    /// until both succeed or the service shuts down.
    pub fn bootstrap<F, Fut>(&self, shutdown: CancellationToken, after: F)
    where
        F: Fn(MySqlPool) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), sqlx::Error>> + Send,
    {
        let db = self.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(200);
            loop {
                let attempt = async {
                    for statement in schema::STATEMENTS {
                        sqlx::query(statement).execute(&db.pool).await?;
                    }
                    after(db.pool.clone()).await
                };
                match attempt.await {
                    Ok(()) => {
                        db.schema_ready.store(true, Ordering::SeqCst);
                        tracing::info!("database schema ready");
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "database not ready yet; retrying"),
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        });
    }

    pub fn schema_ready(&self) -> bool {
        self.schema_ready.load(Ordering::SeqCst)
    }

    pub async fn check(&self) -> DependencyStatus {
        let result = if !self.schema_ready() {
            Err("schema not applied yet".to_string())
        } else {
            match tokio::time::timeout(self.timeout, sqlx::query("SELECT 1").execute(&self.pool))
                .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out".to_string()),
            }
        };
        DependencyStatus::from_result("mariadb", true, result)
    }
}

/// True when a database error is MariaDB's duplicate-key error (1062).
pub fn is_duplicate_key(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23000"))
}
