//! Network faults on the local platform. When a scenario has network
//! faults, Toxiproxy runs beside the shop with one proxy per link those
//! faults name (a service to MariaDB, Redis, RabbitMQ or another service's
//! internal address), and only the client of each link is pointed at its
//! proxy; without network faults nothing goes through it. A fault adds
//! toxics to its links' proxies; its undo removes them.
//!
//! What each fault really does (Toxiproxy v2.12 has no packet-loss toxic):
//! - `network-latency`: a `latency` toxic on the replies (server to client):
//!   every answer arrives `latency` (± `jitter`) later, so each round trip
//!   costs that much more.
//! - `network-loss`: a `reset_peer` toxic with toxicity p on the requests:
//!   each connection is reset (RST) at its next data with probability p,
//!   rolled again every second while the fault lasts; and a `slicer` toxic
//!   with toxicity p on the replies, cutting them into small, delayed
//!   pieces as retransmissions would. Loss of whole connections, not of
//!   packets.
//! - `network-partition` (`hang`): a `timeout` toxic with no timeout in both
//!   directions: connections open, then nothing gets through and nothing is
//!   refused; (`reset`): `reset_peer` on the requests, every connection is
//!   reset at its first data.
//! - `bandwidth`: a `bandwidth` toxic on the replies (KB/s, at least 1).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    path::Path,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use serde_json::json;

use super::errors::{Error, Result};
use super::{
    process::free_port,
    shop::{ShopEnv, url_key},
    state::INFRA_IP,
    toxiproxy::{Toxic, Toxiproxy, ToxiproxyApi},
};
use crate::{
    platform::{Target, TargetKind},
    scenario::{NetworkEffect, PartitionMode},
};

/// How often a loss fault rolls each connection's chance of a reset again.
pub const LOSS_REROLL: Duration = Duration::from_secs(1);

/// A link as faults and reports name it: `orders→broker`.
pub fn link_id(client: &str, server: &str) -> String {
    format!("{client}→{server}")
}

/// (client, server) of a link target.
pub fn link_of(target: &Target) -> Option<(String, String)> {
    if target.kind != TargetKind::Link {
        return None;
    }
    let (client, server) = target.id.split_once('→')?;
    Some((client.to_string(), server.to_string()))
}

/// Toxiproxy's name for a link's proxy.
fn proxy_name(client: &str, server: &str) -> String {
    format!("{client}-to-{server}")
}

/// One link routed through Toxiproxy.
#[derive(Debug, Clone)]
pub struct Route {
    pub proxy: String,
    pub listen: SocketAddr,
    pub upstream: SocketAddr,
}

/// The links routed through Toxiproxy, and its API.
pub struct Routes {
    pub api: ToxiproxyApi,
    pub links: BTreeMap<(String, String), Route>,
}

/// Starts Toxiproxy and creates a proxy for each link; `upstream(server)`
/// is where `database`, `cache`, `broker` or a service is now.
pub async fn start(
    dir: &Path,
    links: &BTreeSet<(String, String)>,
    upstream: impl Fn(&str) -> Option<SocketAddr>,
) -> Result<(Toxiproxy, Routes)> {
    let toxiproxy = Toxiproxy::start(dir, INFRA_IP).await?;
    let mut routes = BTreeMap::new();
    for (client, server) in links {
        let Some(upstream) = upstream(server) else {
            return Err(Error::Toxiproxy(format!(
                "no address for {server}, the server of {}",
                link_id(client, server)
            )));
        };
        let route = Route {
            proxy: proxy_name(client, server),
            listen: SocketAddr::new(INFRA_IP, free_port(INFRA_IP)?),
            upstream,
        };
        toxiproxy
            .api
            .create_proxy(&route.proxy, route.listen, route.upstream)
            .await?;
        routes.insert((client.clone(), server.clone()), route);
    }
    let api = toxiproxy.api.clone();
    Ok((toxiproxy, Routes { api, links: routes }))
}

impl Routes {
    /// Points each routed link's client at its proxy.
    pub fn route(&self, env: &mut ShopEnv) {
        for ((client, server), route) in &self.links {
            let at = route.listen;
            match server.as_str() {
                "database" => {
                    env.set_for(
                        client,
                        "mysql_url",
                        Some(format!("mysql://shop:shop@{at}/shop?ssl-mode=disabled")),
                    );
                    // The writer file would lead it around the proxy: the
                    // proxy follows the writer instead (`follow_writer`).
                    env.set_for(client, "mysql_writer_file", None);
                }
                "cache" => {
                    env.set_for(client, "redis_url", Some(format!("redis://{at}/")));
                }
                "broker" => {
                    env.set_for(
                        client,
                        "amqp_url",
                        Some(format!("amqp://guest:guest@{at}/%2f")),
                    );
                }
                service => {
                    if let Some(key) = url_key(service) {
                        env.set_for(client, key, Some(format!("http://{at}")));
                    }
                }
            }
        }
    }

