//! What a fault can do on AWS and what it would hit: whether the platform
//! supports it (judged from the scenario alone, for `validate`), what it
//! does in words with the resolved ids and ARNs (for `plan`), the
//! candidates in the order a blast radius picks them, the checks a dry run
//! makes, and what runs where (`gameday status`, the plan's target section).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{
    budget, cache::NODE_GROUP, clients::AwsClients, group::Shutdown, resources::Resources,
};
use crate::{
    platform::{
        self, ComponentInfo, InstanceInfo, InstanceState, Inventory, Support, Target, TargetKind,
    },
    scenario::{AwsDatabase, AwsTarget, Fault, FaultKind},
};

/// Whether the aws platform can perform `fault` for this target.
pub fn supports(target: &AwsTarget, fault: &Fault) -> Support {
    let no = |why: &str| Support::No { why: why.into() };
    let stack = target.stack.is_some();
    match (&fault.kind, fault.duration) {
        (FaultKind::KillPod { .. }, _) => no(
            "an Auto Scaling group runs instances, not pods: kill-pod needs the kubernetes or \
             local platform (terminate-instance hits an instance)",
        ),
        (FaultKind::DrainNode { .. }, _) => no(
            "an Auto Scaling group has no nodes to drain: drain-node is a Kubernetes fault \
             (terminate-instance loses an instance)",
        ),
        (FaultKind::Network { .. }, _) => {
            no("network faults on aws go through FIS, which gameday does not drive yet")
        }
        (FaultKind::RestartCache { .. }, Some(_)) => {
            no("ElastiCache can be rebooted, not held down: drop `duration`")
        }
        (FaultKind::RestartBroker, Some(_)) => {
            no("Amazon MQ can be rebooted, not held down: drop `duration`")
        }
        (FaultKind::TerminateInstance { .. }, Some(_)) => no(
            "a terminated instance does not come back: the Auto Scaling group launches a \
             replacement itself (drop `duration`)",
        ),
        (FaultKind::DbFailover { .. }, Some(_)) => {
            no("a failover does not last: RDS completes it itself (drop `duration`)")
        }
        (
            FaultKind::DbFailover {
                rebuild_standby: false,
            },
            _,
        ) => no(
            "RDS keeps its standby (or Aurora its readers) itself: `rebuild-standby: false` has \
             no meaning on aws",
        ),
        (FaultKind::DbFailover { .. }, _) if !stack && target.database.is_none() => no(
            "no database to fail over: set target.database ({ instance: NAME } or \
             { cluster: NAME }) or a stack",
        ),
        (FaultKind::RestartCache { .. }, _) if !stack && target.cache.is_none() => no(
            "no cache to fail over or reboot: set target.cache (an ElastiCache replication \
                 group or cluster id) or a stack",
        ),
        (FaultKind::RestartBroker, _) if !stack && target.broker.is_none() => {
            no("no broker to reboot: set target.broker (an Amazon MQ broker id) or a stack")
        }
        _ => Support::Yes,
    }
}

/// What `fault` does on AWS, in words, naming what it acts on.
pub fn describe(r: &Resources, fault: &Fault) -> String {
    let stack_s = |what: &str| match &r.stack {
        Some(s) => format!("the {what} of stack {s}"),
        None => format!("the {what} (none named)"),
    };
    match &fault.kind {
        FaultKind::TerminateInstance { zone, graceful, .. } => format!(
            "EC2 TerminateInstances ({}) on in-service members of Auto Scaling group {}{}: {}, \
             and the group launches replacements (nothing to undo)",
            Shutdown::from_graceful(*graceful).describe(),
            r.group
                .as_deref()
                .map(|g| r.with_arn(g))
                .unwrap_or_else(|| stack_s("Auto Scaling group")),
            zone.as_deref()
                .map(|z| format!(" in zone {z}"))
                .unwrap_or_default(),
            if *graceful {
                "they stop their services (which drain) before they go"
            } else {
                "they die at once and the load balancer's health checks take them out of service"
            }
        ),
        FaultKind::DbFailover { .. } => match &r.database {
            Some(AwsDatabase::Instance(id)) => format!(
                "RDS RebootDBInstance with ForceFailover=true on DB instance {}: its standby in \
                 another zone becomes the primary (refused unless it is a Multi-AZ primary)",
                r.with_arn(id)
            ),
            Some(AwsDatabase::Cluster(id)) => format!(
                "RDS FailoverDBCluster on Aurora cluster {}: a reader becomes the writer",
                r.with_arn(id)
            ),
            None => format!("fail over {}", stack_s("database")),
        },
        FaultKind::RestartCache { reboot } => describe_cache(r, *reboot),
        FaultKind::RestartBroker => format!(
            "Amazon MQ RebootBroker on {}: the broker is unavailable while it reboots",
            r.broker
                .as_deref()
                .map(|b| format!("broker {}", r.with_arn(b)))
                .unwrap_or_else(|| stack_s("broker"))
        ),
        FaultKind::KillPod { .. } | FaultKind::DrainNode { .. } | FaultKind::Network { .. } => {
            "not available on aws".into()
        }
    }
}

