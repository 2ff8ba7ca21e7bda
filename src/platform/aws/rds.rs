//! RDS: describe a DB instance or Aurora cluster, and fail it over.

use super::{
    clients::AwsClients,
    errors::{ResourceKind, Result},
};
use crate::platform;
use crate::scenario::AwsDatabase;

const INSTANCE_NOT_FOUND: &[&str] = &["DBInstanceNotFound", "DBInstanceNotFoundFault"];
const CLUSTER_NOT_FOUND: &[&str] = &["DBClusterNotFoundFault", "DBClusterNotFound"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbInstanceInfo {
    pub id: String,
    pub arn: Option<String>,
    pub engine: String,
    pub engine_version: String,
    pub status: String,
    pub multi_az: bool,
    pub availability_zone: Option<String>,
    pub secondary_availability_zone: Option<String>,
    pub cluster_id: Option<String>,
    pub replica_of: Option<String>,
    pub read_replicas: Vec<String>,
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbClusterMember {
    pub instance_id: String,
    pub is_writer: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbClusterInfo {
    pub id: String,
    pub arn: Option<String>,
    pub endpoint: Option<String>,
    pub engine: String,
    pub status: String,
    pub members: Vec<DbClusterMember>,
}

impl DbClusterInfo {
    pub fn writer(&self) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.is_writer)
            .map(|m| m.instance_id.as_str())
    }

    pub fn readers(&self) -> impl Iterator<Item = &str> {
        self.members
            .iter()
            .filter(|m| !m.is_writer)
            .map(|m| m.instance_id.as_str())
    }
}

/// What a failover did (or, from [`AwsClients::check_db_failover`], would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failover {
    /// RebootDBInstance ForceFailover=true: the standby in
    /// `standby_az` becomes the primary (RDS does not say when).
    InstanceReboot {
        instance: String,
        primary_az: Option<String>,
        standby_az: Option<String>,
    },
    /// FailoverDBCluster: `to` (or a reader RDS picks) becomes the writer.
    Cluster {
        cluster: String,
        from: Option<String>,
        to: Option<String>,
    },
}

impl AwsClients {
    pub async fn describe_db_instance(&self, id: &str) -> Result<DbInstanceInfo> {
        const OP: &str = "DescribeDBInstances";
        let out = self
            .rds
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
            .map_err(|e| {
                self.error_about(OP, e, INSTANCE_NOT_FOUND, ResourceKind::DbInstance, id)
            })?;
        let d = out
            .db_instances()
            .first()
            .ok_or_else(|| self.not_found(ResourceKind::DbInstance, id))?;
        Ok(DbInstanceInfo {
            id: d.db_instance_identifier().unwrap_or(id).to_string(),
            arn: d.db_instance_arn().map(str::to_string),
            engine: d.engine().unwrap_or_default().to_string(),
            engine_version: d.engine_version().unwrap_or_default().to_string(),
            status: d.db_instance_status().unwrap_or_default().to_string(),
            multi_az: d.multi_az().unwrap_or(false),
            availability_zone: d.availability_zone().map(str::to_string),
            secondary_availability_zone: d.secondary_availability_zone().map(str::to_string),
            cluster_id: d.db_cluster_identifier().map(str::to_string),
            replica_of: d
                .read_replica_source_db_instance_identifier()
                .map(str::to_string),
            read_replicas: d.read_replica_db_instance_identifiers().to_vec(),
            endpoint: d
                .endpoint()
                .and_then(|e| Some(format!("{}:{}", e.address()?, e.port()?))),
        })
    }

