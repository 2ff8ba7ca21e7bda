//! One stream of timestamped, typed events for everything that happens in a
//! run: the platform's replicas, instances, databases and servers, scaling,
//! faults, the load and stop conditions. Events go to subscribers and are
//! appended to `events.jsonl` in the run directory as they happen, so a
//! crashed run keeps them.
//!
//! On disk an event is `{"t_ms": .., "kind": "replica.ready", "fields": {..}}`,
//! the shape run directories have always had, so directories written before
//! events were typed still read back. A kind this version does not know
//! reads back as [`EventKind::Unknown`] and is ignored by every consumer.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::Path,
    sync::Mutex,
    time::Instant,
};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::file_error::FileError;

type Result<T, E = FileError> = std::result::Result<T, E>;

/// Something that happened, at `t_ms` milliseconds on the run's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawEvent", into = "RawEvent")]
pub struct Event {
    pub t_ms: u64,
    pub kind: EventKind,
}

impl Event {
    pub fn new(t_ms: u64, kind: EventKind) -> Self {
        Self { t_ms, kind }
    }

    /// Seconds on the run's clock.
    pub fn at_s(&self) -> f64 {
        self.t_ms as f64 / 1000.0
    }
}

/// Which infrastructure server an event or fault is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerRole {
    /// Redis, ElastiCache.
    Cache,
    /// RabbitMQ, Amazon MQ.
    Broker,
}

impl ServerRole {
    pub fn name(self) -> &'static str {
        match self {
            ServerRole::Cache => "cache",
            ServerRole::Broker => "broker",
        }
    }
}

/// Every kind of event. The serde names are the `kind` strings of
/// `events.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "fields")]
pub enum EventKind {
    // The platform as a whole.
    #[serde(rename = "platform.starting")]
    PlatformStarting {
        #[serde(default)]
        detail: Option<String>,
    },
    /// A piece of infrastructure answers (database, cache, broker, balancer).
    #[serde(rename = "component.ready")]
    ComponentReady {
        component: String,
        #[serde(default)]
        address: Option<String>,
    },
    #[serde(rename = "platform.ready")]
    PlatformReady { entry_url: String },
    #[serde(rename = "platform.stopped")]
    PlatformStopped {},
    /// A line for a person watching a long step of the platform (a stack
    /// being created, a rollout, a namespace being deleted).
    #[serde(rename = "platform.progress")]
    PlatformProgress { detail: String },

    // Replicas of the shop's services (processes, pods).
    #[serde(rename = "replica.started")]
    ReplicaStarted {
        service: String,
        replica: String,
        #[serde(default)]
        instance: Option<String>,
        #[serde(default)]
        address: Option<String>,
        /// Started because the autoscaler asked for more.
        #[serde(default)]
        scale_out: bool,
    },
    /// Its own readiness check passes.
    #[serde(rename = "replica.ready")]
    ReplicaReady { service: String, replica: String },
    /// The load balancer sends it traffic.
    #[serde(rename = "replica.serving")]
    ReplicaServing { service: String, replica: String },
    /// The load balancer stopped sending it traffic while it still runs
    /// (its readiness failed: a dependency down, a crash being restarted).
    #[serde(rename = "replica.unready")]
    ReplicaUnready { service: String, replica: String },
    /// Being stopped on purpose (scale-in, drain).
    #[serde(rename = "replica.stopping")]
    ReplicaStopping {
        service: String,
        replica: String,
        #[serde(default)]
        instance: Option<String>,
        #[serde(default)]
        reason: Option<String>,
    },
    /// Killed by a fault (SIGKILL, a pod deleted without grace).
    #[serde(rename = "replica.killed")]
    ReplicaKilled {
        service: String,
        replica: String,
        #[serde(default)]
        instance: Option<String>,
    },
    /// Stopped gracefully by a fault (SIGTERM, a pod deleted with grace).
    #[serde(rename = "replica.stopped")]
    ReplicaStopped {
        service: String,
        replica: String,
        #[serde(default)]
        instance: Option<String>,
    },
    /// Gone: `reason` says why (killed, lost with its instance, scaled-in,
    /// crashed, evicted).
    #[serde(rename = "replica.exited")]
    ReplicaExited {
        service: String,
        replica: String,
        #[serde(default)]
        instance: Option<String>,
        #[serde(default)]
        reason: Option<String>,
    },

    // Instances (loopback addresses, nodes, EC2 instances).
    #[serde(rename = "instance.launching")]
    InstanceLaunching {
        instance: String,
        #[serde(default)]
        replaces: Option<String>,
        #[serde(default)]
        address: Option<String>,
        #[serde(default)]
        zone: Option<String>,
        #[serde(default)]
        boot_delay_ms: Option<u64>,
        /// The group that launched it (an Auto Scaling group).
        #[serde(default)]
        group: Option<String>,
        /// Launched because the group scaled out (not as a replacement).
        #[serde(default)]
        scale_out: bool,
    },
    #[serde(rename = "instance.running")]
    InstanceRunning {
        instance: String,
        #[serde(default)]
        address: Option<String>,
        #[serde(default)]
        zone: Option<String>,
    },
    /// Healthy behind the load balancer (a healthy target, a Ready node).
    #[serde(rename = "instance.serving")]
    InstanceServing {
        instance: String,
        #[serde(default)]
        group: Option<String>,
    },
    /// No longer healthy behind the load balancer, but still there.
    #[serde(rename = "instance.unhealthy")]
    InstanceUnhealthy {
        instance: String,
        #[serde(default)]
        reason: Option<String>,
    },
    #[serde(rename = "instance.terminated")]
    InstanceTerminated {
        instance: String,
        #[serde(default)]
        address: Option<String>,
        #[serde(default)]
        zone: Option<String>,
    },

