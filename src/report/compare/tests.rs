use serde_json::json;

use super::*;

/// A summary as `summary.json` holds it, with the figures a test varies.
fn summary(p99: Option<f64>, availability: f64, recovery: Option<f64>) -> Summary {
    serde_json::from_value(json!({
        "scenario": "nightly", "verdict": "pass", "exit_code": 0, "inconclusive": [],
        "started_at": "2026-11-22T10:00:00Z", "duration_s": 65.0, "load_started_s": 7,
        "measured_window_s": [22, 67],
        "requests": {"total": 1000, "failed": 1, "rps_mean": 22.2},
        "availability": availability, "uptime": 1.0,
        "latency_ms": {"p50": 3.0, "p90": 8.0, "p95": 10.0, "p99": p99, "p99_9": 60.0, "max": 90.0},
        "latency_corrected_ms": {"p50": 3.0, "p90": 8.0, "p95": 10.0, "p99": p99, "p99_9": 60.0, "max": 90.0},
        "slos": [],
        "faults": [{"id": "f1", "name": "lose a cart pod", "kind": "kill-pod", "targets": ["cart-1"],
                    "injected_at_s": 27.0, "recovered_at_s": null, "recovery_s": recovery, "errors": 0}],
        "scale_outs": [],
        "orders": {"accepted": 100, "dispatched": 100, "lost": 0, "duplicated": 0},
        "load_generator": {"cpu_percent_max": 20.0, "saturated": false},
        "steps": [], "aborted_by": null, "faults_not_injected": []
    }))
    .unwrap()
}

fn write(dir: &Path, s: &Summary) {
    std::fs::write(dir.join("summary.json"), serde_json::to_string(s).unwrap()).unwrap();
}

#[test]
fn a_slower_run_regresses_beyond_its_p99_limit_and_says_from_what_to_what() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write(a.path(), &summary(Some(40.0), 0.9999, Some(2.0)));
    write(b.path(), &summary(Some(95.0), 0.9999, Some(2.0)));
    let t = Thresholds {
        max_p99_increase: Some(0.2),
        ..Thresholds::default()
    };
    let c = compare(a.path(), b.path(), &t).unwrap();
    assert!(c.regressed);
    assert_eq!(c.checks[0].observed, "40.0ms -> 95.0ms");
    let p99 = c.rows.iter().find(|r| r.figure == "p99").unwrap();
    assert!(p99.worse());
    assert_eq!(p99.show_change(), "+55.0ms (+138%)");
    assert!(
        c.text().contains("REGRESSED p99: 40.0ms -> 95.0ms"),
        "{}",
        c.text()
    );
    assert!(
        c.markdown()
            .contains("| latency | p99 | 40.0ms | 95.0ms | +55.0ms (+138%) ⚠ |")
    );
    // The same run against itself does not regress.
    let same = compare(a.path(), a.path(), &t).unwrap();
    assert!(!same.regressed);
}

#[test]
fn availability_drop_and_recovery_limits_are_checked_and_missing_figures_fail_them() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write(a.path(), &summary(Some(40.0), 0.9999, Some(2.0)));
    write(b.path(), &summary(Some(40.0), 0.9990, Some(2.5)));
    let t = Thresholds {
        max_availability_drop: Some(0.0001),
        max_recovery_increase: Some(Limit::Absolute(1.0)),
        ..Thresholds::default()
    };
    let c = compare(a.path(), b.path(), &t).unwrap();
    let by = |n: &str| c.checks.iter().find(|k| k.name.starts_with(n)).unwrap();
    assert!(
        !by("availability").pass,
        "0.09 points down is more than 0.01"
    );
    assert!(by("recovery").pass, "0.5 s slower is within 1 s");
    // A recovery RUN did not measure never passes a check.
    write(b.path(), &summary(None, 0.9999, None));
    let t = Thresholds {
        max_p99_increase: Some(1.0),
        max_recovery_increase: Some(Limit::Relative(0.5)),
        ..Thresholds::default()
    };
    let c = compare(a.path(), b.path(), &t).unwrap();
    assert!(c.regressed);
    assert!(c.checks.iter().all(|k| !k.pass), "{:?}", c.checks);
}

#[test]
fn a_directory_without_a_summary_or_of_another_scenario_is_incompatible() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write(a.path(), &summary(Some(40.0), 0.9999, Some(2.0)));
    let e = compare(a.path(), b.path(), &Thresholds::default()).unwrap_err();
    assert!(e.0.contains("summary.json"), "{e}");
    let mut other = summary(Some(40.0), 0.9999, Some(2.0));
    other.scenario = "smoke".into();
    write(b.path(), &other);
    let e = compare(a.path(), b.path(), &Thresholds::default()).unwrap_err();
    assert!(e.0.contains("different scenarios"), "{e}");
}

#[test]
fn compare_html_is_self_contained_and_leads_with_the_outcome() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write(a.path(), &summary(Some(40.0), 0.9999, Some(2.0)));
    write(b.path(), &summary(Some(95.0), 0.9999, Some(2.0)));
    let c = compare(
        a.path(),
        b.path(),
        &Thresholds {
            max_p99_increase: Some(0.0),
            ..Thresholds::default()
        },
    )
    .unwrap();
    let page = render_html(&c);
    assert!(page.contains("id=\"verdict\">REGRESSED"));
    for forbidden in ["<script", "src=", "url("] {
        assert!(!page.contains(forbidden), "{forbidden}");
    }
    assert!(
        page.contains("timelines could not be read"),
        "no timeline, said so"
    );
}
