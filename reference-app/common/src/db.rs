//! MariaDB access. The pool connects lazily (a service starts while the
//! database is down), pings a pooled connection that sat idle before handing
//! it out (a connection to a primary that died or moved is detected and
//! replaced), and every acquire has a timeout. With a writer file it
//! follows the writer when that file changes (a failover). Work that is safe
//! to repeat runs through [`Database::retry_once`]: at the first broken
//! connection every pooled connection opened before it is dropped and the
//! work runs once more on a fresh one, as a good client does at a failover.
//! The schema is applied by a background task that retries until the
//! database answers.

use std::{
    future::Future,
    path::{Path, PathBuf},
    str::FromStr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use sqlx::{
    MySqlPool,
    mysql::{MySqlConnectOptions, MySqlPoolOptions},
};
use tokio_util::sync::CancellationToken;

use crate::{ApiError, ApiResult, Settings, health::DependencyStatus, schema};

/// A pooled connection idle this long is pinged before it is lent out.
pub const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// How long a read replica's connection may take to acquire (see
/// [`Database::connect_reader`]).
pub const READER_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(300);

#[derive(Clone)]
pub struct Database {
    pub pool: MySqlPool,
    schema_ready: Arc<AtomicBool>,
    timeout: Duration,
    writer: Option<Arc<Mutex<WriterFile>>>,
    /// Connections opened before this instant are closed instead of lent
    /// out: set when the writer moves and when a connection is found broken.
    stale_before: StaleBefore,
}

/// The instant before which pooled connections are stale (see
/// `Database::stale_before`).
#[derive(Clone, Default)]
struct StaleBefore(Arc<Mutex<Option<Instant>>>);

impl StaleBefore {
    fn mark(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// True for a connection of this age, opened before the mark.
    fn covers(&self, age: Duration) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|at| age > at.elapsed())
    }
}

/// Where the database writer is, per `Settings::mysql_writer_file`.
struct WriterFile {
    file: PathBuf,
    current: Option<(String, u16)>,
    /// The last read failed (and was logged).
    unreadable: bool,
}

/// How often the writer file is re-read: the local stand-in for a DNS TTL.
/// Until a replica notices a failover, its pooled connections to the dead
/// primary fail the requests that use them (black-friday: 20 failed
/// requests in the failover's second with 200 ms), so this is short; a
/// read costs a few microseconds.
const WRITER_POLL: Duration = Duration::from_millis(50);

/// `host:port` from the writer file.
pub fn read_writer_file(file: &Path) -> std::io::Result<(String, u16)> {
    let text = std::fs::read_to_string(file)?;
    let invalid = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("expected host:port, found {:?}", text.trim()),
        )
    };
    let (host, port) = text.trim().rsplit_once(':').ok_or_else(invalid)?;
    let port = port.parse().map_err(|_| invalid())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(invalid());
    }
    Ok((host.to_string(), port))
}

impl Database {
    /// The database `mysql_url` names (the writer: schema, seed and every
    /// write), following `mysql_writer_file` when there is one.
    pub fn connect_lazy(settings: &Settings) -> anyhow::Result<Self> {
        Self::connect(
            settings,
            "mysql_url",
            &settings.mysql_url,
            settings.mysql_writer_file.clone(),
            settings.outbound_timeout,
        )
    }

    /// The read replica `mysql_read_url` names, if there is one: a pool of
    /// its own, no writer file and no schema to apply (it replicates the
    /// writer's). Its connections are given [`READER_ACQUIRE_TIMEOUT`] at
    /// most, so a replica that went away costs a read that much before it
    /// falls back to the writer, not the whole outbound timeout: sqlx
    /// retries a refused connection until the acquire times out, and the
    /// caller's own timeout (web's, the same outbound timeout) would end
    /// first.
    pub fn connect_reader(settings: &Settings) -> anyhow::Result<Option<Self>> {
        let Some(url) = &settings.mysql_read_url else {
            return Ok(None);
        };
        let acquire = settings.outbound_timeout.min(READER_ACQUIRE_TIMEOUT);
        let reader = Self::connect(settings, "mysql_read_url", url, None, acquire)?;
        reader.schema_ready.store(true, Ordering::SeqCst);
        Ok(Some(reader))
    }

