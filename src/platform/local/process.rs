//! Child processes that cannot outlive gameday. Each child leads its own
//! process group, so stopping it also stops whatever it started (a shell
//! script's Erlang VM, a server's helpers). Dropping a [`Supervised`] kills
//! its group: an error or a panic in gameday leaves nothing behind.

use std::{
    collections::BTreeSet,
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};

use super::errors::{Error, Result};

/// Every live child's process group, so a last-resort cleanup can kill them
/// all without the structures that own them (see [`kill_all_children`]).
static CHILDREN: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

fn register(pid: u32) {
    if let Ok(mut set) = CHILDREN.lock() {
        set.insert(pid);
    }
}

fn unregister(pid: u32) {
    if let Ok(mut set) = CHILDREN.lock() {
        set.remove(&pid);
    }
}

/// SIGKILLs the process group of every child this process started and has
/// not reaped yet. For paths where orderly teardown is impossible (a drop
/// during a panic, a fatal error).
pub fn kill_all_children() {
    let pids: Vec<u32> = CHILDREN
        .lock()
        .map(|s| s.iter().copied().collect())
        .unwrap_or_default();
    for pid in pids {
        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
}

/// A running child process and its process group.
#[derive(Debug)]
pub struct Supervised {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Supervised {
    /// Starts `command` in a new process group, stdout and stderr appended
    /// to `log`.
    pub fn spawn(name: impl Into<String>, mut command: Command, log: &Path) -> Result<Self> {
        use std::os::unix::process::CommandExt;
        let name = name.into();
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| Error::io(log, e))?;
        let err = out.try_clone().map_err(|e| Error::io(log, e))?;
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        // If gameday dies without cleaning up (SIGKILL), the kernel kills the
        // child too. The signal fires when the *thread* that spawned the
        // child ends: spawn from long-lived threads (a tokio worker or the
        // main thread), never from a spawn_blocking thread.
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command
            .spawn()
            .map_err(|source| Error::Spawn { program, source })?;
        register(child.id());
        tracing::debug!(name, pid = child.id(), "started");
        Ok(Self {
            name,
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Sends a signal to the whole process group.
    pub fn signal(&self, signal: Signal) {
        if let Some(pid) = self.pid() {
            let _ = killpg(Pid::from_raw(pid as i32), signal);
        }
    }

    /// SIGKILL to the group, then reaps the child.
    pub fn kill(&mut self) {
        self.signal(Signal::SIGKILL);
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
            unregister(c.id());
        }
    }

    /// SIGTERM to the group; SIGKILL if it has not exited after `grace`.
    /// Returns true when it exited within the grace period.
    pub fn stop(&mut self, grace: Duration) -> bool {
        self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.is_running() {
                // Helpers may linger in the group after the leader is gone.
                self.signal(Signal::SIGKILL);
                if let Some(c) = self.child.take() {
                    unregister(c.id());
                }
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!(name = %self.name, "did not stop within {grace:?}; killing");
        self.kill();
        false
    }

    /// SIGTERM to the leader only (as an orchestrator would), and its exit
    /// status if it exits within `grace`; otherwise the group is killed.
    pub fn stop_and_wait(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.pid()?;
        let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.signal(Signal::SIGKILL);
                if let Some(c) = self.child.take() {
                    unregister(c.id());
                }
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        None
    }

    /// The last `lines` lines of the log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.kill();
        }
    }
}

pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Finds a server program on PATH (and the sbin and RabbitMQ folders, which
/// are not on every user's PATH); a missing one names the Debian package.
/// Where a server's Unix socket goes: `dir/name`, or, when that path comes
/// near what a socket address holds (108 bytes, `sun_path`; HAProxy binds
/// `PATH.PID.tmp` first; a long scenario name in a deep report directory
/// gets there), a short path in the temporary directory named by a hash
/// of the long one.
pub fn socket_path(dir: &Path, name: &str) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let path = dir.join(name);
    if path.as_os_str().len() <= 80 {
        return path;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut hasher);
    std::env::temp_dir().join(format!("gameday-{:016x}-{name}", hasher.finish()))
}

pub fn find_program(program: &str, package: &'static str) -> Result<PathBuf> {
    let mut path = std::env::var("PATH").unwrap_or_default();
    for extra in ["/usr/sbin", "/sbin", "/usr/lib/rabbitmq/bin"] {
        path.push(':');
        path.push_str(extra);
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    which::which_in(program, Some(path), cwd).map_err(|_| Error::MissingProgram {
        program: program.to_string(),
        package,
    })
}

/// The programs the local platform runs, and the Debian package of each.
pub const REQUIRED_PROGRAMS: [(&str, &str); 6] = [
    ("redis-server", "redis-server"),
    ("mariadbd", "mariadb-server"),
    ("mariadb-install-db", "mariadb-server"),
    ("rabbitmq-server", "rabbitmq-server"),
    ("epmd", "erlang-base"),
    ("haproxy", "haproxy"),
];

/// Checks that every program the local platform needs is installed.
pub fn preflight() -> Result<()> {
    for (program, package) in REQUIRED_PROGRAMS {
        find_program(program, package)?;
    }
    Ok(())
}

/// A TCP port that was free a moment ago on `ip`.
pub fn free_port(ip: std::net::IpAddr) -> Result<u16> {
    let listener = std::net::TcpListener::bind((ip, 0)).map_err(|e| Error::io("free port", e))?;
    Ok(listener
        .local_addr()
        .map_err(|e| Error::io("free port", e))?
        .port())
}

/// Polls `check` every 50 ms until it is true or `timeout` passes. One
/// attempt may take at most 2 s, so a probe that hangs cannot stall it.
pub async fn wait_until<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if matches!(
            tokio::time::timeout(Duration::from_secs(2), check()).await,
            Ok(true)
        ) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// True when something accepts TCP connections at `addr`.
pub async fn accepts_tcp(addr: std::net::SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(addr)
        )
        .await,
        Ok(Ok(_))
    )
}

/// CPU time (user + system) a process has used, in seconds, from /proc.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After "pid (comm)", utime and stime are the 12th and 13th fields.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    Some(ticks as f64 / per_second)
}

/// Resident memory of a process, in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// True when a process with this pid exists (and is not a zombie).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Resident memory of every process in a process group, in KiB.
pub fn group_rss_kib(pgid: u32) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, rest)| rest.split_whitespace().nth(2) == Some(&pgid.to_string()))
                })
                .unwrap_or(false)
        })
        .filter_map(rss_kib)
        .sum()
}

#[cfg(test)]
mod socket_tests {
    use super::*;

    #[test]
    fn a_socket_path_too_long_for_sun_path_is_moved_to_a_short_one() {
        let deep = Path::new(
            "/work/main/reports/kubernetes-gameday-on-local-20261202-160704/platform/infra/mariadb/mariadb-1",
        );
        let short = Path::new("/tmp/stack");

        let moved = socket_path(deep, "mariadbd.sock");

        assert_eq!(
            socket_path(short, "mariadbd.sock"),
            short.join("mariadbd.sock")
        );
        assert!(moved.as_os_str().len() <= 80, "{}", moved.display());
        assert!(moved.to_string_lossy().ends_with("-mariadbd.sock"));
        assert_eq!(
            moved,
            socket_path(deep, "mariadbd.sock"),
            "the same every time"
        );
        assert_ne!(moved, socket_path(&deep.join("x"), "mariadbd.sock"));
    }
}
