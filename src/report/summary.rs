//! summary.json (DESIGN.md section 8): the verdict, the SLO table, totals,
//! latency (raw and corrected for coordinated omission), per-step figures,
//! faults, scale-outs, orders and the load generator's health. Figures that
//! were not measured are null.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::observe::{FaultSummary, ScaleOut, audit::Orders};
use crate::{
    events::EventKind,
    observe::{LatencyRule, RecoveryRule, ScaleOutcome},
    record::{Timeline, timeline::OVERALL},
    scenario::{Percentile, Scenario},
    slo::{self, Evidence, Figures, SloResult, Verdict},
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
    /// A distributed load's shards, one line each (empty: the shoppers ran
    /// in gameday's own process). The figures above are the worst shard's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardLine>,
}

/// One shard of a distributed load, as the coordinator saw it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ShardLine {
    pub index: u32,
    /// Requests it sent (in the seconds it sent).
    pub requests: u64,
    /// Its own health, when it finished and said so.
    pub cpu_percent_max: Option<f64>,
    pub lag_ms_p99: Option<f64>,
    pub saturated: Option<bool>,
    pub peak_rss_mb: Option<f64>,
    /// Why it was lost, when it was.
    #[serde(default)]
    pub lost: Option<String>,
    /// The first second (of the run's clock) missing from it, to the end.
    #[serde(default)]
    pub missing_from_s: Option<u64>,
    /// Seconds it skipped, (first, last) inclusive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<(u64, u64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub scenario: String,
    pub verdict: Verdict,
    pub exit_code: i32,
    /// Why the verdict is inconclusive (empty otherwise).
    #[serde(default)]
    pub inconclusive: Vec<String>,
    /// What makes figures untrustworthy whatever the verdict (a saturated
    /// load generator): stated beside a fail or an abort as well, where
    /// `inconclusive` is empty.
    #[serde(default)]
    pub caveats: Vec<String>,
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
    /// How each fault's recovery and impact were judged.
    #[serde(default)]
    pub fault_rule: Option<FaultRule>,
    pub scale_outs: Vec<ScaleOut>,
    pub orders: Orders,
    pub load_generator: LoadGenerator,
    pub steps: Vec<StepSummary>,
    pub aborted_by: Option<String>,
    /// Faults the scenario lists that this run did not inject.
    pub faults_not_injected: Vec<String>,
    /// What each component cost over the measured window (null when the
    /// run has no cost samples).
    #[serde(default)]
    pub cost: Option<super::cost::Cost>,
}

/// The rule a fault's recovery and latency impact were judged by.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaultRule {
    /// A second is good when at least this share of its requests succeeded...
    pub success_threshold: f64,
    /// ...and (when set) this percentile of its requests...
    pub latency_percentile: Option<String>,
    /// ...took at most this long.
    pub latency_target_ms: Option<f64>,
    /// Recovered: this many good seconds in a row.
    pub settle_s: u64,
}

/// How the load ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadEnd {
    /// It ran its plan to the end.
    Plan,
    /// A stop rule ended it.
    StopRule,
    /// Ctrl-C or SIGTERM.
    Interrupted,
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
    /// The run got to its end and wrote this file (absent in a run
    /// directory of a run that crashed or was killed).
    #[serde(default = "yes")]
    pub finished: bool,
    /// How the load ended (None in run directories written before this was
    /// recorded: they ran their plan).
    #[serde(default)]
    pub load_ended: Option<LoadEnd>,
    /// CPUs of the machine the run was on.
    #[serde(default)]
    pub cores: Option<u32>,
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

