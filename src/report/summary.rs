//! summary.json (DESIGN.md section 8): the verdict, the SLO table, totals,
//! latency (raw and corrected for coordinated omission), per-step figures,
//! faults, scale-outs, orders and the load generator's health. Figures that
//! were not measured are null.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::observe::{FaultSummary, ScaleOut, audit::Orders};
use crate::{
    events::EventKind,
    record::{Timeline, timeline::OVERALL},
    scenario::{Percentile, Scenario},
    slo::{self, Figures, SloResult, Verdict},
};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Requests {
    pub total: u64,
    pub failed: u64,
    pub rps_mean: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub p99_9: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepSummary {
    pub step: String,
    pub count: u64,
    pub failed: u64,
    pub failed_percent: Option<f64>,
    pub rps: Option<f64>,
    pub latency_ms: Latency,
    pub latency_corrected_ms: Latency,
    pub errors: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LoadGenerator {
    /// Within the measured window, in percent of one core.
    pub cpu_percent_max: Option<f64>,
    pub saturated: Option<bool>,
    /// How late a 100 ms timer fired, 99th percentile, in the measured window.
    #[serde(default)]
    pub lag_ms_p99: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub scenario: String,
    pub verdict: Verdict,
    pub exit_code: i32,
    pub started_at: String,
    pub duration_s: f64,
    /// The second of the run's clock at which the shoppers started (fault
    /// times in the scenario count from here; summary times from 0).
    pub load_started_s: u64,
    /// The seconds the figures are computed over (ramps excluded).
    pub measured_window_s: [u64; 2],
    pub requests: Requests,
    pub availability: Option<f64>,
    pub uptime: Option<f64>,
    pub latency_ms: Latency,
    pub latency_corrected_ms: Latency,
    pub slos: Vec<SloResult>,
    pub faults: Vec<FaultSummary>,
    pub scale_outs: Vec<ScaleOut>,
    pub orders: Orders,
    pub load_generator: LoadGenerator,
    pub steps: Vec<StepSummary>,
    pub aborted_by: Option<String>,
    /// Faults the scenario lists that this run did not inject.
    pub faults_not_injected: Vec<String>,
}

/// What the run knows beyond the timeline (saved as run.json).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunInfo {
    /// The run directory's layout version (absent: 1, before events were
    /// typed).
    #[serde(default = "format_one")]
    pub format: u32,
    /// The platform the run was on.
    #[serde(default)]
    pub platform: Option<String>,
    /// Why the orders were not audited, when they were not.
    #[serde(default)]
    pub not_audited: Option<String>,
    /// Ctrl-C or SIGTERM stopped the run.
    #[serde(default)]
    pub interrupted: bool,
    /// The second of the run's clock at which the load started.
    #[serde(default)]
    pub load_started_s: u64,
    /// Faults the scenario lists that this run did not inject.
    #[serde(default)]
    pub faults_not_injected: Vec<String>,
    pub started_at: String,
    pub duration_s: f64,
    pub orders: Option<Orders>,
    pub load_generator: LoadGenerator,
    /// The stop rule that fired, if one did.
    pub aborted_by: Option<String>,
}

fn format_one() -> u32 {
    1
}

fn latency(h: Option<&hdrhistogram::Histogram<u64>>) -> Latency {
    let Some(h) = h.filter(|h| !h.is_empty()) else {
        return Latency::default();
    };
    let at = |q: f64| Some(h.value_at_quantile(q) as f64 / 1000.0);
    Latency {
        p50: at(0.50),
        p90: at(0.90),
        p95: at(0.95),
        p99: at(0.99),
        p99_9: at(0.999),
        max: Some(h.max() as f64 / 1000.0),
    }
}

fn by_percentile(l: &Latency) -> BTreeMap<Percentile, f64> {
    [
        (Percentile::P50, l.p50),
        (Percentile::P90, l.p90),
        (Percentile::P95, l.p95),
        (Percentile::P99, l.p99),
        (Percentile::P999, l.p99_9),
        (Percentile::Max, l.max),
    ]
    .into_iter()
    .filter_map(|(p, v)| v.map(|v| (p, v)))
    .collect()
}

pub fn summarize(scenario: &Scenario, timeline: &Timeline, info: RunInfo) -> Summary {
    let window = scenario.load.measured_window();
    let window = window.start + info.load_started_s..window.end + info.load_started_s;
    let rows: Vec<_> = timeline
        .seconds
        .iter()
        .filter(|r| window.contains(&r.t))
        .collect();
    let total: u64 = rows.iter().map(|r| r.requests()).sum();
    let failed: u64 = rows.iter().map(|r| r.failed()).sum();
    let span = (window.end - window.start) as f64;
    let availability = (total > 0).then(|| (total - failed) as f64 / total as f64);
    let overall = latency(timeline.merged(OVERALL, false, window.clone()).as_ref());
    let overall_co = latency(timeline.merged(OVERALL, true, window.clone()).as_ref());

    let mut step_names: Vec<String> = timeline
        .seconds
        .iter()
        .flat_map(|r| r.steps.keys().cloned())
        .collect();
    step_names.sort();
    step_names.dedup();
    let steps: Vec<StepSummary> = step_names
        .iter()
        .map(|name| {
            let (mut count, mut failed, mut errors) = (0, 0, BTreeMap::new());
            for r in &rows {
                if let Some(s) = r.steps.get(name) {
                    count += s.requests;
                    failed += s.failed;
                    for (k, v) in &s.errors {
                        *errors.entry(k.clone()).or_insert(0) += v;
                    }
                }
            }
            StepSummary {
                step: name.clone(),
                count,
                failed,
                failed_percent: (count > 0).then(|| 100.0 * failed as f64 / count as f64),
                rps: (count > 0).then(|| count as f64 / span),
                latency_ms: latency(timeline.merged(name, false, window.clone()).as_ref()),
                latency_corrected_ms: latency(timeline.merged(name, true, window.clone()).as_ref()),
                errors,
            }
        })
        .collect();

    let orders = info.orders.clone().unwrap_or_default();
    let rule = crate::observe::RecoveryRule {
        threshold: scenario.slo.availability.map_or(0.99, |a| a.min(0.99)),
        ..Default::default()
    };
    let faults = crate::observe::faults(&timeline.events, &timeline.seconds, rule);
    let scale_outs = crate::observe::scale_outs(&timeline.events);
    let uptime = crate::observe::prober::uptime(&timeline.probes);
    let failover_downtime_s = crate::observe::failover_downtime(&timeline.events, &timeline.probes);
    let run_end_s = timeline.seconds.last().map_or(0.0, |r| (r.t + 1) as f64);
    let figures = Figures {
        availability,
        uptime,
        error_rate: availability.map(|a| 1.0 - a),
        latency_ms: by_percentile(&overall),
        step_latency_ms: steps
            .iter()
            .map(|s| (s.step.clone(), by_percentile(&s.latency_ms)))
            .collect(),
        // A fault never recovered from counts with the time it lasted
        // until the run ended: at least that long.
        worst_recovery_s: worst(
            faults.iter().map(|f| {
                f.recovery_s
                    .or_else(|| f.injected_at_s.map(|i| run_end_s - i))
            }),
            !faults.is_empty(),
        ),
        worst_scale_out_s: worst(
            scale_outs.iter().map(|s| s.duration_s),
            !scale_outs.is_empty(),
        ),
        failover_downtime_s,
        lost_orders: orders.lost,
    };
    let slos = slo::evaluate(&scenario.slo, &figures);
    let verdict = slo::verdict(&slos, info.aborted_by.is_some());
    Summary {
        scenario: scenario.name.clone(),
        verdict,
        exit_code: verdict.exit_code(),
        started_at: info.started_at,
        duration_s: info.duration_s,
        load_started_s: info.load_started_s,
        measured_window_s: [window.start, window.end],
        requests: Requests {
            total,
            failed,
            rps_mean: (total > 0).then(|| total as f64 / span),
        },
        availability,
        uptime,
        latency_ms: overall,
        latency_corrected_ms: overall_co,
        slos,
        faults,
        scale_outs,
        orders,
        load_generator: info.load_generator,
        steps,
        aborted_by: info.aborted_by,
        // Faults the scheduler tried and could not apply (and, from runs
        // before the scheduler existed, those it listed).
        faults_not_injected: timeline
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::FaultFailed { name, error, .. } => Some(format!("{name}: {error}")),
                _ => None,
            })
            .chain(info.faults_not_injected)
            .collect(),
    }
}

/// The largest figure, or None when any is unmeasured (or there are none).
fn worst(mut values: impl Iterator<Item = Option<f64>>, any: bool) -> Option<f64> {
    if !any {
        return None;
    }
    values.try_fold(f64::MIN, |m, v| v.map(|v| m.max(v)))
}
