//! The managed services as the run's events: the database's status and
//! writer, the cache's and the broker's availability, and the health
//! alarms' states (a scaling alarm is no health alarm: its firing is the
//! group's scaling signal).

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    events::{EventKind, ServerRole},
    platform::aws::{
        alarms::AlarmState,
        rds::{DbClusterInfo, DbInstanceInfo, FailoverEvent, FailoverPhase},
    },
};

/// An RDS instance or Aurora cluster: its status (DbStatus, the first one
/// included) and where writes go (DbWriterMoved: the Aurora writer, or the
/// availability zone of a Multi-AZ instance's primary).
///
/// RDS's failover events, when it gives them, say when a Multi-AZ
/// failover started (DbPrimaryKilled) and completed (DbStandbyPromoted,
/// with the time between the two by RDS's clock); the zone field, which
/// RDS updates late, still gives DbWriterMoved when it changes.
#[derive(Debug, Default)]
pub struct DatabaseTracker {
    status: Option<String>,
    writer: Option<String>,
    /// The failover events already reported.
    seen: BTreeSet<(std::time::SystemTime, String)>,
    /// When the failover in progress started, by RDS's clock.
    started: Option<std::time::SystemTime>,
}

impl DatabaseTracker {
    /// New failover events of instance `database` (those seen before are
    /// skipped), as the run's events.
    pub fn failover_events(&mut self, database: &str, events: &[FailoverEvent]) -> Vec<EventKind> {
        let mut out = Vec::new();
        for e in events {
            if !self.seen.insert((e.at, e.message.clone())) {
                continue;
            }
            match e.phase {
                FailoverPhase::Started => {
                    self.started = Some(e.at);
                    out.push(EventKind::DbPrimaryKilled {
                        server: database.to_string(),
                    });
                }
                FailoverPhase::Completed => {
                    let after_ms = self
                        .started
                        .take()
                        .and_then(|s| e.at.duration_since(s).ok().map(|d| d.as_millis() as u64));
                    out.push(EventKind::DbStandbyPromoted {
                        server: database.to_string(),
                        after_ms,
                    });
                }
            }
        }
        out
    }

    pub fn instance(&mut self, db: &DbInstanceInfo) -> Vec<EventKind> {
        let writer = db
            .availability_zone
            .as_ref()
            .map(|az| format!("{} in {az}", db.id));
        self.observe(&db.id, &db.status, writer, db.endpoint.clone())
    }

    pub fn cluster(&mut self, cluster: &DbClusterInfo) -> Vec<EventKind> {
        self.observe(
            &cluster.id,
            &cluster.status,
            cluster.writer().map(str::to_string),
            cluster.endpoint.clone(),
        )
    }

    fn observe(
        &mut self,
        database: &str,
        status: &str,
        writer: Option<String>,
        address: Option<String>,
    ) -> Vec<EventKind> {
        let mut out = Vec::new();
        if self.status.as_deref() != Some(status) {
            self.status = Some(status.to_string());
            out.push(EventKind::DbStatus {
                database: database.to_string(),
                status: status.to_string(),
            });
        }
        if let Some(writer) = writer {
            let before = self.writer.replace(writer.clone());
            if before.is_some_and(|b| b != writer) {
                out.push(EventKind::DbWriterMoved {
                    to: writer,
                    address,
                    after_ms: None,
                });
            }
        }
        out
    }
}

/// The cache or the broker: stopped when it leaves its serving status
/// (ElastiCache `available`, Amazon MQ `RUNNING`), started when it is back.
#[derive(Debug)]
pub struct ServerTracker {
    role: ServerRole,
    up: Option<bool>,
}

impl ServerTracker {
    pub fn new(role: ServerRole) -> Self {
        Self { role, up: None }
    }

    pub fn observe(&mut self, status: &str) -> Vec<EventKind> {
        let up = matches!(status, "available" | "RUNNING");
        let before = self.up.replace(up);
        match (before, up) {
            (Some(true), false) => vec![EventKind::ServerStopped {
                server: self.role,
                address: None,
            }],
            (Some(false), true) => vec![EventKind::ServerStarted {
                server: self.role,
                address: None,
            }],
            _ => Vec::new(),
        }
    }
}

/// Alarm states. A health alarm's every change (the first state seen
/// included) is an AlarmState event: they are what "how soon the team
/// would have known" is read from. A scaling policy's alarm is no health
/// alarm (a target-tracking AlarmHigh fires on load alone, AlarmLow on an
/// idle group), so it makes no AlarmState; a scale-out alarm going to
/// ALARM is the group's scaling signal.
#[derive(Debug)]
pub struct AlarmTracker {
    group: Option<String>,
    scaling: BTreeSet<String>,
    scale_out: BTreeSet<String>,
    states: BTreeMap<String, String>,
}

impl AlarmTracker {
    /// `scaling`: every alarm of the group's scaling policies; `scale_out`:
    /// those that add capacity.
    pub fn new(
        group: Option<String>,
        scaling: BTreeSet<String>,
        scale_out: BTreeSet<String>,
    ) -> Self {
        Self {
            group,
            scaling,
            scale_out,
            states: BTreeMap::new(),
        }
    }

    pub fn observe(&mut self, alarms: &[AlarmState]) -> Vec<EventKind> {
        let mut out = Vec::new();
        for a in alarms {
            let before = self.states.insert(a.name.clone(), a.state.clone());
            if before.as_deref() == Some(a.state.as_str()) {
                continue;
            }
            let scaling = self.scaling.contains(&a.name) || self.scale_out.contains(&a.name);
            if !scaling {
                out.push(EventKind::AlarmState {
                    alarm: a.name.clone(),
                    state: a.state.clone(),
                    reason: a.reason.clone(),
                });
            }
            if let Some(group) = &self.group
                && before.is_some()
                && a.state == "ALARM"
                && self.scale_out.contains(&a.name)
            {
                out.push(EventKind::ScalingSignal {
                    service: group.clone(),
                    observed_cpu_percent: None,
                    target_cpu_percent: None,
                    replicas: None,
                });
            }
        }
        out
    }
}
