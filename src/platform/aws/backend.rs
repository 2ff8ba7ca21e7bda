//! The aws platform as the lifecycle sees it: connect builds the clients
//! from the SDK's standard chain; create is a CloudFormation stack from the
//! shop's template (only when the target names a stack that is missing);
//! resolve reads the resources the scenario and the stack's outputs name;
//! remove deletes the stack, only one this created.

use std::{sync::Arc, time::Duration, time::Instant};

use async_trait::async_trait;

use super::{
    AwsPlatform,
    clients::AwsClients,
    describe,
    errors::Result,
    resources::{self, Resources},
    stack::{StackProgress, StackSpec},
    supports,
    template::{self, SHOP_TEMPLATE},
    watch,
};
use crate::{
    events::EventLog,
    platform::{
        self, Planned, Purpose, Removed, Support, is_loopback_url,
        lifecycle::{Backend, Shop, Site, admin_token_from_env, progress},
    },
    scenario::{AwsTarget, Fault},
};

/// How long CloudFormation may take to create or delete the shop (RDS
/// Multi-AZ with a replica and Amazon MQ take 20 to 40 minutes).
pub const STACK_TIMEOUT: Duration = Duration::from_secs(90 * 60);

/// The aws platform for a scenario's target.
pub struct AwsBackend {
    target: AwsTarget,
}

impl AwsBackend {
    pub fn new(target: AwsTarget) -> Self {
        Self { target }
    }
}

/// What a person confirms before gameday acts on `aws`: the account, the
/// region and what is hit.
pub async fn confirmation_text(aws: &AwsClients, target: &AwsTarget) -> Result<String> {
    let account = aws.account_id().await?;
    let what = target
        .stack
        .as_deref()
        .map(|s| format!("stack {s}"))
        .or_else(|| {
            target
                .auto_scaling_group
                .as_ref()
                .map(|g| format!("Auto Scaling group {g}"))
        })
        .unwrap_or_else(|| "the resources the scenario names".into());
    Ok(format!(
        "This acts on AWS account {account} in region {} ({what}).",
        aws.region()
    ))
}

/// Clients for the target's region and endpoint, from the standard chain.
pub async fn connect(target: &AwsTarget) -> Result<AwsClients> {
    AwsClients::connect(target.region.as_deref(), target.endpoint_url.as_deref()).await
}

#[async_trait]
impl Backend for AwsBackend {
    fn name(&self) -> &'static str {
        "aws"
    }

    fn supports(&self, fault: &Fault) -> Support {
        supports(&self.target, fault)
    }

    fn describe(&self, fault: &Fault) -> String {
        describe(&Resources::named(&self.target), fault)
    }

    fn creates(&self) -> bool {
        self.target.stack.is_some()
    }

    /// Names the account (STS GetCallerIdentity), the region and the stack
    /// or group; nothing for a stand-in on loopback.
    async fn confirmation(&self) -> platform::Result<Option<String>> {
        if self
            .target
            .endpoint_url
            .as_deref()
            .is_some_and(is_loopback_url)
        {
            return Ok(None);
        }
        let aws = connect(&self.target).await?;
        Ok(Some(confirmation_text(&aws, &self.target).await?))
    }

    fn left_behind(&self) -> Option<String> {
        self.target.stack.as_ref().map(|stack| {
            format!(
                "stack {stack} may be left on the account; `gameday down --scenario FILE` deletes it"
            )
        })
    }

    fn planned(&self) -> Planned {
        Planned {
            entry_url: self
                .target
                .entry_url
                .clone()
                .unwrap_or_else(|| "(the stack's EntryUrl, once a run has created it)".into()),
            inventory: None,
        }
    }

    async fn connect(&self, _purpose: &Purpose) -> platform::Result<Box<dyn Site>> {
        let aws = connect(&self.target).await?;
        Ok(Box::new(
            AwsSite::new(aws, self.target.clone()).with_admin_token(admin_token_from_env()),
        ))
    }
}

/// The shop's resources on one account and region (or a stand-in).
pub struct AwsSite {
    aws: AwsClients,
    target: AwsTarget,
    /// The admin token the stack's secret is created with.
    admin_token: Option<String>,
    /// How often the watchers poll.
    every: Duration,
}

