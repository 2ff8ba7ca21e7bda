//! One stream of timestamped events for everything that happens to the
//! platform (replica started/ready/killed, instance terminated/replaced,
//! failover steps, scaling steps). Events go to subscribers (the recorder, a
//! live view) and are appended to `events.jsonl` in the run directory as they
//! happen, so a crashed run keeps them.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::Path,
    sync::Mutex,
    time::Instant,
};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::errors::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// Milliseconds since the clock's origin (the run's start).
    pub t_ms: u64,
    /// What happened, such as `replica.ready` or `db.writer_moved`.
    pub kind: String,
    /// What it happened to, and details.
    #[serde(default)]
    pub fields: Value,
}

pub struct EventLog {
    origin: Instant,
    sender: broadcast::Sender<Event>,
    file: Mutex<Option<BufWriter<File>>>,
}

impl EventLog {
    /// A log whose clock starts now, appending to `path` (if given).
    pub fn new(path: Option<&Path>) -> Result<Self> {
        Self::with_origin(Instant::now(), path)
    }

    pub fn with_origin(origin: Instant, path: Option<&Path>) -> Result<Self> {
        let file = match path {
            Some(p) => Some(BufWriter::new(
                File::options()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| Error::io(p, e))?,
            )),
            None => None,
        };
        let (sender, _) = broadcast::channel(4096);
        Ok(Self {
            origin,
            sender,
            file: Mutex::new(file),
        })
    }

    pub fn origin(&self) -> Instant {
        self.origin
    }

    pub fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// Records an event now and returns it.
    pub fn emit(&self, kind: &str, fields: Value) -> Event {
        let event = Event {
            t_ms: self.now_ms(),
            kind: kind.to_string(),
            fields,
        };
        tracing::info!(t_ms = event.t_ms, kind, fields = %event.fields, "event");
        if let Ok(mut guard) = self.file.lock()
            && let Some(file) = guard.as_mut()
            && let Ok(line) = serde_json::to_string(&event)
        {
            let _ = writeln!(file, "{line}").and_then(|_| file.flush());
        }
        let _ = self.sender.send(event.clone());
        event
    }
}

/// Reads an `events.jsonl` file back.
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_appended_to_the_file_and_sent_to_subscribers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let log = EventLog::new(Some(&path)).unwrap();
        let mut rx = log.subscribe();
        log.emit("replica.started", serde_json::json!({"replica": "cart-1"}));
        log.emit("replica.ready", serde_json::json!({"replica": "cart-1"}));
        assert_eq!(rx.try_recv().unwrap().kind, "replica.started");
        let back = read_events(&path).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].fields["replica"], "cart-1");
        assert!(back[0].t_ms <= back[1].t_ms);
    }
}
