//! `gameday up [--scenario FILE]`: deploy the shop on the scenario's
//! platform. On the local platform the stack is kept until Ctrl-C, SIGTERM
//! or `gameday down` (with --detach, a supervisor process keeps it), and
//! `gameday inject` faults are applied and undone by the chaos engine here.

use std::{path::PathBuf, sync::Arc};

use crate::{
    chaos,
    events::EventLog,
    exit_codes,
    platform::{self, Kept, StopCause, Up, UpOptions, UpReport},
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
    /// Do not ask for confirmation on a real cloud or cluster.
    #[arg(long)]
    pub yes: bool,
    /// Internal: be the detached supervisor.
    #[arg(long, hide = true)]
    pub supervise: bool,
}

pub async fn run(args: UpArgs) -> anyhow::Result<i32> {
    let spec = match super::load_target(args.scenario.as_deref()) {
        Ok(s) => s.unwrap_or_default(),
        Err(code) => return Ok(code),
    };
    let backend = platform::backend(&spec);
    if let Err(e) = backend.preflight() {
        eprintln!("gameday: {e}");
        return Ok(exit_codes::USAGE);
    }
    // What a real account or cluster gets is confirmed first (it names the
    // AWS account, region and stack, or the cluster's context).
    if !args.supervise && !super::confirm(&spec, args.yes).await? {
        return Ok(exit_codes::USAGE);
    }
    let options = UpOptions {
        scenario: args.scenario.clone(),
        detach: args.detach,
        run_dir: args.run_dir.clone(),
        supervise: args.supervise,
    };
    let events = Arc::new(EventLog::new(None)?);
    let progress = super::show_progress(&events);
    let up = backend.up(events.clone(), options).await;
    drop(events);
    let _ = progress.await;
    match up {
        Err(e) => {
            eprintln!("gameday: {e}");
            Ok(exit_codes::ERROR)
        }
        Ok(Up::Report(report)) => {
            print_report(&report);
            Ok(exit_codes::OK)
        }
        Ok(Up::Kept(kept)) => Ok(keep(kept).await),
    }
}

fn print_report(r: &UpReport) {
    if r.created {
        println!("Up: {}.", r.place);
    } else {
        println!("Up: {} (it was there already).", r.place);
    }
    println!("  storefront: {}", r.entry_url);
    for note in &r.notes {
        println!("  {note}");
    }
    println!("{}.", r.remove_with);
}

/// Keeps the shop in this process: serves `gameday inject` until the
/// stack must stop, undoes what is still active, stops the stack.
async fn keep(mut kept: Box<dyn Kept>) -> i32 {
    print_report(&kept.report());
    let rollback = chaos::Rollback::default();
    if let Some(requests) = kept.take_requests() {
        chaos::serve(
            kept.platform(),
            kept.events(),
            &rollback,
            requests,
            kept.stopping(),
        )
        .await;
    }
    // What `inject` left active is undone before the stack stops.
    rollback.run_all(kept.platform(), kept.events()).await;
    eprintln!("gameday: stopping the shop");
    let cause = kept.finish().await;
    eprintln!("gameday: stopped");
    match cause {
        StopCause::Interrupted => exit_codes::INTERRUPTED,
        StopCause::Terminated => exit_codes::OK,
        StopCause::Failed => {
            eprintln!("gameday: the stack's control socket failed");
            exit_codes::ERROR
        }
    }
}
