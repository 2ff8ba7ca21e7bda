//! Once a second during the load: what every component of the platform and
//! the load generator itself have cost so far, appended to `cost.jsonl`.

use std::{path::Path, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{
    errors::Result,
    events::EventLog,
    load::monitor::{own_cpu_seconds, own_rss_mb},
    platform::{ComponentCost, Platform},
    record::{CostRow, CostWriter, LOAD_GENERATOR},
};

pub(super) async fn sample(
    platform: &dyn Platform,
    events: &EventLog,
    dir: &Path,
    done: CancellationToken,
) -> Result<()> {
    let mut writer = CostWriter::create(dir)?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let last = tokio::select! {
            _ = done.cancelled() => true,
            _ = tick.tick() => false,
        };
        let mut sample = platform.sample().await;
        sample.components.push(ComponentCost {
            name: LOAD_GENERATOR.into(),
            cpu_s: own_cpu_seconds().unwrap_or(0.0),
            rss_mb: own_rss_mb().unwrap_or(0.0),
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
