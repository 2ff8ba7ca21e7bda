//! Settings in layers: built-in defaults, then an optional TOML file named by
//! `SHOP_CONFIG`, then environment variables prefixed `SHOP_` (for example
//! `SHOP_PORT=9000`, `SHOP_MYSQL_URL=mysql://...`). Unknown keys are errors.
//!
//! figment was chosen over the `config` crate for its precise errors (which
//! layer and key were wrong) and serde-first design.

use std::{fmt, net::IpAddr, path::PathBuf, time::Duration};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

/// A string that never shows itself in logs or `Debug` output.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// Argon2id cost. The default (4 MiB, 1 pass, 1 lane) costs a few
/// milliseconds per hash on a 2-core machine: 10,000 shoppers logging in at
/// once must not turn the user service into a password-hashing farm. It is
/// below OWASP's 19 MiB/2-pass recommendation; raise it for real passwords.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Argon2Cost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub lanes: u32,
}

impl Default for Argon2Cost {
    fn default() -> Self {
        Self {
            memory_kib: 4096,
            iterations: 1,
            lanes: 1,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address the HTTP listener binds to.
    pub bind: IpAddr,
    /// Port of the HTTP listener.
    pub port: u16,
    /// Name of the machine (or local "instance") this replica runs on.
    pub instance: String,
    /// Name of this replica, such as `cart-1`.
    pub replica: String,
    pub mysql_url: String,
    /// A file holding the database writer's `host:port`, which replaces the
    /// one in `mysql_url` and is re-read while the service runs: new
    /// connections go where it points. The local platform's stand-in for the
    /// DNS name a managed database moves on failover (RDS), so no proxy
    /// carries every query.
    pub mysql_writer_file: Option<PathBuf>,
    /// A read replica of the database (RDS's read replica on AWS). The
    /// catalogue sends its reads there and falls back to `mysql_url` while
    /// the replica does not answer; its schema and seed go to `mysql_url`.
    pub mysql_read_url: Option<String>,
    pub mysql_pool_size: u32,
    pub redis_url: String,
    pub amqp_url: String,
    /// Base URLs of sibling services (through the load balancer's internal
    /// frontends on the local platform, Kubernetes Services on a cluster).
    pub users_url: String,
    pub catalogue_url: String,
    pub cart_url: String,
    pub orders_url: String,
    pub shipping_url: String,
    /// web only: forward /api/* and /admin/* to the sibling URLs above, so the
    /// shop can be used without a load balancer in front.
    pub proxy_api: bool,
    pub admin_token: Secret,
    pub jwt_secret: Secret,
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// Timeout of every outbound call: database, cache, broker, HTTP.
    #[serde(with = "humantime_serde")]
    pub outbound_timeout: Duration,
    /// Timeout of every inbound request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// After SIGTERM: how long to keep serving while readiness already fails,
    /// so a load balancer notices before the listener closes.
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
    /// After the listener closes: how long in-flight requests may take.
    #[serde(with = "humantime_serde")]
    pub grace_period: Duration,
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    pub argon2: Argon2Cost,
    /// Simulated payment gateway.
    #[serde(with = "humantime_serde")]
    pub payment_latency: Duration,
    pub payment_failure_rate: f64,
    /// An order paid but not dispatched after this long is reported stuck.
    #[serde(with = "humantime_serde")]
    pub stuck_after: Duration,
    /// How often the outbox relay looks for unsent events when not woken. A
    /// payment wakes its own replica's relay at once; this pass finds events
    /// another replica left behind (it died, or the broker was down).
    #[serde(with = "humantime_serde")]
    pub relay_interval: Duration,
    /// Products the catalogue seeds into an empty table.
    pub seed_products: u32,
    /// Log as JSON lines instead of human-readable text.
    pub log_json: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 8080,
            instance: "local".into(),
            replica: String::new(),
            mysql_url: "mysql://shop:shop@127.0.0.1:3306/shop".into(),
            mysql_writer_file: None,
            mysql_read_url: None,
            mysql_pool_size: 16,
            redis_url: "redis://127.0.0.1:6379/".into(),
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            users_url: "http://127.0.0.1:8081".into(),
            catalogue_url: "http://127.0.0.1:8082".into(),
            cart_url: "http://127.0.0.1:8083".into(),
            orders_url: "http://127.0.0.1:8084".into(),
            shipping_url: "http://127.0.0.1:8085".into(),
            proxy_api: false,
            admin_token: Secret::new("change-me-admin"),
            jwt_secret: Secret::new("change-me-jwt-secret"),
            token_ttl: Duration::from_secs(3600),
            outbound_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(15),
            drain_delay: Duration::from_millis(0),
            grace_period: Duration::from_secs(10),
            cache_ttl: Duration::from_secs(30),
            argon2: Argon2Cost::default(),
            payment_latency: Duration::from_millis(20),
            payment_failure_rate: 0.0,
            stuck_after: Duration::from_secs(60),
            relay_interval: Duration::from_secs(1),
            seed_products: 1200,
            log_json: false,
        }
    }
}

/// The default port of each service, used when nothing else says.
pub fn default_port(service: &str) -> u16 {
    match service {
        "web" => 8080,
        "user" => 8081,
        "catalogue" => 8082,
        "cart" => 8083,
        "orders" => 8084,
        "shipping" => 8085,
        _ => 8090,
    }
}

impl Settings {
    /// Loads defaults, then `$SHOP_CONFIG` (TOML) if set, then `SHOP_*`.
    pub fn load(service: &str) -> Result<Self, Box<figment::Error>> {
        let defaults = Settings {
            port: default_port(service),
            replica: service.to_string(),
            ..Settings::default()
        };
        let mut figment = Figment::from(Serialized::defaults(defaults));
        if let Some(path) = std::env::var_os("SHOP_CONFIG") {
            figment = figment.merge(Toml::file_exact(PathBuf::from(path)));
        }
        figment
            .merge(Env::prefixed("SHOP_").ignore(&["config"]).split("__"))
            .extract()
            .map_err(Box::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let s = Settings {
            jwt_secret: Secret::new("hunter2"),
            ..Settings::default()
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("change-me-admin"), "{shown}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's signature, not ours
    fn environment_overrides_defaults_and_unknown_keys_fail() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SHOP_PORT", "9123");
            jail.set_env("SHOP_ARGON2__MEMORY_KIB", "8192");
            let s = Settings::load("cart").expect("loads");
            assert_eq!(s.port, 9123);
            assert_eq!(s.argon2.memory_kib, 8192);
            assert_eq!(s.replica, "cart");
            jail.set_env("SHOP_NO_SUCH_KEY", "1");
            let err = Settings::load("cart").expect_err("unknown key is refused");
            assert!(err.to_string().contains("no_such_key"), "{err}");
            Ok(())
        });
    }
}
