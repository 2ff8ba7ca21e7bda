//! The local platform's fault actions: SIGKILL or SIGTERM replicas,
//! terminate an instance (every process on its address dies; a replacement
//! with a new address boots after the boot delay), fail the database over,
//! and stop, start or restart the cache and the broker. Every action is an
//! event.

use std::{net::SocketAddr, time::Instant};

use nix::sys::signal::Signal;

use super::errors::{Error, Result};
use super::{
    LocalPlatform,
    database::FailoverReport,
    infra::Server,
    network,
    state::{Instance, instance_address},
};
use crate::{
    events::{EventKind, ServerRole},
    platform::{InstanceState, Support, Target, TargetKind},
    scenario::{Fault, FaultKind, NetworkEffect, Topology},
    shop::links,
};

enum ServerAction {
    Restart,
    Stop,
    Start,
}

/// Whether the local platform can perform `fault` for this topology.
pub fn supports(topology: &Topology, fault: &Fault) -> Support {
    match &fault.kind {
        FaultKind::KillPod { service, .. } if topology.initial_replicas(service) == 0 => {
            Support::No {
                why: format!("the target runs no {service} replica to kill"),
            }
        }
        FaultKind::TerminateInstance { zone: Some(_), .. } => Support::No {
            why: "the local platform's instances have no availability zone".into(),
        },
        FaultKind::TerminateInstance { graceful: true, .. } => Support::No {
            why: "the local platform's instances have no OS to shut down: terminate-instance \
                  kills every process of one outright (drop `graceful`)"
                .into(),
        },
        FaultKind::DrainNode { .. } => Support::No {
            why: "drain-node is planned maintenance of a Kubernetes node; the local platform's \
                  instances are processes (terminate-instance loses one)"
                .into(),
        },
        FaultKind::RestartCache { reboot: true } => Support::No {
            why: "Redis here keeps its append-only file across a restart: there is no reboot \
                  that loses the cache (drop `reboot`)"
                .into(),
        },
        FaultKind::Network { .. } if fault.duration.is_none() => Support::No {
            why: "a network fault lasts its `duration` (add one, such as `duration: 20s`)".into(),
        },
        FaultKind::Network { to, from, .. } => {
            let missing: Vec<String> = links(to, from.as_deref())
                .into_iter()
                .filter(|(c, s)| !topology.links.contains(&(c.to_string(), s.to_string())))
                .map(|(c, s)| network::link_id(c, s))
                .collect();
            if missing.is_empty() {
                Support::Yes
            } else {
                Support::No {
                    why: format!(
                        "{} is not routed through Toxiproxy: a local stack routes only the links \
                         its scenario's network faults name (start it from that scenario)",
                        missing.join(", ")
                    ),
                }
            }
        }
        FaultKind::DbFailover { .. }
        | FaultKind::KillPod { .. }
        | FaultKind::TerminateInstance { .. }
            if fault.duration.is_some() =>
        {
            Support::No {
                why: format!(
                    "{} does not last: the platform repairs it itself (drop `duration`)",
                    fault.kind.key()
                ),
            }
        }
        _ => Support::Yes,
    }
}

/// What `fault` does here, in words.
pub fn describe(topology: &Topology, fault: &Fault) -> String {
    match &fault.kind {
        FaultKind::KillPod {
            service, graceful, ..
        } => format!(
            "{} a {service} replica process; the reconciler starts a new one on its instance",
            if *graceful {
                "SIGTERM (graceful stop)"
            } else {
                "SIGKILL"
            }
        ),
        FaultKind::TerminateInstance { .. } => format!(
            "kill every process of an instance (its loopback address goes away); a replacement with a new address boots after {}",
            humantime::format_duration(topology.boot_delay)
        ),
        FaultKind::DbFailover { rebuild_standby } => format!(
            "kill the MariaDB primary, promote the standby, point the writer name at it{}",
            if *rebuild_standby {
                ", build a new standby"
            } else {
                ""
            }
        ),
        FaultKind::RestartCache { .. } => match fault.duration {
            Some(d) => format!(
                "stop Redis, start it again after {}",
                humantime::format_duration(d)
            ),
            None => "restart Redis".into(),
        },
        FaultKind::RestartBroker => match fault.duration {
            Some(d) => format!(
                "stop RabbitMQ, start it again after {}",
                humantime::format_duration(d)
            ),
            None => "restart RabbitMQ".into(),
        },
        FaultKind::Network { effect, to, from } => format!(
            "through Toxiproxy's proxy of {}: {}",
            links(to, from.as_deref())
                .into_iter()
                .map(|(c, s)| network::link_id(c, s))
                .collect::<Vec<_>>()
                .join(", "),
            network::describe(effect)
        ),
        FaultKind::DrainNode { .. } => "not available on the local platform".into(),
    }
}

