//! Shards as processes on this machine (`load.generators.platform: local`):
//! each is `gameday shard`, talking to the coordinator through its input
//! and output. They test the merge without a cluster; going past one
//! machine is the Kubernetes engine's job.

use std::{
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin, Command},
    sync::oneshot,
    task::JoinHandle,
};

use super::{
    merge::Merger,
    wire::{FromShard, ShardPlan, ToShard, line, second_from_wire},
};
use crate::{
    errors::{Error, Result},
    record::{Second, SecondSource},
};

/// How long a shard may take to say it is ready.
pub const READY_WITHIN: Duration = Duration::from_secs(60);
/// A running shard silent this many seconds behind the others is lost.
pub const SILENT_AFTER_S: u64 = 10;

/// The merged seconds of every shard, as the collector takes them.
pub struct MergedSeconds {
    pub merger: Arc<Mutex<Merger>>,
    origin: Instant,
}

impl SecondSource for MergedSeconds {
    fn current_second(&self) -> u64 {
        self.origin.elapsed().as_secs()
    }

    fn take_before(&self, before: u64) -> std::collections::BTreeMap<u64, Second> {
        let Ok(mut m) = self.merger.lock() else {
            return Default::default();
        };
        for shard in m.silent(SILENT_AFTER_S) {
            m.lose(
                shard,
                format!("it sent nothing for {SILENT_AFTER_S} s while the others went on"),
            );
        }
        m.take_before(before)
    }

    fn take_all(&self) -> std::collections::BTreeMap<u64, Second> {
        self.merger
            .lock()
            .map(|mut m| m.take_all())
            .unwrap_or_default()
    }
}

pub struct LocalShards {
    inputs: Vec<Option<ChildStdin>>,
    pub pids: Vec<u32>,
    readers: Vec<JoinHandle<()>>,
    pub merged: Arc<MergedSeconds>,
}

impl LocalShards {
    /// Starts one process per plan and waits until each says it is ready
    /// (within [`READY_WITHIN`]); a shard that does not is an error naming
    /// it, with the end of its log, and every shard is stopped.
    pub async fn spawn(plans: Vec<ShardPlan>, run_dir: &Path, origin: Instant) -> Result<Self> {
        let exe = std::env::current_exe().map_err(|e| Error::io("gameday's own executable", e))?;
        let merger = Arc::new(Mutex::new(Merger::new(plans.len() as u32, 0)));
        let mut shards = Self {
            inputs: Vec::new(),
            pids: Vec::new(),
            readers: Vec::new(),
            merged: Arc::new(MergedSeconds {
                merger: merger.clone(),
                origin,
            }),
        };
        let mut ready = Vec::new();
        for plan in plans {
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
            // A shard dies with its coordinator, however the coordinator
            // ends (spawned from a tokio worker, a long-lived thread: the
            // signal fires when the spawning thread ends).
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
            let mut input = child.stdin.take();
            if let Some(stdin) = input.as_mut() {
                let text = format!("{}\n", line(&plan));
                stdin
                    .write_all(text.as_bytes())
                    .await
                    .map_err(|e| Error::io(format!("shard {index}'s input"), e))?;
            }
            shards.pids.push(child.id().unwrap_or(0));
            shards.inputs.push(input);
            let (tx, rx) = oneshot::channel();
            ready.push((index, rx, log_path));
            shards
                .readers
                .push(tokio::spawn(read_shard(index, child, merger.clone(), tx)));
        }
        for (index, rx, log_path) in ready {
            match tokio::time::timeout(READY_WITHIN, rx).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    return Err(Error::Load(format!(
                        "shard {index} ended before it was ready{}",
                        log_tail(&log_path)
                    )));
                }
                Err(_) => {
                    return Err(Error::Load(format!(
                        "shard {index} was not ready within {} s{}",
                        READY_WITHIN.as_secs(),
                        log_tail(&log_path)
                    )));
                }
            }
        }
        Ok(shards)
    }

    async fn tell(&mut self, msg: &ToShard) {
        let text = format!("{}\n", line(msg));
        for input in self.inputs.iter_mut().flatten() {
            let _ = input.write_all(text.as_bytes()).await;
        }
    }

    /// Every shard starts now; the run's clock started `origin_ago` ago
    /// (a whole number of seconds: the load starts on a second).
    pub async fn start(&mut self, origin_ago: Duration, window: (u64, u64)) {
        if let Ok(mut m) = self.merged.merger.lock() {
            m.begin_at(origin_ago.as_secs());
        }
        self.tell(&ToShard::Start {
            origin_ago_ms: origin_ago.as_millis() as u64,
            window,
        })
        .await;
    }

    /// Every shard stops its shoppers and sends what is left.
    pub async fn stop(&mut self) {
        self.tell(&ToShard::Stop).await;
    }

    /// Until every shard has ended (sent its last line and exited). Safe
    /// to cancel and call again.
    pub async fn finished(&mut self) {
        while let Some(reader) = self.readers.first_mut() {
            let _ = reader.await;
            self.readers.remove(0);
        }
    }

    /// The order ids acknowledged to any shard.
    pub fn acknowledged(&self) -> Vec<String> {
        self.merged
            .merger
            .lock()
            .map(|m| m.acknowledged().to_vec())
            .unwrap_or_default()
    }
}

impl Drop for LocalShards {
    fn drop(&mut self) {
        // The readers own the processes (killed when dropped).
        for reader in &self.readers {
            reader.abort();
        }
    }
}

/// Reads a shard's lines into the merger until it ends; a shard that ends
/// without `done` is lost, with its exit status.
async fn read_shard(
    index: u32,
    mut child: Child,
    merger: Arc<Mutex<Merger>>,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut problem: Option<String> = None;
    let mut done = false;
    if let Some(stdout) = child.stdout.take() {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(text)) = lines.next_line().await {
            let msg = match serde_json::from_str::<FromShard>(&text) {
                Ok(msg) => msg,
                Err(e) => {
                    problem.get_or_insert(format!("it sent a line that is not its protocol: {e}"));
                    continue;
                }
            };
            let Ok(mut m) = merger.lock() else { break };
            match msg {
                FromShard::Ready { .. } => {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
                FromShard::Second { t, steps, orders } => {
                    let result =
                        second_from_wire(&steps).and_then(|s| m.receive(index, t, s, orders));
                    if let Err(e) = result {
                        problem.get_or_insert(e);
                    }
                }
                FromShard::Done { health, orders } => {
                    m.finish(index, health, orders);
                    done = true;
                }
                FromShard::Failed { error } => {
                    problem.get_or_insert(format!("it failed: {error}"));
                }
            }
        }
    }
    let status = child.wait().await;
    if !done {
        let status = match status {
            Ok(s) => describe_exit(s),
            Err(e) => format!("its status is unknown: {e}"),
        };
        let why = match problem {
            Some(p) => format!("{p}; {status}"),
            None => format!("its process ended before its load did ({status})"),
        };
        if let Ok(mut m) = merger.lock() {
            m.lose(index, why);
        }
    }
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
