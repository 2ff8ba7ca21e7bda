//! An I/O error on a file or directory that the message names. Every layer
//! (events, the recorder, the platforms, the commands) reports its files
//! with it, so this module depends on nothing else in the crate.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{}", path.display())]
pub struct FileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl FileError {
    pub fn new(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self {
            path: path.into(),
            source,
        }
    }

    /// For `map_err`: the error of an operation on `path`.
    pub fn at(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::new(path, source)
    }
}
