//! `gameday inject KIND [args]`: one fault, now, on the stack `gameday up`
//! started. The fault is written as a one-fault scenario and validated like
//! any scenario (same keys, same errors), then sent to the stack's
//! supervisor over its control socket (`control.sock` in the stack's
//! directory); the supervisor applies it, undoes a lasting one after its
//! duration, and undoes whatever is still active when it stops.

use std::{path::Path, time::Duration};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
};

use crate::{
    chaos::{self, Rollback},
    cli::InjectArgs,
    events::EventLog,
    exit_codes,
    platform::local::{LocalPlatform, stacks},
    scenario::{Fault, Scenario},
};

pub const SOCKET: &str = "control.sock";

#[derive(Serialize, Deserialize)]
struct Request {
    /// A one-fault scenario.
    scenario: String,
}

#[derive(Serialize, Deserialize)]
struct Response {
    id: Option<String>,
    targets: Vec<String>,
    error: Option<String>,
    undo_after_s: Option<f64>,
}

/// The one-fault scenario for `args`.
fn scenario_text(args: &InjectArgs) -> String {
    let mut fields = Vec::new();
    if let Some(s) = &args.service {
        fields.push(format!("service: {s:?}"));
    }
    if let Some(n) = args.count {
        fields.push(format!("count: {n}"));
    }
    if let Some(p) = &args.percent {
        fields.push(format!("percent: {p:?}"));
    }
    if let Some(m) = args.max {
        fields.push(format!("max: {m}"));
    }
    if args.no_rebuild {
        fields.push("rebuild-standby: false".into());
    }
    let duration = args
        .duration
        .as_ref()
        .map(|d| format!("    duration: {d:?}\n"))
        .unwrap_or_default();
    format!(
        "name: inject\nload:\n  stages:\n    - {{ users: 1, over: 1s }}\nfaults:\n  - name: {kind} (by hand)\n    at: 0s\n{duration}    {kind}: {{ {} }}\n",
        fields.join(", "),
        kind = args.kind
    )
}

fn parse(text: &str) -> Result<Fault, String> {
    let scenario = Scenario::parse(Path::new("<inject>"), text).map_err(|e| e.to_string())?;
    scenario
        .faults
        .into_iter()
        .next()
        .ok_or_else(|| "no fault".to_string())
}

pub async fn run(args: InjectArgs) -> anyhow::Result<i32> {
    let text = scenario_text(&args);
    if let Err(e) = parse(&text) {
        eprintln!("gameday: {}", e.replace("<inject>: ", ""));
        return Ok(exit_codes::USAGE);
    }
    let Some(current) = stacks::read_current().filter(|c| c.supervisor_alive()) else {
        eprintln!("gameday: no stack is up; start one with `gameday up --detach`");
        return Ok(exit_codes::ERROR);
    };
    let socket = current.run_dir.join(SOCKET);
    let mut stream = UnixStream::connect(&socket)
        .await
        .with_context(|| format!("connecting to {}", socket.display()))?;
    let mut line = serde_json::to_string(&Request { scenario: text })?;
    line.push('\n');
    stream.write_all(line.as_bytes()).await?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).await?;
    let response: Response = serde_json::from_str(&reply).context("the supervisor's answer")?;
    if let Some(e) = response.error {
        eprintln!("gameday: {} failed: {e}", args.kind);
        return Ok(exit_codes::ERROR);
    }
    println!(
        "{} ({}) hit: {}",
        args.kind,
        response.id.unwrap_or_default(),
        response.targets.join(", ")
    );
    if let Some(s) = response.undo_after_s {
        println!("It is undone in {s:.0} s (or when the stack stops).");
    }
    println!(
        "Watch: gameday status; events in {}",
        current.run_dir.join("events.jsonl").display()
    );
    Ok(exit_codes::OK)
}

/// The supervisor's side: serves `inject` requests until `stop`, then
/// undoes whatever is still active.
pub async fn serve(
    platform: &LocalPlatform,
    events: &EventLog,
    dir: &Path,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let path = dir.join(SOCKET);
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    let rollback = Rollback::default();
    let mut ends: Vec<(tokio::time::Instant, String)> = Vec::new();
    loop {
        ends.sort_by_key(|(t, _)| *t);
        let next_end = ends.first().map(|(t, _)| *t);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = async { tokio::time::sleep_until(next_end.unwrap_or_else(tokio::time::Instant::now)).await }, if next_end.is_some() => {
                let (_, id) = ends.remove(0);
                rollback.undo(platform, events, &id).await;
            }
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                if BufReader::new(read).read_line(&mut line).await.is_err() {
                    continue;
                }
                let response = match serde_json::from_str::<Request>(&line)
                    .map_err(|e| e.to_string())
                    .and_then(|r| parse(&r.scenario))
                {
                    Err(e) => Response { id: None, targets: Vec::new(), error: Some(e), undo_after_s: None },
                    Ok(fault) => match chaos::apply(platform, events, &rollback, &fault).await {
                        Err(e) => Response { id: None, targets: Vec::new(), error: Some(e.to_string()), undo_after_s: None },
                        Ok((id, targets)) => {
                            let lasting = fault.duration.filter(|_| rollback.is_pending(&id));
                            if let Some(d) = lasting {
                                ends.push((tokio::time::Instant::now() + d, id.clone()));
                            }
                            Response { id: Some(id), targets, error: None, undo_after_s: lasting.map(|d: Duration| d.as_secs_f64()) }
                        }
                    },
                };
                if let Ok(mut text) = serde_json::to_string(&response) {
                    text.push('\n');
                    let _ = write.write_all(text.as_bytes()).await;
                }
            }
        }
    }
    rollback.run_all(platform, events).await;
    let _ = std::fs::remove_file(&path);
    Ok(())
}
