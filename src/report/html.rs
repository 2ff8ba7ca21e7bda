//! report.html: one self-contained file (inline CSS, no script, nothing from
//! the network), verdict first, in words a stakeholder understands.
//! Charts (plotters SVG on one shared time axis) are the next step.

use std::fmt::Write as _;

use super::Summary;
use crate::slo::{Verdict, millis, percent};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn ms(v: Option<f64>) -> String {
    v.map(millis).unwrap_or_else(|| "not measured".into())
}

pub fn render(s: &Summary, plan: &str) -> String {
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
         .ok{{color:#2b8a3e;font-weight:700}}.bad{{color:#c92a2a;font-weight:700}}.na{{color:#868e96}}pre{{background:#f6f7fb;padding:12px;overflow:auto}}\
         </style></head><body><div class=\"verdict {class}\" id=\"verdict\">{headline}<br><small>scenario {name}, started {start}, {dur:.0} s</small></div><main>",
        name = esc(&s.scenario),
        start = esc(&s.started_at),
        dur = s.duration_s
    );
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
            "<p class=\"na\">Faults listed but not injected (the chaos scheduler is not built yet): {}</p>",
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
    let _ = write!(
        h,
        "<h2 id=\"steps\">Per step</h2><table><tr><th>Step</th><th>Count</th><th>Failed</th><th>rps</th><th>p50</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th><th>p99 corrected</th></tr>"
    );
    for st in &s.steps {
        let l = &st.latency_ms;
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&st.step),
            st.count,
            st.failed_percent
                .map(|p| format!("{p:.2}%"))
                .unwrap_or_default(),
            st.rps.map(|r| format!("{r:.1}")).unwrap_or_default(),
            ms(l.p50),
            ms(l.p95),
            ms(l.p99),
            ms(l.p99_9),
            ms(l.max),
            ms(st.latency_corrected_ms.p99)
        );
    }
    let _ = write!(
        h,
        "</table><h2 id=\"errors\">Errors by kind and step</h2><table><tr><th>Step</th><th>Kind</th><th>Count</th></tr>"
    );
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
    let o = &s.orders;
    let n = |v: Option<u64>| {
        v.map(|v| v.to_string())
            .unwrap_or_else(|| "not measured".into())
    };
    let _ = write!(
        h,
        "</table><h2 id=\"orders\">Orders</h2><p>accepted {}, dispatched {}, lost {}, duplicated {}</p>",
        n(o.accepted),
        n(o.dispatched),
        n(o.lost),
        n(o.duplicated)
    );
    let lg = &s.load_generator;
    let _ = write!(
        h,
        "<h2 id=\"load-generator\">Load generator (measured window)</h2><p>peak CPU {}; timer lag p99 {}; {}</p><h2 id=\"plan\">Run plan</h2><pre>{}</pre></main></body></html>",
        lg.cpu_percent_max
            .map(|c| format!("{c:.0}% of one core"))
            .unwrap_or_else(|| "not measured".into()),
        ms(lg.lag_ms_p99),
        match lg.saturated {
            Some(true) => "SATURATED: its figures are not trustworthy",
            Some(false) => "not saturated",
            None => "saturation not measured",
        },
        esc(plan)
    );
    h
}
