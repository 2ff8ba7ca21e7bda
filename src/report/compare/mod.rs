//! `gameday compare BASE RUN`: two runs of one scenario side by side, from
//! their `summary.json`, with each figure's change, and the checks a nightly
//! pipeline sets (`--max-p99-increase 20%`, ...). A check whose figure is
//! missing in either run fails: a regression is never ruled out on missing
//! evidence.

mod html;

use std::{fmt::Write as _, path::Path, time::Duration};

use serde::Serialize;

use super::Summary;
use crate::slo::{millis, percent};

pub use html::render as render_html;

/// Which way is better for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
    /// Neither (a count for information).
    Neither,
}

/// How a figure is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// A fraction shown as a percentage.
    Fraction,
    Ms,
    Seconds,
    PerSecond,
    Count,
}

/// One figure of both runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub section: String,
    pub figure: String,
    pub base: Option<f64>,
    pub run: Option<f64>,
    pub unit: Unit,
    pub better: Better,
}

impl Row {
    pub fn change(&self) -> Option<f64> {
        Some(self.run? - self.base?)
    }

    pub fn relative(&self) -> Option<f64> {
        let base = self.base?;
        (base != 0.0).then(|| self.change().map(|c| c / base))?
    }

    /// True when RUN is worse than BASE.
    pub fn worse(&self) -> bool {
        match (self.change(), self.better) {
            (Some(c), Better::Higher) => c < 0.0,
            (Some(c), Better::Lower) => c > 0.0,
            _ => false,
        }
    }

    pub fn show(&self, v: Option<f64>) -> String {
        let Some(v) = v else {
            return "not measured".into();
        };
        match self.unit {
            Unit::Fraction => percent(v),
            Unit::Ms => millis(v),
            Unit::Seconds => format!("{v:.1} s"),
            Unit::PerSecond => format!("{v:.1}/s"),
            Unit::Count => format!("{v:.0}"),
        }
    }

    /// `+55.0ms (+137%)`, `-0.01%`, or `-` when either is missing.
    pub fn show_change(&self) -> String {
        let Some(c) = self.change() else {
            return "-".into();
        };
        let sign = if c > 0.0 { "+" } else { "" };
        let abs = match self.unit {
            Unit::Fraction => format!("{sign}{:.3} points", c * 100.0),
            Unit::Ms => format!("{sign}{}", millis(c)),
            Unit::Seconds => format!("{sign}{c:.1} s"),
            Unit::PerSecond => format!("{sign}{c:.1}/s"),
            Unit::Count => format!("{sign}{c:.0}"),
        };
        match self.relative() {
            Some(r) if self.unit != Unit::Fraction && c != 0.0 => {
                format!("{abs} ({sign}{:.0}%)", r * 100.0)
            }
            _ => abs,
        }
    }
}

/// A limit on how much worse RUN may be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// A share of BASE's figure (0.2 for 20%).
    Relative(f64),
    /// An amount in the figure's own unit (points of a fraction, seconds).
    Absolute(f64),
}

impl Limit {
    /// `20%` (relative) or, for `absolute_unit`, `0.01%` / `10s`.
    pub fn parse_percent(text: &str) -> Option<f64> {
        crate::scenario::parse_percent(text).map(|p| p / 100.0)
    }
}

/// The checks `compare` makes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thresholds {
    /// Overall p99 may grow by at most this share.
    pub max_p99_increase: Option<f64>,
    /// Availability may drop by at most this many percentage points (as a
    /// fraction: 0.0001 for 0.01%).
    pub max_availability_drop: Option<f64>,
    /// Each fault's recovery may grow by at most this.
    pub max_recovery_increase: Option<Limit>,
}

/// One check and how it came out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub limit: String,
    pub observed: String,
    pub pass: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub scenario: String,
    pub base_dir: String,
    pub run_dir: String,
    pub base_verdict: String,
    pub run_verdict: String,
    pub rows: Vec<Row>,
    pub checks: Vec<Check>,
    /// A check failed.
    pub regressed: bool,
}

/// Why two directories cannot be compared (exit code 2).
#[derive(Debug, Clone, PartialEq)]
pub struct Incompatible(pub String);

impl std::fmt::Display for Incompatible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads a run directory's `summary.json`.
pub fn read_summary(dir: &Path) -> Result<Summary, Incompatible> {
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Incompatible(format!(
            "{}: {e} (not a finished run directory? `gameday report {}` writes it)",
            path.display(),
            dir.display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        Incompatible(format!(
            "{}: not a summary this version of gameday reads: {e}",
            path.display()
        ))
    })
}

/// A figure read from a summary (None: not measured).
type Figure<'a> = &'a dyn Fn(&Summary) -> Option<f64>;

