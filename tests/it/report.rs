//! summary.json and junit.xml from a recorded run directory.

use std::{collections::BTreeMap, path::Path, time::SystemTime};

use gameday::{
    record::{Second, StepSecond, TimelineWriter, read_timeline},
    report::{LoadGenerator, Orders, RunInfo, html, junit, summarize, summary::LoadEnd},
    scenario::Scenario,
    slo::Verdict,
};
use serde_json::Value;

const SCENARIO: &str = "name: synthetic
load:
  stages:
    - { users: 10, over: 2s }
    - { users: 10, over: 6s }
    - { users: 0, over: 2s }
slo:
  availability: 99%
  latency: { p95: 100ms }
  recovery: 30s
";

/// Ten seconds: the ramps (0-1, 8-9) are slow and failing, the measured
/// window (2-7) has 100 requests a second at 10..19 ms, one failure a second.
fn recorded_run(dir: &Path) {
    let steps = vec!["home".to_string(), "checkout".to_string()];
    let mut seconds: BTreeMap<u64, Second> = BTreeMap::new();
    for t in 0..10u64 {
        let ramp = !(2..8).contains(&t);
        let mut second = Second::new();
        for (step, n) in [(0usize, 80u64), (1, 20)] {
            let mut s = StepSecond::default();
            for i in 0..n {
                let micros = if ramp {
                    900_000
                } else {
                    10_000 + (i % 10) * 1_000
                };
                s.raw.record(micros).unwrap();
                s.corrected.record_correct(micros, 50_000).unwrap();
                s.requests += 1;
            }
            let failures = if ramp {
                n / 2
            } else if step == 0 {
                1
            } else {
                0
            };
            s.failed = failures;
            if failures > 0 {
                s.errors.insert("status 503".into(), failures);
            }
            second.insert(step, s);
        }
        seconds.insert(t, second);
    }
    let mut writer = TimelineWriter::create(dir, &steps, SystemTime::now()).unwrap();
    writer.append(&seconds, |_| Some(10)).unwrap();
}

fn summary_json(dir: &Path, scenario: &Scenario) -> Value {
    let timeline = read_timeline(dir).unwrap();
    let info = RunInfo {
        started_at: "2026-11-22T10:00:00Z".into(),
        duration_s: 10.0,
        ..RunInfo::default()
    };
    serde_json::to_value(summarize(scenario, &timeline, info)).unwrap()
}

