//! The plan of a run: what it will do (the platform and what runs there,
//! stages with shoppers over time, journeys and weights, each fault with
//! its time, its kind as written, what it does on this platform and what it
//! would hit, stop rules, SLOs), without acting. `gameday plan` prints it;
//! a run writes it to `plan.txt` and into its report.

use std::{fmt::Write as _, path::Path, time::Duration};

use crate::{
    chaos,
    platform::{Inventory, Platform, Support, Target},
    scenario::{
        BlastRadius, FaultKind, GeneratorPlatform, Metric, NetworkEffect, Op, PartitionMode,
        Scenario, Schedule,
    },
    shop::SERVICES,
};

fn d(t: Duration) -> String {
    humantime::format_duration(Duration::from_millis(t.as_millis() as u64)).to_string()
}

/// The fault as written in the scenario: `kill-pod { service: cart, count: 1 }`.
pub fn kind_text(kind: &FaultKind) -> String {
    let radius = |r: &BlastRadius| match r {
        BlastRadius::Count(n) => format!("count: {n}"),
        BlastRadius::Percent {
            percent,
            max: Some(m),
        } => format!("percent: {percent}%, max: {m}"),
        BlastRadius::Percent { percent, max: None } => format!("percent: {percent}%"),
    };
    let fields = match kind {
        FaultKind::KillPod {
            service,
            radius: r,
            graceful,
        } => {
            let mut f = format!("service: {service}, {}", radius(r));
            if *graceful {
                f.push_str(", graceful: true");
            }
            f
        }
        FaultKind::TerminateInstance {
            radius: r,
            zone,
            graceful,
        } => {
            let mut f = radius(r);
            if let Some(z) = zone {
                let _ = write!(f, ", zone: {z}");
            }
            if *graceful {
                f.push_str(", graceful: true");
            }
            f
        }
        FaultKind::DrainNode { radius: r, zone } => {
            let mut f = radius(r);
            if let Some(z) = zone {
                let _ = write!(f, ", zone: {z}");
            }
            f
        }
        FaultKind::Network { effect, to, from } => {
            let mut f = format!("to: {to}");
            if let Some(from) = from {
                let _ = write!(f, ", from: {from}");
            }
            let _ = match effect {
                NetworkEffect::Latency { latency, jitter } => {
                    write!(f, ", latency: {}, jitter: {}", d(*latency), d(*jitter))
                }
                NetworkEffect::Loss { percent } => write!(f, ", percent: {percent}%"),
                NetworkEffect::Partition { mode } => write!(
                    f,
                    ", mode: {}",
                    match mode {
                        PartitionMode::Hang => "hang",
                        PartitionMode::Reset => "reset",
                    }
                ),
                NetworkEffect::Bandwidth { bytes_per_s } => {
                    write!(f, ", rate: {bytes_per_s}B/s")
                }
            };
            f
        }
        FaultKind::DbFailover { rebuild_standby } => {
            if *rebuild_standby {
                String::new()
            } else {
                "rebuild-standby: false".into()
            }
        }
        FaultKind::RestartCache { reboot: true } => "reboot: true".into(),
        FaultKind::RestartCache { .. } | FaultKind::RestartBroker => String::new(),
    };
    if fields.is_empty() {
        format!("{} {{}}", kind.key())
    } else {
        format!("{} {{ {fields} }}", kind.key())
    }
}

