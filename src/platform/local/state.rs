//! What the local platform knows: its instances, its replicas and where the
//! placement wants them, its infrastructure servers, and the inventory it
//! writes to `status.json` whenever something changes.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use serde_json::json;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::{
    database::DatabasePair,
    haproxy::{Haproxy, RuntimeApi},
    infra::{RabbitMq, Redis, Server},
    network::Routes,
    shop::{Replica, ShopEnv},
    toxiproxy::Toxiproxy,
};
use crate::{
    events::EventLog,
    platform::{ComponentInfo, InstanceInfo, InstanceState, Inventory, ReplicaInfo},
    scenario::Topology,
    shop::SERVICES,
};

pub(super) const INFRA_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

pub(super) struct Instance {
    pub name: String,
    pub address: IpAddr,
    pub state: InstanceState,
    pub boots_at: Option<Instant>,
}

pub(super) struct ReplicaEntry {
    pub replica: Replica,
    pub instance: String,
    pub ready: bool,
    pub serving: bool,
    pub in_lb: bool,
    /// Being stopped on purpose (scale-in, graceful stop): its exit is expected.
    pub stopping: Option<Instant>,
    /// Why it is going away, for the exit event.
    pub fate: Option<&'static str>,
}

impl ReplicaEntry {
    /// Neither dying nor being stopped.
    pub fn alive(&self) -> bool {
        self.stopping.is_none() && self.fate.is_none()
    }
}

pub(super) struct Infra {
    pub redis: Redis,
    pub db: DatabasePair,
    pub rabbit: RabbitMq,
    pub haproxy: Haproxy,
    /// Only when the scenario has network faults.
    pub toxiproxy: Option<Toxiproxy>,
}

pub(super) struct State {
    pub instances: Vec<Instance>,
    pub replicas: Vec<ReplicaEntry>,
    /// instance -> service -> replicas wanted there
    pub placement: BTreeMap<String, BTreeMap<String, u32>>,
    pub next_instance: u32,
    pub counters: BTreeMap<String, u32>,
    pub infra: Infra,
    pub dirty: bool,
}

impl State {
    /// Replicas of `service` the placement wants on live instances.
    pub fn wanted(&self, service: &str) -> u32 {
        self.instances
            .iter()
            .filter(|i| i.state != InstanceState::Terminated)
            .filter_map(|i| self.placement.get(&i.name).and_then(|m| m.get(service)))
            .sum()
    }

    pub fn placed(&self, instance: &str, service: &str) -> u32 {
        self.placement
            .get(instance)
            .and_then(|m| m.get(service))
            .copied()
            .unwrap_or(0)
    }
}

pub(super) struct Shared {
    pub run_dir: PathBuf,
    pub topology: Topology,
    pub events: Arc<EventLog>,
    pub lb: RuntimeApi,
    pub entry: SocketAddr,
    /// Names the database writer (`host:port`); the shop re-reads it.
    pub writer_file: PathBuf,
    pub admin_token: String,
    pub entry_url: String,
    pub env: ShopEnv,
    /// The links routed through Toxiproxy (None: no network faults).
    pub routes: Option<Routes>,
    /// Loss faults rolling their connections' chances again, by toxic name.
    pub rerolls: std::sync::Mutex<BTreeMap<String, CancellationToken>>,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    pub state: Mutex<State>,
}

pub(super) fn instance_address(index: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, (index % 250 + 1) as u8, 1))
}

/// Where `up` puts each service's replicas: instance name -> service ->
/// count, spread round-robin from a different instance per service.
pub(super) fn initial_placement(topology: &Topology) -> BTreeMap<String, BTreeMap<String, u32>> {
    let names: Vec<String> = (1..=topology.instances).map(|i| format!("i-{i}")).collect();
    let mut placement: BTreeMap<String, BTreeMap<String, u32>> =
        names.iter().map(|n| (n.clone(), BTreeMap::new())).collect();
    for (s, service) in SERVICES.iter().enumerate() {
        for r in 0..topology.initial_replicas(service) {
            let instance = &names[(s + r as usize) % names.len()];
            if let Some(m) = placement.get_mut(instance) {
                *m.entry(service.to_string()).or_default() += 1;
            }
        }
    }
    placement
}

