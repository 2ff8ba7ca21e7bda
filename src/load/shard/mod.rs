//! Distributed load (DESIGN.md section 8, "Distributed load"): the
//! shoppers spread over N shards, each running its share of the plan; the
//! coordinator (`gameday run`) starts them together, adds their seconds
//! exactly ([`merge`]) and judges the run on the merged figures.

pub mod coordinator;
pub mod kubernetes;
pub mod local;
pub mod merge;
pub mod wire;
pub mod worker;

use crate::scenario::{Load, Stage};

pub use wire::{ShardHealth, ShardPlan};

/// Shard `index`'s share of `total` (the first `total % of` shards take one
/// more): the shares add up to `total` exactly.
pub fn share(total: u32, index: u32, of: u32) -> u32 {
    let of = of.max(1);
    total / of + u32::from(index < total % of)
}

/// What every shard but its accounts shares.
pub struct Common<'a> {
    pub entry: &'a str,
    pub run_id: &'a str,
    pub catalogue_size: u32,
    pub expected_interval_ms: u64,
}

/// The plan of each of `of` shards: every stage's shoppers shared out, the
/// same ramps, journeys and think time; account j goes to shard j % of.
pub fn plans(
    load: &Load,
    of: u32,
    accounts: &[(String, String)],
    common: &Common<'_>,
) -> Vec<ShardPlan> {
    (0..of)
        .map(|index| ShardPlan {
            index,
            of,
            entry: common.entry.to_string(),
            load: Load {
                stages: load
                    .stages
                    .iter()
                    .map(|s| Stage {
                        users: share(s.users, index, of),
                        over: s.over,
                    })
                    .collect(),
                generators: None,
                ..load.clone()
            },
            accounts: accounts
                .iter()
                .skip(index as usize)
                .step_by(of.max(1) as usize)
                .cloned()
                .collect(),
            run_id: format!("{}-s{index}", common.run_id),
            catalogue_size: common.catalogue_size,
            expected_interval_ms: common.expected_interval_ms,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::scenario::Journey;

    #[test]
    fn the_shards_plans_add_up_to_the_scenario_s() {
        let load = Load {
            stages: vec![
                Stage {
                    users: 10,
                    over: Duration::from_secs(20),
                },
                Stage {
                    users: 1003,
                    over: Duration::from_secs(60),
                },
                Stage {
                    users: 0,
                    over: Duration::from_secs(5),
                },
            ],
            think_time: (Duration::from_secs(1), Duration::from_secs(3)),
            journeys: vec![(Journey::Browse, 3), (Journey::Buy, 1)],
            generators: None,
        };
        let accounts: Vec<(String, String)> = (0..1003)
            .map(|i| (format!("u{i}"), "pw".to_string()))
            .collect();
        let common = Common {
            entry: "http://127.0.0.1:8080",
            run_id: "r1",
            catalogue_size: 50,
            expected_interval_ms: 1000,
        };
        let plans = plans(&load, 4, &accounts, &common);
        assert_eq!(plans.len(), 4);
        for (i, stage) in load.stages.iter().enumerate() {
            let sum: u32 = plans.iter().map(|p| p.load.stages[i].users).sum();
            assert_eq!(sum, stage.users, "stage {i}");
            assert!(plans.iter().all(|p| p.load.stages[i].over == stage.over));
        }
        assert_eq!(plans[0].load.stages[1].users, 251);
        assert_eq!(plans[3].load.stages[1].users, 250);
        let mut all: Vec<&String> = plans
            .iter()
            .flat_map(|p| p.accounts.iter().map(|a| &a.0))
            .collect();
        assert_eq!(all.len(), 1003);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 1003, "no account is given to two shards");
        let ids: std::collections::BTreeSet<&str> =
            plans.iter().map(|p| p.run_id.as_str()).collect();
        assert_eq!(ids.len(), 4, "each shard's idempotency keys are its own");
        assert!(plans.iter().all(|p| p.load.journeys == load.journeys));
    }
}
