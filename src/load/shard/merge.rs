//! The coordinator's merge: every shard's seconds added up, exactly. A
//! second is released (to the timeline, the stop rules, the progress line)
//! only once every shard still running has sent it, so the run's figures
//! are what one generator making every request would have recorded. A
//! shard that is lost stops holding the others back; its missing seconds
//! are kept as a fact for the verdict, never filled in.

use std::collections::BTreeMap;

use crate::record::{Second, StepSecond};

use super::wire::ShardHealth;

/// What became of a shard.
#[derive(Debug, Clone, PartialEq)]
pub enum ShardEnd {
    /// Still sending.
    Running,
    /// Sent every second and its health.
    Done(ShardHealth),
    /// Stopped sending before its end: why, in words.
    Lost(String),
}

#[derive(Debug, Clone)]
struct ShardState {
    /// The next second this shard is expected to send.
    next: u64,
    end: ShardEnd,
    requests: u64,
    /// Seconds that never came: (first, last), inclusive.
    gaps: Vec<(u64, u64)>,
}

/// The seconds a shard did not send, for the verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Missing {
    pub shard: u32,
    pub why: String,
    /// The first second missing (to the end of the load), when it was lost;
    /// and any gap inside what it did send.
    pub from_s: Option<u64>,
    pub gaps: Vec<(u64, u64)>,
}

pub struct Merger {
    shards: Vec<ShardState>,
    pending: BTreeMap<u64, Second>,
    acknowledged: Vec<String>,
}

impl Merger {
    /// `shards` shards whose first second is `first` (the second the load
    /// starts in).
    pub fn new(shards: u32, first: u64) -> Self {
        Self {
            shards: (0..shards)
                .map(|_| ShardState {
                    next: first,
                    end: ShardEnd::Running,
                    requests: 0,
                    gaps: Vec::new(),
                })
                .collect(),
            pending: BTreeMap::new(),
            acknowledged: Vec::new(),
        }
    }

    /// Every shard's first second is `first` (set when the load starts).
    pub fn begin_at(&mut self, first: u64) {
        for s in &mut self.shards {
            if s.next == 0 {
                s.next = first;
            }
        }
    }

    /// Adds shard `shard`'s second `t`. A second earlier than one already
    /// received from that shard is refused (it would count twice); a
    /// second later than the next expected records the seconds skipped as
    /// a gap.
    pub fn receive(
        &mut self,
        shard: u32,
        t: u64,
        second: Second,
        orders: Vec<String>,
    ) -> Result<(), String> {
        let state = self
            .shards
            .get_mut(shard as usize)
            .ok_or_else(|| format!("there is no shard {shard}"))?;
        if t < state.next {
            return Err(format!(
                "shard {shard} sent second {t} again (it had sent up to {})",
                state.next.saturating_sub(1)
            ));
        }
        if t > state.next {
            state.gaps.push((state.next, t - 1));
        }
        state.next = t + 1;
        state.requests += second.values().map(|s| s.requests).sum::<u64>();
        self.acknowledged.extend(orders);
        let merged = self.pending.entry(t).or_default();
        for (step, s) in second {
            merge_step(merged.entry(step).or_default(), s);
        }
        Ok(())
    }

    /// The shard sent its last second (and `orders`, acknowledged after it).
    pub fn finish(&mut self, shard: u32, health: ShardHealth, orders: Vec<String>) {
        if let Some(s) = self.shards.get_mut(shard as usize)
            && s.end == ShardEnd::Running
        {
            s.end = ShardEnd::Done(health);
            self.acknowledged.extend(orders);
        }
    }

    /// The shard stopped before its end (its process or pod ended, it went
    /// silent): it holds the others back no more.
    pub fn lose(&mut self, shard: u32, why: String) {
        if let Some(s) = self.shards.get_mut(shard as usize)
            && s.end == ShardEnd::Running
        {
            s.end = ShardEnd::Lost(why);
        }
    }

    /// Running shards that have sent nothing for second `late` or later
    /// seconds than the most advanced shard: silent while the others go
    /// on. Their indexes.
    pub fn silent(&self, late: u64) -> Vec<u32> {
        let ahead = self.shards.iter().map(|s| s.next).max().unwrap_or(0);
        self.shards
            .iter()
            .enumerate()
            .filter(|(_, s)| s.end == ShardEnd::Running && s.next + late <= ahead)
            .map(|(i, _)| i as u32)
            .collect()
    }

    /// Every second before this one has been sent by every running shard.
    pub fn complete_before(&self) -> u64 {
        self.shards
            .iter()
            .filter(|s| s.end == ShardEnd::Running)
            .map(|s| s.next)
            .min()
            .unwrap_or(u64::MAX)
    }

    /// The complete seconds before `before`, removed.
    pub fn take_before(&mut self, before: u64) -> BTreeMap<u64, Second> {
        let upto = before.min(self.complete_before());
        let later = self.pending.split_off(&upto);
        std::mem::replace(&mut self.pending, later)
    }

    /// Everything received (at the end of the load).
    pub fn take_all(&mut self) -> BTreeMap<u64, Second> {
        std::mem::take(&mut self.pending)
    }

    /// Order ids acknowledged to any shard.
    pub fn acknowledged(&self) -> &[String] {
        &self.acknowledged
    }

    /// Each shard's end and the requests it sent.
    pub fn ends(&self) -> Vec<(ShardEnd, u64)> {
        self.shards
            .iter()
            .map(|s| (s.end.clone(), s.requests))
            .collect()
    }

