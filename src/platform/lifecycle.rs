//! The one life every platform's shop leads, written once. A back-end
//! plugs in four steps (connect, create, resolve, remove); this module runs
//! them in the same order for every platform and every purpose:
//!
//! 1. connect: clients made, the API answered ([`Backend::connect`]);
//! 2. create the shop when the target lets gameday create it and it is
//!    missing ([`Site::create`]), saying so as `platform.starting`, with the
//!    back-end's progress as `platform.progress` events;
//! 3. resolve what is there into a platform ([`Site::resolve`]); a shop
//!    this created is removed again when that fails;
//! 4. for a run: check the entry URL, start the watchers and wait (at most
//!    [`WATCH_READY`]) until they have seen what is there, then
//!    `platform.ready`.
//!
//! The platform it returns refuses to act for `plan`, and on shutdown stops
//! its watchers and removes what this process created (only that), then
//! says `platform.stopped`. A shop `plan` finds missing is described from
//! the scenario alone ([`Backend::planned`]).
//!
//! Platforms return data; the commands print it: progress comes as events,
//! `up` as an [`UpReport`], `down` as a [`Removed`], `status` as a
//! [`StatusReport`].

use std::{path::PathBuf, sync::Arc, time::Duration};

use async_trait::async_trait;

use super::{
    ADMIN_TOKEN_ENV, Injected, Inventory, Platform, Sample, Support, Target, Undo,
    errors::{Error, Result},
};
use crate::{
    events::{EventKind, EventLog},
    scenario::{Fault, FaultKind},
};

/// How long a run waits for its watchers to have seen what is there.
pub const WATCH_READY: Duration = Duration::from_secs(30);

/// Why a platform is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// A run: the shop is created when the target lets gameday create it
    /// and it is missing, watched, and removed afterwards only if this
    /// created it. A platform that runs processes keeps its files under
    /// `files`.
    Run { files: PathBuf },
    /// `gameday plan`: read only. Nothing is created and every fault is
    /// refused; a shop that is not there yet is described from the
    /// scenario.
    Plan,
    /// `gameday inject`, `gameday status`: the shop that is there, without
    /// watchers.
    Inject,
}

/// What picks and drives one kind of platform: `select` makes one from a
/// scenario's `target`.
/// What `run`, `inject` and `up` show before they act: the account or
/// cluster and what is hit; `ask` false for a stand-in on loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    pub text: String,
    pub ask: bool,
}

#[async_trait]
pub trait Backend: Send + Sync {
    /// `local`, `kubernetes` or `aws`.
    fn name(&self) -> &'static str;
    /// Whether the target's platform can perform `fault`, from the scenario
    /// alone (`validate` and `plan` ask before anything runs).
    fn supports(&self, fault: &Fault) -> Support;
    /// What `fault` does here, in words, for `plan`.
    fn describe(&self, fault: &Fault) -> String;
    /// Checks what this machine needs (the local platform's servers and the
    /// shop's binaries).
    fn preflight(&self) -> Result<()> {
        Ok(())
    }
    /// Whether gameday creates the shop when it is missing and removes what
    /// it created (a named stack, `deploy: true`, the local platform).
    fn creates(&self) -> bool;
    /// What a person must confirm before this process acts on a real cloud
    /// or cluster (a stand-in on loopback is named without a question);
    /// None when nothing needs confirming (this machine).
    async fn confirmation(&self) -> Result<Option<Confirmation>> {
        Ok(None)
    }
    /// What an interrupted start may leave behind, and how to remove it.
    fn left_behind(&self) -> Option<String> {
        None
    }
    /// The shop a run would create, as `plan` shows it before it exists.
    fn planned(&self) -> Planned {
        Planned::default()
    }
    /// What a fault of this kind would pick from at the start of a run,
    /// when the scenario alone tells (None: only the real shop can).
    fn planned_candidates(&self, _fault: &FaultKind) -> Option<Vec<Target>> {
        None
    }
    /// Step 1: clients made and the API answered.
    async fn connect(&self, purpose: &Purpose) -> Result<Box<dyn Site>>;

