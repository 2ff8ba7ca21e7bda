//! The admin audit: how many orders were accepted, paid and dispatched, which
//! paid ones are stuck, whether any idempotency key produced two orders, and
//! (given the ids shoppers were told) which acknowledged orders are missing.

use std::collections::HashSet;

use axum::{extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use shop_common::{ApiError, ApiResult, auth::Admin, extract::Json};

use crate::{AppState, valid_order_id};

#[derive(Debug, Serialize)]
pub struct Audit {
    /// Orders created (every accepted idempotency key), whatever their status.
    accepted: i64,
    /// Orders whose payment succeeded (PAID or DISPATCHED): the ones a
    /// shopper was told about with a 201.
    paid: i64,
    dispatched: i64,
    pending: i64,
    payment_failed: i64,
    /// Idempotency keys that produced more than one order.
    duplicated: i64,
    /// Outbox events not yet confirmed by the broker.
    outbox_unsent: i64,
    /// Paid orders not dispatched within `stuck_after`.
    stuck: Vec<String>,
    stuck_after_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    checked: Option<IdCheck>,
}

#[derive(Debug, Serialize)]
struct IdCheck {
    given: usize,
    /// Ids the shop acknowledged that it has no paid order for.
    missing: Vec<String>,
    /// Ids that exist and are paid but not (yet) dispatched.
    not_dispatched: Vec<String>,
}

async fn audit(state: &AppState) -> ApiResult<Audit> {
    let pool = &state.db.pool;
    let (accepted, paid, dispatched, pending, payment_failed): (i64, i64, i64, i64, i64) =
        sqlx::query_as(
            "SELECT COUNT(*),
                CAST(COALESCE(SUM(status IN ('PAID', 'DISPATCHED')), 0) AS SIGNED),
                CAST(COALESCE(SUM(status = 'DISPATCHED'), 0) AS SIGNED),
                CAST(COALESCE(SUM(status = 'PENDING'), 0) AS SIGNED),
                CAST(COALESCE(SUM(status = 'PAYMENT_FAILED'), 0) AS SIGNED)
         FROM orders",
        )
        .fetch_one(pool)
        .await?;
    let (duplicated,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM (SELECT user_id, idempotency_key FROM orders
         GROUP BY user_id, idempotency_key HAVING COUNT(*) > 1) d",
    )
    .fetch_one(pool)
    .await?;
    let (outbox_unsent,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")
            .fetch_one(pool)
            .await?;
    let stuck: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM orders WHERE status = 'PAID'
         AND paid_at < NOW(3) - INTERVAL ? MICROSECOND ORDER BY paid_at LIMIT 1000",
    )
    .bind(state.stuck_after.as_micros() as u64)
    .fetch_all(pool)
    .await?;
    Ok(Audit {
        accepted,
        paid,
        dispatched,
        pending,
        payment_failed,
        duplicated,
        outbox_unsent,
        stuck: stuck.into_iter().map(|(id,)| id).collect(),
        stuck_after_s: state.stuck_after.as_secs_f64(),
        checked: None,
    })
}

pub(crate) async fn verify(State(state): State<AppState>, _: Admin) -> ApiResult<Json<Audit>> {
    Ok(Json(audit(&state).await?))
}

#[derive(Deserialize)]
pub(crate) struct AcknowledgedIds {
    order_ids: Vec<String>,
}

/// The audit plus a check of the order ids shoppers were given.
pub(crate) async fn verify_ids(
    State(state): State<AppState>,
    _: Admin,
    Json(body): Json<AcknowledgedIds>,
) -> ApiResult<Json<Audit>> {
    if body.order_ids.len() > 1_000_000 {
        return Err(ApiError::bad_request(
            "at most 1,000,000 order ids per check",
        ));
    }
    let mut report = audit(&state).await?;
    let given: HashSet<&str> = body.order_ids.iter().map(String::as_str).collect();
    let mut found_paid = HashSet::new();
    let mut not_dispatched = Vec::new();
    let ids: Vec<&str> = given
        .iter()
        .copied()
        .filter(|id| valid_order_id(id))
        .collect();
    for chunk in ids.chunks(1000) {
        let mut q = sqlx::QueryBuilder::new("SELECT id, status FROM orders WHERE id IN (");
        let mut sep = q.separated(", ");
        for id in chunk {
            sep.push_bind(*id);
        }
        q.push(")");
        let rows: Vec<(String, String)> = q.build_query_as().fetch_all(&state.db.pool).await?;
        for (id, status) in rows {
            match status.as_str() {
                "DISPATCHED" => {
                    found_paid.insert(id);
                }
                "PAID" => {
                    not_dispatched.push(id.clone());
                    found_paid.insert(id);
                }
                _ => {}
            }
        }
    }
    let mut missing: Vec<String> = given
        .iter()
        .filter(|id| !found_paid.contains(**id))
        .map(|id| id.to_string())
        .collect();
    missing.sort();
    not_dispatched.sort();
    report.checked = Some(IdCheck {
        given: given.len(),
        missing,
        not_dispatched,
    });
    Ok(Json(report))
}

/// Forgets every order, line, outbox event and shipment (accounts and the
/// catalogue stay), so a run starts from a clean audit.
pub(crate) async fn reset(State(state): State<AppState>, _: Admin) -> ApiResult<StatusCode> {
    let mut tx = state.db.pool.begin().await?;
    for table in ["shipments", "outbox", "order_lines", "orders"] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
