//! The aws platform: the reference shop as a CloudFormation stack
//! (reference-app/aws/shop.yaml: an Auto Scaling group behind an ALB, RDS,
//! ElastiCache, Amazon MQ, CloudWatch alarms), or existing resources named
//! by the scenario. Credentials and region come from the SDK's standard
//! chain; `target.endpoint-url` points every client at a stand-in such as
//! moto's server.
//!
//! A run creates the stack when it is missing and deletes it afterwards
//! (only then); with a stack that exists, or without one, it attaches.
//! Faults are AWS calls (TerminateInstances skipping the OS shutdown unless
//! `graceful`, RebootDBInstance with ForceFailover or FailoverDBCluster,
//! ElastiCache TestFailover or RebootCacheCluster, RebootBroker) on
//! the resources the scenario names or its stack's outputs name, never
//! anything else (see `resources`). Pollers turn what AWS does into the
//! run's typed events (see `watch`).

pub mod alarms;
mod backend;
pub mod budget;
pub mod cache;
pub mod clients;
pub mod elb;
pub mod errors;
pub mod group;
pub mod rds;
pub mod release;
pub mod resources;
pub mod stack;
mod targets;
pub mod template;
pub mod watch;

#[cfg(test)]
mod tests;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;

pub use backend::{AwsBackend, AwsSite, STACK_TIMEOUT, confirmation_text, connect};
pub use clients::AwsClients;
pub use errors::{Error, ResourceKind};
pub use group::Shutdown;
pub use rds::Failover;
pub use resources::Resources;
pub use targets::{describe, supports};

use crate::{
    events::{EventKind, EventLog, ServerRole},
    platform::{
        self, Inventory, Platform, Support, Target, Undo,
        lifecycle::{Shop, Watchers, progress},
    },
    scenario::{AwsTarget, Fault, FaultKind},
};

/// The shop on AWS, for a run, `plan` or `inject`.
pub struct AwsPlatform {
    aws: AwsClients,
    target: AwsTarget,
    resources: Resources,
    entry_url: String,
    events: Arc<EventLog>,
    /// How often the watchers poll.
    every: Duration,
    /// The shop's admin token, when gameday knows it (the stack it created).
    admin_token: Option<String>,
}

impl AwsPlatform {
    pub fn new(
        aws: AwsClients,
        target: AwsTarget,
        resources: Resources,
        events: Arc<EventLog>,
        every: Duration,
    ) -> Self {
        Self {
            entry_url: resources.entry_url.clone().unwrap_or_default(),
            aws,
            target,
            resources,
            events,
            every,
            admin_token: None,
        }
    }

    /// The shop's admin token (reset and the order audit).
    #[must_use]
    pub fn with_admin_token(mut self, token: Option<String>) -> Self {
        self.admin_token = token.filter(|t| !t.is_empty());
        self
    }

    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    pub fn clients(&self) -> &AwsClients {
        &self.aws
    }

    fn refuse(&self, fault: &Fault, why: impl Into<String>) -> platform::Error {
        platform::Error::refused(fault.kind.key(), why)
    }

    /// Refuses any of `targets` that is not a candidate now (the candidates
    /// are read again: only what the scenario or its stack names).
    async fn only_candidates(
        &self,
        fault: &Fault,
        targets: &[Target],
        what: impl Fn(&str) -> String,
    ) -> platform::Result<()> {
        let allowed = targets::candidates(&self.aws, &self.resources, &fault.kind).await?;
        match targets
            .iter()
            .find(|t| !allowed.iter().any(|a| a.id == t.id))
        {
            Some(stranger) => Err(self.refuse(fault, what(&stranger.id))),
            None => Ok(()),
        }
    }

    /// terminate-instance: TerminateInstances on in-service members of the
    /// group, lost (SkipOsShutdown) or graceful.
    async fn terminate(
        &self,
        fault: &Fault,
        targets: &[Target],
        shutdown: Shutdown,
    ) -> platform::Result<()> {
        let group = self.resources.group.as_deref().unwrap_or("-");
        self.only_candidates(fault, targets, |id| {
            format!("{id} is not an in-service member of Auto Scaling group {group}")
        })
        .await?;
        let ids: Vec<String> = targets.iter().map(|t| t.id.clone()).collect();
        for t in self.aws.terminate_instances_with(&ids, shutdown).await? {
            tracing::info!(instance = %t.instance_id, from = %t.previous_state, to = %t.current_state, ?shutdown, "terminate-instance");
        }
        Ok(())
    }

