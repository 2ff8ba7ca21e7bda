//! The reconciler: four times a second it makes the processes match the
//! placement. A replica that exited is forgotten (and a new one started on
//! its instance, like a pod), an instance whose boot delay is over starts
//! running, and replicas are started or drained until each instance runs
//! what the placement wants. A new replica joins the load balancer once its
//! readiness check passes.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use nix::sys::signal::Signal;

use super::errors::Result;
use super::{
    haproxy::backend,
    process::free_port,
    shop::Replica,
    state::{ReplicaEntry, Shared, State, inventory, write_status},
};
use crate::{events::EventKind, platform::InstanceState, shop::SERVICES};

const RECONCILE_EVERY: Duration = Duration::from_millis(250);
/// A replica asked to stop is killed after this.
pub(super) const STOP_GRACE: Duration = Duration::from_secs(12);

pub(super) async fn reconcile_loop(shared: Arc<Shared>) {
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(RECONCILE_EVERY) => reconcile(&shared).await,
        }
    }
}

/// One pass: forget replicas that exited, boot instances whose time has
/// come, start or stop replicas until the placement holds, save the status.
pub(super) async fn reconcile(shared: &Arc<Shared>) {
    let mut st = shared.state.lock().await;
    let st = &mut *st;
    forget_exited(shared, st).await;

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
            shared.events.emit(EventKind::InstanceRunning {
                instance: inst.name.clone(),
                address: Some(inst.address.to_string()),
                zone: None,
            });
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
            let wanted = st.placed(&instance, service) as usize;
            let alive: Vec<usize> = st
                .replicas
                .iter()
                .enumerate()
                .filter(|(_, r)| {
                    r.instance == instance && r.replica.service == service && r.alive()
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
                    drain(shared, &mut st.replicas[idx], service).await;
                }
                st.dirty = true;
            }
        }
    }

    if st.dirty {
        st.dirty = false;
        write_status(&shared.run_dir, &inventory(shared, st));
    }
}

async fn forget_exited(shared: &Shared, st: &mut State) {
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
        shared.events.emit(EventKind::ReplicaExited {
            service: entry.replica.service.clone(),
            replica: entry.replica.name.clone(),
            instance: Some(entry.instance.clone()),
            reason: Some(reason.into()),
        });
        st.dirty = true;
    }
}

/// Takes a replica out of the load balancer, then asks it to stop.
async fn drain(shared: &Shared, entry: &mut ReplicaEntry, service: &str) {
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
    shared.events.emit(EventKind::ReplicaStopping {
        service: service.to_string(),
        replica: entry.replica.name.clone(),
        instance: Some(entry.instance.clone()),
        reason: Some("scale-in".into()),
    });
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
    let env = shared.env.for_service(service);
    let replica = Replica::spawn(service, &name, instance, addr, &env, &log)?;
    let scale_out = st
        .replicas
        .iter()
        .filter(|r| r.replica.service == service)
        .count() as u32
        >= shared.topology.initial_replicas(service)
        && shared.topology.autoscale.contains_key(service);
    shared.events.emit(EventKind::ReplicaStarted {
        service: service.into(),
        replica: name.clone(),
        instance: Some(instance.into()),
        address: Some(addr.to_string()),
        scale_out,
    });
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
            .any(|r| r.replica.name == name && r.alive())
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
        shared.events.emit(EventKind::ReplicaReady {
            service: service.into(),
            replica: name.clone(),
        });
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
                shared.events.emit(EventKind::ReplicaServing {
                    service: service.into(),
                    replica: name.clone(),
                });
            }
            return;
        }
        if gone(&*shared.state.lock().await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the placement is met on every live instance (booting ones
/// included) and every replica is serving; the names still waiting if not.
pub(super) async fn wait_all_serving(
    shared: &Shared,
    timeout: Duration,
) -> std::result::Result<(), Vec<String>> {
    let deadline = Instant::now() + timeout;
    loop {
        let (done, waiting) = {
            let st = shared.state.lock().await;
            let wanted: u32 = SERVICES.iter().map(|s| st.wanted(s)).sum();
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
            return Err(waiting);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
