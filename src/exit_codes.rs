//! gameday's exit codes, in one place (DESIGN.md section 5).

/// Every SLO was met (or the command succeeded).
pub const OK: i32 = 0;
/// gameday or the platform failed.
pub const ERROR: i32 = 1;
/// Invalid usage or an invalid scenario.
pub const USAGE: i32 = 2;
/// An SLO was breached (or `compare` found a regression).
pub const SLO_BREACHED: i32 = 3;
/// A stop condition aborted the run.
pub const ABORTED: i32 = 4;
/// The verdict is inconclusive: evidence an SLO needs is missing, the run
/// did not complete, or the load generator was saturated.
pub const INCONCLUSIVE: i32 = 5;
/// Interrupted by the user (after cleanup).
pub const INTERRUPTED: i32 = 130;
