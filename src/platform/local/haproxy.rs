//! The local load balancer: a real HAProxy with a generated configuration and
//! its runtime API (the stats socket) to add, remove, enable and disable
//! servers as replicas come and go, without a reload.
//!
//! - a public frontend (the storefront URL) routing /api/* by service;
//! - an internal frontend per service, for service-to-service calls;
//! - per service, a backend with active checks on /health/ready every 2 s
//!   (every 500 ms once a server fails), 2 failures to mark a server down,
//!   and retries with redispatch.
//!
//! The database is not behind it: the shop connects to the primary and
//! follows a writer file on failover (see `database.rs`).
//!
//! Replicas fill server *slots* declared in the configuration
//! (`server-template`), not servers added at run time: HAProxy 2.6 (Debian
//! 12) never reuses an idle connection to a dynamically added server, so
//! every request cost a new TCP connection to the replica (a connect, an
//! accept and a close, on both sides). With slots, connections to a replica
//! are kept and reused.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::Duration,
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::errors::{Error, Result};
use super::process::{Supervised, find_program, wait_until};

/// Which service owns which public path prefix (first match wins; the rest
/// goes to web).
pub const ROUTES: [(&str, &str); 6] = [
    ("/api/users", "user"),
    ("/api/catalogue", "catalogue"),
    ("/api/cart", "cart"),
    ("/api/orders", "orders"),
    ("/admin/", "orders"),
    ("/api/shipping", "shipping"),
];

/// Active checks every 2 s (each one a readiness request that reaches the
/// replica's dependencies); a connection error on real traffic switches to
/// fast checks at once, so a dead replica is still out within about a
/// second, and retries with redispatch cover the requests meanwhile.
const CHECK: &str = "check inter 2s fastinter 500ms downinter 1s fall 2 rise 1 \
                     observe layer4 error-limit 1 on-error fastinter";

/// How long HAProxy keeps an idle client connection open. Clients must drop
/// idle connections sooner (see `shop::CLIENT_IDLE`): a request sent on a
/// connection the server is closing at that moment fails, and with think
/// times around this value that race cost run 2 of black-friday 33 requests.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);
const _: () = assert!(crate::shop::CLIENT_IDLE.as_millis() + 2000 <= KEEP_ALIVE.as_millis());

/// Server slots per backend: the most replicas of one service that can be
/// in rotation at once (autoscaling's `max`, plus replacements starting
/// while the replicas they replace drain).
pub const SLOTS: usize = 32;
const SLOT: &str = "slot";

pub fn backend(service: &str) -> String {
    format!("be_{service}")
}

pub struct HaproxyConfig {
    pub dir: PathBuf,
    pub public: SocketAddr,
    /// service -> internal frontend address
    pub internal: BTreeMap<String, SocketAddr>,
}

impl HaproxyConfig {
    pub fn socket(&self) -> PathBuf {
        super::process::socket_path(&self.dir, "haproxy.sock")
    }

    /// The configuration. One thread: at a few thousand requests a second
    /// one is plenty, and a second thread on a small machine costs more in
    /// cross-thread wakeups than it adds.
    pub fn render(&self) -> String {
        let mut c = String::new();
        let _ = writeln!(
            c,
            "global\n    stats socket {} mode 600 level admin\n    stats timeout 30s\n    maxconn {}\n    \
             nbthread 1\n\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 60s\n    timeout server 30s\n    \
             timeout http-request 10s\n    timeout http-keep-alive {}s\n    timeout queue 5s\n    timeout check 1s\n    \
             retries 3\n    option redispatch 1\n",
            self.socket().display(),
            max_connections(),
            KEEP_ALIVE.as_secs()
        );
        let _ = writeln!(c, "frontend public\n    bind {}", self.public);
        for (i, (prefix, service)) in ROUTES.iter().enumerate() {
            let _ = writeln!(
                c,
                "    acl route{i} path_beg {prefix}\n    use_backend {} if route{i}",
                backend(service)
            );
        }
        let _ = writeln!(c, "    default_backend {}\n", backend("web"));
        for (service, addr) in &self.internal {
            let _ = writeln!(
                c,
                "frontend internal_{service}\n    bind {addr}\n    default_backend {}\n",
                backend(service)
            );
        }
        for service in self.internal.keys() {
            let _ = writeln!(
                c,
                "backend {}\n    balance roundrobin\n    option http-buffer-request\n    retry-on conn-failure empty-response\n    \
                 option httpchk GET /health/ready\n    http-check expect status 200\n    \
                 server-template {SLOT} 1-{SLOTS} 127.0.0.1:9 disabled {CHECK}\n",
                backend(service)
            );
        }
        c
    }
}

