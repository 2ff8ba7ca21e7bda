//! The reference shop as the engine knows it, whatever runs it: the names of
//! its services (a scenario's `replicas`, `autoscale` and `kill-pod` keys
//! name them) and what it holds.

/// The shop's services, in the order they are listed everywhere.
pub const SERVICES: [&str; 6] = ["web", "user", "catalogue", "cart", "orders", "shipping"];

/// The public entry: it serves the storefront and forwards `/api/*`.
pub const ENTRY_SERVICE: &str = "web";

/// Products the catalogue seeds into an empty database.
pub const CATALOGUE_SIZE: u32 = 1200;

/// Clients of the shop (shoppers, the prober) drop a keep-alive connection
/// idle this long, before a load balancer would close it under them (the
/// local platform's HAProxy asserts its keep-alive leaves a 2 s margin over
/// this).
pub const CLIENT_IDLE: std::time::Duration = std::time::Duration::from_secs(7);

/// True when `name` is one of the shop's services.
pub fn is_service(name: &str) -> bool {
    SERVICES.contains(&name)
}
