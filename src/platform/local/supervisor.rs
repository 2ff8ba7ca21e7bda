//! A local stack's lifecycle outside a run: `gameday up` starts the shop and
//! keeps it until Ctrl-C, SIGTERM or `gameday down` (with `--detach`, a
//! supervisor process does that), `gameday down` stops it from any shell and
//! checks nothing is left, and `gameday status` reads what runs where.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill, killpg},
    unistd::Pid,
};
use serde::{Deserialize, Serialize};
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use super::{
    LocalPlatform, control,
    process::{group_rss_kib, log_tail, pid_alive},
    stacks::{self, CurrentStack},
};
use crate::{
    errors::{Error, Result},
    events::EventLog,
    exit_codes,
    platform::{FaultRequest, Inventory, Platform, Usage},
    scenario::Topology,
};

/// What a supervisor tells the shell that started it, once ready.
#[derive(Serialize, Deserialize)]
struct Ready {
    entry_url: String,
    seconds: f64,
    run_dir: PathBuf,
}

/// A stack this process started and keeps until told to stop.
pub struct Supervisor {
    platform: LocalPlatform,
    run_dir: PathBuf,
    requests: Option<mpsc::Receiver<FaultRequest>>,
    stop: CancellationToken,
    code: Arc<std::sync::atomic::AtomicI32>,
    control: JoinHandle<Result<()>>,
    control_stop: CancellationToken,
}

/// How `start` ended.
pub enum Started {
    Running(Box<Supervisor>),
    /// Stopped before it was ready (exit code).
    Stopped(i32),
}

/// Refuses a second stack while one is up.
pub fn refuse_second() -> Option<String> {
    stacks::read_current()
        .filter(CurrentStack::supervisor_alive)
        .map(|c| {
            format!(
                "a stack is already up (supervisor pid {}, files in {}); run `gameday down` first",
                c.supervisor_pid,
                c.run_dir.display()
            )
        })
}

/// Starts the stack in this process and serves `inject` requests.
pub async fn start(topology: Topology, run_dir: PathBuf, detached: bool) -> Result<Started> {
    std::fs::create_dir_all(&run_dir).map_err(|e| Error::io(&run_dir, e))?;
    let started = Instant::now();
    let events = Arc::new(EventLog::new(Some(&run_dir.join("events.jsonl")))?);
    if !detached {
        eprintln!(
            "gameday: starting the shop ({} instances); files in {}",
            topology.instances,
            run_dir.display()
        );
    }
    let signal_error = |e| Error::io("signal handler", e);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(signal_error)?;
    let platform = tokio::select! {
        p = LocalPlatform::up(&run_dir, topology, events) => p?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("gameday: interrupted while starting; everything started was stopped");
            return Ok(Started::Stopped(exit_codes::INTERRUPTED));
        }
        _ = term.recv() => return Ok(Started::Stopped(exit_codes::OK)),
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
    let ready_path = run_dir.join("ready.json");
    std::fs::write(
        &ready_path,
        serde_json::to_string(&ready).unwrap_or_default(),
    )
    .map_err(|e| Error::io(&ready_path, e))?;
    if !detached {
        print_ready(&ready);
        println!("Press Ctrl-C (or run `gameday down`) to stop everything.");
    }
    let stop = CancellationToken::new();
    let code = Arc::new(std::sync::atomic::AtomicI32::new(exit_codes::OK));
    {
        let (stop, code) = (stop.clone(), code.clone());
        tokio::spawn(async move {
            let c = tokio::select! {
                _ = tokio::signal::ctrl_c() => exit_codes::INTERRUPTED,
                _ = term.recv() => exit_codes::OK,
            };
            code.store(c, std::sync::atomic::Ordering::SeqCst);
            stop.cancel();
        });
    }
    let (tx, rx) = mpsc::channel(8);
    let control_stop = CancellationToken::new();
    let control = {
        let (dir, control_stop, stop, code) = (
            run_dir.clone(),
            control_stop.clone(),
            stop.clone(),
            code.clone(),
        );
        tokio::spawn(async move {
            let served = control::serve(&dir, tx, control_stop).await;
            if let Err(e) = &served {
                eprintln!("gameday: the control socket failed: {e}");
                code.store(exit_codes::ERROR, std::sync::atomic::Ordering::SeqCst);
                stop.cancel();
            }
            served
        })
    };
    Ok(Started::Running(Box::new(Supervisor {
        platform,
        run_dir,
        requests: Some(rx),
        stop,
        code,
        control,
        control_stop,
    })))
}

impl Supervisor {
    pub fn platform(&self) -> &dyn Platform {
        &self.platform
    }

    pub fn events(&self) -> &EventLog {
        self.platform.events()
    }

    /// The faults `gameday inject` sends (taken once).
    pub fn take_requests(&mut self) -> Option<mpsc::Receiver<FaultRequest>> {
        self.requests.take()
    }

