//! Replicas of the reference shop's services as child processes: where the
//! binaries are, what environment a replica gets, and waiting until it is
//! ready.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use super::errors::{Error, Result};
use super::process::{Supervised, wait_until};

pub const SERVICES: [&str; 6] = ["web", "user", "catalogue", "cart", "orders", "shipping"];

/// Where the `shop-*` binaries are: `$GAMEDAY_SHOP_BIN_DIR`, else beside the
/// running executable (for a test binary in target/*/deps, its parent).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GAMEDAY_SHOP_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

pub fn binary(service: &str) -> Result<PathBuf> {
    let path = bin_dir().join(format!("shop-{service}"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::MissingShopBinary { path })
    }
}

/// Everything a replica is told through its environment (`SHOP_*`): the
/// same for every service, but for the few settings one service gets its
/// own value of (a link routed through Toxiproxy).
#[derive(Debug, Clone, Default)]
pub struct ShopEnv {
    pub vars: Vec<(String, String)>,
    /// (service, variable, value): replaces the shared value for that
    /// service; None removes it.
    overrides: Vec<(String, String, Option<String>)>,
}

/// The setting that tells a service where `service` is.
pub fn url_key(service: &str) -> Option<&'static str> {
    match service {
        "user" => Some("users_url"),
        "catalogue" => Some("catalogue_url"),
        "cart" => Some("cart_url"),
        "orders" => Some("orders_url"),
        "shipping" => Some("shipping_url"),
        _ => None,
    }
}

fn var_name(key: &str) -> String {
    format!("SHOP_{}", key.to_ascii_uppercase())
}

impl ShopEnv {
    /// Tells every service where its siblings are: `url(service)` for each.
    pub fn set_service_urls(&mut self, url: impl Fn(&str) -> String) -> &mut Self {
        for service in SERVICES {
            if let Some(key) = url_key(service) {
                self.set(key, url(service));
            }
        }
        self
    }

    pub fn set(&mut self, key: &str, value: impl ToString) -> &mut Self {
        let key = var_name(key);
        self.vars.retain(|(k, _)| *k != key);
        self.vars.push((key, value.to_string()));
        self
    }

    /// `service` alone gets `value` for `key` (None: the key unset).
    pub fn set_for(&mut self, service: &str, key: &str, value: Option<String>) -> &mut Self {
        let key = var_name(key);
        self.overrides
            .retain(|(s, k, _)| !(s == service && *k == key));
        self.overrides.push((service.to_string(), key, value));
        self
    }

    /// What a replica of `service` is told.
    pub fn for_service(&self, service: &str) -> ShopEnv {
        let mut vars = self.vars.clone();
        for (_, key, value) in self.overrides.iter().filter(|(s, _, _)| s == service) {
            vars.retain(|(k, _)| k != key);
            if let Some(v) = value {
                vars.push((key.clone(), v.clone()));
            }
        }
        ShopEnv {
            vars,
            overrides: Vec::new(),
        }
    }
}

/// One running replica.
pub struct Replica {
    pub service: String,
    pub name: String,
    pub addr: SocketAddr,
    process: Option<Supervised>,
}

impl Replica {
    /// Starts `shop-<service>` listening on `addr`.
    pub fn spawn(
        service: &str,
        name: &str,
        instance: &str,
        addr: SocketAddr,
        env: &ShopEnv,
        log: &Path,
    ) -> Result<Self> {
        let mut cmd = Command::new(binary(service)?);
        cmd.env_clear();
        for key in ["PATH", "RUST_LOG", "RUST_BACKTRACE"] {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        cmd.envs(env.vars.iter().map(|(k, v)| (k, v)))
            .env("SHOP_BIND", addr.ip().to_string())
            .env("SHOP_PORT", addr.port().to_string())
            .env("SHOP_REPLICA", name)
            .env("SHOP_INSTANCE", instance)
            // One runtime worker per replica: a replica is sized at a
            // quarter of a core (the autoscaler's request), and a second
            // worker only adds cross-thread wakeups at that load.
            .env("TOKIO_WORKER_THREADS", "1");
        let process = Supervised::spawn(name, cmd, log)?;
        Ok(Self {
            service: service.into(),
            name: name.into(),
            addr,
            process: Some(process),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(Supervised::pid)
    }

    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(Supervised::is_running)
    }

    pub fn process_mut(&mut self) -> Option<&mut Supervised> {
        self.process.as_mut()
    }

    /// Waits until GET /health/ready answers 200.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_default();
        let url = format!("{}/health/ready", self.url());
        let ready = wait_until(timeout, || {
            let (client, url) = (client.clone(), url.clone());
            async move {
                client
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await;
        if ready {
            return Ok(());
        }
        let (log, tail) = match &self.process {
            Some(p) => (p.log().to_path_buf(), p.log_tail(20)),
            None => (PathBuf::new(), String::new()),
        };
        Err(Error::NotReady {
            name: self.name.clone(),
            waited: timeout,
            log,
            tail,
        })
    }

    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// SIGTERM, and the exit status if it exited within `grace`.
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let mut process = self.process.take()?;
        process.stop_and_wait(grace)
    }
}
