//! SLO evaluation: each target of the scenario against what was measured.
//! A figure that was not measured stays `None`: its SLO is reported with
//! `observed: null` and `pass: null`, and never counts as met or as zero.

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{
    exit_codes,
    scenario::{Percentile, Slo},
};

/// What a run measured (None: not measured).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub availability: Option<f64>,
    pub uptime: Option<f64>,
    pub error_rate: Option<f64>,
    pub latency_ms: BTreeMap<Percentile, f64>,
    pub step_latency_ms: BTreeMap<String, BTreeMap<Percentile, f64>>,
    /// The slowest recovery over all faults.
    pub worst_recovery_s: Option<f64>,
    /// The slowest scale-out; infinite when one never served.
    pub worst_scale_out_s: Option<f64>,
    pub failover_downtime_s: Option<f64>,
    /// How finely the failover downtime was measured: a downtime of 0 reads
    /// "< this", never "0.0ms".
    pub failover_resolution_s: Option<f64>,
    pub lost_orders: Option<u64>,
    /// The load generator was saturated: its latency figures are not
    /// trustworthy, and the latency results say so.
    pub latency_untrustworthy: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SloResult {
    pub name: String,
    pub target: String,
    pub observed: Option<String>,
    pub pass: Option<bool>,
    /// The figure is not trustworthy (a latency measured by a saturated
    /// load generator), whatever the result.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub untrustworthy: bool,
}

impl SloResult {
    /// met, MISSED or not measured, with "(not trustworthy)" after it when
    /// the figure is not.
    pub fn result_word(&self) -> String {
        let word = match self.pass {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not measured",
        };
        if self.untrustworthy {
            format!("{word} (not trustworthy)")
        } else {
            word.to_string()
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Aborted,
    Inconclusive,
}

impl Verdict {
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Pass => exit_codes::OK,
            Verdict::Fail => exit_codes::SLO_BREACHED,
            Verdict::Aborted => exit_codes::ABORTED,
            Verdict::Inconclusive => exit_codes::INCONCLUSIVE,
        }
    }

    /// PASS, FAIL, ABORTED, INCONCLUSIVE.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Aborted => "ABORTED",
            Verdict::Inconclusive => "INCONCLUSIVE",
        }
    }
}

/// A fraction as a percentage with up to three decimals; a fraction below
/// one never reads "100%" (one failed request in 300,000 is 99.9997%).
pub fn percent(fraction: f64) -> String {
    let value = fraction * 100.0;
    let text = (3..=6)
        .map(|decimals| format!("{value:.decimals$}"))
        .find(|text| fraction >= 1.0 || !text.starts_with("100"));
    let Some(text) = text else {
        return ">99.9999%".into();
    };
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

pub fn millis(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        format!("{ms:.1}ms")
    }
}

fn at_least(name: &str, target: f64, observed: Option<f64>) -> SloResult {
    SloResult {
        name: name.into(),
        target: format!(">= {}", percent(target)),
        observed: observed.map(percent),
        pass: observed.map(|o| o >= target),
        untrustworthy: false,
    }
}

fn at_most_ms(name: String, target: Duration, observed: Option<f64>) -> SloResult {
    let target_ms = target.as_secs_f64() * 1e3;
    SloResult {
        target: format!("<= {}", millis(target_ms)),
        observed: observed.map(|o| {
            if o.is_finite() {
                millis(o)
            } else {
                "never".into()
            }
        }),
        pass: observed.map(|o| o <= target_ms),
        untrustworthy: false,
        name,
    }
}

