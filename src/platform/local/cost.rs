//! What each part of the local stack costs, read from /proc: CPU seconds
//! (a running total per component that counts every process it ever had,
//! replicas that were killed or scaled in included) and resident memory now,
//! per process group, since every server and replica leads its own group.
//! Also the counters the report divides by requests: the database's queries
//! (`Questions` of every MariaDB server) and the catalogue's cache lookups
//! (each replica's `/metrics`).

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use sqlx::Row;

use super::{LocalPlatform, infra::Server};
use crate::platform::{ComponentCost, Sample};

/// Per-pid CPU seen last, and the running totals.
#[derive(Default)]
pub(super) struct Meter {
    last_cpu: HashMap<u32, f64>,
    totals: BTreeMap<String, f64>,
    /// Per source (a server, a replica): the counter's last value and the
    /// total it added up to, so a restart (counters back to 0) loses nothing.
    counters: BTreeMap<(String, String), (f64, f64)>,
}

impl Meter {
    /// Adds a counter reading from `source`; a reading below the last one
    /// means the source restarted and counts from zero.
    fn count(&mut self, counter: &str, source: &str, value: f64) {
        let entry = self
            .counters
            .entry((counter.to_string(), source.to_string()))
            .or_insert((0.0, 0.0));
        let added = if value >= entry.0 {
            value - entry.0
        } else {
            value
        };
        *entry = (value, entry.1 + added);
    }

    fn counter_totals(&self) -> BTreeMap<String, f64> {
        let mut out: BTreeMap<String, f64> = BTreeMap::new();
        for ((counter, _), (_, total)) in &self.counters {
            *out.entry(counter.clone()).or_default() += total;
        }
        out
    }
}

/// What each component of a stack has cost since its processes started:
/// groups are (process group leader, component); CPU and memory are summed
/// over every process of each group.
pub(super) fn cost_by_group(groups: &[(u32, &str)]) -> Vec<ComponentCost> {
    let mut out: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    let by_group: HashMap<u32, &str> = groups.iter().copied().collect();
    for (_, pgrp, cpu, rss) in all_processes() {
        if let Some(name) = by_group.get(&pgrp) {
            let e = out.entry(name.to_string()).or_default();
            e.0 += cpu;
            e.1 += rss;
        }
    }
    out.into_iter()
        .map(|(name, (cpu_s, rss))| ComponentCost {
            name,
            cpu_s,
            rss_mb: rss as f64 / 1024.0,
        })
        .collect()
}

/// (pid, process group, CPU seconds, RSS KiB) of every process, from /proc.
fn all_processes() -> Vec<(u32, u32, f64, u64)> {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let page_kib = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64
        / 1024;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            // After "pid (comm)": state ppid pgrp ... utime(12) stime(13) ... rss(22).
            let pgrp: u32 = f.get(2)?.parse().ok()?;
            let cpu =
                (f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?) as f64 / ticks;
            let rss = f.get(21)?.parse::<u64>().ok()? * page_kib;
            Some((pid, pgrp, cpu, rss))
        })
        .collect()
}

