//! `gameday run FILE`: the scenario's run (see `run::Runner`), its verdict
//! printed, and an exit code CI can act on; `gameday report RUN_DIR`
//! re-renders a run's reports from its directory.

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use crate::{
    errors::Error,
    exit_codes, platform,
    report::{self, Summary},
    run::Runner,
    slo::Verdict,
};

pub async fn run(file: &Path, output: Option<PathBuf>, yes: bool) -> anyhow::Result<i32> {
    let scenario = match super::load_scenario(file) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    platform::backend(&scenario.target)
        .preflight()
        .map_err(Error::from)?;
    if !super::confirm(&scenario.target, yes).await? {
        return Ok(exit_codes::ERROR);
    }
    let stop = CancellationToken::new();
    let interrupted = watch_signals(stop.clone());
    eprintln!(
        "gameday: starting the shop on the {} platform",
        scenario.target.name()
    );
    let runner = Runner::new(scenario, file, output)?;
    eprintln!("gameday: files in {}", runner.run_dir().display());
    let progress = super::show_progress(runner.events());
    let outcome = runner.run(stop, interrupted).await;
    progress.abort();
    let outcome = outcome?;
    print_outcome(&outcome.summary, &outcome.run_dir);
    Ok(if outcome.interrupted {
        exit_codes::INTERRUPTED
    } else {
        outcome.summary.exit_code
    })
}

/// Cancels `stop` on Ctrl-C or SIGTERM; the returned token says it happened.
///
/// Ctrl-C is taken with the `ctrlc` crate, not tokio: goose installs a
/// `ctrlc` handler when an attack starts, which would replace tokio's (and
/// exit the process, skipping every undo, on a second Ctrl-C). The crate
/// allows one handler per process, so installing gameday's first leaves
/// goose without one (goose then carries on, as it does in tests), and the
/// run stops goose itself with its killswitch.
fn watch_signals(stop: CancellationToken) -> CancellationToken {
    let interrupted = CancellationToken::new();
    let on_signal = {
        let (flag, stop) = (interrupted.clone(), stop.clone());
        move || {
            if !flag.is_cancelled() {
                eprintln!("\ngameday: stopping the run, then cleaning up");
            }
            flag.cancel();
            stop.cancel();
        }
    };
    let on_int = on_signal.clone();
    if let Err(e) = ctrlc::set_handler(on_int) {
        tracing::warn!("cannot take Ctrl-C: {e}");
    }
    tokio::spawn(async move {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            term.recv().await;
            on_signal();
        }
    });
    interrupted
}

/// The verdict's first line: the verdict, its exit code, and why when it
/// is inconclusive; what makes its figures untrustworthy when it is not.
fn verdict_line(s: &Summary) -> String {
    let mut line = format!("Verdict: {} (exit code {})", s.verdict.word(), s.exit_code);
    if s.verdict == Verdict::Inconclusive {
        line.push_str(" because ");
        line.push_str(&s.inconclusive.join("; "));
    } else if !s.caveats.is_empty() {
        line.push_str(", but ");
        line.push_str(&s.caveats.join("; "));
    }
    line
}

fn print_outcome(s: &Summary, run_dir: &Path) {
    println!();
    println!("{}", verdict_line(s));
    for slo in &s.slos {
        println!(
            "  {:<24} goal {:<12} observed {:<14} {}",
            slo.name,
            slo.target,
            slo.observed.as_deref().unwrap_or("-"),
            slo.result_word()
        );
    }
    let n = |v: Option<u64>| v.map_or("not measured".to_string(), |v| v.to_string());
    println!(
        "Requests: {} ({} failed); orders accepted {}, lost {}",
        s.requests.total,
        s.requests.failed,
        n(s.orders.accepted),
        n(s.orders.lost)
    );
    for line in &s.load_generator.shards {
        let state = match (&line.lost, line.saturated) {
            (Some(why), _) => format!("LOST: {why}"),
            (None, Some(true)) => "SATURATED".into(),
            _ => String::new(),
        };
        println!(
            "  shard {:<3} {:>9} requests  cpu {:>5}  lag p99 {:>8}  {state}",
            line.index,
            line.requests,
            line.cpu_percent_max
                .map_or("-".into(), |c| format!("{c:.0}%")),
            line.lag_ms_p99.map_or("-".into(), crate::slo::millis),
        );
    }
    println!("Report: {}", run_dir.join("report.html").display());
}

/// `gameday report RUN_DIR`: re-render the reports from a run directory.
pub fn report(run_dir: &Path) -> anyhow::Result<i32> {
    match report::rerender(run_dir) {
        Ok(summary) => {
            println!("{}", verdict_line(&summary));
            println!("Report: {}", run_dir.join("report.html").display());
            Ok(summary.exit_code)
        }
        Err(report::RerenderError::Unreadable(why)) => {
            eprintln!("gameday: {why}");
            Ok(exit_codes::USAGE)
        }
        Err(report::RerenderError::Failed(e)) => Err(e.into()),
    }
}
