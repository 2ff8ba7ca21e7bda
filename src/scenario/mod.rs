//! The scenario file (DESIGN.md section 8): parsed in two steps. serde fills
//! raw types that refuse unknown keys; validation turns them into the typed
//! [`Scenario`] and rejects nonsense. Every error names the file, line and
//! column, the key and what was expected; all errors are reported at once.
//!
//! YAML is deserialized with serde_yaml_ng, the maintained fork of the
//! deprecated serde_yaml (errors carry line and column); before that,
//! saphyr-parser's event stream indexes where each key is and refuses YAML
//! bombs (deep nesting, alias expansion). serde-saphyr was the alternative:
//! newer, with budgets, but serde_yaml_ng shares the serde_yaml API that k8s
//! tooling (and our manifest test) already uses.

pub mod locate;
mod raw;
mod stop_rule;
pub mod target;

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

pub use target::{Autoscale, AwsDatabase, AwsTarget, KubernetesTarget, PlatformSpec, Topology};

use locate::{KeyIndex, Position};

/// Files larger than this are refused before parsing.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    pub target: PlatformSpec,
    pub load: Load,
    pub faults: Vec<Fault>,
    pub stop_when: Vec<StopRule>,
    pub slo: Slo,
    pub report_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Load {
    pub stages: Vec<Stage>,
    pub think_time: (Duration, Duration),
    pub journeys: Vec<(Journey, u32)>,
    /// Where the shoppers run: None is in this process.
    #[serde(default)]
    pub generators: Option<Generators>,
}

/// `load.generators`: the shoppers spread over `shards` load generators.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Generators {
    pub shards: u32,
    pub platform: GeneratorPlatform,
}

/// Where the shards run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GeneratorPlatform {
    /// Processes on this machine (`gameday shard`).
    Local,
    /// Pods of one Indexed Job on a Kubernetes cluster.
    Kubernetes(KubernetesGenerators),
}

