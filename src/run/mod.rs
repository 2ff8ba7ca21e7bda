//! A run, as a library type. [`Runner::run`] goes through the phases of
//! DESIGN.md section 1, whatever the platform:
//!
//! 1. prepare: the run directory, the event log, the platform deployed (or
//!    attached to), the shop reset and the shopper accounts created;
//! 2. load and chaos: goose's shoppers, the fault schedule, the prober and
//!    the once-a-second collector (timeline, stop rules, self-monitor);
//! 3. drain and audit: every fault still active undone, the orders audited;
//! 4. teardown: the platform removes what it deployed;
//! 5. judge and report: `run.json`, then `summary.json`, `junit.xml` and
//!    `report.html` from the run directory alone.

mod accounts;
pub mod collector;
mod cost;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, atomic::AtomicUsize},
    time::{Duration, Instant, SystemTime},
};

use tokio_util::sync::CancellationToken;

pub use collector::Collector;

use crate::{
    chaos,
    errors::{Error, Result},
    events::{EventKind, EventLog},
    load::{self, LoadContext, Step, monitor::Health},
    observe::{audit, prober::Prober},
    platform::{self, Platform, Purpose},
    record::{Recorder, TimelineWriter},
    report::{self, LoadGenerator, RunInfo, Summary, summary::LoadEnd},
    scenario::{Journey, Scenario, StopRule},
    shop,
};

/// How a run ended, for the command line.
pub struct Outcome {
    pub summary: Summary,
    pub run_dir: PathBuf,
    /// Ctrl-C or SIGTERM stopped it.
    pub interrupted: bool,
}

pub struct Runner {
    scenario: Scenario,
    run_dir: PathBuf,
    events: Arc<EventLog>,
}

/// What the load phase left.
struct Loaded {
    health: Health,
    fired: Option<(u64, StopRule)>,
    load_started_s: u64,
    acknowledged: Vec<String>,
    error: Option<Error>,
}

/// What the run did while the platform was up: its plan, the load, and
/// the order audit.
struct Ran {
    plan_text: String,
    loaded: Loaded,
    orders: Option<audit::Orders>,
    not_audited: Option<String>,
}

