//! The Auto Scaling group as the run's instance events: what the group
//! asks for (desired capacity), its members (launching, in service,
//! terminated, replaced), and each member's health in the target groups.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::{
    events::EventKind,
    platform::aws::group::{GroupState, InstanceView},
};

/// EC2 states of an instance that is gone or going.
const GONE: &[&str] = &["shutting-down", "terminated", "stopping", "stopped"];

#[derive(Debug, Clone)]
struct Member {
    zone: String,
    address: Option<String>,
    running: bool,
}

/// Remembers the group between polls and says what changed.
#[derive(Debug)]
pub struct GroupTracker {
    group: String,
    first: bool,
    desired: Option<i32>,
    /// Instances the group was asked for and has not launched yet.
    scale_outs_pending: u32,
    members: BTreeMap<String, Member>,
    gone: BTreeSet<String>,
    /// Terminated members the group has not replaced yet, oldest first.
    to_replace: VecDeque<String>,
    serving: BTreeSet<String>,
}

impl GroupTracker {
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            first: true,
            desired: None,
            scale_outs_pending: 0,
            members: BTreeMap::new(),
            gone: BTreeSet::new(),
            to_replace: VecDeque::new(),
            serving: BTreeSet::new(),
        }
    }

    /// The events one poll makes: `ec2` is EC2's view of the members,
    /// `health` each registered instance's target health (healthy,
    /// unhealthy, draining, ...; None when the group has no target group).
    pub fn observe(
        &mut self,
        group: &GroupState,
        ec2: &BTreeMap<String, InstanceView>,
        health: Option<&BTreeMap<String, String>>,
    ) -> Vec<EventKind> {
        let mut out = Vec::new();
        let first = std::mem::replace(&mut self.first, false);
        let scaled_in = self.desired_capacity(group.desired_capacity, first, &mut out);
        let listed: BTreeMap<&str, _> = group
            .members
            .iter()
            .map(|m| (m.instance_id.as_str(), m))
            .collect();
        let address = |id: &str| ec2.get(id).and_then(|v| v.private_ip.clone());
        let ec2_gone = |id: &str| {
            ec2.get(id)
                .is_some_and(|v| GONE.contains(&v.state.as_str()))
        };

        // Members that left: gone from the list, leaving, or dying in EC2.
        let left: Vec<String> = self
            .members
            .keys()
            .filter(|id| {
                listed.get(id.as_str()).is_none_or(|m| m.leaving()) || ec2_gone(id.as_str())
            })
            .cloned()
            .collect();
        for id in left {
            if let Some(m) = self.members.remove(&id) {
                self.serving.remove(&id);
                out.push(EventKind::InstanceTerminated {
                    instance: id.clone(),
                    address: m.address.or_else(|| address(&id)),
                    zone: Some(m.zone),
                });
                if !scaled_in {
                    self.to_replace.push_back(id.clone());
                }
                self.gone.insert(id);
            }
        }

        // Members that joined, and members now in service.
        for m in &group.members {
            let id = &m.instance_id;
            if self.gone.contains(id) || m.leaving() || ec2_gone(id) {
                continue;
            }
            if !self.members.contains_key(id) {
                if !(first && m.in_service()) {
                    out.push(self.launching(id, &m.availability_zone, first));
                }
                self.members.insert(
                    id.clone(),
                    Member {
                        zone: m.availability_zone.clone(),
                        address: address(id),
                        running: false,
                    },
                );
            }
            if let Some(known) = self.members.get_mut(id) {
                if known.address.is_none() {
                    known.address = address(id);
                }
                if m.in_service() && !known.running {
                    known.running = true;
                    out.push(EventKind::InstanceRunning {
                        instance: id.clone(),
                        address: known.address.clone(),
                        zone: Some(known.zone.clone()),
                    });
                }
            }
        }

        if let Some(health) = health {
            self.health(health, &mut out);
        }
        out
    }

    /// Health behind the load balancer: serving, or not any more.
    fn health(&mut self, health: &BTreeMap<String, String>, out: &mut Vec<EventKind>) {
        for id in self.members.keys() {
            let state = health.get(id).map(String::as_str);
            let healthy = state == Some("healthy");
            if healthy && self.serving.insert(id.clone()) {
                out.push(EventKind::InstanceServing {
                    instance: id.clone(),
                    group: Some(self.group.clone()),
                });
            } else if !healthy && self.serving.remove(id) {
                out.push(EventKind::InstanceUnhealthy {
                    instance: id.clone(),
                    reason: Some(match state {
                        Some(s) => format!("target health {s}"),
                        None => "no longer registered in the target group".into(),
                    }),
                });
            }
        }
    }

    /// A desired-capacity change is a scaling decision; the next instances
    /// launched after an increase are scale-outs. Returns whether the group
    /// was scaled in (members that leave then are not replaced).
    fn desired_capacity(&mut self, desired: i32, first: bool, out: &mut Vec<EventKind>) -> bool {
        let before = self.desired.replace(desired);
        let Some(before) = before.filter(|_| !first) else {
            return false;
        };
        if desired == before {
            return false;
        }
        out.push(EventKind::ScalingDecision {
            service: self.group.clone(),
            from: u32::try_from(before).unwrap_or(0),
            to: u32::try_from(desired).unwrap_or(0),
            observed_cpu_percent: None,
            target_cpu_percent: None,
        });
        if desired > before {
            self.scale_outs_pending += u32::try_from(desired - before).unwrap_or(0);
            false
        } else {
            self.scale_outs_pending = 0;
            true
        }
    }

    /// A new member: a scale-out while the group owes some, else the
    /// replacement of the oldest member it lost.
    fn launching(&mut self, id: &str, zone: &str, first: bool) -> EventKind {
        let (scale_out, replaces) = if first {
            (false, None)
        } else if self.scale_outs_pending > 0 {
            self.scale_outs_pending -= 1;
            (true, None)
        } else {
            (false, self.to_replace.pop_front())
        };
        EventKind::InstanceLaunching {
            instance: id.to_string(),
            replaces,
            address: None,
            zone: Some(zone.to_string()),
            boot_delay_ms: None,
            group: Some(self.group.clone()),
            scale_out,
        }
    }
}
