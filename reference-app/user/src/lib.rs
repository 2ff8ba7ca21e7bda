//! The user service: registration, login (argon2id password hashes, JWT
//! tokens) and "who am I". Backed by MariaDB.

use std::sync::Arc;

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
    password_hash::{SaltString, rand_core::OsRng},
};
use axum::{
    Router,
    extract::{FromRef, State},
    http::StatusCode,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use shop_common::{
    ApiError, ApiResult,
    auth::{AuthUser, Jwt},
    db::{Database, is_duplicate_key},
    extract::Json,
    server::{Kit, Service},
    settings::Argon2Cost,
};

#[derive(Clone)]
pub struct AppState {
    db: Database,
    jwt: Jwt,
    hasher: Arc<Argon2<'static>>,
    /// Hashing is CPU-bound: no more hashes at once than cores, so a burst
    /// of logins queues here instead of holding 4 MiB blocks on dozens of
    /// blocking threads.
    hashing: Arc<tokio::sync::Semaphore>,
    /// A hash verified against when the email is unknown, so a login takes
    /// the same time whether or not the account exists.
    decoy_hash: Arc<String>,
}

impl FromRef<AppState> for Jwt {
    fn from_ref(s: &AppState) -> Jwt {
        s.jwt.clone()
    }
}

/// Keeps the argon2 working memory (4 MiB per hash) from piling up in the
/// process. glibc serves blocks this size from per-thread arenas once its
/// dynamic mmap threshold has risen past them, and arenas keep what they
/// free: during black friday's 10,000 logins shop-user replicas grew to
/// 450-510 MB. A fixed threshold makes every block this size its own
/// mapping, returned to the system when the hash is done (measure it with
/// `cargo bench -p shop-user --bench hash_memory`).
pub fn tame_allocator() {
    // SAFETY: mallopt only changes glibc's tunables; callers call it before
    // they start threads (shop-user's main does).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

pub fn hasher(cost: Argon2Cost) -> anyhow::Result<Argon2<'static>> {
    let params = Params::new(cost.memory_kib, cost.iterations, cost.lanes, None)
        .map_err(|e| anyhow::anyhow!("invalid argon2 cost: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

pub fn hash_password(hasher: &Argon2<'_>, password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    hasher
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("hashing failed: {e}")))
}

pub fn verify_password(hasher: &Argon2<'_>, password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| hasher.verify_password(password.as_bytes(), &parsed).is_ok())
        .unwrap_or(false)
}

pub async fn build(kit: Kit) -> anyhow::Result<Service> {
    let db = Database::connect_lazy(&kit.settings)?;
    db.bootstrap(kit.shutdown.clone(), |_| async { Ok(()) });
    let hasher = hasher(kit.settings.argon2)?;
    let decoy_hash = hash_password(&hasher, "decoy password for unknown accounts")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let state = AppState {
        db: db.clone(),
        jwt: kit.jwt(),
        hasher: Arc::new(hasher),
        hashing: Arc::new(tokio::sync::Semaphore::new(cores)),
        decoy_hash: Arc::new(decoy_hash),
    };
    let routes = Router::new()
        .route("/api/users/register", post(register))
        .route("/api/users/login", post(login))
        .route("/api/users/me", get(me))
        .with_state(state);
    let probe: shop_common::health::ReadyProbe = Arc::new(move || {
        let db = db.clone();
        Box::pin(async move { vec![db.check().await] })
    });
    Ok(Service { routes, probe })
}

#[derive(Deserialize)]
pub struct Registration {
    name: String,
    email: String,
    password: String,
}

#[derive(Serialize, sqlx::FromRow)]
pub struct User {
    id: u64,
    name: String,
    email: String,
}

fn validate(reg: &Registration) -> ApiResult<()> {
    let name = reg.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::bad_request("name must be 1 to 200 characters"));
    }
    let email = reg.email.trim();
    let well_formed = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if !well_formed {
        return Err(ApiError::bad_request(
            "email must look like name@example.com",
        ));
    }
    if !(8..=128).contains(&reg.password.chars().count()) {
        return Err(ApiError::bad_request(
            "password must be 8 to 128 characters",
        ));
    }
    Ok(())
}

/// Runs `work` on a blocking thread once a hashing permit is free.
async fn hashing<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
) -> ApiResult<T> {
    let _permit = state
        .hashing
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let hasher = state.hasher.clone();
    tokio::task::spawn_blocking(move || work(&hasher))
        .await
        .map_err(|e| ApiError::Internal(e.into()))
}

async fn hash_blocking(state: &AppState, password: String) -> ApiResult<String> {
    hashing(state, move |hasher| hash_password(hasher, &password)).await?
}

async fn register(
    State(state): State<AppState>,
    Json(reg): Json<Registration>,
) -> ApiResult<(StatusCode, Json<User>)> {
    validate(&reg)?;
    let email = reg.email.trim().to_lowercase();
    let name = reg.name.trim().to_string();
    let hash = hash_blocking(&state, reg.password).await?;
    let result = sqlx::query("INSERT INTO users (name, email, password_hash) VALUES (?, ?, ?)")
        .bind(&name)
        .bind(&email)
        .bind(&hash)
        .execute(&state.db.pool)
        .await;
    match result {
        Ok(done) => Ok((
            StatusCode::CREATED,
            Json(User {
                id: done.last_insert_id(),
                name,
                email,
            }),
        )),
        Err(e) if is_duplicate_key(&e) => Err(ApiError::Conflict(
            "an account with this email exists".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct Credentials {
    email: String,
    password: String,
}

#[derive(Serialize)]
pub struct Token {
    token: String,
    user_id: u64,
}

async fn login(
    State(state): State<AppState>,
    Json(creds): Json<Credentials>,
) -> ApiResult<Json<Token>> {
    let email = creds.email.trim().to_lowercase();
    let (pool, address) = (&state.db.pool, email.as_str());
    let row: Option<(u64, String)> = state
        .db
        .retry_once(|| async move {
            Ok(
                sqlx::query_as("SELECT id, password_hash FROM users WHERE email = ?")
                    .bind(address)
                    .fetch_optional(pool)
                    .await?,
            )
        })
        .await?;
    let (id, hash, known) = match row {
        Some((id, hash)) => (id, hash, true),
        None => (0, state.decoy_hash.as_str().to_string(), false),
    };
    let password = creds.password;
    let matches = hashing(&state, move |hasher| {
        verify_password(hasher, &password, &hash)
    })
    .await?;
    if !(known && matches) {
        return Err(ApiError::unauthorized("wrong email or password"));
    }
    Ok(Json(Token {
        token: state.jwt.issue(id, &email)?,
        user_id: id,
    }))
}

async fn me(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<User>> {
    let (pool, id) = (&state.db.pool, user.id);
    let found: Option<User> = state
        .db
        .retry_once(|| async move {
            Ok(
                sqlx::query_as("SELECT id, name, email FROM users WHERE id = ?")
                    .bind(id)
                    .fetch_optional(pool)
                    .await?,
            )
        })
        .await?;
    found
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no such user"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let h = hasher(Argon2Cost::default()).unwrap();
        let hash = hash_password(&h, "correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=4096,t=1,p=1$"), "{hash}");
        assert!(verify_password(&h, "correct horse", &hash));
        assert!(!verify_password(&h, "wrong horse", &hash));
        assert!(!verify_password(&h, "correct horse", "not a hash"));
    }
}
