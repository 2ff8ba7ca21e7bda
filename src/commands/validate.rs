//! `gameday validate FILE`: check a scenario file; every problem is printed
//! with file, line, column and key; exit 2 if there is any.

use std::path::Path;

use crate::{exit_codes, scenario::Scenario};

pub fn run(path: &Path) -> anyhow::Result<i32> {
    match Scenario::load(path) {
        Ok(s) => {
            println!(
                "{}: valid: scenario `{}`, {} stage(s) over {}, peak {} users, {} fault(s), {} stop rule(s)",
                path.display(),
                s.name,
                s.load.stages.len(),
                humantime::format_duration(s.load.length()),
                s.load.peak_users(),
                s.faults.len(),
                s.stop_when.len()
            );
            Ok(exit_codes::OK)
        }
        Err(errors) => {
            eprintln!("{errors}");
            Ok(exit_codes::USAGE)
        }
    }
}
