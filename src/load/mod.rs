//! The load engine: virtual shoppers driven by goose 0.19. goose is started
//! with `initialize_with_config` (gameday's own argv is never read), its
//! telnet and websocket controllers off, the scenario's stages as goose's
//! test plan and its think time as each journey's wait time. Requests are
//! recorded by gameday itself (see `journeys`), per step.

mod journeys;
pub mod monitor;
pub mod shard;

use std::{
    pin::Pin,
    sync::{Arc, Mutex, atomic::AtomicUsize},
    time::Duration,
};

use goose::{config::GooseConfiguration, prelude::*};

use crate::{
    record::Recorder,
    scenario::{Journey, Load},
};

/// Every request a shopper makes, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Home,
    Categories,
    Products,
    Product,
    Login,
    AddToCart,
    ViewCart,
    Checkout,
    OrderStatus,
}

impl Step {
    pub const ALL: [Step; 9] = [
        Step::Home,
        Step::Categories,
        Step::Products,
        Step::Product,
        Step::Login,
        Step::AddToCart,
        Step::ViewCart,
        Step::Checkout,
        Step::OrderStatus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Home => "home",
            Step::Categories => "categories",
            Step::Products => "products",
            Step::Product => "product",
            Step::Login => "login",
            Step::AddToCart => "add-to-cart",
            Step::ViewCart => "view-cart",
            Step::Checkout => "checkout",
            Step::OrderStatus => "order-status",
        }
    }

    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|s| s.name()).collect()
    }
}

/// What every shopper shares during a run.
pub struct LoadContext {
    pub recorder: Arc<Recorder>,
    /// (email, password) of the accounts created before the measured window.
    pub accounts: Vec<(String, String)>,
    pub next_login: AtomicUsize,
    /// Order ids the shop acknowledged (201 with an id), for the audit.
    pub acknowledged: Mutex<Vec<String>>,
    /// How often a shopper issues a request when nothing stalls (the
    /// coordinated-omission correction's interval): the shortest think time.
    pub expected_interval: Duration,
    pub catalogue_size: u32,
    /// Makes idempotency keys unique per run.
    pub run_id: String,
    /// The one HTTP client every shopper uses (see [`shopper_client`]).
    pub client: reqwest_goose::Client,
}

type StepFn = for<'u> fn(
    &'u mut GooseUser,
    Arc<LoadContext>,
) -> Pin<Box<dyn Future<Output = TransactionResult> + Send + 'u>>;

macro_rules! step_fn {
    ($f:path) => {{
        fn run(
            user: &mut GooseUser,
            ctx: Arc<LoadContext>,
        ) -> Pin<Box<dyn Future<Output = TransactionResult> + Send + '_>> {
            Box::pin(async move { $f(user, &ctx).await })
        }
        run as StepFn
    }};
}

fn journey_steps(journey: Journey) -> Vec<(&'static str, StepFn, bool)> {
    use journeys as j;
    match journey {
        Journey::Browse => vec![
            ("home", step_fn!(j::home), false),
            ("categories", step_fn!(j::categories), false),
            ("products", step_fn!(j::products), false),
            ("product", step_fn!(j::product), false),
        ],
        Journey::Buy => vec![
            ("login", step_fn!(j::login), true),
            ("products", step_fn!(j::products), false),
            ("product", step_fn!(j::product), false),
            ("add-to-cart", step_fn!(j::add_to_cart), false),
            ("view-cart", step_fn!(j::view_cart), false),
            ("checkout", step_fn!(j::checkout), false),
            ("order-status", step_fn!(j::order_status), false),
        ],
        Journey::Abandon => vec![
            ("login", step_fn!(j::login), true),
            ("products", step_fn!(j::products), false),
            ("add-to-cart", step_fn!(j::add_to_cart), false),
            ("view-cart", step_fn!(j::view_cart), false),
        ],
    }
}