    /// Cancelled when the stack must stop (Ctrl-C, SIGTERM, `gameday down`).
    pub fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops serving, stops the stack, forgets it; the exit code.
    pub async fn finish(self) -> i32 {
        self.control_stop.cancel();
        let _ = self.control.await;
        eprintln!("gameday: stopping the shop");
        self.platform.shutdown().await;
        stacks::clear_current(Some(&self.run_dir));
        eprintln!("gameday: stopped");
        self.code.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn print_ready(ready: &Ready) {
    println!("The shop is ready after {:.1} s.", ready.seconds);
    println!("  storefront: {}", ready.entry_url);
    println!("  files:      {}", ready.run_dir.display());
    println!("  status:     gameday status");
}

/// Starts a supervisor process (`gameday up --supervise`) and returns once
/// the shop is ready.
pub async fn detach(scenario: Option<&Path>, run_dir: &Path) -> Result<i32> {
    let failed = |detail: String| Error::Command {
        name: "gameday up --detach".into(),
        detail,
    };
    std::fs::create_dir_all(run_dir).map_err(|e| Error::io(run_dir, e))?;
    let log_path = run_dir.join("supervisor.log");
    let log = std::fs::File::create(&log_path).map_err(|e| Error::io(&log_path, e))?;
    let exe = std::env::current_exe().map_err(|e| Error::io("the gameday executable", e))?;
    let mut cmd = Command::new(exe);
    cmd.arg("up")
        .arg("--supervise")
        .arg("--run-dir")
        .arg(run_dir);
    if let Some(s) = scenario {
        cmd.arg("--scenario").arg(s);
    }
    let log_err = log.try_clone().map_err(|e| Error::io(&log_path, e))?;
    cmd.stdin(Stdio::null()).stdout(log_err).stderr(log);
    // SAFETY: setsid is async-signal-safe; it detaches the supervisor from
    // this terminal so closing the shell does not stop the stack.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| failed(format!("starting the supervisor: {e}")))?;
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
        if let Some(status) = child.try_wait().map_err(|e| Error::io("supervisor", e))? {
            return Err(failed(format!(
                "the supervisor exited ({status}) before the shop was ready:\n{}",
                log_tail(&log_path, 30)
            )));
        }
        if Instant::now() > deadline {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            return Err(failed(format!(
                "the shop was not ready after 5 minutes; see {}",
                log_path.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn pid_of(details: &std::collections::BTreeMap<String, serde_json::Value>) -> Option<u32> {
    details
        .get("pid")
        .and_then(serde_json::Value::as_u64)
        .map(|p| p as u32)
}

/// Stops the stack `gameday up` started, from any shell: asks the
/// supervisor to stop, kills whatever a dead supervisor left behind, and
/// checks that no process remains and the storefront port is free.
pub async fn down() -> Result<i32> {
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
        let pid = Pid::from_raw(current.supervisor_pid as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(90);
        while pid_alive(current.supervisor_pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if pid_alive(current.supervisor_pid) {
            eprintln!("gameday: the supervisor did not stop in 90 s; killing it");
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
    // Whatever is left (a supervisor that crashed or was killed).
    let pids: Vec<u32> = status
        .iter()
        .flat_map(|s| {
            s.replicas
                .iter()
                .filter_map(|r| pid_of(&r.details))
                .chain(s.infra.iter().filter_map(|i| pid_of(&i.details)))
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
    let still: Vec<String> = pids
        .iter()
        .filter(|p| pid_alive(**p))
        .map(u32::to_string)
        .collect();
    stacks::clear_current(None);
    if !still.is_empty() {
        eprintln!("gameday: these processes survived: {}", still.join(", "));
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

/// The stack `gameday up` started, as its status file says, with each
/// process group's resident memory; and whether its supervisor is alive.
pub fn status() -> Result<Option<(Inventory, bool)>> {
    let Some(current) = stacks::read_current() else {
        return Ok(None);
    };
    let Some(mut inventory) = current.status() else {
        return Err(Error::Command {
            name: "status".into(),
            detail: format!(
                "the stack in {} has no status file yet",
                current.run_dir.display()
            ),
        });
    };
    let usage = |pid: Option<u32>| {
        pid.map(|p| Usage {
            cpu_s: super::process::cpu_seconds(p).unwrap_or(0.0),
            rss_mb: group_rss_kib(p) as f64 / 1024.0,
        })
    };
    for r in &mut inventory.replicas {
        r.usage = usage(pid_of(&r.details));
    }
    // A process listed twice is counted once.
    let mut counted = std::collections::BTreeSet::new();
    for i in &mut inventory.infra {
        i.usage = pid_of(&i.details)
            .filter(|p| counted.insert(*p))
            .and_then(|p| usage(Some(p)));
    }
    let mut groups: Vec<(u32, &str)> = Vec::new();
    for r in &inventory.replicas {
        if let Some(pid) = pid_of(&r.details) {
            groups.push((pid, r.service.as_str()));
        }
    }
    for i in &inventory.infra {
        let component = match i.name.as_str() {
            "haproxy" => "load balancer",
            n if n.starts_with("mariadb-") && n != "mariadb-writer" => "database",
            "redis" => "cache",
            "rabbitmq" => "broker",
            _ => continue,
        };
        if let Some(pid) = pid_of(&i.details) {
            groups.push((pid, component));
        }
    }
    let cost = super::cost::cost_by_group(&groups);
    inventory.cost = cost;
    Ok(Some((inventory, current.supervisor_alive())))
}
