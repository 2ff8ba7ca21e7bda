//! The report's figures: every time chart on the run's clock, with the
//! same fault bands and markers, each series in the same colour everywhere.

use std::{fmt::Write as _, ops::Range};

use super::{Input, esc};
use crate::{
    events::{Event, EventKind},
    observe::FaultSummary,
    record::{Timeline, timeline::OVERALL},
    report::charts::{self, Band, Marker, Marks, Series, TimeChart, palette},
    scenario::Percentile,
    slo::millis,
};

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
        (0.50, "p50", palette::P50),
        (0.95, "p95", palette::P95),
        (0.99, "p99", palette::P99),
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

/// A dashed target line, in the colour of what it limits.
fn target_line(name: &str, color: plotters::style::RGBColor, value: f64, x: &Range<f64>) -> Series {
    Series::new(name, color, vec![(x.start, value), (x.end, value)]).dashed()
}

fn percentile_color(p: Percentile) -> plotters::style::RGBColor {
    match p {
        Percentile::P50 => palette::P50,
        Percentile::P95 => palette::P95,
        Percentile::P99 => palette::P99,
        _ => palette::TARGET,
    }
}

/// A latency chart; the scenario's targets are dashed lines when they fall
/// near the data, and named in the caption when far above it (a line at
/// 1 s would flatten a chart of 10 ms requests).
fn latency_chart(
    title: &str,
    series: Vec<Series>,
    targets: Option<&std::collections::BTreeMap<Percentile, std::time::Duration>>,
    x: &Range<f64>,
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
            series.push(target_line(
                &format!("{} target", p.key()),
                percentile_color(*p),
                ms,
                x,
            ));
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
            counts: false,
        },
        &series,
        marks,
    )
}

/// Share of requests (measured window) by latency bucket.
fn distribution(timeline: &Timeline, window: Range<u64>) -> String {
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

/// The shared time axis: the recorded seconds.
pub(super) fn time_axis(timeline: &Timeline) -> Range<f64> {
    let first = timeline.seconds.first().map_or(0, |r| r.t);
    let last = timeline.seconds.last().map_or(first, |r| r.t);
    first as f64..(last + 1).max(first + 1) as f64
}

pub(super) fn charts(h: &mut String, input: &Input<'_>, x: &Range<f64>, marks: &Marks) {
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
                counts: true,
            },
            &[Series::new("shoppers", palette::SHOPPERS, users)],
            marks,
        ),
    );
    capacity(h, tl, x, marks);
    requests_chart(h, tl, x, marks);
    latency_charts(h, input, x, marks);
}

/// Requests per second, succeeded and failed.
fn requests_chart(h: &mut String, tl: &Timeline, x: &Range<f64>, marks: &Marks) {
    let at = |t: u64| t as f64 + 0.5;
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
                counts: true,
            },
            &[
                Series::new("succeeded", palette::SUCCEEDED, ok),
                Series::new("failed", palette::FAILED, failed),
            ],
            marks,
        ),
    );
}

/// Latency percentiles over time, overall and per step, and the
/// distribution over the measured window.
fn latency_charts(h: &mut String, input: &Input<'_>, x: &Range<f64>, marks: &Marks) {
    let tl = input.timeline;
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

pub(super) fn availability(h: &mut String, input: &Input<'_>, x: &Range<f64>, marks: &Marks) {
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
    let mut series = vec![Series::new("availability", palette::AVAILABILITY, points)];
    if let Some(target) = input.scenario.slo.availability {
        series.push(target_line("target", palette::TARGET, target * 100.0, x));
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
                counts: false,
            },
            &series,
            marks,
        ),
    );
}

/// Holds each count until the next change, from the axis' start (the count
/// then) to its end.
fn stepped(points: &[(f64, f64)], x: &Range<f64>) -> Vec<(f64, f64)> {
    let before = points.iter().take_while(|p| p.0 <= x.start).last();
    let mut out: Vec<(f64, f64)> = before.map(|p| (x.start, p.1)).into_iter().collect();
    for p in points.iter().filter(|p| p.0 > x.start && p.0 <= x.end) {
        if let Some(last) = out.last().copied() {
            out.push((p.0, last.1));
        }
        out.push(*p);
    }
    if let Some(last) = out.last().copied() {
        out.push((x.end, last.1));
    }
    out
}

