//! One module per command. Each returns an exit code from `exit_codes`.
pub mod compare;
pub mod down;
pub mod inject;
pub mod plan;
pub mod run;
pub mod status;
pub mod up;
pub mod validate;

use std::{io::IsTerminal, path::Path, sync::Arc};

use crate::{
    events::{EventKind, EventLog},
    exit_codes, platform,
    scenario::{PlatformSpec, Scenario},
};

/// Loads a scenario and checks it against its platform (every fault the
/// platform cannot perform is refused with its reason and line); on a
/// problem, prints every one and gives exit code 2.
pub fn load_scenario(path: &Path) -> Result<Scenario, i32> {
    Scenario::load_with(path, platform::check_faults).map_err(|errors| {
        eprintln!("{errors}");
        exit_codes::USAGE
    })
}

/// Reads the `target` of a scenario file given with `--scenario`.
pub fn load_target(path: Option<&Path>) -> Result<Option<PlatformSpec>, i32> {
    path.map(|p| {
        PlatformSpec::from_scenario_file(p).map_err(|e| {
            eprintln!("{e}");
            exit_codes::USAGE
        })
    })
    .transpose()
}

/// Asks a person to confirm acting on a real cloud or cluster, unless `yes`
/// or nothing needs confirming; false when not confirmed.
pub async fn confirm(spec: &PlatformSpec, yes: bool) -> Result<bool, crate::Error> {
    let Some(what) = platform::backend(spec).confirmation().await? else {
        return Ok(true);
    };
    if !what.ask {
        eprintln!(
            "gameday: {} (a stand-in on this machine: nothing to confirm)",
            what.text
        );
        return Ok(true);
    }
    if yes {
        return Ok(true);
    }
    eprintln!("{}", what.text);
    if !std::io::stdin().is_terminal() {
        eprintln!("gameday: not confirmed: pass --yes to act without a question");
        return Ok(false);
    }
    eprint!("Go ahead? [y/N] ");
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Prints the platform's progress from `events` on stderr as it comes,
/// until the returned task is aborted (or the log is dropped).
pub fn show_progress(events: &Arc<EventLog>) -> tokio::task::JoinHandle<()> {
    let mut rx = events.subscribe();
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(event) => {
                    if let Some(line) = progress_line(&event.kind) {
                        eprintln!("gameday: {line}");
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}

/// What a person watching sees of an event (the platform's long steps).
fn progress_line(kind: &EventKind) -> Option<String> {
    match kind {
        EventKind::PlatformStarting { detail: Some(d) } => Some(d.clone()),
        EventKind::PlatformProgress { detail } => Some(detail.clone()),
        EventKind::PlatformReady { entry_url } => {
            Some(format!("the shop is ready; shoppers enter at {entry_url}"))
        }
        _ => None,
    }
}