/// As many connections as the open-file limit allows (each proxied
/// connection holds two descriptors), at most 40,000, leaving room for the
/// listeners and a health-check connection per server slot.
fn max_connections() -> u64 {
    let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap_or((1024, 1024));
    let reserved = 200 + 8 * SLOTS as u64;
    (soft.saturating_sub(reserved) / 2).clamp(256, 40_000)
}

/// Raises this process's open-file limit to its hard limit; children (the
/// servers, HAProxy, the replicas) inherit it.
pub fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// A running HAProxy and its runtime API.
pub struct Haproxy {
    pub config: HaproxyConfig,
    process: Option<Supervised>,
    api: RuntimeApi,
}

impl Haproxy {
    pub async fn start(config: HaproxyConfig) -> Result<Self> {
        let program = find_program("haproxy", "haproxy")?;
        raise_open_file_limit();
        std::fs::create_dir_all(&config.dir).map_err(|e| Error::io(&config.dir, e))?;
        let file = config.dir.join("haproxy.cfg");
        std::fs::write(&file, config.render()).map_err(|e| Error::io(&file, e))?;
        let check = Command::new(&program)
            .arg("-c")
            .arg("-f")
            .arg(&file)
            .output();
        match check {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                return Err(Error::ProgramFailed {
                    program: "haproxy -c".into(),
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                });
            }
            Err(source) => {
                return Err(Error::Spawn {
                    program: "haproxy".into(),
                    source,
                });
            }
        }
        let mut cmd = Command::new(program);
        cmd.arg("-db").arg("-f").arg(&file);
        let mut process = Supervised::spawn("haproxy", cmd, &config.dir.join("haproxy.log"))?;
        let api = RuntimeApi::new(config.socket());
        let probe = api.clone();
        let up = wait_until(Duration::from_secs(10), || {
            let api = probe.clone();
            async move { api.command("show info").await.is_ok() }
        })
        .await;
        if !up || !process.is_running() {
            return Err(Error::NotReady {
                name: "haproxy".into(),
                waited: Duration::from_secs(10),
                log: process.log().to_path_buf(),
                tail: process.log_tail(20),
            });
        }
        Ok(Self {
            config,
            process: Some(process),
            api,
        })
    }

    pub fn api(&self) -> RuntimeApi {
        self.api.clone()
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(Supervised::pid)
    }

    pub fn take_process(&mut self) -> Option<Supervised> {
        self.process.take()
    }
}

/// HAProxy's runtime API over its stats socket.
#[derive(Clone, Debug)]
pub struct RuntimeApi {
    socket: PathBuf,
    slots: Arc<std::sync::Mutex<Slots>>,
}

/// Which replica fills which slot of each backend. A freed slot goes to the
/// back of the line, so a slot is reused as late as possible: connections
/// HAProxy still holds to a replica that just left are long closed by then.
#[derive(Debug, Default)]
struct Slots {
    /// backend -> replica name -> slot number
    taken: BTreeMap<String, BTreeMap<String, usize>>,
    /// backend -> free slot numbers, the longest free first
    free: BTreeMap<String, std::collections::VecDeque<usize>>,
}

