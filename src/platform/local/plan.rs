//! The local platform before it is up, for `plan`: what a run would start
//! (instances, replicas and their names, servers) and therefore what each
//! fault would pick from at its start, from the scenario's topology alone.

use std::collections::BTreeMap;

use super::{faults::server_target, state};
use crate::{
    events::ServerRole,
    platform::{
        ComponentInfo, InstanceInfo, InstanceState, Inventory, Planned, ReplicaInfo, Target,
        TargetKind,
    },
    scenario::{FaultKind, Topology},
    shop::SERVICES,
};

/// The entry before a run has picked its port.
pub const ENTRY: &str = "http://127.0.0.1 (port chosen at start)";

/// Replicas named as the reconciler names them when it starts the
/// placement: instances in order, services in order, `<service>-<n>`.
fn replicas(topology: &Topology) -> Vec<(String, String, String)> {
    let placement = state::initial_placement(topology);
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

fn address(instance: &str) -> String {
    let index: u32 = instance
        .trim_start_matches("i-")
        .parse::<u32>()
        .unwrap_or(1)
        .saturating_sub(1);
    state::instance_address(index).to_string()
}

/// What a run of this topology starts.
pub fn planned(topology: &Topology) -> Planned {
    let instances = (1..=topology.instances)
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
    let replicas = replicas(topology)
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
    let proxy = (!topology.links.is_empty()).then_some("toxiproxy");
    let infra = [
        "haproxy",
        "mariadb-primary",
        "mariadb-standby",
        "redis",
        "rabbitmq",
    ]
    .into_iter()
    .chain(proxy)
    .map(|name| ComponentInfo {
        name: name.into(),
        address: None,
        usage: None,
        details: BTreeMap::new(),
    })
    .collect();
    Planned {
        entry_url: ENTRY.into(),
        inventory: Some(Inventory {
            platform: "local".into(),
            entry_url: ENTRY.into(),
            instances,
            replicas,
            infra,
            ..Inventory::default()
        }),
    }
}

/// What a fault of this kind would pick from at the start of a run.
pub fn candidates(topology: &Topology, fault: &FaultKind) -> Vec<Target> {
    match fault {
        FaultKind::KillPod { service, .. } => replicas(topology)
            .into_iter()
            .filter(|(s, _, _)| s == service)
            .map(|(s, name, instance)| {
                Target::new(TargetKind::Replica, name)
                    .service(s)
                    .on(instance)
            })
            .collect(),
        FaultKind::TerminateInstance { .. } => (1..=topology.instances)
            .map(|i| {
                let name = format!("i-{i}");
                let detail = address(&name);
                Target::new(TargetKind::Instance, name).detail(detail)
            })
            .collect(),
        FaultKind::DbFailover { .. } => {
            vec![Target::new(TargetKind::Database, "mariadb-1").detail("the current primary")]
        }
        FaultKind::RestartCache { .. } => vec![server_target(ServerRole::Cache)],
        FaultKind::RestartBroker => vec![server_target(ServerRole::Broker)],
        FaultKind::Network { effect, to, from } => crate::shop::links(to, from.as_deref())
            .into_iter()
            .map(|(c, s)| {
                Target::new(TargetKind::Link, super::network::link_id(c, s))
                    .service(c)
                    .detail(super::network::toxic_summary(effect))
            })
            .collect(),
        FaultKind::DrainNode { .. } => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_names_replicas_as_the_reconciler_will() {
        let topology = Topology::default();
        let cart = candidates(
            &topology,
            &FaultKind::KillPod {
                service: "cart".into(),
                radius: crate::scenario::BlastRadius::Count(1),
                graceful: false,
            },
        );
        let names: Vec<_> = cart.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(names, ["cart-1", "cart-2"]);
        // Two replicas of cart (the 4th service) spread from instance 1 (3 mod 3 = 0).
        let on: Vec<_> = cart.iter().map(|t| t.on.as_deref().unwrap()).collect();
        assert_eq!(on, ["i-1", "i-2"]);
        let inv = planned(&topology).inventory.unwrap();
        assert_eq!(inv.replicas.len(), 12);
        assert_eq!(inv.instances[2].address.as_deref(), Some("127.0.3.1"));
    }
}
