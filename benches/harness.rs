//! What gameday's load engine costs on top of bare goose: CPU microseconds
//! per request and resident memory per virtual user, both measured in the
//! same run against the same fast local target (a real HAProxy answering
//! every path from its config, so the target costs almost nothing and the
//! shop is not involved).
//!
//! - bare goose: the browse journey's four GETs as plain goose transactions,
//!   with goose's defaults (a client per user, its own request metrics):
//!   what a goose user gets out of the box.
//! - gameday: `gameday::load::attack` with the real browse journey (named
//!   steps, status and body checks, per-second HDR recording raw and
//!   corrected, the once-a-second timeline writer and the self-monitor).
//!
//! Three cases: 50 users without think time (CPU per request at full
//! speed), 2,000 users with 1 s think time, and black friday's 10,000 users
//! with 5-15 s think time. CPU per request and memory per user are read in
//! a steady window of the hold (after the ramp has settled, before the
//! ramp-down): CPU from getrusage, requests from the target HAProxy's own
//! counter, memory as resident set growth over the process before its
//! users.
//!
//! Each measurement runs in a child process of this binary, so CPU (getrusage)
//! and memory belong to that load generator alone. Figures are printed,
//! never asserted: these machines are shared and noisy.
//!
//! Run: cargo bench --bench harness
//! (env: SECONDS=15, CPU_USERS=50, MEM_USERS=2000, MEM_THINK_MS=1000,
//!  BF_USERS=10000, BF_RAMP=30, BF_SECONDS=60, CASES=cpu,memory,bf)

mod common;

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

fn static_target(dir: &std::path::Path, port: u16) -> String {
    format!(
        r#"global
    maxconn 9900
    stats socket {dir}/stats.sock mode 600 level admin
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
"#,
        dir = dir.display()
    )
}

/// Requests the target has answered so far (its frontend's `req_tot`).
fn target_requests(socket: &str) -> u64 {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).expect("stats socket");
    s.write_all(b"show stat\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let mut lines = out.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let col = header.iter().position(|h| *h == "req_tot").unwrap();
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f[0] == "static" && f[1] == "FRONTEND")
        .and_then(|f| f[col].parse().ok())
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One case: how many users, their think time, the ramp and the hold.
#[derive(Clone, Copy)]
struct Case {
    users: u32,
    think: (Duration, Duration),
    ramp: Duration,
    hold: Duration,
}

impl Case {
    fn load(&self) -> Load {
        Load {
            stages: vec![
                Stage {
                    users: self.users,
                    over: self.ramp,
                },
                Stage {
                    users: self.users,
                    over: self.hold,
                },
                Stage {
                    users: 0,
                    over: Duration::from_secs(1),
                },
            ],
            think_time: self.think,
            journeys: vec![(Journey::Browse, 1)],
            generators: None,
        }
    }