fn target_section(
    o: &mut String,
    s: &Scenario,
    platform: &dyn Platform,
    inventory: Option<&Inventory>,
) {
    let _ = writeln!(
        o,
        "\nTarget: the {} platform; shoppers enter at {}",
        platform.name(),
        platform.entry_url()
    );
    let Some(inv) = inventory else {
        let _ = writeln!(o, "  (what runs there could not be listed)");
        return;
    };
    if !inv.instances.is_empty() {
        let names: Vec<String> = inv
            .instances
            .iter()
            .map(|i| match (&i.address, &i.zone) {
                (Some(a), Some(z)) => format!("{} ({a}, {z})", i.name),
                (Some(a), None) => format!("{} ({a})", i.name),
                (None, Some(z)) => format!("{} ({z})", i.name),
                (None, None) => i.name.clone(),
            })
            .collect();
        let _ = writeln!(o, "  instances ({}): {}", names.len(), names.join(", "));
    }
    if !inv.replicas.is_empty() {
        let replicas: Vec<String> = SERVICES
            .iter()
            .map(|svc| {
                format!(
                    "{svc} {}",
                    inv.replicas.iter().filter(|r| r.service == *svc).count()
                )
            })
            .collect();
        let _ = writeln!(o, "  replicas: {}", replicas.join(", "));
    }
    if !inv.infra.is_empty() {
        let names: Vec<&str> = inv.infra.iter().map(|c| c.name.as_str()).collect();
        let _ = writeln!(o, "  infrastructure: {}", names.join(", "));
    }
    // What a platform found wrong with a component (the aws database's
    // connection budget).
    for c in &inv.infra {
        if let Some(w) = c.details.get("warning").and_then(|w| w.as_str()) {
            let _ = writeln!(o, "  WARNING {}: {w}", c.name);
        }
    }
    for (svc, a) in s.target.autoscale() {
        let _ = writeln!(
            o,
            "  autoscale {svc}: {}..{} replicas, target {}% CPU",
            a.min, a.max, a.cpu_percent
        );
    }
}

/// What each fault would hit, as the platform sees it now.
async fn fault_hits(s: &Scenario, platform: &dyn Platform) -> Vec<String> {
    let mut out = Vec::new();
    for f in &s.faults {
        if let Support::No { why } = platform.supports(f) {
            out.push(format!("REFUSED on this platform: {why}"));
            continue;
        }
        let line = match platform.candidates(&f.kind).await {
            Err(e) => format!("candidates unknown: {e}"),
            Ok(candidates) => {
                let all: Vec<String> = candidates.iter().map(Target::describe).collect();
                let hit = chaos::pick(candidates, f.kind.radius());
                let picked: Vec<&str> = hit.iter().map(|t| t.id.as_str()).collect();
                let mut line = format!(
                    "would hit {} of {}: {}",
                    picked.len(),
                    all.len(),
                    if picked.is_empty() {
                        "nothing".into()
                    } else {
                        picked.join(", ")
                    }
                );
                if all.len() > picked.len() {
                    let _ = write!(line, "\n             candidates: {}", all.join(", "));
                }
                if let Err(e) = platform.dry_run(f, &hit).await {
                    let _ = write!(line, "\n             DRY RUN REFUSED: {e}");
                }
                line
            }
        };
        out.push(line);
    }
    out
}

/// The plan as text: what a run will do on `platform` (a preview before a
/// run, the deployed platform in a run's `plan.txt`).
pub async fn render(s: &Scenario, platform: &dyn Platform) -> String {
    render_in(s, platform, None).await
}

/// The plan, naming `run_dir` as where the reports go when it is known
/// (a run's own `plan.txt`).
pub async fn render_in(s: &Scenario, platform: &dyn Platform, run_dir: Option<&Path>) -> String {
    let inventory = platform.inventory().await;
    let hits = fault_hits(s, platform).await;
    render_with(s, platform, inventory.as_ref().ok(), hits, run_dir)
}

fn render_with(
    s: &Scenario,
    platform: &dyn Platform,
    inventory: Option<&Inventory>,
    hits: Vec<String>,
    run_dir: Option<&Path>,
) -> String {
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
    target_section(&mut o, s, platform, inventory);
    load_section(&mut o, s);
    faults_section(&mut o, s, platform, hits);
    stop_section(&mut o, s);
    slo_section(&mut o, s);
    let reports = match run_dir {
        Some(dir) => format!("{}/", dir.display()),
        None => format!("{}/{}-<timestamp>/", s.report_dir.display(), s.name),
    };
    let _ = writeln!(
        o,
        "\nReports: {reports} (report.html, summary.json, junit.xml)"
    );
    o
}

