//! The outbox relay: publishes unsent outbox events to the durable exchange
//! as persistent messages, waits for the broker's publisher confirms, and only
//! then marks them sent. Several replicas share the work with
//! `FOR UPDATE SKIP LOCKED`. Delivery is at-least-once; shipping ignores
//! duplicates.

use std::{sync::Arc, time::Duration};

use lapin::{
    BasicProperties, Channel,
    options::{BasicPublishOptions, ConfirmSelectOptions},
};
use shop_common::{
    broker::{Broker, EXCHANGE, ORDER_PAID},
    db::Database,
    server::CancellationToken,
};
use tokio::sync::Notify;

const BATCH: usize = 100;

pub(crate) async fn run(
    db: Database,
    broker: Arc<Broker>,
    wakeup: Arc<Notify>,
    shutdown: CancellationToken,
    interval: Duration,
    timeout: Duration,
) {
    let mut channel: Option<Channel> = None;
    let mut failures = 0u32;
    loop {
        let pause = if failures == 0 {
            interval
        } else {
            (interval * failures).min(Duration::from_secs(2))
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = wakeup.notified() => {}
            _ = tokio::time::sleep(pause) => {}
        }
        if !db.schema_ready() {
            continue;
        }
        loop {
            match publish_batch(&db, &broker, &mut channel, timeout).await {
                Ok(n) => {
                    failures = 0;
                    if n < BATCH {
                        break;
                    }
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(20) {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "outbox relay: publishing failed; will retry"
                        );
                    }
                    channel = None;
                    // What was in flight may never be answered on this
                    // connection: start afresh (its messages stay unsent in
                    // the outbox and go out again; shipping ignores
                    // duplicates).
                    broker.discard().await;
                    break;
                }
            }
        }
    }
}

async fn confirm_channel(broker: &Broker) -> anyhow::Result<Channel> {
    let channel = broker.channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

async fn publish_batch(
    db: &Database,
    broker: &Broker,
    channel: &mut Option<Channel>,
    timeout: Duration,
) -> anyhow::Result<usize> {
    let mut tx = db.pool.begin().await?;
    let rows: Vec<(u64, String, String)> = sqlx::query_as(
        "SELECT id, order_id, payload FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED",
    )
    .bind(BATCH as u32)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let ch = match channel.as_ref().filter(|c| c.status().connected()) {
        Some(c) => c.clone(),
        None => {
            let c = confirm_channel(broker).await?;
            *channel = Some(c.clone());
            c
        }
    };
    let mut confirms = Vec::with_capacity(rows.len());
    for (_, order_id, payload) in &rows {
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(order_id.as_str().into());
        let confirm = tokio::time::timeout(
            timeout,
            ch.basic_publish(
                EXCHANGE.into(),
                ORDER_PAID.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                payload.as_bytes(),
                properties,
            ),
        )
        .await??;
        confirms.push(confirm);
    }
    for confirm in confirms {
        let confirmation = tokio::time::timeout(timeout, confirm).await??;
        if !confirmation.is_ack() {
            anyhow::bail!("the broker refused a message (nack)");
        }
        if confirmation.take_message().is_some() {
            anyhow::bail!("the broker returned an unroutable message");
        }
    }
    let mut update = sqlx::QueryBuilder::new("UPDATE outbox SET sent_at = NOW(3) WHERE id IN (");
    let mut ids = update.separated(", ");
    for (id, _, _) in &rows {
        ids.push_bind(*id);
    }
    update.push(")");
    update.build().execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(rows.len())
}