impl AwsSite {
    /// A site over ready clients (tests bring a stand-in's).
    pub fn new(aws: AwsClients, target: AwsTarget) -> Self {
        Self {
            aws,
            target,
            admin_token: None,
            every: watch::EVERY,
        }
    }

    #[must_use]
    pub fn with_admin_token(mut self, token: Option<String>) -> Self {
        self.admin_token = token;
        self
    }

    /// Polls every `every` (tests poll a stand-in fast).
    #[must_use]
    pub fn polling_every(mut self, every: Duration) -> Self {
        self.every = every;
        self
    }

    fn stack(&self, command: &str) -> platform::Result<&str> {
        self.target.stack.as_deref().ok_or_else(|| {
            platform::Error::refused(
                format!("gameday {command}"),
                "the target names no stack: gameday attaches to the named resources and never \
                 creates or deletes them",
            )
        })
    }
}

#[async_trait]
impl Site for AwsSite {
    fn place(&self) -> String {
        match &self.target.stack {
            Some(stack) => format!("stack {stack} on {}", self.aws.place()),
            None => format!("the resources the scenario names on {}", self.aws.place()),
        }
    }

    async fn exists(&self) -> platform::Result<bool> {
        match &self.target.stack {
            Some(stack) => Ok(self.aws.stack_exists(stack).await?),
            None => Ok(true),
        }
    }

    /// Creates the stack from the shop's template and waits, with progress.
    async fn create(&self, events: &Arc<EventLog>) -> platform::Result<()> {
        let stack = self.stack("up")?;
        let spec = StackSpec {
            name: stack.to_string(),
            template_body: SHOP_TEMPLATE.to_string(),
            parameters: template::parameters(
                SHOP_TEMPLATE,
                &self.target.parameters,
                self.admin_token.as_deref(),
            )?,
            tags: vec![("gameday:created-by".into(), "gameday".into())],
        };
        progress(
            events,
            format!(
                "creating stack {stack} on {} and waiting until it is complete (on AWS this \
                 takes 20 to 40 minutes)",
                self.aws.place()
            ),
        );
        self.aws
            .create_stack(&spec, STACK_TIMEOUT, stack_progress(events))
            .await?;
        progress(events, format!("stack {stack} is complete"));
        Ok(())
    }

    async fn resolve(
        &self,
        purpose: &Purpose,
        events: Arc<EventLog>,
    ) -> platform::Result<Box<dyn Shop>> {
        let resources = resources::resolve(&self.aws, &self.target).await?;
        let mut platform = AwsPlatform::new(
            self.aws.clone(),
            self.target.clone(),
            resources,
            events,
            self.every,
        )
        .with_admin_token(self.admin_token.clone());
        if platform.entry_url.is_empty() && !matches!(purpose, Purpose::Run { .. }) {
            platform.entry_url = match purpose {
                Purpose::Plan => "(the stack's EntryUrl, once a run has created it)".into(),
                _ => "(not known: set target.entry-url)".into(),
            };
        }
        Ok(Box::new(platform))
    }

    async fn remove(&self, events: &EventLog) -> platform::Result<Removed> {
        let stack = self.stack("down")?;
        let what = format!("stack {stack}");
        let place = format!("on {}", self.aws.place());
        progress(
            events,
            format!("deleting {what} {place} and waiting until it is gone"),
        );
        let existed = self
            .aws
            .delete_stack(stack, STACK_TIMEOUT, stack_progress(events))
            .await?;
        if existed {
            progress(events, format!("stack {stack} is gone"));
        }
        Ok(Removed {
            what,
            place,
            existed,
            notes: Vec::new(),
        })
    }
}

/// A progress event for every new stack event, oldest first.
fn stack_progress(events: &EventLog) -> impl FnMut(&StackProgress) + '_ {
    let started = Instant::now();
    move |p: &StackProgress| {
        progress(
            events,
            format!(
                "{:>5}s {:<20} {} ({}){}",
                started.elapsed().as_secs(),
                p.status,
                p.logical_id,
                p.resource_type,
                p.reason
                    .as_deref()
                    .filter(|r| !r.is_empty())
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
        );
    }
}
