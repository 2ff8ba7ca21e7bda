//! restart-cache (ElastiCache RebootCacheCluster) and restart-broker
//! (Amazon MQ RebootBroker).

use super::{
    clients::AwsClients,
    errors::{ResourceKind, Result},
};
use crate::platform;

const CACHE_NOT_FOUND: &[&str] = &["CacheClusterNotFound", "CacheClusterNotFoundFault"];
const BROKER_NOT_FOUND: &[&str] = &["NotFoundException"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheClusterInfo {
    pub id: String,
    pub arn: Option<String>,
    pub engine: String,
    pub status: String,
    pub node_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: String,
    pub arn: Option<String>,
    pub name: String,
    pub engine: String,
    /// CREATION_IN_PROGRESS, RUNNING, REBOOT_IN_PROGRESS, ...
    pub state: String,
    pub deployment_mode: String,
}

impl AwsClients {
    pub async fn describe_cache_cluster(&self, id: &str) -> Result<CacheClusterInfo> {
        const OP: &str = "DescribeCacheClusters";
        let out = self
            .elasticache
            .describe_cache_clusters()
            .cache_cluster_id(id)
            .show_cache_node_info(true)
            .send()
            .await
            .map_err(|e| {
                self.error_about(OP, e, CACHE_NOT_FOUND, ResourceKind::CacheCluster, id)
            })?;
        let c = out
            .cache_clusters()
            .first()
            .ok_or_else(|| self.not_found(ResourceKind::CacheCluster, id))?;
        Ok(CacheClusterInfo {
            id: c.cache_cluster_id().unwrap_or(id).to_string(),
            arn: c.arn().map(str::to_string),
            engine: c.engine().unwrap_or_default().to_string(),
            status: c.cache_cluster_status().unwrap_or_default().to_string(),
            node_ids: c
                .cache_nodes()
                .iter()
                .filter_map(|n| n.cache_node_id().map(str::to_string))
                .collect(),
        })
    }

    /// Checks that the cluster can be rebooted now (available, with nodes)
    /// and returns it.
    pub async fn check_cache_reboot(&self, id: &str) -> platform::Result<CacheClusterInfo> {
        let cluster = self.describe_cache_cluster(id).await?;
        let refuse =
            |reason: String| platform::Error::refused(format!("ElastiCache cluster {id}"), reason);
        if cluster.status != "available" {
            return Err(refuse(format!("is {}, not available", cluster.status)));
        }
        if cluster.node_ids.is_empty() {
            return Err(refuse("lists no cache nodes to reboot".into()));
        }
        Ok(cluster)
    }

    /// Reboots every node of the cluster (RebootCacheCluster needs the node
    /// ids). The cluster is `rebooting cache cluster nodes` meanwhile; its
    /// data is kept only if persistence is on.
    pub async fn reboot_cache_cluster(&self, id: &str) -> platform::Result<CacheClusterInfo> {
        const OP: &str = "RebootCacheCluster";
        let cluster = self.check_cache_reboot(id).await?;
        let out = self
            .elasticache
            .reboot_cache_cluster()
            .cache_cluster_id(id)
            .set_cache_node_ids_to_reboot(Some(cluster.node_ids.clone()))
            .send()
            .await
            .map_err(|e| {
                self.error_about(OP, e, CACHE_NOT_FOUND, ResourceKind::CacheCluster, id)
            })?;
        let status = out
            .cache_cluster()
            .and_then(|c| c.cache_cluster_status())
            .unwrap_or_default()
            .to_string();
        Ok(CacheClusterInfo { status, ..cluster })
    }

    pub async fn describe_broker(&self, id: &str) -> Result<BrokerInfo> {
        const OP: &str = "DescribeBroker";
        let b = self
            .mq
            .describe_broker()
            .broker_id(id)
            .send()
            .await
            .map_err(|e| self.error_about(OP, e, BROKER_NOT_FOUND, ResourceKind::Broker, id))?;
        Ok(BrokerInfo {
            id: b.broker_id().unwrap_or(id).to_string(),
            arn: b.broker_arn().map(str::to_string),
            name: b.broker_name().unwrap_or_default().to_string(),
            engine: b
                .engine_type()
                .map(|e| e.as_str().to_string())
                .unwrap_or_default(),
            state: b
                .broker_state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            deployment_mode: b
                .deployment_mode()
                .map(|m| m.as_str().to_string())
                .unwrap_or_default(),
        })
    }

    /// Checks that the broker can be rebooted now (RUNNING) and returns it.
    pub async fn check_broker_reboot(&self, id: &str) -> platform::Result<BrokerInfo> {
        let broker = self.describe_broker(id).await?;
        if broker.state != "RUNNING" {
            return Err(platform::Error::refused(
                format!("Amazon MQ broker {id}"),
                format!("is {}, not RUNNING", broker.state),
            ));
        }
        Ok(broker)
    }

    /// RebootBroker; the broker must be RUNNING. Returns the state seen
    /// right after (REBOOT_IN_PROGRESS on AWS).
    pub async fn reboot_broker(&self, id: &str) -> platform::Result<BrokerInfo> {
        const OP: &str = "RebootBroker";
        self.check_broker_reboot(id).await?;
        self.mq
            .reboot_broker()
            .broker_id(id)
            .send()
            .await
            .map_err(|e| self.error_about(OP, e, BROKER_NOT_FOUND, ResourceKind::Broker, id))?;
        Ok(self.describe_broker(id).await?)
    }
}
