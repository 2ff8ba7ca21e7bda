//! `gameday status`: what runs where, from the stack's status file, with each
//! process group's resident memory and the stack's total.

use std::collections::BTreeSet;

use crate::{
    exit_codes,
    platform::local::{process::group_rss_kib, stacks},
};

fn mib(pid: Option<u32>) -> f64 {
    pid.map_or(0.0, |p| group_rss_kib(p) as f64 / 1024.0)
}

fn pid_text(pid: Option<u32>) -> String {
    pid.map(|p| p.to_string()).unwrap_or_default()
}

pub fn run(json: bool) -> anyhow::Result<i32> {
    let Some(current) = stacks::read_current() else {
        if json {
            println!("null");
        } else {
            println!("No stack is up. Start one with `gameday up`.");
        }
        return Ok(exit_codes::OK);
    };
    let Some(status) = current.status() else {
        anyhow::bail!(
            "the stack in {} has no status file yet",
            current.run_dir.display()
        );
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(exit_codes::OK);
    }
    let alive = current.supervisor_alive();
    println!(
        "Stack in {} (supervisor pid {}{})",
        current.run_dir.display(),
        current.supervisor_pid,
        if alive {
            ""
        } else {
            ", NOT RUNNING: run `gameday down` to clean up"
        }
    );
    println!("Storefront: {}", status.entry_url);
    println!("\nInstances:");
    for i in &status.instances {
        println!("  {:<6} {:<12} {:?}", i.name, i.address, i.state);
    }
    let mut total = 0.0;
    println!("\nReplicas:");
    for r in &status.replicas {
        let state = if r.serving {
            "serving"
        } else if r.ready {
            "ready"
        } else {
            "starting"
        };
        let rss = mib(r.pid);
        total += rss;
        println!(
            "  {:<12} {:<10} {:<6} {:<24} pid {:<8} {rss:>6.1} MiB  {state}",
            r.name,
            r.service,
            r.instance,
            r.url,
            pid_text(r.pid)
        );
    }
    println!("\nInfrastructure:");
    let mut counted = BTreeSet::new();
    for i in &status.infra {
        // The writer endpoint is HAProxy too: count its memory once.
        let rss = if i.pid.is_some_and(|p| counted.insert(p)) {
            mib(i.pid)
        } else {
            0.0
        };
        total += rss;
        println!(
            "  {:<16} {:<22} pid {:<8} {rss:>6.1} MiB",
            i.name,
            i.address,
            pid_text(i.pid)
        );
    }
    println!("\nResident memory of the whole stack: {total:.0} MiB");
    Ok(exit_codes::OK)
}
