//! The one place that picks a platform implementation from a scenario's
//! `target`. Everything else talks to `dyn Platform`.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{Injected, Inventory, Platform, Support, aws, kubernetes, local};
use crate::{
    errors::{Error, Result},
    events::EventLog,
    scenario::{Fault, PlatformSpec, Scenario},
};

/// Whether the target's platform can perform `fault`, judged from the
/// scenario alone (`validate` and `plan` ask before anything runs).
pub fn supports(spec: &PlatformSpec, fault: &Fault) -> Support {
    match spec {
        PlatformSpec::Local(topology) => local::supports(topology, fault),
        PlatformSpec::Kubernetes(target) => kubernetes::supports(target, fault),
        PlatformSpec::Aws(target) => aws::supports(target, fault),
    }
}

/// The scenario's faults its platform cannot perform: (key, why), located
/// in the file by the caller.
pub fn check_faults(scenario: &Scenario) -> Vec<(String, String)> {
    scenario
        .faults
        .iter()
        .enumerate()
        .filter_map(|(i, f)| match supports(&scenario.target, f) {
            Support::Yes => None,
            Support::No { why } => Some((
                format!("faults[{i}].{}", f.kind.key()),
                format!(
                    "the {} platform cannot do this: {why}",
                    scenario.target.name()
                ),
            )),
        })
        .collect()
}

/// Checks what the platform needs on this machine (the local platform's
/// servers and the shop's binaries).
pub fn preflight(spec: &PlatformSpec) -> Result<()> {
    match spec {
        PlatformSpec::Local(_) => local::preflight(),
        _ => Ok(()),
    }
}

/// What a run or an injection will hit, when a person must confirm it (a
/// real cloud or cluster); None when nothing needs confirming (this
/// machine, or a stand-in on loopback).
pub fn confirmation(spec: &PlatformSpec) -> Option<String> {
    match spec {
        PlatformSpec::Local(_) => None,
        PlatformSpec::Kubernetes(k) => Some(format!(
            "This acts on the Kubernetes cluster of kubeconfig context `{}`: namespace `{}`{}, \
             and nodes that run its pods.",
            k.context.as_deref().unwrap_or("(the current one)"),
            k.namespace,
            if k.deploy {
                " (deployed, then deleted if this creates it)"
            } else {
                ""
            }
        )),
        PlatformSpec::Aws(a) => {
            let loopback = a.endpoint_url.as_deref().is_some_and(is_loopback_url);
            (!loopback).then(|| {
                format!(
                    "This acts on AWS account resources in {} ({}).",
                    a.region.as_deref().unwrap_or("the default region"),
                    a.stack
                        .as_deref()
                        .map(|s| format!("stack {s}"))
                        .or_else(|| a.auto_scaling_group.as_ref().map(|g| format!("group {g}")))
                        .unwrap_or_default()
                )
            })
        }
    }
}

/// True for http(s)://127.x.x.x, ::1 or localhost URLs.
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    let host = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Deploys (or attaches to) the shop for a run; its files go under `dir`.
pub async fn deploy(
    spec: &PlatformSpec,
    dir: &Path,
    events: Arc<EventLog>,
) -> Result<Box<dyn Platform>> {
    match spec {
        PlatformSpec::Local(topology) => Ok(Box::new(
            local::LocalPlatform::up(dir, topology.clone(), events).await?,
        )),
        PlatformSpec::Kubernetes(target) if target.deploy => {
            kubernetes::deploy(target, events).await
        }
        PlatformSpec::Kubernetes(target) => kubernetes::attach(target, events).await,
        PlatformSpec::Aws(target) => aws::deploy(target, events).await,
    }
}

/// The platform as `plan` sees it: what a run would hit, without acting.
pub async fn preview(spec: &PlatformSpec) -> Result<Box<dyn Platform>> {
    match spec {
        PlatformSpec::Local(topology) => Ok(Box::new(local::Preview::new(topology.clone()))),
        PlatformSpec::Kubernetes(target) => kubernetes::preview(target).await,
        PlatformSpec::Aws(target) => aws::preview(target).await,
    }
}

/// `gameday up` options.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    pub scenario: Option<PathBuf>,
    pub detach: bool,
    pub run_dir: Option<PathBuf>,
    /// This process is the detached supervisor.
    pub supervise: bool,
}

/// What `up` left: a stack this process keeps (and serves faults for), or
/// an exit code.
pub enum Up {
    Supervising(Box<local::supervisor::Supervisor>),
    Done(i32),
}

