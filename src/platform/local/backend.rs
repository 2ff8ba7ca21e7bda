//! The local platform as the lifecycle sees it: a run creates a whole stack
//! on this machine and removes it at its end; `plan` describes the stack a
//! run would start from the topology alone. `up` keeps a stack in this
//! process (or a detached supervisor process), and `down`, `status` and
//! `inject` reach that stack from any shell through its state file and
//! control socket.

use std::{path::PathBuf, sync::Arc};

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::{LocalPlatform, control, describe, plan, preflight, stacks, supervisor, supports};
use crate::{
    events::EventLog,
    platform::{
        Injected, Injector, Planned, Purpose, Removed, Result, StatusReport, Support, Target, Up,
        UpOptions,
        lifecycle::{Backend, RemoteInjector, Shop, Site},
    },
    scenario::{Fault, FaultKind, Topology},
};

/// The local platform for a scenario's topology.
pub struct LocalBackend {
    topology: Topology,
}

impl LocalBackend {
    pub fn new(topology: Topology) -> Self {
        Self { topology }
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    fn supports(&self, fault: &Fault) -> Support {
        supports(&self.topology, fault)
    }

    fn describe(&self, fault: &Fault) -> String {
        describe(&self.topology, fault)
    }

    fn preflight(&self) -> Result<()> {
        preflight()?;
        if !self.topology.links.is_empty() {
            super::toxiproxy::binary()?;
        }
        Ok(())
    }

    fn creates(&self) -> bool {
        true
    }

    fn planned(&self) -> Planned {
        plan::planned(&self.topology)
    }

    fn planned_candidates(&self, fault: &FaultKind) -> Option<Vec<Target>> {
        Some(plan::candidates(&self.topology, fault))
    }

    async fn connect(&self, purpose: &Purpose) -> Result<Box<dyn Site>> {
        let files = match purpose {
            Purpose::Run { files } => Some(files.clone()),
            Purpose::Plan | Purpose::Inject => None,
        };
        Ok(Box::new(LocalSite {
            topology: self.topology.clone(),
            files,
            started: Mutex::new(None),
        }))
    }

    async fn up(&self, _events: Arc<EventLog>, options: UpOptions) -> Result<Up> {
        if !options.supervise {
            supervisor::refuse_second()?;
        }
        let run_dir = options.run_dir.unwrap_or_else(stacks::new_run_dir);
        // Servers resolve relative paths against their own directories.
        let run_dir = std::path::absolute(&run_dir).map_err(|e| super::Error::io(&run_dir, e))?;
        if options.detach && !options.supervise {
            let report = supervisor::detach(options.scenario.as_deref(), &run_dir).await?;
            return Ok(Up::Report(report));
        }
        let backend = LocalBackend::new(self.topology.clone());
        match supervisor::start(backend, run_dir).await? {
            Some(kept) => Ok(Up::Kept(Box::new(kept))),
            None => Err(crate::platform::Error::refused(
                "gameday up",
                "interrupted while starting; everything started was stopped",
            )),
        }
    }

    async fn down(&self, _events: Arc<EventLog>) -> Result<Removed> {
        Ok(supervisor::down().await?)
    }

    async fn status(&self) -> Result<Option<StatusReport>> {
        Ok(supervisor::status()?)
    }

    async fn injector(&self) -> Result<Injector> {
        Ok(Injector::Remote(Box::new(ControlSocket)))
    }
}

/// A local stack a run creates: started by `create`, handed over by
/// `resolve`, stopped by its own shutdown.
struct LocalSite {
    topology: Topology,
    files: Option<PathBuf>,
    started: Mutex<Option<LocalPlatform>>,
}

#[async_trait]
impl Site for LocalSite {
    fn place(&self) -> String {
        match &self.files {
            Some(dir) => format!(
                "the shop on this machine ({} instances, files in {})",
                self.topology.instances,
                dir.display()
            ),
            None => format!(
                "the shop on this machine ({} instances)",
                self.topology.instances
            ),
        }
    }

    /// A run always starts a stack of its own.
    async fn exists(&self) -> Result<bool> {
        Ok(false)
    }

    async fn create(&self, events: &Arc<EventLog>) -> Result<()> {
        let Some(dir) = &self.files else {
            return Err(crate::platform::Error::refused(
                "the local platform",
                "only a run starts a stack",
            ));
        };
        let platform = LocalPlatform::start(dir, self.topology.clone(), events.clone()).await?;
        *self.started.lock().await = Some(platform);
        Ok(())
    }

    async fn resolve(&self, _purpose: &Purpose, _events: Arc<EventLog>) -> Result<Box<dyn Shop>> {
        match self.started.lock().await.take() {
            Some(platform) => Ok(Box::new(platform)),
            None => Err(crate::platform::Error::refused(
                "the local platform",
                "not started: run `gameday up` or `gameday run`",
            )),
        }
    }

    /// The stack's own shutdown stopped every process.
    async fn remove(&self, _events: &EventLog) -> Result<Removed> {
        Ok(Removed {
            what: "the local stack".into(),
            place: "on this machine".into(),
            existed: true,
            notes: Vec::new(),
        })
    }
}

/// The control socket of the stack `gameday up` started.
struct ControlSocket;

#[async_trait]
impl RemoteInjector for ControlSocket {
    async fn inject(&self, fault: &Fault) -> Result<Injected> {
        Ok(control::send(fault).await?)
    }
}
