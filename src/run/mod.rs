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
    load::{
        self, LoadContext, Step,
        monitor::Health,
        shard::{self, coordinator::Shards},
    },
    observe::{audit, prober::Prober},
    platform::{self, Platform, Purpose},
    record::{Recorder, TimelineWriter},
    report::{self, LoadGenerator, RunInfo, ShardLine, Summary, summary::LoadEnd},
    scenario::{GeneratorPlatform, Journey, Scenario, StopRule},
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
    /// A distributed load's shards (empty: the shoppers ran here).
    shards: Vec<ShardLine>,
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
            load_generator: load_generator(&health, loaded.shards),
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
    engine: Engine,
    load_started_s: u64,
    load_start: Instant,
    load_done: CancellationToken,
    abort: CancellationToken,
    collector: tokio::task::JoinHandle<Result<Collected>>,
    prober: tokio::task::JoinHandle<()>,
}

/// Who makes the shoppers' requests.
enum Engine {
    /// goose, in this process.
    InProcess(Box<goose::GooseAttack>),
    /// Shards (`load.generators`), each with its share of the shoppers.
    Shards(Shards),
}

impl Engine {
    /// goose in this process, or the scenario's shards, each ready.
    async fn new(
        scenario: &Scenario,
        entry: &str,
        ctx: &Arc<LoadContext>,
        run_dir: &Path,
        origin: Instant,
    ) -> Result<Self> {
        Ok(match &scenario.load.generators {
            None => Engine::InProcess(Box::new(
                load::attack(&scenario.load, entry, ctx).map_err(|e| Error::Load(e.to_string()))?,
            )),
            Some(g) => {
                let shard_entry = match &g.platform {
                    GeneratorPlatform::Local => entry,
                    GeneratorPlatform::Kubernetes(k) => k.entry_url.as_str(),
                };
                let common = shard::Common {
                    entry: shard_entry,
                    run_id: &ctx.run_id,
                    catalogue_size: ctx.catalogue_size,
                    expected_interval_ms: ctx.expected_interval.as_millis() as u64,
                };
                let plans = shard::plans(&scenario.load, g.shards, &ctx.accounts, &common);
                Engine::Shards(match &g.platform {
                    GeneratorPlatform::Local => shard::local::spawn(plans, run_dir, origin).await?,
                    GeneratorPlatform::Kubernetes(k) => {
                        shard::kubernetes::spawn(
                            plans,
                            k,
                            &ctx.run_id,
                            scenario.load.length(),
                            origin,
                        )
                        .await?
                    }
                })
            }
        })
    }
}

impl Shoppers {
    /// Sets goose (or the shards, each ready) up, waits for the next whole
    /// second of the run's clock (the scenario's times line up with the
    /// timeline's seconds), then starts the load, the prober and the
    /// collector.
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
        let mut engine = Engine::new(scenario, entry, &ctx, run_dir, events.origin()).await?;
        let load_started_s = events.origin().elapsed().as_secs_f64().ceil() as u64;
        let load_start = events.origin() + Duration::from_secs(load_started_s);
        tokio::time::sleep_until(load_start.into()).await;
        let source: Arc<dyn crate::record::SecondSource> = match &mut engine {
            Engine::InProcess(_) => recorder,
            Engine::Shards(shards) => {
                let window = scenario.load.measured_window();
                let window = (window.start + load_started_s, window.end + load_started_s);
                shards
                    .start(Duration::from_secs(load_started_s), window)
                    .await;
                shards.merged.clone()
            }
        };
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
                recorder: source,
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
            engine,
            load_started_s,
            load_start,
            load_done,
            abort,
            collector,
            prober,
        })
    }
}

