//! Where the shop runs: the local platform (child processes) today.
pub mod local;
