//! The Auto Scaling group: its members and desired capacity, its scaling
//! policies' alarms, EC2's view of its instances, and TerminateInstances.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, InstanceStateName};

use super::{
    clients::AwsClients,
    errors::{Error, ResourceKind, Result},
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub instance_id: String,
    pub availability_zone: String,
    /// Pending, InService, Terminating, Terminated, Detaching, Standby, ...
    pub lifecycle_state: String,
    /// "Healthy" or "Unhealthy", as the group sees it.
    pub health_status: String,
    pub instance_type: Option<String>,
}

impl GroupMember {
    pub fn in_service(&self) -> bool {
        self.lifecycle_state == "InService"
    }

    /// On its way out (Terminating, Terminating:Wait, Terminated, ...).
    pub fn leaving(&self) -> bool {
        self.lifecycle_state.starts_with("Terminat")
            || self.lifecycle_state.starts_with("Detach")
            || self.lifecycle_state.starts_with("Warmed")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    pub name: String,
    pub arn: Option<String>,
    pub min_size: i32,
    pub max_size: i32,
    pub desired_capacity: i32,
    pub members: Vec<GroupMember>,
    pub target_group_arns: Vec<String>,
}

impl GroupState {
    pub fn in_service(&self) -> impl Iterator<Item = &GroupMember> {
        self.members.iter().filter(|m| m.in_service())
    }
}

/// EC2's view of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceView {
    /// pending, running, shutting-down, terminated, stopping, stopped.
    pub state: String,
    pub private_ip: Option<String>,
}

/// A scaling policy's alarm, and whether it adds capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyAlarm {
    pub alarm: String,
    pub policy: String,
    pub scales_out: bool,
}

/// One instance's state change from `TerminateInstances`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    pub instance_id: String,
    pub previous_state: String,
    pub current_state: String,
}

/// How a terminated instance goes: lost at once, or after its OS shut
/// down (the scenario's `graceful: true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// `SkipOsShutdown=true`: no shutdown, the machine is gone.
    Skipped,
    /// EC2's default: the OS shuts down (SIGTERM to the services) first.
    Graceful,
}

impl Shutdown {
    pub fn from_graceful(graceful: bool) -> Self {
        if graceful {
            Self::Graceful
        } else {
            Self::Skipped
        }
    }

    /// The request's `SkipOsShutdown`: true, or left out (EC2's default,
    /// false).
    pub fn skip_os_shutdown(self) -> Option<bool> {
        (self == Self::Skipped).then_some(true)
    }

    /// In words, for `plan` and the report.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Skipped => {
                "SkipOsShutdown=true: lost at once, no OS shutdown, no SIGTERM to the shop"
            }
            Self::Graceful => {
                "graceful: the OS shuts down first (systemd sends SIGTERM and the shop drains)"
            }
        }
    }
}

const INSTANCE_NOT_FOUND: &[&str] = &["InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"];

impl AwsClients {
    pub async fn describe_group(&self, name: &str) -> Result<GroupState> {
        const OP: &str = "DescribeAutoScalingGroups";
        let out = self
            .autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .map_err(|e| self.error(OP, e))?;
        let g = out
            .auto_scaling_groups()
            .first()
            .ok_or_else(|| self.not_found(ResourceKind::AutoScalingGroup, name))?;
        let mut members: Vec<GroupMember> = g
            .instances()
            .iter()
            .map(|i| GroupMember {
                instance_id: i.instance_id().unwrap_or_default().to_string(),
                availability_zone: i.availability_zone().unwrap_or_default().to_string(),
                lifecycle_state: i
                    .lifecycle_state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                health_status: i.health_status().unwrap_or_default().to_string(),
                instance_type: i.instance_type().map(str::to_string),
            })
            .collect();
        // The order a blast radius picks in, the same for plan and run.
        members.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        Ok(GroupState {
            name: g.auto_scaling_group_name().unwrap_or(name).to_string(),
            arn: g.auto_scaling_group_arn().map(str::to_string),
            min_size: g.min_size().unwrap_or_default(),
            max_size: g.max_size().unwrap_or_default(),
            desired_capacity: g.desired_capacity().unwrap_or_default(),
            members,
            target_group_arns: g.target_group_arns().to_vec(),
        })
    }

