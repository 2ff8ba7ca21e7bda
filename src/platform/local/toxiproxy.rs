//! Toxiproxy, the user-space proxy network faults go through (this kernel
//! has no netem qdisc): the server as a supervised child, and the few calls
//! of its HTTP API gameday makes (create a proxy, point it elsewhere, add,
//! list and remove toxics). Built from its Go module by
//! `scripts/toxiproxy.sh` at a pinned version.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::errors::{Error, Result};
use super::process::{Supervised, free_port, wait_until};

/// The version `scripts/toxiproxy.sh` builds; its toxics are what the
/// network faults are made of.
pub const VERSION: &str = "v2.12.0";

/// Where `scripts/toxiproxy.sh` puts the server unless told otherwise.
const DEFAULT_TOOLS: &str = "/var/tmp/gameday-tools";

/// The server's binary: `$GAMEDAY_TOXIPROXY`, else the tools cache
/// (`$GAMEDAY_TOOLS`, default /var/tmp/gameday-tools) `bin/toxiproxy-server`,
/// else `toxiproxy-server` on PATH.
pub fn binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("GAMEDAY_TOXIPROXY") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::MissingToxiproxy {
                looked: path.display().to_string(),
            })
        };
    }
    let tools =
        std::env::var_os("GAMEDAY_TOOLS").map_or_else(|| DEFAULT_TOOLS.into(), PathBuf::from);
    let cached = tools.join("bin").join("toxiproxy-server");
    if cached.is_file() {
        return Ok(cached);
    }
    which::which("toxiproxy-server").map_err(|_| Error::MissingToxiproxy {
        looked: format!("{} and PATH", cached.display()),
    })
}

/// One toxic, as Toxiproxy's API takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Toxic {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `upstream` (client to server) or `downstream` (server to client).
    pub stream: String,
    /// The share of connections it applies to (0..=1).
    pub toxicity: f64,
    pub attributes: Value,
}

/// A running Toxiproxy server and its API.
pub struct Toxiproxy {
    pub api: ToxiproxyApi,
    process: Option<Supervised>,
}

impl Toxiproxy {
    /// Starts `toxiproxy-server` on `ip` (a free port) and waits for its API.
    pub async fn start(dir: &Path, ip: IpAddr) -> Result<Self> {
        let program = binary()?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let addr = SocketAddr::new(ip, free_port(ip)?);
        let mut cmd = Command::new(program);
        cmd.args(["-host", &ip.to_string(), "-port", &addr.port().to_string()])
            .env("LOG_LEVEL", "warn");
        let mut process = Supervised::spawn("toxiproxy", cmd, &dir.join("toxiproxy.log"))?;
        let api = ToxiproxyApi::new(addr);
        let ready = wait_until(Duration::from_secs(15), || {
            let api = api.clone();
            async move { api.version().await.is_ok() }
        })
        .await;
        if !ready || !process.is_running() {
            return Err(Error::NotReady {
                name: "toxiproxy".into(),
                waited: Duration::from_secs(15),
                log: process.log().to_path_buf(),
                tail: process.log_tail(20),
            });
        }
        Ok(Self {
            api,
            process: Some(process),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(Supervised::pid)
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop(Duration::from_secs(2));
        }
    }
}

/// Toxiproxy's HTTP API (`http://host:port`).
#[derive(Clone)]
pub struct ToxiproxyApi {
    pub addr: SocketAddr,
    http: reqwest::Client,
}

impl ToxiproxyApi {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn call(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let failed = |why: String| Error::Toxiproxy(format!("{what}: {why}"));
        let response = request.send().await.map_err(|e| failed(e.to_string()))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        Err(failed(format!("{status}: {}", body.trim())))
    }

    pub async fn version(&self) -> Result<String> {
        let r = self
            .call("version", self.http.get(self.url("/version")))
            .await?;
        r.text().await.map_err(|e| Error::Toxiproxy(e.to_string()))
    }

    /// A proxy listening on `listen` that forwards to `upstream`.
    pub async fn create_proxy(
        &self,
        name: &str,
        listen: SocketAddr,
        upstream: SocketAddr,
    ) -> Result<()> {
        let body = json!({
            "name": name,
            "listen": listen.to_string(),
            "upstream": upstream.to_string(),
            "enabled": true,
        });
        self.call(
            &format!("create proxy {name}"),
            self.http.post(self.url("/proxies")).json(&body),
        )
        .await?;
        Ok(())
    }

    /// Points a proxy at another upstream (its connections are closed).
    pub async fn set_upstream(&self, name: &str, upstream: SocketAddr) -> Result<()> {
        let body = json!({ "upstream": upstream.to_string(), "enabled": true });
        self.call(
            &format!("point proxy {name} at {upstream}"),
            self.http
                .patch(self.url(&format!("/proxies/{name}")))
                .json(&body),
        )
        .await?;
        Ok(())
    }

    pub async fn add_toxic(&self, proxy: &str, toxic: &Toxic) -> Result<()> {
        self.call(
            &format!("add toxic {} to {proxy}", toxic.name),
            self.http
                .post(self.url(&format!("/proxies/{proxy}/toxics")))
                .json(toxic),
        )
        .await?;
        Ok(())
    }

    /// Sends a toxic's settings again: Toxiproxy interrupts every
    /// connection's toxic chain and rolls each one's toxicity anew.
    pub async fn update_toxic(&self, proxy: &str, toxic: &Toxic) -> Result<()> {
        let body = json!({ "toxicity": toxic.toxicity, "attributes": toxic.attributes });
        self.call(
            &format!("update toxic {} of {proxy}", toxic.name),
            self.http
                .patch(self.url(&format!("/proxies/{proxy}/toxics/{}", toxic.name)))
                .json(&body),
        )
        .await?;
        Ok(())
    }

    pub async fn toxics(&self, proxy: &str) -> Result<Vec<Toxic>> {
        let r = self
            .call(
                &format!("list the toxics of {proxy}"),
                self.http.get(self.url(&format!("/proxies/{proxy}/toxics"))),
            )
            .await?;
        r.json()
            .await
            .map_err(|e| Error::Toxiproxy(format!("the toxics of {proxy}: {e}")))
    }

    /// Removes a toxic; one already gone is no error.
    pub async fn remove_toxic(&self, proxy: &str, name: &str) -> Result<()> {
        let url = self.url(&format!("/proxies/{proxy}/toxics/{name}"));
        let response = self
            .http
            .delete(url)
            .send()
            .await
            .map_err(|e| Error::Toxiproxy(format!("remove toxic {name} of {proxy}: {e}")))?;
        let status = response.status();
        if status.is_success() || status == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(Error::Toxiproxy(format!(
            "remove toxic {name} of {proxy}: {status}: {}",
            body.trim()
        )))
    }
}
