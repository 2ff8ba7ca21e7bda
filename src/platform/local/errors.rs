//! What can go wrong when gameday runs the shop on this machine, in words
//! that say what to do: which program is missing and how to install it,
//! which server did not come up and the end of its log, what HAProxy's
//! runtime API answered. It becomes `platform::Error::Local` at the seam.

use std::{path::PathBuf, time::Duration};

use crate::file_error::FileError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{program} is not installed: run `apt-get install -y {package}` (or scripts/setup.sh)")]
    MissingProgram {
        program: String,
        package: &'static str,
    },
    #[error(
        "{} not found: build the shop with `cargo build --workspace --bins` (or set GAMEDAY_SHOP_BIN_DIR)",
        path.display()
    )]
    MissingShopBinary { path: PathBuf },
    #[error(
        "toxiproxy-server not found ({looked}): network faults need it; build it with \
         `scripts/toxiproxy.sh` (or scripts/setup.sh), or set GAMEDAY_TOXIPROXY"
    )]
    MissingToxiproxy { looked: String },
    /// Toxiproxy's API refused a call or did not answer.
    #[error("toxiproxy: {0}")]
    Toxiproxy(String),
    #[error("cannot start {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// A program gameday ran to prepare a server said no.
    #[error("{program} failed: {stderr}")]
    ProgramFailed { program: String, stderr: String },
    #[error("{name} did not become ready within {waited:?}; last lines of {}:\n{tail}", log.display())]
    NotReady {
        name: String,
        waited: Duration,
        log: PathBuf,
        tail: String,
    },
    #[error("the shop was not serving after {waited:?}: {}; see {}", waiting.join(", "), logs.display())]
    NotServing {
        waited: Duration,
        waiting: Vec<String>,
        logs: PathBuf,
    },
    #[error("MariaDB: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{server}: connecting timed out")]
    DatabaseTimeout { server: String },
    /// Replication or a failover did not do what it must.
    #[error("db failover: {0}")]
    Failover(&'static str),
    #[error("{}: expected host:port, found {found:?}", path.display())]
    BadWriterFile { path: PathBuf, found: String },
    /// HAProxy's runtime API refused a command or did not answer.
    #[error("haproxy runtime API: {0}")]
    Balancer(String),
    /// What a fault asked for is not there (a replica, an instance).
    #[error("{fault}: {why}")]
    NothingToHit { fault: &'static str, why: String },
    #[error("no stack is up; start one with `gameday up --detach`")]
    NoStack,
    #[error("a stack is already up (supervisor pid {pid}, files in {}); run `gameday down` first", run_dir.display())]
    AlreadyUp { pid: u32, run_dir: PathBuf },
    #[error("these processes of the stack survived `down`: {}", pids.join(", "))]
    Survived { pids: Vec<String> },
    #[error("{addr} is still in use after `down`")]
    PortInUse { addr: std::net::SocketAddr },
    #[error("the stack in {} has no status file yet", run_dir.display())]
    NoStatusFile { run_dir: PathBuf },
    /// The detached supervisor did not come up, or its control socket
    /// answered something else than expected.
    #[error("the stack's supervisor: {0}")]
    Supervisor(String),
    /// What the supervisor answered to `gameday inject`.
    #[error("{fault}: {why}")]
    NotInjected { fault: String, why: String },
    #[error(transparent)]
    File(#[from] FileError),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::File(FileError::new(path, source))
    }

    /// A problem of this machine's set-up (a server or the shop's binaries
    /// missing), not of the run: the command line says how to fix it.
    pub fn is_setup(&self) -> bool {
        matches!(
            self,
            Error::MissingProgram { .. }
                | Error::MissingShopBinary { .. }
                | Error::MissingToxiproxy { .. }
        )
    }
}