/// restart-cache in words: a failover that keeps the data, or a reboot
/// that loses it.
fn describe_cache(r: &Resources, reboot: bool) -> String {
    let group = r
        .cache_group
        .as_deref()
        .map(|g| format!("replication group {}", r.with_arn(g)));
    let cluster = r
        .cache
        .as_deref()
        .map(|c| format!("cluster {}", r.with_arn(c)));
    let named = || {
        group
            .clone()
            .or_else(|| cluster.clone())
            .unwrap_or_else(|| match &r.stack {
                Some(s) => format!("the replication group of stack {s}"),
                None => "the cache (none named)".into(),
            })
    };
    match (reboot, &group, &cluster) {
        (false, None, Some(c)) => format!(
            "a failover of {c}: refused, it is a cluster outside a replication group (no replica \
             to promote); `reboot: true` reboots it and loses its data"
        ),
        (false, _, _) => format!(
            "ElastiCache TestFailover on node group {NODE_GROUP} of {}: the replica in another \
             zone becomes the primary and the cache keeps its data; writes fail for the seconds \
             the promotion takes",
            named()
        ),
        (true, Some(g), _) => format!(
            "ElastiCache RebootCacheCluster on the primary's cluster of {g}: the node reboots and \
             LOSES THE CACHE'S CONTENTS (carts, sessions); no failover"
        ),
        (true, None, _) => format!(
            "ElastiCache RebootCacheCluster on every node of {}: the cache is down while they \
             reboot and LOSES ITS CONTENTS (carts, sessions)",
            named()
        ),
    }
}

/// A failover asked of a cache cluster outside a replication group.
pub fn no_failover(cluster: &str) -> platform::Error {
    platform::Error::refused(
        format!("ElastiCache cluster {cluster}"),
        "is not in a replication group: there is no replica to fail over to (the shop's \
         template runs a replication group; `restart-cache: { reboot: true }` reboots this \
         cluster and loses its contents)",
    )
}

fn none_named(what: &str, key: &str) -> platform::Error {
    platform::Error::refused(
        format!("no {what}"),
        format!("set target.{key}, or a stack whose outputs name one"),
    )
}

/// What a fault of this kind would hit now, in the order it picks.
pub async fn candidates(
    aws: &AwsClients,
    r: &Resources,
    kind: &FaultKind,
) -> platform::Result<Vec<Target>> {
    match kind {
        FaultKind::TerminateInstance { zone, .. } => {
            let name = r
                .group
                .as_deref()
                .ok_or_else(|| none_named("Auto Scaling group", "auto-scaling-group"))?;
            let group = aws.describe_group(name).await?;
            Ok(group
                .in_service()
                .filter(|m| zone.as_ref().is_none_or(|z| *z == m.availability_zone))
                .map(|m| {
                    let t = Target::new(TargetKind::Instance, &m.instance_id)
                        .zone(&m.availability_zone);
                    match &m.instance_type {
                        Some(ty) => t.detail(format!("{ty} in {}", group.name)),
                        None => t.detail(format!("in {}", group.name)),
                    }
                })
                .collect())
        }
        FaultKind::DbFailover { .. } => {
            let (id, what) = match &r.database {
                Some(AwsDatabase::Instance(id)) => (id, "DB instance"),
                Some(AwsDatabase::Cluster(id)) => (id, "Aurora cluster"),
                None => return Err(none_named("database", "database")),
            };
            Ok(vec![one(TargetKind::Database, id, what, r)])
        }
        FaultKind::RestartCache { reboot } => match (*reboot, &r.cache_group, &r.cache) {
            (false, Some(g), _) => Ok(vec![one(
                TargetKind::Cache,
                g,
                "ElastiCache replication group",
                r,
            )]),
            (true, Some(g), _) => {
                let primary = aws.primary_cluster(g).await?;
                Ok(vec![Target::new(TargetKind::Cache, &primary).detail(
                    format!("the primary's cluster of replication group {g}"),
                )])
            }
            (_, None, Some(c)) => Ok(vec![one(TargetKind::Cache, c, "ElastiCache cluster", r)]),
            (_, None, None) => Err(none_named("cache", "cache")),
        },
        FaultKind::RestartBroker => {
            let id = r
                .broker
                .as_deref()
                .ok_or_else(|| none_named("broker", "broker"))?;
            Ok(vec![one(TargetKind::Broker, id, "Amazon MQ broker", r)])
        }
        FaultKind::KillPod { .. } | FaultKind::DrainNode { .. } | FaultKind::Network { .. } => {
            Err(platform::Error::refused(kind.key(), "not available on aws"))
        }
    }
}

