//! The `target` section: which platform runs the shop, and where. Raw serde
//! types first (unknown keys refused), then validation into a
//! [`PlatformSpec`]: a key that belongs to another platform is refused with
//! the platform it belongs to.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use serde::Deserialize;

use crate::shop::SERVICES;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawTarget {
    platform: Option<String>,
    // local
    instances: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    boot_delay: Option<Duration>,
    // local and kubernetes
    replicas: Option<BTreeMap<String, u32>>,
    autoscale: Option<BTreeMap<String, RawAutoscale>>,
    // kubernetes and aws
    entry_url: Option<String>,
    // kubernetes
    context: Option<String>,
    namespace: Option<String>,
    deploy: Option<bool>,
    image: Option<String>,
    images: Option<BTreeMap<String, String>>,
    storage_class: Option<String>,
    node_provider: Option<RawNodeProvider>,
    // aws
    region: Option<String>,
    endpoint_url: Option<String>,
    stack: Option<String>,
    auto_scaling_group: Option<String>,
    database: Option<RawDatabase>,
    cache: Option<String>,
    broker: Option<String>,
    parameters: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAutoscale {
    min: u32,
    max: u32,
    cpu: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNodeProvider {
    command: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDatabase {
    instance: Option<String>,
    cluster: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Autoscale {
    pub min: u32,
    pub max: u32,
    /// Target CPU utilisation of a replica, in percent of its CPU request.
    pub cpu_percent: f64,
}

/// Where a scenario runs: the scenario's `target`.
#[derive(Debug, Clone, PartialEq)]
pub enum PlatformSpec {
    Local(Topology),
    Kubernetes(KubernetesTarget),
    Aws(AwsTarget),
}

impl Default for PlatformSpec {
    fn default() -> Self {
        PlatformSpec::Local(Topology::default())
    }
}

impl PlatformSpec {
    /// `local`, `kubernetes` or `aws`.
    pub fn name(&self) -> &'static str {
        match self {
            PlatformSpec::Local(_) => "local",
            PlatformSpec::Kubernetes(_) => "kubernetes",
            PlatformSpec::Aws(_) => "aws",
        }
    }

    /// The services the platform autoscales, and how (none on aws, whose
    /// Auto Scaling group has its own policy).
    pub fn autoscale(&self) -> &BTreeMap<String, Autoscale> {
        static NONE: BTreeMap<String, Autoscale> = BTreeMap::new();
        match self {
            PlatformSpec::Local(t) => &t.autoscale,
            PlatformSpec::Kubernetes(k) => &k.autoscale,
            PlatformSpec::Aws(_) => &NONE,
        }
    }

    /// Replicas each service starts with, where the platform runs replicas
    /// (None on a platform where instances are the unit).
    pub fn initial_replicas(&self, service: &str) -> Option<u32> {
        match self {
            PlatformSpec::Local(t) => Some(t.initial_replicas(service)),
            PlatformSpec::Kubernetes(k) => k.replicas.get(service).copied(),
            PlatformSpec::Aws(_) => None,
        }
    }
}

/// What the local platform deploys.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub instances: u32,
    pub replicas: BTreeMap<String, u32>,
    pub autoscale: BTreeMap<String, Autoscale>,
    /// How long a replacement instance takes to boot.
    pub boot_delay: Duration,
    /// The links (client, server) the scenario's network faults degrade:
    /// only these are routed through Toxiproxy; without network faults
    /// nothing is.
    pub links: BTreeSet<(String, String)>,
}

impl Default for Topology {
    fn default() -> Self {
        Self {
            instances: 3,
            replicas: SERVICES.iter().map(|s| (s.to_string(), 2)).collect(),
            autoscale: BTreeMap::new(),
            boot_delay: Duration::from_secs(20),
            links: BTreeSet::new(),
        }
    }
}

impl Topology {
    /// Initial replicas of a service: its count, raised to its autoscaling minimum.
    pub fn initial_replicas(&self, service: &str) -> u32 {
        let n = self.replicas.get(service).copied().unwrap_or(0);
        self.autoscale.get(service).map_or(n, |a| n.max(a.min))
    }
}

/// A Kubernetes cluster: the shop in one namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesTarget {
    /// The kubeconfig context (None: the current one).
    pub context: Option<String>,
    pub namespace: String,
    /// Apply reference-app/k8s (and delete the namespace afterwards); false
    /// attaches to what runs.
    pub deploy: bool,
    /// The shop's image, set on every Deployment when deploying.
    pub image: Option<String>,
    /// Where shoppers enter (an Ingress or LoadBalancer in front of web).
    pub entry_url: Option<String>,
    /// Replicas per service when deploying (None: the manifests' own).
    pub replicas: BTreeMap<String, u32>,
    /// HPA bounds and target per service when deploying.
    pub autoscale: BTreeMap<String, Autoscale>,
    /// Images of the shop's infrastructure and of gameday's own pods, by
    /// role (`mariadb`, `redis`, `rabbitmq`, `toolbox`), when deploying.
    pub images: BTreeMap<String, String>,
    /// The StorageClass of the StatefulSets' volumes (None: the cluster's
    /// default).
    pub storage_class: Option<String>,
    /// How terminate-instance loses a node whose providerID names no cloud
    /// gameday drives: a command with `{node}`, `{zone}`, `{provider-id}`.
    pub node_provider: Option<String>,
}

/// The roles `target.images` names.
pub const IMAGE_ROLES: [&str; 4] = ["mariadb", "redis", "rabbitmq", "toolbox"];

/// The image gameday's own crash agent runs when `target.images` names none.
pub const DEFAULT_TOOLBOX_IMAGE: &str = "busybox:1.36";

impl KubernetesTarget {
    /// The image of `role`, when the target names one.
    pub fn image_of(&self, role: &str) -> Option<&str> {
        self.images.get(role).map(String::as_str)
    }
}

/// Which managed database the aws platform fails over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsDatabase {
    /// An RDS DB instance (Multi-AZ for a failover).
    Instance(String),
    /// An Aurora DB cluster.
    Cluster(String),
}

