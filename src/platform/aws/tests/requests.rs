//! What the aws platform sends where moto cannot answer or cannot show it,
//! checked against the recording stand-in (see `stand_in`).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use super::{
    Recorded, clients_at, deploy_with, open_with, stack_target,
    stand_in::{
        AUTOSCALING, Answer, CLOUDFORMATION, ELASTICACHE, ELBV2, RDS, Request, StandIn,
        alarms_cbor, auto_scaling_group, db_instance, no_reservations, replication_group,
        target_health,
    },
    test_credentials, up_with,
};
use crate::{
    events::{EventKind, ServerRole},
    observe::scale_outs,
    platform::{
        Platform,
        aws::{self, Error},
    },
    scenario::{AwsDatabase, AwsTarget, Fault, FaultKind, Schedule},
};

fn fault(kind: FaultKind) -> Fault {
    Fault {
        name: kind.key().into(),
        kind,
        schedule: Schedule::At(Duration::ZERO),
        duration: None,
    }
}

/// Named resources on the stand-in: group `shop-asg`, and what `tweak` adds.
fn named(url: &str, tweak: impl FnOnce(&mut AwsTarget)) -> AwsTarget {
    let mut t = stack_target(url, "unused");
    t.stack = None;
    t.parameters = BTreeMap::new();
    t.auto_scaling_group = Some("shop-asg".into());
    t.entry_url = Some("http://127.0.0.1:9".into());
    tweak(&mut t);
    t
}

/// The answers every test here shares: the group with three members in
/// service and healthy, EC2 knowing nothing more, no scaling policy.
fn group_answers(r: &Request) -> Option<Answer> {
    let members = [
        ("i-1", "InService"),
        ("i-2", "InService"),
        ("i-3", "InService"),
    ];
    Some(match r.operation().as_str() {
        "DescribeAutoScalingGroups" => Answer::query(
            "DescribeAutoScalingGroups",
            AUTOSCALING,
            &auto_scaling_group("shop-asg", 3, &members),
        ),
        "DescribeInstances" => no_reservations(),
        "DescribePolicies" => Answer::query("DescribePolicies", AUTOSCALING, "<ScalingPolicies/>"),
        "DescribeTargetHealth" => Answer::query(
            "DescribeTargetHealth",
            ELBV2,
            &target_health(&[("i-1", "healthy"), ("i-2", "healthy"), ("i-3", "healthy")]),
        ),
        _ => return None,
    })
}

fn rds_answer(r: &Request, instance: &str) -> Answer {
    match r.operation().as_str() {
        "DescribeDBInstances" => Answer::query(
            "DescribeDBInstances",
            RDS,
            &format!("<DBInstances>{instance}</DBInstances>"),
        ),
        "RebootDBInstance" => Answer::query("RebootDBInstance", RDS, instance),
        other => group_answers(r).unwrap_or_else(|| Answer::not_found(other)),
    }
}

/// moto accepts RebootDBInstance ForceFailover=true and changes nothing, so
/// the request is what shows the failover was asked for.
#[tokio::test]
async fn db_failover_on_a_multi_az_instance_sends_reboot_db_instance_with_force_failover() {
    let instance = db_instance("shop-db", true, None);
    let stand_in = StandIn::start(move |r| rds_answer(r, &instance)).await;
    let aws = clients_at(&stand_in.url, test_credentials()).await;
    let target = named(&stand_in.url, |t| {
        t.database = Some(AwsDatabase::Instance("shop-db".into()))
    });
    let platform = open_with(aws, &target).await.expect("attaches by name");
    let failover = fault(FaultKind::DbFailover {
        rebuild_standby: true,
    });
    let targets = platform.candidates(&failover.kind).await.unwrap();
    assert_eq!(
        targets[0].detail.as_deref(),
        Some("arn:aws:rds:us-east-1:123456789012:db:shop-db"),
        "the plan shows the database's ARN"
    );

    platform.inject(&failover, &targets).await.unwrap();

    let reboots = stand_in.of("RebootDBInstance");
    assert_eq!(reboots.len(), 1, "{:?}", stand_in.operations());
    let form = reboots[0].form();
    assert_eq!(form["DBInstanceIdentifier"], "shop-db");
    assert_eq!(form["ForceFailover"], "true");
}

