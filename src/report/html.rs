//! report.html: one self-contained file (inline CSS and SVG charts, no
//! script, nothing from the network), verdict first, in words a stakeholder
//! understands. Every time chart shares the run's clock as its x axis, with
//! fault windows shaded and scale-outs marked (see `charts`).

use std::fmt::Write as _;

use super::{
    FaultSummary, Summary,
    charts::{
        self, BLUE_, Band, GREEN_, GREY_, Marker, Marks, ORANGE_, PURPLE_, RED_, Series, TimeChart,
    },
    tables::{faults_section, steps_table},
};
use crate::{
    events::{Event, EventKind},
    record::{Timeline, timeline::OVERALL},
    scenario::{Percentile, Scenario},
    slo::{Verdict, millis, percent},
};

/// Everything the report is drawn from: the recorded run directory.
pub struct Input<'a> {
    pub summary: &'a Summary,
    pub scenario: &'a Scenario,
    pub plan: &'a str,
    /// The timeline, with the run's events and probes.
    pub timeline: &'a Timeline,
}

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(super) fn ms(v: Option<f64>) -> String {
    v.map(millis).unwrap_or_else(|| "not measured".into())
}

const WIDE: (u32, u32) = (1040, 280);
const SMALL: (u32, u32) = (515, 220);

/// Fault windows and markers: each fault is shaded from its injection to
/// its recovery (or the end of its action, or of the run, whichever is
/// known); upward scaling decisions and a fired stop rule are markers.
pub fn marks(faults: &[FaultSummary], events: &[Event], end_s: f64) -> Marks {
    let mut marks = Marks::default();
    for f in faults {
        let Some(from) = f.injected_at_s else {
            continue;
        };
        let to = match (f.recovered_at_s, f.ended_at_s) {
            (Some(r), Some(a)) => r.max(a),
            (Some(r), None) => r,
            (None, _) => end_s,
        };
        marks.bands.push(Band {
            from_s: from,
            to_s: to.max(from + 0.5),
            label: if f.name.is_empty() {
                f.kind.clone()
            } else {
                f.name.clone()
            },
        });
    }
    for e in events {
        match &e.kind {
            EventKind::ScalingDecision {
                service, from, to, ..
            } if to > from => marks.markers.push(Marker {
                at_s: e.at_s(),
                label: format!("{service} {from}→{to}"),
            }),
            EventKind::StopFired { rule, .. } => marks.markers.push(Marker {
                at_s: e.at_s(),
                label: format!("stopped: {rule}"),
            }),
            _ => {}
        }
    }
    marks
}

fn top(points: &[(f64, f64)], floor: f64) -> f64 {
    points.iter().map(|p| p.1).fold(floor, f64::max) * 1.1
}

/// Per second p50/p95/p99 of a tag, in milliseconds.
fn percentiles_over_time(timeline: &Timeline, tag: &str) -> Vec<Series> {
    let Some(per_second) = timeline.per_second(tag) else {
        return Vec::new();
    };
    [
        (0.50, "p50", GREEN_),
        (0.95, "p95", ORANGE_),
        (0.99, "p99", RED_),
    ]
    .into_iter()
    .map(|(q, name, color)| {
        let points = per_second
            .iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(t, h)| (*t as f64 + 0.5, h.value_at_quantile(q) as f64 / 1000.0))
            .collect();
        Series::new(name, color, points)
    })
    .collect()
}

fn target_line(name: &str, value: f64, x: &std::ops::Range<f64>) -> Series {
    Series {
        name: name.into(),
        color: GREY_,
        dashed: true,
        points: vec![(x.start, value), (x.end, value)],
    }
}

/// A latency chart; the scenario's targets are dashed lines when they fall
/// near the data, and named in the caption when far above it (a line at
/// 1 s would flatten a chart of 10 ms requests).
fn latency_chart(
    title: &str,
    series: Vec<Series>,
    targets: Option<&std::collections::BTreeMap<Percentile, std::time::Duration>>,
    x: &std::ops::Range<f64>,
    marks: &Marks,
    size: (u32, u32),
) -> String {
    let mut series = series;
    let data_top = series
        .iter()
        .map(|s| top(&s.points, 1.0))
        .fold(1.0, f64::max);
    let mut y_top = data_top;
    let mut above = Vec::new();
    for (p, d) in targets.into_iter().flatten() {
        let ms = d.as_secs_f64() * 1000.0;
        if ms <= data_top * 3.0 {
            series.push(target_line(&format!("{} target", p.key()), ms, x));
            y_top = y_top.max(ms * 1.1);
        } else {
            above.push(format!("{} target {} is above", p.key(), millis(ms)));
        }
    }
    let title = if above.is_empty() {
        title.to_string()
    } else {
        format!("{title}; {}", above.join(", "))
    };
    charts::time_chart(
        &TimeChart {
            title: &title,
            y_desc: "milliseconds",
            x: x.clone(),
            y: 0.0..y_top,
            size,
        },
        &series,
        marks,
    )
}

