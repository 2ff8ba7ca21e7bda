//! `gameday run` end to end on the local platform: real servers, real
//! HAProxy, the shop's replicas and goose shoppers, for about 15 seconds.

use std::path::Path;

use serde_json::Value;

use crate::support::gameday_in as gameday;

fn scenario(dir: &Path, name: &str, slo: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let text = format!(
        "name: {name}
target:
  instances: 2
  replicas: {{ web: 1, user: 1, catalogue: 1, cart: 1, orders: 1, shipping: 1 }}
load:
  stages:
    - {{ users: 20, over: 3s }}
    - {{ users: 20, over: 8s }}
    - {{ users: 0, over: 2s }}
  think-time: 100ms..300ms
  journeys: {{ browse: 50, buy: 40, abandon: 10 }}
slo:
{slo}
report:
  dir: reports
"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn run_dir(dir: &Path, name: &str) -> std::path::PathBuf {
    std::fs::read_dir(dir.join("reports"))
        .unwrap_or_else(|e| panic!("{}/reports: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(name))
        .expect("a run directory")
}

#[test]
fn a_short_run_passes_writes_every_report_and_report_reproduces_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(
        dir.path(),
        "short",
        "  availability: 99%\n  latency: { p95: 2s }\n  lost-orders: 0",
    );
    let out = gameday(dir.path(), &["run", file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let run = run_dir(dir.path(), "short");
    assert!(
        stdout.contains(&format!("Report: {}", run.join("report.html").display())),
        "{stdout}"
    );
    for file in [
        "report.html",
        "summary.json",
        "junit.xml",
        "timeline.jsonl",
        "latency.hlog",
        "events.jsonl",
        "run.json",
        "scenario.yaml",
    ] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["verdict"], "pass");
    assert!(
        summary["requests"]["total"].as_u64().unwrap() > 200,
        "{}",
        summary["requests"]
    );
    assert!(summary["availability"].as_f64().unwrap() >= 0.99);
    let orders = &summary["orders"];
    assert!(orders["accepted"].as_u64().unwrap() > 0, "{orders}");
    assert_eq!(orders["lost"], 0, "{orders}");
    assert_eq!(orders["duplicated"], 0, "{orders}");
    let steps: Vec<&str> = summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    for step in ["home", "login", "add-to-cart", "checkout", "order-status"] {
        assert!(steps.contains(&step), "no {step} in {steps:?}");
    }
    let validator = crate::support::summary_schema();
    assert!(
        validator.is_valid(&summary),
        "{:?}",
        validator
            .iter_errors(&summary)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("id=\"verdict\"") && html.contains("PASSED"));
    crate::support::assert_self_contained(&html);
    for chart in [
        "chart-users",
        "chart-rps",
        "chart-latency",
        "chart-availability",
    ] {
        assert!(html.contains(&format!("id=\"{chart}\"")), "no {chart}");
    }
    assert!(html.matches("<svg").count() >= 6, "charts are inline SVG");

    let before = std::fs::read_to_string(run.join("summary.json")).unwrap();
    std::fs::remove_file(run.join("summary.json")).unwrap();
    let out = gameday(dir.path(), &["report", run.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(run.join("summary.json")).unwrap(),
        before
    );
    // Nothing of the stack is left.
    let status = gameday(dir.path(), &["status"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("No stack is up"));
}

#[test]
fn a_run_with_an_impossible_slo_exits_3_and_junit_shows_the_failure() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(dir.path(), "impossible", "  latency: { p50: 1us }");
    let out = gameday(dir.path(), &["run", file.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let junit =
        std::fs::read_to_string(run_dir(dir.path(), "impossible").join("junit.xml")).unwrap();
    assert!(junit.contains("testcase name=\"latency p50\""), "{junit}");
    assert!(
        junit.contains("<failure") && junit.contains("target &lt;= 0.0ms, observed"),
        "{junit}"
    );
}

#[test]
fn running_an_invalid_scenario_exits_2_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "name: bad\nload:\n  stages:\n    - { users: 5, over: 1s }\nslo:\n  availability: 101%\n",
    )
    .unwrap();
    let out = gameday(dir.path(), &["run", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.yaml:6:3: slo.availability"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