    /// `gameday up`: creates the shop (when missing) and says where it is.
    async fn up(&self, events: Arc<EventLog>, _options: UpOptions) -> Result<Up> {
        Ok(Up::Report(up(self, &events).await?))
    }
    /// `gameday down`: removes what `up` created.
    async fn down(&self, events: Arc<EventLog>) -> Result<Removed> {
        down(self, &events).await
    }
    /// `gameday status`: what runs where, or None when the shop is not there.
    async fn status(&self) -> Result<Option<StatusReport>> {
        status(self).await
    }
    /// Where `gameday inject` sends a fault.
    async fn injector(&self) -> Result<Injector> {
        let site = self.connect(&Purpose::Inject).await?;
        let events = Arc::new(EventLog::new(None)?);
        let shop = site.resolve(&Purpose::Inject, events).await?;
        Ok(Injector::Here(shop))
    }
}

/// A connected back-end: where the shop lives.
#[async_trait]
pub trait Site: Send + Sync {
    /// Where the shop is, for events and messages: `stack shop on AWS in
    /// region us-east-1`, `namespace shop on context kind (https://…)`.
    fn place(&self) -> String;
    /// Whether the shop is there now.
    async fn exists(&self) -> Result<bool>;
    /// Whether a run applies the shop again when it is there (Kubernetes'
    /// server-side apply makes the scenario's replicas and image true).
    fn refreshes(&self) -> bool {
        false
    }
    /// Step 2: creates the shop and waits until it is up, with progress as
    /// `platform.progress` events.
    async fn create(&self, events: &Arc<EventLog>) -> Result<()>;
    /// Step 3: the shop that is there, as a platform, for `purpose`.
    async fn resolve(&self, purpose: &Purpose, events: Arc<EventLog>) -> Result<Box<dyn Shop>>;
    /// Removes the shop and waits until it is gone, with progress as
    /// events.
    async fn remove(&self, events: &EventLog) -> Result<Removed>;
}

/// A shop its back-end resolved: a platform, and what watches it.
#[async_trait]
pub trait Shop: Platform {
    /// Starts what turns the platform's changes into the run's events.
    async fn watch(&self) -> Option<Box<dyn Watchers>> {
        None
    }
}

/// What turns a platform's changes into the run's events.
#[async_trait]
pub trait Watchers: Send + Sync {
    /// Waits until every watcher has seen what is there (listed or polled
    /// once); false if that did not happen within `within`.
    async fn ready(&mut self, within: Duration) -> bool;
    /// Stops every watcher and waits for them to end.
    async fn stop(self: Box<Self>);
}

/// The shop a run would create, as `plan` describes it before it exists.
#[derive(Debug, Clone, Default)]
pub struct Planned {
    /// Where shoppers will enter, in words.
    pub entry_url: String,
    /// What the run will start, when the scenario alone tells (the local
    /// platform's processes); None when only the real thing can.
    pub inventory: Option<Inventory>,
}

/// `gameday up` options.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    pub scenario: Option<PathBuf>,
    pub detach: bool,
    pub run_dir: Option<PathBuf>,
    /// This process is the detached supervisor.
    pub supervise: bool,
}

/// What `gameday up` did.
#[derive(Debug, Clone)]
pub struct UpReport {
    /// Where the shop is.
    pub place: String,
    /// This created it (false: it was there).
    pub created: bool,
    pub entry_url: String,
    /// More for a person: the Auto Scaling group, the files, a pid.
    pub notes: Vec<String>,
    /// How to remove it again.
    pub remove_with: String,
}

/// What `up` left: a shop reported and left running, or one this process
/// keeps (the local stack's supervisor) until told to stop.
pub enum Up {
    Report(UpReport),
    Kept(Box<dyn Kept>),
}

/// A shop this process keeps until Ctrl-C, SIGTERM or `gameday down`, and
/// serves `gameday inject` for.
#[async_trait]
pub trait Kept: Send {
    fn report(&self) -> UpReport;
    fn platform(&self) -> &dyn Platform;
    fn events(&self) -> &EventLog;
    /// The faults `gameday inject` sends (taken once).
    fn take_requests(&mut self) -> Option<tokio::sync::mpsc::Receiver<super::FaultRequest>>;
    /// Cancelled when the shop must stop.
    fn stopping(&self) -> tokio_util::sync::CancellationToken;
    /// Stops serving and stops the shop; what stopped it.
    async fn finish(self: Box<Self>) -> StopCause;
}

/// What stopped a kept shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// Ctrl-C.
    Interrupted,
    /// SIGTERM or `gameday down`.
    Terminated,
    /// Its control socket failed.
    Failed,
}