/// Runs the load until its plan ends, a stop rule aborts it or `stop`; the
/// fault schedule stops as soon as the load does (`chaos_stop`). goose (or
/// each shard) then gets up to 15 s to stop its shoppers.
/// The shards come back, to say what each did.
async fn shop_until_done(
    engine: Engine,
    stop: &CancellationToken,
    abort: &CancellationToken,
    chaos_stop: &CancellationToken,
    load_done: &CancellationToken,
) -> (Result<()>, Option<Shards>) {
    let (outcome, shards) = match engine {
        Engine::InProcess(attack) => (in_process(*attack, stop, abort, chaos_stop).await, None),
        Engine::Shards(mut shards) => {
            tokio::select! {
                _ = shards.finished() => {},
                _ = stop.cancelled() => {},
                _ = abort.cancelled() => {},
            }
            chaos_stop.cancel();
            shards.stop().await;
            let _ = tokio::time::timeout(Duration::from_secs(20), shards.finished()).await;
            shards.close().await;
            (Ok(()), Some(shards))
        }
    };
    load_done.cancel();
    (outcome, shards)
}

async fn in_process(
    attack: goose::GooseAttack,
    stop: &CancellationToken,
    abort: &CancellationToken,
    chaos_stop: &CancellationToken,
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
    let shard_pids = match &shoppers.engine {
        Engine::Shards(s) => s.pids.clone(),
        Engine::InProcess(_) => Vec::new(),
    };
    let ((outcome, shards), (), costs) = tokio::join!(
        shop_until_done(
            shoppers.engine,
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
        cost::sample(
            platform,
            events,
            run_dir,
            &shard_pids,
            shoppers.load_done.clone()
        ),
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
    let (acknowledged, shards) = match shards {
        Some(shards) => (shards.acknowledged(), shard_lines(&shards)),
        None => (
            shoppers
                .ctx
                .acknowledged
                .lock()
                .map(|v| v.clone())
                .unwrap_or_default(),
            Vec::new(),
        ),
    };
    Ok(Loaded {
        health,
        fired,
        load_started_s: shoppers.load_started_s,
        acknowledged,
        shards,
        error: outcome.err(),
    })
}

/// A line per shard: what it sent, its health, what is missing from it.
fn shard_lines(shards: &Shards) -> Vec<ShardLine> {
    let Ok(m) = shards.merged.merger.lock() else {
        return Vec::new();
    };
    let missing = m.missing();
    m.ends()
        .into_iter()
        .enumerate()
        .map(|(i, (end, requests))| {
            let mut line = ShardLine {
                index: i as u32,
                requests,
                ..ShardLine::default()
            };
            match end {
                shard::merge::ShardEnd::Done(h) => {
                    line.cpu_percent_max = Some(h.cpu_percent_max);
                    line.lag_ms_p99 = Some(h.lag_ms_p99);
                    line.saturated = Some(h.saturated);
                    line.peak_rss_mb = h.peak_rss_mb;
                }
                shard::merge::ShardEnd::Lost(why) => line.lost = Some(why),
                shard::merge::ShardEnd::Running => line.lost = Some("it never finished".into()),
            }
            if let Some(m) = missing.iter().find(|m| m.shard == i as u32) {
                line.missing_from_s = m.from_s;
                line.gaps = m.gaps.clone();
            }
            line
        })
        .collect()
}

/// The load generator's health: this process's, or with shards the worst
/// shard's (a saturated shard, or this coordinator, saturates the run).
fn load_generator(health: &Health, shards: Vec<ShardLine>) -> LoadGenerator {
    if shards.is_empty() {
        return LoadGenerator {
            cpu_percent_max: Some(health.cpu_percent_max),
            saturated: Some(health.saturated),
            lag_ms_p99: Some(health.lag_ms_p99),
            shards,
        };
    }
    let worst = |f: fn(&ShardLine) -> Option<f64>| {
        shards
            .iter()
            .filter_map(f)
            .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))))
    };
    let any_saturated = shards.iter().any(|s| s.saturated == Some(true));
    let all_measured = shards.iter().all(|s| s.saturated.is_some());
    LoadGenerator {
        cpu_percent_max: worst(|s| s.cpu_percent_max),
        lag_ms_p99: worst(|s| s.lag_ms_p99).map(|l| l.max(health.lag_ms_p99)),
        saturated: if any_saturated || health.saturated {
            Some(true)
        } else {
            all_measured.then_some(false)
        },
        shards,
    }
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
