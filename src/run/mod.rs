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
    time::{Duration, SystemTime},
};

use tokio_util::sync::CancellationToken;

pub use collector::Collector;

use crate::{
    chaos,
    errors::{Error, Result},
    events::{EventKind, EventLog},
    load::{self, LoadContext, Step, monitor::Health},
    observe::{audit, prober::Prober},
    platform::{self, Platform},
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
}

fn failed(name: &str, e: impl std::fmt::Display) -> Error {
    Error::Command {
        name: name.into(),
        detail: e.to_string(),
    }
}

/// What the load phase left.
struct Loaded {
    health: Health,
    fired: Option<(u64, StopRule)>,
    load_started_s: u64,
    acknowledged: Vec<String>,
    error: Option<Error>,
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
        Ok(Self { scenario, run_dir })
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Runs every phase; `stop` is cancelled by Ctrl-C or SIGTERM and
    /// `interrupted` tells which stop it was.
    pub async fn run(
        self,
        stop: CancellationToken,
        interrupted: CancellationToken,
    ) -> Result<Outcome> {
        let Runner { scenario, run_dir } = self;
        let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let events = Arc::new(EventLog::new(Some(&run_dir.join("events.jsonl")))?);
        eprintln!(
            "gameday: starting the shop on the {} platform; files in {}",
            scenario.target.name(),
            run_dir.display()
        );
        // 1. prepare
        let platform_dir = run_dir.join("platform");
        let platform = tokio::select! {
            p = platform::deploy(&scenario.target, &platform_dir, events.clone()) => p?,
            _ = stop.cancelled() => {
                return Err(Error::Interrupted("while starting the shop; everything started was stopped".into()));
            }
        };
        let plan_text = crate::plan::render_in(&scenario, &*platform, Some(&run_dir)).await;
        let plan_path = run_dir.join("plan.txt");
        if let Err(e) = std::fs::write(&plan_path, &plan_text) {
            platform.shutdown().await;
            return Err(Error::io(&plan_path, e));
        }
        let loaded = match prepare_shop(&scenario, &*platform).await {
            // 2. load and chaos
            Ok(accounts) => {
                load_and_chaos(&scenario, &*platform, &events, &run_dir, accounts, &stop).await
            }
            Err(e) => Err(e),
        };
        let loaded = match loaded {
            Ok(l) => l,
            Err(e) => {
                platform.shutdown().await;
                return Err(e);
            }
        };
        if let Some(e) = loaded.error {
            platform.shutdown().await;
            return Err(e);
        }
        // 3. drain and audit
        let (orders, not_audited) = if interrupted.is_cancelled() {
            (None, Some("the run was interrupted".to_string()))
        } else {
            let http = http_client()?;
            let (orders, why) = audit::audit(
                &http,
                platform.entry_url(),
                platform.admin_token(),
                &loaded.acknowledged,
                Duration::from_secs(60),
            )
            .await;
            (
                Some(orders),
                why.map(|w| match w {
                    audit::NotAudited::NoAdminToken => {
                        "no admin token for the shop (set GAMEDAY_ADMIN_TOKEN)".to_string()
                    }
                    audit::NotAudited::NoAnswer(e) => {
                        format!("the shop's audit did not answer: {e}")
                    }
                }),
            )
        };
        // 4. teardown
        eprintln!("gameday: stopping the shop");
        platform.shutdown().await;
        // 5. judge and report
        let health = loaded.health;
        let info = RunInfo {
            format: crate::record::FORMAT,
            platform: Some(scenario.target.name().into()),
            load_started_s: loaded.load_started_s,
            started_at,
            duration_s: events.origin().elapsed().as_secs_f64(),
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
        let info_path = run_dir.join("run.json");
        std::fs::write(
            &info_path,
            serde_json::to_string_pretty(&info).unwrap_or_default(),
        )
        .map_err(|e| Error::io(&info_path, e))?;
        let summary = report::write_reports(&run_dir, &scenario, &plan_text, info)?;
        Ok(Outcome {
            summary,
            run_dir,
            interrupted: interrupted.is_cancelled(),
        })
    }
}

fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| failed("http client", e))
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
                .map_err(|e| failed("resetting the shop", e))?;
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

