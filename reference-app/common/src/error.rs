//! The one error type handlers return. It renders as a JSON body
//! `{"error": code, "message": text}` and never leaks internals: dependency
//! failures are 503 (retryable), bad input is 4xx, anything else is a logged 500.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

pub type ApiResult<T> = Result<T, ApiError>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("payment declined")]
    PaymentDeclined,
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{dependency} unavailable")]
    Unavailable {
        dependency: &'static str,
        detail: String,
    },
    /// A database connection broke under the request (the server died or
    /// went away): a 503 like `Unavailable`, and the sign for
    /// `Database::retry_once` to drop the pool's old connections and retry.
    #[error("database unavailable")]
    DatabaseLost(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::BadRequest(msg.into())
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::NotFound(msg.into())
    }
    pub fn unauthorized(msg: impl Into<String>) -> Self {
        Self::Unauthorized(msg.into())
    }
    pub fn unavailable(dependency: &'static str, detail: impl ToString) -> Self {
        Self::Unavailable {
            dependency,
            detail: detail.to_string(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PaymentDeclined => StatusCode::PAYMENT_REQUIRED,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable { .. } | ApiError::DatabaseLost(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::PaymentDeclined => "payment_declined",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::Unavailable { .. } | ApiError::DatabaseLost(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(e) => tracing::error!(error = format!("{e:#}"), "internal error"),
            ApiError::Unavailable { dependency, detail } => {
                tracing::warn!(dependency, detail, "dependency unavailable")
            }
            ApiError::DatabaseLost(detail) => {
                tracing::warn!(dependency = "database", detail, "database connection lost")
            }
            _ => {}
        }
        let mut response = (
            self.status(),
            Json(json!({"error": self.code(), "message": self.to_string()})),
        )
            .into_response();
        if matches!(
            self,
            ApiError::Unavailable { .. } | ApiError::DatabaseLost(_)
        ) {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if crate::db::is_connection_lost(&e) {
            return ApiError::DatabaseLost(e.to_string());
        }
        match e {
            sqlx::Error::RowNotFound => ApiError::not_found("not found"),
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
                ApiError::unavailable("database", e)
            }
            sqlx::Error::Database(ref db) if is_transient_db_error(db.code().as_deref()) => {
                ApiError::unavailable("database", e)
            }
            other => ApiError::Internal(other.into()),
        }
    }
}

/// MariaDB error codes that mean "try again": read-only (a demoted or not yet
/// promoted primary), lock wait timeout, deadlock, server shutting down,
/// connection lost.
fn is_transient_db_error(sqlstate: Option<&str>) -> bool {
    matches!(
        sqlstate,
        Some("HY000" | "40001" | "08S01" | "08004" | "25006" | "70100")
    )
}

impl From<redis::RedisError> for ApiError {
    fn from(e: redis::RedisError) -> Self {
        ApiError::unavailable("redis", e)
    }
}

impl From<tokio::time::error::Elapsed> for ApiError {
    fn from(_: tokio::time::error::Elapsed) -> Self {
        ApiError::unavailable("dependency", "timed out")
    }
}
