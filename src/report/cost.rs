//! The cost section (DESIGN.md sections 4 and 8): per component, CPU
//! seconds over the measured window, CPU per 1,000 requests and peak memory;
//! the whole stack's share of the machine; the database's queries per
//! request and the catalogue's cache hit ratio. From `cost.jsonl` alone.

use std::{collections::BTreeMap, ops::Range};

use serde::{Deserialize, Serialize};

use crate::record::{CostRow, LOAD_GENERATOR};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ComponentSummary {
    pub name: String,
    pub cpu_s: f64,
    pub cpu_ms_per_1k_requests: Option<f64>,
    pub peak_rss_mb: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cost {
    /// The seconds the figures cover (the measured window, as sampled).
    pub window_s: u64,
    pub requests: u64,
    /// CPUs of the machine the run was on.
    pub cores: Option<u32>,
    /// The stack's CPU (every component but the load generator: what is
    /// deployed), in percent of the whole machine.
    pub stack_cpu_percent: Option<f64>,
    /// Every component's CPU, the load generator's included, in percent of
    /// the whole machine.
    #[serde(default)]
    pub machine_cpu_percent: Option<f64>,
    pub components: Vec<ComponentSummary>,
    /// Database queries per shopper request (every server's `Questions`).
    pub db_queries_per_request: Option<f64>,
    /// Catalogue reads answered from the cache.
    pub cache_hit_ratio: Option<f64>,
}

/// The cost over `window` (seconds on the run's clock), for `requests`.
pub fn cost(
    rows: &[CostRow],
    window: Range<u64>,
    requests: u64,
    cores: Option<u32>,
) -> Option<Cost> {
    let inside: Vec<&CostRow> = rows
        .iter()
        .filter(|r| r.t >= window.start && r.t <= window.end)
        .collect();
    let (first, last) = (inside.first()?, inside.last()?);
    let window_s = last.t.checked_sub(first.t).filter(|s| *s > 0)?;
    let cpu = |r: &CostRow, name: &str| {
        r.sample
            .components
            .iter()
            .find(|c| c.name == name)
            .map_or(0.0, |c| c.cpu_s)
    };
    let mut names: Vec<String> = inside
        .iter()
        .flat_map(|r| r.sample.components.iter().map(|c| c.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    // The load generator first, then the biggest spenders.
    let mut components: Vec<ComponentSummary> = names
        .iter()
        .map(|name| {
            let cpu_s = (cpu(last, name) - cpu(first, name)).max(0.0);
            ComponentSummary {
                name: name.clone(),
                cpu_s,
                cpu_ms_per_1k_requests: (requests > 0)
                    .then(|| cpu_s * 1000.0 / (requests as f64 / 1000.0)),
                peak_rss_mb: inside
                    .iter()
                    .flat_map(|r| r.sample.components.iter().filter(|c| c.name == *name))
                    .map(|c| c.rss_mb)
                    .fold(0.0, f64::max),
            }
        })
        .collect();
    components.sort_by(|a, b| {
        (b.name == LOAD_GENERATOR)
            .cmp(&(a.name == LOAD_GENERATOR))
            .then(b.cpu_s.total_cmp(&a.cpu_s))
    });
    let total: f64 = components.iter().map(|c| c.cpu_s).sum();
    let stack: f64 = components
        .iter()
        .filter(|c| c.name != LOAD_GENERATOR)
        .map(|c| c.cpu_s)
        .sum();
    let share = |cpu_s: f64| cores.map(|c| 100.0 * cpu_s / (window_s as f64 * c as f64));
    let counter = |name: &str| -> Option<f64> {
        Some(last.sample.counters.get(name)? - first.sample.counters.get(name).unwrap_or(&0.0))
    };
    let queries = counter("db_queries");
    let (hits, misses) = (counter("cache_hits"), counter("cache_misses"));
    Some(Cost {
        window_s,
        requests,
        cores,
        stack_cpu_percent: share(stack),
        machine_cpu_percent: share(total),
        components,
        db_queries_per_request: queries
            .filter(|_| requests > 0)
            .map(|q| q / requests as f64),
        cache_hit_ratio: match (hits, misses) {
            (Some(h), Some(m)) if h + m > 0.0 => Some(h / (h + m)),
            _ => None,
        },
    })
}

/// CPU per second of each component (in cores), for the chart.
pub fn cpu_over_time(rows: &[CostRow]) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for pair in rows.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let dt = b.t.saturating_sub(a.t) as f64;
        if dt <= 0.0 {
            continue;
        }
        for c in &b.sample.components {
            let before = a
                .sample
                .components
                .iter()
                .find(|x| x.name == c.name)
                .map_or(c.cpu_s, |x| x.cpu_s);
            out.entry(c.name.clone())
                .or_default()
                .push((b.t as f64, ((c.cpu_s - before) / dt).max(0.0)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::{ComponentCost, Sample};

    fn row(t: u64, lg: f64, db: f64, queries: f64) -> CostRow {
        CostRow {
            t,
            sample: Sample {
                components: vec![
                    ComponentCost {
                        name: LOAD_GENERATOR.into(),
                        cpu_s: lg,
                        rss_mb: 100.0 + t as f64,
                    },
                    ComponentCost {
                        name: "database".into(),
                        cpu_s: db,
                        rss_mb: 50.0,
                    },
                ],
                counters: [
                    ("db_queries".to_string(), queries),
                    ("cache_hits".to_string(), 90.0 * t as f64),
                    ("cache_misses".to_string(), 10.0 * t as f64),
                ]
                .into(),
            },
        }
    }

    #[test]
    fn cost_is_the_difference_over_the_window_per_request_and_per_core() {
        let rows: Vec<CostRow> = (0..20)
            .map(|t| row(t, 0.3 * t as f64, 0.5 * t as f64, 200.0 * t as f64))
            .collect();
        // Window 5..15: 10 s, 10,000 requests.
        let c = cost(&rows, 5..15, 10_000, Some(2)).unwrap();
        assert_eq!(c.window_s, 10);
        assert_eq!(c.components[0].name, LOAD_GENERATOR, "the generator first");
        assert!((c.components[0].cpu_s - 3.0).abs() < 1e-9);
        // 3 s of CPU for 10,000 requests: 300 ms per 1,000.
        assert!((c.components[0].cpu_ms_per_1k_requests.unwrap() - 300.0).abs() < 1e-6);
        assert_eq!(c.components[0].peak_rss_mb, 115.0);
        // 8 CPU seconds over 10 s on 2 cores: 40% of the machine, of which
        // the stack (without the generator's 3 s) 25%.
        assert!((c.machine_cpu_percent.unwrap() - 40.0).abs() < 1e-9);
        assert!((c.stack_cpu_percent.unwrap() - 25.0).abs() < 1e-9);
        assert!((c.db_queries_per_request.unwrap() - 0.2).abs() < 1e-9);
        assert!((c.cache_hit_ratio.unwrap() - 0.9).abs() < 1e-9);
        let over_time = cpu_over_time(&rows);
        assert!((over_time["database"][3].1 - 0.5).abs() < 1e-9);
        // No samples in the window: not measured.
        assert_eq!(cost(&rows, 40..50, 10, Some(2)), None);
    }
}
