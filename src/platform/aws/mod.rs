//! The aws platform: the reference shop as a CloudFormation stack
//! (reference-app/aws/shop.yaml: an Auto Scaling group behind an ALB, RDS,
//! ElastiCache, Amazon MQ, CloudWatch alarms), or existing resources named
//! by the scenario. Credentials and region come from the SDK's standard
//! chain; `target.endpoint-url` points every client at a stand-in such as
//! moto's server.
//!
//! A run creates the stack when it is missing and deletes it afterwards
//! (only then); with a stack that exists, or without one, it attaches.
//! Faults are AWS calls (TerminateInstances, RebootDBInstance with
//! ForceFailover or FailoverDBCluster, RebootCacheCluster, RebootBroker) on
//! the resources the scenario names or its stack's outputs name, never
//! anything else (see `resources`). Pollers turn what AWS does into the
//! run's typed events (see `watch`).

pub mod alarms;
pub mod cache;
pub mod clients;
pub mod elb;
pub mod errors;
pub mod group;
mod lifecycle;
pub mod rds;
pub mod resources;
pub mod stack;
mod targets;
pub mod template;
pub mod watch;

#[cfg(test)]
mod tests;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;

pub use clients::AwsClients;
pub use errors::{Error, ResourceKind};
pub use lifecycle::{
    admin_token, deploy, deploy_with, down, down_with, open, open_with, preview, preview_with,
    status, status_with, up, up_with,
};
pub use rds::Failover;
pub use resources::Resources;
pub use targets::{describe, supports};

use self::watch::Watchers;
use crate::{
    events::{EventKind, EventLog, ServerRole},
    platform::{Inventory, Platform, Support, Target, Undo},
    scenario::{AwsTarget, Fault, FaultKind},
};

/// How this process came to the shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `plan`: read only; injecting is refused.
    Preview,
    /// The stack or the named resources were there before.
    Attached,
    /// This run created the stack; shutdown deletes it.
    Deployed,
}

/// The shop on AWS, for a run, `plan` or `inject`.
pub struct AwsPlatform {
    aws: AwsClients,
    target: AwsTarget,
    mode: Mode,
    resources: Resources,
    entry_url: String,
    admin_token: Option<String>,
    events: Arc<EventLog>,
    watchers: Option<Watchers>,
    /// A preview of a stack that does not exist yet.
    stack_missing: bool,
}

impl AwsPlatform {
    pub fn new(
        aws: AwsClients,
        target: AwsTarget,
        mode: Mode,
        resources: Resources,
        events: Arc<EventLog>,
    ) -> Self {
        Self {
            entry_url: resources.entry_url.clone().unwrap_or_default(),
            aws,
            target,
            mode,
            resources,
            admin_token: None,
            events,
            watchers: None,
            stack_missing: false,
        }
    }

    /// The shop's admin token (reset and the order audit).
    #[must_use]
    pub fn with_admin_token(mut self, token: Option<String>) -> Self {
        self.admin_token = token.filter(|t| !t.is_empty());
        self
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    pub fn clients(&self) -> &AwsClients {
        &self.aws
    }

    /// Starts the pollers (every `every`), and waits a bounded while until
    /// each has polled once, so what a fault does next is seen.
    pub async fn watch(&mut self, every: Duration) {
        let policy_alarms = match &self.resources.group {
            Some(group) => self.aws.policy_alarms(group).await.unwrap_or_else(|e| {
                tracing::warn!("the scaling alarms of {group} are not followed: {e}");
                Vec::new()
            }),
            None => Vec::new(),
        };
        let watched = self.resources.watched(&policy_alarms);
        let mut watchers = watch::spawn(&self.aws, &watched, self.events.clone(), every);
        if !watchers.wait_polled(Duration::from_secs(30)).await {
            eprintln!("gameday: AWS has not answered every first poll after 30 s; going on");
        }
        self.watchers = Some(watchers);
    }

    fn refuse(&self, fault: &Fault, why: impl Into<String>) -> crate::Error {
        Error::refused(fault.kind.key(), why).into()
    }

    fn not_yet(&self) -> Option<crate::Error> {
        self.stack_missing.then(|| {
            Error::refused(
                format!("stack {}", self.target.stack.as_deref().unwrap_or_default()),
                format!(
                    "does not exist yet on {}: a run creates it first, and its instances, \
                     database, cache and broker are known only then",
                    self.aws.place()
                ),
            )
            .into()
        })
    }
}

#[async_trait]
impl Platform for AwsPlatform {
    fn name(&self) -> &'static str {
        "aws"
    }

