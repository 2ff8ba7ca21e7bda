//! The report's tables: targets, faults and what each did, scale-outs, per
//! step, errors, orders.

use std::fmt::Write as _;

use super::{esc, ms};
use crate::{
    observe::ScaleOutcome,
    report::{FaultSummary, Summary},
    slo::millis,
};

fn seconds(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1} s"))
        .unwrap_or_else(|| "not measured".into())
}

pub(super) fn targets(h: &mut String, s: &Summary) {
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
        let untrusted = if slo.untrustworthy {
            " <span class=\"na\">(not trustworthy: the load generator was saturated)</span>"
        } else {
            ""
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{c}\">{word}{untrusted}</td></tr>",
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
}

/// What a fault took away: `1 replica`, `4 replicas, 1 instance`, `none`.
fn capacity_lost(f: &FaultSummary) -> String {
    let plural = |n: u32, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    match (f.replicas_lost, f.instances_lost) {
        (None, None) => "not measured".into(),
        (r, i) => {
            let parts: Vec<String> = [(r.unwrap_or(0), "replica"), (i.unwrap_or(0), "instance")]
                .into_iter()
                .filter(|(n, _)| *n > 0)
                .map(|(n, what)| plural(n, what))
                .collect();
            if parts.is_empty() {
                "none".into()
            } else {
                parts.join(", ")
            }
        }
    }
}

pub(super) fn faults(h: &mut String, s: &Summary) {
    // The platform's monitoring alarms, where it has them (CloudWatch).
    let alarms = s.faults.iter().any(|f| f.alarm_after_s.is_some());
    let latency = s
        .fault_rule
        .as_ref()
        .and_then(|r| {
            Some(format!(
                "{} over {}",
                r.latency_percentile.as_deref()?,
                millis(r.latency_target_ms?)
            ))
        })
        .unwrap_or_else(|| "latency over target".into());
    let _ = write!(
        h,
        "<h2 id=\"faults\">Faults</h2><p>Times are seconds on the run's clock, the x axis of every chart \
         (the shop started first; the shoppers, and the plan's fault times, from second {}). A fault has recovered when \
         {} good seconds follow in a row: seconds where at least {} of requests succeeded{}.</p>\
         <table><tr><th>Fault</th><th>Kind</th><th>Targets</th><th>Injected at</th>\
         <th>First error at</th><th>Failed requests</th><th>Seconds with {}</th><th>Worst p99</th>\
         <th>Capacity lost</th><th>Capacity back at</th>{}<th>Recovered at</th><th>Recovery</th></tr>",
        s.load_started_s,
        s.fault_rule.as_ref().map_or(5, |r| r.settle_s),
        crate::slo::percent(s.fault_rule.as_ref().map_or(0.99, |r| r.success_threshold)),
        match &s.fault_rule {
            Some(r) if r.latency_target_ms.is_some() => format!(" and {latency} was not exceeded"),
            _ => String::new(),
        },
        esc(&latency),
        if alarms { "<th>Alarm after</th>" } else { "" },
    );
    if s.faults.is_empty() {
        let _ = write!(h, "<tr><td colspan=\"12\">No fault was injected.</td></tr>");
    }
    for f in &s.faults {
        let recovered = match (f.recovered_at_s, f.injected_at_s) {
            (Some(r), _) => format!("{r:.1} s"),
            (None, Some(_)) => "<span class=\"bad\">not recovered</span>".into(),
            (None, None) => "not measured".into(),
        };
        let back = match (f.capacity_back_at_s, f.replicas_lost, f.instances_lost) {
            (Some(b), _, _) => format!("{b:.1} s"),
            (None, Some(0) | None, Some(0) | None) => "-".into(),
            (None, _, _) => "<span class=\"bad\">not back</span>".into(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{back}</td>{}<td>{recovered}</td><td>{}</td></tr>",
            esc(&f.name),
            esc(&f.kind),
            if f.replacements.is_empty() {
                esc(&f.targets.join(", "))
            } else {
                format!(
                    "{}<br>replaced by {}",
                    esc(&f.targets.join(", ")),
                    esc(&f.replacements.join(", "))
                )
            },
            seconds(f.injected_at_s),
            f.first_error_at_s
                .map(|t| format!("{t:.1} s"))
                .unwrap_or_else(|| "none".into()),
            f.errors.map(|e| e.to_string()).unwrap_or_default(),
            f.slow_seconds
                .map(|n| n.to_string())
                .unwrap_or_else(|| "no target".into()),
            ms(f.worst_p99_ms),
            capacity_lost(f),
            if alarms {
                format!(
                    "<td>{}</td>",
                    f.alarm_after_s
                        .map_or_else(|| "no alarm".into(), |a| format!("{a:.1} s"))
                )
            } else {
                String::new()
            },
            seconds(f.recovery_s),
        );
    }
    let _ = write!(h, "</table>");
}

/// Network faults: what each added to the latency of the steps using its links.
pub(super) fn link_latency(h: &mut String, s: &Summary) {
    let network: Vec<_> = s
        .faults
        .iter()
        .filter_map(|f| Some((f, f.link_latency.as_ref()?)))
        .collect();
    if network.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<h3 id=\"link-latency\">Latency added by network faults</h3><p>p50 and p99 of the steps whose service uses the fault's links, while it lasted against the same span before it.</p><table><tr><th>Fault</th><th>Links</th><th>Steps</th><th>p50 before → during</th><th>p99 before → during</th><th>Added p50</th><th>Added p99</th></tr>"
    );
    for (f, l) in network {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} → {}</td><td>{} → {}</td><td>{}</td><td>{}</td></tr>",
            esc(&f.name),
            esc(&f.targets.join(", ")),
            esc(&l.steps.join(", ")),
            ms(l.before_p50_ms),
            ms(l.during_p50_ms),
            ms(l.before_p99_ms),
            ms(l.during_p99_ms),
            ms(l.added_p50_ms),
            ms(l.added_p99_ms),
        );
    }
    let _ = write!(h, "</table>");
}

