//! JWT bearer tokens for shoppers (HS256, issued by the user service, checked
//! by every service that owns shopper data) and the admin bearer token.
//! jsonwebtoken is the de-facto crate; its pure-Rust backend avoids building C.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{header::AUTHORIZATION, request::Parts},
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{ApiError, Secret};

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: u64,
    pub email: String,
    pub iat: u64,
    pub exp: u64,
}

/// Signs and verifies shopper tokens.
#[derive(Clone)]
pub struct Jwt(Arc<JwtInner>);

struct JwtInner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl Jwt {
    pub fn new(secret: &Secret, ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        Self(Arc::new(JwtInner {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
            ttl,
        }))
    }

    pub fn issue(&self, user_id: u64, email: &str) -> Result<String, ApiError> {
        let now = unix_now();
        self.issue_at(user_id, email, now, now + self.0.ttl.as_secs())
    }

    /// Issues a token with explicit times (tests use this for expired tokens).
    pub fn issue_at(
        &self,
        user_id: u64,
        email: &str,
        iat: u64,
        exp: u64,
    ) -> Result<String, ApiError> {
        let claims = Claims {
            sub: user_id,
            email: email.to_string(),
            iat,
            exp,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.0.encoding)
            .map_err(|e| ApiError::Internal(e.into()))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        jsonwebtoken::decode::<Claims>(token, &self.0.decoding, &self.0.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ApiError::unauthorized("token expired")
                }
                _ => ApiError::unauthorized("invalid token"),
            })
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// A shopper authenticated by a valid bearer token.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: u64,
    pub email: String,
    /// The raw token, forwarded when this service calls a sibling for the user.
    pub token: String,
}

impl<S> FromRequestParts<S> for AuthUser
where
    Jwt: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        let claims = Jwt::from_ref(state).verify(token)?;
        Ok(AuthUser {
            id: claims.sub,
            email: claims.email,
            token: token.to_string(),
        })
    }
}

/// The admin token, as state for [`Admin`].
#[derive(Clone)]
pub struct AdminToken(pub Secret);

/// Proof that the request carried the admin token.
pub struct Admin;

impl<S> FromRequestParts<S> for Admin
where
    AdminToken: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let expected = AdminToken::from_ref(state);
        match bearer(parts) {
            Some(given) if constant_time_eq(given.as_bytes(), expected.0.expose().as_bytes()) => {
                Ok(Admin)
            }
            _ => Err(ApiError::unauthorized("admin token required")),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_an_expired_one_is_refused() {
        let jwt = Jwt::new(&Secret::new("s3cret"), Duration::from_secs(60));
        let token = jwt.issue(7, "a@example.com").unwrap();
        let claims = jwt.verify(&token).unwrap();
        assert_eq!(claims.sub, 7);
        let now = unix_now();
        let old = jwt
            .issue_at(7, "a@example.com", now - 7200, now - 3600)
            .unwrap();
        let err = jwt.verify(&old).unwrap_err();
        assert_eq!(err.to_string(), "token expired");
        let other = Jwt::new(&Secret::new("other"), Duration::from_secs(60));
        assert!(other.verify(&token).is_err());
    }
}
