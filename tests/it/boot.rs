//! The shop's boot path on AWS, run for real: the template's user data, as
//! CloudFormation's Fn::Sub renders it, runs as root under systemd in a
//! Debian 12 root filesystem (`scripts/bootroot.sh`: what Debian's AMI has,
//! plus the packages the user data would install) booted with
//! systemd-nspawn in a network namespace of its own. Then the six services
//! must answer `/health/ready` against real MariaDB, Redis and RabbitMQ.
//!
//! Stand-ins, where nothing real can run here:
//! - moto's server for every AWS call the instance makes (S3 for the
//!   release gameday packed and uploaded, Secrets Manager, ElastiCache,
//!   Amazon MQ, and CloudFormation's SignalResource, which moto records but
//!   does not implement), reached at `ServiceEndpointUrl`;
//! - moto's instance metadata (`/latest/api/token`, the instance id and the
//!   role's credentials), reached at 169.254.169.254 through DNAT;
//! - Amazon MQ's AMQPS: a TLS front (support/tls_front.py) with a
//!   certificate for moto's broker host from the test's own CA, which the
//!   instance trusts;
//! - cloud-init: a systemd unit that runs the user data once the network
//!   is up;
//! - DNS: /etc/hosts names the database (its writer and read replica: one
//!   MariaDB), cache and broker hosts.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use gameday::platform::{
    aws::{AwsClients, release, template::SHOP_TEMPLATE},
    local::infra::{MariaDb, MariaDbOptions, RabbitMq, Redis, SHOP_USER},
};
use serde_yaml_ng::Value;

use crate::support::moto_server::{MotoServer, create_broker};

const NETNS: &str = "gameday-boot";
const HOST_IF: &str = "gdboot0";
const INSTANCE_IF: &str = "gdboot1";
const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 251, 0, 1);
const INSTANCE_IP: Ipv4Addr = Ipv4Addr::new(10, 251, 0, 2);
const STACK: &str = "boot";
const DB_HOST: &str = "boot-db.stand-in.us-east-1.rds.amazonaws.com";
/// The read replica's host: the same MariaDB stands in for it.
const REPLICA_HOST: &str = "boot-db-replica.stand-in.us-east-1.rds.amazonaws.com";
/// moto's Amazon MQ answers every broker's endpoint with this host.
const BROKER_HOST: &str = "mockmq";
/// How long the instance may take from power-on to its boot signal.
const BOOT_DEADLINE: Duration = Duration::from_secs(300);

