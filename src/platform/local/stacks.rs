//! Which stack `gameday up` started, so `status` and `down` find it from any
//! shell: a small record in gameday's state directory
//! (`$GAMEDAY_STATE_DIR`, else `/tmp/gameday-<uid>`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::errors::{Error, Result};
use super::process::pid_alive;
use crate::platform::Inventory;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CurrentStack {
    pub run_dir: PathBuf,
    pub supervisor_pid: u32,
    pub started_at: String,
}

pub fn state_dir() -> PathBuf {
    match std::env::var_os("GAMEDAY_STATE_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir().join(format!("gameday-{}", nix::unistd::getuid())),
    }
}

fn current_file() -> PathBuf {
    state_dir().join("current.json")
}

/// A new run directory for a stack.
pub fn new_run_dir() -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    state_dir()
        .join("stacks")
        .join(format!("{stamp}-{}", std::process::id()))
}

pub fn read_current() -> Option<CurrentStack> {
    let text = std::fs::read_to_string(current_file()).ok()?;
    serde_json::from_str(&text).ok()
}

impl CurrentStack {
    pub fn supervisor_alive(&self) -> bool {
        pid_alive(self.supervisor_pid)
    }

    pub fn status(&self) -> Option<Inventory> {
        let text = std::fs::read_to_string(self.run_dir.join("status.json")).ok()?;
        serde_json::from_str(&text).ok()
    }
}

pub fn write_current(stack: &CurrentStack) -> Result<()> {
    let dir = state_dir();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    let path = current_file();
    let text = serde_json::to_string_pretty(stack).unwrap_or_default();
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
}

/// Forgets the current stack if it is the one given (or any, with None).
pub fn clear_current(run_dir: Option<&std::path::Path>) {
    if let Some(cur) = read_current()
        && run_dir.is_some_and(|d| d != cur.run_dir)
    {
        return;
    }
    let _ = std::fs::remove_file(current_file());
}