    // The database.
    #[serde(rename = "db.primary_killed")]
    DbPrimaryKilled { server: String },
    #[serde(rename = "db.standby_promoted")]
    DbStandbyPromoted {
        server: String,
        #[serde(default)]
        after_ms: Option<u64>,
    },
    /// Writes now go to `to`.
    #[serde(rename = "db.writer_moved")]
    DbWriterMoved {
        to: String,
        #[serde(default)]
        address: Option<String>,
        #[serde(default)]
        after_ms: Option<u64>,
    },
    #[serde(rename = "db.standby_rebuilt")]
    DbStandbyRebuilt { server: String },
    /// A managed database reported a new status (RDS: rebooting, available).
    #[serde(rename = "db.status")]
    DbStatus { database: String, status: String },

    // The cache and the broker.
    #[serde(rename = "server.stopping")]
    ServerStopping { server: ServerRole },
    #[serde(rename = "server.stopped")]
    ServerStopped {
        server: ServerRole,
        #[serde(default)]
        address: Option<String>,
    },
    #[serde(rename = "server.started")]
    ServerStarted {
        server: ServerRole,
        #[serde(default)]
        address: Option<String>,
    },
    #[serde(rename = "server.restarted")]
    ServerRestarted {
        server: ServerRole,
        #[serde(default)]
        address: Option<String>,
    },

    // Scaling: `service` is what scales (a service, an Auto Scaling group).
    /// The scaling signal crossed its target (CPU above target, an alarm).
    #[serde(rename = "autoscale.signal")]
    ScalingSignal {
        service: String,
        #[serde(default)]
        observed_cpu_percent: Option<f64>,
        #[serde(default)]
        target_cpu_percent: Option<f64>,
        #[serde(default)]
        replicas: Option<u32>,
    },
    #[serde(rename = "autoscale.decision")]
    ScalingDecision {
        service: String,
        from: u32,
        to: u32,
        #[serde(default)]
        observed_cpu_percent: Option<f64>,
        #[serde(default)]
        target_cpu_percent: Option<f64>,
    },
    /// A monitoring alarm changed state (CloudWatch).
    #[serde(rename = "alarm.state")]
    AlarmState {
        alarm: String,
        state: String,
        #[serde(default)]
        reason: Option<String>,
    },

    // Faults.
    #[serde(rename = "fault.injected")]
    FaultInjected {
        id: String,
        name: String,
        /// The scenario's key, such as `kill-pod`.
        kind: String,
        #[serde(default)]
        targets: Vec<String>,
        #[serde(default)]
        duration_ms: Option<u64>,
    },
    /// Its action is over (or it was undone).
    #[serde(rename = "fault.ended")]
    FaultEnded {
        id: String,
        #[serde(default)]
        undo: Option<String>,
    },
    #[serde(rename = "fault.undo_failed")]
    FaultUndoFailed {
        id: String,
        attempt: u32,
        error: String,
    },
    /// It could not be applied.
    #[serde(rename = "fault.failed")]
    FaultFailed {
        #[serde(default)]
        id: Option<String>,
        name: String,
        kind: String,
        error: String,
    },

    // The load.
    #[serde(rename = "load.started")]
    LoadStarted {
        peak_users: u32,
        #[serde(default)]
        plan: Option<String>,
    },
    #[serde(rename = "load.stopped")]
    LoadStopped {},
    #[serde(rename = "stop.fired")]
    StopFired { rule: String, second: u64 },

    /// A kind this version does not know (or an older shape of one): kept
    /// as it was, ignored by every consumer.
    #[serde(skip)]
    Unknown { kind: String, fields: Value },
}

/// The on-disk shape.
#[derive(Serialize, Deserialize)]
struct RawEvent {
    t_ms: u64,
    kind: String,
    #[serde(default)]
    fields: Value,
}

impl From<RawEvent> for Event {
    fn from(raw: RawEvent) -> Self {
        let fields = match raw.fields {
            Value::Null => Value::Object(Default::default()),
            f => f,
        };
        let tagged = serde_json::json!({"kind": raw.kind, "fields": fields});
        let kind = serde_json::from_value(tagged).unwrap_or(EventKind::Unknown {
            kind: raw.kind,
            fields,
        });
        Event {
            t_ms: raw.t_ms,
            kind,
        }
    }
}

