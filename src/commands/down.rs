//! `gameday down [--scenario FILE]`: stop the local stack `gameday up`
//! started, from any shell, or remove what `up` deployed on the scenario's
//! platform.

use std::{path::Path, sync::Arc};

use crate::{events::EventLog, exit_codes, platform};

pub async fn run(scenario: Option<&Path>) -> anyhow::Result<i32> {
    let spec = match super::load_target(scenario) {
        Ok(s) => s.unwrap_or_default(),
        Err(code) => return Ok(code),
    };
    let events = Arc::new(EventLog::new(None)?);
    let progress = super::show_progress(&events);
    let removed = platform::backend(&spec).down(events.clone()).await;
    drop(events);
    let _ = progress.await;
    let removed = removed?;
    let what = capitalized(&removed.what);
    if removed.existed {
        println!("{what} is gone.");
    } else {
        println!(
            "{what} does not exist {}: nothing to remove.",
            removed.place
        );
    }
    for note in &removed.notes {
        println!("  {note}");
    }
    Ok(exit_codes::OK)
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
