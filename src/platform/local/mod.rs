//! The local platform: the whole shop as child processes of gameday on
//! loopback addresses, with real servers for its infrastructure and HAProxy
//! as its load balancer.
pub mod database;
pub mod haproxy;
pub mod infra;
pub mod platform;
pub mod process;
pub mod shop;
pub mod stacks;

pub use platform::{InfraServer, LocalPlatform, Status};
