//! Where the shop runs. The engine (chaos, observe, the run, `plan`,
//! `inject`, `status`) talks to [`Platform`] only; `select` is the one place
//! that picks an implementation (`local`, `kubernetes` or `aws`).
//!
//! A platform deploys (or attaches to) the shop, lists what a fault can hit,
//! performs each fault and undoes it, and reports what it sees (replicas,
//! instances, scaling, database roles) as typed events on the run's clock
//! through the [`EventLog`](crate::events::EventLog) it was given.

pub mod aws;
mod errors;
#[cfg(test)]
pub mod fake;
pub mod kubernetes;
pub mod lifecycle;
pub mod local;
mod select;

use std::{collections::BTreeMap, path::PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use errors::{Error, Result};
pub use lifecycle::{
    Backend, Confirmation, Injector, Kept, Planned, Purpose, Removed, StatusReport, StopCause, Up,
    UpOptions, UpReport,
};
pub use select::{backend, check_faults, is_loopback_url, open};

use crate::scenario::{Fault, FaultKind};

/// The environment variable that gives the shop's admin token (reset and
/// the order audit) on a platform gameday did not start itself.
pub const ADMIN_TOKEN_ENV: &str = "GAMEDAY_ADMIN_TOKEN";

/// What a fault can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// A replica of a service: a process, a pod.
    Replica,
    /// A machine: a loopback instance, a node, an EC2 instance.
    Instance,
    Database,
    Cache,
    Broker,
    /// A link between two of the shop's parts (`orders→broker`), for
    /// network faults.
    Link,
}

/// One thing a fault hits, named as the platform names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub kind: TargetKind,
    /// `cart-1`, `i-0ab12…`, `mariadb-1`, a pod's name.
    pub id: String,
    /// The service a replica belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Where it runs: a replica's instance or node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// More for a person reading a plan: an address, an ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Target {
    pub fn new(kind: TargetKind, id: impl Into<String>) -> Self {
        Self {
            kind,
            id: id.into(),
            service: None,
            on: None,
            zone: None,
            detail: None,
        }
    }

    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    pub fn on(mut self, on: impl Into<String>) -> Self {
        self.on = Some(on.into());
        self
    }

    pub fn zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = Some(zone.into());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// `cart-1 (on i-1, 127.0.1.1:4000)`: the id and what else is known.
    pub fn describe(&self) -> String {
        let extra: Vec<&str> = [&self.on, &self.zone, &self.detail]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        if extra.is_empty() {
            self.id.clone()
        } else {
            format!("{} ({})", self.id, extra.join(", "))
        }
    }
}

/// Whether a platform can perform a fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    Yes,
    No { why: String },
}

/// How to put back what a lasting fault took away. The engine asks for it
/// (`Platform::undo_for`) and registers it before the fault acts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Undo {
    /// Start again a server the fault stopped.
    Start(Target),
    /// Make a node schedulable again, if it is still there.
    Uncordon(Target),
    /// Scale a workload back to what it was.
    ScaleTo { target: Target, replicas: u32 },
    /// Each of these, in turn (a fault that hit several targets, such as
    /// two nodes cordoned).
    Each(Vec<Undo>),
}

