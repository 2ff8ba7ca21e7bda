//! What a run produces, computed from its recorded run directory only:
//! summary.json, junit.xml and report.html. `gameday report RUN_DIR`
//! derives them again from the same files.

pub mod charts;
pub mod compare;
pub mod cost;
pub mod html;
pub mod junit;
pub mod summary;

use std::path::Path;

pub use summary::{
    FaultSummary, LoadGenerator, Orders, RunInfo, ScaleOut, ShardLine, Summary, summarize,
};

use crate::{
    errors::{Error, Result},
    record::{FORMAT, read_timeline},
    scenario::Scenario,
};

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// summary.json, junit.xml and report.html from the run directory.
pub fn write_reports(
    run_dir: &Path,
    scenario: &Scenario,
    plan: &str,
    info: RunInfo,
) -> Result<Summary> {
    let timeline = read_timeline(run_dir)?;
    let summary = summarize(scenario, &timeline, info);
    write(
        &run_dir.join("summary.json"),
        &serde_json::to_string_pretty(&summary).unwrap_or_default(),
    )?;
    write(&run_dir.join("junit.xml"), &junit::render(&summary))?;
    write(
        &run_dir.join("report.html"),
        &html::render(&html::Input {
            summary: &summary,
            scenario,
            plan,
            timeline: &timeline,
        }),
    )?;
    Ok(summary)
}

/// Why a run directory could not be re-rendered.
#[derive(Debug)]
pub enum RerenderError {
    /// Not a run directory this version can read (exit code 2).
    Unreadable(String),
    Failed(Error),
}

/// Reads a run directory's scenario and `run.json` (a run that crashed
/// before writing it has none: its figures come from its timeline alone).
pub fn read_run(run_dir: &Path) -> std::result::Result<(Scenario, RunInfo), RerenderError> {
    let scenario_path = run_dir.join("scenario.yaml");
    if !scenario_path.is_file() {
        return Err(RerenderError::Unreadable(format!(
            "{} is not a run directory: it has no scenario.yaml",
            run_dir.display()
        )));
    }
    let scenario =
        Scenario::load(&scenario_path).map_err(|e| RerenderError::Unreadable(e.to_string()))?;
    let info: RunInfo = match std::fs::read_to_string(run_dir.join("run.json")) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            RerenderError::Unreadable(format!("{}: {e}", run_dir.join("run.json").display()))
        })?,
        Err(_) => RunInfo::default(),
    };
    if info.format > FORMAT {
        return Err(RerenderError::Unreadable(format!(
            "{} was written by a newer gameday (run directory format {}; this version reads formats 1 to {FORMAT})",
            run_dir.display(),
            info.format
        )));
    }
    Ok((scenario, info))
}

/// `gameday report RUN_DIR`.
pub fn rerender(run_dir: &Path) -> std::result::Result<Summary, RerenderError> {
    let (scenario, info) = read_run(run_dir)?;
    if !run_dir.join("timeline.jsonl").is_file() {
        return Err(RerenderError::Unreadable(format!(
            "{} has no timeline.jsonl: the run stopped before its shoppers started",
            run_dir.display()
        )));
    }
    let plan = std::fs::read_to_string(run_dir.join("plan.txt"))
        .unwrap_or_else(|_| "(this run directory has no plan.txt)".into());
    write_reports(run_dir, &scenario, &plan, info).map_err(RerenderError::Failed)
}
