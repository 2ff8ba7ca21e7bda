//! The local platform: the whole highly available shop on one machine.
//!
//! Infrastructure (MariaDB primary + standby, Redis, RabbitMQ) runs on
//! 127.0.0.1; HAProxy is the load balancer; each "instance" is a loopback
//! address 127.0.N.1 whose replicas bind there. A reconciler keeps the
//! placement true (a killed replica is replaced on its instance, like a pod;
//! a terminated instance comes back as a new instance with a new address
//! after a boot delay, like an Auto Scaling group) and an HPA-like autoscaler
//! changes the placement from replica CPU. Every change is an event.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::{sync::Mutex, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use super::{
    database::{DatabasePair, FailoverReport},
    haproxy::{Haproxy, HaproxyConfig, RuntimeApi, backend},
    infra::{RabbitMq, Redis, Server},
    process::{cpu_seconds, free_port},
    shop::{Replica, SERVICES, ShopEnv},
};
use crate::{
    errors::{Error, Result},
    events::EventLog,
    scenario::Topology,
};

/// The CPU a replica requests, in cores: utilisation is measured against it
/// (as a Kubernetes HPA measures against the pod's request).
pub const CPU_REQUEST_CORES: f64 = 0.25;
/// Scale-down waits until every recommendation in this window agrees.
pub const SCALE_DOWN_WINDOW: Duration = Duration::from_secs(30);
/// How far from the target utilisation still counts as on target.
pub const TOLERANCE: f64 = 0.1;
const RECONCILE_EVERY: Duration = Duration::from_millis(250);
const AUTOSCALE_EVERY: Duration = Duration::from_secs(1);
const STOP_GRACE: Duration = Duration::from_secs(12);
const INFRA_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    Booting,
    Running,
    Terminated,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub name: String,
    pub address: String,
    pub state: InstanceState,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicaStatus {
    pub service: String,
    pub name: String,
    pub instance: String,
    pub pid: Option<u32>,
    pub url: String,
    pub ready: bool,
    pub serving: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InfraStatus {
    pub name: String,
    pub pid: Option<u32>,
    pub address: String,
}

/// What runs where: `gameday status --json` (DESIGN.md section 8).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub entry_url: String,
    pub admin_token: String,
    pub run_dir: PathBuf,
    pub instances: Vec<InstanceStatus>,
    pub replicas: Vec<ReplicaStatus>,
    pub infra: Vec<InfraStatus>,
}

struct Instance {
    name: String,
    address: IpAddr,
    state: InstanceState,
    boots_at: Option<Instant>,
}

struct ReplicaEntry {
    replica: Replica,
    instance: String,
    ready: bool,
    serving: bool,
    in_lb: bool,
    /// Being stopped on purpose (scale-in, graceful stop): its exit is expected.
    stopping: Option<Instant>,
    /// Why it is going away, for the exit event.
    fate: Option<&'static str>,
}

struct Infra {
    redis: Redis,
    db: DatabasePair,
    rabbit: RabbitMq,
    haproxy: Haproxy,
}

impl Infra {
    fn cache(&mut self) -> (&'static str, &mut Redis, SocketAddr) {
        let addr = self.redis.addr;
        ("cache", &mut self.redis, addr)
    }
    fn broker(&mut self) -> (&'static str, &mut RabbitMq, SocketAddr) {
        let addr = self.rabbit.addr;
        ("broker", &mut self.rabbit, addr)
    }
}

/// The infrastructure servers a fault can take down for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfraServer {
    Cache,
    Broker,
}

enum ServerAction {
    Restart,
    Stop,
    Start,
}

struct State {
    instances: Vec<Instance>,
    replicas: Vec<ReplicaEntry>,
    /// instance -> service -> replicas wanted there
    placement: BTreeMap<String, BTreeMap<String, u32>>,
    next_instance: u32,
    counters: BTreeMap<String, u32>,
    infra: Infra,
    dirty: bool,
}

