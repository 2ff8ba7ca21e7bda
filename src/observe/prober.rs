//! The prober: a synthetic shopper, independent of the load, checking a read
//! path (a product page) and a write path (registering an account, a row
//! written through the database's writer endpoint) in turn, at a fixed rate
//! (10 checks a second by default). Each check is its own task, started on
//! schedule whatever earlier checks are doing, so an outage cannot slow the
//! prober down and hide itself. Results go to `probe.jsonl` in the run
//! directory (one line per check), the source of uptime and of failover
//! downtime (first failed write to first successful write).

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    errors::{Error, Result},
    events::EventLog,
    record::{Probe, ProbePath},
};

pub struct Prober {
    pub entry: String,
    pub interval: Duration,
    pub run_id: String,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

impl Prober {
    /// Probes until `stop`; the returned task ends once every check is written.
    pub fn spawn(
        self,
        dir: &Path,
        events: Arc<EventLog>,
        stop: CancellationToken,
    ) -> Result<JoinHandle<()>> {
        let path = dir.join("probe.jsonl");
        let mut out = BufWriter::new(
            File::options()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?,
        );
        let http = reqwest::Client::builder()
            .timeout(CHECK_TIMEOUT)
            .pool_idle_timeout(crate::load::CLIENT_IDLE)
            .build()
            .map_err(|source| Error::Http {
                what: "the prober's HTTP client",
                source,
            })?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Probe>();
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut n: u64 = 0;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                n += 1;
                let path = if n.is_multiple_of(2) {
                    ProbePath::Write
                } else {
                    ProbePath::Read
                };
                let (http, tx, events) = (http.clone(), tx.clone(), events.clone());
                let entry = self.entry.clone();
                let email = format!("probe-{n}-{}@gameday.test", self.run_id);
                tokio::spawn(async move {
                    let t_ms = events.now_ms();
                    let started = Instant::now();
                    let result = match path {
                        ProbePath::Read => http
                            .get(format!("{entry}/api/catalogue/products/SKU-00001"))
                            .send()
                            .await
                            .map(|r| r.status().as_u16()),
                        ProbePath::Write => http
                            .post(format!("{entry}/api/users/register"))
                            .json(&json!({"name": "prober", "email": email, "password": "probe-password"}))
                            .send()
                            .await
                            .map(|r| r.status().as_u16()),
                    };
                    let want = if path == ProbePath::Read { 200 } else { 201 };
                    let error = match result {
                        Ok(s) if s == want => None,
                        Ok(s) => Some(format!("status {s}")),
                        Err(e) if e.is_timeout() => Some("timeout".into()),
                        Err(_) => Some("connection error".into()),
                    };
                    let _ = tx.send(Probe {
                        t_ms,
                        path,
                        ok: error.is_none(),
                        ms: started.elapsed().as_secs_f64() * 1000.0,
                        error,
                    });
                });
            }
        });
        Ok(tokio::spawn(async move {
            let mut last_flush = Instant::now();
            // Ends when the ticker and every check have dropped their senders.
            drop(ticker);
            while let Some(p) = rx.recv().await {
                if let Ok(line) = serde_json::to_string(&p) {
                    let _ = writeln!(out, "{line}");
                }
                if last_flush.elapsed() >= Duration::from_secs(1) {
                    let _ = out.flush();
                    last_flush = Instant::now();
                }
            }
            let _ = out.flush();
        }))
    }
}

/// Share of checks that succeeded (None without checks).
pub fn uptime(probes: &[Probe]) -> Option<f64> {
    (!probes.is_empty())
        .then(|| probes.iter().filter(|p| p.ok).count() as f64 / probes.len() as f64)
}

/// How far apart the prober's writes are (the median gap, in seconds):
/// the finest write outage it can see. None with fewer than two writes.
pub fn write_spacing(probes: &[Probe]) -> Option<f64> {
    let writes: Vec<u64> = probes
        .iter()
        .filter(|p| p.path == ProbePath::Write)
        .map(|p| p.t_ms)
        .collect();
    let mut gaps: Vec<u64> = writes.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_unstable();
    gaps.get(gaps.len() / 2).map(|g| *g as f64 / 1000.0)
}

/// Write downtime after `from_ms`: first failed write to the first
/// successful write after it, in seconds; 0 when no write failed before
/// `until_ms`; None when writes failed and none succeeded again.
pub fn write_downtime(probes: &[Probe], from_ms: u64, until_ms: u64) -> Option<f64> {
    let writes = probes
        .iter()
        .filter(|p| p.path == ProbePath::Write && p.t_ms >= from_ms);
    let mut first_fail: Option<u64> = None;
    for p in writes {
        match (first_fail, p.ok) {
            (None, false) if p.t_ms < until_ms => first_fail = Some(p.t_ms),
            (None, _) if p.t_ms >= until_ms => return Some(0.0),
            (Some(f), true) => return Some((p.t_ms - f) as f64 / 1000.0),
            _ => {}
        }
    }
    match first_fail {
        None => Some(0.0),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(t_ms: u64, ok: bool) -> Probe {
        Probe {
            t_ms,
            path: ProbePath::Write,
            ok,
            ms: 1.0,
            error: None,
        }
    }

    #[test]
    fn downtime_runs_from_the_first_failed_write_to_the_next_good_one() {
        let probes = vec![
            w(900, false),
            w(1000, true),
            w(1200, false),
            w(1400, false),
            w(2700, true),
        ];
        // A failure before the fault is not the fault's.
        assert_eq!(write_downtime(&probes, 1000, 10_000), Some(1.5));
        assert_eq!(write_downtime(&probes[..4], 1000, 10_000), None);
        assert_eq!(write_downtime(&probes[..2], 1000, 10_000), Some(0.0));
        assert_eq!(uptime(&probes), Some(0.4));
        assert_eq!(uptime(&[]), None);
    }

    #[test]
    fn the_prober_sees_write_outages_no_finer_than_its_writes_are_apart() {
        let read = Probe {
            path: ProbePath::Read,
            ..w(1100, true)
        };
        let probes = vec![
            w(1000, true),
            read,
            w(1200, true),
            w(1400, false),
            w(1650, true),
        ];
        assert_eq!(write_spacing(&probes), Some(0.2));
        assert_eq!(write_spacing(&probes[..2]), None);
    }
}
