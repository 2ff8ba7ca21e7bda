//! The shop's pods and the Services' endpoints: replicas placed, ready,
//! serving, terminating and gone; the database's, cache's and broker's pods
//! as `db.status` and `server.*` events.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::{core::v1::Pod, discovery::v1::EndpointSlice};
use kube::ResourceExt;

use super::{Seen, Track};
use crate::{
    events::{EventKind, ServerRole},
    platform::kubernetes::{
        faults::{BROKER, CACHE, DATABASE},
        inventory::{SLICE_SERVICE_LABEL, pod_info, serving_in},
    },
    shop,
};

/// What a pod of the namespace is to the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A replica of one of the shop's services.
    Replica,
    Database,
    Server(ServerRole),
}

fn role_of(label: &str) -> Option<Role> {
    match label {
        DATABASE => Some(Role::Database),
        CACHE => Some(Role::Server(ServerRole::Cache)),
        BROKER => Some(Role::Server(ServerRole::Broker)),
        s if shop::is_service(s) => Some(Role::Replica),
        _ => None,
    }
}

#[derive(Debug, Clone)]
struct PodState {
    uid: String,
    service: String,
    role: Role,
    node: Option<String>,
    ready: bool,
    stopping: bool,
}

/// Pods by name: placed on a node once, ready transitions, terminating,
/// gone. The shop's replicas become `replica.*` events; the database's,
/// cache's and broker's pods `db.status` and `server.*` events.
#[derive(Debug, Default)]
pub struct Pods {
    pods: BTreeMap<String, PodState>,
}

impl Track<Pod> for Pods {
    fn key(&self, pod: &Pod) -> String {
        pod.name_any()
    }

    fn apply(&mut self, pod: &Pod, seen: &mut Seen, out: &mut Vec<EventKind>) {
        let info = pod_info(pod);
        let Some(role) = role_of(&info.service) else {
            return;
        };
        let uid = pod.uid().unwrap_or_default();
        if self.pods.get(&info.name).is_some_and(|p| p.uid != uid) {
            // The same name, a new pod (a StatefulSet's replacement).
            self.remove(&info.name, out);
        }
        let state = self.pods.entry(info.name.clone()).or_insert(PodState {
            uid,
            service: info.service.clone(),
            role,
            node: None,
            ready: false,
            stopping: false,
        });
        let (service, replica) = (info.service.clone(), info.name.clone());
        if state.node.is_none()
            && let Some(node) = &info.node
        {
            state.node = Some(node.clone());
            if role == Role::Replica {
                let pending = seen.scale_outs.get_mut(&service).filter(|n| **n > 0);
                let scale_out = !seen.first_list && pending.is_some();
                if let Some(n) = pending {
                    *n -= 1;
                }
                out.push(EventKind::ReplicaStarted {
                    service: service.clone(),
                    replica: replica.clone(),
                    instance: Some(node.clone()),
                    address: info.ip.clone(),
                    scale_out,
                });
            }
        }
        if info.terminating && !state.stopping {
            state.stopping = true;
            out.push(match role {
                Role::Replica => EventKind::ReplicaStopping {
                    service: service.clone(),
                    replica: replica.clone(),
                    instance: state.node.clone(),
                    reason: Some("pod terminating".into()),
                },
                Role::Database => EventKind::DbStatus {
                    database: replica.clone(),
                    status: "terminating".into(),
                },
                Role::Server(server) => EventKind::ServerStopping { server },
            });
        }
        if info.ready != state.ready {
            state.ready = info.ready;
            let address = Some(replica.clone());
            match (role, info.ready) {
                (Role::Replica, true) => out.push(EventKind::ReplicaReady { service, replica }),
                // Readiness lost without going away: the endpoints say
                // whether it still serves; nothing here.
                (Role::Replica, false) => {}
                (Role::Database, ready) => out.push(EventKind::DbStatus {
                    database: replica,
                    status: if ready { "ready" } else { "not ready" }.into(),
                }),
                (Role::Server(server), true) => {
                    out.push(EventKind::ServerStarted { server, address })
                }
                (Role::Server(server), false) => {
                    out.push(EventKind::ServerStopped { server, address })
                }
            }
        }
    }

    fn remove(&mut self, key: &str, out: &mut Vec<EventKind>) {
        let Some(state) = self.pods.remove(key) else {
            return;
        };
        let replica = key.to_string();
        match state.role {
            Role::Replica => out.push(EventKind::ReplicaExited {
                service: state.service,
                replica,
                instance: state.node,
                reason: Some("pod deleted".into()),
            }),
            Role::Database => out.push(EventKind::DbStatus {
                database: replica,
                status: "deleted".into(),
            }),
            Role::Server(server) if state.ready => out.push(EventKind::ServerStopped {
                server,
                address: Some(replica),
            }),
            Role::Server(_) => {}
        }
    }

    fn keys(&self) -> Vec<String> {
        self.pods.keys().cloned().collect()
    }
}

/// EndpointSlices by name: which of the shop's pods each lists as serving.
/// A pod that joins is `replica.serving`; one that leaves is
/// `replica.unready` (its pod may also say terminating or deleted; a pod
/// whose readiness failed says nothing else).
#[derive(Debug, Default)]
pub struct EndpointSlices {
    slices: BTreeMap<String, BTreeSet<String>>,
}

impl Track<EndpointSlice> for EndpointSlices {
    fn key(&self, slice: &EndpointSlice) -> String {
        slice.name_any()
    }

    fn apply(&mut self, slice: &EndpointSlice, _seen: &mut Seen, out: &mut Vec<EventKind>) {
        let service = slice
            .labels()
            .get(SLICE_SERVICE_LABEL)
            .cloned()
            .unwrap_or_default();
        if !shop::is_service(&service) {
            return;
        }
        let serving = serving_in(slice);
        let before = self.slices.entry(slice.name_any()).or_default();
        for replica in serving.difference(before) {
            out.push(EventKind::ReplicaServing {
                service: service.clone(),
                replica: replica.clone(),
            });
        }
        for replica in before.difference(&serving) {
            out.push(EventKind::ReplicaUnready {
                service: service.clone(),
                replica: replica.clone(),
            });
        }
        *before = serving;
    }

    fn remove(&mut self, key: &str, _out: &mut Vec<EventKind>) {
        self.slices.remove(key);
    }

    fn keys(&self) -> Vec<String> {
        self.slices.keys().cloned().collect()
    }
}
