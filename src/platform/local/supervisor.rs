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
    LocalBackend, control,
    errors::{Error, Result},
    process::{group_rss_kib, log_tail, pid_alive},
    stacks::{self, CurrentStack},
};
use crate::{
    events::EventLog,
    platform::{
        FaultRequest, Kept, Platform, Purpose, Removed, StatusReport, StopCause, UpReport, Usage,
        lifecycle,
    },
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
    platform: Box<dyn Platform>,
    events: Arc<EventLog>,
    ready: Ready,
    requests: Option<mpsc::Receiver<FaultRequest>>,
    stop: CancellationToken,
    cause: Arc<std::sync::Mutex<StopCause>>,
    control: JoinHandle<Result<()>>,
    control_stop: CancellationToken,
}

/// Refuses a second stack while one is up.
pub fn refuse_second() -> Result<()> {
    match stacks::read_current().filter(CurrentStack::supervisor_alive) {
        Some(c) => Err(Error::AlreadyUp {
            pid: c.supervisor_pid,
            run_dir: c.run_dir,
        }),
        None => Ok(()),
    }
}

/// Starts the stack in this process (the lifecycle of every platform) and
/// serves `inject` requests; None when Ctrl-C or SIGTERM came first (what
/// was started is stopped).
pub async fn start(backend: LocalBackend, run_dir: PathBuf) -> Result<Option<Supervisor>> {
    std::fs::create_dir_all(&run_dir).map_err(|e| Error::io(&run_dir, e))?;
    let started = Instant::now();
    let events = Arc::new(EventLog::new(Some(&run_dir.join("events.jsonl")))?);
    let signal_error = |e| Error::io("signal handler", e);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(signal_error)?;
    let purpose = Purpose::Run {
        files: run_dir.clone(),
    };
    let opened = lifecycle::open(Arc::new(backend), purpose, events.clone());
    let platform = tokio::select! {
        p = opened => p.map_err(|e| Error::Supervisor(e.to_string()))?,
        _ = tokio::signal::ctrl_c() => return Ok(None),
        _ = term.recv() => return Ok(None),
    };
    stacks::write_current(&CurrentStack {
        run_dir: run_dir.clone(),
        supervisor_pid: std::process::id(),
        started_at: chrono::Utc::now().to_rfc3339(),
    })?;
    let ready = Ready {
        entry_url: platform.entry_url().to_string(),
        seconds: started.elapsed().as_secs_f64(),
        run_dir: run_dir.clone(),
    };
    let ready_path = run_dir.join("ready.json");
    std::fs::write(
        &ready_path,
        serde_json::to_string(&ready).unwrap_or_default(),
    )
    .map_err(|e| Error::io(&ready_path, e))?;
    let stop = CancellationToken::new();
    let cause = Arc::new(std::sync::Mutex::new(StopCause::Terminated));
    {
        let (stop, cause) = (stop.clone(), cause.clone());
        tokio::spawn(async move {
            let c = tokio::select! {
                _ = tokio::signal::ctrl_c() => StopCause::Interrupted,
                _ = term.recv() => StopCause::Terminated,
            };
            set_cause(&cause, c);
            stop.cancel();
        });
    }
    let (tx, rx) = mpsc::channel(8);
    let control_stop = CancellationToken::new();
    let control = {
        let (dir, control_stop, stop, cause) = (
            run_dir.clone(),
            control_stop.clone(),
            stop.clone(),
            cause.clone(),
        );
        tokio::spawn(async move {
            let served = control::serve(&dir, tx, control_stop).await;
            if served.is_err() {
                set_cause(&cause, StopCause::Failed);
                stop.cancel();
            }
            served
        })
    };
    Ok(Some(Supervisor {
        platform,
        events,
        ready,
        requests: Some(rx),
        stop,
        cause,
        control,
        control_stop,
    }))
}

fn set_cause(cause: &std::sync::Mutex<StopCause>, c: StopCause) {
    if let Ok(mut guard) = cause.lock() {
        *guard = c;
    }
}

