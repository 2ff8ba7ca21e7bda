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

/// Who talks to whom in the shop: (client, server), where a server is a
/// service or `database`, `cache`, `broker`. Network faults hit these links.
pub const LINKS: [(&str, &str); 15] = [
    ("user", "database"),
    ("catalogue", "database"),
    ("orders", "database"),
    ("shipping", "database"),
    ("catalogue", "cache"),
    ("cart", "cache"),
    ("orders", "broker"),
    ("shipping", "broker"),
    ("web", "user"),
    ("web", "catalogue"),
    ("web", "cart"),
    ("web", "orders"),
    ("web", "shipping"),
    ("cart", "catalogue"),
    ("orders", "cart"),
];

/// The shop's infrastructure, as network faults name it.
pub const INFRASTRUCTURE: [&str; 3] = ["database", "cache", "broker"];

/// The links a network fault to `to` (from `from`, else every client) hits.
pub fn links(to: &str, from: Option<&str>) -> Vec<(&'static str, &'static str)> {
    LINKS
        .iter()
        .copied()
        .filter(|(c, s)| *s == to && from.is_none_or(|f| f == *c))
        .collect()
}

/// The links each of the shoppers' steps uses, through the service that
/// owns its route and the services that one calls (shoppers reach every
/// service through the load balancer, so no web link is among them).
pub fn step_links(step: &str) -> &'static [(&'static str, &'static str)] {
    const CATALOGUE: &[(&str, &str)] = &[("catalogue", "database"), ("catalogue", "cache")];
    match step {
        "categories" | "products" | "product" => CATALOGUE,
        "login" => &[("user", "database")],
        "add-to-cart" => &[
            ("cart", "cache"),
            ("cart", "catalogue"),
            ("catalogue", "database"),
            ("catalogue", "cache"),
        ],
        "view-cart" => &[("cart", "cache")],
        "checkout" => &[
            ("orders", "database"),
            ("orders", "cart"),
            ("cart", "cache"),
        ],
        "order-status" => &[("orders", "database")],
        _ => &[],
    }
}

/// True when `name` is one of the shop's services.
pub fn is_service(name: &str) -> bool {
    SERVICES.contains(&name)
}
