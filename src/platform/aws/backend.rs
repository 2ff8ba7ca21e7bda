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
    release,
    resources::{self, Resources},
    stack::{StackProgress, StackSpec},
    supports,
    template::{self, SHOP_TEMPLATE},
    watch,
};
use crate::{
    events::EventLog,
    platform::{
        self, Confirmation, Planned, Purpose, Removed, Support,
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
    /// or group; a stand-in on loopback is named without a question.
    async fn confirmation(&self) -> platform::Result<Option<Confirmation>> {
        let aws = connect(&self.target).await?;
        Ok(Some(Confirmation {
            text: confirmation_text(&aws, &self.target).await?,
            ask: !aws.is_stand_in(),
        }))
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

    /// Uploads the shop's release to the stack's bucket (unless the
    /// scenario hosts it), then creates the stack from the shop's template
    /// and waits, with progress.
    async fn create(&self, events: &Arc<EventLog>) -> platform::Result<()> {
        let stack = self.stack("up")?;
        let mut given = self.target.parameters.clone();
        if !release::given_by_scenario(&given) {
            // Every other parameter is checked before anything is uploaded.
            let mut probe = given.clone();
            probe.extend(release::placeholders());
            template::parameters(SHOP_TEMPLATE, &probe, self.admin_token.as_deref())?;
            given.extend(self.publish_release(stack, events).await?);
        }
        let spec = StackSpec {
            name: stack.to_string(),
            template_body: SHOP_TEMPLATE.to_string(),
            parameters: template::parameters(SHOP_TEMPLATE, &given, self.admin_token.as_deref())?,
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
        // The release's bucket goes after the stack: its instances read it.
        let bucket = self.release_bucket(stack).await?;
        let mut notes = Vec::new();
        if self.aws.delete_release_bucket(&bucket).await? {
            notes.push(format!("bucket {bucket} (the shop's release) is gone"));
        }
        Ok(Removed {
            what,
            place,
            existed,
            notes,
        })
    }
}

impl AwsSite {
    async fn release_bucket(&self, stack: &str) -> platform::Result<String> {
        let account = self.aws.account_id().await?;
        Ok(release::bucket_name(&account, self.aws.region(), stack))
    }

    /// Packs the shop's binaries and uploads them to the stack's bucket;
    /// the template parameters that say where they are.
    async fn publish_release(
        &self,
        stack: &str,
        events: &EventLog,
    ) -> platform::Result<Vec<(String, String)>> {
        let bin_dir = crate::platform::local::shop::bin_dir();
        progress(
            events,
            format!("packing the shop's binaries from {}", bin_dir.display()),
        );
        let release = tokio::task::spawn_blocking(move || release::pack(&bin_dir))
            .await
            .map_err(|e| platform::Error::refused("the shop's release for aws", e.to_string()))??;
        let bucket = self.release_bucket(stack).await?;
        progress(
            events,
            format!(
                "uploading the shop's release ({:.1} MB, sha256 {}) to s3://{bucket}/{}",
                release.bytes as f64 / 1e6,
                &release.sha256[..12],
                release.key()
            ),
        );
        self.aws.publish_release(&bucket, stack, &release).await?;
        Ok(vec![
            (release::BUCKET_PARAMETER.into(), bucket),
            (release::KEY_PARAMETER.into(), release.key()),
            (release::SHA256_PARAMETER.into(), release.sha256.clone()),
        ])
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
