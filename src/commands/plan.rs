//! `gameday plan FILE`: what a run will do and what each fault would hit,
//! asked of the scenario's platform without acting on it.

use std::{path::Path, sync::Arc};

use crate::{
    events::EventLog,
    exit_codes,
    platform::{self, Purpose},
};

pub async fn run(path: &Path) -> anyhow::Result<i32> {
    let scenario = match super::load_scenario(path) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let events = Arc::new(EventLog::new(None)?);
    let platform = match platform::open(&scenario.target, Purpose::Plan, events).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("gameday: {e}");
            return Ok(exit_codes::ERROR);
        }
    };
    print!("{}", crate::plan::render(&scenario, &*platform).await);
    platform.shutdown().await;
    Ok(exit_codes::OK)
}
