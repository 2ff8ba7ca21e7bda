//! `gameday status [--json] [--scenario FILE]`: what runs where (instances,
//! replicas, infrastructure), with each one's resident memory where the
//! platform can tell.

use std::path::Path;

use crate::{exit_codes, platform};

fn state(ready: bool, serving: bool) -> &'static str {
    match (ready, serving) {
        (_, true) => "serving",
        (true, false) => "ready",
        (false, false) => "starting",
    }
}

fn details(d: &std::collections::BTreeMap<String, serde_json::Value>) -> String {
    d.iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k} {s}"),
            other => format!("{k} {other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn run(json: bool, scenario: Option<&Path>) -> anyhow::Result<i32> {
    let spec = match super::load_target(scenario) {
        Ok(s) => s.unwrap_or_default(),
        Err(code) => return Ok(code),
    };
    let Some(report) = platform::backend(&spec).status().await? else {
        if json {
            println!("null");
        } else {
            println!("No stack is up. Start one with `gameday up`.");
        }
        return Ok(exit_codes::OK);
    };
    let inv = &report.inventory;
    if json {
        println!("{}", serde_json::to_string_pretty(inv)?);
        return Ok(exit_codes::OK);
    }
    println!("{}", report.heading);
    println!("Storefront: {}", inv.entry_url);
    println!("\nInstances:");
    for i in &inv.instances {
        let state = serde_json::to_value(i.state)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        println!(
            "  {:<20} {:<14} {:<12} {state}{}",
            i.name,
            i.address.as_deref().unwrap_or("-"),
            i.zone.as_deref().unwrap_or(""),
            match i.healthy {
                Some(true) => ", healthy",
                Some(false) => ", UNHEALTHY",
                None => "",
            }
        );
    }
    let mut total = 0.0;
    let mut mib = |u: Option<platform::Usage>| {
        let m = u.map_or(0.0, |u| u.rss_mb);
        total += m;
        u.map_or("      -".to_string(), |u| format!("{:>6.1} MiB", u.rss_mb))
    };
    println!("\nReplicas:");
    for r in &inv.replicas {
        println!(
            "  {:<14} {:<10} {:<8} {:<24} {} {:<8} {}",
            r.name,
            r.service,
            r.instance.as_deref().unwrap_or("-"),
            r.url.as_deref().unwrap_or("-"),
            mib(r.usage),
            state(r.ready, r.serving),
            details(&r.details)
        );
    }
    println!("\nInfrastructure:");
    for c in &inv.infra {
        println!(
            "  {:<16} {:<22} {} {}",
            c.name,
            c.address.as_deref().unwrap_or("-"),
            mib(c.usage),
            details(&c.details)
        );
    }
    if total > 0.0 {
        println!("\nResident memory of the whole stack: {total:.0} MiB");
    }
    if !inv.cost.is_empty() {
        println!("\nCost since each process started:");
        println!(
            "  {:<16} {:>12} {:>12}",
            "component", "CPU seconds", "memory"
        );
        for c in &inv.cost {
            println!("  {:<16} {:>12.1} {:>8.1} MiB", c.name, c.cpu_s, c.rss_mb);
        }
    }
    Ok(exit_codes::OK)
}
