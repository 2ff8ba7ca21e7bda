//! `cost.jsonl`: once a second, what each component of the stack (and the
//! load generator) has cost so far: running CPU totals, resident memory now,
//! and running counters (database queries, cache lookups). The cost
//! figures of a run are differences between two of its lines.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::Path,
};

use serde::{Deserialize, Serialize};

use crate::{
    errors::{Error, Result},
    platform::Sample,
};

/// The load generator's own line in the cost table.
pub const LOAD_GENERATOR: &str = "load generator";

/// One line of `cost.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostRow {
    /// Seconds on the run's clock.
    pub t: u64,
    #[serde(flatten)]
    pub sample: Sample,
}

pub struct CostWriter {
    out: BufWriter<File>,
}

impl CostWriter {
    pub fn create(dir: &Path) -> Result<Self> {
        let path = dir.join("cost.jsonl");
        let file = File::options()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(Self {
            out: BufWriter::new(file),
        })
    }

    pub fn append(&mut self, row: &CostRow) -> Result<()> {
        let line = serde_json::to_string(row).map_err(|source| Error::Json {
            what: "cost.jsonl",
            source,
        })?;
        writeln!(self.out, "{line}")
            .and_then(|_| self.out.flush())
            .map_err(|e| Error::io("cost.jsonl", e))
    }
}

/// Reads `cost.jsonl` back (empty when the run has none).
pub fn read_cost(dir: &Path) -> Vec<CostRow> {
    std::fs::read_to_string(dir.join("cost.jsonl"))
        .map(|text| {
            text.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}