#[tokio::test]
async fn db_failover_on_a_single_az_instance_or_a_read_replica_is_refused_and_nothing_reboots() {
    for (instance, why) in [
        (
            db_instance("shop-db", false, None),
            "is a single-AZ instance",
        ),
        (
            db_instance("shop-db", true, Some("shop-primary")),
            "is a read replica of shop-primary",
        ),
    ] {
        let stand_in = StandIn::start(move |r| rds_answer(r, &instance)).await;
        let aws = clients_at(&stand_in.url, test_credentials()).await;
        let target = named(&stand_in.url, |t| {
            t.database = Some(AwsDatabase::Instance("shop-db".into()))
        });
        let platform = open_with(aws, &target).await.unwrap();
        let failover = fault(FaultKind::DbFailover {
            rebuild_standby: true,
        });
        let targets = platform.candidates(&failover.kind).await.unwrap();

        let planned = platform.dry_run(&failover, &targets).await.unwrap_err();
        let injected = platform.inject(&failover, &targets).await.unwrap_err();

        for e in [planned.to_string(), injected.to_string()] {
            assert!(
                e.starts_with("RDS DB instance shop-db: ") && e.contains(why),
                "{e}"
            );
        }
        assert!(stand_in.of("RebootDBInstance").is_empty());
    }
}

/// A cache answer for the recording stand-in: `group` (a ReplicationGroup
/// element) or ReplicationGroupNotFoundFault, the documented error of
/// DescribeReplicationGroups, when there is none; `cluster` for
/// DescribeCacheClusters and RebootCacheCluster; TestFailover answers the
/// group.
fn cache_answer(r: &Request, group: Option<&str>, cluster: &str) -> Answer {
    match (r.operation().as_str(), group) {
        ("DescribeReplicationGroups", Some(g)) => Answer::query(
            "DescribeReplicationGroups",
            ELASTICACHE,
            &format!("<ReplicationGroups>{g}</ReplicationGroups>"),
        ),
        ("DescribeReplicationGroups", None) => Answer::query_error(
            404,
            "ReplicationGroupNotFoundFault",
            "ReplicationGroup not found",
        ),
        ("TestFailover", Some(g)) => Answer::query("TestFailover", ELASTICACHE, g),
        ("DescribeCacheClusters", _) => Answer::query(
            "DescribeCacheClusters",
            ELASTICACHE,
            &format!("<CacheClusters>{cluster}</CacheClusters>"),
        ),
        ("RebootCacheCluster", _) => Answer::query("RebootCacheCluster", ELASTICACHE, cluster),
        (other, _) => group_answers(r).unwrap_or_else(|| Answer::not_found(other)),
    }
}

/// A CacheCluster element with nodes 0001 and 0002 (ElastiCache API
/// reference, CacheCluster).
fn cache_cluster(id: &str) -> String {
    format!(
        "<CacheCluster><CacheClusterId>{id}</CacheClusterId>\
        <ARN>arn:aws:elasticache:us-east-1:123456789012:cluster:{id}</ARN>\
        <Engine>redis</Engine><CacheClusterStatus>available</CacheClusterStatus><CacheNodes>\
        <CacheNode><CacheNodeId>0001</CacheNodeId></CacheNode>\
        <CacheNode><CacheNodeId>0002</CacheNodeId></CacheNode></CacheNodes></CacheCluster>"
    )
}

/// An AwsPlatform on the stand-in for `target`, with its events recorded.
async fn platform_on(url: &str, target: &AwsTarget) -> (aws::AwsPlatform, Recorded) {
    let aws = clients_at(url, test_credentials()).await;
    let recorded = Recorded::new();
    let platform = aws::AwsPlatform::new(
        aws.clone(),
        target.clone(),
        aws::resources::resolve(&aws, target).await.unwrap(),
        recorded.log.clone(),
        Duration::from_secs(1),
    );
    (platform, recorded)
}

