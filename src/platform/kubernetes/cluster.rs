//! Finding and reaching the cluster: kube's standard configuration inference
//! (KUBECONFIG or ~/.kube/config, else the in-cluster service account), an
//! optional context, and a first call that proves the API server answers, so
//! a wrong context fails at the start of a run with the cluster's name in the
//! message instead of half way through.

use std::{path::PathBuf, time::Duration};

use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};

use super::errors::{Error, Result, api_error, deepest_cause};

/// Which cluster to talk to, as the scenario's `target` names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterTarget {
    /// A kubeconfig file to read instead of KUBECONFIG / ~/.kube/config.
    pub kubeconfig: Option<PathBuf>,
    /// A kubeconfig context; `None` means the current one (or in-cluster).
    pub context: Option<String>,
}

/// Which cluster a [`Cluster`] talks to, for messages and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The API server's URL.
    pub url: String,
    /// The kubeconfig context, or `in-cluster`.
    pub context: String,
}

/// How long gameday waits for the cluster, and how often it looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// Between two looks while waiting for rollouts, deletions and drains.
    pub poll_every: Duration,
    /// Deployments and StatefulSets must be available within this.
    pub rollout_timeout: Duration,
    /// A deleted namespace must be gone within this.
    pub namespace_deletion_timeout: Duration,
    /// Between two tries of an eviction that a PodDisruptionBudget refused.
    pub eviction_retry_every: Duration,
    /// An eviction still refused after this is reported and the fault fails.
    pub eviction_give_up_after: Duration,
    /// Evicted pods must be gone from a node within this before it is deleted.
    pub drain_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            poll_every: Duration::from_secs(2),
            rollout_timeout: Duration::from_secs(300),
            namespace_deletion_timeout: Duration::from_secs(180),
            eviction_retry_every: Duration::from_secs(5),
            eviction_give_up_after: Duration::from_secs(120),
            drain_timeout: Duration::from_secs(120),
        }
    }
}

/// A reachable cluster and the namespace the shop lives in.
#[derive(Clone)]
pub struct Cluster {
    pub(super) client: Client,
    pub(super) namespace: String,
    pub(super) identity: Identity,
    pub(super) timing: Timing,
}

impl Cluster {
    /// Connects to the cluster that `target` names and checks that its API
    /// server answers.
    pub async fn connect(target: &ClusterTarget, namespace: &str) -> Result<Self> {
        install_crypto_provider();
        let (config, identity) = client_config(target).await?;
        let client = Client::try_from(config).map_err(|e| Error::Config {
            context: Some(identity.context.clone()),
            cause: Box::new(e),
        })?;
        probe(&client, &identity).await?;
        Ok(Self::from_client(client, namespace, identity))
    }

    /// A cluster over an existing client (tests use a mock transport).
    pub fn from_client(client: Client, namespace: &str, identity: Identity) -> Self {
        Self {
            client,
            namespace: namespace.to_string(),
            identity,
            timing: Timing::default(),
        }
    }

    #[must_use]
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }
}

/// The client configuration for `target`, and the cluster it names.
///
/// kube's own retry layer is turned off: it retries 429 answers up to 15
/// times over minutes, which would hide a PodDisruptionBudget refusing an
/// eviction; gameday retries those itself, within [`Timing`].
pub async fn client_config(target: &ClusterTarget) -> Result<(Config, Identity)> {
    let options = KubeConfigOptions {
        context: target.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config_error = |e: Box<dyn std::error::Error + Send + Sync>| Error::Config {
        context: target.context.clone(),
        cause: e,
    };
    let (mut config, context) = match (&target.kubeconfig, &target.context) {
        (Some(path), _) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| config_error(Box::new(e)))?;
            let context = target
                .context
                .clone()
                .or_else(|| kubeconfig.current_context.clone());
            let config = Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| config_error(Box::new(e)))?;
            (config, context)
        }
        (None, Some(context)) => {
            let config = Config::from_kubeconfig(&options)
                .await
                .map_err(|e| config_error(Box::new(e)))?;
            (config, Some(context.clone()))
        }
        (None, None) => {
            let config = Config::infer()
                .await
                .map_err(|e| config_error(Box::new(e)))?;
            let context = Kubeconfig::read().ok().and_then(|k| k.current_context);
            (config, context)
        }
    };
    config.default_retry = false;
    let identity = Identity {
        url: config.cluster_url.to_string(),
        context: context.unwrap_or_else(|| "in-cluster".to_string()),
    };
    Ok((config, identity))
}

/// Makes ring rustls' process-wide provider, unless one is set already:
/// kube builds its TLS configuration with rustls' default provider, which
/// rustls cannot choose by itself when both ring (kube) and aws-lc-rs
/// (goose's reqwest) are compiled in, and would panic on first use.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Asks the API server for its version: the cheapest call every user may make.
async fn probe(client: &Client, identity: &Identity) -> Result<()> {
    match client.apiserver_version().await {
        Ok(_) => Ok(()),
        Err(source @ kube::Error::Api(_)) => Err(api_error(format!(
            "query the API server at {} (context {})",
            identity.url, identity.context
        ))(source)),
        Err(source) => Err(Error::Unreachable {
            url: identity.url.clone(),
            context: identity.context.clone(),
            cause: deepest_cause(&source),
        }),
    }
}
