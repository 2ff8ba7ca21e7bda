//! The local platform: the whole shop as child processes of gameday on
//! loopback addresses, with real servers for its infrastructure.
pub mod infra;
pub mod process;
pub mod shop;
