//! Distributed load on this machine (`load.generators: { platform: local }`):
//! shard processes run the shoppers, the coordinator merges their seconds.
//! The merged `latency.hlog` is read back by an independent HdrHistogram
//! reader (Python's `hdrh`, from scripts/venv.sh), a shard killed mid-run
//! makes the verdict inconclusive naming it, and nothing is left running.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::support::{gameday_in as gameday, processes_of};

fn scenario(dir: &Path, name: &str, shards: u32, users: u32) -> String {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "name: {name}
target:
  instances: 2
  replicas: {{ web: 1, user: 1, catalogue: 2, cart: 2, orders: 1, shipping: 1 }}
load:
  stages:
    - {{ users: {users}, over: 3s }}
    - {{ users: {users}, over: 27s }}
    - {{ users: 0, over: 2s }}
  think-time: 200ms..600ms
  journeys: {{ browse: 60, buy: 30, abandon: 10 }}
  generators: {{ shards: {shards}, platform: local }}
faults:
  - name: lose a catalogue pod
    at: 12s
    kill-pod: {{ service: catalogue, count: 1 }}
slo:
  availability: 90%
  lost-orders: 0
report:
  dir: reports
"
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

fn summary(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn venv_python() -> PathBuf {
    std::env::var_os("GAMEDAY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/gameday-venv"))
        .join("bin/python")
}

/// p50, p99 and max (ms) of the `overall` histograms of seconds
/// [from, to) in a run's latency.hlog, as Python's hdrh reads them.
fn hdrh_percentiles(run: &Path, from: u64, to: u64) -> [f64; 3] {
    let script = r#"
import json, sys
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader
path, lo, hi = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
total = HdrHistogram(1, 300_000_000, 3)
reader = HistogramLogReader(path, total)
while True:
    h = reader.get_next_interval_histogram()
    if h is None:
        break
    t = h.get_start_time_stamp() / 1000.0 - reader.get_start_time_sec()
    if h.get_tag() == "overall" and lo <= round(t) < hi:
        total.add(h)
print(json.dumps([total.get_value_at_percentile(50) / 1000.0,
                  total.get_value_at_percentile(99) / 1000.0,
                  total.get_max_value() / 1000.0, total.get_total_count()]))
"#;
    let out = Command::new(venv_python())
        .args(["-c", script])
        .arg(run.join("latency.hlog"))
        .arg(from.to_string())
        .arg(to.to_string())
        .output()
        .expect("the venv's python runs (scripts/venv.sh installs hdrhistogram)");
    assert!(
        out.status.success(),
        "hdrh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<f64> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v[3] > 0.0, "hdrh read no request in [{from}, {to})");
    [v[0], v[1], v[2]]
}

/// Within the histogram's precision (3 significant digits) and the two
/// libraries' rounding of a percentile's rank.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 0.02 * a.max(b) + 0.01
}

pub fn timeline_requests(run: &Path) -> u64 {
    std::fs::read_to_string(run.join("timeline.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|row| {
            row["steps"]
                .as_object()
                .map(|steps| {
                    steps
                        .values()
                        .map(|s| s["requests"].as_u64().unwrap())
                        .sum::<u64>()
                })
                .unwrap_or(0)
        })
        .sum()
}

/// Python's hdrh, reading run's merged latency.hlog over the measured
/// window, gives the summary's p50, p99 and max.
pub fn assert_hlog_gives_the_summary_s_percentiles(run: &Path, s: &Value) {
    let window = &s["measured_window_s"];
    let [p50, p99, max] = hdrh_percentiles(
        run,
        window[0].as_u64().unwrap(),
        window[1].as_u64().unwrap(),
    );
    let l = &s["latency_ms"];
    for (name, ours, theirs) in [
        ("p50", &l["p50"], p50),
        ("p99", &l["p99"], p99),
        ("max", &l["max"], max),
    ] {
        let ours = ours.as_f64().unwrap();
        assert!(
            close(ours, theirs),
            "{name}: summary {ours} ms, hdrh {theirs} ms"
        );
    }
}

#[test]
fn three_shards_merge_into_one_exact_record_and_one_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(dir.path(), "shards", 3, 45);
    let run = dir.path().join("run");
    let out = gameday(
        dir.path(),
        &["run", &file, "--output", run.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let s = summary(&run);
    let shards = s["load_generator"]["shards"]
        .as_array()
        .expect("a line per shard");
    assert_eq!(shards.len(), 3, "{stderr}");
    for shard in shards {
        assert!(shard["lost"].is_null(), "{shard}; {stderr}");
        assert!(shard["requests"].as_u64().unwrap() > 50, "{shard}");
        assert!(shard["saturated"].is_boolean(), "{shard}");
    }
    // The merged record has every shard's requests, no more, no fewer.
    let sent: u64 = shards.iter().map(|s| s["requests"].as_u64().unwrap()).sum();
    assert_eq!(timeline_requests(&run), sent);
    // An independent reader of the merged latency.hlog gives the summary's
    // figures over the measured window.
    assert_hlog_gives_the_summary_s_percentiles(&run, &s);
    assert!(
        s["orders"]["accepted"].as_u64().unwrap() > 0,
        "{}",
        s["orders"]
    );
    assert_eq!(s["orders"]["lost"], 0, "{}", s["orders"]);
    assert!(
        stdout.contains("shard 2"),
        "the console has a line per shard: {stdout}"
    );
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        html.contains("id=\"shards\""),
        "the report has the shards' table"
    );
    crate::support::assert_exit(out.status.code(), &s, &[0, 3], &stderr);
    assert!(
        processes_of(dir.path()).is_empty(),
        "{:?}",
        processes_of(dir.path())
    );
}

/// The pid of shard `index` of the run writing to `run`, once it exists.
fn shard_pid(run: &Path, index: u32) -> Option<u32> {
    let needle = format!("shard\0--index\0{index}\0--run-dir\0{}", run.display());
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmd)
            .contains(&needle)
            .then_some(pid)
    })
}

#[test]
fn a_shard_killed_mid_run_makes_the_verdict_inconclusive_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(dir.path(), "lost-shard", 2, 20);
    let run = dir.path().join("run");
    let child = Command::new(env!("CARGO_BIN_EXE_gameday"))
        .args(["run", &file, "--output", run.to_str().unwrap()])
        .current_dir(dir.path())
        .env("GAMEDAY_STATE_DIR", dir.path().join("state"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the load has run a few seconds, then kill shard 1.
    let deadline = Instant::now() + Duration::from_secs(180);
    let killed = loop {
        assert!(Instant::now() < deadline, "the load never started");
        let seconds = std::fs::read_to_string(run.join("timeline.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if seconds >= 8
            && let Some(pid) = shard_pid(&run, 1)
        {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
            break pid;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let s = summary(&run);
    assert_eq!(s["verdict"], "inconclusive", "{stderr}");
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    let reasons = s["inconclusive"].to_string();
    assert!(
        reasons.contains("shard 1 was lost") && reasons.contains("signal 9"),
        "pid {killed}: {reasons}"
    );
    let shards = s["load_generator"]["shards"].as_array().unwrap();
    assert!(
        shards[1]["lost"].is_string() && shards[0]["lost"].is_null(),
        "{shards:?}"
    );
    // The other shard ran its plan to the end.
    assert!(s["requests"]["total"].as_u64().unwrap() > 0);
    assert!(
        processes_of(dir.path()).is_empty(),
        "{:?}",
        processes_of(dir.path())
    );
}
