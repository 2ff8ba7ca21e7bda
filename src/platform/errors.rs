//! The platform layer's errors: one type for every back-end, and one way to
//! say no. The engine and the commands see this type only; each back-end
//! keeps its own variants (which cluster, which region, which program) in
//! its own `errors.rs`. `crate::Error::Platform` wraps it.

use crate::file_error::FileError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The platform will not do this, and why: a fault it cannot perform
    /// here, a `plan` asked to act, a target gameday must not touch, a
    /// setting it needs. `fault` names what was asked (a fault's kind, a
    /// command, a resource, a scenario key).
    #[error("{fault}: {why}")]
    Refused { fault: String, why: String },
    #[error(transparent)]
    Local(#[from] super::local::Error),
    #[error(transparent)]
    Kubernetes(#[from] super::kubernetes::Error),
    #[error(transparent)]
    Aws(#[from] super::aws::Error),
    #[error(transparent)]
    File(#[from] FileError),
}

impl Error {
    pub fn refused(fault: impl Into<String>, why: impl Into<String>) -> Self {
        Error::Refused {
            fault: fault.into(),
            why: why.into(),
        }
    }

    /// A problem of this machine's set-up that the message says how to fix
    /// (a server or the shop's binaries missing): invalid usage, not a
    /// failure of the platform.
    pub fn is_setup(&self) -> bool {
        matches!(self, Error::Local(e) if e.is_setup())
    }
}