    /// The alarms of the group's scaling policies (target tracking creates
    /// an AlarmHigh, which scales out, and an AlarmLow).
    pub async fn policy_alarms(&self, group: &str) -> Result<Vec<PolicyAlarm>> {
        const OP: &str = "DescribePolicies";
        let out = self
            .autoscaling
            .describe_policies()
            .auto_scaling_group_name(group)
            .send()
            .await
            .map_err(|e| self.error(OP, e))?;
        let mut alarms = Vec::new();
        for p in out.scaling_policies() {
            let policy = p.policy_name().unwrap_or_default();
            let adds = p.scaling_adjustment().is_some_and(|a| a > 0)
                || p.step_adjustments()
                    .iter()
                    .any(|s| s.scaling_adjustment().is_some_and(|a| a > 0));
            for a in p.alarms() {
                let Some(name) = a.alarm_name() else { continue };
                let scales_out = match p.policy_type() {
                    Some("TargetTrackingScaling") => name.contains("AlarmHigh"),
                    _ => adds,
                };
                alarms.push(PolicyAlarm {
                    alarm: name.to_string(),
                    policy: policy.to_string(),
                    scales_out,
                });
            }
        }
        Ok(alarms)
    }

    /// EC2's view of these instances, by id. Asked with an `instance-id`
    /// filter, so an id EC2 no longer knows is left out instead of failing
    /// the call.
    pub async fn instances(&self, ids: &[String]) -> Result<BTreeMap<String, InstanceView>> {
        const OP: &str = "DescribeInstances";
        let mut views = BTreeMap::new();
        if ids.is_empty() {
            return Ok(views);
        }
        let filter = Filter::builder()
            .name("instance-id")
            .set_values(Some(ids.to_vec()))
            .build();
        let mut token = None;
        loop {
            let out = self
                .ec2
                .describe_instances()
                .filters(filter.clone())
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| self.error(OP, e))?;
            for r in out.reservations() {
                for i in r.instances() {
                    let Some(id) = i.instance_id() else { continue };
                    views.insert(
                        id.to_string(),
                        InstanceView {
                            state: state_name(i.state().and_then(|s| s.name())),
                            private_ip: i.private_ip_address().map(str::to_string),
                        },
                    );
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(views),
            }
        }
    }

    /// The instances lost (`SkipOsShutdown=true`), as the kubernetes
    /// platform's node provider loses a node's machine.
    pub async fn terminate_instances(&self, ids: &[String]) -> Result<Vec<Terminated>> {
        self.terminate_instances_with(ids, Shutdown::Skipped).await
    }

    /// EC2 `TerminateInstances`. Lost (not `graceful`): with
    /// `SkipOsShutdown=true` the instances stop at once, no SIGTERM reaches
    /// the shop, so the load balancer's health checks find out and the
    /// group launches replacements: the realistic "instance lost" fault
    /// (DESIGN.md section 3). `graceful`: EC2's default, the OS shuts down
    /// first (systemd stops the shop, which drains) - a planned stop.
    /// EC2 API reference, TerminateInstances: "SkipOsShutdown - Specifies
    /// whether to bypass the graceful OS shutdown process when the instance
    /// is terminated. Default: false".
    pub async fn terminate_instances_with(
        &self,
        ids: &[String],
        shutdown: Shutdown,
    ) -> Result<Vec<Terminated>> {
        const OP: &str = "TerminateInstances";
        let joined = ids.join(", ");
        let out = self
            .ec2
            .terminate_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .set_skip_os_shutdown(shutdown.skip_os_shutdown())
            .send()
            .await
            .map_err(|e| {
                self.error_about(OP, e, INSTANCE_NOT_FOUND, ResourceKind::Instance, &joined)
            })?;
        Ok(out
            .terminating_instances()
            .iter()
            .map(|c| Terminated {
                instance_id: c.instance_id().unwrap_or_default().to_string(),
                previous_state: state_name(c.previous_state().and_then(|s| s.name())),
                current_state: state_name(c.current_state().and_then(|s| s.name())),
            })
            .collect())
    }

    /// `TerminateInstances` with `DryRun=true`: checks the permission and
    /// the ids without acting (`plan`). AWS answers the error
    /// `DryRunOperation` when the real call would succeed; any other answer
    /// (`UnauthorizedOperation`, `InvalidInstanceID.NotFound`) is the error.
    pub async fn terminate_instances_dry_run(
        &self,
        ids: &[String],
        shutdown: Shutdown,
    ) -> Result<()> {
        const OP: &str = "TerminateInstances (DryRun)";
        let joined = ids.join(", ");
        let res = self
            .ec2
            .terminate_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .set_skip_os_shutdown(shutdown.skip_os_shutdown())
            .dry_run(true)
            .send()
            .await;
        match res {
            Ok(_) => Err(Error::unexpected(
                OP,
                "the service acted on a dry run (it answered success instead of DryRunOperation)",
            )),
            Err(e) => {
                match self.error_about(OP, e, INSTANCE_NOT_FOUND, ResourceKind::Instance, &joined) {
                    Error::Api { code, .. } if code == "DryRunOperation" => Ok(()),
                    other => Err(other),
                }
            }
        }
    }
}

fn state_name(s: Option<&InstanceStateName>) -> String {
    s.map(|s| s.as_str().to_string()).unwrap_or_default()
}
