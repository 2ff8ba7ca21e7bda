//! A platform for tests of the engine without servers: it records every call
//! and fails on command. Candidates are whatever the test set for a fault
//! kind; a lasting cache or broker fault has a start-again undo, as on the
//! real platforms.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Mutex,
        atomic::{AtomicU32, Ordering},
    },
};

use async_trait::async_trait;

use super::{Error, Inventory, Platform, ReplicaInfo, Result, Support, Target, TargetKind, Undo};
use crate::scenario::{Fault, FaultKind};

/// One call the engine made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Candidates(String),
    DryRun { kind: String, targets: Vec<String> },
    Inject { kind: String, targets: Vec<String> },
    Undo(Undo),
    Shutdown,
}

#[derive(Default)]
pub struct FakePlatform {
    calls: Mutex<Vec<Call>>,
    candidates: Mutex<BTreeMap<String, Vec<Target>>>,
    failing_injects: Mutex<BTreeSet<String>>,
    unsupported: Mutex<BTreeMap<String, String>>,
    /// Undo attempts still to fail.
    failing_undos: AtomicU32,
    /// How long an inject of a kind takes (a drain waiting on a PDB).
    slow_injects: Mutex<BTreeMap<String, std::time::Duration>>,
}

impl FakePlatform {
    pub fn new() -> Self {
        Self::default()
    }

    /// Candidates for a fault kind (`kill-pod`, ...).
    pub fn with_candidates(self, kind: &str, targets: Vec<Target>) -> Self {
        if let Ok(mut c) = self.candidates.lock() {
            c.insert(kind.to_string(), targets);
        }
        self
    }

    /// `n` replicas of `service` named `<service>-1`...
    pub fn with_replicas(self, service: &str, n: usize) -> Self {
        let targets = (1..=n)
            .map(|i| Target::new(TargetKind::Replica, format!("{service}-{i}")).service(service))
            .collect();
        self.with_candidates("kill-pod", targets)
    }

    /// Makes every inject of this kind fail.
    pub fn failing_inject(self, kind: &str) -> Self {
        if let Ok(mut f) = self.failing_injects.lock() {
            f.insert(kind.to_string());
        }
        self
    }

    /// Makes every inject of this kind take `delay`.
    pub fn slow_inject(self, kind: &str, delay: std::time::Duration) -> Self {
        if let Ok(mut s) = self.slow_injects.lock() {
            s.insert(kind.to_string(), delay);
        }
        self
    }

    /// Makes the next `n` undo attempts fail.
    pub fn failing_undos(self, n: u32) -> Self {
        self.failing_undos.store(n, Ordering::SeqCst);
        self
    }

    /// Makes `supports` answer no for this kind.
    pub fn unsupported(self, kind: &str, why: &str) -> Self {
        if let Ok(mut u) = self.unsupported.lock() {
            u.insert(kind.to_string(), why.to_string());
        }
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn record(&self, call: Call) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(call);
        }
    }

    fn ids(targets: &[Target]) -> Vec<String> {
        targets.iter().map(|t| t.id.clone()).collect()
    }
}

fn server_target(kind: &FaultKind) -> Option<Target> {
    match kind {
        FaultKind::RestartCache { .. } => Some(Target::new(TargetKind::Cache, "cache")),
        FaultKind::RestartBroker => Some(Target::new(TargetKind::Broker, "broker")),
        FaultKind::DbFailover { .. } => Some(Target::new(TargetKind::Database, "db-primary")),
        _ => None,
    }
}

#[async_trait]
impl Platform for FakePlatform {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn entry_url(&self) -> &str {
        "http://fake.invalid"
    }

    fn admin_token(&self) -> Option<&str> {
        None
    }

    fn supports(&self, fault: &Fault) -> Support {
        match self
            .unsupported
            .lock()
            .ok()
            .and_then(|u| u.get(fault.kind.key()).cloned())
        {
            Some(why) => Support::No { why },
            None => Support::Yes,
        }
    }

    fn describe(&self, fault: &Fault) -> String {
        format!("pretend to {}", fault.kind.key())
    }

    async fn inventory(&self) -> Result<Inventory> {
        let replicas = self
            .candidates
            .lock()
            .map(|c| c.get("kill-pod").cloned().unwrap_or_default())
            .unwrap_or_default()
            .into_iter()
            .map(|t| ReplicaInfo {
                service: t.service.clone().unwrap_or_default(),
                name: t.id,
                instance: t.on,
                url: None,
                ready: true,
                serving: true,
                usage: None,
                details: BTreeMap::new(),
            })
            .collect();
        Ok(Inventory {
            platform: "fake".into(),
            entry_url: self.entry_url().into(),
            replicas,
            ..Inventory::default()
        })
    }

    async fn candidates(&self, fault: &FaultKind) -> Result<Vec<Target>> {
        self.record(Call::Candidates(fault.key().into()));
        let set = self
            .candidates
            .lock()
            .ok()
            .and_then(|c| c.get(fault.key()).cloned());
        Ok(set.unwrap_or_else(|| server_target(fault).into_iter().collect()))
    }

    async fn undo_for(&self, fault: &Fault, targets: &[Target]) -> Option<Undo> {
        match (&fault.kind, fault.duration) {
            (FaultKind::RestartCache { .. } | FaultKind::RestartBroker, Some(_)) => {
                targets.first().cloned().map(Undo::Start)
            }
            _ => None,
        }
    }

    async fn dry_run(&self, fault: &Fault, targets: &[Target]) -> Result<()> {
        self.record(Call::DryRun {
            kind: fault.kind.key().into(),
            targets: Self::ids(targets),
        });
        Ok(())
    }

    async fn inject(&self, fault: &Fault, targets: &[Target]) -> Result<()> {
        self.record(Call::Inject {
            kind: fault.kind.key().into(),
            targets: Self::ids(targets),
        });
        let delay = self
            .slow_injects
            .lock()
            .ok()
            .and_then(|s| s.get(fault.kind.key()).copied());
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let fails = self
            .failing_injects
            .lock()
            .is_ok_and(|f| f.contains(fault.kind.key()));
        if fails {
            return Err(Error::refused(
                fault.kind.key(),
                "the fake platform was told to fail",
            ));
        }
        Ok(())
    }

    async fn undo(&self, undo: &Undo) -> Result<()> {
        self.record(Call::Undo(undo.clone()));
        let left = self.failing_undos.load(Ordering::SeqCst);
        if left > 0 {
            self.failing_undos.store(left - 1, Ordering::SeqCst);
            return Err(Error::refused("undo", "the fake platform was told to fail"));
        }
        Ok(())
    }

    async fn shutdown(self: Box<Self>) {
        self.record(Call::Shutdown);
    }
}
