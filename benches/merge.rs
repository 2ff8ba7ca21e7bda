//! What the distributed load's coordinator costs to merge its shards: CPU
//! per shard per second, and memory, at 4, 16 and 64 simulated shards, each
//! sending a busy second of 1,000 requests (the nine steps of the shop's
//! journeys, latencies spread over 1 ms to 2 s, 1% failed) for 30 seconds.
//!
//! The shards' lines are made first (their cost is the shards', not the
//! coordinator's); then the coordinator's work is timed, as `gameday run`
//! does it: parse each line, decode its histograms, add them into the
//! merger, release the complete second, and append it to `timeline.jsonl`
//! and `latency.hlog`. CPU from getrusage; memory as the growth of the
//! resident set's peak. Each case runs in a child process of this binary,
//! so its memory is its own. Figures are printed, never asserted.
//!
//! Run: cargo bench --bench merge   (env: SHARDS=4,16,64 SECONDS=30 REQUESTS=1000)

mod common;

use std::{
    process::Command,
    time::{Duration, Instant, SystemTime},
};

use gameday::{
    load::{
        Step,
        shard::{
            merge::Merger,
            wire::{FromShard, line, second_from_wire, second_to_wire},
        },
    },
    record::{Recorder, TimelineWriter},
};
use rand::{Rng, SeedableRng, rngs::StdRng};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// One shard's `seconds` lines, each of `requests` requests.
fn shard_lines(seed: u64, seconds: u64, requests: u64) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let steps = Step::names();
    (0..seconds)
        .map(|t| {
            let recorder = Recorder::new(Instant::now(), &steps);
            for _ in 0..requests {
                let step = rng.random_range(0..steps.len());
                // Mostly fast, a long tail: 1 ms .. 2 s.
                let ms = 1.0 + (rng.random::<f64>().powi(6) * 2000.0);
                let failure = (rng.random::<f64>() < 0.01).then_some("status 503");
                recorder.record(
                    step,
                    Duration::from_micros((ms * 1000.0) as u64),
                    failure,
                    Duration::from_secs(5),
                );
            }
            let second = recorder.take_all().into_values().next().unwrap_or_default();
            line(&second_to_wire(
                t,
                &second,
                vec![format!("order-{seed}-{t}")],
            ))
        })
        .collect()
}

fn one_case(shards: u32, seconds: u64, requests: u64) {
    let lines: Vec<Vec<String>> = (0..shards)
        .map(|i| shard_lines(i as u64, seconds, requests))
        .collect();
    let bytes: usize = lines.iter().flatten().map(String::len).sum();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let steps: Vec<String> = Step::names().iter().map(|s| s.to_string()).collect();
    let mut writer =
        TimelineWriter::create(dir.path(), &steps, SystemTime::now()).expect("the timeline");
    let mut merger = Merger::new(shards, 0);
    let (cpu0, rss0) = common::usage();
    let wall = Instant::now();
    let mut merged_requests = 0u64;
    for t in 0..seconds {
        for (i, shard) in lines.iter().enumerate() {
            let msg: FromShard = serde_json::from_str(&shard[t as usize]).expect("a line");
            let FromShard::Second { t, steps, orders } = msg else {
                panic!("not a second")
            };
            let second = second_from_wire(&steps).expect("histograms decode");
            merger
                .receive(i as u32, t, second, orders)
                .expect("in order");
        }
        let done = merger.take_before(t + 1);
        merged_requests += done
            .values()
            .flat_map(|s| s.values())
            .map(|s| s.requests)
            .sum::<u64>();
        writer.append(&done, |_| None).expect("appended");
    }
    let (cpu1, rss1) = common::usage();
    assert_eq!(merged_requests, shards as u64 * seconds * requests);
    let cpu = cpu1 - cpu0;
    let per_shard_second_us = cpu * 1e6 / (shards as f64 * seconds as f64);
    println!(
        "{shards:>3} shards | {:>8.0} us CPU per shard-second | {:>6.1} ms CPU per second ({:>5.1}% of one core) | wire {:>6.1} KiB per shard-second | peak RSS +{:>6.1} MiB | wall {:.1} s",
        per_shard_second_us,
        cpu * 1e3 / seconds as f64,
        cpu * 100.0 / seconds as f64,
        bytes as f64 / 1024.0 / (shards as f64 * seconds as f64),
        rss1.saturating_sub(rss0) as f64 / 1024.0,
        wall.elapsed().as_secs_f64(),
    );
}

fn main() {
    if let Ok(case) = std::env::var("MERGE_CASE") {
        let mut it = case.split(',').map(|v| v.parse::<u64>().expect("a number"));
        let (shards, seconds, requests) = (
            it.next().unwrap() as u32,
            it.next().unwrap(),
            it.next().unwrap(),
        );
        one_case(shards, seconds, requests);
        return;
    }
    let seconds: u64 = env_or("SECONDS", "30").parse().expect("SECONDS");
    let requests: u64 = env_or("REQUESTS", "1000").parse().expect("REQUESTS");
    println!(
        "coordinator merge: {seconds} s, each shard sending {requests} requests a second (9 steps, raw + corrected histograms)"
    );
    let exe = std::env::current_exe().expect("this bench");
    for shards in env_or("SHARDS", "4,16,64").split(',') {
        let status = Command::new(&exe)
            .env("MERGE_CASE", format!("{shards},{seconds},{requests}"))
            .status()
            .expect("the case runs");
        assert!(status.success(), "the {shards}-shard case failed");
    }
}
