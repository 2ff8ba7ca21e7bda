//! The shop's lifecycle on a cluster, as `select` asks for it: deploy for a
//! run (apply, wait with progress, watchers), attach, a read-only preview
//! for `plan`, `up`, `down` and `status` from the command line, and the
//! platform `inject` drives.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use kube::Api;

use super::{
    KubernetesPlatform, Mode,
    cluster::{Cluster, ClusterTarget},
    deploy::{RolloutProgress, Workload},
    errors::{Error, Result, api_error},
    manifests::{self, Manifest, Overrides},
};
use crate::{
    events::{EventKind, EventLog},
    platform::{Inventory, LeftBehind, Platform},
    scenario::KubernetesTarget,
    shop::ENTRY_SERVICE,
};

/// Connects to the cluster the target names (its context, or the current
/// one) and checks that the API server answers.
pub async fn connect(target: &KubernetesTarget) -> Result<Cluster> {
    let cluster_target = ClusterTarget {
        kubeconfig: None,
        context: target.context.clone(),
    };
    Cluster::connect(&cluster_target, &target.namespace).await
}

/// The reference shop's manifests as this target deploys them.
pub fn prepared(target: &KubernetesTarget, namespace: &str) -> Result<Vec<Manifest>> {
    let overrides = Overrides {
        image: target.image.clone(),
        replicas: target.replicas.clone(),
        autoscale: target.autoscale.clone(),
    };
    manifests::prepare(
        manifests::load(&manifests::reference_app_dir())?,
        namespace,
        &overrides,
    )
}

/// Deploys the shop for a run: applies, waits, starts the watchers.
pub async fn deploy(
    target: &KubernetesTarget,
    events: Arc<EventLog>,
) -> crate::Result<Box<dyn Platform>> {
    let cluster = connect(target).await?;
    starting(&cluster, &events, "deploying");
    let mut platform = deploy_on(cluster, target, events.clone()).await?;
    platform.watch().await;
    events.emit(EventKind::PlatformReady {
        entry_url: platform.entry_url.clone(),
    });
    Ok(Box::new(platform))
}

/// Attaches to the shop that runs in the target's namespace, for a run.
pub async fn attach(
    target: &KubernetesTarget,
    events: Arc<EventLog>,
) -> crate::Result<Box<dyn Platform>> {
    let cluster = connect(target).await?;
    starting(&cluster, &events, "attaching to the shop in");
    cluster.check_namespace().await?;
    let entry = entry_url(&cluster, target).await?;
    let mut platform = KubernetesPlatform::new(
        cluster,
        target.clone(),
        Mode::Attached,
        entry,
        events.clone(),
    );
    platform.watch().await;
    events.emit(EventKind::PlatformReady {
        entry_url: platform.entry_url.clone(),
    });
    Ok(Box::new(platform))
}

fn starting(cluster: &Cluster, events: &EventLog, what: &str) {
    let id = cluster.identity();
    events.emit(EventKind::PlatformStarting {
        detail: Some(format!(
            "kubernetes: {what} namespace {} on context {} ({})",
            cluster.namespace(),
            id.context,
            id.url
        )),
    });
}

/// Applies the manifests and waits for the rollout; the namespace is
/// deleted again when this created it and the shop did not come up.
pub async fn deploy_on(
    cluster: Cluster,
    target: &KubernetesTarget,
    events: Arc<EventLog>,
) -> Result<KubernetesPlatform> {
    let manifests = prepared(target, cluster.namespace())?;
    if target.entry_url.is_none() && !entry_is_load_balancer(&manifests) {
        return Err(Error::NoEntryUrl {
            namespace: cluster.namespace().to_string(),
            why: "target.entry-url is not set, and the manifests' Service web is not a \
                  LoadBalancer, so nothing outside the cluster reaches it"
                .into(),
        });
    }
    let existed = cluster.namespace_exists().await?;
    let guard = LeftBehind::armed(format!(
        "deploying: namespace {} may be left on the cluster",
        cluster.namespace()
    ));
    let outcome = match cluster.deploy(&manifests, progress_printer()).await {
        Ok(workloads) => {
            eprintln!("gameday: {}", available(&workloads, cluster.namespace()));
            entry_url(&cluster, target).await
        }
        Err(e) => Err(e),
    };
    guard.disarm();
    match outcome {
        Ok(entry) => Ok(KubernetesPlatform::new(
            cluster,
            target.clone(),
            Mode::Deployed { created: !existed },
            entry,
            events,
        )
        .with_admin_token(manifests::admin_token(&manifests))),
        Err(e) => {
            if !existed {
                eprintln!("gameday: {e}");
                remove_namespace(&cluster).await;
            }
            Err(e)
        }
    }
}

fn entry_is_load_balancer(manifests: &[Manifest]) -> bool {
    manifests.iter().any(|m| {
        m.kind.kind == "Service"
            && m.name == ENTRY_SERVICE
            && m.object["spec"]["type"] == "LoadBalancer"
    })
}

/// Where shoppers enter: `target.entry-url`, else the address a load
/// balancer gave Service web.
async fn entry_url(cluster: &Cluster, target: &KubernetesTarget) -> Result<String> {
    if let Some(url) = &target.entry_url {
        return Ok(url.clone());
    }
    let services: Api<Service> = Api::namespaced(cluster.client().clone(), cluster.namespace());
    let web = services
        .get(ENTRY_SERVICE)
        .await
        .map_err(api_error(format!(
            "read Service {ENTRY_SERVICE} in namespace {}",
            cluster.namespace()
        )))?;
    let ingress = web
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .and_then(|i| i.first())
        .and_then(|i| i.hostname.clone().or_else(|| i.ip.clone()));
    let port = web
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|p| p.first())
        .map_or(80, |p| p.port);
    match ingress {
        Some(host) if port == 80 => Ok(format!("http://{host}")),
        Some(host) => Ok(format!("http://{host}:{port}")),
        None => Err(Error::NoEntryUrl {
            namespace: cluster.namespace().to_string(),
            why: "target.entry-url is not set, and Service web has no load balancer address".into(),
        }),
    }
}

