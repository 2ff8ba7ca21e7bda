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
    /// Start the whole shop on this machine (HAProxy, MariaDB primary and
    /// standby, Redis, RabbitMQ, replicas spread over instances) and wait
    /// until it is ready.
    Up(UpArgs),
    /// Show what runs where.
    Status {
        /// Machine-readable output (the shape in DESIGN.md section 8).
        #[arg(long)]
        json: bool,
    },
    /// Stop everything `gameday up` started, from any shell.
    Down,
    /// Run a scenario on the local platform: shoppers, SLO verdict, reports.
    Run {
        /// The scenario file.
        file: PathBuf,
        /// The run directory (default: <report.dir>/<scenario>-<timestamp>).
        #[arg(long, value_name = "DIR")]
        output: Option<PathBuf>,
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
    Inject(InjectArgs),
}

#[derive(Debug, clap::Args)]
pub struct InjectArgs {
    /// kill-pod, terminate-instance, db-failover, restart-cache or restart-broker.
    pub kind: String,
    /// kill-pod: the service whose replicas to kill.
    #[arg(long)]
    pub service: Option<String>,
    /// How many targets (kill-pod, terminate-instance).
    #[arg(long)]
    pub count: Option<u32>,
    /// A share of the candidates instead of a count, such as 50%.
    #[arg(long)]
    pub percent: Option<String>,
    /// The most targets a percent may hit.
    #[arg(long)]
    pub max: Option<u32>,
    /// restart-cache, restart-broker: keep the server down this long (such as 10s).
    #[arg(long)]
    pub duration: Option<String>,
    /// db-failover: do not build a new standby afterwards.
    #[arg(long)]
    pub no_rebuild: bool,
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Take the topology from this scenario's `target` section.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Return once the shop is ready and leave a supervisor running;
    /// `gameday down` stops it.
    #[arg(long)]
    pub detach: bool,
    /// Where the stack keeps its files (default: in gameday's state directory).
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Internal: be the detached supervisor.
    #[arg(long, hide = true)]
    pub supervise: bool,
}

pub async fn run(cli: Cli) -> i32 {
    let outcome = match cli.command {
        Command::Up(args) => commands::up::run(args).await,
        Command::Status { json } => commands::status::run(json),
        Command::Down => commands::down::run().await,
        Command::Run { file, output } => commands::run::run(&file, output).await,
        Command::Report { run_dir } => commands::run::report(&run_dir),
        Command::Validate { file } => commands::validate::run(&file),
        Command::Plan { file } => commands::plan::run(&file),
        Command::Inject(args) => commands::inject::run(args).await,
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gameday: {e:#}");
            exit_codes::ERROR
        }
    }
}