    fn connect(
        settings: &Settings,
        key: &str,
        url: &str,
        writer_file: Option<PathBuf>,
        acquire_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let mut options = MySqlConnectOptions::from_str(url)
            .map_err(|e| anyhow::anyhow!("invalid {key}: {e}"))?;
        let writer = writer_file.map(|file| {
            let current = read_writer_file(&file).ok();
            if let Some((host, port)) = &current {
                options = options.clone().host(host).port(*port);
            }
            WriterFile {
                unreadable: false,
                file,
                current,
            }
        });
        let stale_before = StaleBefore::default();
        let stale = stale_before.clone();
        let pool = MySqlPoolOptions::new()
            .max_connections(settings.mysql_pool_size)
            .min_connections(0)
            .acquire_timeout(acquire_timeout)
            // sqlx pings every connection it takes back (so a broken one
            // never re-enters the pool) and, by default, again before lending
            // it out. The second ping only helps a connection that died while
            // idle; for one that was in use a moment ago it is one more round
            // trip per query or transaction, for the service and the database.
            .test_before_acquire(false)
            .before_acquire(move |conn, meta| {
                let stale = stale.covers(meta.age);
                Box::pin(async move {
                    if stale {
                        // It leads to the old writer, or was opened before a
                        // connection broke: close it, open another.
                        return Ok(false);
                    }
                    if meta.idle_for >= IDLE_BEFORE_PING {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .idle_timeout(Some(Duration::from_secs(30)))
            .max_lifetime(Some(Duration::from_secs(300)))
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            schema_ready: Arc::new(AtomicBool::new(false)),
            timeout: settings.outbound_timeout,
            writer: writer.map(|w| Arc::new(Mutex::new(w))),
            stale_before,
        })
    }

    /// Runs `work`; if it fails because a database connection broke under
    /// it (`ApiError::DatabaseLost`: the server died, was killed or went
    /// away), drops every pooled connection opened before that moment and
    /// runs `work` once more, on a fresh connection. A fresh connection
    /// waits (within the acquire timeout) for a refused server to come
    /// back and, with a writer file, goes to the current writer, so a
    /// failover costs the request time instead of an error.
    ///
    /// Only for work that is safe to repeat: reads, and writes made
    /// idempotent (checkout under its Idempotency-Key). A write that broke
    /// at its commit may have happened.
    pub async fn retry_once<T, F, Fut>(&self, mut work: F) -> ApiResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ApiResult<T>>,
    {
        match work().await {
            Err(ApiError::DatabaseLost(detail)) => {
                self.stale_before.mark();
                tracing::info!(
                    detail,
                    "a database connection broke; retrying once on a fresh one"
                );
                work().await
            }
            other => other,
        }
    }
    /// Re-reads the writer file (if there is one) every `WRITER_POLL` and
    /// points new connections at the address it names; connections opened
    /// before a move are closed instead of lent out.
    fn follow_writer(&self, shutdown: CancellationToken) {
        let Some(writer) = self.writer.clone() else {
            return;
        };
        let pool = self.pool.clone();
        let stale_before = self.stale_before.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(WRITER_POLL) => {}
                }
                let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
                match read_writer_file(&w.file) {
                    Ok(next) if w.current.as_ref() != Some(&next) => {
                        let options = (*pool.connect_options()).clone().host(&next.0).port(next.1);
                        pool.set_connect_options(options);
                        stale_before.mark();
                        tracing::info!(
                            writer = format!("{}:{}", next.0, next.1),
                            "the database writer moved"
                        );
                        w.current = Some(next);
                        w.unreadable = false;
                    }
                    Ok(_) => w.unreadable = false,
                    // Said once, not at every read; new connections keep
                    // going to the last address read.
                    Err(e) if !w.unreadable => {
                        w.unreadable = true;
                        tracing::warn!(file = %w.file.display(), error = %e, "cannot read the database writer file")
                    }
                    Err(_) => {}
                }
            }
        });
    }

    /// Applies the schema, then `after` (seeding), retrying with back-off
    /// until both succeed or the service shuts down.
    pub fn bootstrap<F, Fut>(&self, shutdown: CancellationToken, after: F)
    where
        F: Fn(MySqlPool) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), sqlx::Error>> + Send,
    {
        self.follow_writer(shutdown.clone());
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
        self.check_as("mariadb", true).await
    }

    /// `check` under another name: `required: false` for a dependency the
    /// service can do without (a read replica it falls back from).
    pub async fn check_as(&self, name: &'static str, required: bool) -> DependencyStatus {
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
        DependencyStatus::from_result(name, required, result)
    }
}

