//! What gameday's load engine costs on top of bare goose: CPU microseconds
//! per request and resident memory per virtual user, both measured in the
//! same run against the same fast local target (a real HAProxy answering
//! every path from its config, so the target costs almost nothing and the
//! shop is not involved).
//!
//! - bare goose: the browse journey's four GETs as plain goose transactions,
//!   with goose's own request metrics (what a goose user gets by default).
//! - gameday: `gameday::load::attack` with the real browse journey (named
//!   steps, status and body checks, per-second HDR recording raw and
//!   corrected, the once-a-second timeline writer and the self-monitor).
//!
//! Each measurement runs in a child process of this binary, so CPU (getrusage)
//! and peak RSS belong to that load generator alone. Figures are printed,
//! never asserted: these machines are shared and noisy.
//!
//! Run: cargo bench --bench harness
//! (env: SECONDS=15, CPU_USERS=50, MEM_USERS=2000, MEM_THINK_MS=1000)

use std::{
    process::Command,
    sync::{Arc, Mutex, atomic::AtomicUsize},
    time::{Duration, Instant},
};

use gameday::{
    load::{LoadContext, Step},
    platform::local::process::{Supervised, find_program, free_port},
    record::{Recorder, TimelineWriter},
    run::Collector,
    scenario::{Journey, Load, Stage},
};
use goose::{config::GooseConfiguration, prelude::*};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (CPU seconds, peak RSS KiB) of this process so far.
fn usage() -> (f64, u64) {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .expect("getrusage");
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    (
        secs(u.user_time()) + secs(u.system_time()),
        u.max_rss() as u64,
    )
}

fn static_target(dir: &std::path::Path, port: u16) -> String {
    format!(
        r#"global
    maxconn 9000
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s
frontend static
    bind 127.0.0.1:{port}
    http-request return status 200 content-type "application/json" lf-string "{{\"sku\":\"%[path,field(5,/)]\"}}" if {{ path_beg /api/catalogue/products/ }}
    http-request return status 200 content-type "application/json" string "{{\"products\":[{{\"sku\":\"SKU-00001\"}},{{\"sku\":\"SKU-00002\"}}]}}" if {{ path_beg /api/catalogue/products }}
    http-request return status 200 content-type "application/json" string "[{{\"id\":1,\"name\":\"shoes\"}}]" if {{ path /api/catalogue/categories }}
    http-request return status 200 content-type "text/html" string "<html><script src=/app.js></script></html>"
# {}
"#,
        dir.display()
    )
}

fn load(users: u32, seconds: u64, think: Duration) -> Load {
    Load {
        stages: vec![
            Stage {
                users,
                over: Duration::from_secs(3),
            },
            Stage {
                users,
                over: Duration::from_secs(seconds),
            },
            Stage {
                users: 0,
                over: Duration::from_secs(1),
            },
        ],
        think_time: (think, think),
        journeys: vec![(Journey::Browse, 1)],
    }
}

async fn bare_get(user: &mut GooseUser, path: &str) -> TransactionResult {
    let _ = user.get(path).await?;
    Ok(())
}
async fn bare_home(user: &mut GooseUser) -> TransactionResult {
    bare_get(user, "/").await
}
async fn bare_categories(user: &mut GooseUser) -> TransactionResult {
    bare_get(user, "/api/catalogue/categories").await
}
async fn bare_products(user: &mut GooseUser) -> TransactionResult {
    bare_get(user, "/api/catalogue/products?page=1").await
}
async fn bare_product(user: &mut GooseUser) -> TransactionResult {
    bare_get(user, "/api/catalogue/products/SKU-00001").await
}