impl From<Event> for RawEvent {
    fn from(e: Event) -> Self {
        let (kind, fields) = match e.kind {
            EventKind::Unknown { kind, fields } => (kind, fields),
            known => match serde_json::to_value(&known) {
                Ok(Value::Object(mut map)) => (
                    map.remove("kind")
                        .and_then(|k| k.as_str().map(String::from))
                        .unwrap_or_default(),
                    map.remove("fields").unwrap_or(Value::Null),
                ),
                _ => (String::new(), Value::Null),
            },
        };
        RawEvent {
            t_ms: e.t_ms,
            kind,
            fields,
        }
    }
}

impl EventKind {
    /// The `kind` string written to `events.jsonl`.
    pub fn name(&self) -> String {
        match self {
            EventKind::Unknown { kind, .. } => kind.clone(),
            known => serde_json::to_value(known)
                .ok()
                .and_then(|v| v.get("kind").and_then(Value::as_str).map(String::from))
                .unwrap_or_default(),
        }
    }
}

pub struct EventLog {
    origin: Instant,
    sender: broadcast::Sender<Event>,
    file: Mutex<Option<BufWriter<File>>>,
}

impl EventLog {
    /// A log whose clock starts now, appending to `path` (if given).
    pub fn new(path: Option<&Path>) -> Result<Self> {
        Self::with_origin(Instant::now(), path)
    }

    pub fn with_origin(origin: Instant, path: Option<&Path>) -> Result<Self> {
        let file = match path {
            Some(p) => Some(BufWriter::new(
                File::options()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(FileError::at(p))?,
            )),
            None => None,
        };
        let (sender, _) = broadcast::channel(4096);
        Ok(Self {
            origin,
            sender,
            file: Mutex::new(file),
        })
    }

    pub fn origin(&self) -> Instant {
        self.origin
    }

    pub fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// Records an event now and returns it.
    pub fn emit(&self, kind: EventKind) -> Event {
        self.record(Event::new(self.now_ms(), kind))
    }

    /// Records an event with its own time (a watcher reporting a change it
    /// saw a moment ago).
    pub fn record(&self, event: Event) -> Event {
        tracing::info!(t_ms = event.t_ms, kind = ?event.kind, "event");
        if let Ok(mut guard) = self.file.lock()
            && let Some(file) = guard.as_mut()
            && let Ok(line) = serde_json::to_string(&event)
        {
            let _ = writeln!(file, "{line}").and_then(|_| file.flush());
        }
        let _ = self.sender.send(event.clone());
        event
    }
}

/// Reads an `events.jsonl` file back; a torn last line (a crash) is skipped.
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let text = std::fs::read_to_string(path).map_err(FileError::at(path))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_appended_to_the_file_and_sent_to_subscribers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let log = EventLog::new(Some(&path)).unwrap();
        let mut rx = log.subscribe();
        let started = EventKind::ReplicaStarted {
            service: "cart".into(),
            replica: "cart-1".into(),
            instance: Some("i-1".into()),
            address: None,
            scale_out: false,
        };
        log.emit(started.clone());
        log.emit(EventKind::ReplicaReady {
            service: "cart".into(),
            replica: "cart-1".into(),
        });
        assert_eq!(rx.try_recv().unwrap().kind, started);
        let back = read_events(&path).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].kind, started);
        assert!(back[0].t_ms <= back[1].t_ms);
        let text = std::fs::read_to_string(&path).unwrap();
        let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["kind"], "replica.started");
        assert_eq!(first["fields"]["replica"], "cart-1");
    }

    #[test]
    fn lines_written_before_events_were_typed_read_back_and_unknown_kinds_are_kept_aside() {
        let lines = [
            r#"{"t_ms":20000,"kind":"fault.injected","fields":{"id":"f1","name":"kill","kind":"kill-pod","targets":["cart-1"],"duration_ms":null}}"#,
            r#"{"t_ms":20100,"kind":"replica.started","fields":{"service":"cart","replica":"cart-3","instance":"i-1","pid":4242,"address":"127.0.1.1:4000","scale_out":false}}"#,
            r#"{"t_ms":20200,"kind":"lb.ready","fields":{"entry":"127.0.0.1:8080"}}"#,
            r#"{"t_ms":20300,"kind":"load.stopped","fields":{}}"#,
        ];
        let events: Vec<Event> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(matches!(
            &events[0].kind,
            EventKind::FaultInjected { id, targets, .. } if id == "f1" && targets == &["cart-1"]
        ));
        assert!(matches!(
            &events[1].kind,
            EventKind::ReplicaStarted { replica, scale_out: false, .. } if replica == "cart-3"
        ));
        assert!(matches!(&events[2].kind, EventKind::Unknown { kind, .. } if kind == "lb.ready"));
        assert_eq!(events[3].kind, EventKind::LoadStopped {});
        // Unknown kinds are written back as they were read.
        let again: Value = serde_json::to_value(&events[2]).unwrap();
        assert_eq!(again["kind"], "lb.ready");
        assert_eq!(again["fields"]["entry"], "127.0.0.1:8080");
        assert_eq!(events[0].kind.name(), "fault.injected");
    }
}
