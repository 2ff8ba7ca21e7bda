//! An HPA-like autoscaler: once a second, per autoscaled service, the mean
//! CPU of its ready replicas (from /proc, as a share of a 0.25-core request)
//! gives desired = ceil(current × observed / target) within min..max, with a
//! 10% tolerance. As Kubernetes' HPA does:
//!
//! - replicas that are not ready yet are not counted (a booting replica is
//!   not idle capacity);
//! - a step up waits until the previous step's replicas are ready, or until
//!   that step times out;
//! - a step down takes the highest recommendation of the last 30 s (the
//!   scale-in window), so a short dip right after a scale-out never scales
//!   in, and nothing scales in before the window has been watched whole.
//!
//! [`Autoscaler`] is the pure state machine; [`autoscale_loop`] feeds it.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use super::{process::cpu_seconds, state::Shared};
use crate::{events::EventKind, platform::InstanceState, scenario::Autoscale};

/// The CPU a replica requests, in cores: utilisation is measured against it
/// (as a Kubernetes HPA measures against the pod's request).
pub const CPU_REQUEST_CORES: f64 = 0.25;
/// Scale-in takes the highest recommendation of this window.
pub const SCALE_IN_WINDOW: Duration = Duration::from_secs(30);
/// How far from the target utilisation still counts as on target.
pub const TOLERANCE: f64 = 0.1;
/// A step up whose replicas are not all ready after this no longer holds
/// the next one back.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);
const EVERY: Duration = Duration::from_secs(1);

/// desired = ceil(current × observed / target), within min..max; on target
/// (within the tolerance) keeps the current count.
pub fn recommend(
    current: u32,
    observed_percent: f64,
    target_percent: f64,
    min: u32,
    max: u32,
) -> u32 {
    let ratio = observed_percent / target_percent;
    let raw = if (ratio - 1.0).abs() <= TOLERANCE {
        current
    } else {
        (current as f64 * ratio).ceil() as u32
    };
    raw.clamp(min, max)
}

/// What the autoscaler sees of one service in one tick.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    pub now: Instant,
    /// Replicas the placement wants now.
    pub desired: u32,
    /// Of those, how many are ready.
    pub ready: u32,
    /// Mean CPU of the ready replicas, in percent of the request (None: no
    /// ready replica had two samples yet).
    pub cpu_percent: Option<f64>,
}

/// What to do after a tick.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Step {
    /// The CPU just crossed above its target.
    pub signal: bool,
    /// A new desired count.
    pub decision: Option<u32>,
}

#[derive(Debug)]
pub struct Autoscaler {
    config: Autoscale,
    first_seen: Option<Instant>,
    above: bool,
    recommendations: VecDeque<(Instant, u32)>,
    /// A step up still waiting for its replicas: (when, to).
    pending: Option<(Instant, u32)>,
}

impl Autoscaler {
    pub fn new(config: Autoscale) -> Self {
        Self {
            config,
            first_seen: None,
            above: false,
            recommendations: VecDeque::new(),
            pending: None,
        }
    }

    pub fn observe(&mut self, o: Observation) -> Step {
        let first = *self.first_seen.get_or_insert(o.now);
        if let Some((since, to)) = self.pending
            && (o.ready >= to || o.now.duration_since(since) >= STEP_TIMEOUT)
        {
            self.pending = None;
        }
        let (Some(observed), true) = (o.cpu_percent, o.desired > 0) else {
            return Step::default();
        };
        let above = observed > self.config.cpu_percent;
        let signal = above && !self.above;
        self.above = above;
        let c = self.config;
        let raw = recommend(o.desired, observed, c.cpu_percent, c.min, c.max);
        self.recommendations.push_back((o.now, raw));
        while let Some((t, _)) = self.recommendations.front() {
            if o.now.duration_since(*t) > SCALE_IN_WINDOW {
                self.recommendations.pop_front();
            } else {
                break;
            }
        }
        let decision = if raw > o.desired {
            // One step at a time: the previous one's replicas first.
            self.pending.is_none().then_some(raw)
        } else if raw < o.desired {
            let watched_whole_window = o.now.duration_since(first) >= SCALE_IN_WINDOW;
            let stable = self
                .recommendations
                .iter()
                .map(|(_, r)| *r)
                .max()
                .unwrap_or(o.desired);
            (watched_whole_window
                && self.pending.is_none()
                && o.ready >= o.desired
                && stable < o.desired)
                .then_some(stable)
        } else {
            None
        };
        if let Some(to) = decision
            && to > o.desired
        {
            self.pending = Some((o.now, to));
        }
        Step { signal, decision }
    }
}

