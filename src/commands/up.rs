//! `gameday up [--scenario FILE]`: deploy the shop on the scenario's
//! platform. On the local platform the stack is kept until Ctrl-C, SIGTERM
//! or `gameday down` (with --detach, a supervisor process keeps it), and
//! `gameday inject` faults are applied and undone by the chaos engine here.

use std::path::PathBuf;

use crate::{
    chaos, exit_codes,
    platform::{self, Up, UpOptions},
};

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Take the platform and topology from this scenario's `target` section.
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

pub async fn run(args: UpArgs) -> anyhow::Result<i32> {
    let spec = match super::load_target(args.scenario.as_deref()) {
        Ok(s) => s.unwrap_or_default(),
        Err(code) => return Ok(code),
    };
    if let Err(e) = platform::preflight(&spec) {
        eprintln!("gameday: {e}");
        return Ok(exit_codes::USAGE);
    }
    let options = UpOptions {
        scenario: args.scenario.clone(),
        detach: args.detach,
        run_dir: args.run_dir.clone(),
        supervise: args.supervise,
    };
    let up = match platform::up(&spec, options).await {
        Ok(up) => up,
        Err(e) => {
            eprintln!("gameday: {e}");
            return Ok(exit_codes::ERROR);
        }
    };
    match up {
        Up::Done(code) => Ok(code),
        Up::Supervising(mut stack) => {
            let rollback = chaos::Rollback::default();
            if let Some(requests) = stack.take_requests() {
                chaos::serve(
                    stack.platform(),
                    stack.events(),
                    &rollback,
                    requests,
                    stack.stopping(),
                )
                .await;
            }
            // What `inject` left active is undone before the stack stops.
            rollback.run_all(stack.platform(), stack.events()).await;
            Ok(stack.finish().await)
        }
    }
}
