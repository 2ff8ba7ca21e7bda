//! What serde reads from a scenario file (unknown keys refused), and the
//! validation that turns it into a [`Scenario`] or a list of
//! (key path, what was expected).

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use serde::Deserialize;

use super::{
    BlastRadius, Fault, FaultKind, GeneratorPlatform, Generators, Journey, KubernetesGenerators,
    Load, NetworkEffect, PartitionMode, Percentile, Scenario, Schedule, Slo, Stage, StopRule,
    parse_duration, parse_percent,
    stop_rule::parse_stop_rule,
    target::{PlatformSpec, RawTarget},
};
use crate::shop::{INFRASTRUCTURE, SERVICES, links};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawScenario {
    name: String,
    description: Option<String>,
    target: Option<RawTarget>,
    load: Option<RawLoad>,
    #[serde(default)]
    faults: Vec<RawFault>,
    #[serde(default)]
    stop_when: Vec<String>,
    slo: Option<RawSlo>,
    report: Option<RawReport>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLoad {
    stages: Vec<RawStage>,
    think_time: Option<String>,
    journeys: Option<BTreeMap<String, u32>>,
    generators: Option<RawGenerators>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawGenerators {
    shards: u32,
    platform: Option<String>,
    context: Option<String>,
    namespace: Option<String>,
    image: Option<String>,
    entry_url: Option<String>,
    resources: Option<RawShardResources>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShardResources {
    cpu: Option<String>,
    memory: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    users: u32,
    over: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFault {
    name: Option<String>,
    at: Option<String>,
    every: Option<String>,
    from: Option<String>,
    until: Option<String>,
    duration: Option<String>,
    kill_pod: Option<RawKillPod>,
    terminate_instance: Option<RawTerminate>,
    db_failover: Option<RawDbFailover>,
    drain_node: Option<RawDrain>,
    restart_cache: Option<RawRestartCache>,
    restart_broker: Option<RawNothing>,
    network_latency: Option<RawNetwork>,
    network_loss: Option<RawNetwork>,
    network_partition: Option<RawNetwork>,
    bandwidth: Option<RawNetwork>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDrain {
    count: Option<u32>,
    percent: Option<String>,
    max: Option<u32>,
    zone: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRestartCache {
    #[serde(default)]
    reboot: bool,
}

/// One network fault's fields; which apply depends on its kind.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    to: String,
    from: Option<String>,
    latency: Option<String>,
    jitter: Option<String>,
    percent: Option<String>,
    mode: Option<String>,
    rate: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKillPod {
    service: String,
    count: Option<u32>,
    percent: Option<String>,
    max: Option<u32>,
    #[serde(default)]
    graceful: bool,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTerminate {
    count: Option<u32>,
    percent: Option<String>,
    max: Option<u32>,
    zone: Option<String>,
    #[serde(default)]
    graceful: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawDbFailover {
    /// A new standby is built after the failover unless this is false, so
    /// the stack ends as its topology says (and a second failover works).
    #[serde(default = "yes")]
    rebuild_standby: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNothing {}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSlo {
    availability: Option<String>,
    uptime: Option<String>,
    error_rate: Option<String>,
    latency: Option<BTreeMap<String, String>>,
    step_latency: Option<BTreeMap<String, BTreeMap<String, String>>>,
    recovery: Option<String>,
    scale_out: Option<String>,
    failover_downtime: Option<String>,
    lost_orders: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReport {
    dir: Option<PathBuf>,
}

/// Collects problems while validating.
#[derive(Default)]
struct Problems(Vec<(String, String)>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push((key.into(), message.into()));
    }

    fn duration(&mut self, key: &str, text: &str) -> Option<Duration> {
        let d = parse_duration(text);
        if d.is_none() {
            self.add(
                key,
                format!("expected a duration such as 500ms, 20s or 2m, got `{text}`"),
            );
        }
        d
    }

    fn positive_duration(&mut self, key: &str, text: &str) -> Option<Duration> {
        let d = self.duration(key, text)?;
        if d.is_zero() {
            self.add(key, "expected a duration above zero");
            return None;
        }
        Some(d)
    }

    fn percent(&mut self, key: &str, text: &str) -> Option<f64> {
        let p = parse_percent(text);
        if p.is_none() {
            self.add(
                key,
                format!("expected a percentage from 0% to 100% such as 99.9%, got `{text}`"),
            );
        }
        p
    }
}

const NAME_RULE: &str = "expected 1 to 64 characters: letters, digits, '-' or '_'";

pub(crate) fn validate(raw: RawScenario) -> Result<Scenario, Vec<(String, String)>> {
    let mut p = Problems::default();
    let name_ok = !raw.name.is_empty()
        && raw.name.len() <= 64
        && raw
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        p.add("name", NAME_RULE);
    }
    let mut target = match raw
        .target
        .map(PlatformSpec::validate)
        .unwrap_or_else(|| Ok(PlatformSpec::default()))
    {
        Ok(t) => t,
        Err((key, message)) => {
            p.add(key, message);
            PlatformSpec::default()
        }
    };
    let load = match raw.load {
        Some(l) => validate_load(&mut p, l, &target),
        None => {
            p.add("load", "expected a load section with stages");
            None
        }
    };
    let length = load.as_ref().map(Load::length).unwrap_or_default();
    let faults: Vec<Fault> = raw
        .faults
        .into_iter()
        .enumerate()
        .filter_map(|(i, f)| validate_fault(&mut p, i, f, length))
        .collect();
    let stop_when: Vec<StopRule> = raw
        .stop_when
        .iter()
        .enumerate()
        .filter_map(|(i, text)| match parse_stop_rule(text) {
            Ok(rule) => Some(rule),
            Err(message) => {
                p.add(format!("stop-when[{i}]"), message);
                None
            }
        })
        .collect();
    let slo = validate_slo(&mut p, raw.slo.unwrap_or_default());
    if let PlatformSpec::Local(topology) = &mut target {
        topology.links = network_links(&faults);
    }
    let report_dir = raw
        .report
        .and_then(|r| r.dir)
        .unwrap_or_else(|| PathBuf::from("reports"));
    match load {
        Some(load) if p.0.is_empty() => Ok(Scenario {
            name: raw.name,
            description: raw.description,
            target,
            load,
            faults,
            stop_when,
            slo,
            report_dir,
        }),
        _ => Err(p.0),
    }
}

fn validate_load(p: &mut Problems, raw: RawLoad, target: &PlatformSpec) -> Option<Load> {
    if raw.stages.is_empty() {
        p.add(
            "load.stages",
            "expected at least one stage such as { users: 100, over: 30s }",
        );
    }
    let mut stages = Vec::new();
    for (i, s) in raw.stages.iter().enumerate() {
        let key = format!("load.stages[{i}].over");
        if s.users > 100_000 {
            p.add(
                format!("load.stages[{i}].users"),
                format!("expected at most 100000 users, got {}", s.users),
            );
        }
        if let Some(over) = p.positive_duration(&key, &s.over) {
            stages.push(Stage {
                users: s.users,
                over,
            });
        }
    }
    let think_time = match raw.think_time.as_deref() {
        None => (Duration::from_millis(500), Duration::from_secs(2)),
        Some(text) => {
            let (lo, hi) = text.split_once("..").unwrap_or((text, text));
            match (
                p.duration("load.think-time", lo),
                p.duration("load.think-time", hi),
            ) {
                (Some(lo), Some(hi)) if lo <= hi => (lo, hi),
                (Some(_), Some(_)) => {
                    p.add(
                        "load.think-time",
                        format!("expected MIN..MAX with MIN <= MAX, got `{text}`"),
                    );
                    (Duration::ZERO, Duration::ZERO)
                }
                _ => (Duration::ZERO, Duration::ZERO),
            }
        }
    };
    let weights = raw.journeys.unwrap_or_else(|| {
        [
            ("browse".into(), 60),
            ("buy".into(), 30),
            ("abandon".into(), 10),
        ]
        .into()
    });
    let mut journeys = Vec::new();
    for (name, weight) in &weights {
        match Journey::ALL.into_iter().find(|j| j.name() == name) {
            Some(j) => journeys.push((j, *weight)),
            None => p.add(
                format!("load.journeys.{name}"),
                "unknown journey (expected browse, buy or abandon)",
            ),
        }
    }
    if weights.values().sum::<u32>() == 0 {
        p.add(
            "load.journeys",
            "the weights sum to zero: at least one journey needs a weight above 0",
        );
    }
    let peak = stages.iter().map(|s| s.users).max().unwrap_or(0);
    let generators = raw
        .generators
        .and_then(|g| validate_generators(p, g, peak, target));
    (stages.len() == raw.stages.len()).then_some(Load {
        stages,
        think_time,
        journeys,
        generators,
    })
}

/// `load.generators`: 1 to 64 shards, no more than the peak shoppers.
fn validate_generators(
    p: &mut Problems,
    raw: RawGenerators,
    peak: u32,
    target: &PlatformSpec,
) -> Option<Generators> {
    let RawGenerators {
        shards,
        platform,
        context,
        namespace,
        image,
        entry_url,
        resources,
    } = raw;
    let keys = RawKubernetesGenerators {
        context,
        namespace,
        image,
        entry_url,
        resources,
    };
    let platform = match platform.as_deref().unwrap_or("local") {
        "local" if keys.any() => {
            p.add(
                "load.generators",
                "context, namespace, image, entry-url and resources are for `platform: kubernetes`",
            );
            None
        }
        "local" => Some(GeneratorPlatform::Local),
        "kubernetes" => kubernetes_generators(p, keys, target).map(GeneratorPlatform::Kubernetes),
        other => {
            p.add(
                "load.generators.platform",
                format!("expected local or kubernetes, got `{other}`"),
            );
            None
        }
    };
    if !(1..=64).contains(&shards) {
        p.add(
            "load.generators.shards",
            format!("expected 1 to 64 shards, got {shards}"),
        );
        return None;
    }
    if shards > peak {
        p.add(
            "load.generators.shards",
            format!("expected no more shards than the peak shoppers ({peak}), got {shards}"),
        );
        return None;
    }
    platform.map(|platform| Generators { shards, platform })
}

/// The keys of `platform: kubernetes`, as written.
struct RawKubernetesGenerators {
    context: Option<String>,
    namespace: Option<String>,
    image: Option<String>,
    entry_url: Option<String>,
    resources: Option<RawShardResources>,
}

impl RawKubernetesGenerators {
    fn any(&self) -> bool {
        self.context.is_some()
            || self.namespace.is_some()
            || self.image.is_some()
            || self.entry_url.is_some()
            || self.resources.is_some()
    }
}

/// `platform: kubernetes`: a Kubernetes target gives the context, the
/// namespace, the image and the in-cluster entry (its Service `web`);
/// with any other target they must be written.
fn kubernetes_generators(
    p: &mut Problems,
    raw: RawKubernetesGenerators,
    target: &PlatformSpec,
) -> Option<KubernetesGenerators> {
    let k8s = match target {
        PlatformSpec::Kubernetes(t) => Some(t),
        _ => None,
    };
    let namespace = raw.namespace.or_else(|| k8s.map(|t| t.namespace.clone()));
    let image = raw.image.or_else(|| k8s.and_then(|t| t.image.clone()));
    let entry_url = raw.entry_url.or_else(|| {
        namespace
            .as_ref()
            .filter(|_| k8s.is_some())
            .map(|ns| format!("http://web.{ns}.svc"))
    });
    let mut ok = true;
    for (key, value, why) in [
        ("namespace", &namespace, "the namespace the Job runs in"),
        (
            "image",
            &image,
            "an image with `gameday` on its PATH (target.image when the target is kubernetes)",
        ),
        (
            "entry-url",
            &entry_url,
            "where the shards' shoppers enter, as seen from inside the cluster",
        ),
    ] {
        if value.is_none() {
            p.add(format!("load.generators.{key}"), format!("expected {why}"));
            ok = false;
        }
    }
    if let Some(url) = &entry_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        p.add(
            "load.generators.entry-url",
            format!("expected an http:// or https:// URL, got `{url}`"),
        );
        ok = false;
    }
    let resources = raw.resources.unwrap_or(RawShardResources {
        cpu: None,
        memory: None,
    });
    let cpu = resources.cpu.unwrap_or_else(|| "500m".into());
    let memory = resources.memory.unwrap_or_else(|| "512Mi".into());
    for (key, value) in [("cpu", &cpu), ("memory", &memory)] {
        let quantity = value
            .trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .parse::<f64>()
            .is_ok_and(|v| v > 0.0);
        if !quantity {
            p.add(
                format!("load.generators.resources.{key}"),
                format!("expected a Kubernetes quantity such as 500m or 512Mi, got `{value}`"),
            );
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    Some(KubernetesGenerators {
        context: raw.context.or_else(|| k8s.and_then(|t| t.context.clone())),
        namespace: namespace?,
        image: image?,
        entry_url: entry_url?,
        cpu,
        memory,
    })
}

fn radius(
    p: &mut Problems,
    key: &str,
    count: Option<u32>,
    percent: Option<&str>,
    max: Option<u32>,
) -> Option<BlastRadius> {
    match (count, percent) {
        (Some(_), Some(_)) => {
            p.add(key, "expected either count or percent, not both");
            None
        }
        (Some(0), None) => {
            p.add(format!("{key}.count"), "expected a count of at least 1");
            None
        }
        (Some(n), None) => Some(BlastRadius::Count(n)),
        (None, Some(text)) => {
            let percent = p.percent(&format!("{key}.percent"), text)?;
            if percent == 0.0 {
                p.add(format!("{key}.percent"), "expected a share above 0%");
                return None;
            }
            Some(BlastRadius::Percent { percent, max })
        }
        (None, None) => Some(BlastRadius::Count(1)),
    }
}

fn validate_fault(p: &mut Problems, i: usize, mut f: RawFault, length: Duration) -> Option<Fault> {
    let key = format!("faults[{i}]");
    let mut kinds = fault_kinds(p, &key, &mut f);
    if kinds.len() != 1 {
        p.add(
            key.clone(),
            format!(
                "expected exactly one fault kind ({}), got {}",
                FaultKind::KEYS.join(", "),
                kinds.len()
            ),
        );
    }
    let schedule = fault_schedule(p, &key, &f, length)?;
    let duration = match f.duration.as_deref() {
        Some(t) => Some(p.positive_duration(&format!("{key}.duration"), t)?),
        None => None,
    };
    let kind = (kinds.len() == 1).then(|| kinds.remove(0))?;
    Some(Fault {
        name: f.name.unwrap_or_else(|| kind.key().to_string()),
        kind,
        schedule,
        duration,
    })
}

/// Every fault kind the entry names (exactly one is valid), taken out of it.
fn fault_kinds(p: &mut Problems, key: &str, f: &mut RawFault) -> Vec<FaultKind> {
    let mut kinds = Vec::new();
    if let Some(k) = f.kill_pod.take() {
        let service_ok = SERVICES.contains(&k.service.as_str());
        if !service_ok {
            p.add(
                format!("{key}.kill-pod.service"),
                format!(
                    "unknown service `{}` (expected one of {})",
                    k.service,
                    SERVICES.join(", ")
                ),
            );
        }
        if let Some(r) = radius(
            p,
            &format!("{key}.kill-pod"),
            k.count,
            k.percent.as_deref(),
            k.max,
        ) && service_ok
        {
            kinds.push(FaultKind::KillPod {
                service: k.service,
                radius: r,
                graceful: k.graceful,
            });
        }
    }
    if let Some(t) = f.terminate_instance.take()
        && let Some(r) = radius(
            p,
            &format!("{key}.terminate-instance"),
            t.count,
            t.percent.as_deref(),
            t.max,
        )
    {
        kinds.push(FaultKind::TerminateInstance {
            radius: r,
            zone: t.zone.clone(),
            graceful: t.graceful,
        });
    }
    if let Some(d) = f.drain_node.take()
        && let Some(r) = radius(
            p,
            &format!("{key}.drain-node"),
            d.count,
            d.percent.as_deref(),
            d.max,
        )
    {
        kinds.push(FaultKind::DrainNode {
            radius: r,
            zone: d.zone,
        });
    }
    if let Some(d) = f.db_failover.take() {
        kinds.push(FaultKind::DbFailover {
            rebuild_standby: d.rebuild_standby,
        });
    }
    if let Some(c) = f.restart_cache.take() {
        kinds.push(FaultKind::RestartCache { reboot: c.reboot });
    }
    if f.restart_broker.is_some() {
        kinds.push(FaultKind::RestartBroker);
    }
    for (name, raw) in [
        ("network-latency", f.network_latency.take()),
        ("network-loss", f.network_loss.take()),
        ("network-partition", f.network_partition.take()),
        ("bandwidth", f.bandwidth.take()),
    ] {
        if let Some(n) = raw
            && let Some(kind) = network(p, &format!("{key}.{name}"), name, n)
        {
            kinds.push(kind);
        }
    }
    kinds
}

/// The links (client, server) the network faults among `faults` degrade.
pub(crate) fn network_links(faults: &[Fault]) -> std::collections::BTreeSet<(String, String)> {
    faults
        .iter()
        .filter_map(|f| match &f.kind {
            FaultKind::Network { to, from, .. } => Some(links(to, from.as_deref())),
            _ => None,
        })
        .flatten()
        .map(|(c, s)| (c.to_string(), s.to_string()))
        .collect()
}

/// A network fault: a link of the shop that exists, and its effect.
fn network(p: &mut Problems, key: &str, name: &str, n: RawNetwork) -> Option<FaultKind> {
    let servers: Vec<&str> = INFRASTRUCTURE
        .iter()
        .chain(SERVICES.iter())
        .copied()
        .collect();
    if !servers.contains(&n.to.as_str()) {
        p.add(
            format!("{key}.to"),
            format!(
                "unknown `{}` (expected database, cache, broker or a service: {})",
                n.to,
                SERVICES.join(", ")
            ),
        );
        return None;
    }
    if let Some(from) = &n.from
        && !SERVICES.contains(&from.as_str())
    {
        p.add(
            format!("{key}.from"),
            format!(
                "unknown service `{from}` (expected one of {})",
                SERVICES.join(", ")
            ),
        );
        return None;
    }
    if links(&n.to, n.from.as_deref()).is_empty() {
        let clients: Vec<&str> = links(&n.to, None).iter().map(|(c, _)| *c).collect();
        p.add(
            key,
            format!(
                "the shop has no link from {} to {} (its clients: {})",
                n.from.as_deref().unwrap_or("any service"),
                n.to,
                if clients.is_empty() {
                    "none".to_string()
                } else {
                    clients.join(", ")
                }
            ),
        );
        return None;
    }
    let effect = network_effect(p, key, name, &n)?;
    Some(FaultKind::Network {
        effect,
        to: n.to,
        from: n.from,
    })
}

/// What a network fault does to its link, from the keys of its kind.
fn network_effect(
    p: &mut Problems,
    key: &str,
    name: &str,
    n: &RawNetwork,
) -> Option<NetworkEffect> {
    let mut unused = |field: &str, set: bool| {
        if set {
            p.add(
                format!("{key}.{field}"),
                format!("`{field}` is not a key of {name}"),
            );
        }
    };
    let effect = match name {
        "network-latency" => {
            unused("percent", n.percent.is_some());
            unused("mode", n.mode.is_some());
            unused("rate", n.rate.is_some());
            let Some(latency) = n.latency.as_deref() else {
                p.add(key, "expected `latency: <duration>` such as 200ms");
                return None;
            };
            let latency = p.positive_duration(&format!("{key}.latency"), latency)?;
            let jitter = match n.jitter.as_deref() {
                Some(j) => p.duration(&format!("{key}.jitter"), j)?,
                None => Duration::ZERO,
            };
            NetworkEffect::Latency { latency, jitter }
        }
        "network-loss" => {
            unused("latency", n.latency.is_some());
            unused("jitter", n.jitter.is_some());
            unused("mode", n.mode.is_some());
            unused("rate", n.rate.is_some());
            let Some(percent) = n.percent.as_deref() else {
                p.add(key, "expected `percent: <share>` such as 30%");
                return None;
            };
            let percent = p.percent(&format!("{key}.percent"), percent)?;
            NetworkEffect::Loss { percent }
        }
        "network-partition" => {
            unused("latency", n.latency.is_some());
            unused("jitter", n.jitter.is_some());
            unused("percent", n.percent.is_some());
            unused("rate", n.rate.is_some());
            let mode = match n.mode.as_deref() {
                None | Some("hang") => PartitionMode::Hang,
                Some("reset") => PartitionMode::Reset,
                Some(other) => {
                    p.add(
                        format!("{key}.mode"),
                        format!("expected hang or reset, got `{other}`"),
                    );
                    return None;
                }
            };
            NetworkEffect::Partition { mode }
        }
        _ => {
            unused("latency", n.latency.is_some());
            unused("jitter", n.jitter.is_some());
            unused("percent", n.percent.is_some());
            unused("mode", n.mode.is_some());
            let Some(rate) = n.rate.as_deref() else {
                p.add(key, "expected `rate: <bytes per second>` such as 64KB/s");
                return None;
            };
            let Some(bytes_per_s) = parse_rate(rate) else {
                p.add(
                    format!("{key}.rate"),
                    format!("expected a rate such as 64KB/s or 1MB/s, got `{rate}`"),
                );
                return None;
            };
            NetworkEffect::Bandwidth { bytes_per_s }
        }
    };
    Some(effect)
}

/// `64KB/s`, `1MB/s`, `512B/s` (KB = 1,000 bytes) as bytes per second.
pub(crate) fn parse_rate(text: &str) -> Option<u64> {
    let t = text.trim().strip_suffix("/s")?.trim();
    let (number, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = number.trim().parse().ok()?;
    let scale = match unit.to_ascii_uppercase().as_str() {
        "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "KIB" => 1024.0,
        "MIB" => 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = (n * scale).round();
    (bytes.is_finite() && bytes >= 1.0).then_some(bytes as u64)
}

/// `at`, or `every` with `from` and `until`, within the load's length.
fn fault_schedule(p: &mut Problems, key: &str, f: &RawFault, length: Duration) -> Option<Schedule> {
    match (f.at.as_deref(), f.every.as_deref()) {
        (Some(at), None) => {
            if f.from.is_some() || f.until.is_some() {
                p.add(key, "from and until go with every, not with at");
            }
            let at = p.duration(&format!("{key}.at"), at)?;
            if !length.is_zero() && at > length {
                p.add(
                    format!("{key}.at"),
                    format!(
                        "{} is after the load ends ({})",
                        humantime::format_duration(at),
                        humantime::format_duration(length)
                    ),
                );
            }
            Some(Schedule::At(at))
        }
        (None, Some(every)) => {
            let every = p.positive_duration(&format!("{key}.every"), every)?;
            let from = match f.from.as_deref() {
                Some(t) => p.duration(&format!("{key}.from"), t)?,
                None => Duration::ZERO,
            };
            let until = match f.until.as_deref() {
                Some(t) => Some(p.duration(&format!("{key}.until"), t)?),
                None => None,
            };
            if until.is_some_and(|u| u < from) {
                p.add(format!("{key}.until"), "expected until after from");
            }
            Some(Schedule::Every { every, from, until })
        }
        (Some(_), Some(_)) => {
            p.add(key, "expected either at or every, not both");
            None
        }
        (None, None) => {
            p.add(key, "expected `at: <duration>` or `every: <duration>`");
            None
        }
    }
}

fn latency_targets(
    p: &mut Problems,
    key: &str,
    raw: &BTreeMap<String, String>,
) -> BTreeMap<Percentile, Duration> {
    let mut out = BTreeMap::new();
    for (name, text) in raw {
        let k = format!("{key}.{name}");
        match Percentile::parse(name) {
            Some(pct) => {
                if let Some(d) = p.positive_duration(&k, text) {
                    out.insert(pct, d);
                }
            }
            None => p.add(
                k,
                "unknown percentile (expected p50, p90, p95, p99, p99.9 or max)",
            ),
        }
    }
    out
}

fn validate_slo(p: &mut Problems, raw: RawSlo) -> Slo {
    let fraction = |p: &mut Problems, key: &str, v: &Option<String>| {
        v.as_deref()
            .and_then(|t| p.percent(key, t))
            .map(|x| x / 100.0)
    };
    let dur = |p: &mut Problems, key: &str, v: &Option<String>| {
        v.as_deref().and_then(|t| p.positive_duration(key, t))
    };
    Slo {
        availability: fraction(p, "slo.availability", &raw.availability),
        uptime: fraction(p, "slo.uptime", &raw.uptime),
        error_rate: fraction(p, "slo.error-rate", &raw.error_rate),
        latency: raw
            .latency
            .as_ref()
            .map(|l| latency_targets(p, "slo.latency", l))
            .unwrap_or_default(),
        step_latency: raw
            .step_latency
            .as_ref()
            .map(|steps| {
                steps
                    .iter()
                    .map(|(step, l)| {
                        (
                            step.clone(),
                            latency_targets(p, &format!("slo.step-latency.{step}"), l),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        recovery: dur(p, "slo.recovery", &raw.recovery),
        scale_out: dur(p, "slo.scale-out", &raw.scale_out),
        failover_downtime: dur(p, "slo.failover-downtime", &raw.failover_downtime),
        lost_orders: raw.lost_orders,
    }
}

/// One fault from a YAML value shaped like an entry of `faults` (what
/// `gameday inject` builds from its arguments), validated exactly as a
/// scenario's; problems are (key, message) with keys relative to the fault.
pub(crate) fn fault_from_value(
    value: serde_yaml_ng::Value,
) -> Result<Fault, Vec<(String, String)>> {
    // A shape error is about the fault's kind when there is one.
    let kind_key = value
        .as_mapping()
        .and_then(|m| {
            m.keys().filter_map(|k| k.as_str()).find(|k| {
                [
                    "kill-pod",
                    "terminate-instance",
                    "db-failover",
                    "restart-cache",
                    "restart-broker",
                ]
                .contains(k)
            })
        })
        .unwrap_or("fault")
        .to_string();
    let raw: RawFault =
        serde_yaml_ng::from_value(value).map_err(|e| vec![(kind_key, e.to_string())])?;
    let mut p = Problems::default();
    let fault = validate_fault(&mut p, 0, raw, Duration::ZERO);
    let problems: Vec<(String, String)> =
        p.0.into_iter()
            .map(|(k, m)| {
                let k = k
                    .strip_prefix("faults[0].")
                    .or_else(|| k.strip_prefix("faults[0]"))
                    .unwrap_or(&k)
                    .to_string();
                (if k.is_empty() { "fault".into() } else { k }, m)
            })
            .collect();
    match fault {
        Some(f) if problems.is_empty() => Ok(f),
        _ => Err(problems),
    }
}