/// moto does not implement TestFailover (HTTP 500): the recording stand-in
/// answers it and shows what was sent.
#[tokio::test]
async fn restart_cache_fails_the_replication_group_over_with_test_failover_on_node_group_0001() {
    let group = replication_group(
        "shop-cache",
        "enabled",
        &[
            ("shop-cache-001", "primary", "us-east-1a"),
            ("shop-cache-002", "replica", "us-east-1b"),
        ],
    );
    let cluster = cache_cluster("shop-cache-001");
    let stand_in = StandIn::start(move |r| cache_answer(r, Some(&group), &cluster)).await;
    let target = named(&stand_in.url, |t| t.cache = Some("shop-cache".into()));
    let (platform, mut recorded) = platform_on(&stand_in.url, &target).await;
    let restart = fault(FaultKind::RestartCache { reboot: false });
    assert!(
        platform.describe(&restart).contains(
            "TestFailover on node group 0001 of replication group shop-cache (arn:aws:elasticache:"
        ) && platform.describe(&restart).contains("keeps its data"),
        "{}",
        platform.describe(&restart)
    );
    let targets = platform.candidates(&restart.kind).await.unwrap();
    assert_eq!(targets[0].id, "shop-cache");
    platform.dry_run(&restart, &targets).await.unwrap();
    assert!(
        stand_in.of("TestFailover").is_empty(),
        "the dry run acts on nothing"
    );

    platform.inject(&restart, &targets).await.unwrap();

    let failovers = stand_in.of("TestFailover");
    assert_eq!(failovers.len(), 1, "{:?}", stand_in.operations());
    let form = failovers[0].form();
    assert_eq!(form["ReplicationGroupId"], "shop-cache");
    assert_eq!(form["NodeGroupId"], "0001");
    assert!(
        stand_in.of("RebootCacheCluster").is_empty(),
        "no data-losing reboot"
    );
    assert_eq!(
        recorded.kinds(),
        [EventKind::ServerStopping {
            server: ServerRole::Cache
        }]
    );
}

#[tokio::test]
async fn restart_cache_is_refused_without_automatic_failover_or_a_replica_and_nothing_fails_over() {
    for (group, why) in [
        (
            replication_group(
                "shop-cache",
                "disabled",
                &[
                    ("shop-cache-001", "primary", "us-east-1a"),
                    ("shop-cache-002", "replica", "us-east-1b"),
                ],
            ),
            "has automatic failover disabled",
        ),
        (
            replication_group(
                "shop-cache",
                "enabled",
                &[("shop-cache-001", "primary", "us-east-1a")],
            ),
            "has 1 node(s) in node group 0001",
        ),
    ] {
        let cluster = cache_cluster("shop-cache-001");
        let stand_in = StandIn::start(move |r| cache_answer(r, Some(&group), &cluster)).await;
        let target = named(&stand_in.url, |t| t.cache = Some("shop-cache".into()));
        let (platform, _) = platform_on(&stand_in.url, &target).await;
        let restart = fault(FaultKind::RestartCache { reboot: false });
        let targets = platform.candidates(&restart.kind).await.unwrap();

        let planned = platform.dry_run(&restart, &targets).await.unwrap_err();
        let injected = platform.inject(&restart, &targets).await.unwrap_err();

        for e in [planned.to_string(), injected.to_string()] {
            assert!(
                e.starts_with("ElastiCache replication group shop-cache: ") && e.contains(why),
                "{e}"
            );
        }
        assert!(stand_in.of("TestFailover").is_empty());
    }
}

