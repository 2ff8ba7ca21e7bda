//! Redis access through redis-rs's ConnectionManager, which reconnects by
//! itself after Redis restarts. The first connection is made lazily, so a
//! service starts while Redis is down. Every command has a response timeout.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use crate::{Settings, health::DependencyStatus};

pub struct Redis {
    client: redis::Client,
    manager: OnceCell<ConnectionManager>,
    timeout: Duration,
}

impl Redis {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let client = redis::Client::open(settings.redis_url.as_str())
            .map_err(|e| anyhow::anyhow!("invalid redis_url: {e}"))?;
        Ok(Self {
            client,
            manager: OnceCell::new(),
            timeout: settings.outbound_timeout,
        })
    }

    /// A connection handle; cheap to clone, multiplexed.
    pub async fn conn(&self) -> redis::RedisResult<ConnectionManager> {
        let manager = self
            .manager
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                ConnectionManager::new_with_config(self.client.clone(), config).await
            })
            .await?;
        Ok(manager.clone())
    }

    /// PING. An optional cache (catalogue reads through it) is given
    /// `broker::OPTIONAL_CHECK` at most, so a cache that hangs cannot make
    /// readiness slower than the load balancer's check timeout.
    pub async fn check(&self, required: bool) -> DependencyStatus {
        let result = async {
            let mut conn = self.conn().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        let deadline = if required {
            self.timeout
        } else {
            crate::broker::OPTIONAL_CHECK.min(self.timeout)
        };
        let result = match tokio::time::timeout(deadline, result).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_string()),
        };
        DependencyStatus::from_result("redis", required, result)
    }
}
