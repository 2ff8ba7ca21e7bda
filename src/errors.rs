//! gameday's errors: one enum for the engine and the commands, struct
//! variants with sources, and the one place that maps an error to an exit
//! code ([`Error::exit_code`]). The platforms' errors come in through
//! [`Error::Platform`]; this module names nothing of them, so the platform
//! layer never depends back on it.

use crate::{exit_codes, file_error::FileError, platform};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The platform said no, or failed (each back-end's error names the
    /// cluster, the region or the program).
    #[error(transparent)]
    Platform(#[from] platform::Error),
    #[error(transparent)]
    File(#[from] FileError),
    /// An HTTP request gameday makes of the shop itself (reset, accounts,
    /// the prober's client).
    #[error("{what}: {source}")]
    Http {
        what: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// A latency histogram could not be written.
    #[error("latency.hlog: {0}")]
    Histogram(String),
    /// Some of the shopper accounts could not be created before the load.
    #[error("shopper accounts: {failed} of {wanted} could not be created")]
    Accounts { failed: usize, wanted: usize },
    /// The load generator could not be set up or failed.
    #[error("the load generator (goose): {0}")]
    Load(String),
    /// A task of the run ended without its result (a panic).
    #[error("{what} stopped: {source}")]
    Task {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    /// A record could not be written as JSON.
    #[error("{what}: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// Ctrl-C or SIGTERM stopped it (after cleaning up).
    #[error("interrupted {0}")]
    Interrupted(String),
}

impl Error {
    pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Error::File(FileError::new(path, source))
    }

    /// The exit code this error ends a command with (DESIGN.md section 5).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Interrupted(_) => exit_codes::INTERRUPTED,
            Error::Platform(e) => Self::exit_code_of_platform(e),
            _ => exit_codes::ERROR,
        }
    }

    /// A platform's error: its set-up problems (a server or the shop's
    /// binaries missing) are invalid usage, the rest an error.
    pub fn exit_code_of_platform(e: &platform::Error) -> i32 {
        if e.is_setup() {
            exit_codes::USAGE
        } else {
            exit_codes::ERROR
        }
    }
}