/// moto does not implement RebootCacheCluster (HTTP 500) and lists no
/// cache nodes. A cluster outside a replication group can only be
/// rebooted, which loses its contents.
#[tokio::test]
async fn restart_cache_reboot_reboots_every_node_of_a_cluster_and_the_plan_says_the_data_is_lost() {
    let cluster = cache_cluster("shop-cache");
    let stand_in = StandIn::start(move |r| cache_answer(r, None, &cluster)).await;
    let target = named(&stand_in.url, |t| t.cache = Some("shop-cache".into()));
    let (platform, mut recorded) = platform_on(&stand_in.url, &target).await;
    let failover = fault(FaultKind::RestartCache { reboot: false });
    let targets = platform.candidates(&failover.kind).await.unwrap();
    let e = platform.inject(&failover, &targets).await.unwrap_err();
    assert!(
        e.to_string()
            .starts_with("ElastiCache cluster shop-cache: is not in a replication group"),
        "{e}"
    );
    let restart = fault(FaultKind::RestartCache { reboot: true });
    assert!(
        platform.describe(&restart).contains("LOSES ITS CONTENTS"),
        "{}",
        platform.describe(&restart)
    );
    let targets = platform.candidates(&restart.kind).await.unwrap();

    platform.inject(&restart, &targets).await.unwrap();

    let reboots = stand_in.of("RebootCacheCluster");
    assert_eq!(reboots.len(), 1, "{:?}", stand_in.operations());
    let form = reboots[0].form();
    assert_eq!(form["CacheClusterId"], "shop-cache");
    assert_eq!(form["CacheNodeIdsToReboot.CacheNodeId.1"], "0001");
    assert_eq!(form["CacheNodeIdsToReboot.CacheNodeId.2"], "0002");
    assert!(stand_in.of("TestFailover").is_empty());
    assert_eq!(
        recorded.kinds(),
        [EventKind::ServerStopping {
            server: ServerRole::Cache
        }]
    );
}

/// `reboot: true` on a replication group reboots its primary's cluster,
/// nothing else.
#[tokio::test]
async fn restart_cache_reboot_on_a_replication_group_reboots_the_primary_s_cluster() {
    let group = replication_group(
        "shop-cache",
        "enabled",
        &[
            ("shop-cache-002", "replica", "us-east-1a"),
            ("shop-cache-001", "primary", "us-east-1b"),
        ],
    );
    let cluster = cache_cluster("shop-cache-001");
    let stand_in = StandIn::start(move |r| cache_answer(r, Some(&group), &cluster)).await;
    let target = named(&stand_in.url, |t| t.cache = Some("shop-cache".into()));
    let (platform, _) = platform_on(&stand_in.url, &target).await;
    let restart = fault(FaultKind::RestartCache { reboot: true });
    assert!(
        platform.describe(&restart).contains(
            "RebootCacheCluster on the primary's cluster of replication group shop-cache"
        ) && platform
            .describe(&restart)
            .contains("LOSES THE CACHE'S CONTENTS"),
        "{}",
        platform.describe(&restart)
    );
    let targets = platform.candidates(&restart.kind).await.unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].id, "shop-cache-001");

    platform.inject(&restart, &targets).await.unwrap();

    let reboots = stand_in.of("RebootCacheCluster");
    assert_eq!(reboots.len(), 1, "{:?}", stand_in.operations());
    assert_eq!(reboots[0].form()["CacheClusterId"], "shop-cache-001");
    let stranger = [crate::platform::Target::new(
        crate::platform::TargetKind::Cache,
        "shop-cache-002",
    )];
    let e = platform.inject(&restart, &stranger).await.unwrap_err();
    assert!(
        e.to_string().contains("shop-cache-002 is not the cache"),
        "{e}"
    );
    assert_eq!(stand_in.of("RebootCacheCluster").len(), 1);
}

/// What the alarm scenario has reached.
#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Calm,
    Alarm,
    ScaledOut,
}

