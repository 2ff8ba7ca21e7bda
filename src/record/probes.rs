//! `probe.jsonl`: the prober's checks, one line each (when sent, read or
//! write path, ok, how long, why not).

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbePath {
    Read,
    Write,
}

/// One line of `probe.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// When the check was sent, ms on the run's clock.
    pub t_ms: u64,
    pub path: ProbePath,
    pub ok: bool,
    pub ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub fn read_probes(dir: &Path) -> Vec<Probe> {
    std::fs::read_to_string(dir.join("probe.jsonl"))
        .map(|text| {
            let mut v: Vec<Probe> = text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            v.sort_by_key(|p| p.t_ms);
            v
        })
        .unwrap_or_default()
}