    pub async fn describe_db_cluster(&self, id: &str) -> Result<DbClusterInfo> {
        const OP: &str = "DescribeDBClusters";
        let out = self
            .rds
            .describe_db_clusters()
            .db_cluster_identifier(id)
            .send()
            .await
            .map_err(|e| self.error_about(OP, e, CLUSTER_NOT_FOUND, ResourceKind::DbCluster, id))?;
        let c = out
            .db_clusters()
            .first()
            .ok_or_else(|| self.not_found(ResourceKind::DbCluster, id))?;
        Ok(DbClusterInfo {
            id: c.db_cluster_identifier().unwrap_or(id).to_string(),
            arn: c.db_cluster_arn().map(str::to_string),
            endpoint: c.endpoint().map(str::to_string),
            engine: c.engine().unwrap_or_default().to_string(),
            status: c.status().unwrap_or_default().to_string(),
            members: c
                .db_cluster_members()
                .iter()
                .map(|m| DbClusterMember {
                    instance_id: m.db_instance_identifier().unwrap_or_default().to_string(),
                    is_writer: m.is_cluster_writer().unwrap_or(false),
                })
                .collect(),
        })
    }

    /// Checks that the target can be failed over and says how, without
    /// acting (for `validate` / `plan`). Refuses, with the reason, a
    /// single-AZ instance, a read replica, an Aurora member addressed as an
    /// instance, a cluster without a reader, and anything not `available`.
    pub async fn check_db_failover(&self, target: &AwsDatabase) -> platform::Result<Failover> {
        match target {
            AwsDatabase::Instance(id) => {
                let db = self.describe_db_instance(id).await?;
                let refuse = |reason: String| {
                    platform::Error::refused(format!("RDS DB instance {id}"), reason)
                };
                if let Some(cluster) = &db.cluster_id {
                    return Err(refuse(format!(
                        "is a member of the Aurora cluster {cluster}: fail the cluster over (database: {{ cluster: {cluster} }})"
                    )));
                }
                if let Some(source) = &db.replica_of {
                    return Err(refuse(format!(
                        "is a read replica of {source}, which has no standby to fail over to"
                    )));
                }
                if !db.multi_az {
                    return Err(refuse(
                        "is a single-AZ instance: it has no standby, so a forced failover is impossible (make it Multi-AZ)".into(),
                    ));
                }
                if db.status != "available" {
                    return Err(refuse(format!("is {}, not available", db.status)));
                }
                Ok(Failover::InstanceReboot {
                    instance: db.id,
                    primary_az: db.availability_zone,
                    standby_az: db.secondary_availability_zone,
                })
            }
            AwsDatabase::Cluster(id) => {
                let c = self.describe_db_cluster(id).await?;
                let refuse = |reason: String| {
                    platform::Error::refused(format!("RDS DB cluster {id}"), reason)
                };
                if c.readers().next().is_none() {
                    return Err(refuse(
                        "has no reader instance to promote (add one to the cluster)".into(),
                    ));
                }
                if c.status != "available" {
                    return Err(refuse(format!("is {}, not available", c.status)));
                }
                Ok(Failover::Cluster {
                    cluster: c.id.clone(),
                    from: c.writer().map(str::to_string),
                    to: c.readers().next().map(str::to_string),
                })
            }
        }
    }

    /// The `db-failover` fault: checks (see [`Self::check_db_failover`]),
    /// then RebootDBInstance ForceFailover=true or FailoverDBCluster.
    pub async fn fail_over_database(&self, target: &AwsDatabase) -> platform::Result<Failover> {
        let plan = self.check_db_failover(target).await?;
        match &plan {
            Failover::InstanceReboot { instance, .. } => {
                const OP: &str = "RebootDBInstance";
                self.rds
                    .reboot_db_instance()
                    .db_instance_identifier(instance)
                    .force_failover(true)
                    .send()
                    .await
                    .map_err(|e| {
                        self.error_about(
                            OP,
                            e,
                            INSTANCE_NOT_FOUND,
                            ResourceKind::DbInstance,
                            instance,
                        )
                    })?;
            }
            Failover::Cluster { cluster, to, .. } => {
                const OP: &str = "FailoverDBCluster";
                self.rds
                    .failover_db_cluster()
                    .db_cluster_identifier(cluster)
                    .set_target_db_instance_identifier(to.clone())
                    .send()
                    .await
                    .map_err(|e| {
                        self.error_about(OP, e, CLUSTER_NOT_FOUND, ResourceKind::DbCluster, cluster)
                    })?;
            }
        }
        Ok(plan)
    }
}