/// An AWS account: the shop as a CloudFormation stack, or named resources.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsTarget {
    pub region: Option<String>,
    /// A stand-in such as moto's server (every client goes there).
    pub endpoint_url: Option<String>,
    /// The stack: `up` creates it from reference-app/aws; `run` deploys it
    /// when missing and deletes only what it deployed.
    pub stack: Option<String>,
    pub auto_scaling_group: Option<String>,
    pub database: Option<AwsDatabase>,
    /// An ElastiCache cluster id.
    pub cache: Option<String>,
    /// An Amazon MQ broker id.
    pub broker: Option<String>,
    pub entry_url: Option<String>,
    /// Stack parameters (secrets come from the environment, never here).
    pub parameters: BTreeMap<String, String>,
}

/// Keys of the `target` section and the platforms they belong to.
const KEYS: [(&str, &[&str]); 21] = [
    ("instances", &["local"]),
    ("boot-delay", &["local"]),
    ("replicas", &["local", "kubernetes"]),
    ("autoscale", &["local", "kubernetes"]),
    ("entry-url", &["kubernetes", "aws"]),
    ("context", &["kubernetes"]),
    ("namespace", &["kubernetes"]),
    ("deploy", &["kubernetes"]),
    ("image", &["kubernetes"]),
    ("images", &["kubernetes"]),
    ("storage-class", &["kubernetes"]),
    ("node-provider", &["kubernetes"]),
    ("region", &["aws"]),
    ("endpoint-url", &["aws"]),
    ("stack", &["aws"]),
    ("auto-scaling-group", &["aws"]),
    ("database", &["aws"]),
    ("cache", &["aws"]),
    ("broker", &["aws"]),
    ("parameters", &["aws"]),
    ("platform", &["local", "kubernetes", "aws"]),
];

type Problem = (String, String);

impl RawTarget {
    fn present(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut has = |key: &'static str, set: bool| {
            if set {
                keys.push(key);
            }
        };
        has("instances", self.instances.is_some());
        has("boot-delay", self.boot_delay.is_some());
        has("replicas", self.replicas.is_some());
        has("autoscale", self.autoscale.is_some());
        has("entry-url", self.entry_url.is_some());
        has("context", self.context.is_some());
        has("namespace", self.namespace.is_some());
        has("deploy", self.deploy.is_some());
        has("image", self.image.is_some());
        has("images", self.images.is_some());
        has("storage-class", self.storage_class.is_some());
        has("node-provider", self.node_provider.is_some());
        has("region", self.region.is_some());
        has("endpoint-url", self.endpoint_url.is_some());
        has("stack", self.stack.is_some());
        has("auto-scaling-group", self.auto_scaling_group.is_some());
        has("database", self.database.is_some());
        has("cache", self.cache.is_some());
        has("broker", self.broker.is_some());
        has("parameters", self.parameters.is_some());
        keys
    }
}