/// What `gameday down` (or the end of a run) removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// What it was, in short: `stack shop`, `namespace x`, `the local stack`.
    pub what: String,
    /// Where it was (`on AWS in region us-east-1`, `on context kind (…)`).
    pub place: String,
    /// False when there was nothing to remove.
    pub existed: bool,
    /// More for a person (processes a dead supervisor left, killed).
    pub notes: Vec<String>,
}

/// What `gameday status` shows: a heading and what runs where.
pub struct StatusReport {
    pub heading: String,
    pub inventory: Inventory,
}

/// Where `gameday inject` sends a fault.
pub enum Injector {
    /// A process that keeps the shop (the local stack's supervisor) applies
    /// it, and undoes it after its duration.
    Remote(Box<dyn RemoteInjector>),
    /// This process applies it, holds it for its duration and undoes it.
    Here(Box<dyn Platform>),
}

#[async_trait]
pub trait RemoteInjector: Send + Sync {
    async fn inject(&self, fault: &Fault) -> Result<Injected>;
}

/// The shop's admin token from the environment (one place reads it).
pub fn admin_token_from_env() -> Option<String> {
    std::env::var(ADMIN_TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty())
}

/// Opens the platform for `purpose`: steps 1 to 4 of this module.
pub async fn open(
    backend: Arc<dyn Backend>,
    purpose: Purpose,
    events: Arc<EventLog>,
) -> Result<Box<dyn Platform>> {
    let site = backend.connect(&purpose).await?;
    open_at(backend, site, purpose, events).await
}

/// [`open`] with a site already connected (tests bring their own clients).
pub async fn open_at(
    backend: Arc<dyn Backend>,
    site: Box<dyn Site>,
    purpose: Purpose,
    events: Arc<EventLog>,
) -> Result<Box<dyn Platform>> {
    let exists = site.exists().await?;
    if purpose == Purpose::Plan {
        if !exists && backend.creates() {
            return Ok(Box::new(NotYet {
                planned: backend.planned(),
                backend,
                place: site.place(),
            }));
        }
        let shop = site.resolve(&purpose, events.clone()).await?;
        return Ok(Box::new(Opened::new(shop, site, purpose, false, events)));
    }
    if purpose == Purpose::Inject {
        let shop = site.resolve(&purpose, events.clone()).await?;
        return Ok(Box::new(Opened::new(shop, site, purpose, false, events)));
    }
    let created = start(&*backend, &*site, exists, &events).await?;
    let shop = match site.resolve(&purpose, events.clone()).await {
        Ok(shop) => shop,
        Err(e) => return Err(undo_start(&*site, created, e, &events).await),
    };
    if shop.entry_url().is_empty() {
        let e = Error::refused(
            "target.entry-url",
            format!(
                "not set, and {} names no entry for shoppers: set the shop's URL",
                site.place()
            ),
        );
        shop.shutdown().await;
        return Err(undo_start(&*site, created, e, &events).await);
    }
    let mut opened = Opened::new(shop, site, purpose, created, events.clone());
    opened.watch().await;
    events.emit(EventKind::PlatformReady {
        entry_url: opened.shop.entry_url().to_string(),
    });
    Ok(Box::new(opened))
}

/// Step 2 of a run: says what it does, and creates the shop when the
/// target lets it and it is missing. True when this created it.
async fn start(
    backend: &dyn Backend,
    site: &dyn Site,
    exists: bool,
    events: &Arc<EventLog>,
) -> Result<bool> {
    let creates = backend.creates() && (!exists || site.refreshes());
    let doing = match (creates, exists) {
        (true, false) => "creating",
        (true, true) => "applying",
        (false, _) => "attaching to",
    };
    events.emit(EventKind::PlatformStarting {
        detail: Some(format!("{}: {doing} {}", backend.name(), site.place())),
    });
    if !creates {
        return Ok(false);
    }
    match site.create(events).await {
        Ok(()) => Ok(!exists),
        Err(e) => Err(undo_start(site, !exists, e, events).await),
    }
}

/// A start that failed: what it created, if anything is there, is removed
/// again (problems with that are said as progress; the first error is what
/// is returned).
async fn undo_start(site: &dyn Site, created: bool, error: Error, events: &EventLog) -> Error {
    if created && site.exists().await.unwrap_or(true) {
        progress(events, format!("{error}"));
        if let Err(e) = site.remove(events).await {
            progress(
                events,
                format!("{e}; it may be left: `gameday down --scenario FILE` removes it"),
            );
        }
    }
    error
}