impl Ready {
    fn report(&self, notes: Vec<String>) -> UpReport {
        UpReport {
            place: format!(
                "the shop on this machine, ready after {:.1} s",
                self.seconds
            ),
            created: true,
            entry_url: self.entry_url.clone(),
            notes: [
                vec![format!("files: {}", self.run_dir.display())],
                notes,
                vec!["status: gameday status".into()],
            ]
            .concat(),
            remove_with: "Ctrl-C here (or `gameday down` from any shell) stops everything".into(),
        }
    }
}

#[async_trait::async_trait]
impl Kept for Supervisor {
    fn report(&self) -> UpReport {
        self.ready.report(Vec::new())
    }

    fn platform(&self) -> &dyn Platform {
        &*self.platform
    }

    fn events(&self) -> &EventLog {
        &self.events
    }

    fn take_requests(&mut self) -> Option<mpsc::Receiver<FaultRequest>> {
        self.requests.take()
    }

    fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops serving, stops the stack, forgets it.
    async fn finish(self: Box<Self>) -> StopCause {
        self.control_stop.cancel();
        let _ = self.control.await;
        self.platform.shutdown().await;
        stacks::clear_current(Some(&self.ready.run_dir));
        self.cause.lock().map_or(StopCause::Terminated, |c| *c)
    }
}

/// Starts a supervisor process (`gameday up --supervise`) and returns once
/// the shop is ready.
pub async fn detach(scenario: Option<&Path>, run_dir: &Path) -> Result<UpReport> {
    let failed = Error::Supervisor;
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
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok(text) = std::fs::read_to_string(run_dir.join("ready.json"))
            && let Ok(ready) = serde_json::from_str::<Ready>(&text)
        {
            let mut report = ready.report(vec![format!("supervisor: pid {}", child.id())]);
            report.remove_with = "`gameday down` stops everything".into();
            return Ok(report);
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
pub async fn down() -> Result<Removed> {
    let what = "the local stack".to_string();
    let Some(current) = stacks::read_current() else {
        return Ok(Removed {
            what,
            place: "on this machine".into(),
            existed: false,
            notes: Vec::new(),
        });
    };
    let status = current.status();
    let started = Instant::now();
    let mut notes = Vec::new();
    if current.supervisor_alive() {
        let pid = Pid::from_raw(current.supervisor_pid as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(90);
        while pid_alive(current.supervisor_pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if pid_alive(current.supervisor_pid) {
            notes.push(format!(
                "the supervisor (pid {}) did not stop in 90 s and was killed",
                current.supervisor_pid
            ));
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
        return Err(Error::Survived { pids: still });
    }
    if let Some(s) = &status
        && let Some(addr) = s
            .entry_url
            .strip_prefix("http://")
            .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        && std::net::TcpListener::bind(addr).is_err()
    {
        return Err(Error::PortInUse { addr });
    }
    if leftovers > 0 {
        notes.push(format!(
            "killed {leftovers} process group(s) the supervisor left behind"
        ));
    }
    notes.push(format!(
        "stopped in {:.1} s; no process of the stack remains",
        started.elapsed().as_secs_f64()
    ));
    Ok(Removed {
        what,
        place: "on this machine".into(),
        existed: true,
        notes,
    })
}

/// The stack `gameday up` started, as its status file says, with each
/// process group's resident memory; and whether its supervisor is alive.
pub fn status() -> Result<Option<StatusReport>> {
    let Some(current) = stacks::read_current() else {
        return Ok(None);
    };
    let Some(mut inventory) = current.status() else {
        return Err(Error::NoStatusFile {
            run_dir: current.run_dir.clone(),
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
    inventory.cost = super::cost::cost_by_group(&groups);
    let heading = format!(
        "Local stack in {}{}",
        current.run_dir.display(),
        if current.supervisor_alive() {
            ""
        } else {
            " (its supervisor is NOT RUNNING: run `gameday down` to clean up)"
        }
    );
    Ok(Some(StatusReport { heading, inventory }))
}
