//! The cluster's nodes as instances: launching, running and serving,
//! unhealthy, terminated.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;

use super::{Seen, Track};
use crate::{events::EventKind, platform::kubernetes::inventory::node_info};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeState {
    /// Registered, not Ready yet.
    Launching,
    Serving,
    /// Was Ready, is not now.
    Unhealthy,
}

/// Nodes by name: launching (registered, not Ready), running and serving
/// (Ready), unhealthy (Ready lost), terminated (the Node object is gone).
#[derive(Debug, Default)]
pub struct Nodes {
    nodes: BTreeMap<String, (NodeState, Option<String>, Option<String>)>,
}

impl Track<Node> for Nodes {
    fn key(&self, node: &Node) -> String {
        node.name_any()
    }

    fn apply(&mut self, node: &Node, _seen: &mut Seen, out: &mut Vec<EventKind>) {
        let info = node_info(node);
        let instance = info.name.clone();
        let before = self.nodes.get(&instance).map(|(s, _, _)| *s);
        let running = || EventKind::InstanceRunning {
            instance: instance.clone(),
            address: info.address.clone(),
            zone: info.zone.clone(),
        };
        let serving = || EventKind::InstanceServing {
            instance: instance.clone(),
            group: None,
        };
        let state = match (before, info.ready) {
            (None, false) => {
                out.push(EventKind::InstanceLaunching {
                    instance: instance.clone(),
                    replaces: None,
                    address: info.address.clone(),
                    zone: info.zone.clone(),
                    boot_delay_ms: None,
                    group: None,
                    scale_out: false,
                });
                NodeState::Launching
            }
            (None | Some(NodeState::Launching), true) => {
                out.extend([running(), serving()]);
                NodeState::Serving
            }
            (Some(NodeState::Unhealthy), true) => {
                out.push(serving());
                NodeState::Serving
            }
            (Some(NodeState::Serving), false) => {
                out.push(EventKind::InstanceUnhealthy {
                    instance: instance.clone(),
                    reason: Some("node not Ready".into()),
                });
                NodeState::Unhealthy
            }
            (Some(same), _) => same,
        };
        self.nodes
            .insert(instance, (state, info.address, info.zone));
    }

    fn remove(&mut self, key: &str, out: &mut Vec<EventKind>) {
        if let Some((_, address, zone)) = self.nodes.remove(key) {
            out.push(EventKind::InstanceTerminated {
                instance: key.to_string(),
                address,
                zone,
            });
        }
    }

    fn keys(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }
}