/// One result per target the scenario sets.
pub fn evaluate(slo: &Slo, f: &Figures) -> Vec<SloResult> {
    let mut out = Vec::new();
    if let Some(t) = slo.availability {
        out.push(at_least("availability", t, f.availability));
    }
    if let Some(t) = slo.uptime {
        out.push(at_least("uptime", t, f.uptime));
    }
    if let Some(t) = slo.error_rate {
        out.push(SloResult {
            name: "error-rate".into(),
            target: format!("<= {}", percent(t)),
            observed: f.error_rate.map(percent),
            pass: f.error_rate.map(|o| o <= t),
            untrustworthy: false,
        });
    }
    let latency = |name: String, t: Duration, observed: Option<f64>| SloResult {
        untrustworthy: f.latency_untrustworthy,
        ..at_most_ms(name, t, observed)
    };
    for (p, t) in &slo.latency {
        out.push(latency(
            format!("latency {}", p.key()),
            *t,
            f.latency_ms.get(p).copied(),
        ));
    }
    for (step, targets) in &slo.step_latency {
        for (p, t) in targets {
            let observed = f.step_latency_ms.get(step).and_then(|m| m.get(p)).copied();
            out.push(latency(
                format!("latency {} of {step}", p.key()),
                *t,
                observed,
            ));
        }
    }
    for (name, target, observed) in [
        ("recovery", slo.recovery, f.worst_recovery_s),
        ("scale-out", slo.scale_out, f.worst_scale_out_s),
        (
            "failover-downtime",
            slo.failover_downtime,
            f.failover_downtime_s,
        ),
    ] {
        if let Some(t) = target {
            out.push(at_most_ms(name.to_string(), t, observed.map(|s| s * 1e3)));
        }
    }
    // A failover no check saw is shorter than the checks' spacing, not 0.
    if let (Some(r), Some(0.0), Some(res)) = (
        out.iter_mut().find(|r| r.name == "failover-downtime"),
        f.failover_downtime_s,
        f.failover_resolution_s,
    ) {
        r.observed = Some(format!("< {}", millis(res * 1e3)));
    }
    if let Some(t) = slo.lost_orders {
        out.push(SloResult {
            name: "lost-orders".into(),
            target: format!("<= {t}"),
            observed: f.lost_orders.map(|n| n.to_string()),
            pass: f.lost_orders.map(|n| n <= t),
            untrustworthy: false,
        });
    }
    out
}

/// Why a run cannot pass, besides its SLOs: the run did not complete, the
/// orders were not audited, the load generator was saturated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    /// A stop rule ended the run.
    pub aborted: bool,
    /// Each gap in the evidence, in words.
    pub gaps: Vec<String>,
}

