//! Once a second during the load: what every component of the platform and
//! the load generator itself have cost so far, appended to `cost.jsonl`.

use std::{path::Path, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{
    errors::Result,
    events::EventLog,
    load::monitor::{own_cpu_seconds, own_rss_mb},
    platform::{
        ComponentCost, Platform,
        local::process::{cpu_seconds, rss_kib},
    },
    record::{CostRow, CostWriter, LOAD_GENERATOR},
};

pub(super) async fn sample(
    platform: &dyn Platform,
    events: &EventLog,
    dir: &Path,
    shard_pids: &[u32],
    done: CancellationToken,
) -> Result<()> {
    let mut writer = CostWriter::create(dir)?;
    // A shard's CPU so far (kept once its process has ended).
    let mut shard_cpu = vec![0f64; shard_pids.len()];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let last = tokio::select! {
            _ = done.cancelled() => true,
            _ = tick.tick() => false,
        };
        let mut sample = platform.sample().await;
        let mut rss_mb = own_rss_mb().unwrap_or(0.0);
        for (pid, cpu) in shard_pids.iter().zip(shard_cpu.iter_mut()) {
            if let Some(now) = cpu_seconds(*pid) {
                *cpu = cpu.max(now);
            }
            rss_mb += rss_kib(*pid).map_or(0.0, |k| k as f64 / 1024.0);
        }
        sample.components.push(ComponentCost {
            name: LOAD_GENERATOR.into(),
            cpu_s: own_cpu_seconds().unwrap_or(0.0) + shard_cpu.iter().sum::<f64>(),
            rss_mb,
        });
        writer.append(&CostRow {
            t: events.origin().elapsed().as_secs(),
            sample,
        })?;
        if last {
            return Ok(());
        }
    }
}
