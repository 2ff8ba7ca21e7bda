//! gameday: a chaos-and-load harness for e-commerce systems.
pub mod chaos;
pub mod cli;
pub mod commands;
pub mod errors;
pub mod events;
pub mod exit_codes;
pub mod file_error;
pub mod load;
pub mod observe;
pub mod plan;
pub mod platform;
pub mod record;
pub mod report;
pub mod run;
pub mod scenario;
pub mod shop;
pub mod slo;

pub use errors::{Error, Result};