struct Shared {
    run_dir: PathBuf,
    topology: Topology,
    events: Arc<EventLog>,
    lb: RuntimeApi,
    entry: SocketAddr,
    writer: SocketAddr,
    admin_token: String,
    env: ShopEnv,
    http: reqwest::Client,
    shutdown: CancellationToken,
    state: Mutex<State>,
}

pub struct LocalPlatform {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    stopped: bool,
}

fn instance_address(index: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, (index % 250 + 1) as u8, 1))
}

impl LocalPlatform {
    /// Starts everything and waits until every replica is serving.
    pub async fn up(run_dir: &Path, topology: Topology, events: Arc<EventLog>) -> Result<Self> {
        std::fs::create_dir_all(run_dir).map_err(|e| Error::io(run_dir, e))?;
        events.emit(
            "platform.starting",
            json!({"run_dir": run_dir, "instances": topology.instances}),
        );
        let infra_dir = run_dir.join("infra");
        let (redis, db, rabbit) = tokio::join!(
            Redis::start(infra_dir.join("redis"), INFRA_IP, None),
            DatabasePair::start(infra_dir.join("mariadb"), INFRA_IP),
            RabbitMq::start(infra_dir.join("rabbitmq"), INFRA_IP, None),
        );
        let (redis, db, rabbit) = (redis?, db?, rabbit?);
        events.emit("infra.ready", json!({"redis": redis.addr, "mariadb_primary": db.primary.addr, "rabbitmq": rabbit.addr}));

        let internal: BTreeMap<String, SocketAddr> = SERVICES
            .iter()
            .map(|s| {
                Ok((
                    s.to_string(),
                    SocketAddr::new(INFRA_IP, free_port(INFRA_IP)?),
                ))
            })
            .collect::<Result<_>>()?;
        let entry = SocketAddr::new(INFRA_IP, free_port(INFRA_IP)?);
        let writer = SocketAddr::new(INFRA_IP, free_port(INFRA_IP)?);
        let haproxy = Haproxy::start(HaproxyConfig {
            dir: infra_dir.join("haproxy"),
            public: entry,
            internal: internal.clone(),
            writer,
            primary: db.primary.addr,
        })
        .await?;
        events.emit("lb.ready", json!({"entry": entry, "writer": writer}));

        let admin_token = uuid::Uuid::new_v4().simple().to_string();
        let mut env = ShopEnv::default();
        env.set(
            "mysql_url",
            format!("mysql://shop:shop@{writer}/shop?ssl-mode=disabled"),
        )
        .set("redis_url", redis.url())
        .set("amqp_url", rabbit.url())
        .set("admin_token", &admin_token)
        .set("jwt_secret", uuid::Uuid::new_v4().simple())
        .set("drain_delay", "1200ms")
        .set("grace_period", "10s");
        env.set_service_urls(|service| format!("http://{}", internal[service]));

        let mut instances = Vec::new();
        let mut placement: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
        for i in 0..topology.instances {
            let name = format!("i-{}", i + 1);
            instances.push(Instance {
                name: name.clone(),
                address: instance_address(i),
                state: InstanceState::Running,
                boots_at: None,
            });
            placement.insert(name, BTreeMap::new());
        }
        let names: Vec<String> = placement.keys().cloned().collect();
        for (s, service) in SERVICES.iter().enumerate() {
            for r in 0..topology.initial_replicas(service) {
                let instance = &names[(s + r as usize) % names.len()];
                *placement
                    .get_mut(instance)
                    .expect("instance")
                    .entry(service.to_string())
                    .or_default() += 1;
            }
        }
        let lb = haproxy.api();
        let shared = Arc::new(Shared {
            run_dir: run_dir.to_path_buf(),
            events: events.clone(),
            lb,
            entry,
            writer,
            admin_token,
            env,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(1))
                .build()
                .unwrap_or_default(),
            shutdown: CancellationToken::new(),
            state: Mutex::new(State {
                instances,
                replicas: Vec::new(),
                placement,
                next_instance: topology.instances,
                counters: BTreeMap::new(),
                infra: Infra {
                    redis,
                    db,
                    rabbit,
                    haproxy,
                },
                dirty: true,
            }),
            topology,
        });
        let mut platform = LocalPlatform {
            shared: shared.clone(),
            tasks: Vec::new(),
            stopped: false,
        };
        reconcile(&shared).await;
        platform
            .tasks
            .push(tokio::spawn(reconcile_loop(shared.clone())));
        platform
            .tasks
            .push(tokio::spawn(autoscale_loop(shared.clone())));
        platform.wait_all_serving(Duration::from_secs(120)).await?;
        events.emit("platform.ready", json!({"entry_url": platform.entry_url()}));
        Ok(platform)
    }

    pub fn entry_url(&self) -> String {
        format!("http://{}", self.shared.entry)
    }

    pub fn writer_addr(&self) -> SocketAddr {
        self.shared.writer
    }

    pub fn admin_token(&self) -> &str {
        &self.shared.admin_token
    }

    pub fn run_dir(&self) -> &Path {
        &self.shared.run_dir
    }

    pub fn events(&self) -> &Arc<EventLog> {
        &self.shared.events
    }

    pub fn lb(&self) -> &RuntimeApi {
        &self.shared.lb
    }

    /// Waits until the placement is met on every live instance (booting ones
    /// included) and every replica is serving.
    pub async fn wait_all_serving(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let (done, waiting) = {
                let st = self.shared.state.lock().await;
                let wanted: u32 = st
                    .instances
                    .iter()
                    .filter(|i| i.state != InstanceState::Terminated)
                    .map(|i| {
                        st.placement
                            .get(&i.name)
                            .map_or(0, |m| m.values().sum::<u32>())
                    })
                    .sum();
                let serving = st
                    .replicas
                    .iter()
                    .filter(|r| r.serving && r.stopping.is_none())
                    .count() as u32;
                let waiting: Vec<String> = st
                    .replicas
                    .iter()
                    .filter(|r| !r.serving)
                    .map(|r| r.replica.name.clone())
                    .collect();
                (serving >= wanted && waiting.is_empty(), waiting)
            };
            if done {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Command {
                    name: "gameday up".into(),
                    detail: format!(
                        "not serving after {timeout:?}: {}; see {}/logs",
                        waiting.join(", "),
                        self.shared.run_dir.display()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn status(&self) -> Status {
        let st = self.shared.state.lock().await;
        status_of(&self.shared, &st)
    }

    /// SIGKILLs replicas: by name, or `count` of a service's. Returns their names.
    pub async fn kill_replicas(&self, service: &str, count: usize) -> Result<Vec<String>> {
        self.signal_replicas(service, count, Signal::SIGKILL, "killed")
            .await
    }

    /// SIGTERM (graceful stop) to replicas; the reconciler replaces them.
    pub async fn stop_replicas(&self, service: &str, count: usize) -> Result<Vec<String>> {
        self.signal_replicas(service, count, Signal::SIGTERM, "stopped")
            .await
    }

    async fn signal_replicas(
        &self,
        selector: &str,
        count: usize,
        signal: Signal,
        fate: &'static str,
    ) -> Result<Vec<String>> {
        let mut st = self.shared.state.lock().await;
        let mut hit = Vec::new();
        for entry in st
            .replicas
            .iter_mut()
            .filter(|r| r.stopping.is_none() && r.fate.is_none())
        {
            if hit.len() >= count {
                break;
            }
            if entry.replica.service == selector || entry.replica.name == selector {
                if let Some(p) = entry.replica.process_mut() {
                    p.signal(signal);
                }
                entry.fate = Some(fate);
                hit.push(entry.replica.name.clone());
                self.shared.events.emit(
                    &format!("replica.{fate}"),
                    json!({"service": entry.replica.service, "replica": entry.replica.name, "instance": entry.instance, "pid": entry.replica.pid()}),
                );
            }
        }
        if hit.is_empty() {
            return Err(Error::Command {
                name: "kill replica".into(),
                detail: format!("no running replica matches `{selector}`"),
            });
        }
        Ok(hit)
    }

    /// Terminates an instance: every process on it dies; a replacement with
    /// a new address boots after the topology's boot delay.
    pub async fn terminate_instance(&self, name: &str) -> Result<String> {
        let mut st = self.shared.state.lock().await;
        let Some(idx) = st
            .instances
            .iter()
            .position(|i| i.name == name && i.state != InstanceState::Terminated)
        else {
            return Err(Error::Command {
                name: "terminate instance".into(),
                detail: format!("no live instance `{name}`"),
            });
        };
        st.instances[idx].state = InstanceState::Terminated;
        for entry in st.replicas.iter_mut().filter(|r| r.instance == name) {
            if let Some(p) = entry.replica.process_mut() {
                p.signal(Signal::SIGKILL);
            }
            entry.fate = Some("lost");
        }
        let index = st.next_instance;
        st.next_instance += 1;
        let replacement = format!("i-{}", index + 1);
        let wanted = st.placement.remove(name).unwrap_or_default();
        st.placement.insert(replacement.clone(), wanted);
        let boot_delay = self.shared.topology.boot_delay;
        st.instances.push(Instance {
            name: replacement.clone(),
            address: instance_address(index),
            state: InstanceState::Booting,
            boots_at: Some(Instant::now() + boot_delay),
        });
        st.dirty = true;
        let address = st.instances[idx].address;
        self.shared.events.emit(
            "instance.terminated",
            json!({"instance": name, "address": address.to_string()}),
        );
        self.shared.events.emit(
            "instance.launching",
            json!({"instance": replacement, "replaces": name, "address": instance_address(index).to_string(), "boot_delay_ms": boot_delay.as_millis() as u64}),
        );
        Ok(replacement)
    }

    /// Names of the instances that are running now.
    pub async fn running_instances(&self) -> Vec<String> {
        let st = self.shared.state.lock().await;
        st.instances
            .iter()
            .filter(|i| i.state == InstanceState::Running)
            .map(|i| i.name.clone())
            .collect()
    }

    /// Kills the database primary, promotes the standby and moves the writer
    /// endpoint; with `rebuild`, starts a new standby afterwards.
    pub async fn failover_database(&self, rebuild: bool) -> Result<FailoverReport> {
        let mut st = self.shared.state.lock().await;
        let report = st
            .infra
            .db
            .failover(&self.shared.lb, &self.shared.events, rebuild)
            .await?;
        st.dirty = true;
        Ok(report)
    }

    /// Restarts Redis (graceful stop, start on the same address and data).
    pub async fn restart_cache(&self) -> Result<()> {
        self.server_action(Infra::cache, ServerAction::Restart)
            .await
    }

    /// Restarts RabbitMQ (graceful stop, start with the same node and data).
    pub async fn restart_broker(&self) -> Result<()> {
        self.server_action(Infra::broker, ServerAction::Restart)
            .await
    }

    /// Stops or starts the cache (Redis) or broker (RabbitMQ): a lasting
    /// outage and its undo. Starting a running server does nothing.
    pub async fn set_server_running(&self, what: InfraServer, running: bool) -> Result<()> {
        let action = if running {
            ServerAction::Start
        } else {
            ServerAction::Stop
        };
        match what {
            InfraServer::Cache => self.server_action(Infra::cache, action).await,
            InfraServer::Broker => self.server_action(Infra::broker, action).await,
        }
    }

    /// Acts on one infrastructure server, with `<what>.stopping`,
    /// `<what>.stopped`, `<what>.restarted` or `<what>.started` events.
    async fn server_action<S: Server>(
        &self,
        pick: impl Fn(&mut Infra) -> (&'static str, &mut S, SocketAddr),
        action: ServerAction,
    ) -> Result<()> {
        let mut st = self.shared.state.lock().await;
        let (what, server, address) = pick(&mut st.infra);
        let events = &self.shared.events;
        match action {
            ServerAction::Restart => {
                events.emit(&format!("{what}.stopping"), json!({}));
                server.restart().await?;
                events.emit(&format!("{what}.restarted"), json!({"address": address}));
            }
            ServerAction::Stop => {
                events.emit(&format!("{what}.stopping"), json!({}));
                server.stop();
                events.emit(&format!("{what}.stopped"), json!({"address": address}));
            }
            ServerAction::Start => {
                if server.running().is_none() {
                    server.launch().await?;
                    events.emit(&format!("{what}.started"), json!({"address": address}));
                }
            }
        }
        st.dirty = true;
        Ok(())
    }

    /// Stops everything: replicas (gracefully), HAProxy, then the servers.
    pub async fn shutdown(mut self) {
        self.stop_everything().await;
    }

    async fn stop_everything(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        self.shared.shutdown.cancel();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        let mut st = self.shared.state.lock().await;
        for r in st.replicas.iter_mut() {
            if let Some(p) = r.replica.process_mut() {
                p.signal(Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline && st.replicas.iter_mut().any(|r| r.replica.is_running()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for r in st.replicas.iter_mut() {
            r.replica.kill();
        }
        st.replicas.clear();
        if let Some(mut p) = st.infra.haproxy.take_process() {
            p.stop(Duration::from_secs(5));
        }
        st.infra.rabbit.stop();
        st.infra.redis.stop();
        st.infra.db.kill_all();
        self.shared.events.emit("platform.stopped", json!({}));
    }
}

impl Drop for LocalPlatform {
    /// Without an orderly shutdown (an error, a panic), kill everything now.
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        self.shared.shutdown.cancel();
        for t in &self.tasks {
            t.abort();
        }
        super::process::kill_all_children();
    }
}

fn status_of(shared: &Shared, st: &State) -> Status {
    let mut infra = vec![
        InfraStatus {
            name: "haproxy".into(),
            pid: st.infra.haproxy.pid(),
            address: shared.entry.to_string(),
        },
        InfraStatus {
            name: "mariadb-writer".into(),
            pid: st.infra.haproxy.pid(),
            address: shared.writer.to_string(),
        },
        InfraStatus {
            name: "mariadb-primary".into(),
            pid: st.infra.db.primary.pid(),
            address: st.infra.db.primary.addr.to_string(),
        },
    ];
    if let Some(s) = &st.infra.db.standby {
        infra.push(InfraStatus {
            name: "mariadb-standby".into(),
            pid: s.pid(),
            address: s.addr.to_string(),
        });
    }
    infra.push(InfraStatus {
        name: "redis".into(),
        pid: st.infra.redis.pid(),
        address: st.infra.redis.addr.to_string(),
    });
    infra.push(InfraStatus {
        name: "rabbitmq".into(),
        pid: st.infra.rabbit.pid(),
        address: st.infra.rabbit.addr.to_string(),
    });
    Status {
        entry_url: format!("http://{}", shared.entry),
        admin_token: shared.admin_token.clone(),
        run_dir: shared.run_dir.clone(),
        instances: st
            .instances
            .iter()
            .map(|i| InstanceStatus {
                name: i.name.clone(),
                address: i.address.to_string(),
                state: i.state,
            })
            .collect(),
        replicas: st
            .replicas
            .iter()
            .map(|r| ReplicaStatus {
                service: r.replica.service.clone(),
                name: r.replica.name.clone(),
                instance: r.instance.clone(),
                pid: r.replica.pid(),
                url: r.replica.url(),
                ready: r.ready,
                serving: r.serving,
            })
            .collect(),
        infra,
    }
}

async fn reconcile_loop(shared: Arc<Shared>) {
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(RECONCILE_EVERY) => reconcile(&shared).await,
        }
    }
}

/// One pass: forget replicas that exited, boot instances whose time has
/// come, start or stop replicas until the placement holds, save the status.
async fn reconcile(shared: &Arc<Shared>) {
    let mut st = shared.state.lock().await;
    let st = &mut *st;

    // Replicas that exited.
    let mut i = 0;
    while i < st.replicas.len() {
        if st.replicas[i].replica.is_running() {
            i += 1;
            continue;
        }
        let mut entry = st.replicas.remove(i);
        if entry.in_lb {
            let _ = shared
                .lb
                .remove_server(&backend(&entry.replica.service), &entry.replica.name)
                .await;
        }
        entry.replica.kill();
        let reason = match (entry.fate, entry.stopping) {
            (Some(f), _) => f,
            (None, Some(_)) => "scaled-in",
            (None, None) => "crashed",
        };
        shared.events.emit(
            "replica.exited",
            json!({"service": entry.replica.service, "replica": entry.replica.name, "instance": entry.instance, "reason": reason}),
        );
        st.dirty = true;
    }

    // Replicas being stopped that overstay their grace period.
    for entry in st.replicas.iter_mut() {
        if entry.stopping.is_some_and(|t| t.elapsed() > STOP_GRACE)
            && let Some(p) = entry.replica.process_mut()
        {
            p.signal(Signal::SIGKILL);
        }
    }

    // Instances that finished booting.
    for inst in st.instances.iter_mut() {
        if inst.state == InstanceState::Booting
            && inst.boots_at.is_some_and(|t| Instant::now() >= t)
        {
            inst.state = InstanceState::Running;
            inst.boots_at = None;
            shared.events.emit(
                "instance.running",
                json!({"instance": inst.name, "address": inst.address.to_string()}),
            );
            st.dirty = true;
        }
    }

    // The placement.
    let running: Vec<(String, IpAddr)> = st
        .instances
        .iter()
        .filter(|i| i.state == InstanceState::Running)
        .map(|i| (i.name.clone(), i.address))
        .collect();
    for (instance, address) in running {
        for service in SERVICES {
            let wanted = st
                .placement
                .get(&instance)
                .and_then(|m| m.get(service))
                .copied()
                .unwrap_or(0) as usize;
            let alive: Vec<usize> = st
                .replicas
                .iter()
                .enumerate()
                .filter(|(_, r)| {
                    r.instance == instance
                        && r.replica.service == service
                        && r.stopping.is_none()
                        && r.fate.is_none()
                })
                .map(|(i, _)| i)
                .collect();
            if alive.len() < wanted {
                for _ in alive.len()..wanted {
                    if let Err(e) = start_replica(shared, st, service, &instance, address) {
                        tracing::error!(error = %e, service, instance, "cannot start a replica");
                    }
                }
            } else if alive.len() > wanted {
                // Scale in: the newest first, drained before SIGTERM.
                for &idx in alive.iter().rev().take(alive.len() - wanted) {
                    let entry = &mut st.replicas[idx];
                    entry.stopping = Some(Instant::now());
                    if entry.in_lb {
                        let _ = shared
                            .lb
                            .drain_server(&backend(service), &entry.replica.name)
                            .await;
                    }
                    if let Some(p) = entry.replica.process_mut() {
                        p.signal(Signal::SIGTERM);
                    }
                    shared.events.emit(
                        "replica.stopping",
                        json!({"service": service, "replica": entry.replica.name, "instance": entry.instance, "reason": "scale-in"}),
                    );
                }
                st.dirty = true;
            }
        }
    }

    if st.dirty {
        st.dirty = false;
        let status = status_of(shared, st);
        write_status(&shared.run_dir, &status);
    }
}

pub fn write_status(run_dir: &Path, status: &Status) {
    let path = run_dir.join("status.json");
    let tmp = run_dir.join("status.json.tmp");
    if let Ok(text) = serde_json::to_string_pretty(status)
        && std::fs::write(&tmp, text).is_ok()
    {
        let _ = std::fs::rename(&tmp, &path);
    }
}

fn start_replica(
    shared: &Arc<Shared>,
    st: &mut State,
    service: &'static str,
    instance: &str,
    address: IpAddr,
) -> Result<()> {
    let n = st.counters.entry(service.to_string()).or_insert(0);
    *n += 1;
    let name = format!("{service}-{n}");
    let addr = SocketAddr::new(address, free_port(address)?);
    let log = shared.run_dir.join("logs").join(format!("{name}.log"));
    let replica = Replica::spawn(service, &name, instance, addr, &shared.env, &log)?;
    let scale_out = st
        .replicas
        .iter()
        .filter(|r| r.replica.service == service)
        .count() as u32
        >= shared.topology.initial_replicas(service)
        && shared.topology.autoscale.contains_key(service);
    shared.events.emit(
        "replica.started",
        json!({"service": service, "replica": name, "instance": instance, "pid": replica.pid(), "address": addr.to_string(), "scale_out": scale_out}),
    );
    st.replicas.push(ReplicaEntry {
        replica,
        instance: instance.to_string(),
        ready: false,
        serving: false,
        in_lb: false,
        stopping: None,
        fate: None,
    });
    st.dirty = true;
    tokio::spawn(follow_replica(shared.clone(), service, name, addr));
    Ok(())
}

/// Waits for a new replica to be ready, adds it to the load balancer, then
/// waits for the load balancer to report it UP.
async fn follow_replica(
    shared: Arc<Shared>,
    service: &'static str,
    name: String,
    addr: SocketAddr,
) {
    let ready_url = format!("http://{addr}/health/ready");
    let gone = |st: &State| {
        !st.replicas
            .iter()
            .any(|r| r.replica.name == name && r.fate.is_none() && r.stopping.is_none())
    };
    loop {
        if shared.shutdown.is_cancelled() || gone(&*shared.state.lock().await) {
            return;
        }
        if shared
            .http
            .get(&ready_url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    {
        let mut st = shared.state.lock().await;
        if gone(&st) {
            return;
        }
        if let Err(e) = shared.lb.add_server(&backend(service), &name, addr).await {
            tracing::error!(error = %e, replica = %name, "cannot add the replica to the load balancer");
            return;
        }
        if let Some(r) = st.replicas.iter_mut().find(|r| r.replica.name == name) {
            r.ready = true;
            r.in_lb = true;
        }
        st.dirty = true;
        shared.events.emit(
            "replica.ready",
            json!({"service": service, "replica": name}),
        );
    }
    loop {
        if shared.shutdown.is_cancelled() {
            return;
        }
        let up = shared
            .lb
            .servers()
            .await
            .map(|all| {
                all.iter()
                    .any(|s| s.server == name && s.backend == backend(service) && s.is_up())
            })
            .unwrap_or(false);
        if up {
            let mut st = shared.state.lock().await;
            if let Some(r) = st.replicas.iter_mut().find(|r| r.replica.name == name) {
                r.serving = true;
                st.dirty = true;
                shared.events.emit(
                    "replica.serving",
                    json!({"service": service, "replica": name}),
                );
            }
            return;
        }
        if gone(&*shared.state.lock().await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(Default)]
struct ScalerMemory {
    samples: BTreeMap<u32, (f64, Instant)>,
    above: bool,
    recommendations: Vec<(Instant, u32)>,
}

async fn autoscale_loop(shared: Arc<Shared>) {
    let mut memory: BTreeMap<String, ScalerMemory> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(AUTOSCALE_EVERY) => {}
        }
        for (service, cfg) in shared.topology.autoscale.clone() {
            let mem = memory.entry(service.clone()).or_default();
            autoscale_service(&shared, &service, cfg, mem).await;
        }
    }
}

/// desired = ceil(current x observed / target), within min..max; up at once,
/// down only when the whole stabilisation window agrees.
pub fn recommend(
    current: u32,
    observed_percent: f64,
    target_percent: f64,
    min: u32,
    max: u32,
) -> u32 {
    let ratio = observed_percent / target_percent;
    let raw = if (ratio - 1.0).abs() <= TOLERANCE {
        current
    } else {
        (current as f64 * ratio).ceil() as u32
    };
    raw.clamp(min, max)
}

async fn autoscale_service(
    shared: &Arc<Shared>,
    service: &str,
    cfg: crate::scenario::Autoscale,
    mem: &mut ScalerMemory,
) {
    let (pids, current) = {
        let st = shared.state.lock().await;
        let pids: Vec<u32> = st
            .replicas
            .iter()
            .filter(|r| {
                r.replica.service == service && r.ready && r.stopping.is_none() && r.fate.is_none()
            })
            .filter_map(|r| r.replica.pid())
            .collect();
        let current: u32 = st
            .instances
            .iter()
            .filter(|i| i.state != InstanceState::Terminated)
            .filter_map(|i| st.placement.get(&i.name).and_then(|m| m.get(service)))
            .sum();
        (pids, current)
    };
    let now = Instant::now();
    let mut utilisations = Vec::new();
    let mut fresh = BTreeMap::new();
    for pid in pids {
        let Some(cpu) = cpu_seconds(pid) else {
            continue;
        };
        if let Some((before, at)) = mem.samples.get(&pid) {
            let cores = (cpu - before) / now.duration_since(*at).as_secs_f64().max(0.001);
            utilisations.push(100.0 * cores / CPU_REQUEST_CORES);
        }
        fresh.insert(pid, (cpu, now));
    }
    mem.samples = fresh;
    if utilisations.is_empty() || current == 0 {
        return;
    }
    let observed = utilisations.iter().sum::<f64>() / utilisations.len() as f64;
    let above = observed > cfg.cpu_percent;
    if above && !mem.above {
        shared.events.emit(
            "autoscale.signal",
            json!({"service": service, "observed_cpu_percent": observed, "target_cpu_percent": cfg.cpu_percent, "replicas": current}),
        );
    }
    mem.above = above;
    let raw = recommend(current, observed, cfg.cpu_percent, cfg.min, cfg.max);
    mem.recommendations.push((now, raw));
    mem.recommendations
        .retain(|(t, _)| now.duration_since(*t) <= SCALE_DOWN_WINDOW);
    let desired = if raw >= current {
        raw
    } else {
        mem.recommendations
            .iter()
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(current)
            .min(current)
    };
    if desired == current {
        return;
    }
    shared.events.emit(
        "autoscale.decision",
        json!({"service": service, "from": current, "to": desired, "observed_cpu_percent": observed, "target_cpu_percent": cfg.cpu_percent}),
    );
    let mut st = shared.state.lock().await;
    let st = &mut *st;
    let live: Vec<String> = st
        .instances
        .iter()
        .filter(|i| i.state == InstanceState::Running)
        .map(|i| i.name.clone())
        .collect();
    if live.is_empty() {
        return;
    }
    let count = |st: &State, inst: &str| {
        st.placement
            .get(inst)
            .and_then(|m| m.get(service))
            .copied()
            .unwrap_or(0)
    };
    if desired > current {
        for _ in current..desired {
            let target = live
                .iter()
                .min_by_key(|i| count(st, i))
                .cloned()
                .unwrap_or_default();
            *st.placement
                .entry(target)
                .or_default()
                .entry(service.to_string())
                .or_default() += 1;
        }
    } else {
        for _ in desired..current {
            if let Some(target) = live
                .iter()
                .filter(|i| count(st, i) > 0)
                .max_by_key(|i| count(st, i))
                .cloned()
            {
                *st.placement
                    .entry(target)
                    .or_default()
                    .entry(service.to_string())
                    .or_default() -= 1;
            }
        }
    }
    mem.recommendations.clear();
    st.dirty = true;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_autoscaler_recommends_like_a_kubernetes_hpa() {
        // ceil(2 x 140 / 70) = 4
        assert_eq!(recommend(2, 140.0, 70.0, 2, 10), 4);
        // within 10% of the target: no change
        assert_eq!(recommend(3, 75.0, 70.0, 2, 10), 3);
        // bounded by max and min
        assert_eq!(recommend(4, 700.0, 70.0, 2, 6), 6);
        assert_eq!(recommend(4, 1.0, 70.0, 2, 6), 2);
        // ceil(3 x 35 / 70) = 2
        assert_eq!(recommend(3, 35.0, 70.0, 1, 6), 2);
    }
}
