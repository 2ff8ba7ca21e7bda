//! The shipping service: consumes order-paid events with manual
//! acknowledgement after its own commit, ignores events for orders already
//! dispatched (at-least-once delivery makes duplicates normal), records a
//! shipment and moves the order to DISPATCHED. Shoppers can ask where their
//! order is.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::{FromRef, State},
    routing::get,
};
use futures::StreamExt;
use lapin::{
    message::Delivery,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
    },
    types::FieldTable,
};
use serde::Serialize;
use shop_common::{
    ApiError, ApiResult,
    auth::{AuthUser, Jwt},
    broker::{Broker, QUEUE},
    db::Database,
    extract::{Json, Path},
    health::DependencyStatus,
    model::OrderPaid,
    server::{CancellationToken, Kit, Service},
};

const CARRIERS: [&str; 3] = ["Parcel Pigeon", "RoadRunner Express", "Swift Freight"];
const PREFETCH: u16 = 32;

#[derive(Clone)]
struct AppState {
    db: Database,
    jwt: Jwt,
}

impl FromRef<AppState> for Jwt {
    fn from_ref(s: &AppState) -> Jwt {
        s.jwt.clone()
    }
}

pub async fn build(kit: Kit) -> anyhow::Result<Service> {
    let db = Database::connect_lazy(&kit.settings)?;
    db.bootstrap(kit.shutdown.clone(), |_| async { Ok(()) });
    let broker = Arc::new(Broker::new(&kit.settings));
    let consuming = Arc::new(AtomicBool::new(false));
    let tag = format!("{}@{}", kit.settings.replica, kit.settings.instance);
    tokio::spawn(consume_forever(
        db.clone(),
        broker,
        consuming.clone(),
        kit.shutdown.clone(),
        tag,
    ));
    let state = AppState {
        db: db.clone(),
        jwt: kit.jwt(),
    };
    let routes = Router::new()
        .route("/api/shipping/{order_id}", get(shipment))
        .with_state(state);
    let probe: shop_common::health::ReadyProbe = Arc::new(move || {
        let db = db.clone();
        let consuming = consuming.load(Ordering::SeqCst);
        Box::pin(async move {
            let consumer = if consuming {
                Ok(())
            } else {
                Err("not consuming".to_string())
            };
            vec![
                db.check().await,
                DependencyStatus::from_result("rabbitmq", false, consumer),
            ]
        })
    });
    Ok(Service { routes, probe })
}

async fn consume_forever(
    db: Database,
    broker: Arc<Broker>,
    consuming: Arc<AtomicBool>,
    shutdown: CancellationToken,
    tag: String,
) {
    let mut delay = Duration::from_millis(250);
    let mut attempts = 0u32;
    while !shutdown.is_cancelled() {
        if db.schema_ready() {
            attempts += 1;
            match consume(&db, &broker, &consuming, &shutdown, &tag).await {
                Ok(()) => return,
                Err(e) => {
                    consuming.store(false, Ordering::SeqCst);
                    if attempts == 1 || attempts.is_multiple_of(20) {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "order consumer stopped; reconnecting"
                        );
                    }
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

async fn consume(
    db: &Database,
    broker: &Broker,
    consuming: &AtomicBool,
    shutdown: &CancellationToken,
    tag: &str,
) -> anyhow::Result<()> {
    let channel = broker.channel().await?;
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            QUEUE.into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    consuming.store(true, Ordering::SeqCst);
    tracing::info!(queue = QUEUE, "consuming order events");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                consuming.store(false, Ordering::SeqCst);
                let _ = channel.close(200, "shutting down".into()).await;
                return Ok(());
            }
            next = consumer.next() => match next {
                Some(Ok(delivery)) => handle(db, delivery).await?,
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("the broker ended the consumer"),
            }
        }
    }
}

/// Commits first, acknowledges second: a crash in between redelivers the
/// event, and the duplicate is recognised by the order's status.
async fn handle(db: &Database, delivery: Delivery) -> anyhow::Result<()> {
    let event: OrderPaid = match serde_json::from_slice(&delivery.data) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "unreadable order event; dropping it");
            delivery
                .reject(BasicRejectOptions { requeue: false })
                .await?;
            return Ok(());
        }
    };
    match dispatch(db, &event).await {
        Ok(outcome) => {
            tracing::debug!(order_id = %event.order_id, ?outcome, "order event handled");
            delivery.ack(BasicAckOptions::default()).await?;
        }
        Err(e) => {
            tracing::warn!(order_id = %event.order_id, error = %e, "could not dispatch; requeueing");
            delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

#[derive(Debug, PartialEq)]
pub enum Outcome {
    Dispatched,
    Duplicate,
    UnknownOrder,
}

pub async fn dispatch_order(
    pool: &sqlx::MySqlPool,
    event: &OrderPaid,
) -> Result<Outcome, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let status: Option<(String,)> =
        sqlx::query_as("SELECT status FROM orders WHERE id = ? FOR UPDATE")
            .bind(&event.order_id)
            .fetch_optional(&mut *tx)
            .await?;
    let outcome = match status.as_ref().map(|(s,)| s.as_str()) {
        None => Outcome::UnknownOrder,
        Some("DISPATCHED") => Outcome::Duplicate,
        Some(_) => {
            let carrier =
                CARRIERS[event.order_id.bytes().map(usize::from).sum::<usize>() % CARRIERS.len()];
            sqlx::query("INSERT IGNORE INTO shipments (order_id, carrier) VALUES (?, ?)")
                .bind(&event.order_id)
                .bind(carrier)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE orders SET status = 'DISPATCHED', updated_at = NOW(3) WHERE id = ?",
            )
            .bind(&event.order_id)
            .execute(&mut *tx)
            .await?;
            Outcome::Dispatched
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

async fn dispatch(db: &Database, event: &OrderPaid) -> Result<Outcome, sqlx::Error> {
    dispatch_order(&db.pool, event).await
}

#[derive(Serialize)]
struct Shipment {
    order_id: String,
    order_status: String,
    dispatched: bool,
    carrier: Option<String>,
    dispatched_at: Option<chrono::DateTime<chrono::Utc>>,
}

async fn shipment(
    State(state): State<AppState>,
    user: AuthUser,
    Path(order_id): Path<String>,
) -> ApiResult<Json<Shipment>> {
    if order_id.len() != 36 {
        return Err(ApiError::not_found("no such order"));
    }
    let row: Option<(
        String,
        Option<String>,
        Option<chrono::DateTime<chrono::Utc>>,
    )> = {
        let (pool, id, user_id) = (&state.db.pool, order_id.as_str(), user.id);
        state
            .db
            .retry_once(|| async move {
                Ok(sqlx::query_as(
                    "SELECT o.status, s.carrier, s.created_at FROM orders o
                     LEFT JOIN shipments s ON s.order_id = o.id
                     WHERE o.id = ? AND o.user_id = ?",
                )
                .bind(id)
                .bind(user_id)
                .fetch_optional(pool)
                .await?)
            })
            .await?
    };
    let (order_status, carrier, dispatched_at) =
        row.ok_or_else(|| ApiError::not_found("no such order"))?;
    Ok(Json(Shipment {
        order_id,
        order_status,
        dispatched: carrier.is_some(),
        carrier,
        dispatched_at,
    }))
}