/// A line for a person watching a long step.
pub fn progress(events: &EventLog, detail: String) {
    events.emit(EventKind::PlatformProgress { detail });
}

/// `gameday up` on a back-end that leaves the shop running.
pub async fn up<B: Backend + ?Sized>(backend: &B, events: &Arc<EventLog>) -> Result<UpReport> {
    if !backend.creates() {
        return Err(Error::refused(
            "gameday up",
            "the target does not let gameday create the shop (it attaches to what is there)",
        ));
    }
    let site = backend.connect(&Purpose::Inject).await?;
    up_at(&*site, events).await
}

/// [`up`] at a connected site.
pub async fn up_at(site: &dyn Site, events: &Arc<EventLog>) -> Result<UpReport> {
    let exists = site.exists().await?;
    if (!exists || site.refreshes())
        && let Err(e) = site.create(events).await
    {
        return Err(undo_start(site, !exists, e, events).await);
    }
    let shop = site
        .resolve(&Purpose::Inject, Arc::new(EventLog::new(None)?))
        .await?;
    let inventory = shop.inventory().await.ok();
    let report = UpReport {
        place: site.place(),
        created: !exists,
        entry_url: shop.entry_url().to_string(),
        notes: inventory
            .map(|i| {
                vec![format!(
                    "{} instances, {} replicas",
                    i.instances.len(),
                    i.replicas.len()
                )]
            })
            .unwrap_or_default(),
        remove_with: "`gameday down --scenario FILE` removes it and everything it created".into(),
    };
    shop.shutdown().await;
    Ok(report)
}

/// `gameday down` on a back-end that removes what `up` created.
pub async fn down<B: Backend + ?Sized>(backend: &B, events: &EventLog) -> Result<Removed> {
    if !backend.creates() {
        return Err(Error::refused(
            "gameday down",
            "the target does not let gameday create or remove the shop (it attaches to what \
             is there)",
        ));
    }
    let site = backend.connect(&Purpose::Inject).await?;
    site.remove(events).await
}

/// `gameday status` on a back-end whose shop is somewhere else.
pub async fn status<B: Backend + ?Sized>(backend: &B) -> Result<Option<StatusReport>> {
    let site = backend.connect(&Purpose::Inject).await?;
    status_at(&*site).await
}

/// [`status`] at a connected site.
pub async fn status_at(site: &dyn Site) -> Result<Option<StatusReport>> {
    if !site.exists().await? {
        return Ok(None);
    }
    let shop = site
        .resolve(&Purpose::Inject, Arc::new(EventLog::new(None)?))
        .await?;
    let mut inventory = shop.inventory().await?;
    inventory.admin_token = admin_token_from_env().or(inventory.admin_token);
    let report = StatusReport {
        heading: site.place(),
        inventory,
    };
    shop.shutdown().await;
    Ok(Some(report))
}

/// A shop opened by [`open`]: the back-end's platform, what this process
/// did to have it, and its watchers.
struct Opened {
    shop: Box<dyn Shop>,
    site: Box<dyn Site>,
    purpose: Purpose,
    created: bool,
    watchers: Option<Box<dyn Watchers>>,
    events: Arc<EventLog>,
    admin_token: Option<String>,
}

impl Opened {
    fn new(
        shop: Box<dyn Shop>,
        site: Box<dyn Site>,
        purpose: Purpose,
        created: bool,
        events: Arc<EventLog>,
    ) -> Self {
        let admin_token = admin_token_from_env().or_else(|| shop.admin_token().map(String::from));
        Self {
            shop,
            site,
            purpose,
            created,
            watchers: None,
            events,
            admin_token,
        }
    }

    async fn watch(&mut self) {
        let Some(mut watchers) = self.shop.watch().await else {
            return;
        };
        if !watchers.ready(WATCH_READY).await {
            progress(
                &self.events,
                format!(
                    "the platform's watchers have not seen everything after {} s; going on",
                    WATCH_READY.as_secs()
                ),
            );
        }
        self.watchers = Some(watchers);
    }

