//! What the cluster does during a run, as the run's typed events: kube's
//! watchers over the namespace's Pods, EndpointSlices, Deployments and
//! HPAs, and the cluster's Nodes. Each kind has a tracker that remembers
//! what it saw and reports transitions only (a replica was placed on a
//! node, became ready, joined a Service's endpoints, went away; an HPA
//! decided to scale; a node went away), so the replicas chart and
//! scale-out time come from the same code as on the local platform.
//!
//! The watchers start when their stream is first polled: [`spawn`] polls it
//! at once and says when every first list is done, so a fault injected
//! after that is seen from its first moment.

mod nodes;
mod replicas;
mod scaling;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Debug,
    sync::Arc,
};

use futures::{StreamExt, stream::BoxStream};
use k8s_openapi::api::{
    apps::v1::Deployment,
    autoscaling::v2::HorizontalPodAutoscaler,
    core::v1::{Node, Pod},
    discovery::v1::EndpointSlice,
};
use kube::{
    Api, Resource,
    runtime::{WatchStreamExt, watcher},
};
use serde::de::DeserializeOwned;
use tokio::{sync::watch as signal, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use self::{
    nodes::Nodes,
    replicas::{EndpointSlices, Pods},
    scaling::{Deployments, Hpas},
};
use super::{cluster::Cluster, inventory::SLICE_SERVICE_LABEL};
use crate::events::{EventKind, EventLog};

/// One watch event of one of the five kinds, or a watch error.
#[derive(Debug)]
pub enum Observed {
    Pod(watcher::Event<Pod>),
    Slice(watcher::Event<EndpointSlice>),
    Deployment(watcher::Event<Deployment>),
    Hpa(watcher::Event<HorizontalPodAutoscaler>),
    Node(watcher::Event<Node>),
    Failed {
        resource: &'static str,
        message: String,
    },
}

/// The five watchers, merged. Watch errors are yielded and the watchers go
/// on, backing off; the stream ends only when dropped.
pub fn observe(cluster: &Cluster) -> BoxStream<'static, Observed> {
    let client = &cluster.client;
    let ns = &cluster.namespace;
    futures::stream::select_all([
        stream(
            Api::<Pod>::namespaced(client.clone(), ns),
            watcher::Config::default(),
            Observed::Pod,
        ),
        stream(
            Api::<EndpointSlice>::namespaced(client.clone(), ns),
            watcher::Config::default().labels(SLICE_SERVICE_LABEL),
            Observed::Slice,
        ),
        stream(
            Api::<Deployment>::namespaced(client.clone(), ns),
            watcher::Config::default(),
            Observed::Deployment,
        ),
        stream(
            Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ns),
            watcher::Config::default(),
            Observed::Hpa,
        ),
        stream(
            Api::<Node>::all(client.clone()),
            watcher::Config::default(),
            Observed::Node,
        ),
    ])
    .boxed()
}

pub(super) fn stream<K>(
    api: Api<K>,
    config: watcher::Config,
    wrap: fn(watcher::Event<K>) -> Observed,
) -> BoxStream<'static, Observed>
where
    K: Resource + k8s_openapi::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher(api, config)
        .default_backoff()
        .map(move |item| match item {
            Ok(event) => wrap(event),
            Err(e) => Observed::Failed {
                resource: <K as k8s_openapi::Resource>::KIND,
                message: e.to_string(),
            },
        })
        .boxed()
}

/// The watchers of a run, forwarding into its event log until stopped.
pub struct Watchers {
    stop: CancellationToken,
    task: JoinHandle<()>,
    synced: signal::Receiver<bool>,
}

/// Starts the watchers: every event they turn into a run event is emitted
/// into `events`, on the run's clock.
pub fn spawn(cluster: &Cluster, events: Arc<EventLog>) -> Watchers {
    let stop = CancellationToken::new();
    let (synced_tx, synced) = signal::channel(false);
    let mut observed = observe(cluster);
    let token = stop.clone();
    let task = tokio::spawn(async move {
        let mut view = View::default();
        // A watch that keeps failing (RBAC, a network partition) is said
        // once per new message, not at every retry.
        let mut failing: BTreeMap<&'static str, String> = BTreeMap::new();
        loop {
            let next = tokio::select! {
                _ = token.cancelled() => return,
                next = observed.next() => next,
            };
            let Some(next) = next else { return };
            if let Observed::Failed { resource, message } = &next
                && failing.get(resource) != Some(message)
            {
                tracing::warn!(resource, error = %message, "watch failed; retrying");
                failing.insert(resource, message.clone());
            }
            for kind in view.on(next) {
                events.emit(kind);
            }
            if view.synced() && !*synced_tx.borrow() {
                let _ = synced_tx.send(true);
            }
        }
    });
    Watchers { stop, task, synced }
}

