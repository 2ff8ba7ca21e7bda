//! junit.xml: one test case per SLO and per fault, so CI shows a breached
//! target as a failed test with its target and what was observed.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::Summary;

fn secs(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1} s"))
}

pub fn render(summary: &Summary) -> String {
    let mut report = Report::new(format!("gameday {}", summary.scenario));
    let mut slos = TestSuite::new("slo");
    for s in &summary.slos {
        let observed = s.observed.clone().unwrap_or_else(|| "not measured".into());
        let status = match s.pass {
            Some(true) => TestCaseStatus::success(),
            Some(false) => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(format!("target {}, observed {observed}", s.target))
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
            "targets: {}; injected at {}; first error at {}; failed requests {}; recovery {}",
            f.targets.join(", "),
            secs(f.injected_at_s),
            secs(f.first_error_at_s),
            f.errors.map_or("not measured".into(), |e| e.to_string()),
            secs(f.recovery_s)
        ));
        faults.add_test_case(case);
    }
    report.add_test_suite(faults);
    report.to_string().unwrap_or_default()
}