fn one(kind: TargetKind, id: &str, what: &str, r: &Resources) -> Target {
    Target::new(kind, id).detail(match r.arns.get(id) {
        Some(arn) => arn.clone(),
        None => what.to_string(),
    })
}

/// Checks, without acting, that the fault would be allowed on `targets`:
/// TerminateInstances with DryRun, and the state a reboot or failover needs.
pub async fn check(
    aws: &AwsClients,
    r: &Resources,
    fault: &Fault,
    targets: &[Target],
) -> platform::Result<()> {
    match &fault.kind {
        FaultKind::TerminateInstance { graceful, .. } => {
            let ids: Vec<String> = targets.iter().map(|t| t.id.clone()).collect();
            if ids.is_empty() {
                return Ok(());
            }
            Ok(aws
                .terminate_instances_dry_run(&ids, Shutdown::from_graceful(*graceful))
                .await?)
        }
        FaultKind::DbFailover { .. } => match &r.database {
            Some(db) => aws.check_db_failover(db).await.map(|_| ()),
            None => Err(none_named("database", "database")),
        },
        FaultKind::RestartCache { reboot: false } => match (&r.cache_group, &r.cache) {
            (Some(g), _) => aws.check_cache_failover(g).await.map(|_| ()),
            (None, Some(c)) => Err(no_failover(c)),
            (None, None) => Err(none_named("cache", "cache")),
        },
        FaultKind::RestartCache { reboot: true } => {
            for t in targets {
                aws.check_cache_reboot(&t.id).await?;
            }
            Ok(())
        }
        FaultKind::RestartBroker => {
            let id = r
                .broker
                .as_deref()
                .ok_or_else(|| none_named("broker", "broker"))?;
            aws.check_broker_reboot(id).await.map(|_| ())
        }
        FaultKind::KillPod { .. } | FaultKind::DrainNode { .. } | FaultKind::Network { .. } => Err(
            platform::Error::refused(fault.kind.key(), "not available on aws"),
        ),
    }
}

fn details(pairs: &[(&str, Option<Value>)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), v.clone()?)))
        .collect()
}

fn component(name: String, address: Option<String>, d: &[(&str, Option<Value>)]) -> ComponentInfo {
    ComponentInfo {
        name,
        address,
        usage: None,
        details: details(d),
    }
}

fn s(v: &str) -> Option<Value> {
    Some(json!(v))
}

fn o(v: &Option<String>) -> Option<Value> {
    v.as_deref().map(|v| json!(v))
}

/// The group's members (zone, EC2 state, target health) and the managed
/// services with their ids and ARNs.
pub async fn inventory(aws: &AwsClients, r: &Resources) -> platform::Result<Inventory> {
    let mut inv = Inventory {
        platform: "aws".into(),
        entry_url: r.entry_url.clone().unwrap_or_default(),
        ..Inventory::default()
    };
    let mut max_instances = None;
    if let Some(name) = &r.group {
        max_instances = Some(group_inventory(aws, r, name, &mut inv).await?);
    }
    let mut database = database_component(aws, r).await?;
    if let (Some(db), Some(instances)) = (database.as_mut(), max_instances) {
        budget_check(db, r, instances);
    }
    inv.infra.extend(database);
    if let Some(id) = &r.cache_group {
        let g = aws.describe_replication_group(id).await?;
        let members: Vec<Value> = g
            .members
            .iter()
            .map(|m| json!({ "cluster": m.cluster_id, "role": m.role, "zone": m.zone }))
            .collect();
        inv.infra.push(component(
            format!("cache {}", g.id),
            g.primary_endpoint.clone(),
            &[
                ("arn", o(&g.arn)),
                ("status", s(&g.status)),
                ("automatic_failover", s(&g.automatic_failover)),
                ("multi_az", s(&g.multi_az)),
                ("members", Some(json!(members))),
            ],
        ));
    }
    if let Some(id) = &r.cache {
        let c = aws.describe_cache_cluster(id).await?;
        inv.infra.push(component(
            format!("cache {}", c.id),
            None,
            &[
                ("arn", o(&c.arn)),
                ("engine", s(&c.engine)),
                ("status", s(&c.status)),
                ("nodes", Some(json!(c.node_ids))),
            ],
        ));
    }
    if let Some(id) = &r.broker {
        let b = aws.describe_broker(id).await?;
        inv.infra.push(component(
            format!("broker {}", b.id),
            None,
            &[
                ("arn", o(&b.arn)),
                ("name", s(&b.name)),
                ("engine", s(&b.engine)),
                ("state", s(&b.state)),
                ("deployment", s(&b.deployment_mode)),
            ],
        ));
    }
    Ok(inv)
}