/// Share of requests (measured window) by latency bucket.
fn distribution(timeline: &Timeline, window: std::ops::Range<u64>) -> String {
    const EDGES_MS: [f64; 12] = [
        1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
    ];
    let Some(h) = timeline
        .merged(OVERALL, false, window)
        .filter(|h| !h.is_empty())
    else {
        return "<p class=\"na\">No requests in the measured window.</p>".into();
    };
    let label = |ms: f64| {
        if ms >= 1000.0 {
            format!("{}s", ms / 1000.0)
        } else {
            format!("{ms}")
        }
    };
    let total = h.len() as f64;
    let mut bars = Vec::new();
    let mut below = 0u64;
    for (i, edge) in EDGES_MS.iter().enumerate() {
        let upto = h.count_between(0, (edge * 1000.0) as u64 - 1);
        let name = match i {
            0 => format!("<{} ms", label(*edge)),
            _ => format!("{}-{}", label(EDGES_MS[i - 1]), label(*edge)),
        };
        bars.push((name, 100.0 * (upto - below) as f64 / total));
        below = upto;
    }
    bars.push((
        format!(">{}", label(EDGES_MS[EDGES_MS.len() - 1])),
        100.0 * (h.len() - below) as f64 / total,
    ));
    charts::bar_chart(
        "How long requests took (measured window; buckets in ms)",
        "% of requests",
        &bars,
        WIDE,
    )
}

fn figure(h: &mut String, id: &str, caption: &str, svg: &str) {
    let _ = write!(
        h,
        "<figure id=\"{id}\" aria-label=\"{}\">{svg}</figure>",
        esc(caption)
    );
}