/// Samples CPU per pid between ticks.
#[derive(Default)]
struct CpuSampler {
    samples: BTreeMap<u32, (f64, Instant)>,
}

impl CpuSampler {
    /// Mean utilisation (percent of the request) of `pids` since the last call.
    fn mean_percent(&mut self, pids: &[u32], now: Instant) -> Option<f64> {
        let mut utilisations = Vec::new();
        let mut fresh = BTreeMap::new();
        for &pid in pids {
            let Some(cpu) = cpu_seconds(pid) else {
                continue;
            };
            if let Some((before, at)) = self.samples.get(&pid) {
                let cores = (cpu - before) / now.duration_since(*at).as_secs_f64().max(0.001);
                utilisations.push(100.0 * cores / CPU_REQUEST_CORES);
            }
            fresh.insert(pid, (cpu, now));
        }
        self.samples = fresh;
        (!utilisations.is_empty())
            .then(|| utilisations.iter().sum::<f64>() / utilisations.len() as f64)
    }
}

pub(super) async fn autoscale_loop(shared: Arc<Shared>) {
    let mut scalers: BTreeMap<String, (Autoscaler, CpuSampler)> = shared
        .topology
        .autoscale
        .iter()
        .map(|(s, c)| (s.clone(), (Autoscaler::new(*c), CpuSampler::default())))
        .collect();
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
        for (service, (scaler, sampler)) in scalers.iter_mut() {
            tick(&shared, service, scaler, sampler).await;
        }
    }
}

async fn tick(shared: &Shared, service: &str, scaler: &mut Autoscaler, sampler: &mut CpuSampler) {
    let (pids, desired) = {
        let st = shared.state.lock().await;
        let pids: Vec<u32> = st
            .replicas
            .iter()
            .filter(|r| r.replica.service == service && r.ready && r.alive())
            .filter_map(|r| r.replica.pid())
            .collect();
        (pids, st.wanted(service))
    };
    let now = Instant::now();
    let cpu_percent = sampler.mean_percent(&pids, now);
    let step = scaler.observe(Observation {
        now,
        desired,
        ready: pids.len() as u32,
        cpu_percent,
    });
    let target = scaler.config.cpu_percent;
    if step.signal {
        shared.events.emit(EventKind::ScalingSignal {
            service: service.into(),
            observed_cpu_percent: cpu_percent,
            target_cpu_percent: Some(target),
            replicas: Some(desired),
        });
    }
    let Some(to) = step.decision else { return };
    shared.events.emit(EventKind::ScalingDecision {
        service: service.into(),
        from: desired,
        to,
        observed_cpu_percent: cpu_percent,
        target_cpu_percent: Some(target),
    });
    place(shared, service, desired, to).await;
}

