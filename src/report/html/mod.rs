//! report.html: one self-contained file (inline CSS and SVG charts, no
//! script, nothing from the network), verdict first, in words a stakeholder
//! understands. Every time chart shares the run's clock as its x axis, with
//! fault windows shaded and scale-outs marked (see `figures` and
//! `super::charts`); the tables are in `tables`.

mod figures;
mod tables;

use std::fmt::Write as _;

pub use figures::marks;

use super::Summary;
use crate::{
    record::Timeline,
    scenario::Scenario,
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

fn ms(v: Option<f64>) -> String {
    v.map(millis).unwrap_or_else(|| "not measured".into())
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2433}main{max-width:1100px;margin:0 auto;padding:24px}\
    .verdict{padding:20px 24px;color:#fff;font-size:1.3em}.verdict ul{margin:6px 0 0;font-size:.75em}\
    .pass{background:#1b7a4a}.fail{background:#b3261e}.aborted{background:#a85d00}.inconclusive{background:#3d4a8a}\
    table{border-collapse:collapse;width:100%;margin:8px 0 24px}td,th{border-bottom:1px solid #e3e8f4;padding:6px 8px;text-align:left;vertical-align:top}\
    .ok{color:#1b7a4a;font-weight:700}.bad{color:#b3261e;font-weight:700}.na{color:#5c6370}pre{background:#f6f7fb;padding:12px;overflow:auto;white-space:pre-wrap}\
    figure{margin:0 0 16px}figure svg{max-width:100%;height:auto}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(500px,1fr));gap:8px}";

/// The coloured header: the verdict in words, and for an inconclusive run
/// every reason, the first one on the headline itself; for any other
/// verdict, what makes its figures untrustworthy.
fn header(h: &mut String, s: &Summary) {
    let (class, headline) = match s.verdict {
        Verdict::Pass => (
            "pass",
            "PASSED: everything the scenario asked for was measured and met".to_string(),
        ),
        Verdict::Fail => ("fail", "FAILED: at least one target was missed".into()),
        Verdict::Aborted => ("aborted", "ABORTED: a stop condition ended the run".into()),
        Verdict::Inconclusive => (
            "inconclusive",
            format!(
                "INCONCLUSIVE: {}",
                s.inconclusive
                    .first()
                    .map(String::as_str)
                    .unwrap_or("the evidence is incomplete")
            ),
        ),
    };
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>gameday: {name}</title><style>{STYLE}</style></head>\
         <body><div class=\"verdict {class}\" id=\"verdict\">{headline}",
        name = esc(&s.scenario),
        headline = esc(&headline),
    );
    if s.inconclusive.len() > 1 {
        let _ = write!(h, "<ul id=\"inconclusive\">");
        for reason in &s.inconclusive[1..] {
            let _ = write!(h, "<li>{}</li>", esc(reason));
        }
        let _ = write!(h, "</ul>");
    }
    // A fail or an abort on untrustworthy figures says so too.
    if s.verdict != Verdict::Inconclusive && !s.caveats.is_empty() {
        let _ = write!(h, "<ul id=\"caveats\">");
        for caveat in &s.caveats {
            let _ = write!(h, "<li>{}</li>", esc(caveat));
        }
        let _ = write!(h, "</ul>");
    }
    let _ = write!(
        h,
        "<br><small>scenario {}, started {}, {:.0} s, exit code {}</small></div><main>",
        esc(&s.scenario),
        esc(&s.started_at),
        s.duration_s,
        s.exit_code
    );
}

pub fn render(input: &Input<'_>) -> String {
    let s = input.summary;
    let mut h = String::new();
    header(&mut h, s);
    if let Some(rule) = &s.aborted_by {
        let _ = write!(
            h,
            "<p class=\"bad\" id=\"aborted\">The run was stopped early because this rule held: {}</p>",
            esc(rule)
        );
    }
    tables::targets(&mut h, s);
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
    tables::faults(&mut h, s);
    tables::link_latency(&mut h, s);
    tables::scale_outs(&mut h, s);
    let _ = write!(
        h,
        "<h2 id=\"plan\">Run plan</h2><pre>{}</pre>",
        esc(input.plan)
    );
    // One time axis and one set of fault bands and markers for every chart.
    let x = figures::time_axis(input.timeline);
    let marks = marks(&s.faults, &input.timeline.events, x.end);
    figures::charts(&mut h, input, &x, &marks);
    tables::steps(&mut h, s);
    tables::errors(&mut h, s);
    figures::availability(&mut h, input, &x, &marks);
    tables::orders(&mut h, s);
    tables::cost(&mut h, s);
    figures::cost(&mut h, input, &x, &marks);
    let lg = &s.load_generator;
    let _ = write!(
        h,
        "<h2 id=\"load-generator\">Load generator (measured window)</h2><p>peak CPU {}; timer lag p99 {}; {}</p>",
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
    tables::shards(&mut h, s);
    h.push_str("</main></body></html>");
    h
}