/// The `shop_cache_lookups_total{result="..."}` values of a /metrics page.
fn cache_lookups(metrics: &str) -> BTreeMap<String, f64> {
    metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("shop_cache_lookups_total{result=\"")?;
            let (result, value) = rest.split_once("\"}")?;
            Some((result.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

impl LocalPlatform {
    /// Which component each process group belongs to.
    async fn groups(&self) -> HashMap<u32, String> {
        let st = self.shared.state.lock().await;
        let mut groups = HashMap::new();
        for r in &st.replicas {
            if let Some(pid) = r.replica.pid() {
                groups.insert(pid, r.replica.service.clone());
            }
        }
        let infra = &st.infra;
        let servers = [
            (infra.haproxy.pid(), "load balancer"),
            (infra.db.primary.pid(), "database"),
            (infra.db.standby.as_ref().and_then(|s| s.pid()), "database"),
            (infra.redis.pid(), "cache"),
            (infra.rabbit.pid(), "broker"),
            (infra.rabbit.epmd_pid(), "broker"),
            (
                infra.toxiproxy.as_ref().and_then(|t| t.pid()),
                "network proxy",
            ),
        ];
        for (pid, name) in servers {
            if let Some(pid) = pid {
                groups.insert(pid, name.to_string());
            }
        }
        groups
    }

    /// Reads the counters the report needs: each MariaDB server's
    /// `Questions`, each catalogue replica's cache lookups.
    async fn read_counters(&self) -> Vec<(String, String, f64)> {
        let (servers, catalogues) = {
            let st = self.shared.state.lock().await;
            let db = &st.infra.db;
            let mut servers = vec![(db.primary_name(), db.primary.admin_url())];
            if let (Some(name), Some(s)) = (db.standby_name(), &db.standby) {
                servers.push((name, s.admin_url()));
            }
            let catalogues: Vec<(String, String)> = st
                .replicas
                .iter()
                .filter(|r| r.replica.service == "catalogue" && r.ready && r.alive())
                .map(|r| {
                    (
                        r.replica.name.clone(),
                        format!("{}/metrics", r.replica.url()),
                    )
                })
                .collect();
            (servers, catalogues)
        };
        let mut out = Vec::new();
        for (name, url) in servers {
            let status = async {
                use sqlx::Connection;
                let mut conn = sqlx::mysql::MySqlConnection::connect(&url).await.ok()?;
                let rows = sqlx::query(
                    "SHOW GLOBAL STATUS WHERE Variable_name IN \
                     ('Questions', 'Com_select', 'Com_insert', 'Com_update', 'Com_delete', 'Com_commit')",
                )
                .fetch_all(&mut conn)
                .await
                .ok()?;
                let _ = conn.close().await;
                Some(
                    rows.iter()
                        .filter_map(|r| {
                            let key: String = r.try_get(0).ok()?;
                            let value: String = r.try_get(1).ok()?;
                            Some((key, value.parse::<f64>().ok()?))
                        })
                        .collect::<Vec<_>>(),
                )
            };
            if let Ok(Some(values)) = tokio::time::timeout(Duration::from_millis(500), status).await
            {
                for (key, value) in values {
                    let counter = match key.as_str() {
                        "Questions" => "db_queries".to_string(),
                        com => format!("db_{}", com.to_ascii_lowercase()),
                    };
                    out.push((counter, name.clone(), value));
                }
            }
        }
        // The balancer's connections and requests: how well connections are reused.
        if let Ok(info) = self.shared.lb.command("show info").await {
            for line in info.lines() {
                let Some((key, value)) = line.split_once(": ") else {
                    continue;
                };
                let counter = match key {
                    "CumConns" => "lb_connections",
                    "CumReq" => "lb_requests",
                    _ => continue,
                };
                if let Ok(v) = value.trim().parse::<f64>() {
                    out.push((counter.to_string(), "haproxy".into(), v));
                }
            }
        }
        for (name, url) in catalogues {
            let page = async {
                self.shared
                    .http
                    .get(&url)
                    .send()
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()
            };
            if let Some(page) = page.await {
                let lookups = cache_lookups(&page);
                for (result, counter) in [("hit", "cache_hits"), ("miss", "cache_misses")] {
                    out.push((
                        counter.to_string(),
                        name.clone(),
                        lookups.get(result).copied().unwrap_or(0.0),
                    ));
                }
            }
        }
        out
    }

    /// Every component's CPU so far and memory now, and the counters.
    pub(super) async fn measure(&self) -> Sample {
        let groups = self.groups().await;
        let counters = self.read_counters().await;
        let processes = tokio::task::spawn_blocking(all_processes)
            .await
            .unwrap_or_default();
        let Ok(mut meter) = self.meter.lock() else {
            return Sample::default();
        };
        let mut rss: BTreeMap<String, u64> = BTreeMap::new();
        let mut seen = HashMap::new();
        for (pid, pgrp, cpu, rss_kib) in processes {
            let Some(component) = groups.get(&pgrp) else {
                continue;
            };
            let before = meter.last_cpu.get(&pid).copied().unwrap_or(0.0);
            *meter.totals.entry(component.clone()).or_default() += (cpu - before).max(0.0);
            seen.insert(pid, cpu);
            *rss.entry(component.clone()).or_default() += rss_kib;
        }
        meter.last_cpu = seen;
        for (counter, source, value) in counters {
            meter.count(&counter, &source, value);
        }
        let components = meter
            .totals
            .iter()
            .map(|(name, cpu_s)| ComponentCost {
                name: name.clone(),
                cpu_s: *cpu_s,
                rss_mb: rss.get(name).copied().unwrap_or(0) as f64 / 1024.0,
            })
            .collect();
        Sample {
            components,
            counters: meter.counter_totals(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_that_restarts_keeps_what_it_had_counted() {
        let mut m = Meter::default();
        m.count("cache_hits", "catalogue-1", 100.0);
        m.count("cache_hits", "catalogue-1", 150.0);
        // The replica was replaced: its counter starts again.
        m.count("cache_hits", "catalogue-1", 20.0);
        m.count("cache_hits", "catalogue-2", 5.0);
        assert_eq!(m.counter_totals()["cache_hits"], 175.0);
    }

    #[test]
    fn cache_lookups_are_read_from_a_metrics_page() {
        let page = "# HELP shop_cache_lookups Read-through cache lookups\n\
                    shop_cache_lookups_total{result=\"hit\"} 97\n\
                    shop_cache_lookups_total{result=\"miss\"} 3\n\
                    shop_http_requests_total{method=\"GET\"} 100\n";
        let l = cache_lookups(page);
        assert_eq!((l["hit"], l["miss"]), (97.0, 3.0));
    }

    #[test]
    fn this_process_is_among_the_processes_read_from_proc() {
        let me = std::process::id();
        let all = all_processes();
        let (_, pgrp, cpu, rss) = all.into_iter().find(|p| p.0 == me).unwrap();
        assert_eq!(pgrp, nix::unistd::getpgrp().as_raw() as u32);
        assert!(cpu >= 0.0 && rss > 0);
    }
}
