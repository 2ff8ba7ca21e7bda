//! `gameday status`: what runs where, from the stack's status file.

use crate::{exit_codes, platform::local::stacks};

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
    println!("\nReplicas:");
    for r in &status.replicas {
        let state = if r.serving {
            "serving"
        } else if r.ready {
            "ready"
        } else {
            "starting"
        };
        println!(
            "  {:<12} {:<10} {:<6} {:<24} pid {:<8} {state}",
            r.name,
            r.service,
            r.instance,
            r.url,
            r.pid.map(|p| p.to_string()).unwrap_or_default()
        );
    }
    println!("\nInfrastructure:");
    for i in &status.infra {
        println!(
            "  {:<16} {:<22} pid {}",
            i.name,
            i.address,
            i.pid.map(|p| p.to_string()).unwrap_or_default()
        );
    }
    Ok(exit_codes::OK)
}
