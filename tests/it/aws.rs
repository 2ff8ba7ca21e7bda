//! The gameday binary on the aws platform, against moto's server (see
//! support/moto_server): `up`, `status` and `down` of the shop's stack, the
//! errors a user must be able to act on, and a game day end to end where
//! shoppers shop for real on a local stack (`gameday up --detach`) while
//! the faults hit moto's resources.
//!
//! What gameday sent is read from moto's recorder (TerminateInstances'
//! SkipOsShutdown, which moto accepts and ignores).
//!
//! moto's limits show here: a replacement instance joins the target group
//! only after SetDesiredCapacity (gameday never calls it), so the
//! replacement is seen launching and running but never serving; nothing
//! takes time (a failover, a reboot, a health check), so no figure here is
//! a timing.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

use crate::support::{
    moto_server::{MotoServer, SCENARIO_PARAMETERS, create_broker},
    processes_of,
};

/// gameday from `dir`, with its state there, AWS credentials for moto and
/// nothing read from this machine's AWS configuration.
fn gameday(dir: &Path, args: &[&str], admin_token: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gameday"));
    command
        .args(args)
        .current_dir(dir)
        .env("GAMEDAY_STATE_DIR", dir.join("state"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("no-aws-credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("GAMEDAY_ADMIN_TOKEN");
    if let Some(token) = admin_token {
        command.env("GAMEDAY_ADMIN_TOKEN", token);
    }
    command.output().expect("gameday runs")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A scenario on moto with the shop's stack `stack`; `more` goes into the
/// target, `rest` after it.
fn scenario(dir: &Path, moto: &MotoServer, stack: &str, more: &str, rest: &str) -> PathBuf {
    let parameters: String = SCENARIO_PARAMETERS
        .iter()
        .map(|(k, v)| format!("    {k}: {v}\n"))
        .collect();
    let path = dir.join(format!("{stack}.yaml"));
    std::fs::write(
        &path,
        format!(
            "name: {stack}\ntarget:\n  platform: aws\n  region: us-east-1\n  endpoint-url: {}\n  \
             stack: {stack}\n{more}  parameters:\n{parameters}{rest}",
            moto.endpoint
        ),
    )
    .unwrap();
    path
}

const LOAD: &str = "load:\n  stages:\n    - { users: 5, over: 10s }\n";

#[test]
fn up_status_and_down_manage_the_shop_s_stack_on_moto() {
    let dir = tempfile::tempdir().unwrap();
    let moto = MotoServer::start();
    let file = scenario(dir.path(), &moto, "cli-shop", "", LOAD);
    let file = file.to_str().unwrap();

    let refused = gameday(dir.path(), &["up", "--scenario", file], None);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("set GAMEDAY_ADMIN_TOKEN"),
        "{}",
        text(&refused)
    );

    let up = gameday(
        dir.path(),
        &["up", "--scenario", file],
        Some("an-admin-token-for-e2e"),
    );
    assert!(up.status.success(), "{}", text(&up));
    assert!(text(&up).contains("Up: stack cli-shop"), "{}", text(&up));
    assert!(
        text(&up)
            .contains("to s3://gameday-123456789012-us-east-1-cli-shop/releases/gameday-shop-"),
        "up uploads the release to the stack's bucket: {}",
        text(&up)
    );

    let status = gameday(
        dir.path(),
        &["status", "--json", "--scenario", file],
        Some("an-admin-token-for-e2e"),
    );
    assert!(status.status.success(), "{}", text(&status));
    let inv: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(inv["platform"], "aws");
    let instances = inv["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 3, "{inv}");
    assert!(
        instances
            .iter()
            .all(|i| i["state"] == "running" && i["healthy"] == true && i["zone"].is_string())
    );
    assert_eq!(inv["admin_token"], "an-admin-token-for-e2e");

    let down = gameday(dir.path(), &["down", "--scenario", file], None);
    assert!(down.status.success(), "{}", text(&down));
    assert!(
        text(&down).contains("Stack cli-shop is gone."),
        "{}",
        text(&down)
    );
    assert!(
        text(&down).contains(
            "bucket gameday-123456789012-us-east-1-cli-shop (the shop's release) is gone"
        ),
        "{}",
        text(&down)
    );
    let status = gameday(dir.path(), &["status", "--json", "--scenario", file], None);
    assert_eq!(String::from_utf8_lossy(&status.stdout).trim(), "null");
}

#[test]
fn bad_credentials_an_unknown_stack_and_a_missing_database_exit_1_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let checking = MotoServer::start_checking_credentials();
    let file = scenario(dir.path(), &checking, "creds", "", LOAD);
    let out = gameday(dir.path(), &["plan", file.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out)
            .contains("the AWS credentials are missing or were refused (InvalidClientTokenId)"),
        "{}",
        text(&out)
    );

    let moto = MotoServer::start();
    let file = scenario(dir.path(), &moto, "nowhere", "", LOAD);
    let out = gameday(
        dir.path(),
        &[
            "inject",
            "terminate-instance",
            "--count",
            "1",
            "--scenario",
            file.to_str().unwrap(),
            "--yes",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "CloudFormation stack nowhere does not exist on the stand-in at {}",
            moto.endpoint
        )),
        "{}",
        text(&out)
    );

    let named = dir.path().join("named.yaml");
    std::fs::write(
        &named,
        format!(
            "name: named\ntarget:\n  platform: aws\n  region: us-east-1\n  endpoint-url: {}\n  \
             auto-scaling-group: shop-asg\n  database: {{ instance: shop-db }}\n  \
             entry-url: http://127.0.0.1:9\n{LOAD}",
            moto.endpoint
        ),
    )
    .unwrap();
    let out = gameday(
        dir.path(),
        &["status", "--scenario", named.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("Auto Scaling group shop-asg does not exist on the stand-in"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
}

/// What moto received from the run that created `stack`: the shop's
/// release tarball PUT into the stack's bucket (path style), the stack
/// created with that key and the SHA-256 of exactly those bytes, and the
/// bucket deleted after the stack.
fn assert_release_published(moto: &MotoServer, stack: &str) {
    use sha2::Digest as _;
    let bucket = format!("/gameday-123456789012-us-east-1-{stack}");
    let recorded = moto.recorded();
    let puts: Vec<_> = recorded
        .iter()
        .filter(|r| r.method == "PUT" && r.url.contains(&format!("{bucket}/releases/")))
        .collect();
    assert_eq!(puts.len(), 1, "one upload of the release");
    let key = puts[0].url.split(&format!("{bucket}/")).nth(1).unwrap();
    let key = key.split('?').next().unwrap().to_string();
    let sha: String = sha2::Sha256::digest(&puts[0].body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(key, format!("releases/gameday-shop-{sha}.tar.gz"));
    assert!(puts[0].body.len() > 1_000_000, "the six binaries, gzipped");
    let create = recorded
        .iter()
        .find(|r| r.action().as_deref() == Some("CreateStack"))
        .expect("CreateStack")
        .form();
    let parameter = |name: &str| {
        (1..40)
            .find(|i| {
                create
                    .get(&format!("Parameters.member.{i}.ParameterKey"))
                    .map(String::as_str)
                    == Some(name)
            })
            .map(|i| create[&format!("Parameters.member.{i}.ParameterValue")].clone())
    };
    assert_eq!(parameter("ReleaseBucket").as_deref(), Some(&bucket[1..]));
    assert_eq!(parameter("ReleaseKey"), Some(key));
    assert_eq!(parameter("ReleaseArtifactSha256"), Some(sha));
    // The requests about the bucket itself (not its objects): the path is
    // the bucket's, with or without a trailing slash.
    let of_bucket: Vec<_> = recorded
        .iter()
        .filter(|r| {
            let path = r.url.split('?').next().unwrap();
            path.trim_end_matches('/').ends_with(&bucket)
        })
        .collect();
    let seen: Vec<String> = of_bucket
        .iter()
        .map(|r| format!("{} {}", r.method, r.url))
        .collect();
    let public_blocked = of_bucket.iter().any(|r| {
        r.method == "PUT"
            && r.url
                .split_once('?')
                .is_some_and(|(_, q)| q.contains("publicAccessBlock"))
    });
    assert!(
        public_blocked,
        "the bucket's public access is blocked: {seen:#?}"
    );
    let last_of_bucket = of_bucket.last().expect("requests about the bucket");
    assert_eq!(
        last_of_bucket.method, "DELETE",
        "the bucket is deleted last"
    );
}

/// Stops the local stack when dropped, whatever happened.
struct LocalStack<'a>(&'a Path);

impl Drop for LocalStack<'_> {
    fn drop(&mut self) {
        let _ = gameday(self.0, &["down"], None);
    }
}

fn broker_on(moto: &MotoServer) -> String {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&moto.endpoint)
            .credentials_provider(aws_credential_types::Credentials::new(
                "testing", "testing", None, None, "e2e",
            ))
            .load()
            .await;
        create_broker(&aws_sdk_mq::Client::new(&config)).await
    })
}

#[test]
fn a_game_day_on_moto_terminates_an_instance_fails_the_database_over_while_shoppers_shop() {
    let dir = tempfile::tempdir().unwrap();
    // The shop the shoppers use: a local stack, with its storefront and
    // admin token from `status --json`.
    let local = dir.path().join("local.yaml");
    std::fs::write(
        &local,
        "name: local\ntarget:\n  instances: 2\n  replicas: { web: 1, user: 1, catalogue: 1, cart: 1, orders: 1, shipping: 1 }\n",
    )
    .unwrap();
    let stack_dir = dir.path().join("stack");
    let up = gameday(
        dir.path(),
        &[
            "up",
            "--detach",
            "--scenario",
            local.to_str().unwrap(),
            "--run-dir",
            stack_dir.to_str().unwrap(),
        ],
        None,
    );
    let local_stack = LocalStack(dir.path());
    assert!(up.status.success(), "{}", text(&up));
    let status = gameday(dir.path(), &["status", "--json"], None);
    let status: Value = serde_json::from_slice(&status.stdout).expect("status --json");
    let entry = status["entry_url"].as_str().unwrap().to_string();
    let token = status["admin_token"].as_str().unwrap().to_string();

    // moto ignores SkipOsShutdown; its recorder shows what gameday sent.
    let moto = MotoServer::start_recording();
    let broker = broker_on(&moto);
    let file = scenario(
        dir.path(),
        &moto,
        "gameday-e2e",
        &format!("  broker: {broker}\n  entry-url: {entry}\n"),
        "load:
  stages:
    - { users: 10, over: 3s }
    - { users: 10, over: 14s }
    - { users: 0, over: 2s }
  think-time: 100ms..300ms
  journeys: { browse: 50, buy: 40, abandon: 10 }
faults:
  - name: lose an instance
    at: 5s
    terminate-instance: { count: 1 }
  - name: fail the database over
    at: 9s
    db-failover: {}
  - name: reboot the broker
    at: 13s
    restart-broker: {}
slo:
  availability: 99%
  lost-orders: 0
report:
  dir: reports
",
    );
    let run = dir.path().join("run");

    let out = gameday(
        dir.path(),
        &[
            "run",
            file.to_str().unwrap(),
            "--yes",
            "--output",
            run.to_str().unwrap(),
        ],
        Some(&token),
    );

    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    // Shown with `--no-capture`: the run as gameday printed it.
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    crate::support::assert_exit(out.status.code(), &summary, &[0], &text(&out));
    if !crate::support::saturated_only(&summary) {
        assert_eq!(summary["verdict"], "pass", "{summary}");
    }
    let faults = summary["faults"].as_array().unwrap();
    let kinds: Vec<&str> = faults.iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["terminate-instance", "db-failover", "restart-broker"],
        "{summary}"
    );
    let terminated = faults[0]["targets"][0].as_str().unwrap().to_string();
    assert!(terminated.starts_with("i-"), "{summary}");
    assert_eq!(faults[0]["targets"].as_array().unwrap().len(), 1);
    assert_eq!(faults[2]["targets"][0], broker.as_str());
    assert_eq!(
        summary["orders"]["lost"], 0,
        "the audit ran with the token: {summary}"
    );
    assert!(summary["orders"]["accepted"].as_u64().unwrap() > 0);
    let schema = crate::support::summary_schema();
    assert!(schema.is_valid(&summary));
    let plan = std::fs::read_to_string(run.join("plan.txt")).unwrap();
    assert!(
        plan.contains(&format!("Reports: {}/ ", run.display())),
        "the plan names the directory --output chose: {plan}"
    );

    assert!(
        plan.contains("EC2 TerminateInstances (SkipOsShutdown=true: lost at once"),
        "the plan (and so the report) says the instance is lost: {plan}"
    );
    let terminations: Vec<_> = moto
        .recorded_action("TerminateInstances")
        .into_iter()
        .map(|r| r.form())
        .filter(|form| !form.contains_key("DryRun"))
        .collect();
    assert_eq!(terminations.len(), 1, "{terminations:#?}");
    assert_eq!(terminations[0]["InstanceId.1"], terminated);
    assert_eq!(
        terminations[0].get("SkipOsShutdown").map(String::as_str),
        Some("true"),
        "a lost instance, not a shutdown: {terminations:#?}"
    );

    // The confirmation names the account, region and stack (not asked of a
    // stand-in on loopback).
    assert!(
        text(&out).contains(
            "This acts on AWS account 123456789012 in region us-east-1 (stack gameday-e2e)"
        ),
        "{}",
        text(&out)
    );
    assert_release_published(&moto, "gameday-e2e");

    // The watchers saw the instance go and its replacement come.
    let events: Vec<Value> = std::fs::read_to_string(run.join("events.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let of = |kind: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| &e["fields"])
            .collect()
    };
    assert!(
        of("instance.terminated")
            .iter()
            .any(|f| f["instance"] == terminated.as_str()),
        "{events:#?}"
    );
    let replacement = of("instance.launching")
        .into_iter()
        .find(|f| f["replaces"] == terminated.as_str())
        .unwrap_or_else(|| panic!("no replacement of {terminated}: {events:#?}"));
    let new = replacement["instance"].as_str().unwrap();
    assert!(
        of("instance.running").iter().any(|f| f["instance"] == new),
        "the replacement runs: {events:#?}"
    );
    assert_eq!(
        faults[0]["replacements"],
        serde_json::json!([new]),
        "the summary names the replacement: {summary}"
    );
    assert_eq!(
        of("instance.serving").len(),
        3,
        "three at attach; moto never registers the replacement"
    );
    assert_eq!(of("db.status")[0]["status"], "available");

    // The run created the stack, so it deleted it.
    let status = gameday(
        dir.path(),
        &["status", "--json", "--scenario", file.to_str().unwrap()],
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&status.stdout).trim(),
        "null",
        "{}",
        text(&status)
    );
    drop(local_stack);
    assert!(
        processes_of(dir.path()).is_empty(),
        "{:?}",
        processes_of(dir.path())
    );
}