fn pid_detail(pid: Option<u32>) -> BTreeMap<String, serde_json::Value> {
    [("pid".to_string(), json!(pid))].into()
}

/// The inventory in the shape of `gameday status --json` (DESIGN.md section 8).
pub(super) fn inventory(shared: &Shared, st: &State) -> Inventory {
    let component = |name: &str, pid: Option<u32>, address: String| ComponentInfo {
        name: name.into(),
        address: Some(address),
        usage: None,
        details: pid_detail(pid),
    };
    let db = &st.infra.db;
    let mut infra = vec![
        component("haproxy", st.infra.haproxy.pid(), shared.entry.to_string()),
        ComponentInfo {
            name: "mariadb-writer".into(),
            address: Some(db.primary.addr.to_string()),
            usage: None,
            details: [(
                "file".to_string(),
                json!(shared.writer_file.display().to_string()),
            )]
            .into(),
        },
        component(
            "mariadb-primary",
            db.primary.pid(),
            db.primary.addr.to_string(),
        ),
    ];
    if let Some(s) = &db.standby {
        infra.push(component("mariadb-standby", s.pid(), s.addr.to_string()));
    }
    infra.push(component(
        "redis",
        st.infra.redis.pid(),
        st.infra.redis.addr.to_string(),
    ));
    infra.push(component(
        "rabbitmq",
        st.infra.rabbit.pid(),
        st.infra.rabbit.addr.to_string(),
    ));
    if let (Some(t), Some(routes)) = (&st.infra.toxiproxy, &shared.routes) {
        let proxies: BTreeMap<String, serde_json::Value> = routes
            .links
            .iter()
            .map(|((client, server), r)| {
                (
                    super::network::link_id(client, server),
                    json!({ "proxy": r.proxy, "listen": r.listen.to_string(), "upstream": r.upstream.to_string() }),
                )
            })
            .collect();
        infra.push(ComponentInfo {
            name: "toxiproxy".into(),
            address: Some(t.api.addr.to_string()),
            usage: None,
            details: [
                ("pid".to_string(), json!(t.pid())),
                ("proxies".to_string(), json!(proxies)),
            ]
            .into(),
        });
    }
    Inventory {
        platform: "local".into(),
        entry_url: format!("http://{}", shared.entry),
        admin_token: Some(shared.admin_token.clone()),
        run_dir: Some(shared.run_dir.clone()),
        instances: st
            .instances
            .iter()
            .map(|i| InstanceInfo {
                name: i.name.clone(),
                address: Some(i.address.to_string()),
                zone: None,
                state: i.state,
                healthy: None,
                details: BTreeMap::new(),
            })
            .collect(),
        replicas: st
            .replicas
            .iter()
            .map(|r| ReplicaInfo {
                service: r.replica.service.clone(),
                name: r.replica.name.clone(),
                instance: Some(r.instance.clone()),
                url: Some(r.replica.url()),
                ready: r.ready,
                serving: r.serving,
                usage: None,
                details: pid_detail(r.replica.pid()),
            })
            .collect(),
        infra,
        cost: Vec::new(),
    }
}

/// Writes `status.json` atomically (a reader never sees half of it).
pub(super) fn write_status(run_dir: &Path, inventory: &Inventory) {
    let path = run_dir.join("status.json");
    let tmp = run_dir.join("status.json.tmp");
    if let Ok(text) = serde_json::to_string_pretty(inventory)
        && std::fs::write(&tmp, text).is_ok()
    {
        let _ = std::fs::rename(&tmp, &path);
    }
}
