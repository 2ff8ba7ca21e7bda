//! The shop's lifecycle on AWS, as `select` asks for it: deploy for a run
//! (the stack created when missing, deleted afterwards only then), attach
//! to named resources, a read-only preview for `plan`, the platform
//! `inject` drives, and `up`, `down` and `status` from the command line.

use std::{sync::Arc, time::Duration, time::Instant};

use super::{
    AwsPlatform, Mode,
    clients::AwsClients,
    errors::{Error, Result},
    resources::{self, Resources},
    stack::{StackProgress, StackSpec},
    targets,
    template::{self, SHOP_TEMPLATE},
    watch,
};
use crate::{
    events::{EventKind, EventLog},
    platform::{ADMIN_TOKEN_ENV, Inventory, LeftBehind, Platform},
    scenario::AwsTarget,
};

/// How long CloudFormation may take to create or delete the shop (RDS
/// Multi-AZ with a replica and Amazon MQ take 20 to 40 minutes).
pub const STACK_TIMEOUT: Duration = Duration::from_secs(90 * 60);

/// Clients for the target's region and endpoint, from the standard chain.
pub async fn connect(target: &AwsTarget) -> Result<AwsClients> {
    AwsClients::connect(target.region.as_deref(), target.endpoint_url.as_deref()).await
}

/// The shop's admin token, from the environment.
pub fn admin_token() -> Option<String> {
    std::env::var(ADMIN_TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty())
}

/// Deploys (the stack when it is missing) or attaches, for a run.
pub async fn deploy(target: &AwsTarget, events: Arc<EventLog>) -> crate::Result<Box<dyn Platform>> {
    let aws = connect(target).await?;
    Ok(Box::new(
        deploy_with(aws, target, admin_token(), events, watch::EVERY).await?,
    ))
}

/// [`deploy`] with ready clients and admin token, polling every `every`.
pub async fn deploy_with(
    aws: AwsClients,
    target: &AwsTarget,
    admin_token: Option<String>,
    events: Arc<EventLog>,
    every: Duration,
) -> Result<AwsPlatform> {
    let created = match &target.stack {
        Some(stack) if !aws.stack_exists(stack).await? => {
            events.emit(EventKind::PlatformStarting {
                detail: Some(format!("aws: creating stack {stack} on {}", aws.place())),
            });
            create(&aws, target, admin_token.as_deref(), stack).await?;
            true
        }
        Some(stack) => {
            events.emit(EventKind::PlatformStarting {
                detail: Some(format!(
                    "aws: attaching to stack {stack} on {}",
                    aws.place()
                )),
            });
            false
        }
        None => {
            events.emit(EventKind::PlatformStarting {
                detail: Some(format!(
                    "aws: attaching to named resources on {}",
                    aws.place()
                )),
            });
            false
        }
    };
    let mode = if created {
        Mode::Deployed
    } else {
        Mode::Attached
    };
    let opened = match resources::resolve(&aws, target).await {
        Ok(r) => AwsPlatform::new(aws.clone(), target.clone(), mode, r, events.clone())
            .with_admin_token(admin_token),
        Err(e) => {
            if let (true, Some(stack)) = (created, &target.stack) {
                eprintln!("gameday: {e}");
                remove(&aws, stack).await;
            }
            return Err(e);
        }
    };
    let mut platform = opened;
    if platform.entry_url.is_empty() {
        let e = Error::refused(
            "target.entry-url",
            "not set, and the stack has no EntryUrl output: set the shop's URL",
        );
        Box::new(platform).shutdown().await;
        return Err(e);
    }
    platform.watch(every).await;
    events.emit(EventKind::PlatformReady {
        entry_url: platform.entry_url.clone(),
    });
    Ok(platform)
}

/// Creates the stack from the shop's template and waits, with progress on
/// stderr. When creation fails the stack (rolled back) is deleted again and
/// the error lists the failed resources with their reasons.
async fn create(
    aws: &AwsClients,
    target: &AwsTarget,
    admin_token: Option<&str>,
    stack: &str,
) -> Result<()> {
    let spec = StackSpec {
        name: stack.to_string(),
        template_body: SHOP_TEMPLATE.to_string(),
        parameters: template::parameters(SHOP_TEMPLATE, &target.parameters, admin_token)?,
        tags: vec![("gameday:created-by".into(), "gameday".into())],
    };
    eprintln!(
        "gameday: creating stack {stack} on {} and waiting until it is complete \
         (on AWS this takes 20 to 40 minutes)",
        aws.place()
    );
    let guard = LeftBehind::armed(format!(
        "creating stack {stack}: it may be left on the account"
    ));
    let created = aws
        .create_stack(&spec, STACK_TIMEOUT, progress_printer())
        .await;
    guard.disarm();
    match created {
        Ok(_) => {
            eprintln!("gameday: stack {stack} is complete");
            Ok(())
        }
        Err(e) => {
            eprintln!("gameday: {e}");
            if aws.stack_exists(stack).await.unwrap_or(true) {
                eprintln!("gameday: deleting stack {stack}, which could not be created");
                remove(aws, stack).await;
            }
            Err(e)
        }
    }
}

/// Deletes a stack this process created, and waits; problems are said, not
/// returned (this runs on the way out).
pub(super) async fn remove(aws: &AwsClients, stack: &str) {
    eprintln!("gameday: deleting stack {stack} and waiting until it is gone");
    match aws
        .delete_stack(stack, STACK_TIMEOUT, progress_printer())
        .await
    {
        Ok(_) => eprintln!("gameday: stack {stack} is gone"),
        Err(e) => eprintln!(
            "gameday: {e}; the stack may be left: `gameday down --scenario FILE` deletes it"
        ),
    }
}