impl Undo {
    pub fn describe(&self) -> String {
        match self {
            // A link "started again" is healed: its toxics removed.
            Undo::Start(t) if t.kind == TargetKind::Link => {
                format!("heal {} (remove its toxics)", t.id)
            }
            Undo::Start(t) => format!("start {} again", t.id),
            Undo::Uncordon(t) => format!("uncordon {}", t.id),
            Undo::ScaleTo { target, replicas } => format!("scale {} back to {replicas}", target.id),
            Undo::Each(all) => all
                .iter()
                .map(Undo::describe)
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

/// Runs every undo of an `Undo::Each` on `platform`, all of them even when
/// one fails, and gives the first failure.
pub async fn undo_each<P: Platform + ?Sized>(platform: &P, all: &[Undo]) -> Result<()> {
    let mut first_error = None;
    for undo in all {
        if let Err(e) = platform.undo(undo).await {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    Booting,
    Running,
    Terminated,
}

/// CPU and memory a member used, when the platform can tell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub cpu_s: f64,
    pub rss_mb: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceInfo {
    pub name: String,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    pub state: InstanceState,
    /// Healthy behind the load balancer, where the platform says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// Whatever else the platform knows (a pid, an instance type).
    #[serde(flatten)]
    pub details: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaInfo {
    pub service: String,
    pub name: String,
    #[serde(default)]
    pub instance: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    pub ready: bool,
    #[serde(default)]
    pub serving: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub details: BTreeMap<String, Value>,
}

/// Infrastructure: the load balancer, databases, the cache, the broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentInfo {
    pub name: String,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub details: BTreeMap<String, Value>,
}

/// What runs where (`gameday status`, and `status.json` of a local stack).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    #[serde(default)]
    pub platform: String,
    pub entry_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_dir: Option<PathBuf>,
    pub instances: Vec<InstanceInfo>,
    pub replicas: Vec<ReplicaInfo>,
    pub infra: Vec<ComponentInfo>,
    /// What each component has cost since it started, where the platform
    /// can tell (`gameday status`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cost: Vec<ComponentCost>,
}

/// One component's cost so far: CPU seconds used since the platform started
/// (a running total that never goes down, replicas that came and went
/// included) and resident memory now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentCost {
    /// `load balancer`, `database`, `cache`, `broker`, or a service's name.
    pub name: String,
    pub cpu_s: f64,
    pub rss_mb: f64,
}

/// What a platform measures of itself at one moment: each component's cost,
/// and running totals of counters (`db_queries`, `cache_hits`,
/// `cache_misses`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub components: Vec<ComponentCost>,
    #[serde(default)]
    pub counters: BTreeMap<String, f64>,
}

/// A fault applied: its id, what it hit, and when it is undone (a lasting
/// fault), in seconds from now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Injected {
    pub id: String,
    pub targets: Vec<Target>,
    pub undo_after_s: Option<f64>,
}

/// A fault to apply now, with where to send what came of it (a schedule
/// does not wait for an answer; `gameday inject` does).
pub type FaultRequest = (
    Fault,
    Option<tokio::sync::oneshot::Sender<std::result::Result<Injected, String>>>,
);

/// A place the shop runs, deployed or attached to.
#[async_trait]
pub trait Platform: Send + Sync {
    /// `local`, `kubernetes` or `aws`.
    fn name(&self) -> &'static str;
    /// Where shoppers enter.
    fn entry_url(&self) -> &str;
    /// The shop's admin token (reset, order audit), when known.
    fn admin_token(&self) -> Option<&str>;
    /// Whether this platform can perform `fault`, and why not.
    fn supports(&self, fault: &Fault) -> Support;
    /// What `fault` does here, in words, for `plan`.
    fn describe(&self, fault: &Fault) -> String;
    /// What runs where, now.
    async fn inventory(&self) -> Result<Inventory>;
    /// What a fault of this kind would pick from now, in the order a blast
    /// radius picks (so `plan` and a run pick alike).
    async fn candidates(&self, fault: &FaultKind) -> Result<Vec<Target>>;
    /// What undoes `fault` on `targets` if it lasts (it may read what is
    /// there now, such as a workload's replica count, but must not act);
    /// the engine registers it before calling `inject`. None: the platform
    /// repairs itself (a killed pod is replaced) or the fault does not last.
    async fn undo_for(&self, fault: &Fault, targets: &[Target]) -> Option<Undo>;
    /// Checks, without acting, that `inject` would be allowed (AWS DryRun,
    /// permissions). `plan` calls it.
    async fn dry_run(&self, _fault: &Fault, _targets: &[Target]) -> Result<()> {
        Ok(())
    }
    /// Performs the fault on these targets.
    async fn inject(&self, fault: &Fault, targets: &[Target]) -> Result<()>;
    /// Puts back what a lasting fault took away.
    async fn undo(&self, undo: &Undo) -> Result<()>;
    /// What each component has cost so far (nothing, where the platform
    /// cannot tell: a cloud bills it, gameday does not see it).
    async fn sample(&self) -> Sample {
        Sample::default()
    }
    /// Tears down what it deployed (nothing, when it attached) and stops
    /// its watchers.
    async fn shutdown(self: Box<Self>);
}
