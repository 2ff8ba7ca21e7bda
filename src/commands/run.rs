//! `gameday run FILE`: bring the local shop up, send the scenario's shoppers
//! through it, audit the orders, tear everything down, judge the SLOs, write
//! the reports, and exit with a code CI can act on.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, atomic::AtomicUsize},
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::{
    chaos::{self, stop::StopWatch},
    commands::{plan, preflight},
    events::EventLog,
    exit_codes,
    load::{self, LoadContext, Step, monitor::Monitor, users_at},
    observe::prober::Prober,
    platform::local::LocalPlatform,
    record::{Recorder, TimelineWriter, read_timeline},
    report::{LoadGenerator, Orders, RunInfo, Summary, html, junit, summarize},
    scenario::{Journey, Scenario, StopRule},
};

pub async fn run(file: &Path, output: Option<PathBuf>) -> anyhow::Result<i32> {
    let scenario = match Scenario::load(file) {
        Ok(s) => s,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(exit_codes::USAGE);
        }
    };
    if let Some(code) = preflight() {
        return Ok(code);
    }
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    let run_dir = output.unwrap_or_else(|| {
        scenario
            .report_dir
            .join(format!("{}-{stamp}", scenario.name))
    });
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    // Servers resolve relative paths against their own directories.
    let run_dir = std::path::absolute(&run_dir)?;
    std::fs::copy(file, run_dir.join("scenario.yaml"))?;
    let plan_text = plan::render(&scenario);
    std::fs::write(run_dir.join("plan.txt"), &plan_text)?;
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let events = Arc::new(EventLog::new(Some(&run_dir.join("events.jsonl")))?);
    let chaos_plan = chaos::schedule(&scenario.faults, scenario.load.length());
    eprintln!("gameday: starting the shop; files in {}", run_dir.display());
    let stop = CancellationToken::new();
    let interrupted = watch_signals(stop.clone());
    let platform_dir = run_dir.join("platform");
    let platform = tokio::select! {
        p = LocalPlatform::up(&platform_dir, scenario.target.clone(), events.clone()) => p?,
        _ = stop.cancelled() => {
            eprintln!("gameday: interrupted while starting; everything started was stopped");
            return Ok(exit_codes::INTERRUPTED);
        }
    };
    let entry = platform.entry_url();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    http.post(format!("{entry}/admin/reset"))
        .bearer_auth(platform.admin_token())
        .send()
        .await?
        .error_for_status()?;

    let needs_accounts = scenario
        .load
        .journeys
        .iter()
        .any(|(j, w)| *j != Journey::Browse && *w > 0);
    let run_id = stamp.to_string();
    let accounts = if needs_accounts {
        prepare_accounts(
            &http,
            &entry,
            scenario.load.peak_users().clamp(1, 20_000) as usize,
            &run_id,
        )
        .await?
    } else {
        Vec::new()
    };

    let recorder = Arc::new(Recorder::new(events.origin(), &Step::names()));
    let ctx = Arc::new(LoadContext {
        recorder: recorder.clone(),
        accounts,
        next_login: AtomicUsize::new(0),
        acknowledged: Mutex::new(Vec::new()),
        expected_interval: scenario.load.think_time.0.max(Duration::from_millis(10)),
        catalogue_size: 1200,
        run_id,
    });
    let writer = TimelineWriter::create(
        &run_dir,
        recorder.steps(),
        SystemTime::now() - events.origin().elapsed(),
    )?;
    let attack =
        load::attack(&scenario.load, &entry, &ctx).map_err(|e| anyhow::anyhow!("goose: {e}"))?;
    let load_started_s = events.origin().elapsed().as_secs_f64().ceil() as u64;
    // The load starts on a whole second of the run's clock, so the
    // scenario's times (stages, faults, the measured window) line up with
    // the timeline's seconds.
    let load_start = events.origin() + Duration::from_secs(load_started_s);
    tokio::time::sleep_until(load_start.into()).await;
    events.emit(
        "load.started",
        json!({"peak_users": scenario.load.peak_users(), "plan": load::test_plan(&scenario.load)}),
    );
    let load_done = CancellationToken::new();
    let prober = Prober {
        entry: entry.clone(),
        interval: Duration::from_millis(100),
        run_id: ctx.run_id.clone(),
    }
    .spawn(&run_dir, events.clone(), load_done.clone())?;
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
    let execute = attack.execute();
    tokio::pin!(execute);
    // The fault schedule stops as soon as the load does (its end, a stop
    // rule, Ctrl-C); goose then gets up to 15 s to stop its shoppers.
    let chaos_stop = CancellationToken::new();
    let load = async {
        let outcome = tokio::select! {
            r = &mut execute => r.map(|_| ()).map_err(|e| anyhow::anyhow!("goose: {e}")),
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
    let (outcome, ()) = tokio::join!(
        load,
        chaos::run_schedule(
            &platform,
            &events,
            &rollback,
            chaos_plan,
            load_start,
            chaos_stop.clone(),
        ),
    );
    // Every fault still active is undone, whatever ended the run.
    rollback.run_all(&platform, &events).await;
    let (health, fired) = collector.await.context("collector")??;
    let _ = prober.await;
    events.emit("load.stopped", json!({}));
    if let Err(e) = outcome {
        platform.shutdown().await;
        return Err(e);
    }

    let acknowledged = ctx
        .acknowledged
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    let orders = if interrupted.is_cancelled() {
        None
    } else {
        Some(audit_orders(&http, &entry, platform.admin_token(), &acknowledged).await)
    };
    eprintln!("gameday: stopping the shop");
    platform.shutdown().await;

    let info = RunInfo {
        load_started_s,
        started_at,
        duration_s: events.origin().elapsed().as_secs_f64(),
        orders,
        load_generator: LoadGenerator {
            cpu_percent_max: Some(health.cpu_percent_max),
            saturated: Some(health.saturated),
            lag_ms_p99: Some(health.lag_ms_p99),
        },
        aborted_by: fired.map(|(t, rule)| {
            format!(
                "{} (fired {} s after the load started)",
                rule.text,
                t.saturating_sub(load_started_s)
            )
        }),
        ..RunInfo::default()
    };
    std::fs::write(
        run_dir.join("run.json"),
        serde_json::to_string_pretty(&info)?,
    )?;
    let summary = write_reports(&run_dir, &scenario, info)?;
    print_outcome(&summary, &run_dir, health.saturated);
    if interrupted.is_cancelled() {
        return Ok(exit_codes::INTERRUPTED);
    }
    Ok(summary.exit_code)
}

/// Cancels `stop` on Ctrl-C or SIGTERM; the returned token says it happened.
///
/// Ctrl-C is taken with the `ctrlc` crate, not tokio: goose installs a
/// `ctrlc` handler when an attack starts, which would replace tokio's (and
/// exit the process, skipping every undo, on a second Ctrl-C). The crate
/// allows one handler per process, so installing gameday's first leaves
/// goose without one (goose then carries on, as it does in tests), and the
/// run stops goose itself with its killswitch.
fn watch_signals(stop: CancellationToken) -> CancellationToken {
    let interrupted = CancellationToken::new();
    let on_signal = {
        let (flag, stop) = (interrupted.clone(), stop.clone());
        move || {
            if !flag.is_cancelled() {
                eprintln!("\ngameday: stopping the run, then cleaning up");
            }
            flag.cancel();
            stop.cancel();
        }
    };
    let on_int = on_signal.clone();
    if let Err(e) = ctrlc::set_handler(on_int) {
        tracing::warn!("cannot take Ctrl-C: {e}");
    }
    tokio::spawn(async move {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            term.recv().await;
            on_signal();
        }
    });
    interrupted
}