#[test]
fn the_summary_is_computed_over_the_measured_window_and_matches_the_committed_schema() {
    let dir = tempfile::tempdir().unwrap();
    recorded_run(dir.path());
    let scenario = Scenario::parse(Path::new("synthetic.yaml"), SCENARIO).unwrap();
    let summary = summary_json(dir.path(), &scenario);

    assert_eq!(summary["measured_window_s"], serde_json::json!([2, 8]));
    assert_eq!(summary["requests"]["total"], 600);
    assert_eq!(summary["requests"]["failed"], 6);
    assert_eq!(summary["availability"], 0.99);
    assert!(summary["uptime"].is_null(), "not measured is null, never 0");
    let p95 = summary["latency_ms"]["p95"].as_f64().unwrap();
    assert!((18.0..=20.0).contains(&p95), "p95 {p95}");
    assert!(summary["latency_corrected_ms"]["p95"].as_f64().unwrap() >= p95);
    let steps = summary["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    let home = steps.iter().find(|s| s["step"] == "home").unwrap();
    assert_eq!(home["count"], 480);
    assert_eq!(home["errors"]["status 503"], 6);
    // RunInfo::default() is a run directory without run.json (a crash):
    // nothing about it can pass.
    assert_eq!(summary["verdict"], "inconclusive");
    assert_eq!(summary["exit_code"], 5);
    let reasons: Vec<&str> = summary["inconclusive"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("recovery target"))
            && reasons.iter().any(|r| r.contains("did not finish")),
        "{reasons:?}"
    );
    let recovery = summary["slos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "recovery")
        .unwrap();
    assert!(
        recovery["observed"].is_null() && recovery["pass"].is_null(),
        "{recovery}"
    );

    let validator = crate::support::summary_schema();
    let problems: Vec<String> = validator
        .iter_errors(&summary)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
    // The schema is not vacuous: a 0 where null belongs, or a bad verdict, is caught.
    let mut broken = summary.clone();
    broken["verdict"] = "great".into();
    broken["availability"] = 1.5.into();
    assert_eq!(validator.iter_errors(&broken).count(), 2);
}

/// What a run that got to its end records.
fn finished_run() -> RunInfo {
    RunInfo {
        started_at: "2026-11-22T10:00:00Z".into(),
        duration_s: 10.0,
        finished: true,
        load_ended: Some(LoadEnd::Plan),
        orders: Some(Orders {
            accepted: Some(10),
            dispatched: Some(10),
            lost: Some(0),
            duplicated: Some(0),
        }),
        load_generator: LoadGenerator {
            cpu_percent_max: Some(20.0),
            saturated: Some(false),
            lag_ms_p99: Some(2.0),
            shards: Vec::new(),
        },
        ..RunInfo::default()
    }
}

#[test]
fn a_run_passes_only_when_everything_it_asked_for_was_measured_and_met() {
    let dir = tempfile::tempdir().unwrap();
    recorded_run(dir.path());
    let timeline = read_timeline(dir.path()).unwrap();
    let measured = SCENARIO.replace("  recovery: 30s\n", "");
    let scenario = Scenario::parse(Path::new("synthetic.yaml"), &measured).unwrap();
    let s = summarize(&scenario, &timeline, finished_run());
    assert_eq!(
        (s.verdict, s.exit_code),
        (Verdict::Pass, 0),
        "{:?}",
        s.inconclusive
    );
    assert!(s.inconclusive.is_empty());
    let xml = junit::render(&s);
    assert!(xml.contains("testcase name=\"verdict\""), "{xml}");

    // The same figures with a saturated load generator: inconclusive, and
    // the JUnit verdict case fails with the reason.
    let mut saturated = finished_run();
    saturated.load_generator.saturated = Some(true);
    saturated.load_generator.lag_ms_p99 = Some(220.0);
    let s = summarize(&scenario, &timeline, saturated);
    assert_eq!((s.verdict, s.exit_code), (Verdict::Inconclusive, 5));
    assert!(
        s.inconclusive[0].contains("saturated (timer lag p99 220.0ms"),
        "{:?}",
        s.inconclusive
    );
    let xml = junit::render(&s);
    assert!(
        xml.contains("inconclusive: the load generator was saturated"),
        "{xml}"
    );

    // Orders not audited (no admin token): inconclusive, with the reason.
    let mut unaudited = finished_run();
    unaudited.orders = Some(Orders {
        accepted: Some(10),
        dispatched: None,
        lost: None,
        duplicated: None,
    });
    unaudited.not_audited = Some("no admin token for the shop".into());
    let s = summarize(&scenario, &timeline, unaudited);
    assert_eq!(s.verdict, Verdict::Inconclusive);
    assert_eq!(
        s.inconclusive,
        ["the orders were not audited: no admin token for the shop"]
    );

    // Interrupted by Ctrl-C: inconclusive.
    let mut interrupted = finished_run();
    interrupted.interrupted = true;
    interrupted.load_ended = Some(LoadEnd::Interrupted);
    let s = summarize(&scenario, &timeline, interrupted);
    assert_eq!(s.verdict, Verdict::Inconclusive);
    assert!(s.inconclusive[0].contains("interrupted"));
}

#[test]
fn an_impossible_slo_fails_the_run_with_exit_code_3_and_junit_shows_target_and_observed() {
    let dir = tempfile::tempdir().unwrap();
    recorded_run(dir.path());
    let impossible = SCENARIO.replace("p95: 100ms", "p95: 1ms");
    let scenario = Scenario::parse(Path::new("impossible.yaml"), &impossible).unwrap();
    let timeline = read_timeline(dir.path()).unwrap();
    let summary = summarize(
        &scenario,
        &timeline,
        RunInfo {
            started_at: "2026-11-22T10:00:00Z".into(),
            ..RunInfo::default()
        },
    );
    assert_eq!(summary.verdict, Verdict::Fail);
    assert_eq!(summary.exit_code, 3);
    let xml = junit::render(&summary);
    assert!(xml.contains("testcase name=\"latency p95\""), "{xml}");
    assert!(xml.contains("target &lt;= 1.0ms, observed 19"), "{xml}");
    assert!(xml.contains("testcase name=\"availability\""));
    assert!(
        xml.contains("target &gt;= 30000.0ms") || xml.contains("not measured"),
        "{xml}"
    );
}

#[test]
fn a_failed_run_on_a_saturated_generator_says_so_beside_its_verdict_and_marks_its_latencies() {
    let dir = tempfile::tempdir().unwrap();
    recorded_run(dir.path());
    let impossible = SCENARIO.replace("p95: 100ms", "p95: 1ms");
    let scenario = Scenario::parse(Path::new("impossible.yaml"), &impossible).unwrap();
    let timeline = read_timeline(dir.path()).unwrap();
    let mut info = finished_run();
    info.load_generator.saturated = Some(true);
    info.load_generator.lag_ms_p99 = Some(61.6);
    let s = summarize(&scenario, &timeline, info);
    // The breach decides the verdict; the saturation is stated beside it.
    assert_eq!((s.verdict, s.inconclusive.len()), (Verdict::Fail, 0));
    assert_eq!(s.caveats.len(), 1, "{:?}", s.caveats);
    assert!(s.caveats[0].contains("saturated (timer lag p99 61.6ms"));
    let marked: Vec<(&str, bool)> = s
        .slos
        .iter()
        .map(|r| (r.name.as_str(), r.untrustworthy))
        .collect();
    assert!(marked.contains(&("latency p95", true)), "{marked:?}");
    assert!(marked.contains(&("availability", false)), "{marked:?}");
    let xml = junit::render(&s);
    assert!(
        xml.contains("failed: at least one target was missed; the load generator was saturated"),
        "{xml}"
    );
    assert!(
        xml.contains("(not trustworthy: the load generator was saturated)"),
        "{xml}"
    );
    let html = html::render(&html::Input {
        summary: &s,
        scenario: &scenario,
        plan: "",
        timeline: &timeline,
    });
    let header = &html[..html.find("<main>").unwrap()];
    assert!(header.contains("FAILED"), "{header}");
    assert!(
        header.contains("the load generator was saturated"),
        "{header}"
    );
    // The same figures unsaturated: no caveat, no mark.
    let s = summarize(&scenario, &timeline, finished_run());
    assert!(s.caveats.is_empty() && s.slos.iter().all(|r| !r.untrustworthy));
}

/// The report's structure, without the bulk of its SVG: headings, tables and
/// their header rows, each figure's id and caption, and the words drawn in
/// each chart (titles, axis names, legends, fault and scale-out labels; tick
/// numbers left out).
fn outline(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i..];
        let end = rest.find('>').map_or(rest.len(), |e| e + 1);
        let tag = &rest[..end];
        let text_after = || {
            let after = &rest[end..];
            after[..after.find('<').unwrap_or(after.len())]
                .trim()
                .to_string()
        };
        if tag.starts_with("<h2") || tag.starts_with("<div class=\"verdict") {
            out.push_str(&format!("{tag} {}\n", text_after()));
        } else if tag.starts_with("<th>") {
            out.push_str(&format!("  th {}\n", text_after()));
        } else if tag.starts_with("<figure") {
            let close = rest.find("</figure>").unwrap();
            let svg = &rest[..close];
            let words: Vec<String> = svg
                .split("<text")
                .skip(1)
                .filter_map(|t| {
                    let t = &t[t.find('>')? + 1..t.find("</text>")?];
                    let t = t.trim();
                    (!t.is_empty() && t.parse::<f64>().is_err()).then(|| t.to_string())
                })
                .collect();
            out.push_str(&format!(
                "{tag}\n  lines {} | words {}\n",
                svg.matches("<polyline").count(),
                words.join(" | ")
            ));
            rest = &rest[close..];
            continue;
        }
        rest = &rest[end..];
    }
    out
}