pub(super) fn server_target(role: ServerRole) -> Target {
    match role {
        ServerRole::Cache => Target::new(TargetKind::Cache, "redis"),
        ServerRole::Broker => Target::new(TargetKind::Broker, "rabbitmq"),
    }
}

pub(super) fn role_of(target: &Target) -> Option<ServerRole> {
    match target.kind {
        TargetKind::Cache => Some(ServerRole::Cache),
        TargetKind::Broker => Some(ServerRole::Broker),
        _ => None,
    }
}

impl LocalPlatform {
    /// What a fault of this kind would hit now, in the order it picks.
    pub(super) async fn candidates_now(&self, kind: &FaultKind) -> Vec<Target> {
        let st = self.shared.state.lock().await;
        match kind {
            FaultKind::KillPod { service, .. } => st
                .replicas
                .iter()
                // A replica already dying or being stopped is not a target.
                .filter(|r| r.replica.service == *service && r.alive())
                .map(|r| {
                    Target::new(TargetKind::Replica, &r.replica.name)
                        .service(service)
                        .on(&r.instance)
                        .detail(r.replica.addr.to_string())
                })
                .collect(),
            FaultKind::TerminateInstance { .. } => st
                .instances
                .iter()
                .filter(|i| i.state == InstanceState::Running)
                .map(|i| Target::new(TargetKind::Instance, &i.name).detail(i.address.to_string()))
                .collect(),
            FaultKind::DbFailover { .. } => vec![
                Target::new(TargetKind::Database, st.infra.db.primary_name())
                    .detail(format!("primary, {}", st.infra.db.primary.addr)),
            ],
            FaultKind::RestartCache { .. } => {
                vec![server_target(ServerRole::Cache).detail(st.infra.redis.addr.to_string())]
            }
            FaultKind::RestartBroker => {
                vec![server_target(ServerRole::Broker).detail(st.infra.rabbit.addr.to_string())]
            }
            FaultKind::Network { to, from, .. } => {
                let Some(routes) = &self.shared.routes else {
                    return Vec::new();
                };
                links(to, from.as_deref())
                    .into_iter()
                    .filter_map(|(c, s)| {
                        let route = routes.links.get(&(c.to_string(), s.to_string()))?;
                        Some(
                            Target::new(TargetKind::Link, network::link_id(c, s))
                                .service(c)
                                .on(&route.proxy)
                                // The name of the toxics this fault adds.
                                .detail(network::toxic_prefix()),
                        )
                    })
                    .collect()
            }
            FaultKind::DrainNode { .. } => Vec::new(),
        }
    }

    /// Applies `fault` to its chosen targets.
    pub(super) async fn act(&self, fault: &Fault, targets: &[Target]) -> Result<()> {
        match &fault.kind {
            FaultKind::KillPod { graceful, .. } => {
                for t in targets {
                    if *graceful {
                        self.stop_replicas(&t.id, 1).await?;
                    } else {
                        self.kill_replicas(&t.id, 1).await?;
                    }
                }
            }
            FaultKind::TerminateInstance { .. } => {
                for t in targets {
                    self.terminate_instance(&t.id).await?;
                }
            }
            FaultKind::DbFailover { rebuild_standby } => {
                self.failover_database(*rebuild_standby).await?;
            }
            FaultKind::RestartCache { .. } | FaultKind::RestartBroker => {
                let role = if matches!(fault.kind, FaultKind::RestartCache { .. }) {
                    ServerRole::Cache
                } else {
                    ServerRole::Broker
                };
                let action = if fault.duration.is_some() {
                    ServerAction::Stop
                } else {
                    ServerAction::Restart
                };
                self.server_action(role, action).await?;
            }
            FaultKind::Network { effect, .. } => self.degrade_links(effect, targets).await?,
            FaultKind::DrainNode { .. } => {
                return Err(Error::NothingToHit {
                    fault: fault.kind.key(),
                    why: "not available on the local platform".into(),
                });
            }
        }
        Ok(())
    }

