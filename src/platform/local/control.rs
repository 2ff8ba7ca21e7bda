//! The control socket of a local stack (`control.sock` in its directory):
//! `gameday inject` sends a typed fault as one JSON line, the supervisor
//! hands it to the chaos engine and answers with what it hit, or why not.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
};
use tokio_util::sync::CancellationToken;

use super::errors::{Error, Result};
use super::stacks;
use crate::{
    platform::{FaultRequest, Injected},
    scenario::Fault,
};

pub const SOCKET: &str = "control.sock";

#[derive(Serialize, Deserialize)]
struct Request {
    fault: Fault,
}

#[derive(Serialize, Deserialize)]
struct Response {
    #[serde(default)]
    injected: Option<Injected>,
    #[serde(default)]
    error: Option<String>,
}

/// Sends `fault` to the supervisor of the stack `gameday up` started.
pub async fn send(fault: &Fault) -> Result<Injected> {
    let Some(current) = stacks::read_current().filter(|c| c.supervisor_alive()) else {
        return Err(Error::NoStack);
    };
    let socket = current.run_dir.join(SOCKET);
    let io = |e| Error::io(&socket, e);
    let mut stream = UnixStream::connect(&socket).await.map_err(io)?;
    let mut line = serde_json::to_string(&Request {
        fault: fault.clone(),
    })
    .map_err(|e| Error::Supervisor(format!("the fault as JSON: {e}")))?;
    line.push('\n');
    stream.write_all(line.as_bytes()).await.map_err(io)?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .await
        .map_err(io)?;
    let response: Response = serde_json::from_str(&reply)
        .map_err(|e| Error::Supervisor(format!("its answer `{}`: {e}", reply.trim())))?;
    match (response.injected, response.error) {
        (Some(i), None) => Ok(i),
        (_, e) => Err(Error::NotInjected {
            fault: fault.kind.key().into(),
            why: e.unwrap_or_else(|| "no answer".into()),
        }),
    }
}

/// Serves `inject` requests until `stop`: each is passed on to `faults`
/// and its outcome written back.
pub(super) async fn serve(
    dir: &Path,
    faults: mpsc::Sender<FaultRequest>,
    stop: CancellationToken,
) -> Result<()> {
    let path = dir.join(SOCKET);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(|e| Error::io(&path, e))?;
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        let (read, mut write) = stream.into_split();
        let mut line = String::new();
        if BufReader::new(read).read_line(&mut line).await.is_err() {
            continue;
        }
        let response = match serde_json::from_str::<Request>(&line) {
            Err(e) => Response {
                injected: None,
                error: Some(format!("not a fault request: {e}")),
            },
            Ok(request) => {
                let (tx, rx) = oneshot::channel();
                let outcome = match faults.send((request.fault, Some(tx))).await {
                    Ok(()) => rx
                        .await
                        .unwrap_or_else(|_| Err("the stack is stopping".into())),
                    Err(_) => Err("the stack is stopping".into()),
                };
                match outcome {
                    Ok(i) => Response {
                        injected: Some(i),
                        error: None,
                    },
                    Err(e) => Response {
                        injected: None,
                        error: Some(e),
                    },
                }
            }
        };
        if let Ok(mut text) = serde_json::to_string(&response) {
            text.push('\n');
            let _ = write.write_all(text.as_bytes()).await;
        }
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}
