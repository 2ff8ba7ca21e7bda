//! Shards as processes on this machine (`load.generators.platform: local`):
//! each is `gameday shard`, talking to the coordinator through its input
//! and output. They test the merge without a cluster; going past one
//! machine is [`super::kubernetes`]'s job.

use std::{path::Path, process::Stdio, time::Instant};

use tokio::process::Command;

use super::{
    coordinator::{ShardLink, Shards},
    wire::ShardPlan,
};
use crate::errors::{Error, Result};

/// Starts one process per plan and waits until each says it is ready; a
/// shard that does not is an error naming it, with the end of its log
/// (`run_dir/shard-N.log`), and every shard is stopped.
pub async fn spawn(plans: Vec<ShardPlan>, run_dir: &Path, origin: Instant) -> Result<Shards> {
    let exe = std::env::current_exe().map_err(|e| Error::io("gameday's own executable", e))?;
    let mut links = Vec::new();
    for plan in &plans {
        let index = plan.index;
        let log_path = run_dir.join(format!("shard-{index}.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| Error::io(&log_path, e))?;
        let mut command = Command::new(&exe);
        command
            .arg("shard")
            .arg("--index")
            .arg(index.to_string())
            .arg("--run-dir")
            .arg(run_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            // Ctrl-C reaches the coordinator alone, which stops them.
            .process_group(0)
            .kill_on_drop(true);
        // A shard dies with its coordinator, however the coordinator ends
        // (spawned from a tokio worker, a long-lived thread: the signal
        // fires when the spawning thread ends).
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .map_err(|e| Error::io(format!("shard {index} ({})", exe.display()), e))?;
        let (Some(input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Error::Load(format!("shard {index} has no input or output")));
        };
        let pid = child.id();
        links.push(ShardLink {
            index,
            input: Box::new(input),
            output: Box::new(output),
            ended: Box::pin(async move {
                match child.wait().await {
                    Ok(s) => describe_exit(s),
                    Err(e) => format!("its status is unknown: {e}"),
                }
            }),
            log: Box::new(move || log_tail(&log_path)),
            pid,
        });
    }
    Shards::connect(links, plans, origin, None).await
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

/// The last lines of a shard's log, to say why it failed.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    if lines.is_empty() {
        String::new()
    } else {
        let tail: Vec<&str> = lines.into_iter().rev().collect();
        format!(" ({}: {})", path.display(), tail.join(" / "))
    }
}
