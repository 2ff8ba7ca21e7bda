//! The run directory's record of a run, appended once a second:
//! `timeline.jsonl` (one line per second: requests, failures and error kinds
//! per step, active users) and `latency.hlog` (the HdrHistogram interval-log
//! format: per second, a base64 compressed histogram per step and overall,
//! tagged `<step>` for raw figures and `<step>~co` for corrected ones).
//! Reports are rendered from these files alone.

use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufWriter, Write},
    path::Path,
    time::{Duration, SystemTime},
};

use base64::Engine;
use hdrhistogram::{
    Histogram,
    serialization::{
        Deserializer, V2DeflateSerializer,
        interval_log::{IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag},
    },
};
use serde::{Deserialize, Serialize};

use super::{Second, new_histogram};
use crate::errors::{Error, Result};

pub const OVERALL: &str = "overall";
const CORRECTED_SUFFIX: &str = "~co";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StepRow {
    pub requests: u64,
    pub failed: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
}

/// One line of `timeline.jsonl`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SecondRow {
    /// Seconds since the run started.
    pub t: u64,
    /// Virtual shoppers active in this second, when known.
    pub users: Option<u32>,
    pub steps: BTreeMap<String, StepRow>,
}

impl SecondRow {
    pub fn requests(&self) -> u64 {
        self.steps.values().map(|s| s.requests).sum()
    }
    pub fn failed(&self) -> u64 {
        self.steps.values().map(|s| s.failed).sum()
    }
}

pub struct TimelineWriter {
    rows: BufWriter<File>,
    hlog: BufWriter<File>,
    serializer: V2DeflateSerializer,
    steps: Vec<String>,
}

fn open_append(path: &Path) -> Result<BufWriter<File>> {
    let file = File::options()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    Ok(BufWriter::new(file))
}

fn tag_name(step: &str) -> String {
    step.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl TimelineWriter {
    pub fn create(dir: &Path, steps: &[String], started: SystemTime) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut writer = Self {
            rows: open_append(&dir.join("timeline.jsonl"))?,
            hlog: open_append(&dir.join("latency.hlog"))?,
            serializer: V2DeflateSerializer::new(),
            steps: steps.to_vec(),
        };
        let hlog_path = dir.join("latency.hlog");
        IntervalLogWriterBuilder::new()
            .add_comment("gameday latency log: microseconds; tags <step> (raw) and <step>~co (corrected for coordinated omission)")
            .with_start_time(started)
            .begin_log_with(&mut writer.hlog, &mut writer.serializer)
            .map_err(|e| Error::io(&hlog_path, e))?;
        Ok(writer)
    }

    /// Appends finished seconds and flushes, so a crash loses at most the
    /// second under way. `users(t)` gives the active shoppers of second t.
    pub fn append(
        &mut self,
        seconds: &BTreeMap<u64, Second>,
        users: impl Fn(u64) -> Option<u32>,
    ) -> Result<()> {
        let mut log = IntervalLogWriterBuilder::new()
            .begin_log_with(&mut self.hlog, &mut self.serializer)
            .map_err(|e| Error::io("latency.hlog", e))?;
        for (t, steps) in seconds {
            let mut row = SecondRow {
                t: *t,
                users: users(*t),
                steps: BTreeMap::new(),
            };
            let mut overall = (new_histogram(), new_histogram());
            for (idx, s) in steps {
                let name = self
                    .steps
                    .get(*idx)
                    .cloned()
                    .unwrap_or_else(|| format!("step-{idx}"));
                row.steps.insert(
                    name.clone(),
                    StepRow {
                        requests: s.requests,
                        failed: s.failed,
                        errors: s.errors.clone(),
                    },
                );
                let _ = overall.0.add(&s.raw);
                let _ = overall.1.add(&s.corrected);
                let tag = tag_name(&name);
                write_interval(&mut log, &s.raw, *t, &tag)?;
                write_interval(
                    &mut log,
                    &s.corrected,
                    *t,
                    &format!("{tag}{CORRECTED_SUFFIX}"),
                )?;
            }
            write_interval(&mut log, &overall.0, *t, OVERALL)?;
            write_interval(
                &mut log,
                &overall.1,
                *t,
                &format!("{OVERALL}{CORRECTED_SUFFIX}"),
            )?;
            let line = serde_json::to_string(&row).map_err(|source| Error::Json {
                what: "timeline.jsonl",
                source,
            })?;
            writeln!(self.rows, "{line}").map_err(|e| Error::io("timeline.jsonl", e))?;
        }
        drop(log);
        self.rows
            .flush()
            .map_err(|e| Error::io("timeline.jsonl", e))?;
        self.hlog.flush().map_err(|e| Error::io("latency.hlog", e))
    }
}

fn write_interval<W: Write>(
    log: &mut hdrhistogram::serialization::interval_log::IntervalLogWriter<
        '_,
        '_,
        W,
        V2DeflateSerializer,
    >,
    h: &Histogram<u64>,
    t: u64,
    tag: &str,
) -> Result<()> {
    log.write_histogram(
        h,
        Duration::from_secs(t),
        Duration::from_secs(1),
        Tag::new(tag),
    )
    .map_err(|e| Error::Histogram(format!("{e:?}")))
}

