//! The aws platform behind the seam, against moto's server: a run creates
//! the stack it needs and deletes only that, `plan` resolves the group's
//! members, faults hit what they say and the watchers see what follows,
//! and attaching by name works.

use std::{collections::HashSet, path::Path, time::Duration};

use super::{
    Recorded, deploy_shop, deploy_with, moto_clients,
    moto_server::{MotoServer, TEST_ADMIN_TOKEN},
    preview_with, stack_target,
};
use crate::{
    chaos::{self, Rollback},
    events::EventKind,
    scenario::{AwsDatabase, AwsTarget, BlastRadius, Fault, FaultKind, Scenario, Schedule},
};

const EVERY: Duration = Duration::from_millis(100);

fn fault(kind: FaultKind) -> Fault {
    Fault {
        name: kind.key().into(),
        kind,
        schedule: Schedule::At(Duration::ZERO),
        duration: None,
    }
}

fn terminate(radius: BlastRadius, zone: Option<&str>) -> Fault {
    fault(FaultKind::TerminateInstance {
        radius,
        zone: zone.map(String::from),
        graceful: false,
    })
}

/// moto accepts SkipOsShutdown and ignores it (it shuts nothing down), so
/// its recorder shows what gameday sent.
#[tokio::test]
async fn terminate_instance_loses_the_instance_skipping_the_os_shutdown_unless_graceful() {
    let moto = MotoServer::start_recording();
    let aws = moto_clients(&moto).await;
    deploy_shop(&aws, "lost-shop").await;
    let target = stack_target(&moto.endpoint, "lost-shop");
    let recorded = Recorded::new();
    let platform = deploy_with(aws.clone(), &target, None, recorded.log.clone(), EVERY)
        .await
        .unwrap();
    let rollback = Rollback::default();
    let lost = terminate(BlastRadius::Count(1), None);
    let graceful = fault(FaultKind::TerminateInstance {
        radius: BlastRadius::Count(1),
        zone: None,
        graceful: true,
    });
    assert!(
        platform
            .describe(&lost)
            .starts_with("EC2 TerminateInstances (SkipOsShutdown=true: lost at once"),
        "{}",
        platform.describe(&lost)
    );
    assert!(
        platform
            .describe(&graceful)
            .starts_with("EC2 TerminateInstances (graceful: the OS shuts down first"),
        "{}",
        platform.describe(&graceful)
    );
    let targets = platform.candidates(&lost.kind).await.unwrap();
    platform.dry_run(&lost, &targets[..1]).await.unwrap();

    let first = chaos::apply(&*platform, &recorded.log, &rollback, &lost)
        .await
        .unwrap();
    let second = chaos::apply(&*platform, &recorded.log, &rollback, &graceful)
        .await
        .unwrap();

    let sent: Vec<_> = moto
        .recorded_action("TerminateInstances")
        .iter()
        .map(|r| r.form())
        .collect();
    assert_eq!(sent.len(), 3, "the dry run and two faults: {sent:#?}");
    assert_eq!(sent[0]["DryRun"], "true");
    assert_eq!(
        sent[0].get("SkipOsShutdown").map(String::as_str),
        Some("true"),
        "the dry run checks the same request"
    );
    assert_eq!(sent[1]["InstanceId.1"], first.targets[0].id);
    assert_eq!(
        sent[1].get("SkipOsShutdown").map(String::as_str),
        Some("true"),
        "a lost instance: {:?}",
        sent[1]
    );
    assert!(!sent[1].contains_key("DryRun"));
    assert_eq!(sent[2]["InstanceId.1"], second.targets[0].id);
    assert_eq!(
        sent[2].get("SkipOsShutdown"),
        None,
        "graceful: EC2's default, the OS shuts down: {:?}",
        sent[2]
    );
    platform.shutdown().await;
}

