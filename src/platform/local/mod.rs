//! The local platform: the whole highly available shop on one machine, as
//! child processes of gameday.
//!
//! Infrastructure (MariaDB primary + standby, Redis, RabbitMQ) runs on
//! 127.0.0.1; HAProxy is the load balancer; each "instance" is a loopback
//! address 127.0.N.1 whose replicas bind there. The reconciler keeps the
//! placement true (a killed replica is replaced on its instance, like a pod;
//! a terminated instance comes back as a new instance with a new address
//! after a boot delay, like an Auto Scaling group) and an HPA-like
//! autoscaler changes the placement from replica CPU. Every change is an
//! event.

mod autoscaler;
mod backend;
pub mod control;
mod cost;
pub mod database;
mod errors;
mod faults;
pub mod haproxy;
pub mod infra;
mod network;
mod plan;
pub mod process;
mod reconcile;
pub mod shop;
pub mod stacks;
mod state;
pub mod supervisor;
pub mod toxiproxy;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use nix::sys::signal::Signal;
use tokio::{sync::Mutex, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use autoscaler::{
    Autoscaler, CPU_REQUEST_CORES, Observation, SCALE_IN_WINDOW, STEP_TIMEOUT, TOLERANCE, recommend,
};
pub use backend::LocalBackend;
pub use faults::{describe, supports};

pub use self::errors::Error;
use self::errors::Result;
use self::{
    database::DatabasePair,
    haproxy::{Haproxy, HaproxyConfig, RuntimeApi},
    infra::{RabbitMq, Redis, Server},
    network::Routes,
    process::free_port,
    reconcile::STOP_GRACE,
    shop::ShopEnv,
    state::{INFRA_IP, Infra, Instance, Shared, State, instance_address},
    toxiproxy::Toxiproxy,
};
use crate::{
    events::{EventKind, EventLog},
    platform::{
        self, InstanceState, Inventory, Platform, Support, Target, TargetKind, Undo,
        lifecycle::Shop,
    },
    scenario::{Fault, FaultKind, Topology},
    shop::SERVICES,
};

pub struct LocalPlatform {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    stopped: bool,
    meter: std::sync::Mutex<cost::Meter>,
}

/// Checks that the servers and the shop's binaries are installed; says
/// what is missing and how to install or build it.
pub fn preflight() -> Result<()> {
    process::preflight()?;
    for s in SERVICES {
        shop::binary(s)?;
    }
    Ok(())
}

/// The servers a local stack runs beside the shop, started.
struct Servers {
    redis: Redis,
    db: DatabasePair,
    rabbit: RabbitMq,
    haproxy: Haproxy,
    entry: SocketAddr,
    internal: BTreeMap<String, SocketAddr>,
    writer_file: std::path::PathBuf,
    /// Toxiproxy and the links through it, when the scenario has network faults.
    network: Option<(Toxiproxy, Routes)>,
}

impl Servers {
    /// MariaDB (primary and standby), Redis and RabbitMQ at once, then
    /// HAProxy in front of the services' internal addresses, then (for
    /// network faults) Toxiproxy with a proxy per link in `links`.
    async fn start(
        infra_dir: &Path,
        events: &EventLog,
        links: &std::collections::BTreeSet<(String, String)>,
    ) -> Result<Self> {
        let (redis, db, rabbit) = tokio::join!(
            Redis::start(infra_dir.join("redis"), INFRA_IP, None),
            DatabasePair::start(infra_dir.join("mariadb"), INFRA_IP),
            RabbitMq::start(infra_dir.join("rabbitmq"), INFRA_IP, None),
        );
        let (redis, db, rabbit) = (redis?, db?, rabbit?);
        for (component, address) in [
            ("cache", redis.addr),
            ("database", db.primary.addr),
            ("broker", rabbit.addr),
        ] {
            events.emit(EventKind::ComponentReady {
                component: component.into(),
                address: Some(address.to_string()),
            });
        }
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
        let writer_file = infra_dir.join("mariadb").join("writer");
        database::point_writer(&writer_file, db.primary.addr)?;
        let haproxy = Haproxy::start(HaproxyConfig {
            dir: infra_dir.join("haproxy"),
            public: entry,
            internal: internal.clone(),
        })
        .await?;
        events.emit(EventKind::ComponentReady {
            component: "load balancer".into(),
            address: Some(entry.to_string()),
        });
        let network = if links.is_empty() {
            None
        } else {
            let upstream = |server: &str| match server {
                "database" => Some(db.primary.addr),
                "cache" => Some(redis.addr),
                "broker" => Some(rabbit.addr),
                service => internal.get(service).copied(),
            };
            let (toxiproxy, routes) =
                network::start(&infra_dir.join("toxiproxy"), links, upstream).await?;
            events.emit(EventKind::ComponentReady {
                component: "network proxy".into(),
                address: Some(toxiproxy.api.addr.to_string()),
            });
            Some((toxiproxy, routes))
        };
        Ok(Self {
            redis,
            db,
            rabbit,
            haproxy,
            entry,
            internal,
            writer_file,
            network,
        })
    }

    /// The shop's settings: the servers' URLs, the writer file, secrets.
    fn shop_env(&self, admin_token: &str) -> ShopEnv {
        let mut env = ShopEnv::default();
        // The shop connects straight to the primary and follows the writer
        // file on failover, as clients follow RDS's DNS name: no proxy in
        // the path of every query.
        env.set(
            "mysql_url",
            format!(
                "mysql://shop:shop@{}/shop?ssl-mode=disabled",
                self.db.primary.addr
            ),
        )
        .set("mysql_writer_file", self.writer_file.display())
        .set("redis_url", self.redis.url())
        .set("amqp_url", self.rabbit.url())
        .set("admin_token", admin_token)
        .set("jwt_secret", uuid::Uuid::new_v4().simple())
        .set("drain_delay", "1200ms")
        .set("grace_period", "10s");
        env.set_service_urls(|service| format!("http://{}", self.internal[service]));
        if let Some((_, routes)) = &self.network {
            routes.route(&mut env);
        }
        env
    }
}

/// The topology's first instances, running, each said as an event.
fn first_instances(topology: &Topology, events: &EventLog) -> Vec<Instance> {
    let instances: Vec<Instance> = (0..topology.instances)
        .map(|i| Instance {
            name: format!("i-{}", i + 1),
            address: instance_address(i),
            state: InstanceState::Running,
            boots_at: None,
        })
        .collect();
    for i in &instances {
        events.emit(EventKind::InstanceRunning {
            instance: i.name.clone(),
            address: Some(i.address.to_string()),
            zone: None,
        });
    }
    instances
}

impl LocalPlatform {
    /// Starts everything and waits until every replica is serving.
    pub async fn start(run_dir: &Path, topology: Topology, events: Arc<EventLog>) -> Result<Self> {
        std::fs::create_dir_all(run_dir).map_err(|e| Error::io(run_dir, e))?;
        let servers = Servers::start(&run_dir.join("infra"), &events, &topology.links).await?;
        let admin_token = uuid::Uuid::new_v4().simple().to_string();
        let env = servers.shop_env(&admin_token);
        let Servers {
            redis,
            db,
            rabbit,
            haproxy,
            entry,
            writer_file,
            network,
            ..
        } = servers;
        let (toxiproxy, routes) = network.unzip();
        let shared = Arc::new(Shared {
            run_dir: run_dir.to_path_buf(),
            events: events.clone(),
            lb: haproxy.api(),
            entry,
            writer_file,
            admin_token,
            env,
            routes,
            rerolls: Default::default(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(1))
                .build()
                .unwrap_or_default(),
            shutdown: CancellationToken::new(),
            state: Mutex::new(State {
                instances: first_instances(&topology, &events),
                replicas: Vec::new(),
                placement: state::initial_placement(&topology),
                next_instance: topology.instances,
                counters: BTreeMap::new(),
                infra: Infra {
                    redis,
                    db,
                    rabbit,
                    haproxy,
                    toxiproxy,
                },
                dirty: true,
            }),
            topology,
            entry_url: format!("http://{entry}"),
        });
        let mut platform = LocalPlatform {
            shared: shared.clone(),
            tasks: Vec::new(),
            stopped: false,
            meter: Default::default(),
        };
        reconcile::reconcile(&shared).await;
        platform
            .tasks
            .push(tokio::spawn(reconcile::reconcile_loop(shared.clone())));
        platform
            .tasks
            .push(tokio::spawn(autoscaler::autoscale_loop(shared.clone())));
        platform.wait_all_serving(Duration::from_secs(120)).await?;
        Ok(platform)
    }

    pub fn entry_url(&self) -> String {
        self.shared.entry_url.clone()
    }

    /// Where the database writer is now (the writer file's address).
    pub fn writer_addr(&self) -> Result<SocketAddr> {
        database::read_writer(&self.shared.writer_file)
    }

    /// The file naming the database writer, which the shop follows.
    pub fn writer_file(&self) -> &Path {
        &self.shared.writer_file
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
        reconcile::wait_all_serving(&self.shared, timeout)
            .await
            .map_err(|waiting| Error::NotServing {
                waited: timeout,
                waiting,
                logs: self.shared.run_dir.join("logs"),
            })
    }

    /// What runs where, now.
    pub async fn status(&self) -> Inventory {
        let st = self.shared.state.lock().await;
        state::inventory(&self.shared, &st)
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
        if let Some(t) = st.infra.toxiproxy.as_mut() {
            t.stop();
        }
        if let Some(mut p) = st.infra.haproxy.take_process() {
            p.stop(Duration::from_secs(5));
        }
        st.infra.rabbit.stop();
        st.infra.redis.stop();
        st.infra.db.kill_all();
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
        process::kill_all_children();
    }
}

#[async_trait]
impl Platform for LocalPlatform {
    fn name(&self) -> &'static str {
        "local"
    }

    fn entry_url(&self) -> &str {
        &self.shared.entry_url
    }

    fn admin_token(&self) -> Option<&str> {
        Some(&self.shared.admin_token)
    }

    fn supports(&self, fault: &Fault) -> Support {
        supports(&self.shared.topology, fault)
    }

    fn describe(&self, fault: &Fault) -> String {
        describe(&self.shared.topology, fault)
    }

    async fn inventory(&self) -> platform::Result<Inventory> {
        Ok(self.status().await)
    }

    async fn candidates(&self, fault: &FaultKind) -> platform::Result<Vec<Target>> {
        Ok(self.candidates_now(fault).await)
    }

    async fn undo_for(&self, fault: &Fault, targets: &[Target]) -> Option<Undo> {
        match (&fault.kind, fault.duration) {
            (FaultKind::RestartCache { .. } | FaultKind::RestartBroker, Some(_)) => {
                targets.first().cloned().map(Undo::Start)
            }
            // Heal each link (remove its toxics), registered before any is added.
            (FaultKind::Network { .. }, _) => match targets {
                [] => None,
                [one] => Some(Undo::Start(one.clone())),
                all => Some(Undo::Each(all.iter().cloned().map(Undo::Start).collect())),
            },
            _ => None,
        }
    }

    async fn inject(&self, fault: &Fault, targets: &[Target]) -> platform::Result<()> {
        Ok(self.act(fault, targets).await?)
    }

    async fn undo(&self, undo: &Undo) -> platform::Result<()> {
        match undo {
            Undo::Start(target) if target.kind == TargetKind::Link => {
                Ok(self.heal_link(target).await?)
            }
            Undo::Start(target) => match faults::role_of(target) {
                Some(role) => Ok(self.start_server(role).await?),
                None => Err(unsupported_undo(undo)),
            },
            Undo::Each(all) => platform::undo_each(self, all).await,
            other => Err(unsupported_undo(other)),
        }
    }

    async fn sample(&self) -> platform::Sample {
        self.measure().await
    }

    async fn shutdown(self: Box<Self>) {
        LocalPlatform::shutdown(*self).await;
    }
}

impl Shop for LocalPlatform {}

fn unsupported_undo(undo: &Undo) -> platform::Error {
    platform::Error::refused(
        format!("undo ({})", undo.describe()),
        "the local platform never registers such an undo",
    )
}