fn url(key: &str, text: &str) -> Result<String, Problem> {
    let ok = (text.starts_with("http://") || text.starts_with("https://"))
        && text.len() > "https://".len()
        && !text.contains(char::is_whitespace);
    if ok {
        Ok(text.trim_end_matches('/').to_string())
    } else {
        Err((
            format!("target.{key}"),
            format!("expected an http:// or https:// URL, got `{text}`"),
        ))
    }
}

fn replicas(raw: Option<BTreeMap<String, u32>>) -> Result<BTreeMap<String, u32>, Problem> {
    let mut out = BTreeMap::new();
    for (service, n) in raw.unwrap_or_default() {
        if !SERVICES.contains(&service.as_str()) {
            return Err((format!("target.replicas.{service}"), unknown_service()));
        }
        if n > 50 {
            return Err((
                format!("target.replicas.{service}"),
                format!("expected 0 to 50, got {n}"),
            ));
        }
        out.insert(service, n);
    }
    Ok(out)
}

fn unknown_service() -> String {
    format!("unknown service (expected one of {})", SERVICES.join(", "))
}

fn autoscale(
    raw: Option<BTreeMap<String, RawAutoscale>>,
) -> Result<BTreeMap<String, Autoscale>, Problem> {
    let mut out = BTreeMap::new();
    for (service, a) in raw.unwrap_or_default() {
        if !SERVICES.contains(&service.as_str()) {
            return Err((format!("target.autoscale.{service}"), unknown_service()));
        }
        let Some(cpu) = super::parse_percent(&a.cpu).filter(|v| *v > 0.0) else {
            return Err((
                format!("target.autoscale.{service}.cpu"),
                format!(
                    "expected a percentage from 1% to 100% such as 70%, got `{}`",
                    a.cpu
                ),
            ));
        };
        if a.min < 1 || a.min > a.max || a.max > 50 {
            return Err((
                format!("target.autoscale.{service}"),
                format!(
                    "expected 1 <= min <= max <= 50, got min {} max {}",
                    a.min, a.max
                ),
            ));
        }
        out.insert(
            service,
            Autoscale {
                min: a.min,
                max: a.max,
                cpu_percent: cpu,
            },
        );
    }
    Ok(out)
}

/// A name AWS or Kubernetes would accept: letters, digits, '-', '_', '.', '/', ':'.
fn resource_name(key: &str, text: &str) -> Result<String, Problem> {
    let ok = !text.is_empty()
        && text.len() <= 255
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:".contains(c));
    if ok {
        Ok(text.to_string())
    } else {
        Err((
            format!("target.{key}"),
            format!("expected a resource name (letters, digits, '-', '_', '.'), got `{text}`"),
        ))
    }
}

impl PlatformSpec {
    /// Validates a raw target; an error is (key path, what was expected).
    pub(crate) fn validate(raw: RawTarget) -> Result<Self, Problem> {
        let platform = raw.platform.clone().unwrap_or_else(|| "local".into());
        if !["local", "kubernetes", "aws"].contains(&platform.as_str()) {
            return Err((
                "target.platform".into(),
                format!("unknown platform `{platform}` (expected local, kubernetes or aws)"),
            ));
        }
        for key in raw.present() {
            let owners = KEYS
                .iter()
                .find(|(k, _)| *k == key)
                .map_or(&[][..], |(_, o)| *o);
            if !owners.contains(&platform.as_str()) {
                return Err((
                    format!("target.{key}"),
                    format!(
                        "`{key}` is a key of the {} platform, not of {platform}",
                        owners.join(" and ")
                    ),
                ));
            }
        }
        match platform.as_str() {
            "kubernetes" => Self::kubernetes(raw),
            "aws" => Self::aws(raw),
            _ => Self::local(raw),
        }
    }