#[tokio::test]
async fn a_run_creates_the_missing_stack_reports_its_instances_and_deletes_it_on_shutdown() {
    let moto = MotoServer::start();
    let aws = moto_clients(&moto).await;
    let target = stack_target(&moto.endpoint, "run-shop");
    let mut recorded = Recorded::new();

    let platform = deploy_with(
        aws.clone(),
        &target,
        Some(TEST_ADMIN_TOKEN.into()),
        recorded.log.clone(),
        EVERY,
    )
    .await
    .expect("the run creates the stack");
    assert!(
        platform.entry_url().starts_with("http://"),
        "the stack's EntryUrl"
    );
    assert_eq!(platform.admin_token(), Some(TEST_ADMIN_TOKEN));
    let kinds = recorded.kinds();
    let count = |f: fn(&EventKind) -> bool| kinds.iter().filter(|k| f(k)).count();
    assert_eq!(
        count(|k| matches!(k, EventKind::InstanceRunning { zone: Some(_), .. })),
        3,
        "{kinds:#?}"
    );
    assert_eq!(
        count(|k| matches!(k, EventKind::InstanceServing { group: Some(_), .. })),
        3
    );
    assert_eq!(
        count(|k| matches!(k, EventKind::DbStatus { status, .. } if status == "available")),
        1
    );
    assert!(
        matches!(kinds.last(), Some(EventKind::PlatformReady { .. })),
        "{kinds:#?}"
    );

    platform.shutdown().await;

    assert!(
        !aws.stack_exists("run-shop").await.unwrap(),
        "deleted: this run created it"
    );
    assert_eq!(
        recorded.kinds().last(),
        Some(&EventKind::PlatformStopped {})
    );
}

#[tokio::test]
async fn a_run_attaches_to_a_stack_that_exists_and_leaves_it_in_place() {
    let moto = MotoServer::start();
    let aws = moto_clients(&moto).await;
    deploy_shop(&aws, "kept-shop").await;
    let target = stack_target(&moto.endpoint, "kept-shop");
    let recorded = Recorded::new();

    let platform = deploy_with(aws.clone(), &target, None, recorded.log.clone(), EVERY)
        .await
        .unwrap();
    assert_eq!(
        platform.admin_token(),
        None,
        "no GAMEDAY_ADMIN_TOKEN: the audit is not measured"
    );
    platform.shutdown().await;
    assert!(aws.stack_exists("kept-shop").await.unwrap());
}

fn scenario(target: &AwsTarget, faults: &str) -> Scenario {
    let text = format!(
        "name: aws-plan\ntarget:\n  platform: aws\n  region: us-east-1\n  endpoint-url: {}\n  stack: {}\n\
         load:\n  stages:\n    - {{ users: 5, over: 10s }}\nfaults:\n{faults}",
        target.endpoint_url.as_deref().unwrap_or_default(),
        target.stack.as_deref().unwrap_or_default(),
    );
    Scenario::parse(Path::new("aws.yaml"), &text).expect("a valid scenario")
}