    fn refuse_plan(&self, fault: &Fault) -> Result<()> {
        if self.purpose == Purpose::Plan {
            return Err(Error::refused(
                fault.kind.key(),
                "this is `plan`: it acts on nothing",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Platform for Opened {
    fn name(&self) -> &'static str {
        self.shop.name()
    }

    fn entry_url(&self) -> &str {
        self.shop.entry_url()
    }

    fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    fn supports(&self, fault: &Fault) -> Support {
        self.shop.supports(fault)
    }

    fn describe(&self, fault: &Fault) -> String {
        self.shop.describe(fault)
    }

    async fn inventory(&self) -> Result<Inventory> {
        let mut inventory = self.shop.inventory().await?;
        inventory.admin_token = self.admin_token.clone();
        Ok(inventory)
    }

    async fn candidates(&self, fault: &FaultKind) -> Result<Vec<Target>> {
        self.shop.candidates(fault).await
    }

    async fn undo_for(&self, fault: &Fault, targets: &[Target]) -> Option<Undo> {
        self.shop.undo_for(fault, targets).await
    }

    async fn dry_run(&self, fault: &Fault, targets: &[Target]) -> Result<()> {
        self.shop.dry_run(fault, targets).await
    }

    async fn inject(&self, fault: &Fault, targets: &[Target]) -> Result<()> {
        self.refuse_plan(fault)?;
        if let Support::No { why } = self.shop.supports(fault) {
            return Err(Error::refused(fault.kind.key(), why));
        }
        self.shop.inject(fault, targets).await
    }

    async fn undo(&self, undo: &Undo) -> Result<()> {
        self.shop.undo(undo).await
    }

    async fn sample(&self) -> Sample {
        self.shop.sample().await
    }

    async fn shutdown(self: Box<Self>) {
        let Opened {
            shop,
            site,
            purpose,
            created,
            watchers,
            events,
            ..
        } = *self;
        if let Some(w) = watchers {
            w.stop().await;
        }
        shop.shutdown().await;
        if created && let Err(e) = site.remove(&events).await {
            progress(
                &events,
                format!("{e}; it may be left: `gameday down --scenario FILE` removes it"),
            );
        }
        if purpose != Purpose::Plan {
            events.emit(EventKind::PlatformStopped {});
        }
    }
}

/// The shop as `plan` sees it before a run has created it: described from
/// the scenario; what only the real thing can tell is refused with why.
struct NotYet {
    backend: Arc<dyn Backend>,
    place: String,
    planned: Planned,
}

impl NotYet {
    fn unknown(&self, what: &str) -> Error {
        Error::refused(
            what,
            format!(
                "{} does not exist yet: a run creates it first, and what it runs is known only then",
                self.place
            ),
        )
    }
}

#[async_trait]
impl Platform for NotYet {
    fn name(&self) -> &'static str {
        self.backend.name()
    }

    fn entry_url(&self) -> &str {
        &self.planned.entry_url
    }

    fn admin_token(&self) -> Option<&str> {
        None
    }

    fn supports(&self, fault: &Fault) -> Support {
        self.backend.supports(fault)
    }

    fn describe(&self, fault: &Fault) -> String {
        self.backend.describe(fault)
    }

    async fn inventory(&self) -> Result<Inventory> {
        self.planned
            .inventory
            .clone()
            .ok_or_else(|| self.unknown("what runs where"))
    }

    async fn candidates(&self, fault: &FaultKind) -> Result<Vec<Target>> {
        self.backend
            .planned_candidates(fault)
            .ok_or_else(|| self.unknown(fault.key()))
    }

    async fn undo_for(&self, _fault: &Fault, _targets: &[Target]) -> Option<Undo> {
        None
    }

    async fn dry_run(&self, fault: &Fault, _targets: &[Target]) -> Result<()> {
        match self.backend.planned_candidates(&fault.kind) {
            Some(_) => Ok(()),
            None => Err(self.unknown(fault.kind.key())),
        }
    }

    async fn inject(&self, fault: &Fault, _targets: &[Target]) -> Result<()> {
        Err(Error::refused(
            fault.kind.key(),
            "this is `plan`: it acts on nothing",
        ))
    }

    async fn undo(&self, undo: &Undo) -> Result<()> {
        Err(Error::refused(
            format!("undo ({})", undo.describe()),
            "this is `plan`: it acts on nothing",
        ))
    }

    async fn shutdown(self: Box<Self>) {}
}