/// The connection budget of `db` (its class in `details`) for `instances`
/// at most: `max_connections` and, when the pools do not fit, a warning.
fn budget_check(db: &mut ComponentInfo, r: &Resources, instances: u32) {
    let Some(class) = db.details.get("class").and_then(Value::as_str) else {
        return;
    };
    let class = class.to_string();
    if let Some((about, _)) = budget::max_connections(&class) {
        db.details.insert("max_connections".into(), json!(about));
    }
    let demand = budget::Demand {
        instances,
        pool: r.pool_size.unwrap_or(budget::SHOP_DEFAULT_POOL),
    };
    db.details
        .insert("connections_wanted".into(), json!(demand.connections()));
    if let Some(w) = budget::warning(&class, demand) {
        db.details.insert("warning".into(), json!(w));
    }
}

/// The group's members, its target groups and load balancers; returns the
/// group's maximum size.
async fn group_inventory(
    aws: &AwsClients,
    r: &Resources,
    name: &str,
    inv: &mut Inventory,
) -> platform::Result<u32> {
    let group = aws.describe_group(name).await?;
    let ids: Vec<String> = group
        .members
        .iter()
        .map(|m| m.instance_id.clone())
        .collect();
    let ec2 = aws.instances(&ids).await?;
    let mut health: BTreeMap<String, String> = BTreeMap::new();
    let mut lbs = r.load_balancers.clone();
    for tg in aws.target_groups_of_group(&group).await? {
        for t in aws.target_health(&tg.arn).await? {
            health.insert(t.instance_id, t.state);
        }
        inv.infra.push(component(
            format!("target group {}", tg.name),
            None,
            &[
                ("arn", s(&tg.arn)),
                ("health_check", o(&tg.health_check_path)),
            ],
        ));
        for lb in tg.load_balancer_arns {
            if !lbs.contains(&lb) {
                lbs.push(lb);
            }
        }
    }
    for m in &group.members {
        let view = ec2.get(&m.instance_id);
        inv.instances.push(InstanceInfo {
            name: m.instance_id.clone(),
            address: view.and_then(|v| v.private_ip.clone()),
            zone: Some(m.availability_zone.clone()),
            state: if m.leaving()
                || view.is_some_and(|v| v.state != "running" && v.state != "pending")
            {
                InstanceState::Terminated
            } else if m.in_service() {
                InstanceState::Running
            } else {
                InstanceState::Booting
            },
            healthy: (!group.target_group_arns.is_empty())
                .then(|| health.get(&m.instance_id).map(String::as_str) == Some("healthy")),
            details: details(&[
                ("lifecycle", s(&m.lifecycle_state)),
                ("group_health", s(&m.health_status)),
                ("instance_type", o(&m.instance_type)),
            ]),
        });
    }
    inv.infra.push(component(
        format!("auto scaling group {}", group.name),
        None,
        &[
            ("arn", o(&group.arn)),
            ("desired", Some(json!(group.desired_capacity))),
            ("min", Some(json!(group.min_size))),
            ("max", Some(json!(group.max_size))),
        ],
    ));
    for lb in aws.load_balancers(&lbs).await? {
        inv.infra.push(component(
            format!("load balancer {}", lb.name),
            Some(lb.dns_name.clone()),
            &[("arn", s(&lb.arn)), ("state", o(&lb.state))],
        ));
    }
    Ok(u32::try_from(group.max_size).unwrap_or(0))
}

/// The database the target names, with its engine, zones and replicas.
async fn database_component(
    aws: &AwsClients,
    r: &Resources,
) -> platform::Result<Option<ComponentInfo>> {
    Ok(match &r.database {
        Some(AwsDatabase::Instance(id)) => {
            let db = aws.describe_db_instance(id).await?;
            Some(component(
                format!("database {}", db.id),
                db.endpoint.clone(),
                &[
                    ("arn", o(&db.arn)),
                    ("engine", s(&format!("{} {}", db.engine, db.engine_version))),
                    ("status", s(&db.status)),
                    ("class", o(&db.instance_class)),
                    ("multi_az", Some(json!(db.multi_az))),
                    ("zone", o(&db.availability_zone)),
                    ("standby_zone", o(&db.secondary_availability_zone)),
                    ("read_replicas", Some(json!(db.read_replicas))),
                ],
            ))
        }
        Some(AwsDatabase::Cluster(id)) => {
            let c = aws.describe_db_cluster(id).await?;
            let readers: Vec<&str> = c.readers().collect();
            Some(component(
                format!("database {}", c.id),
                c.endpoint.clone(),
                &[
                    ("arn", o(&c.arn)),
                    ("engine", s(&c.engine)),
                    ("status", s(&c.status)),
                    ("writer", c.writer().map(|w| json!(w))),
                    ("readers", Some(json!(readers))),
                ],
            ))
        }
        None => None,
    })
}
