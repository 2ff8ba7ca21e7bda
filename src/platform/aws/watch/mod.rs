//! What AWS does during a run, as the run's typed events. AWS has no watch
//! API for these resources, so each one is polled once a second by a task
//! of its own: the Auto Scaling group (desired capacity, members, EC2
//! state, target health), the database (status, writer, RDS's failover
//! events), the cache and the
//! broker (status), and the alarms (state). Each poll goes through a
//! tracker that remembers what it saw and reports transitions only, so the
//! instances chart, scale-out time, failover and alarm figures come from the
//! same code as on the other platforms.
//!
//! A poll that fails is retried later: the wait doubles on each failure (a
//! throttled account gets fewer calls, up to one every 30 s) and is back to
//! a second after the next success; a failure is logged once per new
//! message. The first poll of each source reports what is there (the
//! group's members running and serving), so the charts start right.

mod group;
mod infra;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use tokio::{sync::watch as signal, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use self::{
    group::GroupTracker,
    infra::{AlarmTracker, DatabaseTracker, ServerTracker},
};
use super::{clients::AwsClients, errors::Error};
use crate::{
    events::{EventKind, EventLog, ServerRole},
    scenario::AwsDatabase,
};

/// How often each resource is polled while all is well.
pub const EVERY: Duration = Duration::from_secs(1);
/// The longest wait between polls of a resource that keeps failing.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the watchers look at: the resources of the run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Watched {
    pub group: Option<String>,
    pub database: Option<AwsDatabase>,
    /// An ElastiCache cluster outside a replication group.
    pub cache: Option<String>,
    /// An ElastiCache replication group (its status).
    pub cache_group: Option<String>,
    pub broker: Option<String>,
    /// Alarms to follow (the stack's health alarms and the group's scaling
    /// alarms).
    pub alarms: Vec<String>,
    /// Which of them belong to the group's scaling policies (no health
    /// alarms: shown as scaling signals only).
    pub scaling_alarms: BTreeSet<String>,
    /// Which of those scale the group out.
    pub scale_out_alarms: BTreeSet<String>,
}

/// The wait before a resource's next poll.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    every: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            current: every,
        }
    }

    /// The wait after a poll: back to `every` after a success, twice the
    /// last wait after a failure (throttling above all), at most
    /// [`MAX_BACKOFF`].
    pub fn after(&mut self, outcome: Result<(), &Error>) -> Duration {
        self.current = match outcome {
            Ok(()) => self.every,
            Err(_) => (self.current * 2).min(MAX_BACKOFF.max(self.every)),
        };
        self.current
    }
}

/// One polled resource and its tracker.
enum Source {
    Group {
        name: String,
        tracker: GroupTracker,
    },
    Database {
        database: AwsDatabase,
        tracker: DatabaseTracker,
        /// Failover events are read from this time on; None once
        /// DescribeEvents failed (the zone field is all there is then).
        events_since: Option<std::time::SystemTime>,
    },
    Server {
        role: ServerRole,
        id: String,
        tracker: ServerTracker,
    },
    CacheGroup {
        id: String,
        tracker: ServerTracker,
    },
    Alarms {
        names: Vec<String>,
        tracker: AlarmTracker,
    },
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::Group { name, .. } => format!("Auto Scaling group {name}"),
            Source::Database {
                database: AwsDatabase::Instance(id),
                ..
            } => format!("RDS DB instance {id}"),
            Source::Database {
                database: AwsDatabase::Cluster(id),
                ..
            } => format!("RDS DB cluster {id}"),
            Source::Server {
                role: ServerRole::Cache,
                id,
                ..
            } => format!("ElastiCache cluster {id}"),
            Source::Server { id, .. } => format!("Amazon MQ broker {id}"),
            Source::CacheGroup { id, .. } => format!("ElastiCache replication group {id}"),
            Source::Alarms { names, .. } => format!("{} CloudWatch alarms", names.len()),
        }
    }

    async fn poll(&mut self, aws: &AwsClients) -> Result<Vec<EventKind>, Error> {
        match self {
            Source::Group { name, tracker } => {
                let group = aws.describe_group(name).await?;
                let ids: Vec<String> = group
                    .members
                    .iter()
                    .map(|m| m.instance_id.clone())
                    .collect();
                let ec2 = aws.instances(&ids).await?;
                let health = if group.target_group_arns.is_empty() {
                    None
                } else {
                    let mut by_instance: BTreeMap<String, String> = BTreeMap::new();
                    for arn in &group.target_group_arns {
                        for t in aws.target_health(arn).await? {
                            // Serving only when healthy in every target group.
                            let state = by_instance.entry(t.instance_id).or_insert(t.state.clone());
                            if t.state != "healthy" {
                                *state = t.state;
                            }
                        }
                    }
                    Some(by_instance)
                };
                Ok(tracker.observe(&group, &ec2, health.as_ref()))
            }
            Source::Database {
                database,
                tracker,
                events_since,
            } => match database {
                AwsDatabase::Instance(id) => {
                    let mut kinds = tracker.instance(&aws.describe_db_instance(id).await?);
                    if let Some(since) = *events_since {
                        match aws.failover_events(id, since).await {
                            Ok(events) => kinds.extend(tracker.failover_events(id, &events)),
                            Err(e) => {
                                tracing::warn!(
                                    "RDS events of {id} are not read ({e}); a failover's end is \
                                     seen from the instance's zone only"
                                );
                                *events_since = None;
                            }
                        }
                    }
                    Ok(kinds)
                }
                AwsDatabase::Cluster(id) => {
                    Ok(tracker.cluster(&aws.describe_db_cluster(id).await?))
                }
            },
            Source::Server { role, id, tracker } => {
                let status = match role {
                    ServerRole::Cache => aws.describe_cache_cluster(id).await?.status,
                    ServerRole::Broker => aws.describe_broker(id).await?.state,
                };
                Ok(tracker.observe(&status))
            }
            Source::CacheGroup { id, tracker } => {
                Ok(tracker.observe(&aws.describe_replication_group(id).await?.status))
            }
            Source::Alarms { names, tracker } => {
                Ok(tracker.observe(&aws.alarm_states(names).await?))
            }
        }
    }
}