#[tokio::test]
async fn plan_resolves_the_group_s_members_with_their_zones_and_the_dry_run_passes() {
    let moto = MotoServer::start();
    let aws = moto_clients(&moto).await;
    let out = deploy_shop(&aws, "plan-shop").await;
    let target = stack_target(&moto.endpoint, "plan-shop");
    let s = scenario(
        &target,
        "  - at: 5s\n    terminate-instance: { count: 1 }\n  - at: 8s\n    db-failover: {}\n",
    );
    let preview = preview_with(aws.clone(), &target).await.unwrap();

    let plan = crate::plan::render(&s, &*preview).await;

    let members: Vec<String> = aws
        .describe_group(&out["AutoScalingGroupName"])
        .await
        .unwrap()
        .members
        .into_iter()
        .map(|m| m.instance_id)
        .collect();
    assert!(
        plan.contains(&format!("would hit 1 of 3: {}", members[0])),
        "{plan}"
    );
    for id in &members {
        assert!(
            plan.contains(&format!("{id} (us-east-1a, t3.small in ")),
            "{id}: {plan}"
        );
    }
    let db = &out["DatabaseInstanceId"];
    assert!(
        plan.contains(&format!(
            "ForceFailover=true on DB instance {db} (arn:aws:rds:us-east-1:"
        )),
        "the plan names the database's ARN: {plan}"
    );
    assert!(!plan.contains("REFUSED"), "{plan}");
    assert!(
        plan.contains("EC2 TerminateInstances (SkipOsShutdown=true: lost at once"),
        "the plan says the instance is lost, not shut down: {plan}"
    );
    assert!(
        !plan.contains("WARNING"),
        "6 x 4 x 12 connections fit db.t3.medium: {plan}"
    );
    preview.shutdown().await;
    assert_eq!(
        aws.describe_group(&out["AutoScalingGroupName"])
            .await
            .unwrap()
            .members
            .len(),
        3
    );

    // The shop's own pool size on the template's class does not fit.
    let mut big_pools = target.clone();
    big_pools
        .parameters
        .insert("DatabasePoolSize".into(), "16".into());
    let preview = preview_with(aws.clone(), &big_pools).await.unwrap();
    let plan = crate::plan::render(&s, &*preview).await;
    assert!(
        plan.contains(&format!(
            "WARNING database {db}: connection budget: 6 instances x 4 services x 16 pooled \
             connections = 384, but db.t3.medium allows about 307"
        )),
        "{plan}"
    );
    preview.shutdown().await;

    // A stack not created yet: the plan says a run creates it.
    let missing = stack_target(&moto.endpoint, "not-yet");
    let preview = preview_with(aws, &missing).await.unwrap();
    let plan = crate::plan::render(
        &scenario(
            &missing,
            "  - at: 5s\n    terminate-instance: { count: 1 }\n",
        ),
        &*preview,
    )
    .await;
    assert!(
        plan.contains("stack not-yet on the stand-in at")
            && plan.contains("does not exist yet: a run creates it first"),
        "{plan}"
    );
}