    /// The steady window: from a quarter into the hold to 2 s before its end.
    fn window(&self) -> (Duration, Duration) {
        let start = self.ramp + self.hold / 4;
        (start, self.ramp + self.hold - Duration::from_secs(2))
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

/// Reads CPU, the target's request count and memory at the window's edges.
async fn sample_window(case: Case, socket: String) -> Value {
    let started = Instant::now();
    let (from, to) = case.window();
    tokio::time::sleep_until((started + from).into()).await;
    let (cpu0, _) = common::usage();
    let (req0, rss0) = (target_requests(&socket), rss_kib());
    tokio::time::sleep_until((started + to).into()).await;
    let (cpu1, _) = common::usage();
    let (req1, rss1) = (target_requests(&socket), rss_kib());
    json!({
        "window_s": (to - from).as_secs_f64(),
        "window_cpu_s": cpu1 - cpu0,
        "window_requests": req1 - req0,
        "rss_window_kib": rss0.max(rss1),
    })
}

/// One measurement, in this (child) process; prints one JSON line.
async fn child(mode: &str, host: &str, socket: &str, case: Case) -> Value {
    let load = case.load();
    let plan = gameday::load::test_plan(&load);
    let (cpu0, rss_peak0) = common::usage();
    let rss_before = rss_kib();
    let started = Instant::now();
    let window = tokio::spawn(sample_window(case, socket.to_string()));
    match mode {
        "bare" => {
            GooseAttack::initialize_with_config(GooseConfiguration::default())
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
                        .set_wait_time(case.think.0, case.think.1)
                        .unwrap()
                        .register_transaction(transaction!(bare_home))
                        .register_transaction(transaction!(bare_categories))
                        .register_transaction(transaction!(bare_products))
                        .register_transaction(transaction!(bare_product)),
                )
                .execute()
                .await
                .unwrap();
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
                expected_interval: case.think.0.max(Duration::from_millis(10)),
                catalogue_size: 2,
                run_id: "bench".into(),
                client: gameday::load::shared_client().unwrap(),
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
        }
    };
    let (cpu1, rss_peak1) = common::usage();
    let mut figures = window.await.unwrap();
    figures["mode"] = mode.into();
    figures["users"] = case.users.into();
    figures["cpu_s"] = (cpu1 - cpu0).into();
    figures["wall_s"] = started.elapsed().as_secs_f64().into();
    figures["rss_before_kib"] = rss_before.into();
    figures["rss_peak_kib"] = rss_peak1.max(rss_peak0).into();
    figures
}

fn measure(mode: &str, host: &str, socket: &str, case: Case) -> Value {
    let out = Command::new(std::env::current_exe().unwrap())
        .env("GAMEDAY_BENCH_CHILD", mode)
        .env("BENCH_HOST", host)
        .env("BENCH_STATS", socket)
        .env("BENCH_USERS", case.users.to_string())
        .env("BENCH_RAMP_S", case.ramp.as_secs().to_string())
        .env("BENCH_SECONDS", case.hold.as_secs().to_string())
        .env("BENCH_THINK_MIN_MS", case.think.0.as_millis().to_string())
        .env("BENCH_THINK_MAX_MS", case.think.1.as_millis().to_string())
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
        let socket = std::env::var("BENCH_STATS").unwrap();
        let ms = |name: &str| Duration::from_millis(env_or(name, 0));
        let case = Case {
            users: env_or("BENCH_USERS", 50) as u32,
            think: (ms("BENCH_THINK_MIN_MS"), ms("BENCH_THINK_MAX_MS")),
            ramp: Duration::from_secs(env_or("BENCH_RAMP_S", 3)),
            hold: Duration::from_secs(env_or("BENCH_SECONDS", 15)),
        };
        let figures = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(child(&mode, &host, &socket, case));
        println!("{figures}");
        return;
    }
    gameday::platform::local::haproxy::raise_open_file_limit();
    let seconds = Duration::from_secs(env_or("SECONDS", 15));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port("127.0.0.1".parse().unwrap()).unwrap();
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(&cfg, static_target(dir.path(), port)).unwrap();
    let mut command = Command::new(find_program("haproxy", "haproxy").unwrap());
    command.arg("-db").arg("-f").arg(&cfg);
    let mut haproxy =
        Supervised::spawn("haproxy", command, &dir.path().join("haproxy.log")).unwrap();
    let host = format!("http://127.0.0.1:{port}");
    let socket = dir.path().join("stats.sock").display().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "haproxy did not start: {}",
            haproxy.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ms = Duration::from_millis;
    let cases = std::env::var("CASES").unwrap_or_else(|_| "cpu,memory,bf".into());
    let mut plan: Vec<(&str, Case)> = Vec::new();
    if cases.contains("cpu") {
        plan.push((
            "CPU: no think time",
            Case {
                users: env_or("CPU_USERS", 50) as u32,
                think: (ms(0), ms(0)),
                ramp: Duration::from_secs(3),
                hold: seconds,
            },
        ));
    }
    if cases.contains("memory") {
        let think = ms(env_or("MEM_THINK_MS", 1000));
        plan.push((
            "memory: think time",
            Case {
                users: env_or("MEM_USERS", 2000) as u32,
                think: (think, think),
                ramp: Duration::from_secs(3),
                hold: seconds,
            },
        ));
    }
    if cases.contains("bf") {
        plan.push((
            "black friday: 5-15 s think",
            Case {
                users: env_or("BF_USERS", 10_000) as u32,
                think: (ms(5_000), ms(15_000)),
                ramp: Duration::from_secs(env_or("BF_RAMP", 30)),
                hold: Duration::from_secs(env_or("BF_SECONDS", 60)),
            },
        ));
    }
    println!(
        "harness cost against a static HAProxy target ({host}); figures from a steady window of each hold\n"
    );
    println!(
        "{:<46} {:>9} {:>9} {:>11} {:>11} {:>12} {:>12}",
        "run", "requests", "req/s", "CPU µs/req", "RSS MiB", "KiB per user", "peak MiB"
    );
    let mut rows = Vec::new();
    for (what, case) in plan {
        let mut pair = Vec::new();
        for mode in ["bare", "gameday"] {
            let f = measure(mode, &host, &socket, case);
            let requests = f["window_requests"].as_f64().unwrap().max(1.0);
            let cpu_us = f["window_cpu_s"].as_f64().unwrap() * 1e6 / requests;
            let rss = f["rss_window_kib"].as_f64().unwrap();
            let before = f["rss_before_kib"].as_f64().unwrap();
            let per_user = (rss - before) / case.users as f64;
            println!(
                "{:<46} {:>9} {:>9.0} {:>11.1} {:>11.1} {:>12.1} {:>12.1}",
                format!("{mode}, {what}, {} users", case.users),
                f["window_requests"],
                requests / f["window_s"].as_f64().unwrap(),
                cpu_us,
                rss / 1024.0,
                per_user,
                f["rss_peak_kib"].as_f64().unwrap() / 1024.0
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
