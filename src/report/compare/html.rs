//! compare.html: one self-contained page (no script, nothing from the
//! network): whether RUN regressed, the checks, every figure side by side,
//! and both runs' p99 over time on the load's clock.

use std::{fmt::Write as _, path::Path};

use super::Comparison;
use crate::{
    record::{read_timeline, timeline::OVERALL},
    report::{
        charts::{self, Marks, Series, TimeChart, palette},
        html::esc,
    },
};

/// Per second p99 of a run, on the load's clock (seconds since its shoppers
/// started), so two runs line up whatever their start-up took.
fn p99_since_load(dir: &Path) -> Option<Vec<(f64, f64)>> {
    let summary = super::read_summary(dir).ok()?;
    let timeline = read_timeline(dir).ok()?;
    let start = summary.load_started_s as f64;
    Some(
        timeline
            .per_second(OVERALL)?
            .iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(t, h)| {
                (
                    *t as f64 + 0.5 - start,
                    h.value_at_quantile(0.99) as f64 / 1000.0,
                )
            })
            .collect(),
    )
}

fn chart(c: &Comparison) -> String {
    let (Some(base), Some(run)) = (
        p99_since_load(Path::new(&c.base_dir)),
        p99_since_load(Path::new(&c.run_dir)),
    ) else {
        return "<p class=\"na\">The runs' timelines could not be read: no chart.</p>".into();
    };
    let all = || base.iter().chain(&run);
    let x0 = all().map(|p| p.0).fold(f64::MAX, f64::min).min(0.0).floor();
    let x1 = all().map(|p| p.0).fold(1.0, f64::max).ceil();
    let y1 = all().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let mut svg = charts::time_chart(
        &TimeChart {
            title: "p99 per second, both runs (x: seconds since the shoppers started)",
            y_desc: "milliseconds",
            x: x0..x1,
            y: 0.0..y1,
            size: (1040, 300),
            counts: false,
        },
        &[
            Series::new("BASE", palette::GREY, base),
            Series::new("RUN", palette::P99, run),
        ],
        &Marks::default(),
    );
    // Its x axis counts from the load's start, not the run's.
    svg = svg.replace(
        "seconds since the run started",
        "seconds since the shoppers started",
    );
    svg
}

pub fn render(c: &Comparison) -> String {
    let mut h = String::new();
    let (class, headline) = if c.regressed {
        ("fail", "REGRESSED: at least one check failed")
    } else if c.checks.is_empty() {
        ("neutral", "COMPARED: no check was asked for")
    } else {
        ("pass", "NO REGRESSION: every check passed")
    };
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>gameday compare: {name}</title><style>\
         body{{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2433}}main{{max-width:1100px;margin:0 auto;padding:24px}}\
         .verdict{{padding:20px 24px;color:#fff;font-size:1.3em}}.pass{{background:#1b7a4a}}.fail{{background:#b3261e}}.neutral{{background:#3d4a8a}}\
         table{{border-collapse:collapse;width:100%;margin:8px 0 24px}}td,th{{border-bottom:1px solid #e3e8f4;padding:6px 8px;text-align:left}}\
         td.n{{text-align:right;font-variant-numeric:tabular-nums}}.bad{{color:#b3261e;font-weight:700}}.ok{{color:#1b7a4a;font-weight:700}}.na{{color:#5c6370}}\
         figure{{margin:0 0 16px}}figure svg{{max-width:100%;height:auto}}</style></head><body>\
         <div class=\"verdict {class}\" id=\"verdict\">{headline}<br><small>scenario {name}: BASE {base} ({bv}), RUN {run} ({rv})</small></div><main>",
        name = esc(&c.scenario),
        base = esc(&c.base_dir),
        run = esc(&c.run_dir),
        bv = esc(&c.base_verdict),
        rv = esc(&c.run_verdict),
    );
    if !c.checks.is_empty() {
        let _ = write!(
            h,
            "<h2 id=\"checks\">Checks</h2><table><tr><th>Check</th><th>Limit</th><th>Observed</th><th>Result</th></tr>"
        );
        for k in &c.checks {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                esc(&k.name),
                esc(&k.limit),
                esc(&k.observed),
                if k.pass { "ok" } else { "bad" },
                if k.pass { "ok" } else { "regressed" }
            );
        }
        let _ = write!(h, "</table>");
    }
    let _ = write!(
        h,
        "<h2 id=\"figures\">Figures</h2><table><tr><th></th><th>Figure</th><th>BASE</th><th>RUN</th><th>Change</th></tr>"
    );
    for r in &c.rows {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n{}\">{}</td></tr>",
            esc(&r.section),
            esc(&r.figure),
            esc(&r.show(r.base)),
            esc(&r.show(r.run)),
            if r.worse() { " bad" } else { "" },
            esc(&r.show_change())
        );
    }
    let _ = write!(
        h,
        "</table><h2 id=\"latency\">Latency over time</h2><figure id=\"chart-p99\" aria-label=\"p99 per second of both runs\">{}</figure></main></body></html>",
        chart(c)
    );
    h
}