/// Stages with shoppers over time, journeys and weights, think time.
fn load_section(o: &mut String, s: &Scenario) {
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
    if let Some(g) = &load.generators {
        let peak = load.peak_users();
        let (most, fewest) = (
            crate::load::shard::share(peak, 0, g.shards),
            crate::load::shard::share(peak, g.shards - 1, g.shards),
        );
        let _ = match &g.platform {
            GeneratorPlatform::Local => writeln!(
                o,
                "  generators: {} shards, `gameday shard` processes on this machine ({fewest}..{most} shoppers each at the peak), merged second by second; a lost shard makes the verdict inconclusive",
                g.shards,
            ),
            GeneratorPlatform::Kubernetes(k) => writeln!(
                o,
                "  generators: {} shards ({fewest}..{most} shoppers each at the peak) as the pods of one Indexed Job `{}` in namespace {} of context {} (image {}, requesting {} CPU and {} memory each), shopping at {}; created at the load's start, deleted at its end; merged second by second; a lost shard makes the verdict inconclusive",
                g.shards,
                crate::load::shard::kubernetes::JOB_NAME_PREFIX.to_string() + "<run>",
                k.namespace,
                k.context.as_deref().unwrap_or("(the current one)"),
                k.image,
                k.cpu,
                k.memory,
                k.entry_url,
            ),
        };
    }
}

/// Each fault: when, its kind as written, what it does here, what it hits.
fn faults_section(o: &mut String, s: &Scenario, platform: &dyn Platform, hits: Vec<String>) {
    let _ = writeln!(o, "\nFaults ({}):", s.faults.len());
    if s.faults.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for (f, hits) in s.faults.iter().zip(hits) {
        let when = match &f.schedule {
            Schedule::At(t) => format!("at {}", d(*t)),
            Schedule::Every { every, from, until } => format!(
                "every {} from {}{} ({} times)",
                d(*every),
                d(*from),
                until
                    .map(|u| format!(" until {}", d(u)))
                    .unwrap_or_default(),
                f.schedule.times(s.load.length()).len()
            ),
        };
        let lasts = f
            .duration
            .map(|x| format!(", undone after {}", d(x)))
            .unwrap_or_default();
        let _ = writeln!(o, "  {when:<10} {} [{}]", f.name, kind_text(&f.kind));
        let _ = writeln!(o, "             {}{lasts}", platform.describe(f));
        let _ = writeln!(o, "             {hits}");
    }
}

fn stop_section(o: &mut String, s: &Scenario) {
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
}

/// The SLOs the scenario sets, one row each.
fn slo_section(o: &mut String, s: &Scenario) {
    let slo = &s.slo;
    let pct = |v: f64| format!("{}%", v * 100.0);
    let mut rows: Vec<String> = [
        slo.availability
            .map(|a| format!("availability at least {}", pct(a))),
        slo.uptime
            .map(|u| format!("uptime (prober) at least {}", pct(u))),
        slo.error_rate
            .map(|e| format!("error rate at most {}", pct(e))),
    ]
    .into_iter()
    .flatten()
    .collect();
    rows.extend(
        slo.latency
            .iter()
            .map(|(p, v)| format!("{} latency at most {}", p.key(), d(*v))),
    );
    for (step, targets) in &slo.step_latency {
        rows.extend(
            targets
                .iter()
                .map(|(p, v)| format!("step `{step}` {} latency at most {}", p.key(), d(*v))),
        );
    }
    rows.extend(
        [
            slo.recovery
                .map(|r| format!("recovery within {} of each fault", d(r))),
            slo.scale_out.map(|r| format!("scale-out within {}", d(r))),
            slo.failover_downtime
                .map(|r| format!("database failover downtime under {}", d(r))),
            slo.lost_orders.map(|n| format!("at most {n} lost orders")),
        ]
        .into_iter()
        .flatten(),
    );
    let _ = writeln!(o, "\nSLOs:");
    if rows.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for row in rows {
        let _ = writeln!(o, "  {row}");
    }
}