impl Runner {
    /// A run of `scenario` (read from `file`), writing to `output` or to
    /// `<report.dir>/<scenario>-<timestamp>/`.
    pub fn new(scenario: Scenario, file: &Path, output: Option<PathBuf>) -> Result<Self> {
        let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
        let run_dir = output.unwrap_or_else(|| {
            scenario
                .report_dir
                .join(format!("{}-{stamp}", scenario.name))
        });
        std::fs::create_dir_all(&run_dir).map_err(|e| Error::io(&run_dir, e))?;
        // Servers resolve relative paths against their own directories.
        let run_dir = std::path::absolute(&run_dir).map_err(|e| Error::io(&run_dir, e))?;
        let copy = run_dir.join("scenario.yaml");
        std::fs::copy(file, &copy).map_err(|e| Error::io(&copy, e))?;
        let events = Arc::new(EventLog::new(Some(&run_dir.join("events.jsonl")))?);
        Ok(Self {
            scenario,
            run_dir,
            events,
        })
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The run's events as they happen (the command shows the platform's
    /// progress from them).
    pub fn events(&self) -> &Arc<EventLog> {
        &self.events
    }

    /// Runs every phase; `stop` is cancelled by Ctrl-C or SIGTERM and
    /// `interrupted` tells which stop it was.
    pub async fn run(
        self,
        stop: CancellationToken,
        interrupted: CancellationToken,
    ) -> Result<Outcome> {
        let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        // 1. prepare
        let platform = self.open_platform(&stop).await?;
        // 2. and 3., then 4. teardown on every way out
        let ran = self.with_platform(&*platform, &stop, &interrupted).await;
        platform.shutdown().await;
        // 5. judge and report
        self.judge_and_report(started_at, ran?, &interrupted)
    }

    /// Deploys (or attaches to) the shop, unless stopped first.
    async fn open_platform(&self, stop: &CancellationToken) -> Result<Box<dyn Platform>> {
        let spec = &self.scenario.target;
        let purpose = Purpose::Run {
            files: self.run_dir.join("platform"),
        };
        tokio::select! {
            p = platform::open(spec, purpose, self.events.clone()) => Ok(p?),
            _ = stop.cancelled() => {
                let left = platform::backend(spec)
                    .left_behind()
                    .map(|l| format!("; {l}"))
                    .unwrap_or_default();
                Err(Error::Interrupted(format!(
                    "while starting the shop; everything started was stopped{left}"
                )))
            }
        }
    }

    /// The plan, the shop prepared, load and chaos, the order audit.
    async fn with_platform(
        &self,
        platform: &dyn Platform,
        stop: &CancellationToken,
        interrupted: &CancellationToken,
    ) -> Result<Ran> {
        let scenario = &self.scenario;
        let plan_text = crate::plan::render_in(scenario, platform, Some(&self.run_dir)).await;
        let plan_path = self.run_dir.join("plan.txt");
        std::fs::write(&plan_path, &plan_text).map_err(|e| Error::io(&plan_path, e))?;
        let accounts = prepare_shop(scenario, platform).await?;
        let loaded = load_and_chaos(
            scenario,
            platform,
            &self.events,
            &self.run_dir,
            accounts,
            stop,
        )
        .await?;
        if let Some(e) = loaded.error {
            return Err(e);
        }
        let (orders, not_audited) = if interrupted.is_cancelled() {
            (None, Some("the run was interrupted".to_string()))
        } else {
            audit_orders(platform, &loaded.acknowledged).await?
        };
        Ok(Ran {
            plan_text,
            loaded: Loaded {
                error: None,
                ..loaded
            },
            orders,
            not_audited,
        })
    }

    /// `run.json`, then the reports from the run directory alone.
    fn judge_and_report(
        self,
        started_at: String,
        ran: Ran,
        interrupted: &CancellationToken,
    ) -> Result<Outcome> {
        let Ran {
            plan_text,
            loaded,
            orders,
            not_audited,
        } = ran;
        let health = loaded.health;
        let info = RunInfo {
            format: crate::record::FORMAT,
            platform: Some(self.scenario.target.name().into()),
            load_started_s: loaded.load_started_s,
            started_at,
            duration_s: self.events.origin().elapsed().as_secs_f64(),
            orders,
            not_audited,
            load_generator: LoadGenerator {
                cpu_percent_max: Some(health.cpu_percent_max),
                saturated: Some(health.saturated),
                lag_ms_p99: Some(health.lag_ms_p99),
            },
            finished: true,
            cores: std::thread::available_parallelism()
                .ok()
                .map(|n| n.get() as u32),
            load_ended: Some(if interrupted.is_cancelled() {
                LoadEnd::Interrupted
            } else if loaded.fired.is_some() {
                LoadEnd::StopRule
            } else {
                LoadEnd::Plan
            }),
            aborted_by: loaded.fired.map(|(t, rule)| {
                format!(
                    "{} (fired {} s after the load started)",
                    rule.text,
                    t.saturating_sub(loaded.load_started_s)
                )
            }),
            interrupted: interrupted.is_cancelled(),
            ..RunInfo::default()
        };
        let info_path = self.run_dir.join("run.json");
        std::fs::write(
            &info_path,
            serde_json::to_string_pretty(&info).unwrap_or_default(),
        )
        .map_err(|e| Error::io(&info_path, e))?;
        let summary = report::write_reports(&self.run_dir, &self.scenario, &plan_text, info)?;
        Ok(Outcome {
            summary,
            run_dir: self.run_dir,
            interrupted: interrupted.is_cancelled(),
        })
    }
}

/// Waits until every acknowledged order is dispatched and compares with
/// the shop's audit; or says why the orders could not be audited.
async fn audit_orders(
    platform: &dyn Platform,
    acknowledged: &[String],
) -> Result<(Option<audit::Orders>, Option<String>)> {
    let http = http_client()?;
    let (orders, why) = audit::audit(
        &http,
        platform.entry_url(),
        platform.admin_token(),
        acknowledged,
        // Long enough for a database lost with its node to come back: on
        // the local cluster NotReady after ~45 s, rescheduled and ready
        // ~60 s later. The audit ends as soon as every order is dispatched.
        Duration::from_secs(150),
    )
    .await;
    let why = why.map(|w| match w {
        audit::NotAudited::NoAdminToken => {
            "no admin token for the shop (set GAMEDAY_ADMIN_TOKEN)".to_string()
        }
        audit::NotAudited::NoAnswer(e) => format!("the shop's audit did not answer: {e}"),
    });
    Ok((Some(orders), why))
}

fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|source| Error::Http {
            what: "gameday's HTTP client",
            source,
        })
}

