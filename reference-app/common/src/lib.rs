//! What every service of the reference shop shares: layered settings, the JSON
//! error type, JWT and admin authentication, health and metrics endpoints,
//! graceful shutdown, clients for MariaDB, Redis, RabbitMQ and sibling services
//! (each with a timeout and reconnection), and the database schema.

pub mod auth;
pub mod body;
pub mod broker;
pub mod cache;
pub mod client;
pub mod db;
pub mod error;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod model;
pub mod schema;
pub mod server;
pub mod settings;

pub use error::{ApiError, ApiResult};
pub use settings::{Secret, Settings};