#[async_trait::async_trait]
impl crate::platform::lifecycle::Watchers for Watchers {
    async fn ready(&mut self, within: std::time::Duration) -> bool {
        self.wait_synced(within).await
    }

    async fn stop(self: Box<Self>) {
        Watchers::stop(*self).await;
    }
}

impl Watchers {
    /// Waits until every watcher has listed what is there (false if that
    /// did not happen within `within`).
    pub async fn wait_synced(&mut self, within: std::time::Duration) -> bool {
        tokio::time::timeout(within, self.synced.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Stops every watcher and waits for the forwarding task to end.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// What the trackers share: whether the tracker at hand is doing its first
/// list, and the scale-outs not yet placed (a Deployment asked for more
/// replicas than before; its next pods are started for that).
#[derive(Debug, Default)]
pub struct Seen {
    pub first_list: bool,
    pub scale_outs: BTreeMap<String, u32>,
}

/// Every tracker, and which ones finished their first list.
#[derive(Default)]
pub struct View {
    seen: Seen,
    pods: Relisting<Pods>,
    slices: Relisting<EndpointSlices>,
    deployments: Relisting<Deployments>,
    hpas: Relisting<Hpas>,
    nodes: Relisting<Nodes>,
}

impl View {
    /// The run events one watch event makes.
    pub fn on(&mut self, observed: Observed) -> Vec<EventKind> {
        let seen = &mut self.seen;
        match observed {
            Observed::Pod(e) => self.pods.on(e, seen),
            Observed::Slice(e) => self.slices.on(e, seen),
            Observed::Deployment(e) => self.deployments.on(e, seen),
            Observed::Hpa(e) => self.hpas.on(e, seen),
            Observed::Node(e) => self.nodes.on(e, seen),
            Observed::Failed { .. } => Vec::new(),
        }
    }

    /// Whether every watcher has finished its first list.
    pub fn synced(&self) -> bool {
        self.pods.listed
            && self.slices.listed
            && self.deployments.listed
            && self.hpas.listed
            && self.nodes.listed
    }
}

/// Remembers one kind of object and says what changed.
pub trait Track<K> {
    /// The object's identity within this tracker.
    fn key(&self, object: &K) -> String;
    /// `object` was created or changed.
    fn apply(&mut self, object: &K, seen: &mut Seen, out: &mut Vec<EventKind>);
    /// The object with `key` is gone.
    fn remove(&mut self, key: &str, out: &mut Vec<EventKind>);
    /// Every key it remembers.
    fn keys(&self) -> Vec<String>;
}

/// Handles the watcher's (re)lists: objects it knew that a fresh list no
/// longer has were deleted while the watch was down.
#[derive(Default)]
pub struct Relisting<T> {
    tracker: T,
    listing: Option<BTreeSet<String>>,
    /// The first list is done.
    listed: bool,
}

impl<T> Relisting<T> {
    pub fn new(tracker: T) -> Self {
        Self {
            tracker,
            listing: None,
            listed: false,
        }
    }

    pub fn on<K>(&mut self, event: watcher::Event<K>, seen: &mut Seen) -> Vec<EventKind>
    where
        T: Track<K>,
    {
        let mut out = Vec::new();
        seen.first_list = !self.listed;
        match event {
            watcher::Event::Init => self.listing = Some(BTreeSet::new()),
            watcher::Event::InitApply(object) => {
                if let Some(listing) = &mut self.listing {
                    listing.insert(self.tracker.key(&object));
                }
                self.tracker.apply(&object, seen, &mut out);
            }
            watcher::Event::InitDone => {
                if let Some(listing) = self.listing.take() {
                    for key in self.tracker.keys() {
                        if !listing.contains(&key) {
                            self.tracker.remove(&key, &mut out);
                        }
                    }
                }
                self.listed = true;
            }
            watcher::Event::Apply(object) => self.tracker.apply(&object, seen, &mut out),
            watcher::Event::Delete(object) => {
                let key = self.tracker.key(&object);
                self.tracker.remove(&key, &mut out);
            }
        }
        out
    }
}
