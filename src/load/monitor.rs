//! The load generator watches itself: its CPU (from /proc) and how late its
//! tasks wake up. A saturated generator makes its own figures untrustworthy,
//! so the run is flagged.

use std::time::{Duration, Instant};

/// This process's resident memory, in MiB (from /proc).
pub fn own_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// CPU time (user + system) this process has used, in seconds.
pub fn own_cpu_seconds() -> Option<f64> {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Some(secs(usage.user_time()) + secs(usage.system_time()))
}

/// CPU above this share of the machine, for this many seconds, is saturation.
pub const SATURATED_CPU_SHARE: f64 = 0.85;
pub const SATURATED_SECONDS: u32 = 3;
/// A 100 ms timer that fires this late, at the 99th percentile, is saturation.
pub const SATURATED_LAG: Duration = Duration::from_millis(50);

#[derive(Debug, Default, Clone)]
pub struct Health {
    pub cpu_percent_max: f64,
    pub lag_ms_p99: f64,
    pub saturated: bool,
    cpu_saturated: bool,
    hot_seconds: u32,
    lags: Vec<f64>,
}

pub struct Monitor {
    cores: f64,
    last: Option<(f64, Instant)>,
    pub health: Health,
}

impl Default for Monitor {
    fn default() -> Self {
        Self::new()
    }
}

impl Monitor {
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get() as f64)
            .unwrap_or(1.0);
        Self {
            cores,
            last: None,
            health: Health::default(),
        }
    }

    /// Samples this process's CPU; call about once a second. Returns the
    /// CPU used since the last sample, in percent of one core. Only samples
    /// that `count` (inside the measured window) judge saturation.
    pub fn sample_cpu(&mut self, count: bool) -> Option<f64> {
        let now = Instant::now();
        let cpu = own_cpu_seconds()?;
        let percent = self.last.map(|(before, at)| {
            100.0 * (cpu - before) / now.duration_since(at).as_secs_f64().max(0.001)
        });
        self.last = Some((cpu, now));
        if let Some(p) = percent.filter(|_| count) {
            let h = &mut self.health;
            h.cpu_percent_max = h.cpu_percent_max.max(p);
            if p > 100.0 * self.cores * SATURATED_CPU_SHARE {
                h.hot_seconds += 1;
            } else {
                h.hot_seconds = 0;
            }
            if h.hot_seconds >= SATURATED_SECONDS {
                h.cpu_saturated = true;
            }
        }
        percent
    }

    /// Records how late a timer fired (only lags that `count` are kept).
    pub fn record_lag(&mut self, lag: Duration, count: bool) {
        if !count {
            return;
        }
        self.health.lags.push(lag.as_secs_f64() * 1e3);
    }

    /// The verdict on the whole window: judged once, on the final figures
    /// (an early spike among a few samples must not condemn a whole run).
    pub fn finish(mut self) -> Health {
        let h = &mut self.health;
        let mut sorted = std::mem::take(&mut h.lags);
        sorted.sort_by(f64::total_cmp);
        if !sorted.is_empty() {
            h.lag_ms_p99 = sorted[((sorted.len() as f64 * 0.99) as usize).min(sorted.len() - 1)];
        }
        let lagging = sorted.len() >= 20 && h.lag_ms_p99 > SATURATED_LAG.as_secs_f64() * 1e3;
        h.saturated = h.cpu_saturated || lagging;
        self.health
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturation_is_judged_on_the_final_lag_not_an_early_spike() {
        let mut m = Monitor::new();
        m.record_lag(Duration::from_millis(400), true);
        for _ in 0..299 {
            m.record_lag(Duration::from_millis(2), true);
        }
        m.record_lag(Duration::from_secs(5), false); // outside the window
        let h = m.finish();
        assert!(!h.saturated, "{h:?}");
        assert!(h.lag_ms_p99 < 50.0);
        let mut m = Monitor::new();
        for _ in 0..100 {
            m.record_lag(Duration::from_millis(80), true);
        }
        assert!(m.finish().saturated);
    }
}