    /// What is missing from each shard that was lost or skipped seconds.
    pub fn missing(&self) -> Vec<Missing> {
        self.shards
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let lost = match &s.end {
                    ShardEnd::Lost(why) => Some(why.clone()),
                    ShardEnd::Running => Some("it never finished".to_string()),
                    ShardEnd::Done(_) => None,
                };
                (lost.is_some() || !s.gaps.is_empty()).then(|| Missing {
                    shard: i as u32,
                    from_s: lost.as_ref().map(|_| s.next),
                    why: lost.unwrap_or_else(|| "it skipped seconds".into()),
                    gaps: s.gaps.clone(),
                })
            })
            .collect()
    }
}

fn merge_step(into: &mut StepSecond, s: StepSecond) {
    into.requests += s.requests;
    into.failed += s.failed;
    let _ = into.raw.add(&s.raw);
    let _ = into.corrected.add(&s.corrected);
    for (k, v) in s.errors {
        *into.errors.entry(k).or_default() += v;
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use proptest::prelude::*;

    use super::*;
    use crate::record::{Recorder, new_histogram};

    /// One shard's second 0 holding `values` (µs) of step 0.
    fn second_of(values: &[u64], failed_every: usize) -> Second {
        let recorder = Recorder::new(Instant::now(), &["home"]);
        for (i, v) in values.iter().enumerate() {
            let failure = (failed_every > 0 && i % failed_every == 0).then_some("status 503");
            recorder.record(
                0,
                Duration::from_micros(*v),
                failure,
                Duration::from_secs(5),
            );
        }
        recorder.take_all().into_values().next().unwrap_or_default()
    }

    proptest! {
        #[test]
        fn shards_added_give_the_percentiles_of_one_log_of_every_value(
            shards in proptest::collection::vec(
                proptest::collection::vec(1u64..5_000_000, 0..400), 1..8),
        ) {
            let mut merger = Merger::new(shards.len() as u32, 0);
            let mut all = new_histogram();
            for (i, values) in shards.iter().enumerate() {
                for v in values {
                    all.record(*v).unwrap();
                }
                merger.receive(i as u32, 0, second_of(values, 7), vec![]).unwrap();
            }
            let merged = merger.take_before(1);
            let total: u64 = shards.iter().map(|v| v.len() as u64).sum();
            if total == 0 {
                prop_assert!(merged.get(&0).is_none_or(|s| s.is_empty()));
            } else {
                let step = &merged[&0][&0];
                prop_assert_eq!(step.requests, total);
                let failed: u64 = shards.iter().map(|v| v.len().div_ceil(7) as u64).sum();
                prop_assert_eq!(step.failed, failed);
                prop_assert_eq!(step.errors.values().sum::<u64>(), failed);
                for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
                    prop_assert_eq!(step.raw.value_at_quantile(q), all.value_at_quantile(q));
                }
                prop_assert_eq!(step.raw.max(), all.max());
            }
        }
    }

    #[test]
    fn a_second_is_released_only_once_every_running_shard_sent_it() {
        let mut m = Merger::new(3, 10);
        m.receive(0, 10, second_of(&[100], 0), vec!["a".into()])
            .unwrap();
        m.receive(1, 10, second_of(&[200], 0), vec![]).unwrap();
        assert!(
            m.take_before(100).is_empty(),
            "shard 2 has not sent second 10"
        );
        m.receive(2, 10, second_of(&[300], 0), vec!["b".into()])
            .unwrap();
        m.receive(0, 11, second_of(&[100], 0), vec![]).unwrap();
        let out = m.take_before(100);
        assert_eq!(out.keys().copied().collect::<Vec<_>>(), vec![10]);
        assert_eq!(out[&10][&0].requests, 3);
        assert_eq!(m.acknowledged(), ["a", "b"]);
        assert_eq!(m.ends().iter().map(|e| e.1).sum::<u64>(), 4);
    }

    #[test]
    fn a_lost_shard_holds_no_one_back_and_its_missing_seconds_are_reported() {
        let mut m = Merger::new(2, 0);
        for t in 0..3 {
            m.receive(0, t, second_of(&[100], 0), vec![]).unwrap();
        }
        m.receive(1, 0, second_of(&[100], 0), vec![]).unwrap();
        assert_eq!(m.take_before(10).len(), 1);
        assert_eq!(m.silent(2), vec![1], "shard 1 is two seconds behind");
        m.lose(1, "its process was killed (signal 9)".into());
        assert_eq!(m.take_before(10).len(), 2, "seconds 1 and 2, from shard 0");
        m.finish(0, ShardHealth::default(), vec![]);
        let missing = m.missing();
        assert_eq!(
            missing,
            vec![Missing {
                shard: 1,
                why: "its process was killed (signal 9)".into(),
                from_s: Some(1),
                gaps: vec![],
            }]
        );
    }

    #[test]
    fn a_skipped_second_is_a_gap_and_a_repeated_one_is_refused() {
        let mut m = Merger::new(1, 0);
        m.receive(0, 0, second_of(&[100], 0), vec![]).unwrap();
        m.receive(0, 3, second_of(&[100], 0), vec![]).unwrap();
        let err = m.receive(0, 3, second_of(&[100], 0), vec![]).unwrap_err();
        assert!(err.contains("again"), "{err}");
        m.finish(0, ShardHealth::default(), vec![]);
        let missing = m.missing();
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].gaps, vec![(1, 2)]);
        assert_eq!(missing[0].from_s, None);
        let out = m.take_all();
        assert_eq!(out.keys().copied().collect::<Vec<_>>(), vec![0, 3]);
        assert!(!out.contains_key(&1), "a missing second is not filled in");
    }
}
