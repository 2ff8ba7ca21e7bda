//! Why shop-user replicas grew to 450-510 MB during black friday, and what
//! holds it down: many registrations and logins at once, each an argon2id
//! hash with 4 MiB of working memory on a blocking thread, as the service
//! does. Each variant runs in a child process (allocator settings are per
//! process) and prints its resident memory after the burst.
//!
//! Run: cargo bench -p shop-user --bench hash_memory
//! (env: HASHES=2000, CONCURRENCY=32)

use std::{process::Command, sync::Arc, time::Instant};

use shop_common::settings::Argon2Cost;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn peak_mib() -> f64 {
    nix_free_max_rss() / 1024.0
}

fn nix_free_max_rss() -> f64 {
    // VmHWM: the peak resident set.
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

fn child(variant: &str) {
    let hashes = env_or("HASHES", 2000);
    let concurrency = env_or("CONCURRENCY", 32);
    if variant.starts_with("allocator setting") {
        shop_user::tame_allocator();
    }
    let limit = if variant.ends_with("limit") {
        Some(std::thread::available_parallelism().map_or(2, |n| n.get()))
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let hasher = Arc::new(shop_user::hasher(Argon2Cost::default()).unwrap());
    let permits = Arc::new(tokio::sync::Semaphore::new(
        limit.unwrap_or(usize::MAX >> 4),
    ));
    let before = rss_mib();
    let started = Instant::now();
    runtime.block_on(async {
        use futures::stream::{self, StreamExt};
        stream::iter(0..hashes)
            .map(|i| {
                let (hasher, permits) = (hasher.clone(), permits.clone());
                async move {
                    let _permit = permits.acquire_owned().await.unwrap();
                    tokio::task::spawn_blocking(move || {
                        shop_user::hash_password(&hasher, &format!("password-{i}")).unwrap()
                    })
                    .await
                    .unwrap()
                }
            })
            .buffer_unordered(concurrency)
            .for_each(|_| async {})
            .await;
    });
    let took = started.elapsed().as_secs_f64();
    // What the service holds while idle after the burst.
    std::thread::sleep(std::time::Duration::from_secs(2));
    println!(
        "{{\"variant\":\"{variant}\",\"before\":{before:.1},\"after\":{:.1},\"peak\":{:.1},\"per_hash_ms\":{:.2}}}",
        rss_mib(),
        peak_mib(),
        took * 1e3 / hashes as f64
    );
}

fn main() {
    if let Ok(variant) = std::env::var("HASH_MEMORY_CHILD") {
        child(&variant);
        return;
    }
    println!(
        "{} argon2id hashes (4 MiB, t=1), {} at once, on tokio blocking threads\n",
        env_or("HASHES", 2000),
        env_or("CONCURRENCY", 32)
    );
    println!(
        "{:<32} {:>12} {:>12} {:>12} {:>14}",
        "variant", "RSS before", "RSS after", "peak RSS", "ms per hash"
    );
    for variant in [
        "glibc default",
        "allocator setting",
        "limit",
        "allocator setting + limit",
    ] {
        let out = Command::new(std::env::current_exe().unwrap())
            .env("HASH_MEMORY_CHILD", variant)
            .output()
            .unwrap();
        let line = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| {
            panic!(
                "{variant}: {e}: {line}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        println!(
            "{:<32} {:>9.1} MiB {:>9.1} MiB {:>9.1} MiB {:>14.2}",
            variant,
            v["before"].as_f64().unwrap(),
            v["after"].as_f64().unwrap(),
            v["peak"].as_f64().unwrap(),
            v["per_hash_ms"].as_f64().unwrap()
        );
    }
}
