//! `gameday validate FILE`: check a scenario file against its platform;
//! every problem is printed with file, line, column and key; exit 2 if there
//! is any.

use std::path::Path;

use crate::exit_codes;

pub fn run(path: &Path) -> anyhow::Result<i32> {
    let s = match super::load_scenario(path) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    println!(
        "{}: valid: scenario `{}` on the {} platform, {} stage(s) over {}, peak {} users, {} fault(s), {} stop rule(s)",
        path.display(),
        s.name,
        s.target.name(),
        s.load.stages.len(),
        humantime::format_duration(s.load.length()),
        s.load.peak_users(),
        s.faults.len(),
        s.stop_when.len()
    );
    Ok(exit_codes::OK)
}