/// Per-service counts stacked: each series is the sum of its own and those
/// listed after it, so the bands' heights are each service's count.
fn stacked(per_service: Vec<(String, Vec<(f64, f64)>)>, x: &Range<f64>) -> Vec<Series> {
    let steps: Vec<(String, Vec<(f64, f64)>)> = per_service
        .into_iter()
        .map(|(s, points)| (s, stepped(&points, x)))
        .collect();
    let mut times: Vec<f64> = steps
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .collect();
    times.sort_by(f64::total_cmp);
    times.dedup();
    // The count of a stepped series at `t`: its last point at or before t
    // (at a step, the later value).
    let at = |points: &[(f64, f64)], t: f64| {
        points
            .iter()
            .take_while(|p| p.0 <= t)
            .last()
            .map_or(0.0, |p| p.1)
    };
    (0..steps.len())
        .map(|i| {
            let mut points = Vec::new();
            for (j, t) in times.iter().enumerate() {
                let below: f64 = steps[i..].iter().map(|(_, p)| at(p, *t)).sum();
                if j > 0 {
                    // Vertical at a change: the previous level first.
                    let before: f64 = steps[i..].iter().map(|(_, p)| at(p, times[j - 1])).sum();
                    points.push((*t, before));
                }
                points.push((*t, below));
            }
            let name = steps[i].0.clone();
            let color = palette::service(&name);
            Series::new(name, color, points).area()
        })
        .collect()
}

/// Replicas serving per service, and instances, side by side.
fn capacity(h: &mut String, tl: &Timeline, x: &Range<f64>, marks: &Marks) {
    let replicas = stacked(
        crate::observe::replicas_over_time(&tl.events)
            .into_iter()
            .collect(),
        x,
    );
    let instances: Vec<Series> = crate::observe::instances_over_time(&tl.events)
        .into_iter()
        .map(|(name, points)| {
            let color = if name == "serving" {
                palette::SERVING
            } else {
                palette::RUNNING
            };
            Series::new(name, color, stepped(&points, x))
        })
        .collect();
    if replicas.is_empty() && instances.is_empty() {
        return;
    }
    let _ = write!(h, "<div class=\"grid\" id=\"capacity\">");
    for (id, caption, title, y_desc, series) in [
        (
            "chart-replicas",
            "Replicas serving per service over time, stacked",
            "Replicas serving (stacked by service)",
            "replicas",
            replicas,
        ),
        (
            "chart-instances",
            "Instances over time",
            "Instances",
            "instances",
            instances,
        ),
    ] {
        if series.is_empty() {
            continue;
        }
        let y_top = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(1.0, f64::max)
            .ceil()
            + 1.0;
        figure(
            h,
            id,
            caption,
            &charts::time_chart(
                &TimeChart {
                    title,
                    y_desc,
                    x: x.clone(),
                    y: 0.0..y_top,
                    size: SMALL,
                    counts: true,
                },
                &series,
                marks,
            ),
        );
    }
    let _ = write!(h, "</div>");
}

/// The colour of a cost component: a service's own, else one per part.
fn component_color(name: &str) -> plotters::style::RGBColor {
    match name {
        crate::record::LOAD_GENERATOR => palette::BLACK,
        "load balancer" => palette::GREY,
        "database" => palette::YELLOW,
        "cache" => plotters::style::RGBColor(153, 153, 153),
        "broker" => plotters::style::RGBColor(200, 200, 200),
        service => palette::service(service),
    }
}

/// CPU per component over time, stacked, in cores.
pub(super) fn cost(h: &mut String, input: &Input<'_>, x: &Range<f64>, marks: &Marks) {
    let per = crate::report::cost::cpu_over_time(&input.timeline.cost);
    if per.is_empty() {
        return;
    }
    // Biggest spenders at the bottom of the stack.
    let mut order: Vec<(String, Vec<(f64, f64)>)> = per.into_iter().collect();
    let total = |p: &[(f64, f64)]| p.iter().map(|q| q.1).sum::<f64>();
    order.sort_by(|a, b| total(&a.1).total_cmp(&total(&b.1)));
    let series: Vec<Series> = stacked(order, x)
        .into_iter()
        .map(|mut s| {
            s.color = component_color(&s.name);
            s
        })
        .collect();
    let y_top = series
        .first()
        .map(|s| top(&s.points, 0.1))
        .unwrap_or(1.0)
        .max(
            input
                .summary
                .cost
                .as_ref()
                .and_then(|c| c.cores)
                .unwrap_or(1) as f64,
        );
    figure(
        h,
        "chart-cost",
        "CPU used per component over time, stacked, in cores",
        &charts::time_chart(
            &TimeChart {
                title: "CPU per component (cores, stacked)",
                y_desc: "cores",
                x: x.clone(),
                y: 0.0..y_top,
                size: WIDE,
                counts: false,
            },
            &series,
            marks,
        ),
    );
}
