//! `gameday plan FILE`: what a run will do (topology, stages with users over
//! time, journeys and weights, faults with their times and candidates, stop
//! rules, SLOs), without starting anything.

use std::{fmt::Write as _, path::Path, time::Duration};

use crate::{
    exit_codes,
    platform::local::shop::SERVICES,
    scenario::{BlastRadius, FaultKind, Metric, Op, Scenario, Schedule},
};

pub fn run(path: &Path) -> anyhow::Result<i32> {
    match Scenario::load(path) {
        Ok(s) => {
            print!("{}", render(&s));
            Ok(exit_codes::OK)
        }
        Err(errors) => {
            eprintln!("{errors}");
            Ok(exit_codes::USAGE)
        }
    }
}

fn d(t: Duration) -> String {
    humantime::format_duration(Duration::from_millis(t.as_millis() as u64)).to_string()
}

fn radius(r: &BlastRadius, of: &str) -> String {
    match r {
        BlastRadius::Count(n) => format!("{n} of the {of}"),
        BlastRadius::Percent {
            percent,
            max: Some(m),
        } => format!("{percent}% of the {of} (at most {m})"),
        BlastRadius::Percent { percent, max: None } => format!("{percent}% of the {of}"),
    }
}

/// The plan as text.
pub fn render(s: &Scenario) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Scenario `{}`{}",
        s.name,
        s.description
            .as_deref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default()
    );
    let t = &s.target;
    let _ = writeln!(
        o,
        "\nTarget: local platform, {} instances (127.0.1.1 ...), replacement boot delay {}",
        t.instances,
        d(t.boot_delay)
    );
    let replicas: Vec<String> = SERVICES
        .iter()
        .map(|svc| format!("{svc} {}", t.initial_replicas(svc)))
        .collect();
    let _ = writeln!(o, "  replicas: {}", replicas.join(", "));
    for (svc, a) in &t.autoscale {
        let _ = writeln!(
            o,
            "  autoscale {svc}: {}..{} replicas, target {}% CPU",
            a.min, a.max, a.cpu_percent
        );
    }

    let load = &s.load;
    let _ = writeln!(
        o,
        "\nLoad: {} in all, peak {} shoppers",
        d(load.length()),
        load.peak_users()
    );
    let mut at = Duration::ZERO;
    let mut users = 0;
    for stage in &load.stages {
        let what = if stage.users == users {
            format!("hold {users} shoppers")
        } else {
            format!("ramp {users} -> {} shoppers", stage.users)
        };
        let _ = writeln!(o, "  {:>8} -> {:<8} {what}", d(at), d(at + stage.over));
        at += stage.over;
        users = stage.users;
    }
    let total: u32 = load.journeys.iter().map(|(_, w)| w).sum();
    let mix: Vec<String> = load
        .journeys
        .iter()
        .map(|(j, w)| {
            format!(
                "{} {:.0}%",
                j.name(),
                100.0 * *w as f64 / total.max(1) as f64
            )
        })
        .collect();
    let _ = writeln!(
        o,
        "  journeys: {}; think time {}..{}",
        mix.join(", "),
        d(load.think_time.0),
        d(load.think_time.1)
    );

    let _ = writeln!(o, "\nFaults ({}):", s.faults.len());
    if s.faults.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for f in &s.faults {
        let when = match &f.schedule {
            Schedule::At(t) => format!("at {}", d(*t)),
            Schedule::Every { every, from, until } => format!(
                "every {} from {}{} ({} times)",
                d(*every),
                d(*from),
                until
                    .map(|u| format!(" until {}", d(u)))
                    .unwrap_or_default(),
                f.schedule.times(load.length()).len()
            ),
        };
        let (what, candidates) = match &f.kind {
            FaultKind::KillPod { service, radius: r } => {
                let n = t.initial_replicas(service);
                (
                    format!("SIGKILL {}", radius(r, &format!("{service} replicas"))),
                    (1..=n)
                        .map(|i| format!("{service}-{i}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            }
            FaultKind::TerminateInstance { radius: r } => (
                format!(
                    "terminate {}; replacements boot after {}",
                    radius(r, "instances"),
                    d(t.boot_delay)
                ),
                (1..=t.instances)
                    .map(|i| format!("i-{i}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            FaultKind::DbFailover { rebuild_standby } => (
                format!(
                    "kill the MariaDB primary, promote the standby, move the writer endpoint{}",
                    if *rebuild_standby {
                        ", rebuild a standby"
                    } else {
                        ""
                    }
                ),
                "the current primary".to_string(),
            ),
            FaultKind::RestartCache => ("restart Redis".to_string(), "redis".to_string()),
            FaultKind::RestartBroker => ("restart RabbitMQ".to_string(), "rabbitmq".to_string()),
        };
        let lasts = f
            .duration
            .map(|x| format!(", undone after {}", d(x)))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "  {when:<10} {}: {what}{lasts}\n             candidates: {candidates}",
            f.name
        );
    }

    let _ = writeln!(o, "\nStop when:");
    if s.stop_when.is_empty() {
        let _ = writeln!(o, "  never (the run ends with its last stage)");
    }
    for r in &s.stop_when {
        let op = match r.op {
            Op::Gt => "above",
            Op::Ge => "at or above",
            Op::Lt => "below",
            Op::Le => "at or below",
        };
        let (metric, value) = match r.metric {
            Metric::ErrorRate => (
                "the error rate".to_string(),
                format!("{}%", r.value * 100.0),
            ),
            Metric::Availability => ("availability".to_string(), format!("{}%", r.value * 100.0)),
            Metric::Latency(p) => (format!("{} latency", p.key()), format!("{} ms", r.value)),
        };
        let _ = writeln!(
            o,
            "  {metric} {op} {value} for {}  ({})",
            d(r.window),
            r.text
        );
    }

    let slo = &s.slo;
    let _ = writeln!(o, "\nSLOs:");
    let mut any = false;
    let mut line = |text: String| {
        any = true;
        let _ = writeln!(o, "  {text}");
    };
    if let Some(a) = slo.availability {
        line(format!("availability at least {}%", a * 100.0));
    }
    if let Some(u) = slo.uptime {
        line(format!("uptime (prober) at least {}%", u * 100.0));
    }
    if let Some(e) = slo.error_rate {
        line(format!("error rate at most {}%", e * 100.0));
    }
    for (p, v) in &slo.latency {
        line(format!("{} latency at most {}", p.key(), d(*v)));
    }
    for (step, targets) in &slo.step_latency {
        for (p, v) in targets {
            line(format!(
                "step `{step}` {} latency at most {}",
                p.key(),
                d(*v)
            ));
        }
    }
    if let Some(r) = slo.recovery {
        line(format!("recovery within {} of each fault", d(r)));
    }
    if let Some(r) = slo.scale_out {
        line(format!("scale-out within {}", d(r)));
    }
    if let Some(r) = slo.failover_downtime {
        line(format!("database failover downtime under {}", d(r)));
    }
    if let Some(n) = slo.lost_orders {
        line(format!("at most {n} lost orders"));
    }
    if !any {
        let _ = writeln!(o, "  none");
    }
    let _ = writeln!(
        o,
        "\nReports: {}/{}-<timestamp>/ (report.html, summary.json, junit.xml)",
        s.report_dir.display(),
        s.name
    );
    o
}