/// goose's test plan: `users,duration;...` from the scenario's stages
/// (goose counts whole seconds: a stage is rounded up to one).
pub fn test_plan(load: &Load) -> String {
    load.stages
        .iter()
        .map(|s| {
            format!(
                "{},{}s",
                s.users,
                s.over.as_secs_f64().ceil().max(1.0) as u64
            )
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Shoppers active `t` seconds after the load started (the plan's ramps).
pub fn users_at(load: &Load, t: f64) -> u32 {
    let mut start = 0.0;
    let mut from = 0.0;
    for s in &load.stages {
        let len = s.over.as_secs_f64();
        if t < start + len {
            let share = if len > 0.0 { (t - start) / len } else { 1.0 };
            return (from + (s.users as f64 - from) * share).round().max(0.0) as u32;
        }
        start += len;
        from = s.users as f64;
    }
    0
}

pub use crate::shop::CLIENT_IDLE;
pub use journeys::is_unavailable;

/// The HTTP client all shoppers share: one connection pool, so a request
/// reuses a warm keep-alive connection through the shoppers' think time
/// instead of opening a new one (goose's default, a client per shopper,
/// built 10,000 TLS configurations and paid a TCP handshake for most
/// requests). Connections idle longer than `CLIENT_IDLE` are dropped before
/// the balancer would close them.
pub fn shared_client() -> Result<reqwest_goose::Client, GooseError> {
    reqwest_goose::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_idle_timeout(CLIENT_IDLE)
        .user_agent("gameday-shopper")
        .build()
        .map_err(GooseError::Reqwest)
}

/// A shopper's first step: take the shared client.
async fn use_shared_client(user: &mut GooseUser, ctx: &LoadContext) -> TransactionResult {
    user.client = ctx.client.clone();
    Ok(())
}

/// Builds the goose attack for `load` against `host`.
pub fn attack(load: &Load, host: &str, ctx: &Arc<LoadContext>) -> Result<GooseAttack, GooseError> {
    let config = GooseConfiguration::default();
    let mut attack = GooseAttack::initialize_with_config(config)?
        .set_default(GooseDefault::Host, host)?
        .set_default(GooseDefault::TestPlan, test_plan(load).as_str())?
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::NoAutoStart, false)?
        .set_default(GooseDefault::Quiet, 1)?
        .set_default(GooseDefault::NoPrintMetrics, true)?
        .set_default(GooseDefault::NoErrorSummary, true)?
        .set_default(GooseDefault::NoTransactionMetrics, true)?
        .set_default(GooseDefault::NoScenarioMetrics, true)?
        .set_default(GooseDefault::NoStatusCodes, true)?
        .set_default(GooseDefault::NoPercentilesOverTime, true)?
        // gameday records every request itself: goose's own request
        // metrics would be a second, unused copy of that work.
        .set_default(GooseDefault::NoMetrics, true)?
        .set_default(GooseDefault::Timeout, "10")?
        // One shared client to start with (built once, not once per
        // shopper); each shopper's first step gives it its own.
        .set_client_builder_without_cookies(
            goose::client::GooseClientBuilder::new()
                .without_cookies()
                .timeout(Duration::from_secs(10)),
        )?;
    let (min, max) = load.think_time;
    for (journey, weight) in &load.journeys {
        if *weight == 0 {
            continue;
        }
        let mut scenario = Scenario::new(journey.name())
            .set_weight(*weight as usize)?
            .set_wait_time(min, max)?
            .register_transaction(
                journeys::transaction(ctx, "client", step_fn!(use_shared_client)).set_on_start(),
            );
        for (name, f, on_start) in journey_steps(*journey) {
            let mut t = journeys::transaction(ctx, name, f);
            if on_start {
                t = t.set_on_start();
            }
            scenario = scenario.register_transaction(t);
        }
        attack = attack.register_scenario(scenario);
    }
    Ok(attack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Stage;

    #[test]
    fn stages_become_goose_s_test_plan_and_users_follow_the_ramps() {
        let load = Load {
            stages: vec![
                Stage {
                    users: 200,
                    over: Duration::from_secs(15),
                },
                Stage {
                    users: 200,
                    over: Duration::from_secs(45),
                },
                Stage {
                    users: 0,
                    over: Duration::from_secs(5),
                },
            ],
            think_time: (Duration::from_millis(500), Duration::from_secs(2)),
            journeys: vec![(Journey::Browse, 1)],
            generators: None,
        };
        assert_eq!(test_plan(&load), "200,15s;200,45s;0,5s");
        assert_eq!(users_at(&load, 0.0), 0);
        assert_eq!(users_at(&load, 7.5), 100);
        assert_eq!(users_at(&load, 30.0), 200);
        assert_eq!(users_at(&load, 62.5), 100);
        assert_eq!(users_at(&load, 70.0), 0);
    }
}
