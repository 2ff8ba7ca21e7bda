//! gameday: a chaos-and-load harness for e-commerce systems.
pub mod errors;
pub mod platform;

pub use errors::{Error, Result};