impl Slots {
    fn take(&mut self, backend: &str, server: &str) -> Option<usize> {
        if let Some(n) = self.taken.get(backend).and_then(|t| t.get(server)) {
            return Some(*n);
        }
        let free = self
            .free
            .entry(backend.to_string())
            .or_insert_with(|| (1..=SLOTS).collect());
        let n = free.pop_front()?;
        self.taken
            .entry(backend.to_string())
            .or_default()
            .insert(server.to_string(), n);
        Some(n)
    }

    fn slot_of(&self, backend: &str, server: &str) -> Option<usize> {
        self.taken.get(backend)?.get(server).copied()
    }

    fn release(&mut self, backend: &str, server: &str) {
        if let Some(n) = self.taken.get_mut(backend).and_then(|t| t.remove(server)) {
            self.free
                .entry(backend.to_string())
                .or_default()
                .push_back(n);
        }
    }

    fn replica_in(&self, backend: &str, slot: usize) -> Option<&str> {
        self.taken
            .get(backend)?
            .iter()
            .find(|(_, n)| **n == slot)
            .map(|(name, _)| name.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerStatus {
    pub backend: String,
    pub server: String,
    /// UP, DOWN, MAINT, DRAIN, "UP 1/2", "no check"...
    pub status: String,
    pub addr: String,
}

impl ServerStatus {
    pub fn is_up(&self) -> bool {
        self.status == "UP"
    }
}

impl RuntimeApi {
    pub fn new(socket: impl AsRef<Path>) -> Self {
        Self {
            socket: socket.as_ref().to_path_buf(),
            slots: Default::default(),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `backend/slotN` of a replica in rotation.
    fn slot(&self, backend: &str, server: &str) -> Result<String> {
        match self.slots().slot_of(backend, server) {
            Some(n) => Ok(format!("{backend}/{SLOT}{n}")),
            None => Err(Error::Balancer(format!("{server} is not in {backend}"))),
        }
    }

    /// Sends one command and returns HAProxy's answer.
    pub async fn command(&self, command: &str) -> Result<String> {
        let exchange = async {
            let mut stream = tokio::net::UnixStream::connect(&self.socket).await?;
            stream.write_all(format!("{command}\n").as_bytes()).await?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await?;
            Ok::<_, std::io::Error>(answer)
        };
        match tokio::time::timeout(Duration::from_secs(5), exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(Error::io(&self.socket, e)),
            Err(_) => Err(Error::Balancer(format!("`{command}` timed out"))),
        }
    }

    async fn expect_ok(&self, command: &str) -> Result<()> {
        let answer = self.command(command).await?;
        let trimmed = answer.trim();
        let failed = [
            "No such", "Unknown", "Require", "error", "Error", "failed", "cannot", "Cannot",
            "Invalid", "invalid",
        ];
        if failed.iter().any(|f| trimmed.contains(f)) {
            return Err(Error::Balancer(format!("`{command}`: {trimmed}")));
        }
        Ok(())
    }

    /// Puts a replica in rotation in a free slot, with active health checks
    /// (it receives traffic once its first check passes).
    pub async fn add_server(&self, backend: &str, server: &str, addr: SocketAddr) -> Result<()> {
        let Some(n) = self.slots().take(backend, server) else {
            return Err(Error::Balancer(format!(
                "{backend} has no free slot for {server} (it has {SLOTS})"
            )));
        };
        let slot = format!("{backend}/{SLOT}{n}");
        let added = async {
            self.expect_ok(&format!(
                "set server {slot} addr {} port {}",
                addr.ip(),
                addr.port()
            ))
            .await?;
            self.expect_ok(&format!("enable health {slot}")).await?;
            self.expect_ok(&format!("set server {slot} state ready"))
                .await
        }
        .await;
        if added.is_err() {
            let _ = self
                .command(&format!("set server {slot} state maint"))
                .await;
            self.slots().release(backend, server);
        }
        added
    }

    /// Takes a replica out of rotation, closes its sessions and frees its slot.
    pub async fn remove_server(&self, backend: &str, server: &str) -> Result<()> {
        let slot = self.slot(backend, server)?;
        self.expect_ok(&format!("set server {slot} state maint"))
            .await?;
        let _ = self
            .command(&format!("shutdown sessions server {slot}"))
            .await;
        self.expect_ok(&format!("disable health {slot}")).await?;
        self.slots().release(backend, server);
        Ok(())
    }

    /// New requests stop going to the replica; existing ones finish.
    pub async fn drain_server(&self, backend: &str, server: &str) -> Result<()> {
        let slot = self.slot(backend, server)?;
        self.expect_ok(&format!("set server {slot} state drain"))
            .await
    }

    /// `show stat`: a row per frontend, backend and server, by column name.
    pub async fn stats(&self) -> Result<Vec<BTreeMap<String, String>>> {
        let csv = self.command("show stat").await?;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or("")
            .trim_start_matches("# ")
            .split(',')
            .collect();
        if !["pxname", "svname", "status"]
            .iter()
            .all(|c| header.contains(c))
        {
            return Err(Error::Balancer("`show stat`: unexpected header".into()));
        }
        Ok(lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                header
                    .iter()
                    .zip(l.split(','))
                    .map(|(h, v)| (h.to_string(), v.to_string()))
                    .collect()
            })
            .collect())
    }

    /// Every replica's server status; empty slots are left out.
    pub async fn servers(&self) -> Result<Vec<ServerStatus>> {
        let rows = self.stats().await?;
        let slots = self.slots();
        let field =
            |row: &BTreeMap<String, String>, name: &str| row.get(name).cloned().unwrap_or_default();
        Ok(rows
            .iter()
            .filter_map(|row| {
                let backend = field(row, "pxname");
                // A slot shows as the replica that fills it.
                let slot: usize = field(row, "svname").strip_prefix(SLOT)?.parse().ok()?;
                Some(ServerStatus {
                    server: slots.replica_in(&backend, slot)?.to_string(),
                    backend,
                    status: field(row, "status"),
                    addr: field(row, "addr"),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_slot_is_reused_last_and_a_full_backend_refuses_a_replica() {
        let mut slots = Slots::default();
        assert_eq!(slots.take("be_cart", "cart-1"), Some(1));
        assert_eq!(slots.take("be_cart", "cart-2"), Some(2));
        assert_eq!(
            slots.take("be_cart", "cart-1"),
            Some(1),
            "same replica, same slot"
        );
        assert_eq!(
            slots.take("be_web", "web-1"),
            Some(1),
            "backends are separate"
        );
        assert_eq!(slots.replica_in("be_cart", 2), Some("cart-2"));
        slots.release("be_cart", "cart-1");
        assert_eq!(slots.replica_in("be_cart", 1), None);
        assert_eq!(slots.slot_of("be_cart", "cart-1"), None);
        // Slot 1 is free again, but every never-used slot comes first.
        assert_eq!(slots.take("be_cart", "cart-3"), Some(3));
        for i in 4..=SLOTS {
            assert_eq!(slots.take("be_cart", &format!("x-{i}")), Some(i));
        }
        assert_eq!(slots.take("be_cart", "cart-4"), Some(1));
        assert_eq!(slots.take("be_cart", "cart-5"), None, "all {SLOTS} taken");
    }

    #[test]
    fn every_backend_declares_its_slots_and_no_database_endpoint() {
        let config = HaproxyConfig {
            dir: PathBuf::from("/tmp/x"),
            public: "127.0.0.1:8000".parse().unwrap(),
            internal: [("cart".to_string(), "127.0.0.1:8001".parse().unwrap())].into(),
        };
        let text = config.render();
        assert!(
            text.contains(&format!(
                "server-template slot 1-{SLOTS} 127.0.0.1:9 disabled check"
            )),
            "{text}"
        );
        assert!(!text.contains("mode tcp"), "{text}");
    }
}