/// Resets the shop's orders and creates the shopper accounts (before the
/// measured window).
async fn prepare_shop(
    scenario: &Scenario,
    platform: &dyn Platform,
) -> Result<Vec<(String, String)>> {
    let http = http_client()?;
    let entry = platform.entry_url();
    match platform.admin_token() {
        Some(token) => {
            http.post(format!("{entry}/admin/reset"))
                .bearer_auth(token)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|source| Error::Http {
                    what: "resetting the shop",
                    source,
                })?;
        }
        None => eprintln!(
            "gameday: no admin token for the shop: orders are not reset and will not be audited"
        ),
    }
    let needs_accounts = scenario
        .load
        .journeys
        .iter()
        .any(|(j, w)| *j != Journey::Browse && *w > 0);
    if !needs_accounts {
        return Ok(Vec::new());
    }
    accounts::create(
        &http,
        entry,
        scenario.load.peak_users().clamp(1, 20_000) as usize,
        &run_id(),
    )
    .await
}

/// Makes account emails and idempotency keys unique per run.
fn run_id() -> String {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string())
        .clone()
}

/// What the collector saw: the generator's health, and the stop rule that
/// fired (when, on the run's clock).
type Collected = (Health, Option<(u64, StopRule)>);

/// The load generator and what runs beside it for the load's length: the
/// prober and the once-a-second collector (timeline, stop rules,
/// self-monitor).
struct Shoppers {
    ctx: Arc<LoadContext>,
    attack: goose::GooseAttack,
    load_started_s: u64,
    load_start: Instant,
    load_done: CancellationToken,
    abort: CancellationToken,
    collector: tokio::task::JoinHandle<Result<Collected>>,
    prober: tokio::task::JoinHandle<()>,
}

impl Shoppers {
    /// Sets goose up, waits for the next whole second of the run's clock
    /// (the scenario's times line up with the timeline's seconds), then
    /// starts the prober and the collector.
    async fn start(
        scenario: &Scenario,
        entry: &str,
        events: &Arc<EventLog>,
        run_dir: &Path,
        accounts: Vec<(String, String)>,
    ) -> Result<Self> {
        let recorder = Arc::new(Recorder::new(events.origin(), &Step::names()));
        let ctx = Arc::new(LoadContext {
            recorder: recorder.clone(),
            accounts,
            next_login: AtomicUsize::new(0),
            acknowledged: Mutex::new(Vec::new()),
            expected_interval: scenario.load.think_time.0.max(Duration::from_millis(10)),
            catalogue_size: shop::CATALOGUE_SIZE,
            run_id: run_id(),
            client: load::shared_client().map_err(|e| Error::Load(e.to_string()))?,
        });
        let writer = TimelineWriter::create(
            run_dir,
            recorder.steps(),
            SystemTime::now() - events.origin().elapsed(),
        )?;
        let attack =
            load::attack(&scenario.load, entry, &ctx).map_err(|e| Error::Load(e.to_string()))?;
        let load_started_s = events.origin().elapsed().as_secs_f64().ceil() as u64;
        let load_start = events.origin() + Duration::from_secs(load_started_s);
        tokio::time::sleep_until(load_start.into()).await;
        events.emit(EventKind::LoadStarted {
            peak_users: scenario.load.peak_users(),
            plan: Some(load::test_plan(&scenario.load)),
        });
        let load_done = CancellationToken::new();
        let prober = Prober {
            entry: entry.to_string(),
            interval: Duration::from_millis(100),
            run_id: ctx.run_id.clone(),
        }
        .spawn(run_dir, events.clone(), load_done.clone())?;
        let abort = CancellationToken::new();
        let collector = tokio::spawn(
            Collector {
                recorder,
                writer,
                load: scenario.load.clone(),
                load_started_s,
                done: load_done.clone(),
                stop_rules: scenario.stop_when.clone(),
                abort: abort.clone(),
                events: Some(events.clone()),
            }
            .run(),
        );
        Ok(Self {
            ctx,
            attack,
            load_started_s,
            load_start,
            load_done,
            abort,
            collector,
            prober,
        })
    }
}