    /// After a failover: the database links' proxies lead to the new
    /// writer (Toxiproxy closes their connections, as a moved writer would).
    pub async fn follow_writer(&self, writer: SocketAddr) -> Result<()> {
        for ((_, server), route) in &self.links {
            if server == "database" {
                self.api.set_upstream(&route.proxy, writer).await?;
            }
        }
        Ok(())
    }

    pub fn route_of(&self, target: &Target) -> Option<&Route> {
        self.links.get(&link_of(target)?)
    }

    /// Adds the toxics of `effect` (named after `target.detail`) to the
    /// target link's proxy.
    pub async fn degrade(&self, target: &Target, effect: &NetworkEffect) -> Result<()> {
        let (route, prefix) = self.route_and_prefix(target)?;
        for toxic in toxics(prefix, effect) {
            self.api.add_toxic(&route.proxy, &toxic).await?;
        }
        Ok(())
    }

    /// Rolls the chance of each connection of a loss fault again.
    pub async fn reroll(&self, target: &Target, effect: &NetworkEffect) -> Result<()> {
        let (route, prefix) = self.route_and_prefix(target)?;
        for toxic in toxics(prefix, effect) {
            self.api.update_toxic(&route.proxy, &toxic).await?;
        }
        Ok(())
    }

    /// Removes every toxic the fault on `target` added.
    pub async fn heal(&self, target: &Target) -> Result<()> {
        let (route, prefix) = self.route_and_prefix(target)?;
        let ours = format!("{prefix}-");
        for toxic in self.api.toxics(&route.proxy).await? {
            if toxic.name.starts_with(&ours) {
                self.api.remove_toxic(&route.proxy, &toxic.name).await?;
            }
        }
        Ok(())
    }

    fn route_and_prefix<'a>(&self, target: &'a Target) -> Result<(&Route, &'a str)> {
        let route = self.route_of(target).ok_or_else(|| {
            Error::Toxiproxy(format!("{} is not routed through Toxiproxy", target.id))
        })?;
        let prefix = target.detail.as_deref().unwrap_or("gameday");
        Ok((route, prefix))
    }

    /// Every toxic on every proxy, as (proxy, toxic name).
    pub async fn all_toxics(&self) -> Result<Vec<(String, String)>> {
        let mut all = Vec::new();
        for route in self.links.values() {
            for t in self.api.toxics(&route.proxy).await? {
                all.push((route.proxy.clone(), t.name));
            }
        }
        Ok(all)
    }
}

static NEXT_TOXIC: AtomicU32 = AtomicU32::new(1);

/// A name for the toxics of one fault on one link, unique in this process.
pub fn toxic_prefix() -> String {
    format!("gameday-{}", NEXT_TOXIC.fetch_add(1, Ordering::Relaxed))
}

fn toxic(
    prefix: &str,
    kind: &str,
    stream: &str,
    toxicity: f64,
    attributes: serde_json::Value,
) -> Toxic {
    Toxic {
        name: format!("{prefix}-{kind}-{stream}"),
        kind: kind.into(),
        stream: stream.into(),
        toxicity,
        attributes,
    }
}

/// The toxics that make `effect`.
pub fn toxics(prefix: &str, effect: &NetworkEffect) -> Vec<Toxic> {
    match effect {
        NetworkEffect::Latency { latency, jitter } => vec![toxic(
            prefix,
            "latency",
            "downstream",
            1.0,
            json!({ "latency": latency.as_millis() as u64, "jitter": jitter.as_millis() as u64 }),
        )],
        NetworkEffect::Loss { percent } => {
            let p = (percent / 100.0).clamp(0.0, 1.0);
            vec![
                toxic(prefix, "reset_peer", "upstream", p, json!({ "timeout": 0 })),
                toxic(
                    prefix,
                    "slicer",
                    "downstream",
                    p,
                    // Pieces of ~64 bytes, 1 ms apart (delay is in microseconds).
                    json!({ "average_size": 64, "size_variation": 32, "delay": 1000 }),
                ),
            ]
        }
        NetworkEffect::Partition {
            mode: PartitionMode::Hang,
        } => ["upstream", "downstream"]
            .into_iter()
            .map(|stream| toxic(prefix, "timeout", stream, 1.0, json!({ "timeout": 0 })))
            .collect(),
        NetworkEffect::Partition {
            mode: PartitionMode::Reset,
        } => vec![toxic(
            prefix,
            "reset_peer",
            "upstream",
            1.0,
            json!({ "timeout": 0 }),
        )],
        NetworkEffect::Bandwidth { bytes_per_s } => vec![toxic(
            prefix,
            "bandwidth",
            "downstream",
            1.0,
            json!({ "rate": (bytes_per_s / 1000).max(1) }),
        )],
    }
}

