//! The `target` section: platform, instances, replicas per service and
//! autoscaling. Raw serde types first (unknown keys refused), then
//! validation into [`Topology`].

use std::{collections::BTreeMap, time::Duration};

use serde::Deserialize;

use crate::platform::local::shop::SERVICES;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawTarget {
    platform: Option<String>,
    instances: Option<u32>,
    replicas: Option<BTreeMap<String, u32>>,
    autoscale: Option<BTreeMap<String, RawAutoscale>>,
    #[serde(default, with = "humantime_serde")]
    boot_delay: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAutoscale {
    min: u32,
    max: u32,
    cpu: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Autoscale {
    pub min: u32,
    pub max: u32,
    /// Target CPU utilisation of a replica, in percent of its CPU request.
    pub cpu_percent: f64,
}

/// What the local platform deploys.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub instances: u32,
    pub replicas: BTreeMap<String, u32>,
    pub autoscale: BTreeMap<String, Autoscale>,
    /// How long a replacement instance takes to boot.
    pub boot_delay: Duration,
}

impl Default for Topology {
    fn default() -> Self {
        Self {
            instances: 3,
            replicas: SERVICES.iter().map(|s| (s.to_string(), 2)).collect(),
            autoscale: BTreeMap::new(),
            boot_delay: Duration::from_secs(20),
        }
    }
}

impl Topology {
    /// Initial replicas of a service: its count, raised to its autoscaling minimum.
    pub fn initial_replicas(&self, service: &str) -> u32 {
        let n = self.replicas.get(service).copied().unwrap_or(0);
        self.autoscale.get(service).map_or(n, |a| n.max(a.min))
    }

    /// Validates a raw target; an error is (key path, what was expected).
    pub(crate) fn validate(raw: RawTarget) -> Result<Self, (String, String)> {
        let fail = |path: String, message: String| Err((path, message));
        let mut topology = Topology::default();
        if let Some(p) = raw.platform.as_deref()
            && p != "local"
        {
            return fail(
                "target.platform".into(),
                format!("`{p}` is not supported yet (expected local)"),
            );
        }
        if let Some(n) = raw.instances {
            if !(1..=50).contains(&n) {
                return fail(
                    "target.instances".into(),
                    format!("expected 1 to 50, got {n}"),
                );
            }
            topology.instances = n;
        }
        if let Some(d) = raw.boot_delay {
            topology.boot_delay = d;
        }
        let known = || format!("unknown service (expected one of {})", SERVICES.join(", "));
        for (service, n) in raw.replicas.unwrap_or_default() {
            if !SERVICES.contains(&service.as_str()) {
                return fail(format!("target.replicas.{service}"), known());
            }
            if n > 50 {
                return fail(
                    format!("target.replicas.{service}"),
                    format!("expected 0 to 50, got {n}"),
                );
            }
            topology.replicas.insert(service, n);
        }
        for (service, a) in raw.autoscale.unwrap_or_default() {
            if !SERVICES.contains(&service.as_str()) {
                return fail(format!("target.autoscale.{service}"), known());
            }
            let Some(cpu) = super::parse_percent(&a.cpu).filter(|v| *v > 0.0) else {
                return fail(
                    format!("target.autoscale.{service}.cpu"),
                    format!(
                        "expected a percentage from 1% to 100% such as 70%, got `{}`",
                        a.cpu
                    ),
                );
            };
            if a.min < 1 || a.min > a.max || a.max > 50 {
                return fail(
                    format!("target.autoscale.{service}"),
                    format!(
                        "expected 1 <= min <= max <= 50, got min {} max {}",
                        a.min, a.max
                    ),
                );
            }
            topology.autoscale.insert(
                service,
                Autoscale {
                    min: a.min,
                    max: a.max,
                    cpu_percent: cpu,
                },
            );
        }
        Ok(topology)
    }
}
