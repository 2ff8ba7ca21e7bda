//! What the aws platform may act on and watch: the resources the scenario's
//! target names, and those its stack's outputs name. Nothing else is ever
//! touched (DESIGN.md section 3, "Cloud safety"); a name the scenario gives
//! wins over the stack's.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    budget, clients::AwsClients, errors::Error, group::PolicyAlarm, stack::StackInfo,
    watch::Watched,
};
use crate::platform;
use crate::scenario::{AwsDatabase, AwsTarget};

/// Stack statuses a run can use.
const USABLE: &[&str] = &[
    "CREATE_COMPLETE",
    "UPDATE_COMPLETE",
    "UPDATE_ROLLBACK_COMPLETE",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_COMPLETE",
];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub stack: Option<String>,
    /// The Auto Scaling group's name.
    pub group: Option<String>,
    pub database: Option<AwsDatabase>,
    /// The ElastiCache replication group's id (the stack's; or the
    /// scenario's `cache` when it names one): restart-cache fails it over.
    pub cache_group: Option<String>,
    /// The ElastiCache cluster's id, when the cache is a cluster outside a
    /// replication group (only `reboot: true` can hit it).
    pub cache: Option<String>,
    /// The Amazon MQ broker's id.
    pub broker: Option<String>,
    /// Load balancers' ARNs (the stack's).
    pub load_balancers: Vec<String>,
    /// The stack's health alarms (its `AlarmNames` output: 5xx, unhealthy
    /// hosts, the database, replica lag; not its load alarms).
    pub alarms: Vec<String>,
    pub entry_url: Option<String>,
    /// ARNs of what was resolved, by id (for `plan`).
    pub arns: BTreeMap<String, String>,
    /// The MariaDB pool of each service on each instance, when known: the
    /// scenario's `DatabasePoolSize` parameter, else the template's default
    /// for a stack.
    pub pool_size: Option<u32>,
}

/// An output moto leaves as `None` when it skipped the resource.
fn real(value: &str) -> Option<String> {
    let v = value.trim();
    (!v.is_empty() && v != "None").then(|| v.to_string())
}

impl Resources {
    /// What the target names, before anything is asked of AWS.
    pub fn named(target: &AwsTarget) -> Self {
        Self {
            stack: target.stack.clone(),
            group: target.auto_scaling_group.clone(),
            database: target.database.clone(),
            cache: target.cache.clone(),
            broker: target.broker.clone(),
            entry_url: target.entry_url.clone(),
            pool_size: target
                .parameters
                .get("DatabasePoolSize")
                .and_then(|p| p.trim().parse().ok()),
            ..Self::default()
        }
    }

    /// Adds what the stack's outputs name where the target named nothing.
    pub fn with_outputs(mut self, outputs: &BTreeMap<String, String>) -> Self {
        let out = |key: &str| outputs.get(key).and_then(|v| real(v));
        self.group = self.group.or_else(|| out("AutoScalingGroupName"));
        self.database = self
            .database
            .or_else(|| out("DatabaseInstanceId").map(AwsDatabase::Instance));
        if self.cache.is_none() && self.cache_group.is_none() {
            self.cache_group = out("CacheReplicationGroupId");
            self.cache = out("CacheClusterId");
        }
        self.broker = self.broker.or_else(|| out("BrokerId"));
        self.entry_url = self.entry_url.or_else(|| out("EntryUrl"));
        self.load_balancers = out("LoadBalancerArn").into_iter().collect();
        self.pool_size = self.pool_size.or(Some(budget::TEMPLATE_DEFAULT_POOL));
        self.alarms = outputs
            .get("AlarmNames")
            .map(|names| names.split(',').filter_map(real).collect())
            .unwrap_or_default();
        self
    }

    /// What the watchers poll: these resources, the stack's alarms and the
    /// group's scaling alarms.
    pub fn watched(&self, policy_alarms: &[PolicyAlarm]) -> Watched {
        let mut alarms: Vec<String> = self.alarms.clone();
        for a in policy_alarms {
            if !alarms.contains(&a.alarm) {
                alarms.push(a.alarm.clone());
            }
        }
        Watched {
            group: self.group.clone(),
            database: self.database.clone(),
            cache: self.cache.clone(),
            cache_group: self.cache_group.clone(),
            broker: self.broker.clone(),
            alarms,
            scaling_alarms: policy_alarms.iter().map(|a| a.alarm.clone()).collect(),
            scale_out_alarms: policy_alarms
                .iter()
                .filter(|a| a.scales_out)
                .map(|a| a.alarm.clone())
                .collect::<BTreeSet<_>>(),
        }
    }

    /// `id (ARN)`, or the id alone.
    pub fn with_arn(&self, id: &str) -> String {
        match self.arns.get(id) {
            Some(arn) => format!("{id} ({arn})"),
            None => id.to_string(),
        }
    }
}

