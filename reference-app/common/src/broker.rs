//! RabbitMQ access with lapin. One connection per process, re-established on
//! demand after the broker restarts; the topology (a durable topic exchange
//! and a durable queue bound to it) is declared on every new channel, so a
//! fresh broker is set up by whichever service connects first.

use std::time::Duration;

use lapin::{
    Channel, Connection, ConnectionProperties, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::FieldTable,
};
use tokio::sync::Mutex;

use crate::{Settings, health::DependencyStatus};

pub const EXCHANGE: &str = "shop.orders";
pub const QUEUE: &str = "shipping.order-paid";
pub const ORDER_PAID: &str = "order.paid";

/// The longest a readiness check waits for an optional broker.
pub const OPTIONAL_CHECK: Duration = Duration::from_millis(300);

pub struct Broker {
    url: String,
    connection: Mutex<Option<Connection>>,
    timeout: Duration,
}

impl Broker {
    pub fn new(settings: &Settings) -> Self {
        Self {
            url: settings.amqp_url.clone(),
            connection: Mutex::new(None),
            timeout: settings.outbound_timeout,
        }
    }

    /// A new channel on a live connection, with the topology declared.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        let mut guard = self.connection.lock().await;
        let alive = guard.as_ref().is_some_and(|c| c.status().connected());
        if !alive {
            if let Some(old) = guard.take() {
                let _ =
                    tokio::time::timeout(self.timeout, old.close(0, "reconnecting".into())).await;
            }
            let conn = tokio::time::timeout(
                self.timeout,
                Connection::connect(&self.url, ConnectionProperties::default()),
            )
            .await
            .map_err(|_| anyhow::anyhow!("connecting to RabbitMQ timed out"))??;
            *guard = Some(conn);
        }
        let conn = guard
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no connection"))?;
        let channel = tokio::time::timeout(self.timeout, conn.create_channel())
            .await
            .map_err(|_| anyhow::anyhow!("opening a channel timed out"))??;
        drop(guard);
        tokio::time::timeout(self.timeout, declare_topology(&channel))
            .await
            .map_err(|_| anyhow::anyhow!("declaring the topology timed out"))??;
        Ok(channel)
    }

    /// Drops the connection (closing it within the timeout), so the next
    /// `channel` opens a fresh one. After a publish or a confirm timed out,
    /// the connection may sit on a link that lost frames (a partition that
    /// healed): it still looks connected, but what was in flight never
    /// comes back.
    pub async fn discard(&self) {
        let old = self.connection.lock().await.take();
        if let Some(old) = old {
            let _ = tokio::time::timeout(self.timeout, old.close(0, "discarded".into())).await;
        }
    }

    pub async fn is_connected(&self) -> bool {
        self.connection
            .lock()
            .await
            .as_ref()
            .is_some_and(|c| c.status().connected())
    }

    /// Whether a channel opens. An optional broker (orders: paid orders
    /// wait in the outbox) is given `OPTIONAL_CHECK` at most: a broker that
    /// hangs must not make readiness slower than the load balancer's check
    /// timeout, or the service is taken out for a dependency it can do
    /// without.
    pub async fn check(&self, required: bool) -> DependencyStatus {
        let probe = async {
            match self.channel().await {
                Ok(ch) => {
                    let _ = tokio::time::timeout(self.timeout, ch.close(200, "probe".into())).await;
                    Ok(())
                }
                Err(e) => Err(format!("{e:#}")),
            }
        };
        let deadline = if required {
            self.timeout
        } else {
            OPTIONAL_CHECK.min(self.timeout)
        };
        let result = match tokio::time::timeout(deadline, probe).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {deadline:?}")),
        };
        DependencyStatus::from_result("rabbitmq", required, result)
    }
}

pub async fn declare_topology(channel: &Channel) -> lapin::Result<()> {
    channel
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            QUEUE.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            QUEUE.into(),
            EXCHANGE.into(),
            ORDER_PAID.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}
