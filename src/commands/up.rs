//! `gameday up`: start the local platform and keep it until Ctrl-C, SIGTERM
//! or `gameday down`; with --detach, leave a supervisor doing that.

use std::{
    os::unix::process::CommandExt,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::{
    cli::UpArgs,
    events::EventLog,
    exit_codes,
    platform::local::{
        LocalPlatform,
        process::log_tail,
        stacks::{self, CurrentStack},
    },
    scenario::Topology,
};

/// What a supervisor tells the shell that started it, once ready.
#[derive(Serialize, Deserialize)]
struct Ready {
    entry_url: String,
    seconds: f64,
    run_dir: std::path::PathBuf,
}

pub async fn run(args: UpArgs) -> anyhow::Result<i32> {
    if let Some(current) = stacks::read_current()
        && current.supervisor_alive()
        && !args.supervise
    {
        eprintln!(
            "gameday: a stack is already up (supervisor pid {}, files in {}); run `gameday down` first",
            current.supervisor_pid,
            current.run_dir.display()
        );
        return Ok(exit_codes::ERROR);
    }
    let topology = match &args.scenario {
        Some(path) => match Topology::from_scenario_file(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("gameday: {e}");
                return Ok(exit_codes::USAGE);
            }
        },
        None => Topology::default(),
    };
    if let Some(code) = super::preflight() {
        return Ok(code);
    }
    let run_dir = args.run_dir.clone().unwrap_or_else(stacks::new_run_dir);
    // Servers resolve relative paths against their own directories.
    let run_dir = std::path::absolute(&run_dir)?;
    if args.detach && !args.supervise {
        return detach(&args, &run_dir).await;
    }
    supervise(topology, run_dir, args.supervise).await
}

async fn supervise(
    topology: Topology,
    run_dir: std::path::PathBuf,
    detached: bool,
) -> anyhow::Result<i32> {
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let started = Instant::now();
    let events = Arc::new(EventLog::new(Some(&run_dir.join("events.jsonl")))?);
    if !detached {
        eprintln!(
            "gameday: starting the shop ({} instances); files in {}",
            topology.instances,
            run_dir.display()
        );
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let platform = tokio::select! {
        p = LocalPlatform::up(&run_dir, topology, events) => p?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("gameday: interrupted while starting; everything started was stopped");
            return Ok(exit_codes::INTERRUPTED);
        }
        _ = term.recv() => return Ok(exit_codes::OK),
    };
    stacks::write_current(&CurrentStack {
        run_dir: run_dir.clone(),
        supervisor_pid: std::process::id(),
        started_at: chrono::Utc::now().to_rfc3339(),
    })?;
    let ready = Ready {
        entry_url: platform.entry_url(),
        seconds: started.elapsed().as_secs_f64(),
        run_dir: run_dir.clone(),
    };
    std::fs::write(run_dir.join("ready.json"), serde_json::to_string(&ready)?)?;
    if !detached {
        print_ready(&ready);
        println!("Press Ctrl-C (or run `gameday down`) to stop everything.");
    }
    // `gameday inject` talks to this process; what it left active is
    // undone before the stack stops.
    let code = {
        let control_stop = tokio_util::sync::CancellationToken::new();
        let control =
            super::inject::serve(&platform, platform.events(), &run_dir, control_stop.clone());
        tokio::pin!(control);
        let mut control_ended = false;
        let code = tokio::select! {
            _ = tokio::signal::ctrl_c() => exit_codes::INTERRUPTED,
            _ = term.recv() => exit_codes::OK,
            served = &mut control => {
                control_ended = true;
                if let Err(e) = served {
                    eprintln!("gameday: the control socket failed: {e:#}");
                }
                exit_codes::ERROR
            }
        };
        control_stop.cancel();
        if !control_ended {
            let _ = control.await;
        }
        code
    };
    eprintln!("gameday: stopping the shop");
    platform.shutdown().await;
    stacks::clear_current(Some(&run_dir));
    eprintln!("gameday: stopped");
    Ok(code)
}

fn print_ready(ready: &Ready) {
    println!("The shop is ready after {:.1} s.", ready.seconds);
    println!("  storefront: {}", ready.entry_url);
    println!("  files:      {}", ready.run_dir.display());
    println!("  status:     gameday status");
}

async fn detach(args: &UpArgs, run_dir: &std::path::Path) -> anyhow::Result<i32> {
    std::fs::create_dir_all(run_dir)?;
    let log_path = run_dir.join("supervisor.log");
    let log = std::fs::File::create(&log_path)?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("up")
        .arg("--supervise")
        .arg("--run-dir")
        .arg(run_dir);
    if let Some(s) = &args.scenario {
        cmd.arg("--scenario").arg(s);
    }
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; it detaches the supervisor from
    // this terminal so closing the shell does not stop the stack.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().context("starting the supervisor")?;
    eprintln!(
        "gameday: starting the shop in the background; files in {}",
        run_dir.display()
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok(text) = std::fs::read_to_string(run_dir.join("ready.json"))
            && let Ok(ready) = serde_json::from_str::<Ready>(&text)
        {
            print_ready(&ready);
            println!(
                "  supervisor: pid {} (stop everything with `gameday down`)",
                child.id()
            );
            return Ok(exit_codes::OK);
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "the supervisor exited ({status}) before the shop was ready:\n{}",
                log_tail(&log_path, 30)
            );
        }
        if Instant::now() > deadline {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            bail!(
                "the shop was not ready after 5 minutes; see {}",
                log_path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