fn yes() -> bool {
    true
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

pub fn summarize(scenario: &Scenario, timeline: &Timeline, mut info: RunInfo) -> Summary {
    if !info.finished && info.load_started_s == 0 {
        info.load_started_s = load_started_from_events(timeline).unwrap_or(0);
    }
    let window = scenario.load.measured_window();
    let window = window.start + info.load_started_s..window.end + info.load_started_s;
    let totals = Totals::over(timeline, &window);
    let steps = steps(timeline, &window);
    let orders = info.orders.clone().unwrap_or_default();
    let rule = recovery_rule(scenario);
    let faults = crate::observe::faults(
        &timeline.events,
        &timeline.seconds,
        timeline.per_second(OVERALL),
        rule,
    );
    let run_end_s = timeline.seconds.last().map_or(0.0, |r| (r.t + 1) as f64);
    let mut faults = faults;
    for f in faults.iter_mut() {
        f.link_latency =
            crate::observe::network::link_latency(f, timeline, info.load_started_s, run_end_s);
    }
    let scale_outs = crate::observe::scale_outs(
        &timeline.events,
        (run_end_s * 1000.0) as u64,
        scenario.slo.scale_out.map(|d| d.as_millis() as u64),
    );
    let uptime = crate::observe::prober::uptime(&timeline.probes);
    let figures = Figures {
        availability: totals.availability,
        uptime,
        error_rate: totals.availability.map(|a| 1.0 - a),
        latency_ms: by_percentile(&totals.latency),
        step_latency_ms: steps
            .iter()
            .map(|s| (s.step.clone(), by_percentile(&s.latency_ms)))
            .collect(),
        worst_recovery_s: worst_recovery(&faults, run_end_s),
        worst_scale_out_s: worst_scale_out(&scale_outs),
        failover_downtime_s: crate::observe::failover_downtime(
            &timeline.events,
            &timeline.probes,
            &timeline.seconds,
            rule.settle_s,
        ),
        failover_resolution_s: crate::observe::prober::write_spacing(&timeline.probes),
        lost_orders: orders.lost,
        latency_untrustworthy: info.load_generator.saturated == Some(true),
    };
    let slos = slo::evaluate(&scenario.slo, &figures);
    let evidence = Evidence {
        aborted: info.aborted_by.is_some(),
        gaps: gaps(&info, &orders, timeline, window.end),
    };
    let (verdict, inconclusive) = slo::verdict(&slos, &evidence);
    let caveats = saturation(&info.load_generator).into_iter().collect();
    Summary {
        scenario: scenario.name.clone(),
        verdict,
        exit_code: verdict.exit_code(),
        inconclusive,
        caveats,
        started_at: info.started_at,
        duration_s: info.duration_s,
        load_started_s: info.load_started_s,
        measured_window_s: [window.start, window.end],
        requests: Requests {
            total: totals.requests,
            failed: totals.failed,
            rps_mean: (totals.requests > 0).then(|| totals.requests as f64 / totals.span_s),
        },
        availability: totals.availability,
        uptime,
        latency_ms: totals.latency,
        latency_corrected_ms: totals.latency_corrected,
        slos,
        faults,
        fault_rule: Some(FaultRule {
            success_threshold: rule.threshold,
            latency_percentile: rule.latency.map(|l| l.percentile.key().to_string()),
            latency_target_ms: rule.latency.map(|l| l.target_ms),
            settle_s: rule.settle_s,
        }),
        scale_outs,
        orders,
        load_generator: info.load_generator,
        steps,
        aborted_by: info.aborted_by,
        cost: super::cost::cost(&timeline.cost, window.clone(), totals.requests, info.cores),
        faults_not_injected: not_injected(timeline, info.faults_not_injected),
    }
}

/// A run that never wrote run.json: its events say when the load started
/// (just after a whole second, where the run starts it).
fn load_started_from_events(timeline: &Timeline) -> Option<u64> {
    timeline.events.iter().find_map(|e| match e.kind {
        EventKind::LoadStarted { .. } => Some(e.t_ms / 1000),
        _ => None,
    })
}

/// The whole load over the measured window.
struct Totals {
    requests: u64,
    failed: u64,
    span_s: f64,
    availability: Option<f64>,
    latency: Latency,
    latency_corrected: Latency,
}

impl Totals {
    fn over(timeline: &Timeline, window: &std::ops::Range<u64>) -> Self {
        let rows = timeline.seconds.iter().filter(|r| window.contains(&r.t));
        let (requests, failed) = rows.fold((0, 0), |(n, f), r| (n + r.requests(), f + r.failed()));
        Self {
            requests,
            failed,
            span_s: (window.end - window.start) as f64,
            availability: (requests > 0).then(|| (requests - failed) as f64 / requests as f64),
            latency: latency(timeline.merged(OVERALL, false, window.clone()).as_ref()),
            latency_corrected: latency(timeline.merged(OVERALL, true, window.clone()).as_ref()),
        }
    }
}

/// Each step's requests, failures, errors by kind and latency over the
/// measured window.
fn steps(timeline: &Timeline, window: &std::ops::Range<u64>) -> Vec<StepSummary> {
    let rows: Vec<_> = timeline
        .seconds
        .iter()
        .filter(|r| window.contains(&r.t))
        .collect();
    let span = (window.end - window.start) as f64;
    let mut names: Vec<String> = timeline
        .seconds
        .iter()
        .flat_map(|r| r.steps.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    names
        .iter()
        .map(|name| {
            let (mut count, mut failed, mut errors) = (0, 0, BTreeMap::new());
            for s in rows.iter().filter_map(|r| r.steps.get(name)) {
                count += s.requests;
                failed += s.failed;
                for (k, v) in &s.errors {
                    *errors.entry(k.clone()).or_insert(0) += v;
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
        .collect()
}

/// How a fault's recovery is judged: the shoppers' success ratio (the
/// availability target, at most 99%) and the tightest latency target.
fn recovery_rule(scenario: &Scenario) -> RecoveryRule {
    let latency = [
        Percentile::P99,
        Percentile::P999,
        Percentile::P95,
        Percentile::P90,
        Percentile::P50,
    ]
    .into_iter()
    .find_map(|p| {
        scenario.slo.latency.get(&p).map(|d| LatencyRule {
            percentile: p,
            target_ms: d.as_secs_f64() * 1e3,
        })
    });
    RecoveryRule {
        threshold: scenario.slo.availability.map_or(0.99, |a| a.min(0.99)),
        latency,
        ..Default::default()
    }
}

/// A fault never recovered from counts with the time it lasted until the
/// run ended: at least that long.
fn worst_recovery(faults: &[FaultSummary], run_end_s: f64) -> Option<f64> {
    worst(
        faults.iter().map(|f| {
            f.recovery_s
                .or_else(|| f.injected_at_s.map(|i| run_end_s - i))
        }),
        !faults.is_empty(),
    )
}

/// Scale-outs withdrawn or cut off by the end of the run are not judged;
/// one that never served is (as never).
fn worst_scale_out(scale_outs: &[ScaleOut]) -> Option<f64> {
    let judged: Vec<Option<f64>> = scale_outs
        .iter()
        .filter_map(|s| match s.outcome {
            ScaleOutcome::Served => Some(s.duration_s),
            ScaleOutcome::NeverServed => Some(Some(f64::INFINITY)),
            ScaleOutcome::Withdrawn | ScaleOutcome::CutOff => None,
        })
        .collect();
    worst(judged.iter().copied(), !judged.is_empty())
}

/// Faults the scheduler tried and could not apply (and, from runs before
/// the scheduler existed, those it listed).
fn not_injected(timeline: &Timeline, listed: Vec<String>) -> Vec<String> {
    timeline
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::FaultFailed { name, error, .. } => Some(format!("{name}: {error}")),
            _ => None,
        })
        .chain(listed)
        .collect()
}

/// What keeps the evidence from being whole: the run did not complete, the
/// orders were not audited, the load generator was saturated.
fn gaps(info: &RunInfo, orders: &Orders, timeline: &Timeline, window_end: u64) -> Vec<String> {
    let mut gaps = Vec::new();
    if !info.finished {
        gaps.push(
            "the run did not finish: its directory has no run.json (it crashed or was killed before its end)"
                .to_string(),
        );
    }
    if info.interrupted || info.load_ended == Some(LoadEnd::Interrupted) {
        gaps.push("the run was interrupted (Ctrl-C or SIGTERM) before its load ended".into());
    }
    let last = timeline.seconds.last().map(|r| r.t);
    if info.aborted_by.is_none() && last.is_none_or(|t| t + 1 < window_end) {
        gaps.push(match last {
            Some(t) => format!(
                "the load stopped early: its timeline ends at second {t}, before the measured window ends at second {window_end}"
            ),
            None => "no request was recorded".to_string(),
        });
    }
    if info.finished && orders.lost.is_none() {
        gaps.push(match &info.not_audited {
            Some(why) => format!("the orders were not audited: {why}"),
            None => "the orders were not audited".into(),
        });
    }
    let lg = &info.load_generator;
    gaps.extend(
        lg.shards
            .iter()
            .flat_map(|s| shard_gaps(s, info.load_started_s)),
    );
    gaps.extend(saturation(lg));
    if lg.saturated.is_none() && info.finished {
        gaps.push("the load generator's health was not measured".into());
    }
    gaps
}

/// What a shard did not send, in words (seconds from the load's start).
fn shard_gaps(s: &ShardLine, load_started_s: u64) -> Vec<String> {
    let rel = |t: u64| t.saturating_sub(load_started_s);
    let mut out = Vec::new();
    if let Some(why) = &s.lost {
        out.push(match s.missing_from_s {
            Some(t) => format!(
                "load generator shard {} was lost {} s into the load ({why}): its seconds from then on are missing",
                s.index,
                rel(t)
            ),
            None => format!("load generator shard {} was lost ({why})", s.index),
        });
    }
    for (a, b) in &s.gaps {
        out.push(format!(
            "load generator shard {} skipped seconds {} to {} of the load: they are missing",
            s.index,
            rel(*a),
            rel(*b)
        ));
    }
    out
}

/// A saturated load generator, in words (None when it was not, or was not
/// measured).
fn saturation(lg: &LoadGenerator) -> Option<String> {
    let hot: Vec<String> = lg
        .shards
        .iter()
        .filter(|s| s.saturated == Some(true))
        .map(|s| s.index.to_string())
        .collect();
    let which = if hot.is_empty() {
        String::new()
    } else {
        format!("shard {}; ", hot.join(", "))
    };
    (lg.saturated == Some(true)).then(|| {
        format!(
            "the load generator was saturated ({which}timer lag p99 {}, peak CPU {}): its figures are not trustworthy",
            lg.lag_ms_p99.map_or("not measured".into(), slo::millis),
            lg.cpu_percent_max
                .map_or("not measured".into(), |c| format!("{c:.0}% of one core"))
        )
    })
}

/// The largest figure, or None when any is unmeasured (or there are none).
fn worst(mut values: impl Iterator<Item = Option<f64>>, any: bool) -> Option<f64> {
    if !any {
        return None;
    }
    values.try_fold(f64::MIN, |m, v| v.map(|v| m.max(v)))
}
