//! `gameday shard`: one shard of a distributed load. It reads its
//! [`ShardPlan`] from the first line of its input, says it is ready, waits
//! for `start`, runs its shoppers with goose as an in-process run does,
//! and sends each finished second as one line of its output. `stop` (or
//! the end of its input: the coordinator is gone) stops its shoppers; it
//! then sends what is left and its health, and ends.

use std::{
    io::Write,
    os::fd::OwnedFd,
    sync::{Arc, Mutex, atomic::AtomicUsize},
    time::{Duration, Instant},
};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use super::wire::{FromShard, ShardHealth, ShardPlan, ToShard, line, second_to_wire};
use crate::{
    errors::{Error, Result},
    load::{self, LoadContext, Step, monitor::Monitor},
    record::Recorder,
};

/// The protocol's output: the process's original stdout. goose prints to
/// stdout too ("N users launched."), so fd 1 itself is sent to /dev/null.
struct Out(std::fs::File);

impl Out {
    fn take_stdout() -> Result<Self> {
        let saved: OwnedFd = nix::unistd::dup(std::io::stdout())
            .map_err(|e| Error::Load(format!("cannot keep the shard's output: {e}")))?;
        if let Ok(null) = std::fs::File::options().write(true).open("/dev/null") {
            let _ = nix::unistd::dup2_stdout(&null);
        }
        Ok(Self(std::fs::File::from(saved)))
    }

    fn send(&mut self, msg: &FromShard) {
        let _ = writeln!(self.0, "{}", line(msg));
        let _ = self.0.flush();
    }
}

/// Runs one shard; its exit code is 0 once it has sent `done`.
pub async fn run() -> Result<i32> {
    let mut out = Out::take_stdout()?;
    let mut input = BufReader::new(tokio::io::stdin()).lines();
    let plan: ShardPlan = match input.next_line().await {
        Ok(Some(text)) => serde_json::from_str(&text).map_err(|source| Error::Json {
            what: "the shard's plan",
            source,
        })?,
        _ => return Err(Error::Load("the shard got no plan on its input".into())),
    };
    out.send(&FromShard::Ready {
        pid: std::process::id(),
    });
    let (origin_ago, window) = loop {
        match input.next_line().await {
            Ok(Some(text)) => match serde_json::from_str::<ToShard>(&text) {
                Ok(ToShard::Start {
                    origin_ago_ms,
                    window,
                }) => break (Duration::from_millis(origin_ago_ms), window),
                Ok(ToShard::Stop) => return Ok(0),
                Err(_) => continue,
            },
            // The coordinator went away before the start.
            _ => return Ok(0),
        }
    };
    let origin = Instant::now()
        .checked_sub(origin_ago)
        .unwrap_or_else(Instant::now);
    match shop(plan, origin, window, input, &mut out).await {
        Ok((health, orders)) => {
            out.send(&FromShard::Done { health, orders });
            Ok(0)
        }
        Err(e) => {
            out.send(&FromShard::Failed {
                error: e.to_string(),
            });
            Err(e)
        }
    }
}

async fn shop(
    plan: ShardPlan,
    origin: Instant,
    window: (u64, u64),
    mut input: tokio::io::Lines<BufReader<tokio::io::Stdin>>,
    out: &mut Out,
) -> Result<(ShardHealth, Vec<String>)> {
    let recorder = Arc::new(Recorder::new(origin, &Step::names()));
    let ctx = Arc::new(LoadContext {
        recorder: recorder.clone(),
        accounts: plan.accounts,
        next_login: AtomicUsize::new(0),
        acknowledged: Mutex::new(Vec::new()),
        expected_interval: Duration::from_millis(plan.expected_interval_ms.max(10)),
        catalogue_size: plan.catalogue_size,
        run_id: plan.run_id,
        client: load::shared_client().map_err(|e| Error::Load(e.to_string()))?,
    });
    let attack =
        load::attack(&plan.load, &plan.entry, &ctx).map_err(|e| Error::Load(e.to_string()))?;
    // `stop`, or the end of the input (the coordinator is gone).
    let stop = CancellationToken::new();
    let stopper = {
        let stop = stop.clone();
        tokio::spawn(async move {
            loop {
                match input.next_line().await {
                    Ok(Some(text))
                        if serde_json::from_str::<ToShard>(&text).ok() == Some(ToShard::Stop) =>
                    {
                        break;
                    }
                    Ok(Some(_)) => continue,
                    _ => break,
                }
            }
            stop.cancel();
        })
    };
    let execute = attack.execute();
    tokio::pin!(execute);
    let mut monitor = Monitor::new();
    let mut sent = Sent::new(recorder.current_second());
    let mut stopping: Option<Instant> = None;
    let mut ticks = 0u32;
    let outcome = loop {
        let planned = Instant::now() + Duration::from_millis(100);
        tokio::select! {
            r = &mut execute => break r.map(|_| ()).map_err(|e| Error::Load(e.to_string())),
            _ = stop.cancelled(), if stopping.is_none() => {
                // goose's own graceful stop: every shopper finishes its step.
                goose::trigger_killswitch("gameday: the shard was stopped");
                stopping = Some(Instant::now() + Duration::from_secs(15));
                continue;
            }
            _ = tokio::time::sleep_until(planned.into()) => {}
        }
        if stopping.is_some_and(|by| Instant::now() > by) {
            break Ok(());
        }
        let now_s = recorder.current_second();
        let in_window = (window.0..window.1).contains(&now_s);
        monitor.record_lag(Instant::now().saturating_duration_since(planned), in_window);
        ticks += 1;
        if ticks.is_multiple_of(10) {
            monitor.sample_cpu(in_window);
            sent.peak_rss = sent
                .peak_rss
                .max(load::monitor::own_rss_mb().unwrap_or(0.0));
            sent.send(&recorder, &ctx, out, Some(now_s));
        }
    };
    stopper.abort();
    outcome?;
    sent.send(&recorder, &ctx, out, None);
    if let Ok(mut ids) = ctx.acknowledged.lock() {
        sent.orders.append(&mut ids);
    }
    let health = monitor.finish();
    let health = ShardHealth {
        cpu_percent_max: health.cpu_percent_max,
        lag_ms_p99: health.lag_ms_p99,
        saturated: health.saturated,
        peak_rss_mb: (sent.peak_rss > 0.0).then_some(sent.peak_rss),
    };
    Ok((health, sent.orders))
}

/// What the shard has sent so far.
struct Sent {
    /// The next second to send.
    next: u64,
    /// Acknowledged, not sent yet.
    orders: Vec<String>,
    peak_rss: f64,
}

impl Sent {
    fn new(first: u64) -> Self {
        Self {
            next: first,
            orders: Vec::new(),
            peak_rss: 0.0,
        }
    }

    /// Sends every finished second before `until` (None: everything
    /// recorded), those without a request too; the orders acknowledged
    /// since the last line go with the first.
    fn send(&mut self, recorder: &Recorder, ctx: &LoadContext, out: &mut Out, until: Option<u64>) {
        let mut finished = recorder.take_before(until.unwrap_or(u64::MAX));
        let last = match until {
            Some(t) => t,
            None => finished
                .keys()
                .next_back()
                .map_or(self.next, |t| (*t + 1).max(self.next)),
        };
        if let Ok(mut ids) = ctx.acknowledged.lock() {
            self.orders.append(&mut ids);
        }
        for t in self.next..last {
            let second = finished.remove(&t).unwrap_or_default();
            out.send(&second_to_wire(
                t,
                &second,
                std::mem::take(&mut self.orders),
            ));
        }
        self.next = self.next.max(last);
    }
}
