//! The coordinator's side of the shards, whatever runs them: each shard is
//! a [`ShardLink`] (a line-oriented input and output, and what to say when
//! its output ends). The coordinator sends each its plan, waits until every
//! one is ready, starts them together, reads their seconds into the
//! [`Merger`] and stops them. [`super::local`] makes links of processes on
//! this machine, [`super::kubernetes`] of the pods of an Indexed Job.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader},
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

/// How long a shard may take to say it is ready once it has its plan.
pub const READY_WITHIN: Duration = Duration::from_secs(60);
/// A running shard silent this many seconds behind the others is lost.
pub const SILENT_AFTER_S: u64 = 10;

/// Why a shard's output ended, once it has: its exit status, its pod's
/// state. It owns what keeps the shard running (a child process, an
/// attached stream), which ends with it.
pub type Ended = Pin<Box<dyn Future<Output = String> + Send>>;

/// One shard, as the coordinator reaches it.
pub struct ShardLink {
    pub index: u32,
    pub input: Box<dyn AsyncWrite + Send + Unpin>,
    pub output: Box<dyn AsyncRead + Send + Unpin>,
    pub ended: Ended,
    /// Where to read more about it (the end of its log, a command).
    pub log: Box<dyn Fn() -> String + Send + Sync>,
    /// Its process on this machine, if it is one (for the cost table).
    pub pid: Option<u32>,
}

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

/// Something to undo once the shards are over (the Job they run in).
pub type Teardown = Pin<Box<dyn Future<Output = std::result::Result<String, String>> + Send>>;

/// Every shard of a run, ready.
pub struct Shards {
    inputs: Vec<Box<dyn AsyncWrite + Send + Unpin>>,
    pub pids: Vec<u32>,
    readers: Vec<JoinHandle<()>>,
    pub merged: Arc<MergedSeconds>,
    /// What `close` undoes; on a drop without `close`, it is spawned.
    teardown: Option<Teardown>,
}

impl Shards {
    /// Sends each link its plan and waits until each says it is ready
    /// (within [`READY_WITHIN`]); a shard that does not is an error naming
    /// it, and every shard is stopped (and `teardown` run).
    pub async fn connect(
        links: Vec<ShardLink>,
        plans: Vec<ShardPlan>,
        origin: Instant,
        teardown: Option<Teardown>,
    ) -> Result<Self> {
        let merger = Arc::new(Mutex::new(Merger::new(plans.len() as u32, 0)));
        let mut shards = Self {
            inputs: Vec::new(),
            pids: Vec::new(),
            readers: Vec::new(),
            merged: Arc::new(MergedSeconds {
                merger: merger.clone(),
                origin,
            }),
            teardown,
        };
        let mut ready = Vec::new();
        for (mut link, plan) in links.into_iter().zip(plans) {
            let index = link.index;
            let text = format!("{}\n", line(&plan));
            let sent = async {
                link.input.write_all(text.as_bytes()).await?;
                link.input.flush().await
            }
            .await;
            if let Err(e) = sent {
                shards.close().await;
                return Err(Error::io(format!("shard {index}'s input"), e));
            }
            shards.pids.extend(link.pid);
            shards.inputs.push(link.input);
            let (tx, rx) = oneshot::channel();
            ready.push((index, rx, link.log));
            shards.readers.push(tokio::spawn(read_shard(
                index,
                link.output,
                link.ended,
                merger.clone(),
                tx,
            )));
        }
        for (index, rx, log) in ready {
            let problem = match tokio::time::timeout(READY_WITHIN, rx).await {
                Ok(Ok(Ok(()))) => continue,
                Ok(Ok(Err(why))) => {
                    format!("shard {index} ended before it was ready: {why}{}", log())
                }
                Ok(Err(_)) => format!("shard {index} ended before it was ready{}", log()),
                Err(_) => format!(
                    "shard {index} was not ready within {} s{}",
                    READY_WITHIN.as_secs(),
                    log()
                ),
            };
            shards.close().await;
            return Err(Error::Load(problem));
        }
        Ok(shards)
    }

    async fn tell(&mut self, msg: &ToShard) {
        let text = format!("{}\n", line(msg));
        for input in &mut self.inputs {
            let _ = input.write_all(text.as_bytes()).await;
            let _ = input.flush().await;
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

    /// Ends every shard still running and undoes what was made for them
    /// (a Job and its pods), saying so on stderr. Safe to call twice.
    pub async fn close(&mut self) {
        for reader in &self.readers {
            reader.abort();
        }
        self.readers.clear();
        self.inputs.clear();
        if let Some(teardown) = self.teardown.take() {
            match teardown.await {
                Ok(done) => eprintln!("gameday: {done}"),
                Err(e) => eprintln!("gameday: {e}"),
            }
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

impl Drop for Shards {
    fn drop(&mut self) {
        // The readers own what keeps each shard running (its process, its
        // stream), which ends when they are dropped.
        for reader in &self.readers {
            reader.abort();
        }
        if let Some(teardown) = self.teardown.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if let Err(e) = teardown.await {
                    eprintln!("gameday: {e}");
                }
            });
        }
    }
}

/// Reads a shard's lines into the merger until its output ends; a shard
/// that ends without `done` is lost, with what ended it.
async fn read_shard(
    index: u32,
    output: Box<dyn AsyncRead + Send + Unpin>,
    ended: Ended,
    merger: Arc<Mutex<Merger>>,
    ready: oneshot::Sender<std::result::Result<(), String>>,
) {
    let mut ready = Some(ready);
    let mut problem: Option<String> = None;
    let mut done = false;
    let mut lines = BufReader::new(output).lines();
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
                    let _ = tx.send(Ok(()));
                }
            }
            FromShard::Second { t, steps, orders } => {
                let result = second_from_wire(&steps).and_then(|s| m.receive(index, t, s, orders));
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
    drop(lines);
    let status = ended.await;
    if let Some(tx) = ready.take() {
        let _ = tx.send(Err(match &problem {
            Some(p) => format!("{p}; {status}"),
            None => status.clone(),
        }));
    }
    if !done {
        let why = match problem {
            Some(p) => format!("{p}; {status}"),
            None => format!("it ended before its load did ({status})"),
        };
        if let Ok(mut m) = merger.lock() {
            m.lose(index, why);
        }
    }
}
