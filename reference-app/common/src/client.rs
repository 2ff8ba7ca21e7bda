//! The HTTP client services use to call each other: connect and total timeouts
//! on every call, pooled keep-alive connections. An idle connection is
//! dropped by the client before the load balancer would close it (gameday's
//! HAProxy keeps idle client connections 10 s): reusing a connection the
//! server is closing at that moment fails the request.

use crate::Settings;

pub fn http_client(settings: &Settings) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(settings.outbound_timeout)
        .connect_timeout(settings.outbound_timeout)
        .pool_idle_timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}