    /// SIGKILLs replicas: by name, or `count` of a service's. Returns their names.
    pub async fn kill_replicas(&self, selector: &str, count: usize) -> Result<Vec<String>> {
        self.signal_replicas(selector, count, Signal::SIGKILL, "killed")
            .await
    }

    /// SIGTERM (graceful stop) to replicas; the reconciler replaces them.
    pub async fn stop_replicas(&self, selector: &str, count: usize) -> Result<Vec<String>> {
        self.signal_replicas(selector, count, Signal::SIGTERM, "stopped")
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
        for entry in st.replicas.iter_mut().filter(|r| r.alive()) {
            if hit.len() >= count {
                break;
            }
            if entry.replica.service == selector || entry.replica.name == selector {
                if let Some(p) = entry.replica.process_mut() {
                    p.signal(signal);
                }
                entry.fate = Some(fate);
                hit.push(entry.replica.name.clone());
                let (service, replica, instance) = (
                    entry.replica.service.clone(),
                    entry.replica.name.clone(),
                    Some(entry.instance.clone()),
                );
                self.shared.events.emit(if signal == Signal::SIGKILL {
                    EventKind::ReplicaKilled {
                        service,
                        replica,
                        instance,
                    }
                } else {
                    EventKind::ReplicaStopped {
                        service,
                        replica,
                        instance,
                    }
                });
            }
        }
        if hit.is_empty() {
            return Err(Error::NothingToHit {
                fault: "kill-pod",
                why: format!("no running replica matches `{selector}`"),
            });
        }
        Ok(hit)
    }

