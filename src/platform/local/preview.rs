//! The local platform before it is up, for `plan`: what `up` would start
//! (instances, replicas and their names, servers) and therefore what each
//! fault would pick from at the start of a run. It touches nothing; asking
//! it to inject says so.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{describe, faults::server_target, state, supports};
use crate::{
    errors::{Error, Result},
    events::ServerRole,
    platform::{
        ComponentInfo, InstanceInfo, InstanceState, Inventory, Platform, ReplicaInfo, Support,
        Target, TargetKind, Undo,
    },
    scenario::{Fault, FaultKind, Topology},
    shop::SERVICES,
};

pub struct Preview {
    topology: Topology,
}

impl Preview {
    pub fn new(topology: Topology) -> Self {
        Self { topology }
    }

    /// Replicas named as the reconciler names them when it starts the
    /// placement: instances in order, services in order, `<service>-<n>`.
    fn replicas(&self) -> Vec<(String, String, String)> {
        let placement = state::initial_placement(&self.topology);
        let mut counters: BTreeMap<&str, u32> = BTreeMap::new();
        let mut out = Vec::new();
        for (instance, services) in &placement {
            for service in SERVICES {
                for _ in 0..services.get(service).copied().unwrap_or(0) {
                    let n = counters.entry(service).or_default();
                    *n += 1;
                    out.push((
                        service.to_string(),
                        format!("{service}-{n}"),
                        instance.clone(),
                    ));
                }
            }
        }
        out
    }

    fn not_up() -> Error {
        Error::Command {
            name: "local platform".into(),
            detail: "not started: this is a preview for `plan` (run `gameday up` or `gameday run`)"
                .into(),
        }
    }
}

fn address(instance: &str) -> String {
    let index: u32 = instance
        .trim_start_matches("i-")
        .parse::<u32>()
        .unwrap_or(1)
        .saturating_sub(1);
    state::instance_address(index).to_string()
}

#[async_trait]
impl Platform for Preview {
    fn name(&self) -> &'static str {
        "local"
    }

    fn entry_url(&self) -> &str {
        "http://127.0.0.1 (port chosen at start)"
    }

    fn admin_token(&self) -> Option<&str> {
        None
    }

    fn supports(&self, fault: &Fault) -> Support {
        supports(&self.topology, fault)
    }

    fn describe(&self, fault: &Fault) -> String {
        describe(&self.topology, fault)
    }

    async fn inventory(&self) -> Result<Inventory> {
        let instances = (1..=self.topology.instances)
            .map(|i| {
                let name = format!("i-{i}");
                InstanceInfo {
                    address: Some(address(&name)),
                    name,
                    zone: None,
                    state: InstanceState::Running,
                    healthy: None,
                    details: BTreeMap::new(),
                }
            })
            .collect();
        let replicas = self
            .replicas()
            .into_iter()
            .map(|(service, name, instance)| ReplicaInfo {
                service,
                name,
                instance: Some(instance),
                url: None,
                ready: false,
                serving: false,
                usage: None,
                details: BTreeMap::new(),
            })
            .collect();
        let infra = [
            "haproxy",
            "mariadb-primary",
            "mariadb-standby",
            "redis",
            "rabbitmq",
        ]
        .into_iter()
        .map(|name| ComponentInfo {
            name: name.into(),
            address: None,
            usage: None,
            details: BTreeMap::new(),
        })
        .collect();
        Ok(Inventory {
            platform: "local".into(),
            entry_url: self.entry_url().into(),
            instances,
            replicas,
            infra,
            ..Inventory::default()
        })
    }

    async fn candidates(&self, fault: &FaultKind) -> Result<Vec<Target>> {
        Ok(match fault {
            FaultKind::KillPod { service, .. } => self
                .replicas()
                .into_iter()
                .filter(|(s, _, _)| s == service)
                .map(|(s, name, instance)| {
                    Target::new(TargetKind::Replica, name)
                        .service(s)
                        .on(instance)
                })
                .collect(),
            FaultKind::TerminateInstance { .. } => (1..=self.topology.instances)
                .map(|i| {
                    let name = format!("i-{i}");
                    let detail = address(&name);
                    Target::new(TargetKind::Instance, name).detail(detail)
                })
                .collect(),
            FaultKind::DbFailover { .. } => {
                vec![Target::new(TargetKind::Database, "mariadb-1").detail("the current primary")]
            }
            FaultKind::RestartCache => vec![server_target(ServerRole::Cache)],
            FaultKind::RestartBroker => vec![server_target(ServerRole::Broker)],
        })
    }

    async fn undo_for(&self, fault: &Fault, targets: &[Target]) -> Option<Undo> {
        match (&fault.kind, fault.duration) {
            (FaultKind::RestartCache | FaultKind::RestartBroker, Some(_)) => {
                targets.first().cloned().map(Undo::Start)
            }
            _ => None,
        }
    }

    async fn inject(&self, _fault: &Fault, _targets: &[Target]) -> Result<()> {
        Err(Self::not_up())
    }

    async fn undo(&self, _undo: &Undo) -> Result<()> {
        Err(Self::not_up())
    }

    async fn shutdown(self: Box<Self>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_preview_names_replicas_as_the_reconciler_will() {
        let topology = Topology::default();
        let p = Preview::new(topology);
        let cart = p
            .candidates(&FaultKind::KillPod {
                service: "cart".into(),
                radius: crate::scenario::BlastRadius::Count(1),
                graceful: false,
            })
            .await
            .unwrap();
        let names: Vec<_> = cart.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(names, ["cart-1", "cart-2"]);
        // Two replicas of cart (the 4th service) spread from instance 1 (3 mod 3 = 0).
        let on: Vec<_> = cart.iter().map(|t| t.on.as_deref().unwrap()).collect();
        assert_eq!(on, ["i-1", "i-2"]);
        let inv = p.inventory().await.unwrap();
        assert_eq!(inv.replicas.len(), 12);
        assert_eq!(inv.instances[2].address.as_deref(), Some("127.0.3.1"));
    }
}