    fn entry_url(&self) -> &str {
        &self.entry_url
    }

    fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    fn supports(&self, fault: &Fault) -> Support {
        supports(&self.target, fault)
    }

    fn describe(&self, fault: &Fault) -> String {
        describe(&self.resources, fault)
    }

    async fn inventory(&self) -> crate::Result<Inventory> {
        if let Some(e) = self.not_yet() {
            return Err(e);
        }
        let mut inventory = targets::inventory(&self.aws, &self.resources).await?;
        inventory.entry_url = self.entry_url.clone();
        inventory.admin_token = self.admin_token.clone();
        Ok(inventory)
    }

    async fn candidates(&self, fault: &FaultKind) -> crate::Result<Vec<Target>> {
        if let Some(e) = self.not_yet() {
            return Err(e);
        }
        Ok(targets::candidates(&self.aws, &self.resources, fault).await?)
    }

    /// Nothing an AWS fault does lasts: the group replaces instances, RDS
    /// completes a failover, a reboot ends by itself.
    async fn undo_for(&self, _fault: &Fault, _targets: &[Target]) -> Option<Undo> {
        None
    }

    /// TerminateInstances with DryRun; the state a failover or reboot needs.
    async fn dry_run(&self, fault: &Fault, targets: &[Target]) -> crate::Result<()> {
        if let Some(e) = self.not_yet() {
            return Err(e);
        }
        Ok(targets::check(&self.aws, &self.resources, fault, targets).await?)
    }

    async fn inject(&self, fault: &Fault, targets: &[Target]) -> crate::Result<()> {
        if self.mode == Mode::Preview {
            return Err(self.refuse(fault, "this is a preview for `plan`: it acts on nothing"));
        }
        if let Support::No { why } = self.supports(fault) {
            return Err(self.refuse(fault, why));
        }
        let r = &self.resources;
        match &fault.kind {
            FaultKind::TerminateInstance { .. } => {
                // Only members of the group the scenario names (or its
                // stack's): the candidates are read again, now.
                let members = targets::candidates(&self.aws, r, &fault.kind).await?;
                let ids: Vec<String> = targets.iter().map(|t| t.id.clone()).collect();
                if let Some(stranger) = ids.iter().find(|id| !members.iter().any(|m| &m.id == *id))
                {
                    return Err(self.refuse(
                        fault,
                        format!(
                            "{stranger} is not an in-service member of Auto Scaling group {}",
                            r.group.as_deref().unwrap_or("-")
                        ),
                    ));
                }
                for t in self.aws.terminate_instances(&ids).await? {
                    tracing::info!(instance = %t.instance_id, from = %t.previous_state, to = %t.current_state, "terminate-instance");
                }
            }
            FaultKind::DbFailover { .. } => {
                let Some(db) = &r.database else {
                    return Err(self.refuse(fault, "no database is named"));
                };
                let done = self.aws.fail_over_database(db).await?;
                tracing::info!(?done, "db-failover");
            }
            FaultKind::RestartCache => {
                let Some(id) = &r.cache else {
                    return Err(self.refuse(fault, "no cache is named"));
                };
                self.aws.reboot_cache_cluster(id).await?;
                self.events.emit(EventKind::ServerStopping {
                    server: ServerRole::Cache,
                });
            }
            FaultKind::RestartBroker => {
                let Some(id) = &r.broker else {
                    return Err(self.refuse(fault, "no broker is named"));
                };
                self.aws.reboot_broker(id).await?;
                self.events.emit(EventKind::ServerStopping {
                    server: ServerRole::Broker,
                });
            }
            FaultKind::KillPod { .. } => {
                return Err(self.refuse(fault, "an Auto Scaling group runs instances, not pods"));
            }
        }
        Ok(())
    }

    async fn undo(&self, undo: &Undo) -> crate::Result<()> {
        Err(Error::refused(
            format!("undo ({})", undo.describe()),
            "the aws platform never registers an undo",
        )
        .into())
    }

    async fn shutdown(mut self: Box<Self>) {
        if let Some(watchers) = self.watchers.take() {
            watchers.stop().await;
        }
        if self.mode == Mode::Deployed
            && let Some(stack) = &self.target.stack
        {
            eprintln!("gameday: stack {stack} was created by this run");
            lifecycle::remove(&self.aws, stack).await;
        }
        if self.mode != Mode::Preview {
            self.events.emit(EventKind::PlatformStopped {});
        }
    }
}