/// `load.generators` with `platform: kubernetes`: where the Job runs and
/// what its pods run. Defaults come from a Kubernetes target.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KubernetesGenerators {
    /// The kubeconfig context (None: the current one).
    pub context: Option<String>,
    pub namespace: String,
    /// An image with `gameday` on its PATH.
    pub image: String,
    /// Where the shards' shoppers enter, as seen from inside the cluster.
    pub entry_url: String,
    /// Each shard's CPU request and memory request and limit (Kubernetes
    /// quantities; no CPU limit, which would throttle it in bursts).
    pub cpu: String,
    pub memory: String,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stage {
    pub users: u32,
    pub over: Duration,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Journey {
    Browse,
    Buy,
    Abandon,
}

impl Journey {
    pub const ALL: [Journey; 3] = [Journey::Browse, Journey::Buy, Journey::Abandon];
    pub fn name(self) -> &'static str {
        match self {
            Journey::Browse => "browse",
            Journey::Buy => "buy",
            Journey::Abandon => "abandon",
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fault {
    pub name: String,
    pub kind: FaultKind,
    pub schedule: Schedule,
    /// Faults that last are undone after this.
    pub duration: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    KillPod {
        service: String,
        radius: BlastRadius,
        /// Let the replica stop on its own terms (SIGTERM, the pod's grace
        /// period) instead of killing it outright.
        #[serde(default)]
        graceful: bool,
    },
    TerminateInstance {
        radius: BlastRadius,
        /// Only instances in this availability zone.
        #[serde(default)]
        zone: Option<String>,
        /// Shut the machine's OS down first (a planned stop) instead of
        /// losing it outright.
        #[serde(default)]
        graceful: bool,
    },
    /// Planned maintenance of a node: cordon it, evict its pods honouring
    /// PodDisruptionBudgets; the undo uncordons it.
    DrainNode {
        radius: BlastRadius,
        #[serde(default)]
        zone: Option<String>,
    },
    DbFailover {
        rebuild_standby: bool,
    },
    RestartCache {
        /// A reboot that loses the cache's contents (ElastiCache's
        /// RebootCacheCluster) instead of a failover or a restart that
        /// keeps them.
        #[serde(default)]
        reboot: bool,
    },
    RestartBroker,
    /// A link between the shop's parts degraded or cut (Toxiproxy).
    Network {
        effect: NetworkEffect,
        /// `database`, `cache`, `broker` or a service.
        to: String,
        /// The service whose link to `to` is hit; None: every client of `to`.
        #[serde(default)]
        from: Option<String>,
    },
}

/// What a network fault does to a link.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkEffect {
    /// Every packet delayed by `latency`, give or take `jitter`.
    Latency {
        #[serde(with = "humantime_serde")]
        latency: Duration,
        #[serde(with = "humantime_serde", default)]
        jitter: Duration,
    },
    /// A share of the traffic lost.
    Loss { percent: f64 },
    /// The link cut: connections hang (a blackhole), or are refused.
    Partition { mode: PartitionMode },
    /// The link's throughput capped, in bytes per second.
    Bandwidth { bytes_per_s: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionMode {
    /// Connections open and then hang: nothing gets through, nothing is
    /// refused (the nastiest case).
    Hang,
    /// Connections are reset at once.
    Reset,
}

impl FaultKind {
    pub fn key(&self) -> &'static str {
        match self {
            FaultKind::KillPod { .. } => "kill-pod",
            FaultKind::TerminateInstance { .. } => "terminate-instance",
            FaultKind::DrainNode { .. } => "drain-node",
            FaultKind::DbFailover { .. } => "db-failover",
            FaultKind::RestartCache { .. } => "restart-cache",
            FaultKind::RestartBroker => "restart-broker",
            FaultKind::Network { effect, .. } => match effect {
                NetworkEffect::Latency { .. } => "network-latency",
                NetworkEffect::Loss { .. } => "network-loss",
                NetworkEffect::Partition { .. } => "network-partition",
                NetworkEffect::Bandwidth { .. } => "bandwidth",
            },
        }
    }

    /// How many targets it hits, for the kinds that pick some.
    pub fn radius(&self) -> Option<&BlastRadius> {
        match self {
            FaultKind::KillPod { radius, .. }
            | FaultKind::TerminateInstance { radius, .. }
            | FaultKind::DrainNode { radius, .. } => Some(radius),
            _ => None,
        }
    }

    /// Every kind's key, as a scenario spells it.
    pub const KEYS: [&'static str; 10] = [
        "kill-pod",
        "terminate-instance",
        "drain-node",
        "db-failover",
        "restart-cache",
        "restart-broker",
        "network-latency",
        "network-loss",
        "network-partition",
        "bandwidth",
    ];
}

/// How many targets a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlastRadius {
    Count(u32),
    /// A share of the candidates (rounded up), never more than `max`.
    Percent {
        percent: f64,
        max: Option<u32>,
    },
}

impl BlastRadius {
    /// How many of `candidates` are hit.
    pub fn of(&self, candidates: usize) -> usize {
        match *self {
            BlastRadius::Count(n) => (n as usize).min(candidates),
            BlastRadius::Percent { percent, max } => {
                let n = (candidates as f64 * percent / 100.0).ceil() as usize;
                n.min(max.map_or(usize::MAX, |m| m as usize))
                    .min(candidates)
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    At(Duration),
    Every {
        every: Duration,
        from: Duration,
        until: Option<Duration>,
    },
}

impl Schedule {
    /// The injection times within a run of `length`.
    pub fn times(&self, length: Duration) -> Vec<Duration> {
        match *self {
            Schedule::At(t) => vec![t],
            Schedule::Every { every, from, until } => {
                let end = until.unwrap_or(length).min(length);
                let mut out = Vec::new();
                let mut t = from;
                while t <= end && out.len() < 10_000 {
                    out.push(t);
                    t += every;
                }
                out
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    ErrorRate,
    Availability,
    Latency(Percentile),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Percentile {
    P50,
    P90,
    P95,
    P99,
    P999,
    Max,
}

impl Percentile {
    pub const ALL: [Percentile; 6] = [
        Percentile::P50,
        Percentile::P90,
        Percentile::P95,
        Percentile::P99,
        Percentile::P999,
        Percentile::Max,
    ];
    pub fn key(self) -> &'static str {
        match self {
            Percentile::P50 => "p50",
            Percentile::P90 => "p90",
            Percentile::P95 => "p95",
            Percentile::P99 => "p99",
            Percentile::P999 => "p99.9",
            Percentile::Max => "max",
        }
    }
    pub fn quantile(self) -> f64 {
        match self {
            Percentile::P50 => 0.50,
            Percentile::P90 => 0.90,
            Percentile::P95 => 0.95,
            Percentile::P99 => 0.99,
            Percentile::P999 => 0.999,
            Percentile::Max => 1.0,
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.key() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    pub fn holds(self, observed: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => observed > threshold,
            Op::Ge => observed >= threshold,
            Op::Lt => observed < threshold,
            Op::Le => observed <= threshold,
        }
    }
}

/// `<metric> <op> <value> for <duration>`.
#[derive(Debug, Clone, PartialEq)]
pub struct StopRule {
    pub text: String,
    pub metric: Metric,
    pub op: Op,
    /// A fraction for rates and availability, milliseconds for latencies.
    pub value: f64,
    pub window: Duration,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Slo {
    /// Fractions (0.999 for 99.9%).
    pub availability: Option<f64>,
    pub uptime: Option<f64>,
    pub error_rate: Option<f64>,
    pub latency: BTreeMap<Percentile, Duration>,
    /// Per step name, such as `checkout`.
    pub step_latency: BTreeMap<String, BTreeMap<Percentile, Duration>>,
    pub recovery: Option<Duration>,
    pub scale_out: Option<Duration>,
    pub failover_downtime: Option<Duration>,
    pub lost_orders: Option<u64>,
}

/// The measured window: a first stage that ramps up from zero and a last
/// stage that ramps down to zero are excluded.
pub fn measured_window(stages: &[Stage]) -> std::ops::Range<u64> {
    let mut start = 0;
    let mut end: u64 = stages.iter().map(|s| s.over.as_secs()).sum();
    if stages.len() > 1 {
        if stages[0].users > 0 {
            start = stages[0].over.as_secs();
        }
        if let Some(last) = stages.last()
            && last.users == 0
        {
            end = end.saturating_sub(last.over.as_secs());
        }
    }
    start..end.max(start + 1)
}

impl Load {
    /// Seconds after the load started that the figures are computed over.
    pub fn measured_window(&self) -> std::ops::Range<u64> {
        measured_window(&self.stages)
    }

    pub fn length(&self) -> Duration {
        self.stages.iter().map(|s| s.over).sum()
    }
    pub fn peak_users(&self) -> u32 {
        self.stages.iter().map(|s| s.users).max().unwrap_or(0)
    }
}

/// One problem in a scenario file, located.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioError {
    pub file: PathBuf,
    pub position: Option<Position>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(p) = self.position {
            write!(f, ":{}:{}", p.line, p.column)?;
        }
        if let Some(k) = &self.key {
            write!(f, ": {k}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a file.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioErrors(pub Vec<ScenarioError>);

impl fmt::Display for ScenarioErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioErrors {}

impl ScenarioErrors {
    fn one(file: &Path, position: Option<Position>, message: String) -> Self {
        ScenarioErrors(vec![ScenarioError {
            file: file.to_path_buf(),
            position,
            key: None,
            message,
        }])
    }
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, ScenarioErrors> {
        Self::load_with(path, |_| Vec::new())
    }

    /// Loads a scenario, then runs `check` on it (the platform's own
    /// judgement of its faults): its problems, (key path, message), are
    /// located in the file like any other.
    pub fn load_with(
        path: &Path,
        check: impl FnOnce(&Scenario) -> Vec<(String, String)>,
    ) -> Result<Scenario, ScenarioErrors> {
        let text = read_limited(path)?;
        Self::parse_with(path, &text, check)
    }

    /// Parses and validates scenario text; `file` is only for messages.
    pub fn parse(file: &Path, text: &str) -> Result<Scenario, ScenarioErrors> {
        Self::parse_with(file, text, |_| Vec::new())
    }

    pub fn parse_with(
        file: &Path,
        text: &str,
        check: impl FnOnce(&Scenario) -> Vec<(String, String)>,
    ) -> Result<Scenario, ScenarioErrors> {
        let index = KeyIndex::build(text)
            .map_err(|(position, message)| ScenarioErrors::one(file, position, message))?;
        let raw: raw::RawScenario =
            serde_yaml_ng::from_str(text).map_err(|e| yaml_error(file, e))?;
        let located = |problems: Vec<(String, String)>| {
            ScenarioErrors(
                problems
                    .into_iter()
                    .map(|(key, message)| ScenarioError {
                        file: file.to_path_buf(),
                        position: index.find(&key),
                        key: Some(key),
                        message,
                    })
                    .collect(),
            )
        };
        let scenario = raw::validate(raw).map_err(located)?;
        let problems = check(&scenario);
        if problems.is_empty() {
            Ok(scenario)
        } else {
            Err(located(problems))
        }
    }
}

fn read_limited(path: &Path) -> Result<String, ScenarioErrors> {
    let one = |message: String| ScenarioErrors::one(path, None, message);
    let size = std::fs::metadata(path)
        .map_err(|e| one(format!("cannot read: {e}")))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(one(format!(
            "{size} bytes: a scenario file may be at most {MAX_FILE_BYTES} bytes"
        )));
    }
    std::fs::read_to_string(path).map_err(|e| one(format!("cannot read: {e}")))
}

fn yaml_error(file: &Path, e: serde_yaml_ng::Error) -> ScenarioErrors {
    let position = e.location().map(|l| Position {
        line: l.line(),
        column: l.column(),
    });
    let message = e.to_string();
    // serde_yaml_ng appends " at line L column C"; the position says it.
    let message = match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message,
    };
    ScenarioErrors::one(file, position, message)
}

impl PlatformSpec {
    /// Reads only the `target` section of a scenario file (what `gameday up`
    /// and `down` need); the rest of the file is not checked here.
    pub fn from_scenario_file(path: &Path) -> Result<PlatformSpec, ScenarioErrors> {
        let text = read_limited(path)?;
        // A whole scenario also says which links its network faults need
        // routed through Toxiproxy (so `gameday inject` can degrade them).
        if let Ok(scenario) = Scenario::parse(path, &text) {
            return Ok(scenario.target);
        }
        let index = KeyIndex::build(&text)
            .map_err(|(position, message)| ScenarioErrors::one(path, position, message))?;
        #[derive(serde::Deserialize)]
        struct TargetOnly {
            target: Option<target::RawTarget>,
        }
        let raw: TargetOnly = serde_yaml_ng::from_str(&text).map_err(|e| yaml_error(path, e))?;
        let Some(raw) = raw.target else {
            return Ok(PlatformSpec::default());
        };
        PlatformSpec::validate(raw).map_err(|(key, message)| {
            ScenarioErrors(vec![ScenarioError {
                file: path.to_path_buf(),
                position: index.find(&key),
                key: Some(key),
                message,
            }])
        })
    }
}

impl Fault {
    /// A fault from a YAML value shaped like an entry of a scenario's
    /// `faults`, validated as a scenario's would be (`gameday inject`).
    pub fn from_value(value: serde_yaml_ng::Value) -> Result<Fault, Vec<(String, String)>> {
        raw::fault_from_value(value)
    }
}

/// `99.9%` -> 99.9 (percent, 0..=100).
pub fn parse_percent(text: &str) -> Option<f64> {
    let v: f64 = text.trim().strip_suffix('%')?.trim().parse().ok()?;
    (v.is_finite() && (0.0..=100.0).contains(&v)).then_some(v)
}

/// A humantime duration such as `500ms` or `2m`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text.trim()).ok()
}

#[cfg(test)]
mod tests;