/// DESIGN.md section 4: a stop rule is `aborted`; otherwise a breached SLO
/// is `fail`; otherwise an SLO not measured, or any gap in the evidence, is
/// `inconclusive` (with every reason); `pass` only when everything the
/// scenario asked for was measured and met. The reasons are empty unless
/// the verdict is inconclusive.
pub fn verdict(results: &[SloResult], evidence: &Evidence) -> (Verdict, Vec<String>) {
    if evidence.aborted {
        return (Verdict::Aborted, Vec::new());
    }
    if results.iter().any(|r| r.pass == Some(false)) {
        return (Verdict::Fail, Vec::new());
    }
    let mut reasons: Vec<String> = results
        .iter()
        .filter(|r| r.pass.is_none())
        .map(|r| format!("the {} target ({}) was not measured", r.name, r.target))
        .collect();
    reasons.extend(evidence.gaps.iter().cloned());
    if reasons.is_empty() {
        (Verdict::Pass, reasons)
    } else {
        (Verdict::Inconclusive, reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slo() -> Slo {
        Slo {
            availability: Some(0.999),
            latency: [(Percentile::P95, Duration::from_millis(500))].into(),
            recovery: Some(Duration::from_secs(30)),
            lost_orders: Some(0),
            ..Slo::default()
        }
    }

    #[test]
    fn a_percentage_below_one_hundred_never_reads_one_hundred() {
        assert_eq!(percent(1.0), "100%");
        assert_eq!(percent(0.9999), "99.99%");
        assert_eq!(percent(0.5), "50%");
        // One failed request in 323,756.
        assert_eq!(percent(1.0 - 1.0 / 323_756.0), "99.9997%");
        assert_eq!(percent(1.0 - 1e-9), ">99.9999%");
    }

    #[test]
    fn each_target_is_judged_against_what_was_measured() {
        let figures = Figures {
            availability: Some(0.99976),
            latency_ms: [(Percentile::P95, 612.0)].into(),
            lost_orders: Some(0),
            ..Figures::default()
        };
        let r = evaluate(&slo(), &figures);
        assert_eq!(
            r[0],
            SloResult {
                name: "availability".into(),
                target: ">= 99.9%".into(),
                observed: Some("99.976%".into()),
                pass: Some(true),
                untrustworthy: false,
            }
        );
        assert_eq!(r[1].name, "latency p95");
        assert_eq!(
            (r[1].observed.as_deref(), r[1].pass),
            (Some("612.0ms"), Some(false))
        );
        // Recovery was not measured: null, not zero, and not a pass.
        assert_eq!((r[2].observed.clone(), r[2].pass), (None, None));
        assert_eq!(r[3].pass, Some(true));
        let complete = Evidence::default();
        assert_eq!(verdict(&r, &complete), (Verdict::Fail, vec![]));
        assert_eq!(verdict(&r, &complete).0.exit_code(), 3);
        let aborted = Evidence {
            aborted: true,
            ..Evidence::default()
        };
        assert_eq!(verdict(&r, &aborted).0.exit_code(), 4);
    }

    fn met(name: &str) -> SloResult {
        SloResult {
            name: name.into(),
            target: ">= 99%".into(),
            observed: Some("100%".into()),
            pass: Some(true),
            untrustworthy: false,
        }
    }

    #[test]
    fn a_target_that_was_not_measured_makes_the_run_inconclusive_not_green() {
        let mut r = vec![met("availability")];
        r.push(SloResult {
            name: "recovery".into(),
            target: "<= 30.0s".into(),
            observed: None,
            pass: None,
            untrustworthy: false,
        });
        let (v, why) = verdict(&r, &Evidence::default());
        assert_eq!((v, v.exit_code()), (Verdict::Inconclusive, 5));
        assert_eq!(why, ["the recovery target (<= 30.0s) was not measured"]);
        // Everything measured and met, nothing missing: pass.
        assert_eq!(
            verdict(&r[..1], &Evidence::default()),
            (Verdict::Pass, vec![])
        );
    }

    #[test]
    fn a_gap_in_the_evidence_is_inconclusive_but_a_breach_or_a_stop_rule_still_decides() {
        let gaps = Evidence {
            aborted: false,
            gaps: vec![
                "the load generator was saturated".into(),
                "the orders were not audited".into(),
            ],
        };
        let (v, why) = verdict(&[met("availability")], &gaps);
        assert_eq!(v, Verdict::Inconclusive);
        assert_eq!(why.len(), 2);
        let mut breached = met("latency p99");
        breached.pass = Some(false);
        assert_eq!(verdict(&[breached.clone()], &gaps).0, Verdict::Fail);
        let stopped = Evidence {
            aborted: true,
            ..gaps
        };
        assert_eq!(verdict(&[breached], &stopped).0, Verdict::Aborted);
    }

    #[test]
    fn a_scale_out_that_never_served_breaches_its_target() {
        let slo = Slo {
            scale_out: Some(Duration::from_secs(300)),
            ..Slo::default()
        };
        let r = evaluate(
            &slo,
            &Figures {
                worst_scale_out_s: Some(f64::INFINITY),
                ..Figures::default()
            },
        );
        assert_eq!(
            (r[0].observed.as_deref(), r[0].pass),
            (Some("never"), Some(false))
        );
    }

    #[test]
    fn a_saturated_generator_marks_every_latency_result_and_nothing_else() {
        let slo = Slo {
            step_latency: [(
                "checkout".to_string(),
                [(Percentile::P99, Duration::from_millis(800))].into(),
            )]
            .into(),
            ..slo()
        };
        let figures = Figures {
            availability: Some(0.9999),
            latency_ms: [(Percentile::P95, 61.0)].into(),
            step_latency_ms: [("checkout".to_string(), [(Percentile::P99, 90.0)].into())].into(),
            lost_orders: Some(0),
            latency_untrustworthy: true,
            ..Figures::default()
        };
        let marked: Vec<(String, bool)> = evaluate(&slo, &figures)
            .into_iter()
            .map(|r| (r.name, r.untrustworthy))
            .collect();
        assert_eq!(
            marked,
            [
                ("availability".to_string(), false),
                ("latency p95".into(), true),
                ("latency p99 of checkout".into(), true),
                ("recovery".into(), false),
                ("lost-orders".into(), false),
            ]
        );
        let r = &evaluate(&slo, &figures)[1];
        assert_eq!(r.result_word(), "met (not trustworthy)");
    }

    #[test]
    fn a_failover_no_check_saw_reads_shorter_than_the_checks_spacing_not_zero() {
        let slo = Slo {
            failover_downtime: Some(Duration::from_secs(120)),
            ..Slo::default()
        };
        let mut figures = Figures {
            failover_downtime_s: Some(0.0),
            failover_resolution_s: Some(0.2),
            ..Figures::default()
        };
        let r = &evaluate(&slo, &figures)[0];
        assert_eq!(
            (r.observed.as_deref(), r.pass),
            (Some("< 200.0ms"), Some(true))
        );
        figures.failover_downtime_s = Some(6.5);
        let r = &evaluate(&slo, &figures)[0];
        assert_eq!(r.observed.as_deref(), Some("6.50s"));
    }
}