    /// Terminates an instance: every process on it dies; a replacement with
    /// a new address boots after the topology's boot delay. Returns the
    /// replacement's name.
    pub async fn terminate_instance(&self, name: &str) -> Result<String> {
        let mut st = self.shared.state.lock().await;
        let Some(idx) = st
            .instances
            .iter()
            .position(|i| i.name == name && i.state != InstanceState::Terminated)
        else {
            return Err(Error::NothingToHit {
                fault: "terminate-instance",
                why: format!("no live instance `{name}`"),
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
        self.shared.events.emit(EventKind::InstanceTerminated {
            instance: name.into(),
            address: Some(address.to_string()),
            zone: None,
        });
        self.shared.events.emit(EventKind::InstanceLaunching {
            instance: replacement.clone(),
            replaces: Some(name.into()),
            address: Some(instance_address(index).to_string()),
            zone: None,
            boot_delay_ms: Some(boot_delay.as_millis() as u64),
            group: None,
            scale_out: false,
        });
        Ok(replacement)
    }

    /// Kills the database primary, promotes the standby and points the
    /// writer file at it; with `rebuild`, starts a new standby afterwards.
    pub async fn failover_database(&self, rebuild: bool) -> Result<FailoverReport> {
        let mut st = self.shared.state.lock().await;
        let report = st
            .infra
            .db
            .failover(&self.shared.writer_file, &self.shared.events, rebuild)
            .await?;
        st.dirty = true;
        if let Some(routes) = &self.shared.routes {
            routes.follow_writer(st.infra.db.primary.addr).await?;
        }
        Ok(report)
    }

    /// Restarts Redis (graceful stop, start on the same address and data).
    pub async fn restart_cache(&self) -> Result<()> {
        self.server_action(ServerRole::Cache, ServerAction::Restart)
            .await
    }

    /// Restarts RabbitMQ (graceful stop, start with the same node and data).
    pub async fn restart_broker(&self) -> Result<()> {
        self.server_action(ServerRole::Broker, ServerAction::Restart)
            .await
    }

    /// Starts the cache or broker again if it is stopped (the undo of a
    /// lasting outage); a running server is left alone.
    pub(super) async fn start_server(&self, role: ServerRole) -> Result<()> {
        self.server_action(role, ServerAction::Start).await
    }

    /// Acts on one infrastructure server, with `server.*` events.
    async fn server_action(&self, role: ServerRole, action: ServerAction) -> Result<()> {
        let mut st = self.shared.state.lock().await;
        let events = &self.shared.events;
        match role {
            ServerRole::Cache => {
                let address = st.infra.redis.addr;
                act_on(&mut st.infra.redis, address, role, action, events).await?
            }
            ServerRole::Broker => {
                let address = st.infra.rabbit.addr;
                act_on(&mut st.infra.rabbit, address, role, action, events).await?
            }
        }
        st.dirty = true;
        Ok(())
    }
}

async fn act_on<S: Server>(
    server: &mut S,
    address: SocketAddr,
    role: ServerRole,
    action: ServerAction,
    events: &crate::events::EventLog,
) -> Result<()> {
    let address = Some(address.to_string());
    match action {
        ServerAction::Restart => {
            events.emit(EventKind::ServerStopping { server: role });
            server.restart().await?;
            events.emit(EventKind::ServerRestarted {
                server: role,
                address,
            });
        }
        ServerAction::Stop => {
            events.emit(EventKind::ServerStopping { server: role });
            server.stop();
            events.emit(EventKind::ServerStopped {
                server: role,
                address,
            });
        }
        ServerAction::Start => {
            if server.running().is_none() {
                server.launch().await?;
                events.emit(EventKind::ServerStarted {
                    server: role,
                    address,
                });
            }
        }
    }
    Ok(())
}

impl LocalPlatform {
    /// Adds the toxics of `effect` to each target link; a loss fault then
    /// rolls each connection's chance again every `LOSS_REROLL` until healed.
    async fn degrade_links(&self, effect: &NetworkEffect, targets: &[Target]) -> Result<()> {
        let Some(routes) = &self.shared.routes else {
            return Err(Error::NothingToHit {
                fault: "network fault",
                why: "this stack runs no Toxiproxy".into(),
            });
        };
        for target in targets {
            routes.degrade(target, effect).await?;
            if matches!(effect, NetworkEffect::Loss { .. }) {
                self.keep_rolling(target, effect);
            }
        }
        Ok(())
    }

    fn keep_rolling(&self, target: &Target, effect: &NetworkEffect) {
        let stop = self.shared.shutdown.child_token();
        if let Ok(mut rerolls) = self.shared.rerolls.lock() {
            rerolls.insert(target.detail.clone().unwrap_or_default(), stop.clone());
        }
        let (shared, target, effect) = (self.shared.clone(), target.clone(), effect.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(network::LOSS_REROLL) => {}
                }
                if let Some(routes) = &shared.routes
                    && let Err(e) = routes.reroll(&target, &effect).await
                {
                    tracing::debug!(link = %target.id, error = %e, "rolling the loss again");
                }
            }
        });
    }

    /// Removes the toxics a network fault added to one link.
    pub(super) async fn heal_link(&self, target: &Target) -> Result<()> {
        if let Some(stop) = self
            .shared
            .rerolls
            .lock()
            .ok()
            .and_then(|mut r| r.remove(target.detail.as_deref().unwrap_or_default()))
        {
            stop.cancel();
        }
        match &self.shared.routes {
            Some(routes) => routes.heal(target).await,
            None => Ok(()),
        }
    }

    /// Every toxic left on the stack's proxies: (proxy, toxic).
    pub async fn toxics_left(&self) -> Result<Vec<(String, String)>> {
        match &self.shared.routes {
            Some(routes) => routes.all_toxics().await,
            None => Ok(Vec::new()),
        }
    }
}