/// Creates the shopper accounts before the measured window.
async fn prepare_accounts(
    http: &reqwest::Client,
    entry: &str,
    n: usize,
    run_id: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    use futures::stream::{self, StreamExt};
    let started = Instant::now();
    eprintln!("gameday: creating {n} shopper accounts");
    let accounts: Vec<(String, String)> = (0..n)
        .map(|i| {
            (
                format!("shopper-{i}-{run_id}@gameday.test"),
                format!("pw-{run_id}-{i}"),
            )
        })
        .collect();
    let results: Vec<bool> = stream::iter(accounts.iter())
        .map(|(email, password)| async move {
            for _ in 0..3 {
                let r = http
                    .post(format!("{entry}/api/users/register"))
                    .json(&json!({"name": "shopper", "email": email, "password": password}))
                    .send()
                    .await;
                if let Ok(r) = r
                    && (r.status().as_u16() == 201 || r.status().as_u16() == 409)
                {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            false
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let failed = results.iter().filter(|ok| !**ok).count();
    if failed > 0 {
        anyhow::bail!("{failed} of {n} shopper accounts could not be created");
    }
    eprintln!(
        "gameday: {n} accounts ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(accounts)
}

/// Once a second: move finished seconds to disk, judge the stop
/// conditions, watch the load generator, show progress on a terminal.
pub struct Collector {
    pub recorder: Arc<Recorder>,
    pub writer: TimelineWriter,
    pub load: crate::scenario::Load,
    pub load_started_s: u64,
    /// Cancelled when the load is over.
    pub done: CancellationToken,
    pub stop_rules: Vec<StopRule>,
    /// Cancelled here when a stop rule fires.
    pub abort: CancellationToken,
    pub events: Option<Arc<EventLog>>,
}

impl Collector {
    /// The load generator's health and the stop rule that fired (with the
    /// second it fired in), if one did.
    pub async fn run(mut self) -> anyhow::Result<(load::monitor::Health, Option<(u64, StopRule)>)> {
        let mut monitor = Monitor::new();
        // The generator's health is judged where the figures are: the
        // measured window (launching thousands of shoppers in a ramp is
        // expensive, and ramps are not measured).
        let load_started_s = self.load_started_s;
        let window = crate::report::summary::measured_window(&self.load.stages);
        let window = window.start + load_started_s..window.end + load_started_s;
        let load = self.load.clone();
        let users = |t: u64| Some(users_at(&load, t as f64 - load_started_s as f64));
        let progress = Progress::new(&self.load);
        let mut stop_watch = StopWatch::new(&self.stop_rules);
        let mut fired: Option<(u64, StopRule)> = None;
        let mut ticks = 0u32;
        loop {
            let planned = Instant::now() + Duration::from_millis(100);
            tokio::select! {
                _ = self.done.cancelled() => break,
                _ = tokio::time::sleep_until(planned.into()) => {}
            }
            let in_window = window.contains(&self.recorder.current_second());
            monitor.record_lag(Instant::now().saturating_duration_since(planned), in_window);
            ticks += 1;
            if !ticks.is_multiple_of(10) {
                continue;
            }
            monitor.sample_cpu(in_window);
            let finished = self.recorder.take_before(self.recorder.current_second());
            for (t, second) in &finished {
                if fired.is_none()
                    && let Some(rule) = stop_watch.observe(second)
                {
                    if let Some(events) = &self.events {
                        events.emit("stop.fired", json!({"rule": rule.text, "second": t}));
                    }
                    progress.bar.suspend(|| {
                        eprintln!(
                            "gameday: stop condition held: {}; stopping the run",
                            rule.text
                        )
                    });
                    fired = Some((*t, rule));
                    self.abort.cancel();
                }
            }
            if let Some((t, steps)) = finished.iter().next_back() {
                progress.update(
                    t.saturating_sub(load_started_s),
                    users(*t).unwrap_or(0),
                    steps,
                    monitor.health.cpu_percent_max,
                );
            }
            self.writer.append(&finished, users)?;
        }
        self.writer.append(&self.recorder.take_all(), users)?;
        progress.bar.finish_and_clear();
        Ok((monitor.finish(), fired))
    }
}

/// The live view on a terminal (hidden when stderr is not one): elapsed of
/// planned seconds, stage, shoppers, requests per second, p95, errors and
/// the load generator's CPU.
struct Progress {
    bar: indicatif::ProgressBar,
    /// Where each stage ends, in seconds since the load started.
    stage_ends: Vec<f64>,
}

impl Progress {
    fn new(load: &crate::scenario::Load) -> Self {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(load.length().as_secs()),
            indicatif::ProgressDrawTarget::stderr(),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template("{pos:>4}/{len}s [{bar:24}] {msg}")
                .expect("the template is valid")
                .progress_chars("=> "),
        );
        let stage_ends = load
            .stages
            .iter()
            .scan(0.0, |end, s| {
                *end += s.over.as_secs_f64();
                Some(*end)
            })
            .collect();
        Self { bar, stage_ends }
    }

    fn update(&self, t: u64, users: u32, steps: &crate::record::Second, cpu: f64) {
        let stage = self
            .stage_ends
            .iter()
            .position(|end| (t as f64) < *end)
            .map_or(self.stage_ends.len(), |i| i + 1);
        let requests: u64 = steps.values().map(|s| s.requests).sum();
        let failed: u64 = steps.values().map(|s| s.failed).sum();
        let mut all = crate::record::new_histogram();
        for s in steps.values() {
            let _ = all.add(&s.raw);
        }
        self.bar.set_position(t);
        self.bar.set_message(format!(
            "stage {stage}/{}  {users} shoppers  {requests} req/s  p95 {}  errors {:.1}%  cpu {cpu:.0}%",
            self.stage_ends.len(),
            crate::slo::millis(all.value_at_quantile(0.95) as f64 / 1000.0),
            if requests > 0 {
                100.0 * failed as f64 / requests as f64
            } else {
                0.0
            },
        ));
    }
}

/// After the load: wait (bounded) for the outbox to drain and every
/// acknowledged order to be dispatched, then compare.
async fn audit_orders(
    http: &reqwest::Client,
    entry: &str,
    token: &str,
    acknowledged: &[String],
) -> Orders {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last: Option<Value> = None;
    while Instant::now() < deadline {
        let audit: Option<Value> = async {
            http.post(format!("{entry}/admin/orders/verify"))
                .bearer_auth(token)
                .json(&json!({"order_ids": acknowledged}))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()
        }
        .await;
        if let Some(a) = &audit {
            let pending = a["checked"]["not_dispatched"]
                .as_array()
                .map_or(1, Vec::len)
                + a["outbox_unsent"].as_u64().unwrap_or(1) as usize;
            last = audit;
            if pending == 0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let Some(a) = last else {
        return Orders {
            accepted: Some(acknowledged.len() as u64),
            dispatched: None,
            lost: None,
            duplicated: None,
        };
    };
    let missing = a["checked"]["missing"].as_array().map_or(0, Vec::len) as u64;
    let undispatched = a["checked"]["not_dispatched"]
        .as_array()
        .map_or(0, Vec::len) as u64;
    Orders {
        accepted: Some(acknowledged.len() as u64),
        dispatched: Some(acknowledged.len() as u64 - missing - undispatched),
        lost: Some(missing + undispatched),
        duplicated: a["duplicated"].as_u64(),
    }
}

/// summary.json, junit.xml and report.html from the run directory.
pub fn write_reports(
    run_dir: &Path,
    scenario: &Scenario,
    info: RunInfo,
) -> anyhow::Result<Summary> {
    let timeline = read_timeline(run_dir)?;
    let summary = summarize(scenario, &timeline, info);
    std::fs::write(
        run_dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    std::fs::write(run_dir.join("junit.xml"), junit::render(&summary))?;
    std::fs::write(
        run_dir.join("report.html"),
        html::render(&html::Input {
            summary: &summary,
            scenario,
            plan: &plan::render(scenario),
            timeline: &timeline,
        }),
    )?;
    Ok(summary)
}

fn print_outcome(s: &Summary, run_dir: &Path, saturated: bool) {
    println!("Verdict: {:?} (exit code {})", s.verdict, s.exit_code);
    for slo in &s.slos {
        let result = match slo.pass {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not measured",
        };
        println!(
            "  {:<24} goal {:<12} observed {:<14} {result}",
            slo.name,
            slo.target,
            slo.observed.as_deref().unwrap_or("-")
        );
    }
    println!(
        "Requests: {} ({} failed); orders accepted {:?}, lost {:?}",
        s.requests.total, s.requests.failed, s.orders.accepted, s.orders.lost
    );
    if saturated {
        println!("WARNING: the load generator was saturated; its figures are not trustworthy.");
    }
    println!("Report: {}", run_dir.join("report.html").display());
}

/// `gameday report RUN_DIR`: re-render the reports from a run directory.
pub fn report(run_dir: &Path) -> anyhow::Result<i32> {
    let scenario = match Scenario::load(&run_dir.join("scenario.yaml")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(exit_codes::USAGE);
        }
    };
    let info: RunInfo = match std::fs::read_to_string(run_dir.join("run.json")) {
        Ok(text) => serde_json::from_str(&text)?,
        // A run that crashed before it finished: figures from its timeline.
        Err(_) => RunInfo::default(),
    };
    let summary = write_reports(run_dir, &scenario, info)?;
    println!(
        "Verdict: {:?}; report: {}",
        summary.verdict,
        run_dir.join("report.html").display()
    );
    Ok(exit_codes::OK)
}
