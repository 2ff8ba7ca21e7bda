//! The HTTP client services use to call each other: connect and total timeouts
//! on every call, pooled keep-alive connections.

use crate::Settings;

pub fn http_client(settings: &Settings) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(settings.outbound_timeout)
        .connect_timeout(settings.outbound_timeout)
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}
