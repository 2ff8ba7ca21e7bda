//! The `target` section: platform, instances, replicas per service and
//! autoscaling. Raw serde types first (unknown keys refused), then
//! validation into [`Topology`].

use std::{collections::BTreeMap, path::Path, time::Duration};

use serde::Deserialize;

use crate::platform::local::shop::SERVICES;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawTarget {
    platform: Option<String>,
    instances: Option<u32>,
    replicas: Option<BTreeMap<String, u32>>,
    autoscale: Option<BTreeMap<String, RawAutoscale>>,
    #[serde(default, with = "humantime_serde")]
    boot_delay: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAutoscale {
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

    /// Reads the `target` section of a scenario file (defaults where absent).
    pub fn from_scenario_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_scenario_yaml(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_scenario_yaml(text: &str) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Only {
            #[serde(default)]
            target: Option<serde_yaml_ng::Value>,
        }
        let only: Only = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        let raw: RawTarget = match only.target {
            Some(v) => serde_yaml_ng::from_value(v).map_err(|e| format!("target: {e}"))?,
            None => RawTarget::default(),
        };
        Self::validate(raw)
    }

    fn validate(raw: RawTarget) -> Result<Self, String> {
        let mut topology = Topology::default();
        if let Some(p) = raw.platform.as_deref()
            && p != "local"
        {
            return Err(format!(
                "target.platform: `{p}` is not supported by `gameday up` (expected local)"
            ));
        }
        if let Some(n) = raw.instances {
            if !(1..=50).contains(&n) {
                return Err(format!("target.instances: expected 1 to 50, got {n}"));
            }
            topology.instances = n;
        }
        if let Some(d) = raw.boot_delay {
            topology.boot_delay = d;
        }
        for (service, n) in raw.replicas.unwrap_or_default() {
            if !SERVICES.contains(&service.as_str()) {
                return Err(format!(
                    "target.replicas.{service}: unknown service (expected one of {})",
                    SERVICES.join(", ")
                ));
            }
            if n > 50 {
                return Err(format!(
                    "target.replicas.{service}: expected 0 to 50, got {n}"
                ));
            }
            topology.replicas.insert(service, n);
        }
        for (service, a) in raw.autoscale.unwrap_or_default() {
            if !SERVICES.contains(&service.as_str()) {
                return Err(format!(
                    "target.autoscale.{service}: unknown service (expected one of {})",
                    SERVICES.join(", ")
                ));
            }
            let cpu = a
                .cpu
                .trim()
                .strip_suffix('%')
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| *v > 0.0 && *v <= 100.0)
                .ok_or_else(|| format!("target.autoscale.{service}.cpu: expected a percentage such as 70%, got `{}`", a.cpu))?;
            if a.min < 1 || a.min > a.max || a.max > 50 {
                return Err(format!(
                    "target.autoscale.{service}: expected 1 <= min <= max <= 50, got min {} max {}",
                    a.min, a.max
                ));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_design_example_target_is_read_and_defaults_fill_the_rest() {
        let yaml = "name: smoke\ntarget:\n  platform: local\n  instances: 3\n  replicas: { web: 2, user: 2, catalogue: 2, cart: 2, orders: 2, shipping: 2 }\n  autoscale:\n    catalogue: { min: 2, max: 4, cpu: 70% }\nload: {}\n";
        let t = Topology::from_scenario_yaml(yaml).unwrap();
        assert_eq!(t.instances, 3);
        assert_eq!(t.replicas["cart"], 2);
        assert_eq!(
            t.autoscale["catalogue"],
            Autoscale {
                min: 2,
                max: 4,
                cpu_percent: 70.0
            }
        );
        assert_eq!(
            Topology::from_scenario_yaml("name: x\n").unwrap(),
            Topology::default()
        );
    }

    #[test]
    fn nonsense_in_the_target_is_refused_with_the_key() {
        for (yaml, key) in [
            ("target: { instances: 0 }", "target.instances"),
            (
                "target: { replicas: { basket: 2 } }",
                "target.replicas.basket",
            ),
            (
                "target: { autoscale: { cart: { min: 2, max: 4, cpu: 170% } } }",
                "cpu",
            ),
            (
                "target: { autoscale: { cart: { min: 5, max: 4, cpu: 70% } } }",
                "target.autoscale.cart",
            ),
            ("target: { platform: aws }", "target.platform"),
            ("target: { instancez: 2 }", "instancez"),
        ] {
            let err = Topology::from_scenario_yaml(yaml).unwrap_err();
            assert!(err.contains(key), "{yaml}: {err}");
        }
    }
}
