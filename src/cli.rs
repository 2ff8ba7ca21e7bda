//! The command line (clap). Each command is a function in `commands/` that
//! returns an exit code from `exit_codes`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::{commands, exit_codes};

#[derive(Debug, Parser)]
#[command(
    name = "gameday",
    version,
    about = "Chaos and load for e-commerce systems: shoppers shop while things break"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Deploy the shop on the scenario's platform and wait until it is
    /// ready (default: the local platform, kept until Ctrl-C or `down`).
    Up(commands::up::UpArgs),
    /// Show what runs where.
    Status {
        /// Machine-readable output (the shape in DESIGN.md section 8).
        #[arg(long)]
        json: bool,
        /// The scenario's platform (default: the local stack `up` started).
        #[arg(long, value_name = "FILE")]
        scenario: Option<PathBuf>,
    },
    /// Stop everything `gameday up` started, from any shell (or, with
    /// --scenario, remove what `up` deployed on its platform).
    Down {
        #[arg(long, value_name = "FILE")]
        scenario: Option<PathBuf>,
    },
    /// Run a scenario: shoppers, faults, SLO verdict, reports.
    Run {
        /// The scenario file.
        file: PathBuf,
        /// The run directory (default: <report.dir>/<scenario>-<timestamp>).
        #[arg(long, value_name = "DIR")]
        output: Option<PathBuf>,
        /// Do not ask for confirmation on a real cloud or cluster.
        #[arg(long)]
        yes: bool,
    },
    /// Re-render a run's reports from its run directory.
    Report {
        /// A run directory written by `gameday run`.
        run_dir: PathBuf,
    },
    /// Check a scenario file: every problem with its line, column and key.
    Validate {
        /// The scenario file.
        file: PathBuf,
    },
    /// Print what a scenario will do, without starting anything.
    Plan {
        /// The scenario file.
        file: PathBuf,
    },
    /// Apply one fault now to the stack `gameday up` started, and print what
    /// it hit. A fault with --duration is undone after it (or at once on
    /// Ctrl-C, and by `gameday down`).
    Inject(commands::inject::InjectArgs),
    /// Compare two runs of a scenario: each figure side by side with its
    /// change; exit 3 when RUN regressed beyond a threshold.
    Compare(commands::compare::CompareArgs),
    /// One shard of a distributed load, started by `gameday run` (its plan
    /// on its input, its seconds on its output). Not for people.
    #[command(hide = true)]
    Shard {
        /// The shard's index (for `ps`: its plan says the same).
        #[arg(long)]
        index: u32,
        /// The run directory of the run it belongs to (for `ps`).
        #[arg(long, value_name = "DIR")]
        run_dir: Option<PathBuf>,
    },
}

pub async fn run(cli: Cli) -> i32 {
    let outcome = match cli.command {
        Command::Up(args) => commands::up::run(args).await,
        Command::Status { json, scenario } => {
            commands::status::run(json, scenario.as_deref()).await
        }
        Command::Down { scenario } => commands::down::run(scenario.as_deref()).await,
        Command::Run { file, output, yes } => commands::run::run(&file, output, yes).await,
        Command::Report { run_dir } => commands::run::report(&run_dir),
        Command::Validate { file } => commands::validate::run(&file),
        Command::Plan { file } => commands::plan::run(&file).await,
        Command::Inject(args) => commands::inject::run(args).await,
        Command::Compare(args) => commands::compare::run(&args),
        Command::Shard { .. } => {
            // Its input is read by a blocking thread that the runtime would
            // wait for at its end: a shard that is done ends at once.
            let code = match crate::load::shard::worker::run().await {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("gameday shard: {e}");
                    exit_code(&anyhow::Error::from(e))
                }
            };
            std::process::exit(code)
        }
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gameday: {e:#}");
            exit_code(&e)
        }
    }
}

/// The exit code an error ends a command with: gameday's own errors say
/// theirs ([`crate::Error::exit_code`]); anything else is an error.
fn exit_code(e: &anyhow::Error) -> i32 {
    if let Some(e) = e.downcast_ref::<crate::Error>() {
        return e.exit_code();
    }
    if let Some(e) = e.downcast_ref::<crate::platform::Error>() {
        return crate::Error::exit_code_of_platform(e);
    }
    exit_codes::ERROR
}