/// A run's record, read back.
#[derive(Debug, Default)]
pub struct Timeline {
    pub seconds: Vec<SecondRow>,
    /// tag -> second -> histogram (tags: `overall`, `overall~co`, `<step>`, `<step>~co`).
    pub histograms: BTreeMap<String, BTreeMap<u64, Histogram<u64>>>,
    /// `events.jsonl` (faults, replicas, scaling, stop conditions).
    pub events: Vec<crate::events::Event>,
    /// `probe.jsonl`: the prober's checks.
    pub probes: Vec<super::Probe>,
    /// `cost.jsonl`: what each component cost, second by second.
    pub cost: Vec<super::CostRow>,
}

impl Timeline {
    /// Each second's raw histogram of a tag.
    pub fn per_second(&self, tag: &str) -> Option<&BTreeMap<u64, Histogram<u64>>> {
        self.histograms.get(&tag_name(tag))
    }

    /// The raw (or corrected) histogram of a tag over the seconds in `range`.
    pub fn merged(
        &self,
        tag: &str,
        corrected: bool,
        range: std::ops::Range<u64>,
    ) -> Option<Histogram<u64>> {
        let key = if corrected {
            format!("{}{CORRECTED_SUFFIX}", tag_name(tag))
        } else {
            tag_name(tag)
        };
        let per_second = self.histograms.get(&key)?;
        let mut total = new_histogram();
        for (_, h) in per_second.range(range) {
            let _ = total.add(h);
        }
        Some(total)
    }
}

pub fn read_timeline(dir: &Path) -> Result<Timeline> {
    let rows_path = dir.join("timeline.jsonl");
    let text = std::fs::read_to_string(&rows_path).map_err(|e| Error::io(&rows_path, e))?;
    // A crash can leave a torn last line: keep every complete one.
    let seconds = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let hlog_path = dir.join("latency.hlog");
    let bytes = std::fs::read(&hlog_path).map_err(|e| Error::io(&hlog_path, e))?;
    let mut histograms: BTreeMap<String, BTreeMap<u64, Histogram<u64>>> = BTreeMap::new();
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(&bytes) {
        let Ok(LogEntry::Interval(interval)) = entry else {
            continue;
        };
        let Some(tag) = interval.tag() else { continue };
        let Ok(raw) =
            base64::engine::general_purpose::STANDARD.decode(interval.encoded_histogram())
        else {
            continue;
        };
        let Ok(h) = deserializer.deserialize::<u64, _>(&mut raw.as_slice()) else {
            continue;
        };
        histograms
            .entry(tag.as_str().to_string())
            .or_default()
            .insert(interval.start_timestamp().as_secs(), h);
    }
    Ok(Timeline {
        seconds,
        histograms,
        // A run that crashed early may have neither file.
        events: crate::events::read_events(&dir.join("events.jsonl")).unwrap_or_default(),
        probes: super::read_probes(dir),
        cost: super::read_cost(dir),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::record::Recorder;

    #[test]
    fn a_timeline_written_second_by_second_reads_back_the_same_figures() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = Recorder::new(Instant::now(), &["home", "buy: checkout"]);
        for i in 0..500u64 {
            recorder.record(
                (i % 2) as usize,
                Duration::from_micros(200 + i * 10),
                (i % 50 == 0).then_some("status 503"),
                Duration::from_millis(5),
            );
        }
        let steps = recorder.steps().to_vec();
        let mut writer = TimelineWriter::create(dir.path(), &steps, SystemTime::now()).unwrap();
        let taken = recorder.take_all();
        writer.append(&taken, |_| Some(42)).unwrap();
        drop(writer);

        let timeline = read_timeline(dir.path()).unwrap();
        let requests: u64 = timeline.seconds.iter().map(SecondRow::requests).sum();
        let failed: u64 = timeline.seconds.iter().map(SecondRow::failed).sum();
        assert_eq!((requests, failed), (500, 10));
        assert_eq!(timeline.seconds[0].users, Some(42));
        assert!(timeline.seconds[0].steps.contains_key("buy: checkout"));

        let mut expected = new_histogram();
        for steps in taken.values() {
            for s in steps.values() {
                expected.add(&s.raw).unwrap();
            }
        }
        let overall = timeline.merged(OVERALL, false, 0..u64::MAX).unwrap();
        assert_eq!(overall.len(), 500);
        for q in [0.5, 0.95, 0.99, 1.0] {
            assert_eq!(
                overall.value_at_quantile(q),
                expected.value_at_quantile(q),
                "q{q}"
            );
        }
        let step = timeline.merged("buy: checkout", true, 0..u64::MAX).unwrap();
        assert!(step.len() >= 250);
    }

    #[test]
    fn a_torn_last_line_from_a_crash_is_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = Recorder::new(Instant::now(), &["home"]);
        recorder.record(0, Duration::from_millis(3), None, Duration::from_millis(5));
        let mut writer =
            TimelineWriter::create(dir.path(), recorder.steps(), SystemTime::now()).unwrap();
        writer.append(&recorder.take_all(), |_| None).unwrap();
        drop(writer);
        let mut f = File::options()
            .append(true)
            .open(dir.path().join("timeline.jsonl"))
            .unwrap();
        write!(f, "{{\"t\": 7, \"steps\": {{\"home\"").unwrap();
        let timeline = read_timeline(dir.path()).unwrap();
        assert_eq!(timeline.seconds.len(), 1);
    }
}