    fn local(raw: RawTarget) -> Result<Self, Problem> {
        let mut topology = Topology::default();
        if let Some(n) = raw.instances {
            if !(1..=50).contains(&n) {
                return Err((
                    "target.instances".into(),
                    format!("expected 1 to 50, got {n}"),
                ));
            }
            topology.instances = n;
        }
        if let Some(d) = raw.boot_delay {
            topology.boot_delay = d;
        }
        topology.replicas.extend(replicas(raw.replicas)?);
        topology.autoscale = autoscale(raw.autoscale)?;
        Ok(PlatformSpec::Local(topology))
    }

    fn kubernetes(raw: RawTarget) -> Result<Self, Problem> {
        let namespace = match raw.namespace {
            Some(n) => {
                let ok = !n.is_empty()
                    && n.len() <= 63
                    && n.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !n.starts_with('-')
                    && !n.ends_with('-');
                if !ok {
                    return Err((
                        "target.namespace".into(),
                        format!(
                            "expected a namespace name (lower-case letters, digits and '-', at most 63), got `{n}`"
                        ),
                    ));
                }
                n
            }
            None => "gameday-shop".into(),
        };
        let deploy = raw.deploy.unwrap_or(true);
        if deploy && raw.image.is_none() {
            return Err((
                "target.image".into(),
                "expected the shop's image (such as registry.example.com/gameday-shop:0.1.0) when deploy is true; build it from reference-app/Containerfile".into(),
            ));
        }
        let images = raw.images.unwrap_or_default();
        if let Some(role) = images.keys().find(|r| !IMAGE_ROLES.contains(&r.as_str())) {
            return Err((
                format!("target.images.{role}"),
                format!("unknown role (expected one of {})", IMAGE_ROLES.join(", ")),
            ));
        }
        let node_provider = match raw.node_provider {
            Some(p) if !p.command.contains("{node}") => {
                return Err((
                    "target.node-provider.command".into(),
                    format!(
                        "expected a command naming the node as {{node}} (such as \
                         `scripts/cluster.sh terminate {{node}}`), got `{}`",
                        p.command
                    ),
                ));
            }
            p => p.map(|p| p.command),
        };
        Ok(PlatformSpec::Kubernetes(KubernetesTarget {
            context: raw.context,
            namespace,
            deploy,
            image: raw.image,
            entry_url: raw.entry_url.map(|u| url("entry-url", &u)).transpose()?,
            replicas: replicas(raw.replicas)?,
            autoscale: autoscale(raw.autoscale)?,
            images,
            storage_class: raw
                .storage_class
                .map(|s| resource_name("storage-class", &s))
                .transpose()?,
            node_provider,
        }))
    }

    fn aws(raw: RawTarget) -> Result<Self, Problem> {
        let database = match raw.database {
            None => None,
            Some(RawDatabase {
                instance: Some(i),
                cluster: None,
            }) => Some(AwsDatabase::Instance(resource_name(
                "database.instance",
                &i,
            )?)),
            Some(RawDatabase {
                instance: None,
                cluster: Some(c),
            }) => Some(AwsDatabase::Cluster(resource_name("database.cluster", &c)?)),
            Some(_) => {
                return Err((
                    "target.database".into(),
                    "expected exactly one of { instance: NAME } or { cluster: NAME }".into(),
                ));
            }
        };
        let name = |key: &str, v: Option<String>| v.map(|v| resource_name(key, &v)).transpose();
        let target = AwsTarget {
            region: raw.region,
            endpoint_url: raw
                .endpoint_url
                .map(|u| url("endpoint-url", &u))
                .transpose()?,
            stack: name("stack", raw.stack)?,
            auto_scaling_group: name("auto-scaling-group", raw.auto_scaling_group)?,
            database,
            cache: name("cache", raw.cache)?,
            broker: name("broker", raw.broker)?,
            entry_url: raw.entry_url.map(|u| url("entry-url", &u)).transpose()?,
            parameters: raw.parameters.unwrap_or_default(),
        };
        if target.stack.is_none() && target.auto_scaling_group.is_none() {
            return Err((
                "target".into(),
                "expected `stack` (gameday deploys reference-app/aws/shop.yaml) or `auto-scaling-group` (attach to what runs)".into(),
            ));
        }
        if target.stack.is_none() && target.entry_url.is_none() {
            return Err((
                "target.entry-url".into(),
                "expected the shop's URL when attaching without a stack".into(),
            ));
        }
        Ok(PlatformSpec::Aws(target))
    }
}