/// One row per figure of a table: (name, how to read it, unit, which way
/// is better), read from both summaries.
fn table(
    section: &str,
    base: &Summary,
    run: &Summary,
    figures: &[(&str, Figure<'_>, Unit, Better)],
) -> Vec<Row> {
    figures
        .iter()
        .map(|(figure, read, unit, better)| Row {
            section: section.into(),
            figure: (*figure).into(),
            base: read(base),
            run: read(run),
            unit: *unit,
            better: *better,
        })
        .collect()
}

/// Every figure of both summaries, side by side.
pub fn rows(base: &Summary, run: &Summary) -> Vec<Row> {
    use Better::{Higher, Lower, Neither};
    let count = |v: Option<u64>| v.map(|v| v as f64);
    let mut rows = table(
        "shoppers",
        base,
        run,
        &[
            ("availability", &|s| s.availability, Unit::Fraction, Higher),
            ("uptime (prober)", &|s| s.uptime, Unit::Fraction, Higher),
            (
                "requests per second",
                &|s| s.requests.rps_mean,
                Unit::PerSecond,
                Neither,
            ),
            (
                "failed requests",
                &|s| Some(s.requests.failed as f64),
                Unit::Count,
                Lower,
            ),
        ],
    );
    rows.extend(table(
        "latency",
        base,
        run,
        &[
            ("p50", &|s| s.latency_ms.p50, Unit::Ms, Lower),
            ("p95", &|s| s.latency_ms.p95, Unit::Ms, Lower),
            ("p99", &|s| s.latency_ms.p99, Unit::Ms, Lower),
            ("p99.9", &|s| s.latency_ms.p99_9, Unit::Ms, Lower),
        ],
    ));
    rows.extend(step_rows(base, run));
    rows.extend(fault_rows(base, run));
    rows.extend(table(
        "scaling",
        base,
        run,
        &[
            (
                "slowest scale-out",
                &|s| {
                    s.scale_outs
                        .iter()
                        .filter_map(|x| x.duration_s)
                        .reduce(f64::max)
                },
                Unit::Seconds,
                Lower,
            ),
            (
                "scale-outs",
                &|s| Some(s.scale_outs.len() as f64),
                Unit::Count,
                Neither,
            ),
        ],
    ));
    rows.extend(table(
        "orders",
        base,
        run,
        &[
            (
                "accepted",
                &|s| count(s.orders.accepted),
                Unit::Count,
                Neither,
            ),
            ("lost", &|s| count(s.orders.lost), Unit::Count, Lower),
            (
                "duplicated",
                &|s| count(s.orders.duplicated),
                Unit::Count,
                Lower,
            ),
        ],
    ));
    rows
}

/// The p99 of every step either run has.
fn step_rows(base: &Summary, run: &Summary) -> Vec<Row> {
    let mut steps: Vec<&str> = base
        .steps
        .iter()
        .chain(&run.steps)
        .map(|s| s.step.as_str())
        .collect();
    steps.sort();
    steps.dedup();
    steps
        .into_iter()
        .flat_map(|step| {
            let p99 = move |s: &Summary| {
                s.steps
                    .iter()
                    .find(|x| x.step == step)
                    .and_then(|x| x.latency_ms.p99)
            };
            table(
                "p99 per step",
                base,
                run,
                &[(step, &p99, Unit::Ms, Better::Lower)],
            )
        })
        .collect()
}

/// Each fault's impact; faults are matched by their place in the run and
/// their name.
fn fault_rows(base: &Summary, run: &Summary) -> Vec<Row> {
    use Better::Lower;
    let mut rows = Vec::new();
    for (i, bf) in base.faults.iter().enumerate() {
        let the = |s: &Summary| {
            s.faults
                .get(i)
                .filter(|f| f.name == bf.name && f.kind == bf.kind)
                .cloned()
        };
        let section = format!("fault {} ({})", bf.name, bf.kind);
        rows.extend(table(
            &section,
            base,
            run,
            &[
                (
                    "recovery",
                    &|s| the(s).and_then(|f| f.recovery_s),
                    Unit::Seconds,
                    Lower,
                ),
                (
                    "failed requests",
                    &|s| the(s).and_then(|f| f.errors).map(|e| e as f64),
                    Unit::Count,
                    Lower,
                ),
                (
                    "seconds over the latency target",
                    &|s| the(s).and_then(|f| f.slow_seconds).map(|e| e as f64),
                    Unit::Count,
                    Lower,
                ),
                (
                    "worst p99",
                    &|s| the(s).and_then(|f| f.worst_p99_ms),
                    Unit::Ms,
                    Lower,
                ),
            ],
        ));
    }
    rows
}

fn checks(base: &Summary, run: &Summary, t: &Thresholds) -> Vec<Check> {
    let mut out = Vec::new();
    let missing = |which: &str| format!("not measured in {which}");
    if let Some(max) = t.max_p99_increase {
        let limit = format!("p99 at most +{}", percent(max));
        out.push(match (base.latency_ms.p99, run.latency_ms.p99) {
            (Some(b), Some(r)) => Check {
                name: "p99".into(),
                limit,
                observed: format!("{} -> {}", millis(b), millis(r)),
                pass: r <= b * (1.0 + max),
            },
            (b, _) => Check {
                name: "p99".into(),
                limit,
                observed: missing(if b.is_none() { "BASE" } else { "RUN" }),
                pass: false,
            },
        });
    }
    if let Some(max) = t.max_availability_drop {
        let limit = format!("availability at most {} lower", percent(max));
        out.push(match (base.availability, run.availability) {
            (Some(b), Some(r)) => Check {
                name: "availability".into(),
                limit,
                observed: format!("{} -> {}", percent(b), percent(r)),
                pass: b - r <= max + 1e-12,
            },
            (b, _) => Check {
                name: "availability".into(),
                limit,
                observed: missing(if b.is_none() { "BASE" } else { "RUN" }),
                pass: false,
            },
        });
    }
    if let Some(max) = t.max_recovery_increase {
        let limit = match max {
            Limit::Relative(r) => format!("each recovery at most +{}", percent(r)),
            Limit::Absolute(s) => format!(
                "each recovery at most +{}",
                humantime::format_duration(Duration::from_secs_f64(s))
            ),
        };
        for (i, bf) in base.faults.iter().enumerate() {
            let name = format!("recovery of {}", bf.name);
            let rf = run
                .faults
                .get(i)
                .filter(|f| f.name == bf.name && f.kind == bf.kind);
            out.push(match (bf.recovery_s, rf.and_then(|f| f.recovery_s)) {
                (Some(b), Some(r)) => Check {
                    name,
                    limit: limit.clone(),
                    observed: format!("{b:.1} s -> {r:.1} s"),
                    pass: match max {
                        Limit::Relative(m) => r <= b * (1.0 + m) + 1e-9,
                        Limit::Absolute(s) => r <= b + s + 1e-9,
                    },
                },
                (_, None) if rf.is_none() => Check {
                    name,
                    limit: limit.clone(),
                    observed: "RUN has no such fault".into(),
                    pass: false,
                },
                (b, _) => Check {
                    name,
                    limit: limit.clone(),
                    observed: if b.is_none() {
                        missing("BASE")
                    } else {
                        "not recovered in RUN".into()
                    },
                    pass: false,
                },
            });
        }
    }
    out
}

/// Compares two run directories' summaries.
pub fn compare(
    base_dir: &Path,
    run_dir: &Path,
    t: &Thresholds,
) -> Result<Comparison, Incompatible> {
    let base = read_summary(base_dir)?;
    let run = read_summary(run_dir)?;
    if base.scenario != run.scenario {
        return Err(Incompatible(format!(
            "these are runs of different scenarios: BASE ran `{}`, RUN ran `{}`",
            base.scenario, run.scenario
        )));
    }
    let checks = checks(&base, &run, t);
    Ok(Comparison {
        scenario: run.scenario.clone(),
        base_dir: base_dir.display().to_string(),
        run_dir: run_dir.display().to_string(),
        base_verdict: base.verdict.word().to_string(),
        run_verdict: run.verdict.word().to_string(),
        regressed: checks.iter().any(|c| !c.pass),
        rows: rows(&base, &run),
        checks,
    })
}

impl Comparison {
    /// The comparison for a terminal.
    pub fn text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "Scenario `{}`: BASE {} ({}), RUN {} ({})",
            self.scenario, self.base_dir, self.base_verdict, self.run_dir, self.run_verdict
        );
        let mut section = "";
        for r in &self.rows {
            if r.section != section {
                section = &r.section;
                let _ = writeln!(o, "\n{section}");
            }
            let _ = writeln!(
                o,
                "  {:<34} {:>14} {:>14}  {}{}",
                r.figure,
                r.show(r.base),
                r.show(r.run),
                r.show_change(),
                if r.worse() { "  (worse)" } else { "" }
            );
        }
        if !self.checks.is_empty() {
            let _ = writeln!(o, "\nChecks");
            for c in &self.checks {
                let _ = writeln!(
                    o,
                    "  {:<8} {}: {} ({})",
                    if c.pass { "ok" } else { "REGRESSED" },
                    c.name,
                    c.observed,
                    c.limit
                );
            }
        }
        o
    }

    /// The comparison as a Markdown table (a CI job summary).
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "### gameday `{}`: {} → {}{}\n",
            self.scenario,
            self.base_verdict,
            self.run_verdict,
            if self.regressed { " — REGRESSED" } else { "" }
        );
        let _ = writeln!(
            o,
            "| | figure | base | run | change |\n|---|---|---:|---:|---:|"
        );
        for r in &self.rows {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {}{} |",
                r.section,
                r.figure,
                r.show(r.base),
                r.show(r.run),
                r.show_change(),
                if r.worse() { " ⚠" } else { "" }
            );
        }
        if !self.checks.is_empty() {
            let _ = writeln!(o, "\n| check | limit | observed | |\n|---|---|---|---|");
            for c in &self.checks {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} |",
                    c.name,
                    c.limit,
                    c.observed,
                    if c.pass { "ok" } else { "**regressed**" }
                );
            }
        }
        o
    }
}

#[cfg(test)]
mod tests;
