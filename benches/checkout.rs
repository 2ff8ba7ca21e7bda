//! How many checkouts per second one orders process sustains on this machine.
//! Starts the real stack (one replica per service), prepares shoppers, then
//! for a bounded time has `CONCURRENCY` shoppers loop "put an item in the
//! cart, check out" against the orders replica directly. Prints checkouts/s,
//! latency percentiles and the orders process's CPU use (from /proc), so the
//! figure can be read per core.
//!
//! Run: cargo bench --bench checkout   (env: SECONDS=20 CONCURRENCY=32)

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after "pid (comm)".
    fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let seconds = env_or("SECONDS", 20).min(300);
    let concurrency = env_or("CONCURRENCY", 32).clamp(1, 512) as usize;
    let stack = support::Stack::start_with(|env| {
        env.set("payment_latency", "20ms").set("log_json", "false");
        env.vars.push(("RUST_LOG".into(), "warn".into()));
    })
    .await;
    let mut shoppers = Vec::new();
    for i in 0..concurrency {
        shoppers.push(stack.shopper(&format!("bench{i}")).await);
    }
    let orders_pid = stack.replicas["orders"].pid().expect("orders runs");
    let orders = format!("http://{}", stack.addrs["orders"]);
    let cart = format!("http://{}", stack.addrs["cart"]);
    let ticks_per_s = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let cpu_before = cpu_ticks(orders_pid);
    let workers = shoppers.into_iter().enumerate().map(|(w, shopper)| {
        let (http, orders, cart) = (stack.http.clone(), orders.clone(), cart.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0u64;
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let sku = format!("SKU-{:05}", 1 + (n as usize * 7 + w) % 1000);
                let put = http
                    .put(format!("{cart}/api/cart/items/{sku}"))
                    .bearer_auth(&shopper.token)
                    .json(&json!({"qty": 1}))
                    .send()
                    .await;
                if !put.is_ok_and(|r| r.status().is_success()) {
                    failed += 1;
                    continue;
                }
                let t = Instant::now();
                let res = http
                    .post(format!("{orders}/api/orders"))
                    .bearer_auth(&shopper.token)
                    .header("Idempotency-Key", format!("bench-{w}-{n}"))
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == StatusCode::CREATED => latencies.push(t.elapsed()),
                    _ => failed += 1,
                }
            }
            (latencies, failed)
        })
    });
    let mut latencies = Vec::new();
    let mut failed = 0;
    for w in futures::future::join_all(workers).await {
        let (l, f) = w.expect("worker");
        latencies.extend(l);
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_s = (cpu_ticks(orders_pid) - cpu_before) as f64 / ticks_per_s;
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1e3)
            .unwrap_or(f64::NAN)
    };
    let ok = latencies.len() as f64;
    println!("checkout benchmark: {concurrency} shoppers, {elapsed:.1} s, payment latency 20 ms");
    println!("  checkouts: {} ok, {failed} failed", latencies.len());
    println!("  throughput: {:.1} checkouts/s", ok / elapsed);
    println!(
        "  latency ms: p50 {:.1}  p95 {:.1}  p99 {:.1}  max {:.1}",
        pct(0.50),
        pct(0.95),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "  orders process CPU: {:.1}% of one core, {:.2} ms CPU per checkout",
        100.0 * cpu_s / elapsed,
        1e3 * cpu_s / ok.max(1.0)
    );
    let audit = stack.audit().await;
    println!(
        "  audit after the run: accepted {} paid {} duplicated {}",
        audit["accepted"], audit["paid"], audit["duplicated"]
    );
}