fn run(program: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The network namespace, its veth pair and the host's NAT rules; all of
/// it removed when dropped (and before, if a killed run left any).
struct Network {
    nat: Vec<Vec<String>>,
}

impl Network {
    fn new(moto_port: u16) -> Self {
        Self::clear();
        let host = format!("{HOST_IP}/30");
        let instance = format!("{INSTANCE_IP}/30");
        run("ip", &["netns", "add", NETNS]);
        run(
            "ip",
            &[
                "link",
                "add",
                HOST_IF,
                "type",
                "veth",
                "peer",
                "name",
                INSTANCE_IF,
                "netns",
                NETNS,
            ],
        );
        run("ip", &["addr", "add", &host, "dev", HOST_IF]);
        run("ip", &["link", "set", HOST_IF, "up"]);
        let ns = |args: &[&str]| {
            let mut all = vec!["netns", "exec", NETNS];
            all.extend_from_slice(args);
            run("ip", &all);
        };
        ns(&["ip", "addr", "add", &instance, "dev", INSTANCE_IF]);
        ns(&["ip", "link", "set", INSTANCE_IF, "up"]);
        ns(&["ip", "link", "set", "lo", "up"]);
        ns(&["ip", "route", "add", "default", "via", &HOST_IP.to_string()]);
        // moto listens on loopback; what the instance sends to the metadata
        // address and to the endpoint URL reaches it through DNAT.
        run(
            "sysctl",
            &["-qw", &format!("net.ipv4.conf.{HOST_IF}.route_localnet=1")],
        );
        let to = format!("127.0.0.1:{moto_port}");
        let port = moto_port.to_string();
        let mut network = Self { nat: Vec::new() };
        for (dest, dport) in [("169.254.169.254", "80"), (&*HOST_IP.to_string(), &*port)] {
            let rule: Vec<String> = [
                "PREROUTING",
                "-i",
                HOST_IF,
                "-p",
                "tcp",
                "-d",
                dest,
                "--dport",
                dport,
                "-j",
                "DNAT",
                "--to-destination",
                &to,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let mut add = vec!["-t", "nat", "-A"];
            add.extend(rule.iter().map(String::as_str));
            run("iptables", &add);
            network.nat.push(rule);
        }
        network
    }

    fn clear() {
        let _ = Command::new("ip").args(["netns", "del", NETNS]).output();
        let _ = Command::new("ip").args(["link", "del", HOST_IF]).output();
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for rule in &self.nat {
            let mut del = vec!["-t", "nat", "-D"];
            del.extend(rule.iter().map(String::as_str));
            let _ = Command::new("iptables").args(&del).output();
        }
        Self::clear();
    }
}

/// A child process killed when dropped (the TLS front, the container).
struct Running {
    child: Child,
    what: &'static str,
}

impl Drop for Running {
    fn drop(&mut self) {
        // systemd-nspawn halts the container on SIGTERM; a second one ends it.
        let pid = self.child.id() as i32;
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.what);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The template's user data as CloudFormation renders it: the `!Sub` of
/// the launch template's UserData with `vars`. Any `${...}` left over is a
/// name the template uses that the test does not know: a failure.
fn rendered_user_data(vars: &BTreeMap<&str, String>) -> String {
    let doc: Value = serde_yaml_ng::from_str(SHOP_TEMPLATE).unwrap();
    let user_data = &doc["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]
        ["Fn::Base64"];
    let Value::Tagged(sub) = user_data else {
        panic!("UserData is Fn::Base64 of a !Sub: {user_data:?}")
    };
    assert_eq!(sub.tag.to_string(), "!Sub");
    let text = sub.value[0].as_str().expect("the !Sub's text");
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("a closed ${") + start;
        let name = &rest[start + 2..end];
        match name.strip_prefix('!') {
            Some(literal) => out.push_str(&format!("${{{literal}}}")),
            None => out.push_str(
                vars.get(name)
                    .unwrap_or_else(|| panic!("the user data uses ${{{name}}}, not given")),
            ),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A test CA and a certificate for `host` it signed, with openssl.
fn certificates(dir: &Path, host: &str) -> (PathBuf, PathBuf, PathBuf) {
    let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=gameday boot test CA",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.crt"),
        ],
    );
    run(
        "openssl",
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={host}"),
            "-keyout",
            &p("mq.key"),
            "-out",
            &p("mq.csr"),
        ],
    );
    std::fs::write(
        dir.join("mq.ext"),
        format!("subjectAltName=DNS:{host}\nbasicConstraints=CA:FALSE\n"),
    )
    .unwrap();
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &p("mq.csr"),
            "-CA",
            &p("ca.crt"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &p("mq.ext"),
            "-out",
            &p("mq.crt"),
        ],
    );
    (dir.join("ca.crt"), dir.join("mq.crt"), dir.join("mq.key"))
}

/// Creates a secret on moto (Secrets Manager's JSON protocol; the SDK
/// crate is not one gameday needs) and returns its ARN.
async fn create_secret(moto: &MotoServer, name: &str, value: serde_json::Value) -> String {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(&moto.endpoint)
        .header("X-Amz-Target", "secretsmanager.CreateSecret")
        .header("Content-Type", "application/x-amz-json-1.1")
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20261203/us-east-1/secretsmanager/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .json(&serde_json::json!({ "Name": name, "SecretString": value.to_string() }))
        .send()
        .await
        .expect("moto answers")
        .json()
        .await
        .expect("CreateSecret's JSON");
    answer["ARN"].as_str().expect("an ARN").to_string()
}

async fn moto_clients(moto: &MotoServer) -> AwsClients {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&moto.endpoint)
        .credentials_provider(aws_credential_types::Credentials::new(
            "testing", "testing", None, None, "boot",
        ))
        .load()
        .await;
    AwsClients::from_sdk_config(&config, Some(moto.endpoint.clone())).unwrap()
}

/// A replication group on moto; its primary endpoint (host, port).
async fn create_cache(aws: &AwsClients, id: &str) -> (String, u16) {
    aws.elasticache
        .create_replication_group()
        .replication_group_id(id)
        .replication_group_description("boot test")
        .engine("redis")
        .cache_node_type("cache.t3.micro")
        .num_cache_clusters(2)
        .send()
        .await
        .expect("moto creates a replication group");
    let groups = aws
        .elasticache
        .describe_replication_groups()
        .replication_group_id(id)
        .send()
        .await
        .unwrap();
    let primary = groups.replication_groups()[0].node_groups()[0]
        .primary_endpoint()
        .expect("a primary endpoint")
        .clone();
    (
        primary.address().unwrap().to_string(),
        u16::try_from(primary.port().unwrap()).unwrap(),
    )
}

