//! RDS: describe a DB instance or Aurora cluster, fail it over, and read
//! its failover events (when RDS says a Multi-AZ failover started and
//! completed; the instance's zone field is updated late).

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
    /// db.t3.medium, ...
    pub instance_class: Option<String>,
    /// The weekly maintenance window, `ddd:hh24:mi-ddd:hh24:mi` in UTC.
    pub maintenance_window: Option<String>,
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

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Minutes since Monday 00:00 UTC.
pub fn minute_of_week(now: chrono::DateTime<chrono::Utc>) -> u32 {
    use chrono::{Datelike, Timelike};
    now.weekday().num_days_from_monday() * 24 * 60 + now.hour() * 60 + now.minute()
}

/// `ddd:hh24:mi` as minutes since Monday 00:00.
fn week_minute(text: &str) -> Option<u32> {
    let mut parts = text.trim().splitn(3, ':');
    let name = parts.next()?;
    let day = DAYS.iter().position(|d| d.eq_ignore_ascii_case(name))?;
    let hour: u32 = parts.next()?.parse().ok()?;
    let minute: u32 = parts.next()?.parse().ok()?;
    (hour < 24 && minute < 60).then(|| day as u32 * 24 * 60 + hour * 60 + minute)
}

/// Whether `minute` (of the week) is inside RDS's weekly window
/// `ddd:hh24:mi-ddd:hh24:mi` (which may wrap past Sunday); false for a
/// window that does not parse.
pub fn in_window(window: &str, minute: u32) -> bool {
    let Some((from, to)) = window.split_once('-') else {
        return false;
    };
    let (Some(from), Some(to)) = (week_minute(from), week_minute(to)) else {
        return false;
    };
    if from <= to {
        (from..to).contains(&minute)
    } else {
        minute >= from || minute < to
    }
}

/// Where a Multi-AZ failover is, as an RDS event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverPhase {
    Started,
    Completed,
}

impl FailoverPhase {
    /// The phase an event of the `failover` category reports. DescribeEvents
    /// returns no event id, so the message tells them apart (Amazon RDS User
    /// Guide, "Amazon RDS event categories and event messages", DB instance
    /// events): RDS-EVENT-0013 "Multi-AZ instance failover started.",
    /// RDS-EVENT-0015 "Multi-AZ failover to standby complete - DNS
    /// propagation may take a few minutes." and RDS-EVENT-0049 "Multi-AZ
    /// instance failover completed."; the older wording ("A Multi-AZ
    /// failover that resulted in the promotion of a standby instance has
    /// started.", "A Multi-AZ failover has completed.") reads the same.
    /// Anything else (a partial failover recovered, an activation, ...) is
    /// none.
    pub fn of_message(message: &str) -> Option<Self> {
        let m = message.to_ascii_lowercase();
        if !m.contains("failover") || m.contains("partial") {
            return None;
        }
        if m.contains("complete") {
            Some(Self::Completed)
        } else if m.contains("started") {
            Some(Self::Started)
        } else {
            None
        }
    }
}

/// One failover event of a DB instance, with RDS's own time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverEvent {
    pub phase: FailoverPhase,
    pub at: std::time::SystemTime,
    pub message: String,
}

impl AwsClients {
    /// The instance's failover events since `since`, oldest first
    /// (DescribeEvents, source type db-instance, category failover).
    pub async fn failover_events(
        &self,
        instance: &str,
        since: std::time::SystemTime,
    ) -> Result<Vec<FailoverEvent>> {
        const OP: &str = "DescribeEvents";
        let mut events = Vec::new();
        let mut marker = None;
        loop {
            let out = self
                .rds
                .describe_events()
                .source_identifier(instance)
                .source_type(aws_sdk_rds::types::SourceType::DbInstance)
                .start_time(aws_smithy_types::DateTime::from(since))
                .event_categories("failover")
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| self.error(OP, e))?;
            for e in out.events() {
                let message = e.message().unwrap_or_default();
                let (Some(phase), Some(at)) = (
                    FailoverPhase::of_message(message),
                    e.date()
                        .and_then(|d| std::time::SystemTime::try_from(*d).ok()),
                ) else {
                    continue;
                };
                events.push(FailoverEvent {
                    phase,
                    at,
                    message: message.to_string(),
                });
            }
            match out.marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        events.sort_by_key(|e| e.at);
        Ok(events)
    }

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
            instance_class: d.db_instance_class().map(str::to_string),
            maintenance_window: d.preferred_maintenance_window().map(str::to_string),
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
                    return Err(refuse(format!(
                        "is {}, not available{}",
                        db.status,
                        if db.status == "backing-up" {
                            " (a failover now would race the backup; keep game days out of the \
                             backup window)"
                        } else {
                            ""
                        }
                    )));
                }
                if let Some(window) = &db.maintenance_window
                    && in_window(window, minute_of_week(chrono::Utc::now()))
                {
                    return Err(refuse(format!(
                        "is in its maintenance window ({window} UTC): RDS may be patching it; \
                         fail it over outside the window"
                    )));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_inside_the_weekly_maintenance_window_is_found_even_across_sunday_night() {
        let sun_0430 = 6 * 24 * 60 + 4 * 60 + 30;
        assert!(in_window("sun:04:30-sun:05:30", sun_0430));
        assert!(in_window("sun:04:30-sun:05:30", sun_0430 + 59));
        assert!(!in_window("sun:04:30-sun:05:30", sun_0430 + 60));
        assert!(!in_window("sun:04:30-sun:05:30", 0));
        assert!(in_window("sun:23:30-mon:00:30", 10), "wraps past Sunday");
        assert!(!in_window("sun:23:30-mon:00:30", 31));
        assert!(!in_window("nonsense", 10));
        let monday_noon = chrono::DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(minute_of_week(monday_noon), 12 * 60);
    }
}
