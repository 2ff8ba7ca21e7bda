//! The aws platform's tests. Most run against moto's server, a private one
//! per test on a free loopback port (`moto_server`); each test says which
//! moto behaviour it relies on. What moto cannot answer (ElastiCache's
//! RebootCacheCluster, CloudWatch's rpc-v2-cbor protocol) or cannot show
//! (that RebootDBInstance was sent with ForceFailover=true, throttling, a
//! stack's failure events) is checked against a recording stand-in
//! (`stand_in`): a loopback HTTP server that records each request and
//! answers what AWS would. The trackers that turn polls into events are
//! checked on their own (`trackers`).

mod moto;
pub use gameday_test_support::moto as moto_server;
mod platform;
mod requests;
mod stand_in;
mod trackers;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use aws_config::{BehaviorVersion, Region, retry::RetryConfig};
use aws_credential_types::Credentials;

use self::moto_server::{MotoServer, SHOP_PARAMETERS, TEST_ADMIN_TOKEN};
use super::{AwsBackend, AwsClients, AwsSite, stack::StackSpec, template::SHOP_TEMPLATE};
use crate::{
    events::{Event, EventKind, EventLog},
    platform::{
        Platform, Purpose, Removed, UpReport,
        lifecycle::{self, Site},
    },
    scenario::AwsTarget,
};

/// Clients for `endpoint` with static credentials (edition 2024's
/// `set_var` is unsafe and racy across test threads, so no environment)
/// and a quick retry.
pub async fn clients_at(endpoint: &str, credentials: Credentials) -> AwsClients {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .retry_config(RetryConfig::standard().with_initial_backoff(Duration::from_millis(5)))
        .load()
        .await;
    AwsClients::from_sdk_config(&config, Some(endpoint.to_string())).expect("the region is set")
}

pub fn test_credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "gameday-tests")
}

pub async fn moto_clients(moto: &MotoServer) -> AwsClients {
    clients_at(&moto.endpoint, test_credentials()).await
}

/// A target on `endpoint` with the shop's stack `stack`.
pub fn stack_target(endpoint: &str, stack: &str) -> AwsTarget {
    AwsTarget {
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint.to_string()),
        stack: Some(stack.to_string()),
        auto_scaling_group: None,
        database: None,
        cache: None,
        broker: None,
        entry_url: None,
        parameters: SHOP_PARAMETERS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// Creates the shop's stack on moto directly and returns its outputs.
pub async fn deploy_shop(aws: &AwsClients, name: &str) -> BTreeMap<String, String> {
    let mut parameters: Vec<(String, String)> = SHOP_PARAMETERS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parameters.push(("AdminToken".into(), TEST_ADMIN_TOKEN.into()));
    let spec = StackSpec {
        name: name.to_string(),
        template_body: SHOP_TEMPLATE.to_string(),
        parameters,
        tags: Vec::new(),
    };
    aws.create_stack(&spec, Duration::from_secs(120), |_| {})
        .await
        .expect("the shop's stack deploys on moto")
        .outputs
}

/// An event log without a file, and what was emitted into it so far.
pub struct Recorded {
    pub log: Arc<EventLog>,
    rx: tokio::sync::broadcast::Receiver<Event>,
    seen: Vec<Event>,
}

impl Recorded {
    pub fn new() -> Self {
        let log = Arc::new(EventLog::new(None).expect("an event log"));
        let rx = log.subscribe();
        Self {
            log,
            rx,
            seen: Vec::new(),
        }
    }

    /// Every event so far.
    pub fn events(&mut self) -> Vec<Event> {
        while let Ok(e) = self.rx.try_recv() {
            self.seen.push(e);
        }
        self.seen.clone()
    }

    /// Every event's kind so far.
    pub fn kinds(&mut self) -> Vec<EventKind> {
        self.events().into_iter().map(|e| e.kind).collect()
    }

    /// Waits (up to `within`) until an event matches, and returns every
    /// event so far; panics with them when none did.
    pub async fn wait_for(
        &mut self,
        within: Duration,
        what: &str,
        found: impl Fn(&EventKind) -> bool,
    ) -> Vec<EventKind> {
        self.wait_until(within, what, |kinds| kinds.iter().any(&found))
            .await
    }

    /// Waits (up to `within`) until the events so far satisfy `done`, and
    /// returns them; panics with them when they never did.
    pub async fn wait_until(
        &mut self,
        within: Duration,
        what: &str,
        done: impl Fn(&[EventKind]) -> bool,
    ) -> Vec<EventKind> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let kinds = self.kinds();
            if done(&kinds) {
                return kinds;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("no {what} within {within:?}; events: {kinds:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The platform as the lifecycle opens it for `purpose` on ready clients,
/// with the stack's admin token `admin_token`, polling every `every`.
pub async fn open_for(
    aws: AwsClients,
    target: &AwsTarget,
    purpose: Purpose,
    admin_token: Option<String>,
    events: Arc<EventLog>,
    every: Duration,
) -> crate::platform::Result<Box<dyn Platform>> {
    let backend = Arc::new(AwsBackend::new(target.clone()));
    let site = AwsSite::new(aws, target.clone())
        .with_admin_token(admin_token)
        .polling_every(every);
    lifecycle::open_at(backend, Box::new(site), purpose, events).await
}

/// A run's platform (the stack created when missing).
pub async fn deploy_with(
    aws: AwsClients,
    target: &AwsTarget,
    admin_token: Option<String>,
    events: Arc<EventLog>,
    every: Duration,
) -> crate::platform::Result<Box<dyn Platform>> {
    let purpose = Purpose::Run {
        files: std::env::temp_dir(),
    };
    open_for(aws, target, purpose, admin_token, events, every).await
}

/// `plan`'s platform.
pub async fn preview_with(
    aws: AwsClients,
    target: &AwsTarget,
) -> crate::platform::Result<Box<dyn Platform>> {
    let events = Arc::new(EventLog::new(None).expect("an event log"));
    open_for(
        aws,
        target,
        Purpose::Plan,
        None,
        events,
        Duration::from_secs(1),
    )
    .await
}

/// `gameday inject`'s platform.
pub async fn open_with(
    aws: AwsClients,
    target: &AwsTarget,
) -> crate::platform::Result<Box<dyn Platform>> {
    let events = Arc::new(EventLog::new(None).expect("an event log"));
    open_for(
        aws,
        target,
        Purpose::Inject,
        None,
        events,
        Duration::from_secs(1),
    )
    .await
}

/// `gameday up` on ready clients.
pub async fn up_with(
    aws: &AwsClients,
    target: &AwsTarget,
    admin_token: Option<&str>,
) -> crate::platform::Result<UpReport> {
    let site =
        AwsSite::new(aws.clone(), target.clone()).with_admin_token(admin_token.map(String::from));
    let events = Arc::new(EventLog::new(None).expect("an event log"));
    lifecycle::up_at(&site, &events).await
}

/// `gameday down` on ready clients.
pub async fn down_with(aws: &AwsClients, target: &AwsTarget) -> crate::platform::Result<Removed> {
    let site = AwsSite::new(aws.clone(), target.clone());
    site.remove(&EventLog::new(None).expect("an event log"))
        .await
}
