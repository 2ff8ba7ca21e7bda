//! `gameday plan FILE`: what a run will do and what each fault would hit,
//! asked of the scenario's platform without acting on it.

use std::path::Path;

use crate::{exit_codes, platform};

pub async fn run(path: &Path) -> anyhow::Result<i32> {
    let scenario = match super::load_scenario(path) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let preview = match platform::preview(&scenario.target).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("gameday: {e}");
            return Ok(exit_codes::ERROR);
        }
    };
    print!("{}", crate::plan::render(&scenario, &*preview).await);
    preview.shutdown().await;
    Ok(exit_codes::OK)
}
