//! Once a second during the load: move the finished seconds to disk, judge
//! the stop conditions, watch the load generator, and show progress on a
//! terminal.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio_util::sync::CancellationToken;

use crate::{
    chaos::stop::StopWatch,
    events::{EventKind, EventLog},
    load::{
        monitor::{Health, Monitor},
        users_at,
    },
    record::{SecondSource, TimelineWriter},
    scenario::StopRule,
};

/// Once a second: move finished seconds to disk, judge the stop
/// conditions, watch the load generator, show progress on a terminal.
pub struct Collector {
    /// Where the finished seconds come from.
    pub recorder: Arc<dyn SecondSource>,
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
    pub async fn run(mut self) -> crate::Result<(Health, Option<(u64, StopRule)>)> {
        let mut monitor = Monitor::new();
        // The generator's health is judged where the figures are: the
        // measured window (launching thousands of shoppers in a ramp is
        // expensive, and ramps are not measured).
        let load_started_s = self.load_started_s;
        let window = self.load.measured_window();
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
                        events.emit(EventKind::StopFired {
                            rule: rule.text.clone(),
                            second: *t,
                        });
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
