//! Stop conditions (`stop-when`): each rule is judged once a second on the
//! second that just finished. A rule fires when it has held for every second
//! of its window in a row (`error-rate > 20% for 10s`: ten consecutive
//! seconds above 20%). A second without requests proves nothing either way:
//! it breaks the streak.

use crate::{
    record::{Second, new_histogram},
    scenario::{Metric, StopRule},
};

pub struct StopWatch {
    rules: Vec<(StopRule, u64)>,
}

impl StopWatch {
    pub fn new(rules: &[StopRule]) -> Self {
        Self {
            rules: rules.iter().map(|r| (r.clone(), 0)).collect(),
        }
    }

    /// Feeds one finished second; returns the first rule that fired.
    pub fn observe(&mut self, second: &Second) -> Option<StopRule> {
        let requests: u64 = second.values().map(|s| s.requests).sum();
        let failed: u64 = second.values().map(|s| s.failed).sum();
        let mut fired = None;
        for (rule, streak) in &mut self.rules {
            let observed = if requests == 0 {
                None
            } else {
                Some(match rule.metric {
                    Metric::ErrorRate => failed as f64 / requests as f64,
                    Metric::Availability => 1.0 - failed as f64 / requests as f64,
                    Metric::Latency(p) => {
                        let mut all = new_histogram();
                        for s in second.values() {
                            let _ = all.add(&s.raw);
                        }
                        all.value_at_quantile(p.quantile()) as f64 / 1000.0
                    }
                })
            };
            if observed.is_some_and(|o| rule.op.holds(o, rule.value)) {
                *streak += 1;
            } else {
                *streak = 0;
            }
            if fired.is_none() && *streak >= rule.window.as_secs().max(1) {
                fired = Some(rule.clone());
            }
        }
        fired
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        record::StepSecond,
        scenario::{Op, Percentile},
    };

    fn second(requests: u64, failed: u64, ms: u64) -> Second {
        let mut s = StepSecond {
            requests,
            failed,
            ..StepSecond::default()
        };
        for _ in 0..requests {
            s.raw.record(ms * 1000).unwrap();
        }
        [(0usize, s)].into()
    }

    fn rule(metric: Metric, op: Op, value: f64, secs: u64) -> StopRule {
        StopRule {
            text: "rule".into(),
            metric,
            op,
            value,
            window: Duration::from_secs(secs),
        }
    }

    #[test]
    fn a_rule_fires_only_after_holding_for_its_whole_window() {
        let mut w = StopWatch::new(&[rule(Metric::ErrorRate, Op::Gt, 0.2, 3)]);
        assert!(w.observe(&second(100, 50, 1)).is_none());
        assert!(w.observe(&second(100, 50, 1)).is_none());
        // A good second breaks the streak.
        assert!(w.observe(&second(100, 1, 1)).is_none());
        assert!(w.observe(&second(100, 50, 1)).is_none());
        assert!(w.observe(&second(100, 50, 1)).is_none());
        assert!(w.observe(&second(100, 50, 1)).is_some());
    }

    #[test]
    fn latency_and_availability_rules_read_their_own_figures() {
        let mut w = StopWatch::new(&[
            rule(Metric::Latency(Percentile::P99), Op::Gt, 500.0, 1),
            rule(Metric::Availability, Op::Lt, 0.99, 1),
        ]);
        assert!(w.observe(&second(100, 0, 20)).is_none());
        let fired = w.observe(&second(100, 0, 900)).unwrap();
        assert_eq!(fired.metric, Metric::Latency(Percentile::P99));
        let fired = w.observe(&second(100, 5, 1)).unwrap();
        assert_eq!(fired.metric, Metric::Availability);
        // No requests: no evidence.
        assert!(w.observe(&Second::new()).is_none());
    }
}