/// Refuses a stack a run cannot use, saying what to do.
pub fn check_usable(stack: &StackInfo) -> platform::Result<()> {
    if USABLE.contains(&stack.status.as_str()) {
        return Ok(());
    }
    let what = format!("stack {}", stack.name);
    Err(match stack.status.as_str() {
        "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "CREATE_FAILED" => platform::Error::refused(
            what,
            format!(
                "is {}: its creation failed{}; `gameday down --scenario FILE` deletes it, then \
                 `gameday up` or a run creates it again",
                stack.status,
                stack
                    .reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
        ),
        s if s.ends_with("_IN_PROGRESS") => platform::Error::refused(
            what,
            format!("is {s}: wait until CloudFormation is done with it"),
        ),
        s => platform::Error::refused(what, format!("is {s}, which a run cannot use")),
    })
}

/// The target's resources: the stack's outputs (the stack must exist and
/// be usable) and every named resource, each checked to exist.
pub async fn resolve(aws: &AwsClients, target: &AwsTarget) -> platform::Result<Resources> {
    let mut r = Resources::named(target);
    if let Some(stack) = &target.stack {
        let info = aws.describe_stack(stack).await?;
        check_usable(&info)?;
        r = r.with_outputs(&info.outputs);
    }
    if let Some(group) = &r.group {
        let g = aws.describe_group(group).await?;
        if let Some(arn) = g.arn {
            r.arns.insert(g.name, arn);
        }
    }
    match &r.database {
        Some(AwsDatabase::Instance(id)) => {
            if let Some(arn) = aws.describe_db_instance(id).await?.arn {
                r.arns.insert(id.clone(), arn);
            }
        }
        Some(AwsDatabase::Cluster(id)) => {
            if let Some(arn) = aws.describe_db_cluster(id).await?.arn {
                r.arns.insert(id.clone(), arn);
            }
        }
        None => {}
    }
    // The scenario's `cache` is a replication group or a cluster.
    if let Some(id) = r.cache.clone() {
        match aws.describe_replication_group(&id).await {
            Ok(group) => {
                r.cache = None;
                r.cache_group = Some(id.clone());
                if let Some(arn) = group.arn {
                    r.arns.insert(id, arn);
                }
            }
            Err(Error::NotFound { .. }) => {
                if let Some(arn) = aws.describe_cache_cluster(&id).await?.arn {
                    r.arns.insert(id, arn);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(id) = &r.cache_group
        && !r.arns.contains_key(id)
        && let Some(arn) = aws.describe_replication_group(id).await?.arn
    {
        r.arns.insert(id.clone(), arn);
    }
    if let Some(id) = &r.broker
        && let Some(arn) = aws.describe_broker(id).await?.arn
    {
        r.arns.insert(id.clone(), arn);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> AwsTarget {
        AwsTarget {
            region: None,
            endpoint_url: None,
            stack: Some("shop".into()),
            auto_scaling_group: None,
            database: None,
            cache: Some("named-cache".into()),
            broker: None,
            entry_url: None,
            parameters: BTreeMap::new(),
        }
    }

    #[test]
    fn the_stack_s_outputs_fill_in_what_the_scenario_does_not_name() {
        let outputs: BTreeMap<String, String> = [
            ("AutoScalingGroupName", "shop-ShopGroup-1"),
            ("DatabaseInstanceId", "shop-db"),
            ("CacheClusterId", "stack-cache"),
            ("EntryUrl", "http://shop-alb.example.com"),
            ("LoadBalancerArn", "arn:aws:elasticloadbalancing:lb"),
            ("AlarmNames", "cpu,None,unhealthy-hosts,"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let r = Resources::named(&target()).with_outputs(&outputs);
        assert_eq!(r.group.as_deref(), Some("shop-ShopGroup-1"));
        assert_eq!(r.database, Some(AwsDatabase::Instance("shop-db".into())));
        assert_eq!(
            r.cache.as_deref(),
            Some("named-cache"),
            "the scenario's name wins"
        );
        assert_eq!(r.broker, None, "moto skips the broker: no output");
        assert_eq!(
            r.alarms,
            ["cpu", "unhealthy-hosts"],
            "moto's `None`s are dropped"
        );
        let watched = r.watched(&[PolicyAlarm {
            alarm: "TargetTracking-shop-AlarmHigh-1".into(),
            policy: "cpu60".into(),
            scales_out: true,
        }]);
        assert_eq!(watched.alarms.len(), 3);
        assert!(
            watched
                .scale_out_alarms
                .contains("TargetTracking-shop-AlarmHigh-1")
        );
    }

    #[test]
    fn a_stack_whose_creation_failed_is_refused_with_how_to_delete_it() {
        let info = StackInfo {
            id: "id".into(),
            name: "shop".into(),
            status: "ROLLBACK_COMPLETE".into(),
            reason: None,
            outputs: BTreeMap::new(),
        };
        let e = check_usable(&info).unwrap_err().to_string();
        assert!(
            e.starts_with("stack shop: is ROLLBACK_COMPLETE: its creation failed; `gameday down --scenario FILE` deletes it"),
            "{e}"
        );
        let busy = StackInfo {
            status: "CREATE_IN_PROGRESS".into(),
            ..info.clone()
        };
        assert!(
            check_usable(&busy)
                .unwrap_err()
                .to_string()
                .contains("wait")
        );
        let fine = StackInfo {
            status: "UPDATE_COMPLETE".into(),
            ..info
        };
        assert!(check_usable(&fine).is_ok());
    }
}