/// A progress line on stderr whenever what is still rolling out changes.
fn progress_printer() -> impl FnMut(&RolloutProgress) {
    let mut last = String::new();
    move |p: &RolloutProgress| {
        let waiting: Vec<String> = p
            .workloads
            .iter()
            .filter(|w| !w.available)
            .map(ToString::to_string)
            .collect();
        let line = if waiting.is_empty() {
            "every Deployment and StatefulSet is available".to_string()
        } else {
            format!("waiting for {}", waiting.join(", "))
        };
        if line != last {
            eprintln!("gameday: {:>4}s {line}", p.elapsed.as_secs());
            last = line;
        }
    }
}

fn available(workloads: &[Workload], namespace: &str) -> String {
    format!(
        "the shop is available in namespace {namespace} ({} workloads)",
        workloads.len()
    )
}

/// Deletes the namespace this process created, and waits until it is gone.
pub(super) async fn remove_namespace(cluster: &Cluster) {
    eprintln!(
        "gameday: deleting namespace {}, which this run created, and waiting until it is gone",
        cluster.namespace()
    );
    match cluster.delete_namespace().await {
        Ok(()) => eprintln!("gameday: namespace {} is gone", cluster.namespace()),
        Err(e) => eprintln!("gameday: {e}"),
    }
}

/// The platform as `plan` sees it: connected, reading only.
pub async fn preview(target: &KubernetesTarget) -> crate::Result<Box<dyn Platform>> {
    let cluster = connect(target).await?;
    let entry = match &target.entry_url {
        Some(url) => url.clone(),
        None => entry_url(&cluster, target)
            .await
            .unwrap_or_else(|_| "(not known: target.entry-url is not set)".into()),
    };
    Ok(Box::new(KubernetesPlatform::new(
        cluster,
        target.clone(),
        Mode::Preview,
        entry,
        Arc::new(EventLog::new(None)?),
    )))
}

/// The platform `gameday inject` drives: attached, without watchers.
pub async fn open(target: &KubernetesTarget) -> crate::Result<Box<dyn Platform>> {
    let cluster = connect(target).await?;
    cluster.check_namespace().await?;
    let entry = target.entry_url.clone().unwrap_or_else(|| "-".into());
    Ok(Box::new(KubernetesPlatform::new(
        cluster,
        target.clone(),
        Mode::Attached,
        entry,
        Arc::new(EventLog::new(None)?),
    )))
}

fn refuse_attached(target: &KubernetesTarget, command: &str) -> Result<()> {
    if target.deploy {
        return Ok(());
    }
    Err(Error::Refused {
        action: format!("gameday {command}"),
        why: format!(
            "target.deploy is false: gameday attaches to namespace {} and never deploys or \
             deletes it",
            target.namespace
        ),
    })
}

/// `gameday up --scenario FILE`: applies the shop and waits for it.
pub async fn up(target: &KubernetesTarget) -> crate::Result<i32> {
    refuse_attached(target, "up")?;
    let cluster = connect(target).await?;
    let manifests = prepared(target, cluster.namespace())?;
    let workloads = cluster.deploy(&manifests, progress_printer()).await?;
    let id = cluster.identity();
    println!(
        "Up: {} on context {} ({}).",
        available(&workloads, cluster.namespace()),
        id.context,
        id.url
    );
    match &target.entry_url {
        Some(url) => println!("Storefront: {url}"),
        None => println!(
            "Storefront: Service {ENTRY_SERVICE} (ClusterIP); from this machine: \
             kubectl --context {} -n {} port-forward svc/{ENTRY_SERVICE} 8080:80",
            id.context,
            cluster.namespace()
        ),
    }
    println!("`gameday down --scenario FILE` deletes the namespace.");
    Ok(crate::exit_codes::OK)
}

/// `gameday down --scenario FILE`: deletes the namespace and waits.
pub async fn down(target: &KubernetesTarget) -> crate::Result<i32> {
    refuse_attached(target, "down")?;
    let cluster = connect(target).await?;
    eprintln!(
        "gameday: deleting namespace {} on context {} and waiting until it is gone",
        cluster.namespace(),
        cluster.identity().context
    );
    cluster.delete_namespace().await?;
    println!("Namespace {} is gone.", cluster.namespace());
    Ok(crate::exit_codes::OK)
}

/// `gameday status --scenario FILE`: a heading and what runs where, or
/// None when the namespace does not exist.
pub async fn status(target: &KubernetesTarget) -> crate::Result<Option<(String, Inventory)>> {
    let cluster = connect(target).await?;
    if !cluster.namespace_exists().await? {
        return Ok(None);
    }
    let mut inventory = cluster.inventory().await?;
    inventory.admin_token = std::env::var(super::ADMIN_TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty())
        .or_else(|| {
            target
                .deploy
                .then(|| prepared(target, cluster.namespace()).ok())
                .flatten()
                .and_then(|m| manifests::admin_token(&m))
        });
    inventory.entry_url = target
        .entry_url
        .clone()
        .unwrap_or_else(|| format!("(target.entry-url not set; Service {ENTRY_SERVICE})"));
    let id = cluster.identity();
    Ok(Some((
        format!(
            "Kubernetes namespace {} on context {} ({})",
            cluster.namespace(),
            id.context,
            id.url
        ),
        inventory,
    )))
}