/// A line on stderr for every new stack event, oldest first.
fn progress_printer() -> impl FnMut(&StackProgress) {
    let started = Instant::now();
    move |p: &StackProgress| {
        eprintln!(
            "gameday: {:>5}s {:<20} {} ({}){}",
            started.elapsed().as_secs(),
            p.status,
            p.logical_id,
            p.resource_type,
            p.reason
                .as_deref()
                .filter(|r| !r.is_empty())
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
}

/// The platform as `plan` sees it: connected, reading only. A stack that
/// does not exist yet is said to be created by the run.
pub async fn preview(target: &AwsTarget) -> crate::Result<Box<dyn Platform>> {
    let aws = connect(target).await?;
    Ok(Box::new(preview_with(aws, target).await?))
}

pub async fn preview_with(aws: AwsClients, target: &AwsTarget) -> Result<AwsPlatform> {
    let events =
        Arc::new(EventLog::new(None).map_err(|e| Error::unexpected("event log", e.to_string()))?);
    let missing = match &target.stack {
        Some(stack) => !aws.stack_exists(stack).await?,
        None => false,
    };
    let resources = if missing {
        Resources::named(target)
    } else {
        resources::resolve(&aws, target).await?
    };
    let mut platform = AwsPlatform::new(aws, target.clone(), Mode::Preview, resources, events)
        .with_admin_token(admin_token());
    platform.stack_missing = missing;
    if platform.entry_url.is_empty() {
        platform.entry_url = "(the stack's EntryUrl, once a run has created it)".into();
    }
    Ok(platform)
}

/// The platform `gameday inject` drives: attached, without watchers.
pub async fn open(target: &AwsTarget) -> crate::Result<Box<dyn Platform>> {
    let aws = connect(target).await?;
    Ok(Box::new(open_with(aws, target).await?))
}

pub async fn open_with(aws: AwsClients, target: &AwsTarget) -> Result<AwsPlatform> {
    let events =
        Arc::new(EventLog::new(None).map_err(|e| Error::unexpected("event log", e.to_string()))?);
    let resources = resources::resolve(&aws, target).await?;
    Ok(
        AwsPlatform::new(aws, target.clone(), Mode::Attached, resources, events)
            .with_admin_token(admin_token()),
    )
}

fn stack_of<'a>(target: &'a AwsTarget, command: &str) -> Result<&'a str> {
    target.stack.as_deref().ok_or_else(|| {
        Error::refused(
            format!("gameday {command}"),
            "the target names no stack: gameday attaches to the named resources and never \
             creates or deletes them",
        )
    })
}

/// `gameday up --scenario FILE`: creates the stack and waits for it.
pub async fn up(target: &AwsTarget) -> crate::Result<i32> {
    let aws = connect(target).await?;
    Ok(up_with(&aws, target, admin_token().as_deref()).await?)
}

pub async fn up_with(
    aws: &AwsClients,
    target: &AwsTarget,
    admin_token: Option<&str>,
) -> Result<i32> {
    let stack = stack_of(target, "up")?;
    if aws.stack_exists(stack).await? {
        let info = aws.describe_stack(stack).await?;
        resources::check_usable(&info)?;
        println!(
            "Stack {stack} already exists ({}) on {}.",
            info.status,
            aws.place()
        );
    } else {
        create(aws, target, admin_token, stack).await?;
        println!("Up: stack {stack} on {}.", aws.place());
    }
    let outputs = aws.stack_outputs(stack).await?;
    let r = Resources::named(target).with_outputs(&outputs);
    println!(
        "Storefront: {}",
        r.entry_url.as_deref().unwrap_or("(no EntryUrl output)")
    );
    if let Some(g) = &r.group {
        println!("Auto Scaling group: {g}");
    }
    println!("`gameday down --scenario FILE` deletes the stack and everything it created.");
    Ok(crate::exit_codes::OK)
}

/// `gameday down --scenario FILE`: deletes the stack and waits.
pub async fn down(target: &AwsTarget) -> crate::Result<i32> {
    let aws = connect(target).await?;
    Ok(down_with(&aws, target).await?)
}

pub async fn down_with(aws: &AwsClients, target: &AwsTarget) -> Result<i32> {
    let stack = stack_of(target, "down")?;
    eprintln!(
        "gameday: deleting stack {stack} on {} and waiting until it is gone",
        aws.place()
    );
    if aws
        .delete_stack(stack, STACK_TIMEOUT, progress_printer())
        .await?
    {
        println!("Stack {stack} is gone.");
    } else {
        println!(
            "Stack {stack} does not exist on {}: nothing to delete.",
            aws.place()
        );
    }
    Ok(crate::exit_codes::OK)
}

/// `gameday status --scenario FILE`: a heading and what runs where, or
/// None when the stack does not exist.
pub async fn status(target: &AwsTarget) -> crate::Result<Option<(String, Inventory)>> {
    let aws = connect(target).await?;
    Ok(status_with(&aws, target).await?)
}

pub async fn status_with(
    aws: &AwsClients,
    target: &AwsTarget,
) -> Result<Option<(String, Inventory)>> {
    let heading = match &target.stack {
        Some(stack) => {
            if !aws.stack_exists(stack).await? {
                return Ok(None);
            }
            let info = aws.describe_stack(stack).await?;
            format!("AWS stack {stack} ({}) on {}", info.status, aws.place())
        }
        None => format!("AWS resources named by the scenario on {}", aws.place()),
    };
    let r = resources::resolve(aws, target).await?;
    let mut inventory = targets::inventory(aws, &r).await?;
    inventory.admin_token = admin_token();
    if inventory.entry_url.is_empty() {
        inventory.entry_url = "(not known: set target.entry-url)".into();
    }
    Ok(Some((heading, inventory)))
}
