//! restart-cache and restart-broker (Amazon MQ RebootBroker).
//!
//! restart-cache is a failover of the cache's primary: ElastiCache
//! TestFailover on node group 0001 of a replication group (a primary and a
//! replica in another zone, automatic failover on), which promotes the
//! replica and keeps the data. `reboot: true` is RebootCacheCluster, which
//! the API reference says "causes the contents of the cache (for each cache
//! node being rebooted) to be lost"; on a replication group it reboots the
//! primary's cluster.

use super::{
    clients::AwsClients,
    errors::{ResourceKind, Result},
};
use crate::platform;

const CACHE_NOT_FOUND: &[&str] = &["CacheClusterNotFound", "CacheClusterNotFoundFault"];
const GROUP_NOT_FOUND: &[&str] = &["ReplicationGroupNotFoundFault", "ReplicationGroupNotFound"];

/// The node group of a Valkey or Redis OSS (cluster mode disabled)
/// replication group: it has exactly one, `0001` (API reference, NodeGroup).
pub const NODE_GROUP: &str = "0001";
const BROKER_NOT_FOUND: &[&str] = &["NotFoundException"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheClusterInfo {
    pub id: String,
    pub arn: Option<String>,
    pub engine: String,
    pub status: String,
    pub node_ids: Vec<String>,
}

/// One node of a replication group's node group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheMember {
    /// The member cluster holding the node (RebootCacheCluster's target).
    pub cluster_id: String,
    pub node_id: Option<String>,
    /// `primary` or `replica`.
    pub role: Option<String>,
    pub zone: Option<String>,
}

/// An ElastiCache replication group (cluster mode disabled: one node group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationGroupInfo {
    pub id: String,
    pub arn: Option<String>,
    /// creating, available, modifying, deleting, create-failed, snapshotting.
    pub status: String,
    /// enabled, disabled, enabling, disabling.
    pub automatic_failover: String,
    /// enabled, disabled.
    pub multi_az: String,
    pub primary_endpoint: Option<String>,
    /// The members of node group [`NODE_GROUP`].
    pub members: Vec<CacheMember>,
    pub cluster_mode_enabled: bool,
}

impl ReplicationGroupInfo {
    pub fn primary(&self) -> Option<&CacheMember> {
        self.members
            .iter()
            .find(|m| m.role.as_deref() == Some("primary"))
    }
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
    /// ids). The cluster is `rebooting cache cluster nodes` meanwhile; the
    /// contents of every rebooted node are lost.
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

    pub async fn describe_replication_group(&self, id: &str) -> Result<ReplicationGroupInfo> {
        const OP: &str = "DescribeReplicationGroups";
        let out = self
            .elasticache
            .describe_replication_groups()
            .replication_group_id(id)
            .send()
            .await
            .map_err(|e| {
                self.error_about(OP, e, GROUP_NOT_FOUND, ResourceKind::ReplicationGroup, id)
            })?;
        let g = out
            .replication_groups()
            .first()
            .ok_or_else(|| self.not_found(ResourceKind::ReplicationGroup, id))?;
        let node_group = g
            .node_groups()
            .iter()
            .find(|n| n.node_group_id() == Some(NODE_GROUP));
        let endpoint = |e: &aws_sdk_elasticache::types::Endpoint| {
            Some(format!("{}:{}", e.address()?, e.port()?))
        };
        Ok(ReplicationGroupInfo {
            id: g.replication_group_id().unwrap_or(id).to_string(),
            arn: g.arn().map(str::to_string),
            status: g.status().unwrap_or_default().to_string(),
            automatic_failover: g
                .automatic_failover()
                .map(|a| a.as_str().to_string())
                .unwrap_or_default(),
            multi_az: g
                .multi_az()
                .map(|m| m.as_str().to_string())
                .unwrap_or_default(),
            primary_endpoint: node_group
                .and_then(|n| n.primary_endpoint())
                .and_then(endpoint),
            members: node_group
                .map(|n| n.node_group_members())
                .unwrap_or_default()
                .iter()
                .map(|m| CacheMember {
                    cluster_id: m.cache_cluster_id().unwrap_or_default().to_string(),
                    node_id: m.cache_node_id().map(str::to_string),
                    role: m.current_role().map(str::to_string),
                    zone: m.preferred_availability_zone().map(str::to_string),
                })
                .collect(),
            cluster_mode_enabled: g.cluster_enabled().unwrap_or(false),
        })
    }

    /// Checks that TestFailover can run on the group now: available, with
    /// automatic failover on, cluster mode disabled, and a replica to
    /// promote in node group 0001 (TestFailover's documented constraints).
    pub async fn check_cache_failover(&self, id: &str) -> platform::Result<ReplicationGroupInfo> {
        let group = self.describe_replication_group(id).await?;
        let refuse = |reason: String| {
            platform::Error::refused(format!("ElastiCache replication group {id}"), reason)
        };
        if group.status != "available" {
            return Err(refuse(format!("is {}, not available", group.status)));
        }
        if group.cluster_mode_enabled {
            return Err(refuse(
                "runs in cluster mode: gameday fails over node group 0001 of a cluster-mode-disabled group only".into(),
            ));
        }
        if group.automatic_failover != "enabled" {
            return Err(refuse(format!(
                "has automatic failover {}: TestFailover needs it enabled (and a replica)",
                if group.automatic_failover.is_empty() {
                    "off"
                } else {
                    group.automatic_failover.as_str()
                }
            )));
        }
        if group.members.len() < 2 || group.primary().is_none() {
            return Err(refuse(format!(
                "has {} node(s) in node group {NODE_GROUP}: a failover needs a primary and a replica",
                group.members.len()
            )));
        }
        Ok(group)
    }

    /// The restart-cache fault: TestFailover on node group 0001, which
    /// promotes the replica (the data stays). Returns the group as it was.
    pub async fn fail_over_cache(&self, id: &str) -> platform::Result<ReplicationGroupInfo> {
        const OP: &str = "TestFailover";
        let group = self.check_cache_failover(id).await?;
        self.elasticache
            .test_failover()
            .replication_group_id(id)
            .node_group_id(NODE_GROUP)
            .send()
            .await
            .map_err(|e| {
                self.error_about(OP, e, GROUP_NOT_FOUND, ResourceKind::ReplicationGroup, id)
            })?;
        Ok(group)
    }

    /// The cluster `restart-cache: { reboot: true }` reboots: the primary's
    /// member cluster of a replication group.
    pub async fn primary_cluster(&self, group: &str) -> platform::Result<String> {
        let g = self.describe_replication_group(group).await?;
        g.primary().map(|m| m.cluster_id.clone()).ok_or_else(|| {
            platform::Error::refused(
                format!("ElastiCache replication group {group}"),
                format!("names no primary in node group {NODE_GROUP}"),
            )
        })
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
