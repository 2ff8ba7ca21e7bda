//! report.html's tables: the faults with their recovery, the scale-outs,
//! and the figures per step.

use std::fmt::Write as _;

use super::{
    Summary,
    html::{Input, esc, ms},
};

fn seconds(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1} s"))
        .unwrap_or_else(|| "not measured".into())
}

/// The fault table, scale-outs, and replicas over time.
pub(super) fn faults_section(h: &mut String, input: &Input<'_>) {
    let s = input.summary;
    let _ = write!(
        h,
        "<h2 id=\"faults\">Faults</h2><p>Times are seconds on the run's clock, the x axis of every chart \
         (the shop started first; the shoppers, and the plan's fault times, from second {}).</p><table><tr><th>Fault</th><th>Kind</th><th>Targets</th><th>Injected at</th>\
         <th>First error at</th><th>Failed requests</th><th>Recovered at</th><th>Recovery</th></tr>",
        s.load_started_s
    );
    if s.faults.is_empty() {
        let _ = write!(h, "<tr><td colspan=\"8\">No fault was injected.</td></tr>");
    }
    for f in &s.faults {
        let recovered = match (f.recovered_at_s, f.injected_at_s) {
            (Some(r), _) => format!("{r:.1} s"),
            (None, Some(_)) => "<span class=\"bad\">not recovered</span>".into(),
            (None, None) => "not measured".into(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{recovered}</td><td>{}</td></tr>",
            esc(&f.name),
            esc(&f.kind),
            esc(&f.targets.join(", ")),
            seconds(f.injected_at_s),
            f.first_error_at_s
                .map(|t| format!("{t:.1} s"))
                .unwrap_or_else(|| "none".into()),
            f.errors.map(|e| e.to_string()).unwrap_or_default(),
            seconds(f.recovery_s),
        );
    }
    let _ = write!(h, "</table>");
    if !s.scale_outs.is_empty() {
        let _ = write!(
            h,
            "<h3 id=\"scale-outs\">Scale-outs</h3><table><tr><th>Service</th><th>Replicas</th><th>Signal at</th><th>Serving at</th><th>Took</th></tr>"
        );
        for so in &s.scale_outs {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{} → {}</td><td>{:.1} s</td><td>{}</td><td>{}</td></tr>",
                esc(&so.service),
                so.from,
                so.to,
                so.signal_at_s,
                seconds(so.ready_at_s),
                seconds(so.duration_s)
            );
        }
        let _ = write!(h, "</table>");
    }
}

pub(super) fn steps_table(h: &mut String, s: &Summary) {
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
    let _ = write!(h, "</table>");
}
