//! junit.xml: one test case per SLO and per fault, so CI shows a breached
//! target as a failed test with its target and what was observed.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::Summary;
use crate::slo::Verdict;

fn secs(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1} s"))
}

/// The verdict as a test case: it passes only on `pass`; an inconclusive
/// run fails it with every reason, so CI never goes green on missing
/// evidence.
fn verdict_case(summary: &Summary) -> TestCase {
    let status = match summary.verdict {
        Verdict::Pass => TestCaseStatus::success(),
        v => {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            let message = match v {
                Verdict::Inconclusive => {
                    format!("inconclusive: {}", summary.inconclusive.join("; "))
                }
                Verdict::Aborted => format!(
                    "aborted: {}",
                    summary
                        .aborted_by
                        .as_deref()
                        .unwrap_or("a stop condition held")
                ),
                _ => "failed: at least one target was missed".into(),
            };
            let message = match (v, summary.caveats.is_empty()) {
                (Verdict::Inconclusive, _) | (_, true) => message,
                _ => format!("{message}; {}", summary.caveats.join("; ")),
            };
            st.set_message(message)
                .set_type(v.word().to_ascii_lowercase());
            st
        }
    };
    let mut case = TestCase::new("verdict", status);
    case.set_classname(format!("{}.verdict", summary.scenario));
    case
}

pub fn render(summary: &Summary) -> String {
    let mut report = Report::new(format!("gameday {}", summary.scenario));
    let mut verdict = TestSuite::new("verdict");
    verdict.add_test_case(verdict_case(summary));
    report.add_test_suite(verdict);
    let mut slos = TestSuite::new("slo");
    for s in &summary.slos {
        let observed = s.observed.clone().unwrap_or_else(|| "not measured".into());
        let status = match s.pass {
            Some(true) => TestCaseStatus::success(),
            Some(false) => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                let untrusted = if s.untrustworthy {
                    " (not trustworthy: the load generator was saturated)"
                } else {
                    ""
                };
                st.set_message(format!(
                    "target {}, observed {observed}{untrusted}",
                    s.target
                ))
                .set_type("slo-breached");
                st
            }
            None => {
                let mut st = TestCaseStatus::skipped();
                st.set_message(format!("target {}, not measured", s.target));
                st
            }
        };
        let mut case = TestCase::new(s.name.clone(), status);
        case.set_classname(format!("{}.slo", summary.scenario));
        slos.add_test_case(case);
    }
    report.add_test_suite(slos);
    let mut faults = TestSuite::new("faults");
    for f in &summary.faults {
        let status = match f.recovery_s {
            Some(_) => TestCaseStatus::success(),
            None => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message("the shoppers' success rate did not recover")
                    .set_type("not-recovered");
                st
            }
        };
        let mut case = TestCase::new(format!("{} ({})", f.name, f.kind), status);
        case.set_classname(format!("{}.faults", summary.scenario));
        case.set_system_out(format!(
            "targets: {}; injected at {}; first error at {}; failed requests {}; seconds over the latency target {}; worst p99 {}; replicas lost {}; instances lost {}; capacity back at {}; alarm after {}; recovery {}",
            f.targets.join(", "),
            secs(f.injected_at_s),
            secs(f.first_error_at_s),
            f.errors.map_or("not measured".into(), |e| e.to_string()),
            f.slow_seconds.map_or("not measured".into(), |e| e.to_string()),
            f.worst_p99_ms.map_or("not measured".into(), crate::slo::millis),
            f.replicas_lost.map_or("not measured".into(), |e| e.to_string()),
            f.instances_lost.map_or("not measured".into(), |e| e.to_string()),
            secs(f.capacity_back_at_s),
            secs(f.alarm_after_s),
            secs(f.recovery_s)
        ));
        faults.add_test_case(case);
    }
    report.add_test_suite(faults);
    report.to_string().unwrap_or_default()
}
