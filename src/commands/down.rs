//! `gameday down`: stop the stack `gameday up` started, from any shell. The
//! supervisor is asked to stop (it stops replicas gracefully, then HAProxy and
//! the servers); if it is gone or does not finish, every process the status
//! file names is killed with its process group. Then it checks that none of
//! them remains and that the storefront port is free.

use std::time::{Duration, Instant};

use nix::{
    sys::signal::{Signal, kill, killpg},
    unistd::Pid,
};

use crate::{
    exit_codes,
    platform::local::{process::pid_alive, stacks},
};

pub async fn run() -> anyhow::Result<i32> {
    let Some(current) = stacks::read_current() else {
        println!("No stack is up.");
        return Ok(exit_codes::OK);
    };
    let status = current.status();
    let started = Instant::now();
    if current.supervisor_alive() {
        println!(
            "Stopping the stack (supervisor pid {})...",
            current.supervisor_pid
        );
        let _ = kill(
            Pid::from_raw(current.supervisor_pid as i32),
            Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(90);
        while pid_alive(current.supervisor_pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if pid_alive(current.supervisor_pid) {
            eprintln!("gameday: the supervisor did not stop in 90 s; killing it");
            let _ = kill(
                Pid::from_raw(current.supervisor_pid as i32),
                Signal::SIGKILL,
            );
        }
    }
    // Whatever is left (a supervisor that crashed or was killed).
    let pids: Vec<u32> = status
        .iter()
        .flat_map(|s| {
            s.replicas
                .iter()
                .filter_map(|r| r.pid)
                .chain(s.infra.iter().filter_map(|i| i.pid))
        })
        .collect();
    let mut leftovers = 0;
    for pid in &pids {
        if pid_alive(*pid) {
            leftovers += 1;
            let _ = killpg(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let still: Vec<u32> = pids.iter().copied().filter(|p| pid_alive(*p)).collect();
    stacks::clear_current(None);
    if !still.is_empty() {
        eprintln!("gameday: these processes survived: {still:?}");
        return Ok(exit_codes::ERROR);
    }
    if let Some(s) = &status
        && let Some(addr) = s
            .entry_url
            .strip_prefix("http://")
            .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        && std::net::TcpListener::bind(addr).is_err()
    {
        eprintln!("gameday: {addr} is still in use");
        return Ok(exit_codes::ERROR);
    }
    if leftovers > 0 {
        println!("Killed {leftovers} process group(s) the supervisor left behind.");
    }
    println!(
        "Stopped in {:.1} s; no process of the stack remains.",
        started.elapsed().as_secs_f64()
    );
    Ok(exit_codes::OK)
}
