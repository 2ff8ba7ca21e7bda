//! The limit on request bodies, answered so a client can read the answer.
//! A server that replies early and closes a connection with unread input
//! makes the kernel send a reset, which can destroy the reply before the
//! client reads it (3 of 15 bodies of 3 MB or more got no answer that way).
//! So an oversize body is read to its end and dropped (up to
//! `DRAIN_BYTES`, within `DRAIN_TIME`) before the 413 goes out, whatever
//! the route; a body under the limit reaches the handler as before.

use std::time::Duration;

use axum::{
    body::{Body, Bytes},
    extract::Request,
    http::{HeaderMap, HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use futures::StreamExt;

use crate::ApiError;

/// The largest request body the shop takes.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// How much of an oversize body is read (and dropped) before the 413.
pub const DRAIN_BYTES: usize = 64 << 20;
/// How long reading an oversize body may take.
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Middleware: a body over `MAX_BODY_BYTES` (declared or streamed) is a
/// readable 413; others pass.
pub async fn limit(request: Request, next: Next) -> Response {
    let declared = content_length(request.headers());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        drain(request.into_body(), 0).await;
        return too_large();
    }
    let chunked = request.headers().contains_key(header::TRANSFER_ENCODING);
    if declared.is_some() || !chunked {
        return next.run(request).await;
    }
    // No length given: read up to the limit, then hand it on or refuse.
    let (parts, body) = request.into_parts();
    let mut stream = body.into_data_stream();
    let mut kept: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return ApiError::bad_request("the request body could not be read").into_response();
        };
        if kept.len() + chunk.len() > MAX_BODY_BYTES {
            let read = kept.len() + chunk.len();
            drain(Body::from_stream(stream), read).await;
            return too_large();
        }
        kept.extend_from_slice(&chunk);
    }
    next.run(Request::from_parts(parts, Body::from(Bytes::from(kept))))
        .await
}

/// Reads `body` to its end (or `DRAIN_BYTES`, or `DRAIN_TIME`) and drops it.
async fn drain(body: Body, already: usize) {
    let mut stream = body.into_data_stream();
    let mut read = already;
    let reading = async {
        while let Some(Ok(chunk)) = stream.next().await {
            read += chunk.len();
            if read > DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, reading).await;
}

fn too_large() -> Response {
    let mut response = ApiError::TooLarge {
        limit: MAX_BODY_BYTES,
    }
    .into_response();
    // The body was read, but a client that sent this much should open a
    // fresh connection for what comes next.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
