//! The managed services as the run's events: the database's status and
//! writer, the cache's and the broker's availability, and the alarms'
//! states (a scaling alarm firing is the group's scaling signal).

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    events::{EventKind, ServerRole},
    platform::aws::{
        alarms::AlarmState,
        rds::{DbClusterInfo, DbInstanceInfo},
    },
};

/// An RDS instance or Aurora cluster: its status (DbStatus, the first one
/// included) and where writes go (DbWriterMoved: the Aurora writer, or the
/// availability zone of a Multi-AZ instance's primary).
#[derive(Debug, Default)]
pub struct DatabaseTracker {
    status: Option<String>,
    writer: Option<String>,
}

impl DatabaseTracker {
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

/// Alarm states: every change (the first state seen included) is an
/// AlarmState event; a scale-out alarm going to ALARM is also the group's
/// scaling signal.
#[derive(Debug)]
pub struct AlarmTracker {
    group: Option<String>,
    scale_out: BTreeSet<String>,
    states: BTreeMap<String, String>,
}

impl AlarmTracker {
    pub fn new(group: Option<String>, scale_out: BTreeSet<String>) -> Self {
        Self {
            group,
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
            out.push(EventKind::AlarmState {
                alarm: a.name.clone(),
                state: a.state.clone(),
                reason: a.reason.clone(),
            });
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