/// True when the error means the connection itself broke: an I/O error or
/// a broken protocol stream (the server died or closed it), the driver's
/// worker gone, or MariaDB's "connection killed" (70100) and "server
/// shutdown" / "lost connection" (08S01). Work on it may be retried on a
/// fresh connection; a pool timeout or a refused statement is not this.
pub fn is_connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("08S01" | "70100")),
        _ => false,
    }
}

/// True when a database error is MariaDB's duplicate-key error (1062).
pub fn is_duplicate_key(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23000"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_makes_the_connections_opened_before_it_stale_and_not_the_later_ones() {
        let stale = StaleBefore::default();
        assert!(!stale.covers(Duration::from_secs(60)), "no mark yet");
        stale.mark();
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            stale.covers(Duration::from_secs(1)),
            "opened before the mark"
        );
        assert!(!stale.covers(Duration::from_millis(5)), "opened after it");
    }

    #[test]
    fn only_a_broken_connection_counts_as_lost() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(is_connection_lost(&sqlx::Error::Io(reset)));
        assert!(is_connection_lost(&sqlx::Error::Protocol("eof".into())));
        assert!(is_connection_lost(&sqlx::Error::WorkerCrashed));
        assert!(!is_connection_lost(&sqlx::Error::PoolTimedOut));
        assert!(!is_connection_lost(&sqlx::Error::RowNotFound));
        let lost = ApiError::from(sqlx::Error::WorkerCrashed);
        assert!(matches!(lost, ApiError::DatabaseLost(_)), "{lost:?}");
        assert_eq!(lost.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn retry_once_runs_the_work_again_after_a_broken_connection_only() {
        let settings = Settings::default();
        let db = Database::connect_lazy(&settings).unwrap();
        let runs = std::sync::atomic::AtomicU32::new(0);
        let got = db
            .retry_once(|| async {
                match runs.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(ApiError::DatabaseLost("reset".into())),
                    n => Ok(n),
                }
            })
            .await
            .unwrap();
        assert_eq!(got, 1);
        assert!(db.stale_before.covers(Duration::from_secs(1)));
        let refused = std::sync::atomic::AtomicU32::new(0);
        let err = db
            .retry_once(|| async {
                refused.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(ApiError::unavailable("database", "timed out"))
            })
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::Unavailable { .. }));
        assert_eq!(refused.load(Ordering::SeqCst), 1, "not retried");
        let twice = std::sync::atomic::AtomicU32::new(0);
        let err = db
            .retry_once(|| async {
                twice.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(ApiError::DatabaseLost("reset".into()))
            })
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::DatabaseLost(_)));
        assert_eq!(twice.load(Ordering::SeqCst), 2, "retried once, not more");
    }

    #[test]
    fn the_writer_file_names_a_host_and_port_and_anything_else_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("writer");
        std::fs::write(&file, "127.0.0.1:3307\n").unwrap();
        assert_eq!(
            read_writer_file(&file).unwrap(),
            ("127.0.0.1".to_string(), 3307)
        );
        std::fs::write(&file, "[::1]:3308").unwrap();
        assert_eq!(read_writer_file(&file).unwrap(), ("::1".to_string(), 3308));
        for bad in ["", "127.0.0.1", "127.0.0.1:port", ":3306"] {
            std::fs::write(&file, bad).unwrap();
            let err = read_writer_file(&file).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{bad:?}");
        }
        assert_eq!(
            read_writer_file(&dir.path().join("missing"))
                .unwrap_err()
                .kind(),
            std::io::ErrorKind::NotFound
        );
    }
}
