//! `gameday down [--scenario FILE]`: stop the local stack `gameday up`
//! started, from any shell, or remove what `up` deployed on the scenario's
//! platform.

use std::path::Path;

use crate::platform;

pub async fn run(scenario: Option<&Path>) -> anyhow::Result<i32> {
    let spec = match super::load_target(scenario) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    Ok(platform::down(spec.as_ref()).await?)
}