pub async fn up(spec: &PlatformSpec, options: UpOptions) -> Result<Up> {
    match spec {
        PlatformSpec::Local(topology) => {
            if !options.supervise
                && let Some(why) = local::supervisor::refuse_second()
            {
                return Err(Error::Command {
                    name: "gameday up".into(),
                    detail: why,
                });
            }
            let run_dir = options.run_dir.unwrap_or_else(local::stacks::new_run_dir);
            // Servers resolve relative paths against their own directories.
            let run_dir = std::path::absolute(&run_dir).map_err(|e| Error::io(&run_dir, e))?;
            if options.detach && !options.supervise {
                return Ok(Up::Done(
                    local::supervisor::detach(options.scenario.as_deref(), &run_dir).await?,
                ));
            }
            Ok(
                match local::supervisor::start(topology.clone(), run_dir, options.supervise).await?
                {
                    local::supervisor::Started::Running(s) => Up::Supervising(s),
                    local::supervisor::Started::Stopped(code) => Up::Done(code),
                },
            )
        }
        PlatformSpec::Kubernetes(target) => Ok(Up::Done(kubernetes::up(target).await?)),
        PlatformSpec::Aws(target) => Ok(Up::Done(aws::up(target).await?)),
    }
}

/// `gameday down`: the local stack `up` started (no scenario), or the
/// scenario's platform.
pub async fn down(spec: Option<&PlatformSpec>) -> Result<i32> {
    match spec {
        None | Some(PlatformSpec::Local(_)) => local::supervisor::down().await,
        Some(PlatformSpec::Kubernetes(target)) => kubernetes::down(target).await,
        Some(PlatformSpec::Aws(target)) => aws::down(target).await,
    }
}

/// What `gameday status` shows: a heading and what runs where.
pub struct StatusReport {
    pub heading: String,
    pub inventory: Inventory,
}

pub async fn status(spec: Option<&PlatformSpec>) -> Result<Option<StatusReport>> {
    match spec {
        None | Some(PlatformSpec::Local(_)) => Ok(local::supervisor::status()?.map(
            |(inventory, alive)| StatusReport {
                heading: format!(
                    "Local stack in {}{}",
                    inventory
                        .run_dir
                        .as_deref()
                        .map(|d| d.display().to_string())
                        .unwrap_or_default(),
                    if alive {
                        ""
                    } else {
                        " (its supervisor is NOT RUNNING: run `gameday down` to clean up)"
                    }
                ),
                inventory,
            },
        )),
        Some(PlatformSpec::Kubernetes(target)) => Ok(kubernetes::status(target)
            .await?
            .map(|(heading, inventory)| StatusReport { heading, inventory })),
        Some(PlatformSpec::Aws(target)) => Ok(aws::status(target)
            .await?
            .map(|(heading, inventory)| StatusReport { heading, inventory })),
    }
}

/// Where `gameday inject` sends a fault.
pub enum Attached {
    /// The local stack's supervisor applies it (and undoes it after its
    /// duration).
    Supervisor,
    /// This process drives the platform itself.
    Direct(Box<dyn Platform>),
}

impl Attached {
    /// Sends a fault to the supervisor of the local stack.
    pub async fn send_to_supervisor(fault: &Fault) -> Result<Injected> {
        local::control::send(fault).await
    }
}

pub async fn open(spec: Option<&PlatformSpec>) -> Result<Attached> {
    match spec {
        None | Some(PlatformSpec::Local(_)) => Ok(Attached::Supervisor),
        Some(PlatformSpec::Kubernetes(target)) => {
            Ok(Attached::Direct(kubernetes::open(target).await?))
        }
        Some(PlatformSpec::Aws(target)) => Ok(Attached::Direct(aws::open(target).await?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn errors(text: &str) -> Vec<String> {
        Scenario::parse_with(std::path::Path::new("s.yaml"), text, check_faults)
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const LOAD: &str = "load:\n  stages:\n    - { users: 1, over: 10s }\n";

    #[test]
    fn a_fault_the_platform_cannot_perform_is_refused_with_its_reason_and_line() {
        let local = format!(
            "name: s\ntarget:\n  replicas: {{ cart: 0 }}\n{LOAD}faults:\n  - at: 1s\n    kill-pod: {{ service: cart }}\n"
        );
        assert_eq!(
            errors(&local),
            [
                "s.yaml:9:5: faults[0].kill-pod: the local platform cannot do this: the target runs no cart replica to kill"
            ]
        );
        let aws = format!(
            "name: s\ntarget:\n  platform: aws\n  stack: shop\n{LOAD}faults:\n  - at: 1s\n    kill-pod: {{ service: cart }}\n  - at: 2s\n    duration: 5s\n    restart-cache: {{}}\n"
        );
        let e = errors(&aws);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("s.yaml:10:5: faults[0].kill-pod: the aws platform cannot do this: an Auto Scaling group runs instances, not pods"), "{e:?}");
        assert!(
            e[1].contains("faults[1].restart-cache") && e[1].contains("rebooted, not held down"),
            "{e:?}"
        );
    }

    #[test]
    fn loopback_urls_are_recognised() {
        assert!(is_loopback_url("http://127.0.0.1:5000"));
        assert!(is_loopback_url("http://127.3.4.5"));
        assert!(is_loopback_url("http://localhost:4566/"));
        assert!(is_loopback_url("http://[::1]:5000"));
        assert!(!is_loopback_url("https://ec2.us-east-1.amazonaws.com"));
        assert!(!is_loopback_url("http://10.0.0.1:5000"));
    }
}