/// One measurement, in this (child) process; prints one JSON line.
async fn child(mode: &str, host: &str, users: u32, seconds: u64, think: Duration) -> Value {
    let load = load(users, seconds, think);
    let plan = gameday::load::test_plan(&load);
    let (cpu0, rss0) = usage();
    let started = Instant::now();
    let requests: u64 = match mode {
        "bare" => {
            let metrics = GooseAttack::initialize_with_config(GooseConfiguration::default())
                .unwrap()
                .set_default(GooseDefault::Host, host)
                .unwrap()
                .set_default(GooseDefault::TestPlan, plan.as_str())
                .unwrap()
                .set_default(GooseDefault::NoTelnet, true)
                .unwrap()
                .set_default(GooseDefault::Quiet, 1)
                .unwrap()
                .set_default(GooseDefault::NoPrintMetrics, true)
                .unwrap()
                .register_scenario(
                    scenario!("browse")
                        .set_wait_time(think, think)
                        .unwrap()
                        .register_transaction(transaction!(bare_home))
                        .register_transaction(transaction!(bare_categories))
                        .register_transaction(transaction!(bare_products))
                        .register_transaction(transaction!(bare_product)),
                )
                .execute()
                .await
                .unwrap();
            metrics
                .requests
                .values()
                .map(|r| (r.success_count + r.fail_count) as u64)
                .sum()
        }
        _ => {
            let dir = tempfile::tempdir().unwrap();
            let origin = Instant::now();
            let recorder = Arc::new(Recorder::new(origin, &Step::names()));
            let ctx = Arc::new(LoadContext {
                recorder: recorder.clone(),
                accounts: Vec::new(),
                next_login: AtomicUsize::new(0),
                acknowledged: Mutex::new(Vec::new()),
                expected_interval: think.max(Duration::from_millis(10)),
                catalogue_size: 2,
                run_id: "bench".into(),
            });
            let writer =
                TimelineWriter::create(dir.path(), recorder.steps(), std::time::SystemTime::now())
                    .unwrap();
            let done = CancellationToken::new();
            let collector = tokio::spawn(
                Collector {
                    recorder: recorder.clone(),
                    writer,
                    load: load.clone(),
                    load_started_s: 0,
                    done: done.clone(),
                    stop_rules: Vec::new(),
                    abort: CancellationToken::new(),
                    events: None,
                }
                .run(),
            );
            gameday::load::attack(&load, host, &ctx)
                .unwrap()
                .execute()
                .await
                .unwrap();
            done.cancel();
            collector.await.unwrap().unwrap();
            let timeline = gameday::record::read_timeline(dir.path()).unwrap();
            let failed: u64 = timeline.seconds.iter().map(|r| r.failed()).sum();
            assert_eq!(failed, 0, "the static target answers every check");
            timeline.seconds.iter().map(|r| r.requests()).sum()
        }
    };
    let (cpu1, rss1) = usage();
    json!({
        "mode": mode, "users": users, "requests": requests,
        "cpu_s": cpu1 - cpu0, "wall_s": started.elapsed().as_secs_f64(),
        "rss_before_kib": rss0, "rss_peak_kib": rss1,
    })
}

fn measure(mode: &str, host: &str, users: u64, seconds: u64, think_ms: u64) -> Value {
    let out = Command::new(std::env::current_exe().unwrap())
        .env("GAMEDAY_BENCH_CHILD", mode)
        .env("BENCH_HOST", host)
        .env("BENCH_USERS", users.to_string())
        .env("BENCH_SECONDS", seconds.to_string())
        .env("BENCH_THINK_MS", think_ms.to_string())
        .output()
        .expect("run the measurement");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "{mode} printed no figures: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    serde_json::from_str(line).unwrap()
}

fn main() {
    if let Ok(mode) = std::env::var("GAMEDAY_BENCH_CHILD") {
        let host = std::env::var("BENCH_HOST").unwrap();
        let figures = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(child(
                &mode,
                &host,
                env_or("BENCH_USERS", 50) as u32,
                env_or("BENCH_SECONDS", 15),
                Duration::from_millis(env_or("BENCH_THINK_MS", 0)),
            ));
        println!("{figures}");
        return;
    }
    gameday::platform::local::haproxy::raise_open_file_limit();
    let seconds = env_or("SECONDS", 15);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port("127.0.0.1".parse().unwrap()).unwrap();
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(&cfg, static_target(dir.path(), port)).unwrap();
    let mut command = Command::new(find_program("haproxy", "haproxy").unwrap());
    command.arg("-db").arg("-f").arg(&cfg);
    let mut haproxy =
        Supervised::spawn("haproxy", command, &dir.path().join("haproxy.log")).unwrap();
    let host = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "haproxy did not start: {}",
            haproxy.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let cpu_users = env_or("CPU_USERS", 50);
    let mem_users = env_or("MEM_USERS", 2000);
    let mem_think = env_or("MEM_THINK_MS", 1000);
    println!(
        "harness cost against a static HAProxy target ({host}); {seconds} s hold after a 3 s ramp\n"
    );
    println!(
        "{:<40} {:>10} {:>10} {:>12} {:>12} {:>14}",
        "run", "requests", "req/s", "CPU µs/req", "peak RSS MiB", "KiB per user"
    );
    let mut rows = Vec::new();
    for (what, users, think) in [
        ("CPU: no think time", cpu_users, 0),
        ("memory: think time", mem_users, mem_think),
    ] {
        let mut pair = Vec::new();
        for mode in ["bare", "gameday"] {
            let f = measure(mode, &host, users, seconds, think);
            let requests = f["requests"].as_f64().unwrap().max(1.0);
            let cpu_us = f["cpu_s"].as_f64().unwrap() * 1e6 / requests;
            let peak = f["rss_peak_kib"].as_f64().unwrap();
            let before = f["rss_before_kib"].as_f64().unwrap();
            let per_user = (peak - before) / users as f64;
            println!(
                "{:<40} {:>10} {:>10.0} {:>12.1} {:>12.1} {:>14.1}",
                format!("{mode}, {what}, {users} users"),
                f["requests"],
                requests / f["wall_s"].as_f64().unwrap(),
                cpu_us,
                peak / 1024.0,
                per_user
            );
            pair.push((cpu_us, per_user));
        }
        rows.push((what, pair));
    }
    println!();
    for (what, pair) in rows {
        println!(
            "gameday / bare goose, {what}: CPU per request x{:.2}, memory per user x{:.2}",
            pair[1].0 / pair[0].0,
            pair[1].1 / pair[0].1.max(0.001)
        );
    }
    haproxy.kill();
}