/// The polling tasks of a run, emitting into its event log until stopped.
pub struct Watchers {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    polled: signal::Receiver<usize>,
}

/// One source per watched resource.
fn sources(watched: &Watched) -> Vec<Source> {
    let mut sources = Vec::new();
    if let Some(name) = &watched.group {
        sources.push(Source::Group {
            name: name.clone(),
            tracker: GroupTracker::new(name),
        });
    }
    if let Some(database) = &watched.database {
        sources.push(Source::Database {
            database: database.clone(),
            tracker: DatabaseTracker::default(),
            // A failover injected right after the start is included.
            events_since: Some(std::time::SystemTime::now() - Duration::from_secs(60)),
        });
    }
    for (role, id) in [
        (ServerRole::Cache, &watched.cache),
        (ServerRole::Broker, &watched.broker),
    ] {
        if let Some(id) = id {
            sources.push(Source::Server {
                role,
                id: id.clone(),
                tracker: ServerTracker::new(role),
            });
        }
    }
    if let Some(id) = &watched.cache_group {
        sources.push(Source::CacheGroup {
            id: id.clone(),
            tracker: ServerTracker::new(ServerRole::Cache),
        });
    }
    if !watched.alarms.is_empty() {
        sources.push(Source::Alarms {
            names: watched.alarms.clone(),
            tracker: AlarmTracker::new(
                watched.group.clone(),
                watched.scaling_alarms.clone(),
                watched.scale_out_alarms.clone(),
            ),
        });
    }
    sources
}

/// Starts one polling task per watched resource, every `every`.
pub fn spawn(
    aws: &AwsClients,
    watched: &Watched,
    events: Arc<EventLog>,
    every: Duration,
) -> Watchers {
    let sources = sources(watched);
    let stop = CancellationToken::new();
    let (polled_tx, polled) = signal::channel(0usize);
    let polled_tx = Arc::new(polled_tx);
    let tasks = sources
        .into_iter()
        .map(|mut source| {
            let (aws, events, stop, polled_tx) =
                (aws.clone(), events.clone(), stop.clone(), polled_tx.clone());
            tokio::spawn(async move {
                let mut backoff = Backoff::new(every);
                let mut failing: Option<String> = None;
                let mut first = true;
                loop {
                    let outcome = tokio::select! {
                        _ = stop.cancelled() => return,
                        outcome = source.poll(&aws) => outcome,
                    };
                    let wait = match outcome {
                        Ok(kinds) => {
                            for kind in kinds {
                                events.emit(kind);
                            }
                            failing = None;
                            backoff.after(Ok(()))
                        }
                        Err(e) => {
                            let wait = backoff.after(Err(&e));
                            let message = e.to_string();
                            if failing.as_ref() != Some(&message) {
                                tracing::warn!(
                                    "watching {}: {message}; polling again in {} s",
                                    source.describe(),
                                    wait.as_secs()
                                );
                                failing = Some(message);
                            }
                            wait
                        }
                    };
                    if std::mem::take(&mut first) {
                        polled_tx.send_modify(|n| *n += 1);
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            })
        })
        .collect::<Vec<_>>();
    Watchers {
        stop,
        tasks,
        polled,
    }
}

#[async_trait::async_trait]
impl crate::platform::lifecycle::Watchers for Watchers {
    async fn ready(&mut self, within: Duration) -> bool {
        self.wait_polled(within).await
    }

    async fn stop(self: Box<Self>) {
        Watchers::stop(*self).await;
    }
}

impl Watchers {
    /// Waits until every resource has been polled once, so what a fault
    /// does next is seen against what was there (false if that did not
    /// happen within `within`).
    pub async fn wait_polled(&mut self, within: Duration) -> bool {
        let n = self.tasks.len();
        tokio::time::timeout(within, self.polled.wait_for(|p| *p >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Stops every poller and waits for them to end.
    pub async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
