//! `gameday compare BASE RUN`: two runs side by side with each figure's
//! change; exit 3 when RUN regressed beyond a threshold, 2 when a directory
//! cannot be read or the runs are of different scenarios.

use std::path::PathBuf;

use crate::{
    exit_codes,
    report::compare::{self, Limit, Thresholds},
};

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The run to compare against (last night's).
    pub base: PathBuf,
    /// The run to judge.
    pub run: PathBuf,
    /// Fail when RUN's overall p99 grew by more than this, such as 20%.
    #[arg(long, value_name = "PERCENT")]
    pub max_p99_increase: Option<String>,
    /// Fail when RUN's availability dropped by more than this many
    /// percentage points, such as 0.01%.
    #[arg(long, value_name = "PERCENT")]
    pub max_availability_drop: Option<String>,
    /// Fail when a fault's recovery grew by more than this: a share (20%)
    /// or a duration (10s).
    #[arg(long, value_name = "PERCENT|DURATION")]
    pub max_recovery_increase: Option<String>,
    /// Print the comparison as JSON.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print the comparison as Markdown (a CI job summary).
    #[arg(long)]
    pub markdown: bool,
    /// Where to write compare.html (default: RUN/compare.html).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

fn thresholds(args: &CompareArgs) -> Result<Thresholds, String> {
    let pct = |flag: &str, v: &Option<String>| -> Result<Option<f64>, String> {
        v.as_deref()
            .map(|t| {
                Limit::parse_percent(t).ok_or_else(|| {
                    format!("--{flag}: expected a percentage such as 20%, got `{t}`")
                })
            })
            .transpose()
    };
    let recovery = args
        .max_recovery_increase
        .as_deref()
        .map(|t| {
            Limit::parse_percent(t)
                .map(Limit::Relative)
                .or_else(|| crate::scenario::parse_duration(t).map(|d| Limit::Absolute(d.as_secs_f64())))
                .ok_or_else(|| {
                    format!(
                        "--max-recovery-increase: expected a percentage (20%) or a duration (10s), got `{t}`"
                    )
                })
        })
        .transpose()?;
    Ok(Thresholds {
        max_p99_increase: pct("max-p99-increase", &args.max_p99_increase)?,
        max_availability_drop: pct("max-availability-drop", &args.max_availability_drop)?,
        max_recovery_increase: recovery,
    })
}

pub fn run(args: &CompareArgs) -> anyhow::Result<i32> {
    let t = match thresholds(args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("gameday: {e}");
            return Ok(exit_codes::USAGE);
        }
    };
    let c = match compare::compare(&args.base, &args.run, &t) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gameday: cannot compare: {e}");
            return Ok(exit_codes::USAGE);
        }
    };
    let html = args
        .output
        .clone()
        .unwrap_or_else(|| args.run.join("compare.html"));
    std::fs::write(&html, compare::render_html(&c))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else if args.markdown {
        print!("{}", c.markdown());
    } else {
        print!("{}", c.text());
        println!("\nCompared in {}", html.display());
    }
    Ok(if c.regressed {
        exit_codes::SLO_BREACHED
    } else {
        exit_codes::OK
    })
}