#[tokio::test]
async fn terminate_instance_hits_its_count_and_the_watchers_see_each_replacement() {
    let moto = MotoServer::start();
    let aws = moto_clients(&moto).await;
    let out = deploy_shop(&aws, "shop").await;
    let target = stack_target(&moto.endpoint, "shop");
    let mut recorded = Recorded::new();
    let platform = deploy_with(aws.clone(), &target, None, recorded.log.clone(), EVERY)
        .await
        .unwrap();
    let rollback = Rollback::default();

    let hit = chaos::apply(
        &*platform,
        &recorded.log,
        &rollback,
        &terminate(BlastRadius::Count(2), None),
    )
    .await
    .expect("terminates two members");

    assert_eq!(hit.targets.len(), 2);
    let victims: HashSet<String> = hit.targets.iter().map(|t| t.id.clone()).collect();
    let replaced = |kinds: &[EventKind]| -> Vec<(String, String)> {
        kinds
            .iter()
            .filter_map(|k| match k {
                EventKind::InstanceLaunching {
                    instance,
                    replaces: Some(old),
                    group: Some(_),
                    scale_out: false,
                    ..
                } => Some((instance.clone(), old.clone())),
                _ => None,
            })
            .collect()
    };
    let kinds = recorded
        .wait_until(Duration::from_secs(20), "two replacements", |k| {
            replaced(k).len() == 2
        })
        .await;
    let replacements = replaced(&kinds);
    let replaced_ids: HashSet<String> = replacements.iter().map(|(_, old)| old.clone()).collect();
    assert_eq!(
        replaced_ids, victims,
        "each replacement names a terminated instance"
    );
    for victim in &victims {
        assert!(
            kinds.iter().any(|k| matches!(k, EventKind::InstanceTerminated { instance, zone: Some(_), .. } if instance == victim)),
            "{victim} terminated: {kinds:#?}"
        );
    }
    let fresh: Vec<&String> = replacements.iter().map(|(new, _)| new).collect();
    recorded
        .wait_until(Duration::from_secs(10), "the replacements running", |k| {
            fresh.iter().all(|id| {
                k.iter().any(
                    |e| matches!(e, EventKind::InstanceRunning { instance, .. } if &instance == id),
                )
            })
        })
        .await;
    let ec2 = aws
        .instances(&victims.iter().cloned().collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(ec2.values().all(|v| v.state == "terminated"), "{ec2:?}");
    let group = aws
        .describe_group(&out["AutoScalingGroupName"])
        .await
        .unwrap();
    assert_eq!(group.in_service().count(), 3, "the group is whole again");

    // A percent with a maximum, and a zone no member is in.
    let one = chaos::apply(
        &*platform,
        &recorded.log,
        &rollback,
        &terminate(
            BlastRadius::Percent {
                percent: 100.0,
                max: Some(1),
            },
            None,
        ),
    )
    .await
    .unwrap();
    assert_eq!(one.targets.len(), 1);
    let e = chaos::apply(
        &*platform,
        &recorded.log,
        &rollback,
        &terminate(BlastRadius::Count(1), Some("us-east-1b")),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("nothing to hit"),
        "moto puts every member in us-east-1a: {e}"
    );
    assert!(rollback.is_empty(), "nothing to undo on aws");
    platform.shutdown().await;
}

/// moto's FailoverDBCluster flips the writer at once.
#[tokio::test]
async fn db_failover_on_an_aurora_cluster_named_by_the_scenario_flips_the_writer() {
    let moto = MotoServer::start();
    let aws = moto_clients(&moto).await;
    let out = deploy_shop(&aws, "shop").await;
    aws.rds
        .create_db_cluster()
        .db_cluster_identifier("shop-aurora")
        .engine("aurora-mysql")
        .master_username("shop")
        .master_user_password("a-password-for-moto")
        .send()
        .await
        .unwrap();
    for id in ["shop-aurora-1", "shop-aurora-2"] {
        aws.rds
            .create_db_instance()
            .db_instance_identifier(id)
            .db_cluster_identifier("shop-aurora")
            .engine("aurora-mysql")
            .db_instance_class("db.r6g.large")
            .send()
            .await
            .unwrap();
    }
    let writer = aws
        .describe_db_cluster("shop-aurora")
        .await
        .unwrap()
        .writer()
        .unwrap()
        .to_string();
    // Attached by name: the group and the cluster, no stack.
    let target = AwsTarget {
        stack: None,
        auto_scaling_group: Some(out["AutoScalingGroupName"].clone()),
        database: Some(AwsDatabase::Cluster("shop-aurora".into())),
        entry_url: Some("http://127.0.0.1:9".into()),
        parameters: Default::default(),
        ..stack_target(&moto.endpoint, "unused")
    };
    let mut recorded = Recorded::new();
    let platform = deploy_with(aws.clone(), &target, None, recorded.log.clone(), EVERY)
        .await
        .expect("attaches by name");
    assert_eq!(platform.entry_url(), "http://127.0.0.1:9");
    let failover = fault(FaultKind::DbFailover {
        rebuild_standby: true,
    });

    let hit = chaos::apply(&*platform, &recorded.log, &Rollback::default(), &failover)
        .await
        .unwrap();

    assert_eq!(hit.targets[0].id, "shop-aurora");
    let after = aws.describe_db_cluster("shop-aurora").await.unwrap();
    let now = after.writer().unwrap().to_string();
    assert_ne!(now, writer, "the writer moved");
    recorded
        .wait_for(
            Duration::from_secs(10),
            "the writer's move",
            |k| matches!(k, EventKind::DbWriterMoved { to, .. } if *to == now),
        )
        .await;
    let inventory = platform.inventory().await.unwrap();
    assert_eq!(inventory.instances.len(), 3);
    assert!(
        inventory
            .instances
            .iter()
            .all(|i| i.zone.is_some() && i.healthy == Some(true))
    );
    let infra: Vec<&str> = inventory.infra.iter().map(|c| c.name.as_str()).collect();
    assert!(infra.contains(&"database shop-aurora"), "{infra:?}");
    assert!(
        infra.iter().any(|n| n.starts_with("load balancer ")),
        "{infra:?}"
    );
    platform.shutdown().await;
    assert!(
        aws.stack_exists("shop").await.unwrap(),
        "attached: nothing deleted"
    );
}