#[test]
fn the_html_report_has_the_verdict_first_then_charts_on_one_time_axis_with_faults_marked() {
    use gameday::events::Event;
    let dir = tempfile::tempdir().unwrap();
    recorded_run(dir.path());
    let scenario = Scenario::parse(Path::new("synthetic.yaml"), SCENARIO).unwrap();
    let mut timeline = read_timeline(dir.path()).unwrap();
    // Events as they read back from events.jsonl.
    let event = |t_ms: u64, kind: &str, fields: Value| -> Event {
        serde_json::from_value(serde_json::json!({"t_ms": t_ms, "kind": kind, "fields": fields}))
            .unwrap()
    };
    let events = vec![
        event(
            3_000,
            "fault.injected",
            serde_json::json!({"id": "f1", "name": "kill-pod cart", "kind": "kill-pod", "targets": ["cart-1"]}),
        ),
        event(
            5_500,
            "autoscale.decision",
            serde_json::json!({"service": "catalogue", "from": 2, "to": 3}),
        ),
        event(6_000, "fault.ended", serde_json::json!({"id": "f1"})),
    ];
    timeline.events = events;
    let summary = summarize(&scenario, &timeline, finished_run());
    assert_eq!(summary.verdict, Verdict::Pass, "{:?}", summary.inconclusive);
    let input = html::Input {
        summary: &summary,
        scenario: &scenario,
        plan: "plan text",
        timeline: &timeline,
    };
    let page = html::render(&input);
    crate::support::assert_self_contained(&page);
    assert_eq!(page, html::render(&input), "rendering is deterministic");
    let outline = outline(&page);
    // Every time chart carries the fault band and the scale-out marker.
    assert_eq!(outline.matches("kill-pod cart").count(), 6, "{outline}");
    assert_eq!(outline.matches("catalogue 2→3").count(), 6, "{outline}");
    assert!(outline.contains("id=\"verdict\"> PASSED"), "{outline}");
    insta::assert_snapshot!(outline);
}