/// Runs goose until its plan ends, a stop rule aborts it or `stop`; the
/// fault schedule stops as soon as the load does (`chaos_stop`). goose then
/// gets up to 15 s to stop its shoppers.
async fn shop_until_done(
    attack: goose::GooseAttack,
    stop: &CancellationToken,
    abort: &CancellationToken,
    chaos_stop: &CancellationToken,
    load_done: &CancellationToken,
) -> Result<()> {
    let execute = attack.execute();
    tokio::pin!(execute);
    let outcome = tokio::select! {
        r = &mut execute => r.map(|_| ()).map_err(|e| Error::Load(e.to_string())),
        _ = stop.cancelled() => Ok(()),
        _ = abort.cancelled() => Ok(()),
    };
    chaos_stop.cancel();
    if stop.is_cancelled() || abort.is_cancelled() {
        // goose's own graceful stop: every shopper finishes its step.
        goose::trigger_killswitch("gameday: the run was stopped");
        let _ = tokio::time::timeout(Duration::from_secs(15), &mut execute).await;
    }
    load_done.cancel();
    outcome
}

async fn load_and_chaos(
    scenario: &Scenario,
    platform: &dyn Platform,
    events: &Arc<EventLog>,
    run_dir: &Path,
    accounts: Vec<(String, String)>,
    stop: &CancellationToken,
) -> Result<Loaded> {
    let entry = platform.entry_url().to_string();
    let shoppers = Shoppers::start(scenario, &entry, events, run_dir, accounts).await?;
    let rollback = chaos::Rollback::default();
    // goose prints to stdout ("N users launched."): during the load its
    // lines go to goose.log, so stdout carries gameday's verdict alone.
    let quiet = StdoutTo::file(&run_dir.join("goose.log"));
    let chaos_stop = CancellationToken::new();
    let chaos_plan = chaos::schedule(&scenario.faults, scenario.load.length());
    let (outcome, (), costs) = tokio::join!(
        shop_until_done(
            shoppers.attack,
            stop,
            &shoppers.abort,
            &chaos_stop,
            &shoppers.load_done
        ),
        chaos::run_schedule(
            platform,
            events,
            &rollback,
            chaos_plan,
            shoppers.load_start,
            chaos_stop.clone(),
        ),
        cost::sample(platform, events, run_dir, shoppers.load_done.clone()),
    );
    if let Err(e) = costs {
        tracing::warn!(error = %e, "cost samples were not recorded");
    }
    drop(quiet);
    // Every fault still active is undone, whatever ended the run.
    rollback.run_all(platform, events).await;
    let collected = shoppers
        .collector
        .await
        .map_err(|source| Error::Task {
            what: "the collector",
            source,
        })
        .and_then(|r| r);
    let _ = shoppers.prober.await;
    events.emit(EventKind::LoadStopped {});
    let (health, fired) = collected?;
    let acknowledged = shoppers
        .ctx
        .acknowledged
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    Ok(Loaded {
        health,
        fired,
        load_started_s: shoppers.load_started_s,
        acknowledged,
        error: outcome.err(),
    })
}

/// Sends this process's stdout to a file until dropped.
struct StdoutTo {
    saved: Option<std::os::fd::OwnedFd>,
}

impl StdoutTo {
    fn file(path: &Path) -> Self {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let saved = std::fs::File::create(path).ok().and_then(|file| {
            let saved = nix::unistd::dup(std::io::stdout()).ok()?;
            nix::unistd::dup2_stdout(&file).ok()?;
            Some(saved)
        });
        Self { saved }
    }
}

impl Drop for StdoutTo {
    fn drop(&mut self) {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        if let Some(saved) = self.saved.take() {
            let _ = nix::unistd::dup2_stdout(&saved);
        }
    }
}