/// CloudWatch speaks rpc-v2-cbor, which moto's server does not route; the
/// stand-in answers DescribeAlarms in CBOR.
#[tokio::test]
async fn an_alarm_and_a_scale_out_are_seen_from_the_alarm_to_the_new_instance_serving() {
    let phase = Arc::new(Mutex::new(Phase::Calm));
    let now = phase.clone();
    let high = "TargetTracking-shop-asg-AlarmHigh-1";
    let stand_in = StandIn::start(move |r| {
        let phase = *now.lock().unwrap();
        let scaled = phase == Phase::ScaledOut;
        let mut members = vec![("i-1", "InService"), ("i-2", "InService"), ("i-3", "InService")];
        let mut health = vec![("i-1", "healthy"), ("i-2", "healthy"), ("i-3", "healthy")];
        if scaled {
            members.push(("i-4", "InService"));
            health.push(("i-4", "healthy"));
        }
        match r.operation().as_str() {
            "DescribeAutoScalingGroups" => Answer::query(
                "DescribeAutoScalingGroups",
                AUTOSCALING,
                &auto_scaling_group("shop-asg", if scaled { 4 } else { 3 }, &members),
            ),
            "DescribePolicies" => Answer::query(
                "DescribePolicies",
                AUTOSCALING,
                &format!(
                    "<ScalingPolicies><member><PolicyName>cpu60</PolicyName>\
                     <PolicyType>TargetTrackingScaling</PolicyType><Alarms>\
                     <member><AlarmName>{high}</AlarmName><AlarmARN>arn:high</AlarmARN></member>\
                     <member><AlarmName>TargetTracking-shop-asg-AlarmLow-1</AlarmName><AlarmARN>arn:low</AlarmARN></member>\
                     </Alarms></member></ScalingPolicies>"
                ),
            ),
            "DescribeTargetHealth" => {
                Answer::query("DescribeTargetHealth", ELBV2, &target_health(&health))
            }
            "DescribeInstances" => no_reservations(),
            "DescribeAlarms" => Answer::cbor(alarms_cbor(&[
                (
                    high,
                    if phase == Phase::Calm { "OK" } else { "ALARM" },
                    "CPUUtilization > 60 for 3 datapoints",
                ),
                ("TargetTracking-shop-asg-AlarmLow-1", "OK", "fine"),
            ])),
            other => Answer::not_found(other),
        }
    })
    .await;
    let aws = clients_at(&stand_in.url, test_credentials()).await;
    let target = named(&stand_in.url, |_| {});
    let mut recorded = Recorded::new();
    let platform = deploy_with(
        aws,
        &target,
        None,
        recorded.log.clone(),
        Duration::from_millis(50),
    )
    .await
    .expect("attaches to the group");

    *phase.lock().unwrap() = Phase::Alarm;
    recorded
        .wait_for(Duration::from_secs(10), "scaling signal", |k| {
            matches!(k, EventKind::ScalingSignal { .. })
        })
        .await;
    *phase.lock().unwrap() = Phase::ScaledOut;
    recorded
        .wait_for(
            Duration::from_secs(10),
            "i-4 serving",
            |k| matches!(k, EventKind::InstanceServing { instance, .. } if instance == "i-4"),
        )
        .await;
    platform.shutdown().await;

    let kinds = recorded.kinds();
    assert!(
        !kinds
            .iter()
            .any(|k| matches!(k, EventKind::AlarmState { .. })),
        "target tracking's alarms are scaling alarms, not health alarms: {kinds:#?}"
    );
    assert!(kinds.contains(&EventKind::ScalingDecision {
        service: "shop-asg".into(),
        from: 3,
        to: 4,
        observed_cpu_percent: None,
        target_cpu_percent: None,
    }));
    assert!(kinds.iter().any(|k| matches!(k,
        EventKind::InstanceLaunching { instance, group: Some(g), scale_out: true, replaces: None, .. }
            if instance == "i-4" && g == "shop-asg")));
    // The same code as on the other platforms measures it, from the alarm.
    let events = recorded.events();
    let outs = scale_outs(&events, u64::MAX, None);
    assert_eq!(outs.len(), 1, "{outs:?}");
    assert_eq!(
        (outs[0].service.as_str(), outs[0].from, outs[0].to),
        ("shop-asg", 3, 4)
    );
    assert!(
        outs[0].ready_at_s.is_some() && outs[0].duration_s.is_some(),
        "{outs:?}"
    );
    assert!(stand_in.of("DescribeAlarms").len() >= 2);
}

#[tokio::test]
async fn throttling_is_retried_then_reported_as_throttled_naming_the_call() {
    let stand_in =
        StandIn::start(|_| Answer::query_error(400, "Throttling", "Rate exceeded")).await;
    let aws = clients_at(&stand_in.url, test_credentials()).await;
    let target = named(&stand_in.url, |_| {});

    let e = match open_with(aws, &target).await {
        Err(e) => e,
        Ok(_) => panic!("attached although every call was throttled"),
    };

    assert!(
        matches!(e, crate::platform::Error::Aws(Error::Throttled { .. })),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "DescribeAutoScalingGroups: throttled by AWS (Throttling) after 3 attempts: Rate exceeded; try again later"
    );
    let calls = stand_in.requests();
    assert_eq!(calls.len(), 3, "the SDK retried twice");
    assert!(calls.iter().all(|r| r.method == "POST" && r.path == "/"));
}

