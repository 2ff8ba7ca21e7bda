//! The aws platform's calls and commands against moto's server: the
//! template through CloudFormation, `up` and `down`, the group behind its
//! target group, and the errors a user must be able to act on. Each test
//! starts its own moto.

use std::collections::HashSet;

use aws_credential_types::Credentials;

use super::{
    clients_at, deploy_shop, down_with, moto_clients,
    moto_server::{MotoServer, TEST_ADMIN_TOKEN, create_broker},
    open_with, stack_target, test_credentials, up_with,
};
use crate::{
    platform::{
        self,
        aws::{self, Error, ResourceKind},
    },
    scenario::AwsDatabase,
};

#[tokio::test]
async fn up_deploys_the_template_through_cloudformation_and_down_deletes_everything_it_made() {
    let moto = MotoServer::start();
    let aws = moto_clients(&moto).await;
    let target = stack_target(&moto.endpoint, "gameday-shop");

    let up = up_with(&aws, &target, Some(TEST_ADMIN_TOKEN))
        .await
        .unwrap();

    assert!(up.created);
    let info = aws.describe_stack("gameday-shop").await.unwrap();
    assert_eq!(info.status, "CREATE_COMPLETE");
    let out = &info.outputs;
    let group = aws
        .describe_group(&out["AutoScalingGroupName"])
        .await
        .unwrap();
    assert_eq!(
        (group.min_size, group.max_size, group.desired_capacity),
        (3, 6, 3)
    );
    assert_eq!(group.in_service().count(), 3);
    assert_eq!(group.target_group_arns, vec![out["TargetGroupArn"].clone()]);
    let tgs = aws.target_groups_of_group(&group).await.unwrap();
    assert_eq!(tgs[0].health_check_path.as_deref(), Some("/health/ready"));
    let lbs = aws
        .load_balancers(&[out["LoadBalancerArn"].clone()])
        .await
        .unwrap();
    assert_eq!(out["EntryUrl"], format!("http://{}", lbs[0].dns_name));
    let db = aws
        .describe_db_instance(&out["DatabaseInstanceId"])
        .await
        .unwrap();
    assert!(db.multi_az && db.engine == "mariadb", "{db:?}");
    let replica = aws
        .describe_db_instance(&out["DatabaseReadReplicaId"])
        .await
        .unwrap();
    assert_eq!(replica.replica_of.as_deref(), Some(db.id.as_str()));
    // A second `up` finds the stack and creates nothing.
    let again = up_with(&aws, &target, Some(TEST_ADMIN_TOKEN))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.entry_url, out["EntryUrl"]);

    assert!(down_with(&aws, &target).await.unwrap().existed);

    assert!(!aws.stack_exists("gameday-shop").await.unwrap());
    assert!(matches!(
        aws.describe_group(&group.name).await,
        Err(Error::NotFound {
            kind: ResourceKind::AutoScalingGroup,
            ..
        })
    ));
    assert!(
        aws.describe_db_instance(&db.id)
            .await
            .unwrap_err()
            .is_not_found()
    );
    // Nothing left to delete: said, not an error.
    assert!(!down_with(&aws, &target).await.unwrap().existed);
}

#[tokio::test]
async fn up_without_an_admin_token_is_refused_before_anything_is_created() {
    let moto = MotoServer::start();
    let aws = moto_clients(&moto).await;
    let target = stack_target(&moto.endpoint, "gameday-shop");

    let e = match up_with(&aws, &target, None).await {
        Err(e) => e,
        Ok(_) => panic!("up without an admin token"),
    };

    assert!(e.to_string().contains("set GAMEDAY_ADMIN_TOKEN"), "{e}");
    assert!(!aws.stack_exists("gameday-shop").await.unwrap());
}

/// moto's quirk, written down: TerminateInstances creates the replacement
/// inside the call, but registers it in the target group only on the next
/// SetDesiredCapacity (AWS registers it once it is InService). gameday
/// never calls SetDesiredCapacity itself.
#[tokio::test]
async fn moto_registers_a_replacement_in_the_target_group_only_after_set_desired_capacity() {
    let moto = MotoServer::start();
    let aws = moto_clients(&moto).await;
    let out = deploy_shop(&aws, "shop").await;
    let (name, tg) = (&out["AutoScalingGroupName"], &out["TargetGroupArn"]);
    let before = aws.describe_group(name).await.unwrap();
    let victim = before.members[0].instance_id.clone();

    aws.terminate_instances(std::slice::from_ref(&victim))
        .await
        .unwrap();

    let after = aws.describe_group(name).await.unwrap();
    let old: HashSet<_> = before
        .members
        .iter()
        .map(|m| m.instance_id.clone())
        .collect();
    let new: Vec<_> = after
        .members
        .iter()
        .map(|m| m.instance_id.clone())
        .filter(|id| !old.contains(id))
        .collect();
    assert_eq!(new.len(), 1, "one replacement at once: {after:?}");
    let registered = |health: Vec<aws::elb::TargetHealth>| -> HashSet<String> {
        health.into_iter().map(|h| h.instance_id).collect()
    };
    let now = registered(aws.target_health(tg).await.unwrap());
    assert!(!now.contains(&victim) && !now.contains(&new[0]), "{now:?}");
    aws.autoscaling
        .set_desired_capacity()
        .auto_scaling_group_name(name)
        .desired_capacity(after.desired_capacity)
        .send()
        .await
        .unwrap();
    assert!(registered(aws.target_health(tg).await.unwrap()).contains(&new[0]));
}