/// `/health/ready` of the service on `port`, asked from inside the
/// instance (the services other than web listen on its loopback only).
fn health_in_instance(port: u16) -> Option<serde_json::Value> {
    let out = Command::new("ip")
        .args(["netns", "exec", NETNS, "curl", "-fsS", "-m", "3"])
        .arg(format!("http://127.0.0.1:{port}/health/ready"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_data_boots_a_debian_12_instance_whose_six_services_get_ready() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bootroot = run(
        "bash",
        &[root.join("scripts/bootroot.sh").to_str().unwrap()],
    );
    let rootfs = PathBuf::from(String::from_utf8_lossy(&bootroot.stdout).trim());
    assert!(rootfs.join("usr/bin/aws").is_file(), "{}", rootfs.display());

    let dir = tempfile::tempdir().unwrap();
    let moto = MotoServer::start_recording();
    let _network = Network::new(moto.port);
    let host = IpAddr::V4(HOST_IP);

    // What the stack would have made, made on moto: the release in the
    // stack's bucket (packed and uploaded by gameday's own code), the
    // secrets (set to the real servers' users), the cache and the broker.
    let aws = moto_clients(&moto).await;
    let release = release::pack(&gameday::platform::local::shop::bin_dir()).expect("the release");
    let bucket = release::bucket_name("123456789012", "us-east-1", STACK);
    aws.publish_release(&bucket, STACK, &release).await.unwrap();
    let (cache_host, cache_port) = create_cache(&aws, "boot-cache").await;
    let broker = create_broker(&aws.mq).await;
    let db_secret = create_secret(
        &moto,
        "boot-db",
        serde_json::json!({ "username": SHOP_USER.0, "password": SHOP_USER.1 }),
    )
    .await;
    let broker_secret = create_secret(
        &moto,
        "boot-broker",
        serde_json::json!({ "username": "guest", "password": "guest" }),
    )
    .await;
    let app_secret = create_secret(
        &moto,
        "boot-app",
        serde_json::json!({ "admin_token": "boot-admin-token-0123", "jwt_secret": "boot-jwt" }),
    )
    .await;

    // The real servers, where the instance's names lead.
    let (redis, mariadb, rabbit) = tokio::join!(
        Redis::start(dir.path().join("redis"), host, Some(cache_port)),
        MariaDb::start(MariaDbOptions {
            dir: dir.path().join("mariadb"),
            ip: host,
            port: Some(3306),
            server_id: 1,
            replication: false,
        }),
        RabbitMq::start(dir.path().join("rabbitmq"), host, Some(5672)),
    );
    let (_redis, _mariadb, _rabbit) = (
        redis.expect("redis starts"),
        mariadb.expect("mariadb starts"),
        rabbit.expect("rabbitmq starts"),
    );
    let (ca, cert, key) = certificates(dir.path(), BROKER_HOST);
    let _front = Running {
        child: Command::new("python3")
            .arg(root.join("tests/it/support/tls_front.py"))
            .args([&HOST_IP.to_string(), "5671", &HOST_IP.to_string(), "5672"])
            .arg(&cert)
            .arg(&key)
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 runs"),
        what: "the TLS front",
    };

    let vars: BTreeMap<&str, String> = [
        ("AWS::Region", "us-east-1".to_string()),
        ("AWS::StackName", STACK.to_string()),
        (
            "ServiceEndpointUrl",
            format!("http://{HOST_IP}:{}", moto.port),
        ),
        (release::BUCKET_PARAMETER, bucket.clone()),
        (release::KEY_PARAMETER, release.key()),
        (release::SHA256_PARAMETER, release.sha256.clone()),
        ("DatabaseSecret", db_secret),
        ("BrokerSecret", broker_secret),
        ("AppSecret", app_secret),
        ("Cache", "boot-cache".to_string()),
        ("Broker", broker),
        ("DatabaseAddress", DB_HOST.to_string()),
        ("DatabasePort", "3306".to_string()),
        ("DatabaseReplicaAddress", REPLICA_HOST.to_string()),
        ("DatabaseReplicaPort", "3306".to_string()),
        ("DatabasePoolSize", "4".to_string()),
    ]
    .into_iter()
    .collect();
    let user_data = dir.path().join("user-data");
    std::fs::write(&user_data, rendered_user_data(&vars)).unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(
        &hosts,
        format!(
            "127.0.0.1 localhost\n127.0.1.1 gameday-boot\n{HOST_IP} {DB_HOST} {REPLICA_HOST} \
             {cache_host} {BROKER_HOST}\n"
        ),
    )
    .unwrap();
    // The instance trusts Debian's CAs and the test's.
    let bundle = dir.path().join("ca-certificates.crt");
    let mut cas = std::fs::read(rootfs.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    cas.extend(std::fs::read(&ca).unwrap());
    std::fs::write(&bundle, cas).unwrap();
    let boot_log = dir.path().join("boot.log");
    std::fs::write(&boot_log, "").unwrap();
    let console = std::fs::File::create(dir.path().join("console.log")).unwrap();

    let bind = |from: &Path, to: &str| format!("{}:{to}", from.display());
    let started = Instant::now();
    let _instance = Running {
        child: Command::new("systemd-nspawn")
            .args([
                "--quiet",
                "--boot",
                "--volatile=overlay",
                "--register=no",
                "--keep-unit",
            ])
            .args(["--console=read-only", "--machine=gameday-boot"])
            .arg(format!("--directory={}", rootfs.display()))
            .arg(format!("--network-namespace-path=/run/netns/{NETNS}"))
            .arg(format!(
                "--bind-ro={}",
                bind(&user_data, "/etc/gameday-boot/user-data")
            ))
            .arg(format!("--bind-ro={}", bind(&hosts, "/etc/hosts")))
            .arg(format!(
                "--bind-ro={}",
                bind(&bundle, "/etc/ssl/certs/ca-certificates.crt")
            ))
            .arg(format!(
                "--bind={}",
                bind(&boot_log, "/var/log/gameday-shop-boot.log")
            ))
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .spawn()
            .expect("systemd-nspawn runs"),
        what: "the instance (systemd-nspawn)",
    };

    // The user data signals once every service is ready (or fails).
    let signal = loop {
        let signals: Vec<_> = moto.recorded_action("SignalResource");
        if let Some(s) = signals.last() {
            break s.form();
        }
        assert!(
            started.elapsed() < BOOT_DEADLINE,
            "no boot signal after {BOOT_DEADLINE:?}; boot log:\n{}\nconsole:\n{}",
            std::fs::read_to_string(&boot_log).unwrap_or_default(),
            std::fs::read_to_string(dir.path().join("console.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let log = std::fs::read_to_string(&boot_log).unwrap_or_default();
    eprintln!(
        "boot signal after {:.0} s: {signal:?}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(signal["Status"], "SUCCESS", "boot log:\n{log}");
    assert_eq!(signal["StackName"], STACK);
    assert_eq!(signal["LogicalResourceId"], "ShopGroup");
    assert_eq!(
        signal["UniqueId"], "i-fake",
        "the instance id from the metadata"
    );

    // What the signal claims, checked: every service answers from inside
    // the instance, and the storefront (the load balancer's target) from
    // outside it with products read from MariaDB.
    let mut dependencies = Vec::new();
    for port in 8080..=8085 {
        let health = health_in_instance(port)
            .unwrap_or_else(|| panic!("port {port} is not ready; boot log:\n{log}"));
        assert_eq!(health["status"], "ready", "{health}");
        // Every dependency reached, the optional ones too: MariaDB, Redis,
        // and RabbitMQ through stunnel and the TLS front.
        for d in health["dependencies"].as_array().unwrap() {
            assert_eq!(d["ok"], true, "port {port}: {health}");
            dependencies.push(d["name"].as_str().unwrap_or_default().to_string());
        }
    }
    dependencies.sort();
    dependencies.dedup();
    eprintln!("dependencies the services reached: {dependencies:?}");
    assert!(dependencies.len() >= 3, "{dependencies:?}");
    assert!(
        dependencies.iter().any(|d| d == "mariadb-replica"),
        "the catalogue reached the read replica: {dependencies:?}"
    );
    let products: serde_json::Value = reqwest::get(format!(
        "http://{}/api/catalogue/products",
        SocketAddr::new(IpAddr::V4(INSTANCE_IP), 8080)
    ))
    .await
    .expect("the storefront answers from outside the instance")
    .json()
    .await
    .expect("products as JSON");
    assert!(
        products.to_string().contains("sku"),
        "the catalogue's products: {products}"
    );

    // The release came from the stack's bucket, the settings from the
    // secrets, the endpoints from ElastiCache and Amazon MQ.
    let recorded = moto.recorded();
    assert!(
        recorded
            .iter()
            .any(|r| r.method == "GET" && r.url.contains(&format!("/{bucket}/{}", release.key()))),
        "the release was downloaded from s3://{bucket}"
    );
    let targets: Vec<String> = recorded
        .iter()
        .filter_map(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|b| b["SecretId"].as_str().map(str::to_string))
        })
        .collect();
    assert_eq!(targets.len(), 3, "three secrets read: {targets:?}");
    assert!(
        !moto.recorded_action("DescribeReplicationGroups").is_empty(),
        "the cache's endpoint described"
    );
    assert!(
        recorded
            .iter()
            .any(|r| r.method == "GET" && r.url.contains("/v1/brokers/")),
        "the broker described"
    );
}