#[test]
fn scale_outs_during_the_ramp_are_judged_and_one_that_never_served_breaches() {
    use gameday::events::Event;
    let dir = tempfile::tempdir().unwrap();
    recorded_run(dir.path());
    let with_scale_out = SCENARIO.replace("  recovery: 30s\n", "  scale-out: 2s\n");
    let scenario = Scenario::parse(Path::new("synthetic.yaml"), &with_scale_out).unwrap();
    let mut timeline = read_timeline(dir.path()).unwrap();
    let event = |t_ms: u64, kind: &str, fields: Value| -> Event {
        serde_json::from_value(serde_json::json!({"t_ms": t_ms, "kind": kind, "fields": fields}))
            .unwrap()
    };
    // Second 0-1 is the ramp, outside the measured window (2-7).
    let mut events = vec![
        event(
            200,
            "autoscale.signal",
            serde_json::json!({"service": "cart"}),
        ),
        event(
            300,
            "autoscale.decision",
            serde_json::json!({"service": "cart", "from": 2, "to": 3}),
        ),
        event(
            400,
            "replica.started",
            serde_json::json!({"service": "cart", "replica": "cart-3", "scale_out": true}),
        ),
        event(
            1_200,
            "replica.serving",
            serde_json::json!({"service": "cart", "replica": "cart-3"}),
        ),
    ];
    timeline.events = events.clone();
    let s = summarize(&scenario, &timeline, finished_run());
    let slo = s.slos.iter().find(|x| x.name == "scale-out").unwrap();
    assert_eq!(
        (slo.observed.as_deref(), slo.pass),
        (Some("1.00s"), Some(true))
    );
    assert_eq!(s.verdict, Verdict::Pass, "{:?}", s.inconclusive);

    // A second one in the ramp whose replica never serves: a breach.
    events.push(event(
        1_500,
        "autoscale.decision",
        serde_json::json!({"service": "cart", "from": 3, "to": 4}),
    ));
    events.push(event(
        1_600,
        "replica.started",
        serde_json::json!({"service": "cart", "replica": "cart-4", "scale_out": true}),
    ));
    timeline.events = events;
    let s = summarize(&scenario, &timeline, finished_run());
    let slo = s.slos.iter().find(|x| x.name == "scale-out").unwrap();
    assert_eq!(
        (slo.observed.as_deref(), slo.pass),
        (Some("never"), Some(false))
    );
    assert_eq!(s.verdict, Verdict::Fail);
    assert_eq!(
        serde_json::to_value(&s.scale_outs[1]).unwrap()["outcome"],
        "never-served"
    );
}