/// moto records only the stack's own events, never a resource's failure.
#[tokio::test]
async fn a_stack_that_fails_to_create_shows_its_failed_resources_and_is_deleted() {
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Stack {
        Missing,
        RolledBack,
        Deleted,
    }
    let state = Arc::new(Mutex::new(Stack::Missing));
    let s = state.clone();
    let stack = |status: &str| {
        format!(
            "<Stacks><member><StackName>shop</StackName>\
             <StackId>arn:aws:cloudformation:us-east-1:123456789012:stack/shop/1</StackId>\
             <StackStatus>{status}</StackStatus><CreationTime>2026-11-22T10:00:00Z</CreationTime>\
             </member></Stacks>"
        )
    };
    let event = |id: &str, logical: &str, kind: &str, status: &str, reason: &str| {
        format!(
            "<member><EventId>{id}</EventId><StackId>arn:stack</StackId><StackName>shop</StackName>\
             <LogicalResourceId>{logical}</LogicalResourceId><ResourceType>{kind}</ResourceType>\
             <ResourceStatus>{status}</ResourceStatus><ResourceStatusReason>{reason}</ResourceStatusReason>\
             <Timestamp>2026-11-22T10:00:0{}Z</Timestamp></member>",
            id.len()
        )
    };
    let events = format!(
        "<StackEvents>{}{}{}</StackEvents>",
        event(
            "e-3",
            "shop",
            "AWS::CloudFormation::Stack",
            "ROLLBACK_COMPLETE",
            ""
        ),
        event(
            "e-2",
            "Broker",
            "AWS::AmazonMQ::Broker",
            "CREATE_FAILED",
            "Resource creation cancelled"
        ),
        event(
            "e-1",
            "Database",
            "AWS::RDS::DBInstance",
            "CREATE_FAILED",
            "DB instance quota exceeded (Service: Rds, Status Code: 400)"
        ),
    );
    let stand_in = StandIn::start(move |r| {
        let mut state = s.lock().unwrap();
        match (r.operation().as_str(), *state) {
            ("DescribeStacks", Stack::Missing | Stack::Deleted) => {
                Answer::query_error(400, "ValidationError", "Stack with id shop does not exist")
            }
            ("DescribeStacks", Stack::RolledBack) => Answer::query(
                "DescribeStacks",
                CLOUDFORMATION,
                &stack("ROLLBACK_COMPLETE"),
            ),
            ("CreateStack", _) => {
                *state = Stack::RolledBack;
                Answer::query(
                    "CreateStack",
                    CLOUDFORMATION,
                    "<StackId>arn:aws:cloudformation:us-east-1:123456789012:stack/shop/1</StackId>",
                )
            }
            ("DescribeStackEvents", _) => {
                Answer::query("DescribeStackEvents", CLOUDFORMATION, &events)
            }
            ("DeleteStack", _) => {
                *state = Stack::Deleted;
                Answer::query("DeleteStack", CLOUDFORMATION, "")
            }
            (other, _) => Answer::not_found(other),
        }
    })
    .await;
    let aws = clients_at(&stand_in.url, test_credentials()).await;
    let target = stack_target(&stand_in.url, "shop");

    let e = up_with(&aws, &target, Some("an-admin-token-for-tests"))
        .await
        .unwrap_err();

    assert_eq!(
        e.to_string(),
        "stack shop ended in ROLLBACK_COMPLETE: Database (AWS::RDS::DBInstance) CREATE_FAILED: \
         DB instance quota exceeded (Service: Rds, Status Code: 400)"
    );
    let create = &stand_in.of("CreateStack")[0].form();
    assert_eq!(create["Capabilities.member.1"], "CAPABILITY_IAM");
    let secret = create
        .iter()
        .find(|(_, v)| v.as_str() == "AdminToken")
        .map(|(k, _)| k.replace("ParameterKey", "ParameterValue"))
        .expect("the AdminToken parameter is passed");
    assert_eq!(create[&secret], "an-admin-token-for-tests");
    assert_eq!(
        stand_in.of("DeleteStack").len(),
        1,
        "the failed stack is deleted"
    );
    assert_eq!(*state.lock().unwrap(), Stack::Deleted);
}