pub(super) fn scale_outs(h: &mut String, s: &Summary) {
    if s.scale_outs.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<h3 id=\"scale-outs\">Scale-outs</h3><table><tr><th>Service</th><th>Replicas</th><th>Signal at</th><th>Serving at</th><th>Took</th><th>Outcome</th></tr>"
    );
    for so in &s.scale_outs {
        let class = match so.outcome {
            ScaleOutcome::Served => "",
            ScaleOutcome::NeverServed => " class=\"bad\"",
            ScaleOutcome::Withdrawn | ScaleOutcome::CutOff => " class=\"na\"",
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{} → {}</td><td>{:.1} s</td><td>{}</td><td>{}</td><td{class}>{}</td></tr>",
            esc(&so.service),
            so.from,
            so.to,
            so.signal_at_s,
            so.ready_at_s
                .map_or_else(|| "-".into(), |t| format!("{t:.1} s")),
            so.duration_s
                .map_or_else(|| "-".into(), |t| format!("{t:.1} s")),
            so.outcome.words()
        );
    }
    let _ = write!(h, "</table>");
}

pub(super) fn steps(h: &mut String, s: &Summary) {
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

pub(super) fn errors(h: &mut String, s: &Summary) {
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
}

pub(super) fn orders(h: &mut String, s: &Summary) {
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
}

/// A distributed load's shards, one row each (nothing without shards).
pub(super) fn shards(h: &mut String, s: &Summary) {
    let shards = &s.load_generator.shards;
    if shards.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<h3 id=\"shards\">Shards ({}), merged above</h3><table><tr><th>shard</th><th>requests</th><th>peak CPU</th><th>timer lag p99</th><th>peak memory</th><th>state</th></tr>",
        shards.len()
    );
    for line in shards {
        let state = match (&line.lost, line.saturated) {
            (Some(why), _) => format!("LOST: {}", esc(why)),
            (None, Some(true)) => "SATURATED".into(),
            (None, Some(false)) => "ok".into(),
            (None, None) => "not measured".into(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{state}</td></tr>",
            line.index,
            line.requests,
            line.cpu_percent_max
                .map_or("-".into(), |c| format!("{c:.0}% of one core")),
            ms(line.lag_ms_p99),
            line.peak_rss_mb
                .map_or("-".into(), |m| format!("{m:.0} MiB")),
        );
    }
    h.push_str("</table>");
}

pub(super) fn cost(h: &mut String, s: &Summary) {
    let _ = write!(h, "<h2 id=\"cost\">Cost (measured window)</h2>");
    let Some(c) = &s.cost else {
        let _ = write!(
            h,
            "<p class=\"na\">Not measured: this platform does not report what its parts cost.</p>"
        );
        return;
    };
    let share = match (c.stack_cpu_percent, c.machine_cpu_percent) {
        (Some(stack), Some(all)) => format!(
            "the stack (everything but the load generator) used {stack:.0}% of the machine's {} cores, {all:.0}% with the load generator",
            c.cores.unwrap_or(0)
        ),
        (Some(stack), None) => format!(
            "the stack used {stack:.0}% of the machine's {} cores",
            c.cores.unwrap_or(0)
        ),
        _ => "the share of the machine was not measured".into(),
    };
    let _ = write!(
        h,
        "<p>{} s, {} requests; {share}; database queries per request {}; catalogue cache hit ratio {}.</p>\
         <table><tr><th>Component</th><th>CPU seconds</th><th>CPU ms per 1,000 requests</th><th>Peak memory</th></tr>",
        c.window_s,
        c.requests,
        c.db_queries_per_request
            .map(|q| format!("{q:.2}"))
            .unwrap_or_else(|| "not measured".into()),
        c.cache_hit_ratio
            .map(crate::slo::percent)
            .unwrap_or_else(|| "not measured".into()),
    );
    for k in &c.components {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{:.1}</td><td>{}</td><td>{:.0} MiB</td></tr>",
            esc(&k.name),
            k.cpu_s,
            k.cpu_ms_per_1k_requests
                .map(|v| format!("{v:.0}"))
                .unwrap_or_else(|| "-".into()),
            k.peak_rss_mb
        );
    }
    let _ = write!(h, "</table>");
}
