//! gameday's errors: one enum, struct variants with sources.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{program} is not installed: run `apt-get install -y {package}` (or scripts/setup.sh)")]
    MissingProgram {
        program: String,
        package: &'static str,
    },
    #[error("cannot start {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} did not become ready within {waited:?}; last lines of {log}:\n{tail}")]
    NotReady {
        name: String,
        waited: std::time::Duration,
        log: PathBuf,
        tail: String,
    },
    #[error("{name} failed: {detail}")]
    Command { name: String, detail: String },
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database")]
    Database(#[from] sqlx::Error),
    /// The kubernetes platform's errors name the cluster, namespace and object.
    #[error(transparent)]
    Kubernetes(#[from] crate::platform::kubernetes::Error),
    /// The aws platform's errors name the region or endpoint and the resource.
    #[error(transparent)]
    Aws(#[from] crate::platform::aws::Error),
    /// Ctrl-C or SIGTERM stopped it (after cleaning up).
    #[error("interrupted {0}")]
    Interrupted(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
