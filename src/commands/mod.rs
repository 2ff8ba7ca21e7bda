//! One module per command. Each returns an exit code from `exit_codes`.
pub mod compare;
pub mod down;
pub mod inject;
pub mod plan;
pub mod run;
pub mod status;
pub mod up;
pub mod validate;

use std::{io::IsTerminal, path::Path};

use crate::{
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
pub fn confirm(spec: &PlatformSpec, yes: bool) -> bool {
    let Some(what) = platform::confirmation(spec) else {
        return true;
    };
    if yes {
        return true;
    }
    eprintln!("{what}");
    if !std::io::stdin().is_terminal() {
        eprintln!("gameday: not confirmed: pass --yes to act without a question");
        return false;
    }
    eprint!("Go ahead? [y/N] ");
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}