/// The toxics of `effect`, short: `latency downstream {"jitter":0,"latency":200}`.
pub fn toxic_summary(effect: &NetworkEffect) -> String {
    toxics("", effect)
        .iter()
        .map(|t| {
            let share = if t.toxicity < 1.0 {
                format!(" toxicity {}", t.toxicity)
            } else {
                String::new()
            };
            format!("{} {}{share} {}", t.kind, t.stream, t.attributes)
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

/// What `effect` does, in words, toxics named (for `plan`).
pub fn describe(effect: &NetworkEffect) -> String {
    match effect {
        NetworkEffect::Latency { latency, jitter } => format!(
            "every reply {} later{} (toxic latency, downstream)",
            humantime::format_duration(*latency),
            if jitter.is_zero() {
                String::new()
            } else {
                format!(" ± {}", humantime::format_duration(*jitter))
            }
        ),
        NetworkEffect::Loss { percent } => format!(
            "Toxiproxy has no packet loss: each connection is reset at its next data with \
             probability {percent}%, rolled again every {}s (toxic reset_peer, upstream), and \
             {percent}% of the connections get their replies in small delayed pieces (toxic \
             slicer, downstream)",
            LOSS_REROLL.as_secs()
        ),
        NetworkEffect::Partition {
            mode: PartitionMode::Hang,
        } => "connections open, then hang: nothing gets through either way, nothing is refused \
              (toxic timeout 0, both directions)"
            .into(),
        NetworkEffect::Partition {
            mode: PartitionMode::Reset,
        } => "every connection is reset at its first data (toxic reset_peer, upstream)".into(),
        NetworkEffect::Bandwidth { bytes_per_s } => format!(
            "replies capped at {} KB/s (toxic bandwidth, downstream)",
            (bytes_per_s / 1000).max(1)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hanging_partition_is_a_timeout_toxic_without_timeout_both_ways() {
        let t = toxics(
            "gameday-1",
            &NetworkEffect::Partition {
                mode: PartitionMode::Hang,
            },
        );
        assert_eq!(t.len(), 2);
        assert!(
            t.iter()
                .all(|t| t.kind == "timeout" && t.attributes["timeout"] == 0)
        );
        assert_eq!(t[0].name, "gameday-1-timeout-upstream");
        assert_eq!(t[1].stream, "downstream");
    }

    #[test]
    fn loss_resets_a_share_of_connections_and_slices_the_replies() {
        let t = toxics("x", &NetworkEffect::Loss { percent: 30.0 });
        let kinds: Vec<_> = t.iter().map(|t| (t.kind.as_str(), t.toxicity)).collect();
        assert_eq!(kinds, [("reset_peer", 0.3), ("slicer", 0.3)]);
    }

    #[test]
    fn latency_is_added_to_the_replies_in_milliseconds() {
        let t = toxics(
            "x",
            &NetworkEffect::Latency {
                latency: Duration::from_millis(200),
                jitter: Duration::from_millis(50),
            },
        );
        assert_eq!(t[0].attributes, json!({ "latency": 200, "jitter": 50 }));
        assert_eq!(t[0].stream, "downstream");
    }

    #[test]
    fn a_link_target_names_its_client_and_server() {
        let t = Target::new(TargetKind::Link, link_id("orders", "broker"));
        assert_eq!(
            link_of(&t),
            Some(("orders".to_string(), "broker".to_string()))
        );
        assert_eq!(
            link_of(&Target::new(TargetKind::Cache, "orders→broker")),
            None
        );
    }

    #[test]
    fn a_routed_link_points_only_its_client_at_the_proxy() {
        let mut env = ShopEnv::default();
        env.set("mysql_url", "mysql://direct")
            .set("mysql_writer_file", "/w");
        let routes = Routes {
            api: ToxiproxyApi::new("127.0.0.1:1".parse().unwrap()),
            links: [(
                ("orders".to_string(), "database".to_string()),
                Route {
                    proxy: "orders-to-database".into(),
                    listen: "127.0.0.1:4000".parse().unwrap(),
                    upstream: "127.0.0.1:3306".parse().unwrap(),
                },
            )]
            .into(),
        };
        routes.route(&mut env);
        let orders = env.for_service("orders");
        let var = |env: &ShopEnv, k: &str| {
            env.vars
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            var(&orders, "SHOP_MYSQL_URL").as_deref(),
            Some("mysql://shop:shop@127.0.0.1:4000/shop?ssl-mode=disabled")
        );
        assert_eq!(var(&orders, "SHOP_MYSQL_WRITER_FILE"), None);
        let user = env.for_service("user");
        assert_eq!(
            var(&user, "SHOP_MYSQL_URL").as_deref(),
            Some("mysql://direct")
        );
        assert_eq!(var(&user, "SHOP_MYSQL_WRITER_FILE").as_deref(), Some("/w"));
    }
}