/// Changes the placement of `service` from `from` to `to` replicas: new ones
/// on the running instance with the fewest, removed from the one with most.
async fn place(shared: &Shared, service: &str, from: u32, to: u32) {
    let mut st = shared.state.lock().await;
    let st = &mut *st;
    let live: Vec<String> = st
        .instances
        .iter()
        .filter(|i| i.state == InstanceState::Running)
        .map(|i| i.name.clone())
        .collect();
    if live.is_empty() {
        return;
    }
    for _ in to.min(from)..to.max(from) {
        let pick = if to > from {
            live.iter().min_by_key(|i| st.placed(i, service))
        } else {
            live.iter()
                .filter(|i| st.placed(i, service) > 0)
                .max_by_key(|i| st.placed(i, service))
        };
        let Some(instance) = pick.cloned() else { break };
        let n = st
            .placement
            .entry(instance)
            .or_default()
            .entry(service.to_string())
            .or_default();
        if to > from {
            *n += 1;
        } else {
            *n -= 1;
        }
    }
    st.dirty = true;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_autoscaler_recommends_like_a_kubernetes_hpa() {
        // ceil(2 x 140 / 70) = 4
        assert_eq!(recommend(2, 140.0, 70.0, 2, 10), 4);
        // within 10% of the target: no change
        assert_eq!(recommend(3, 75.0, 70.0, 2, 10), 3);
        // bounded by max and min
        assert_eq!(recommend(4, 700.0, 70.0, 2, 6), 6);
        assert_eq!(recommend(4, 1.0, 70.0, 2, 6), 2);
        // ceil(3 x 35 / 70) = 2
        assert_eq!(recommend(3, 35.0, 70.0, 1, 6), 2);
    }

    fn config() -> Autoscale {
        Autoscale {
            min: 2,
            max: 6,
            cpu_percent: 50.0,
        }
    }

    struct Clock {
        start: Instant,
    }

    impl Clock {
        fn at(&self, s: u64) -> Instant {
            self.start + Duration::from_secs(s)
        }
    }

    fn obs(now: Instant, desired: u32, ready: u32, cpu: f64) -> Observation {
        Observation {
            now,
            desired,
            ready,
            cpu_percent: Some(cpu),
        }
    }

    #[test]
    fn a_dip_right_after_a_scale_out_does_not_scale_in_within_the_window() {
        let c = Clock {
            start: Instant::now(),
        };
        let mut a = Autoscaler::new(config());
        // Quiet for the whole window, then hot: 3 -> 5.
        for s in 0..31 {
            assert_eq!(a.observe(obs(c.at(s), 3, 3, 50.0)).decision, None);
        }
        let step = a.observe(obs(c.at(31), 3, 3, 80.0));
        assert!(step.signal);
        assert_eq!(step.decision, Some(5));
        // The new replicas become ready, and the load drops at once: the
        // 30 s window still holds the 5, so nothing scales in.
        for s in 32..61 {
            assert_eq!(a.observe(obs(c.at(s), 5, 5, 10.0)).decision, None, "at {s}");
        }
        // Once the high recommendation has left the window, it scales in
        // to what the window agrees on (never below min).
        let down = (62..70).find_map(|s| a.observe(obs(c.at(s), 5, 5, 10.0)).decision);
        assert_eq!(down, Some(2));
    }

    #[test]
    fn a_second_step_up_waits_until_the_first_step_is_ready_or_times_out() {
        let c = Clock {
            start: Instant::now(),
        };
        let mut a = Autoscaler::new(config());
        assert_eq!(a.observe(obs(c.at(0), 2, 2, 100.0)).decision, Some(4));
        // The two new replicas are not ready: still hot, but no new step.
        assert_eq!(a.observe(obs(c.at(1), 4, 2, 150.0)).decision, None);
        assert_eq!(a.observe(obs(c.at(2), 4, 3, 150.0)).decision, None);
        // Ready: the next step may come.
        assert_eq!(a.observe(obs(c.at(3), 4, 4, 100.0)).decision, Some(6));
        // A step that never gets ready stops blocking after the timeout.
        let mut b = Autoscaler::new(config());
        assert_eq!(b.observe(obs(c.at(0), 2, 2, 100.0)).decision, Some(4));
        assert_eq!(b.observe(obs(c.at(59), 4, 2, 100.0)).decision, None);
        assert_eq!(b.observe(obs(c.at(60), 4, 2, 100.0)).decision, Some(6));
    }

    #[test]
    fn nothing_scales_in_before_the_window_was_watched_or_while_replicas_are_not_ready() {
        let c = Clock {
            start: Instant::now(),
        };
        let mut a = Autoscaler::new(config());
        for s in 0..30 {
            assert_eq!(a.observe(obs(c.at(s), 4, 4, 5.0)).decision, None, "at {s}");
        }
        // A replica not ready (a pod being replaced): no scale-in.
        assert_eq!(a.observe(obs(c.at(30), 4, 3, 5.0)).decision, None);
        assert_eq!(a.observe(obs(c.at(31), 4, 4, 5.0)).decision, Some(2));
        // No CPU figure: no signal, no decision.
        let quiet = a.observe(Observation {
            now: c.at(32),
            desired: 2,
            ready: 0,
            cpu_percent: None,
        });
        assert_eq!(quiet, Step::default());
    }
}
