//! The recorder: every request a virtual shopper makes is recorded into
//! per-second HDR histograms, per step and overall, raw and corrected for
//! coordinated omission side by side. Recording takes one of several sharded
//! locks (chosen per thread), never a global one. Once a second the finished
//! seconds are taken out, merged and appended to the run directory
//! (`timeline.jsonl` for counts, `latency.hlog` for histograms in the
//! standard HdrHistogram interval-log format), so a run that crashes keeps
//! everything up to its last second.

pub mod cost;
pub mod probes;
pub mod timeline;

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

pub use cost::{CostRow, CostWriter, LOAD_GENERATOR, read_cost};
pub use probes::{Probe, ProbePath, read_probes};
pub use timeline::{SecondRow, StepRow, Timeline, TimelineWriter, read_timeline};

/// The version of the run directory's layout (`run.json` `format`): 1 was
/// written before events were typed; 2 has typed events and fault ids.
/// `gameday report` reads both.
pub const FORMAT: u32 = 2;

/// Latencies are recorded in microseconds, from 1 µs to 5 minutes, 3 significant digits.
pub const MAX_LATENCY_US: u64 = 300_000_000;
const SHARDS: usize = 16;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds are valid")
}

/// What happened in one second of one step.
#[derive(Debug, Clone)]
pub struct StepSecond {
    pub requests: u64,
    pub failed: u64,
    pub raw: Histogram<u64>,
    /// Corrected for coordinated omission (synthetic samples for the
    /// requests a stalled shopper would have made).
    pub corrected: Histogram<u64>,
    /// Failure kind (such as `status 503`, `timeout`, `check: no order_id`) -> count.
    pub errors: BTreeMap<String, u64>,
}

impl Default for StepSecond {
    fn default() -> Self {
        Self {
            requests: 0,
            failed: 0,
            raw: new_histogram(),
            corrected: new_histogram(),
            errors: BTreeMap::new(),
        }
    }
}

impl StepSecond {
    fn merge(&mut self, other: &StepSecond) {
        self.requests += other.requests;
        self.failed += other.failed;
        let _ = self.raw.add(&other.raw);
        let _ = self.corrected.add(&other.corrected);
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }
}

/// One second: step index -> what happened.
pub type Second = BTreeMap<usize, StepSecond>;

/// Where the collector takes finished seconds from: this process's
/// recorder, or the merge of every shard's (`load::shard`).
pub trait SecondSource: Send + Sync {
    /// The second of the run's clock now.
    fn current_second(&self) -> u64;
    /// The finished seconds before `before`, removed.
    fn take_before(&self, before: u64) -> BTreeMap<u64, Second>;
    /// Everything still held (at the end of a run).
    fn take_all(&self) -> BTreeMap<u64, Second>;
}

impl SecondSource for Recorder {
    fn current_second(&self) -> u64 {
        Recorder::current_second(self)
    }
    fn take_before(&self, before: u64) -> BTreeMap<u64, Second> {
        Recorder::take_before(self, before)
    }
    fn take_all(&self) -> BTreeMap<u64, Second> {
        Recorder::take_all(self)
    }
}

pub struct Recorder {
    origin: Instant,
    steps: Vec<String>,
    shards: Vec<Mutex<BTreeMap<u64, Second>>>,
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

impl Recorder {
    /// A recorder whose second 0 starts at `origin`, for these step names.
    pub fn new(origin: Instant, steps: &[&str]) -> Self {
        Self {
            origin,
            steps: steps.iter().map(|s| s.to_string()).collect(),
            shards: (0..SHARDS).map(|_| Mutex::new(BTreeMap::new())).collect(),
        }
    }

    pub fn steps(&self) -> &[String] {
        &self.steps
    }

    pub fn step_id(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s == name)
    }

    /// Records one request of `step` that took `latency`, finished now.
    /// `expected_interval` is how often this shopper would have issued it had
    /// nothing stalled (for the coordinated-omission correction).
    pub fn record(
        &self,
        step: usize,
        latency: Duration,
        failure: Option<&str>,
        expected_interval: Duration,
    ) {
        let second = self.origin.elapsed().as_secs();
        let micros = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        let interval = (expected_interval.as_micros() as u64).max(1);
        let shard = SHARD.with(|s| *s);
        let Ok(mut seconds) = self.shards[shard].lock() else {
            return;
        };
        let entry = seconds.entry(second).or_default().entry(step).or_default();
        entry.requests += 1;
        let _ = entry.raw.record(micros);
        let _ = entry.corrected.record_correct(micros, interval);
        if let Some(kind) = failure {
            entry.failed += 1;
            *entry.errors.entry(kind.to_string()).or_default() += 1;
        }
    }

    /// The seconds before `before` (from every shard, merged), removed from
    /// the recorder.
    pub fn take_before(&self, before: u64) -> BTreeMap<u64, Second> {
        let mut out: BTreeMap<u64, Second> = BTreeMap::new();
        for shard in &self.shards {
            let Ok(mut seconds) = shard.lock() else {
                continue;
            };
            let later = seconds.split_off(&before);
            let done = std::mem::replace(&mut *seconds, later);
            for (t, steps) in done {
                let merged = out.entry(t).or_default();
                for (step, s) in steps {
                    merged.entry(step).or_default().merge(&s);
                }
            }
        }
        out
    }

    /// Everything still held (at the end of a run).
    pub fn take_all(&self) -> BTreeMap<u64, Second> {
        self.take_before(u64::MAX)
    }

    /// The second `now` falls in.
    pub fn current_second(&self) -> u64 {
        self.origin.elapsed().as_secs()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn recording_from_many_threads_loses_nothing_and_merges_per_second() {
        let recorder = Arc::new(Recorder::new(Instant::now(), &["home", "checkout"]));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let r = recorder.clone();
                std::thread::spawn(move || {
                    for i in 0..1000u64 {
                        let failure = (i % 100 == 0).then_some("status 503");
                        r.record(
                            (t % 2) as usize,
                            Duration::from_micros(100 + i),
                            failure,
                            Duration::from_millis(1),
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let all = recorder.take_all();
        let (mut requests, mut failed, mut hist) = (0, 0, 0);
        for steps in all.values() {
            for s in steps.values() {
                requests += s.requests;
                failed += s.failed;
                hist += s.raw.len();
                assert_eq!(s.errors.values().sum::<u64>(), s.failed);
            }
        }
        assert_eq!((requests, failed, hist), (8000, 80, 8000));
        assert!(recorder.take_all().is_empty(), "taken seconds are gone");
    }

    #[test]
    fn the_corrected_histogram_adds_the_requests_a_stall_hid() {
        let recorder = Recorder::new(Instant::now(), &["home"]);
        for _ in 0..99 {
            recorder.record(0, Duration::from_millis(1), None, Duration::from_millis(10));
        }
        // One request stalled for a second: a shopper every 10 ms would have
        // seen about 100 slow requests, not one.
        recorder.record(0, Duration::from_secs(1), None, Duration::from_millis(10));
        let all = recorder.take_all();
        let s = &all.values().next().unwrap()[&0];
        assert_eq!(s.raw.len(), 100);
        assert!(s.corrected.len() >= 190, "{}", s.corrected.len());
        assert!(s.raw.value_at_quantile(0.95) < 2_000);
        assert!(s.corrected.value_at_quantile(0.95) > 400_000);
    }
}