pub fn render(input: &Input<'_>) -> String {
    let s = input.summary;
    let (class, headline) = match s.verdict {
        Verdict::Pass => ("pass", "PASSED: every target that was measured was met"),
        Verdict::Fail => ("fail", "FAILED: at least one target was missed"),
        Verdict::Aborted => ("aborted", "ABORTED: a stop condition ended the run"),
    };
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>gameday: {name}</title><style>\
         body{{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2433}}main{{max-width:1100px;margin:0 auto;padding:24px}}\
         .verdict{{padding:20px 24px;color:#fff;font-size:1.3em}}.pass{{background:#2b8a3e}}.fail{{background:#c92a2a}}.aborted{{background:#e67700}}\
         table{{border-collapse:collapse;width:100%;margin:8px 0 24px}}td,th{{border-bottom:1px solid #e3e8f4;padding:6px 8px;text-align:left}}\
         .ok{{color:#2b8a3e;font-weight:700}}.bad{{color:#c92a2a;font-weight:700}}.na{{color:#868e96}}pre{{background:#f6f7fb;padding:12px;overflow:auto;white-space:pre-wrap}}\
         figure{{margin:0 0 16px}}figure svg{{max-width:100%;height:auto}}.grid{{display:grid;grid-template-columns:repeat(auto-fill,minmax(500px,1fr));gap:8px}}\
         </style></head><body><div class=\"verdict {class}\" id=\"verdict\">{headline}<br><small>scenario {name}, started {start}, {dur:.0} s</small></div><main>",
        name = esc(&s.scenario),
        start = esc(&s.started_at),
        dur = s.duration_s
    );
    if let Some(rule) = &s.aborted_by {
        let _ = write!(
            h,
            "<p class=\"bad\" id=\"aborted\">The run was stopped early because this rule held: {}</p>",
            esc(rule)
        );
    }
    let _ = write!(
        h,
        "<h2 id=\"slos\">Targets</h2><table><tr><th>Target</th><th>Goal</th><th>Observed</th><th>Result</th></tr>"
    );
    for slo in &s.slos {
        let (c, word) = match slo.pass {
            Some(true) => ("ok", "met"),
            Some(false) => ("bad", "missed"),
            None => ("na", "not measured"),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{c}\">{word}</td></tr>",
            esc(&slo.name),
            esc(&slo.target),
            esc(slo.observed.as_deref().unwrap_or("not measured"))
        );
    }
    let _ = write!(h, "</table>");
    if !s.faults_not_injected.is_empty() {
        let _ = write!(
            h,
            "<p class=\"na\">Faults listed but not injected: {}</p>",
            esc(&s.faults_not_injected.join(", "))
        );
    }
    let avail = s
        .availability
        .map(percent)
        .unwrap_or_else(|| "not measured".into());
    let _ = write!(
        h,
        "<h2 id=\"totals\">What shoppers saw</h2><p>{} requests, {} failed; availability {avail}; mean {} requests per second \
         (seconds {} to {} of the run, ramps excluded).</p>",
        s.requests.total,
        s.requests.failed,
        s.requests
            .rps_mean
            .map(|r| format!("{r:.1}"))
            .unwrap_or_else(|| "-".into()),
        s.measured_window_s[0],
        s.measured_window_s[1]
    );
    if let Some(u) = s.uptime {
        let _ = write!(
            h,
            "<p>Uptime seen by the prober (a synthetic shopper reading a product and registering, 10 checks a second): {}.</p>",
            percent(u)
        );
    }
    faults_section(&mut h, input);
    let _ = write!(
        h,
        "<h2 id=\"plan\">Run plan</h2><pre>{}</pre>",
        esc(input.plan)
    );
    // One time axis and one set of fault bands and markers for every chart.
    let x = time_axis(input.timeline);
    let marks = marks(&s.faults, &input.timeline.events, x.end);
    charts_section(&mut h, input, &x, &marks);
    steps_table(&mut h, s);
    let _ = write!(
        h,
        "<h2 id=\"errors\">Errors by kind and step</h2><table><tr><th>Step</th><th>Kind</th><th>Count</th></tr>"
    );
    if s.steps.iter().all(|st| st.errors.is_empty()) {
        let _ = write!(h, "<tr><td colspan=\"3\">No request failed.</td></tr>");
    }
    for st in &s.steps {
        for (kind, n) in &st.errors {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{n}</td></tr>",
                esc(&st.step),
                esc(kind)
            );
        }
    }
    let _ = write!(h, "</table>");
    availability_section(&mut h, input, &x, &marks);
    let o = &s.orders;
    let n = |v: Option<u64>| {
        v.map(|v| v.to_string())
            .unwrap_or_else(|| "not measured".into())
    };
    let _ = write!(
        h,
        "<h2 id=\"orders\">Orders</h2><p>accepted {}, dispatched {}, lost {}, duplicated {}</p>",
        n(o.accepted),
        n(o.dispatched),
        n(o.lost),
        n(o.duplicated)
    );
    let lg = &s.load_generator;
    let _ = write!(
        h,
        "<h2 id=\"load-generator\">Load generator (measured window)</h2><p>peak CPU {}; timer lag p99 {}; {}</p></main></body></html>",
        lg.cpu_percent_max
            .map(|c| format!("{c:.0}% of one core"))
            .unwrap_or_else(|| "not measured".into()),
        ms(lg.lag_ms_p99),
        match lg.saturated {
            Some(true) => "SATURATED: its figures are not trustworthy",
            Some(false) => "not saturated",
            None => "saturation not measured",
        },
    );
    h
}

/// The shared time axis: the recorded seconds.
fn time_axis(timeline: &Timeline) -> std::ops::Range<f64> {
    let first = timeline.seconds.first().map_or(0, |r| r.t);
    let last = timeline.seconds.last().map_or(first, |r| r.t);
    first as f64..(last + 1).max(first + 1) as f64
}

fn charts_section(h: &mut String, input: &Input<'_>, x: &std::ops::Range<f64>, marks: &Marks) {
    let tl = input.timeline;
    let at = |t: u64| t as f64 + 0.5;

    let users: Vec<(f64, f64)> = tl
        .seconds
        .iter()
        .filter_map(|r| r.users.map(|u| (at(r.t), u as f64)))
        .collect();
    let _ = write!(h, "<h2 id=\"load\">Load</h2>");
    figure(
        h,
        "chart-users",
        "Active shoppers over time",
        &charts::time_chart(
            &TimeChart {
                title: "Active shoppers",
                y_desc: "shoppers",
                x: x.clone(),
                y: 0.0..top(&users, 1.0),
                size: WIDE,
            },
            &[Series::new("shoppers", BLUE_, users)],
            marks,
        ),
    );
    let replicas = crate::observe::replicas_over_time(&tl.events);
    if !replicas.is_empty() {
        let palette = [BLUE_, GREEN_, ORANGE_, PURPLE_, RED_, GREY_];
        let series: Vec<Series> = replicas
            .into_iter()
            .enumerate()
            .map(|(i, (service, mut points))| {
                // Steps: hold each count until the next change, to the end.
                let mut stepped = Vec::new();
                for (j, p) in points.iter().enumerate() {
                    if j > 0 {
                        stepped.push((p.0, points[j - 1].1));
                    }
                    stepped.push(*p);
                }
                if let Some(last) = points.pop() {
                    stepped.push((x.end, last.1));
                }
                Series::new(service, palette[i % palette.len()], stepped)
            })
            .collect();
        let y_top = series
            .iter()
            .map(|s| top(&s.points, 1.0))
            .fold(1.0, f64::max);
        figure(
            h,
            "chart-replicas",
            "Replicas serving per service over time",
            &charts::time_chart(
                &TimeChart {
                    title: "Replicas serving",
                    y_desc: "replicas",
                    x: x.clone(),
                    y: 0.0..y_top.ceil(),
                    size: WIDE,
                },
                &series,
                marks,
            ),
        );
    }
    let ok: Vec<(f64, f64)> = tl
        .seconds
        .iter()
        .map(|r| (at(r.t), (r.requests() - r.failed()) as f64))
        .collect();
    let failed: Vec<(f64, f64)> = tl
        .seconds
        .iter()
        .map(|r| (at(r.t), r.failed() as f64))
        .collect();
    let y_top = top(&ok, 1.0).max(top(&failed, 1.0));
    figure(
        h,
        "chart-rps",
        "Requests per second, succeeded and failed",
        &charts::time_chart(
            &TimeChart {
                title: "Requests per second",
                y_desc: "requests / s",
                x: x.clone(),
                y: 0.0..y_top,
                size: WIDE,
            },
            &[
                Series::new("succeeded", GREEN_, ok),
                Series::new("failed", RED_, failed),
            ],
            marks,
        ),
    );
    let _ = write!(h, "<h2 id=\"latency\">Latency</h2>");
    figure(
        h,
        "chart-latency",
        "Latency percentiles over time, all requests",
        &latency_chart(
            "Latency, all requests (p50, p95, p99)",
            percentiles_over_time(tl, OVERALL),
            Some(&input.scenario.slo.latency),
            x,
            marks,
            WIDE,
        ),
    );
    let _ = write!(h, "<div class=\"grid\" id=\"step-latency\">");
    for st in &input.summary.steps {
        let series = percentiles_over_time(tl, &st.step);
        if series.iter().all(|s| s.points.is_empty()) {
            continue;
        }
        figure(
            h,
            &format!("chart-latency-{}", st.step),
            &format!("Latency percentiles over time, step {}", st.step),
            &latency_chart(
                &format!("Latency, {} (p50, p95, p99)", st.step),
                series,
                input.scenario.slo.step_latency.get(&st.step),
                x,
                marks,
                SMALL,
            ),
        );
    }
    let _ = write!(h, "</div>");
    let [from, to] = input.summary.measured_window_s;
    let window = from..to;
    figure(
        h,
        "chart-distribution",
        "Latency distribution over the measured window",
        &distribution(tl, window),
    );
}

fn availability_section(
    h: &mut String,
    input: &Input<'_>,
    x: &std::ops::Range<f64>,
    marks: &Marks,
) {
    let tl = input.timeline;
    let points: Vec<(f64, f64)> = tl
        .seconds
        .iter()
        .filter(|r| r.requests() > 0)
        .map(|r| {
            (
                r.t as f64 + 0.5,
                100.0 * (r.requests() - r.failed()) as f64 / r.requests() as f64,
            )
        })
        .collect();
    let mut series = vec![Series::new("availability", PURPLE_, points)];
    if let Some(target) = input.scenario.slo.availability {
        series.push(target_line("target", target * 100.0, x));
    }
    // Zoom in on the interesting part: down to the worst second (or a
    // little below the target), never below 0.
    let low = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(100.0, f64::min);
    let floor = ((low - (100.0 - low).max(0.5) * 0.2).floor()).clamp(0.0, 99.0);
    let _ = write!(h, "<h2 id=\"availability\">Availability over time</h2>");
    figure(
        h,
        "chart-availability",
        "Share of requests that succeeded, per second",
        &charts::time_chart(
            &TimeChart {
                title: "Availability per second",
                y_desc: "% succeeded",
                x: x.clone(),
                y: floor..100.0 + (100.0 - floor) * 0.05,
                size: WIDE,
            },
            &series,
            marks,
        ),
    );
}