#[tokio::test]
async fn bad_credentials_are_refused_with_the_code_and_where_the_call_went() {
    let moto = MotoServer::start_checking_credentials();
    let aws = clients_at(
        &moto.endpoint,
        Credentials::new("AKIAIOSFODNN7EXAMPLE", "not-the-secret", None, None, "test"),
    )
    .await;
    let target = stack_target(&moto.endpoint, "gameday-shop");

    let e = match open_with(aws.clone(), &target).await {
        Err(e) => e,
        Ok(_) => panic!("attached with bad credentials"),
    };

    assert!(
        matches!(&e, platform::Error::Aws(Error::Credentials { code: Some(c), .. }) if c == "InvalidClientTokenId"),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "DescribeStacks on the stand-in at {} (region us-east-1): the AWS credentials are \
             missing or were refused (InvalidClientTokenId)",
            moto.endpoint
        )),
        "{text}"
    );
    // EC2 says it with its own code.
    match aws
        .terminate_instances(&["i-0123456789abcdef0".into()])
        .await
    {
        Err(Error::Credentials { code, .. }) => assert_eq!(code.as_deref(), Some("AuthFailure")),
        other => panic!("expected refused credentials, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_stack_and_a_missing_database_are_named_with_where_they_were_looked_for() {
    let moto = MotoServer::start();
    let aws = moto_clients(&moto).await;
    let place = format!("the stand-in at {} (region us-east-1)", moto.endpoint);

    let e = open_with(aws.clone(), &stack_target(&moto.endpoint, "no-such-stack"))
        .await
        .err()
        .expect("an unknown stack is an error");
    assert_eq!(
        e.to_string(),
        format!("CloudFormation stack no-such-stack does not exist on {place}")
    );

    let out = deploy_shop(&aws, "shop").await;
    let mut named = stack_target(&moto.endpoint, "unused");
    named.stack = None;
    named.auto_scaling_group = Some(out["AutoScalingGroupName"].clone());
    named.entry_url = Some("http://127.0.0.1:9".into());
    named.database = Some(AwsDatabase::Instance("no-such-db".into()));
    let e = open_with(aws.clone(), &named)
        .await
        .err()
        .expect("a missing database is an error");
    assert_eq!(
        e.to_string(),
        format!("RDS DB instance no-such-db does not exist on {place}")
    );
    named.database = Some(AwsDatabase::Cluster("no-such-cluster".into()));
    let e = open_with(aws, &named).await.err().unwrap();
    assert!(
        matches!(
            e,
            platform::Error::Aws(Error::NotFound {
                kind: ResourceKind::DbCluster,
                ..
            })
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn an_endpoint_that_does_not_answer_is_named_with_its_region() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let aws = clients_at(&endpoint, test_credentials()).await;

    let e = open_with(aws, &stack_target(&endpoint, "gameday-shop"))
        .await
        .err()
        .expect("nothing answers");

    assert!(
        matches!(e, platform::Error::Aws(Error::Unreachable { .. })),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with(&format!(
            "DescribeStacks: cannot reach the stand-in at {endpoint} (region us-east-1): the connection failed"
        )),
        "{e}"
    );
}

#[tokio::test]
async fn a_broker_named_by_the_scenario_is_rebooted_and_a_cache_without_nodes_is_refused() {
    let moto = MotoServer::start();
    let aws = moto_clients(&moto).await;
    let out = deploy_shop(&aws, "shop").await;
    let broker = create_broker(&aws.mq).await;
    // moto creates cache clusters but lists no nodes for them.
    aws.elasticache
        .create_cache_cluster()
        .cache_cluster_id("shop-cache")
        .engine("redis")
        .cache_node_type("cache.t3.micro")
        .num_cache_nodes(1)
        .send()
        .await
        .unwrap();

    // moto answers RebootBroker and stays RUNNING (AWS: REBOOT_IN_PROGRESS).
    let after = aws.reboot_broker(&broker).await.unwrap();
    assert_eq!(
        (after.id.as_str(), after.engine.as_str()),
        (broker.as_str(), "RABBITMQ")
    );
    let e = aws.reboot_cache_cluster("shop-cache").await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "ElastiCache cluster shop-cache: lists no cache nodes to reboot"
    );
    assert!(matches!(
        aws.reboot_broker("no-such-broker").await,
        Err(platform::Error::Aws(Error::NotFound {
            kind: ResourceKind::Broker,
            ..
        }))
    ));
    assert!(out.contains_key("DatabaseInstanceId"));
}

/// moto's STS answers GetCallerIdentity with its account, 123456789012.
#[tokio::test]
async fn the_confirmation_names_the_account_the_region_and_the_stack() {
    let moto = MotoServer::start();
    let aws = moto_clients(&moto).await;
    let target = stack_target(&moto.endpoint, "gameday-shop");

    let text = crate::platform::aws::confirmation_text(&aws, &target)
        .await
        .unwrap();

    assert_eq!(
        text,
        "This acts on AWS account 123456789012 in region us-east-1 (stack gameday-shop)."
    );
}
