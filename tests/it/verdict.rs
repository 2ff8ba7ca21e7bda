//! Verdicts that never pass on missing evidence, and `gameday compare`, on
//! run directories made by real short runs of the local platform.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::support::{gameday_in as gameday, processes_of};

fn scenario(dir: &Path, file: &str, faults: &str) -> PathBuf {
    let path = dir.join(format!("{file}.yaml"));
    let text = format!(
        "name: cmp
target:
  instances: 2
  boot-delay: 2s
  replicas: {{ web: 1, user: 1, catalogue: 2, cart: 2, orders: 1, shipping: 1 }}
load:
  stages:
    - {{ users: 20, over: 3s }}
    - {{ users: 20, over: 12s }}
    - {{ users: 0, over: 2s }}
  think-time: 100ms..300ms
  journeys: {{ browse: 50, buy: 40, abandon: 10 }}
{faults}slo:
  availability: 90%
  lost-orders: 0
report:
  dir: reports
"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn summary(run: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_run_killed_part_way_reports_inconclusive_with_exit_5_and_leaves_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(dir.path(), "killed", "");
    let run = dir.path().join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gameday"))
        .args([
            "run",
            file.to_str().unwrap(),
            "--output",
            run.to_str().unwrap(),
        ])
        .current_dir(dir.path())
        .env("GAMEDAY_STATE_DIR", dir.path().join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the shoppers have shopped for a few seconds.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let seconds = std::fs::read_to_string(run.join("timeline.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if seconds >= 5 {
            break;
        }
        assert!(Instant::now() < deadline, "the run never got going");
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !run.join("run.json").exists(),
        "a killed run writes no run.json"
    );

    let out = gameday(dir.path(), &["report", run.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.lines().next().is_some_and(|l| l
            .starts_with("Verdict: INCONCLUSIVE (exit code 5) because ")
            && l.contains("did not finish")),
        "{said}"
    );
    let s = summary(&run);
    assert_eq!(s["verdict"], "inconclusive");
    assert!(
        s["inconclusive"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("load stopped early")),
        "{}",
        s["inconclusive"]
    );
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("class=\"verdict inconclusive\""));
    let junit = std::fs::read_to_string(run.join("junit.xml")).unwrap();
    assert!(junit.contains("testcase name=\"verdict\""), "{junit}");
    assert!(junit.contains("inconclusive: "), "{junit}");

    // The killed gameday took its whole stack with it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !processes_of(&run).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(processes_of(&run).is_empty(), "{:?}", processes_of(&run));
}

#[test]
fn compare_passes_a_run_against_itself_and_catches_the_slower_of_two_runs() {
    let dir = tempfile::tempdir().unwrap();
    let calm = scenario(dir.path(), "calm", "");
    let rough = scenario(
        dir.path(),
        "rough",
        "faults:\n  - at: 4s\n    db-failover: {}\n  - at: 8s\n    terminate-instance: { count: 1 }\n",
    );
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for (file, out) in [(&calm, &a), (&rough, &b)] {
        let run = gameday(
            dir.path(),
            &[
                "run",
                file.to_str().unwrap(),
                "--output",
                out.to_str().unwrap(),
            ],
        );
        assert!(
            matches!(run.status.code(), Some(0 | 3 | 5)),
            "{}",
            text(&run)
        );
    }
    let same = gameday(
        dir.path(),
        &[
            "compare",
            a.to_str().unwrap(),
            a.to_str().unwrap(),
            "--max-p99-increase",
            "0%",
        ],
    );
    assert_eq!(same.status.code(), Some(0), "{}", text(&same));
    assert!(a.join("compare.html").is_file());

    let p99 = |run: &Path| summary(run)["latency_ms"]["p99"].as_f64().unwrap();
    let (fast, slow) = if p99(&a) <= p99(&b) {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert!(
        p99(slow) > p99(fast),
        "the two runs had the same p99: nothing to tell apart"
    );
    let cmp = gameday(
        dir.path(),
        &[
            "compare",
            fast.to_str().unwrap(),
            slow.to_str().unwrap(),
            "--max-p99-increase",
            "0%",
        ],
    );
    assert_eq!(cmp.status.code(), Some(3), "{}", text(&cmp));
    assert!(String::from_utf8_lossy(&cmp.stdout).contains("REGRESSED p99"));
    let md = gameday(
        dir.path(),
        &[
            "compare",
            fast.to_str().unwrap(),
            slow.to_str().unwrap(),
            "--markdown",
        ],
    );
    assert_eq!(md.status.code(), Some(0), "no threshold, no regression");
    assert!(String::from_utf8_lossy(&md.stdout).contains("| latency | p99 |"));
    let html = std::fs::read_to_string(slow.join("compare.html")).unwrap();
    assert!(html.contains("id=\"chart-p99\""));
    assert!(!html.contains("timelines could not be read"));

    let missing = gameday(
        dir.path(),
        &[
            "compare",
            fast.to_str().unwrap(),
            dir.path().to_str().unwrap(),
        ],
    );
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
}