    /// restart-cache: TestFailover on the replication group (the data
    /// stays), or with `reboot` RebootCacheCluster on the named cluster or
    /// the group's primary cluster (the data is lost).
    async fn restart_cache(
        &self,
        fault: &Fault,
        targets: &[Target],
        reboot: bool,
    ) -> platform::Result<()> {
        let r = &self.resources;
        if reboot {
            self.only_candidates(fault, targets, |id| {
                format!("{id} is not the cache the scenario names (nor its primary's cluster)")
            })
            .await?;
            for t in targets {
                self.aws.reboot_cache_cluster(&t.id).await?;
            }
            return Ok(());
        }
        match (&r.cache_group, &r.cache) {
            (Some(group), _) => {
                let before = self.aws.fail_over_cache(group).await?;
                tracing::info!(group = %before.id, primary = ?before.primary(), "restart-cache: TestFailover");
                Ok(())
            }
            (None, Some(cluster)) => Err(targets::no_failover(cluster)),
            (None, None) => Err(self.refuse(fault, "no cache is named")),
        }
    }
}

#[async_trait]
impl Shop for AwsPlatform {
    /// The pollers (every `every`) of the group, its scaling alarms, the
    /// database, the cache, the broker and the stack's alarms.
    async fn watch(&self) -> Option<Box<dyn Watchers>> {
        let policy_alarms = match &self.resources.group {
            Some(group) => self.aws.policy_alarms(group).await.unwrap_or_else(|e| {
                progress(
                    &self.events,
                    format!("the scaling alarms of {group} are not followed: {e}"),
                );
                Vec::new()
            }),
            None => Vec::new(),
        };
        let watched = self.resources.watched(&policy_alarms);
        Some(Box::new(watch::spawn(
            &self.aws,
            &watched,
            self.events.clone(),
            self.every,
        )))
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

    async fn inventory(&self) -> platform::Result<Inventory> {
        let mut inventory = targets::inventory(&self.aws, &self.resources).await?;
        inventory.entry_url = self.entry_url.clone();
        Ok(inventory)
    }

    async fn candidates(&self, fault: &FaultKind) -> platform::Result<Vec<Target>> {
        targets::candidates(&self.aws, &self.resources, fault).await
    }

    /// Nothing an AWS fault does lasts: the group replaces instances, RDS
    /// completes a failover, a reboot ends by itself.
    async fn undo_for(&self, _fault: &Fault, _targets: &[Target]) -> Option<Undo> {
        None
    }

    /// TerminateInstances with DryRun; the state a failover or reboot needs.
    async fn dry_run(&self, fault: &Fault, targets: &[Target]) -> platform::Result<()> {
        targets::check(&self.aws, &self.resources, fault, targets).await
    }

    async fn inject(&self, fault: &Fault, targets: &[Target]) -> platform::Result<()> {
        let r = &self.resources;
        match &fault.kind {
            FaultKind::TerminateInstance { graceful, .. } => {
                self.terminate(fault, targets, Shutdown::from_graceful(*graceful))
                    .await?;
            }
            FaultKind::DbFailover { .. } => {
                let Some(db) = &r.database else {
                    return Err(self.refuse(fault, "no database is named"));
                };
                let done = self.aws.fail_over_database(db).await?;
                tracing::info!(?done, "db-failover");
            }
            FaultKind::RestartCache { reboot } => {
                self.restart_cache(fault, targets, *reboot).await?;
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
            FaultKind::KillPod { .. } | FaultKind::DrainNode { .. } | FaultKind::Network { .. } => {
                return Err(self.refuse(fault, "not available on aws"));
            }
        }
        Ok(())
    }

    async fn undo(&self, undo: &Undo) -> platform::Result<()> {
        Err(platform::Error::refused(
            format!("undo ({})", undo.describe()),
            "the aws platform never registers an undo",
        ))
    }

    async fn shutdown(self: Box<Self>) {}
}