async fn load_and_chaos(
    scenario: &Scenario,
    platform: &dyn Platform,
    events: &Arc<EventLog>,
    run_dir: &Path,
    accounts: Vec<(String, String)>,
    stop: &CancellationToken,
) -> Result<Loaded> {
    let entry = platform.entry_url().to_string();
    let recorder = Arc::new(Recorder::new(events.origin(), &Step::names()));
    let ctx = Arc::new(LoadContext {
        recorder: recorder.clone(),
        accounts,
        next_login: AtomicUsize::new(0),
        acknowledged: Mutex::new(Vec::new()),
        expected_interval: scenario.load.think_time.0.max(Duration::from_millis(10)),
        catalogue_size: shop::CATALOGUE_SIZE,
        run_id: run_id(),
        client: load::shared_client().map_err(|e| failed("http client", e))?,
    });
    let writer = TimelineWriter::create(
        run_dir,
        recorder.steps(),
        SystemTime::now() - events.origin().elapsed(),
    )?;
    let attack = load::attack(&scenario.load, &entry, &ctx).map_err(|e| failed("goose", e))?;
    let load_started_s = events.origin().elapsed().as_secs_f64().ceil() as u64;
    // The load starts on a whole second of the run's clock, so the
    // scenario's times (stages, faults, the measured window) line up with
    // the timeline's seconds.
    let load_start = events.origin() + Duration::from_secs(load_started_s);
    tokio::time::sleep_until(load_start.into()).await;
    events.emit(EventKind::LoadStarted {
        peak_users: scenario.load.peak_users(),
        plan: Some(load::test_plan(&scenario.load)),
    });
    let load_done = CancellationToken::new();
    let prober = Prober {
        entry: entry.clone(),
        interval: Duration::from_millis(100),
        run_id: ctx.run_id.clone(),
    }
    .spawn(run_dir, events.clone(), load_done.clone())?;
    let abort = CancellationToken::new();
    let collector = tokio::spawn(
        Collector {
            recorder: recorder.clone(),
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
    let rollback = chaos::Rollback::default();
    // goose prints to stdout ("N users launched."): during the load its
    // lines go to goose.log, so stdout carries gameday's verdict alone.
    let quiet = StdoutTo::file(&run_dir.join("goose.log"));
    let execute = attack.execute();
    tokio::pin!(execute);
    // The fault schedule stops as soon as the load does (its end, a stop
    // rule, Ctrl-C); goose then gets up to 15 s to stop its shoppers.
    let chaos_stop = CancellationToken::new();
    let load = async {
        let outcome = tokio::select! {
            r = &mut execute => r.map(|_| ()).map_err(|e| failed("goose", e)),
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
    };
    let chaos_plan = chaos::schedule(&scenario.faults, scenario.load.length());
    let (outcome, (), costs) = tokio::join!(
        load,
        chaos::run_schedule(
            platform,
            events,
            &rollback,
            chaos_plan,
            load_start,
            chaos_stop.clone(),
        ),
        cost::sample(platform, events, run_dir, load_done.clone()),
    );
    if let Err(e) = costs {
        tracing::warn!(error = %e, "cost samples were not recorded");
    }
    drop(quiet);
    // Every fault still active is undone, whatever ended the run.
    rollback.run_all(platform, events).await;
    let collected = collector
        .await
        .map_err(|e| failed("collector", e))
        .and_then(|r| r);
    let _ = prober.await;
    events.emit(EventKind::LoadStopped {});
    let (health, fired) = collected?;
    let acknowledged = ctx
        .acknowledged
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    Ok(Loaded {
        health,
        fired,
        load_started_s,
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
