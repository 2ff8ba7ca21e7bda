//! What a coordinator and its shards say to each other: one JSON object a
//! line, each way. A shard's seconds carry their histograms in the
//! HdrHistogram V2 encoding (base64, as `latency.hlog` holds them, without
//! its deflate: a second of one step is a few hundred bytes), so adding
//! them up in the coordinator is exact.

use std::collections::BTreeMap;

use base64::Engine;
use hdrhistogram::{
    Histogram,
    serialization::{Deserializer, Serializer, V2Serializer},
};
use serde::{Deserialize, Serialize};

use crate::{
    record::{Second, StepSecond},
    scenario::Load,
};

/// What shard `index` of `of` is to do: its share of the shoppers, against
/// `entry`, logging in with its slice of the accounts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardPlan {
    pub index: u32,
    pub of: u32,
    pub entry: String,
    /// The scenario's load with every stage's shoppers this shard's share.
    pub load: Load,
    pub accounts: Vec<(String, String)>,
    /// Unique to the shard (idempotency keys are made of it).
    pub run_id: String,
    pub catalogue_size: u32,
    pub expected_interval_ms: u64,
}

/// The coordinator to a shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ToShard {
    /// Start the load now. The run's clock started `origin_ago_ms` ago (a
    /// shard's second t is the run's second t); the measured window is
    /// `window` on that clock.
    Start {
        origin_ago_ms: u64,
        window: (u64, u64),
    },
    /// Stop every shopper (each finishes its step), send what is left, end.
    Stop,
}

/// One step's second, as a shard sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireStep {
    /// The step's index in [`crate::load::Step::ALL`].
    pub step: usize,
    pub requests: u64,
    pub failed: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
    /// V2-encoded, base64.
    pub raw: String,
    pub corrected: String,
}

/// What a shard measured about itself, at its end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardHealth {
    pub cpu_percent_max: f64,
    pub lag_ms_p99: f64,
    pub saturated: bool,
    pub peak_rss_mb: Option<f64>,
}

/// A shard to the coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FromShard {
    /// Set up and waiting for [`ToShard::Start`].
    Ready { pid: u32 },
    /// Second `t` is over: what each step did in it (step index -> figures;
    /// a second with no request has no steps but is still sent, so a
    /// missing second is known), and the orders acknowledged in it.
    Second {
        t: u64,
        steps: Vec<WireStep>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        orders: Vec<String>,
    },
    /// Every second has been sent; the shard ends. `orders`: those
    /// acknowledged after its last second was sent.
    Done {
        health: ShardHealth,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        orders: Vec<String>,
    },
    /// The shard could not do its work.
    Failed { error: String },
}

fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    // V2 of a histogram within its own bounds does not fail.
    let _ = V2Serializer::new().serialize(h, &mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn decode(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("a histogram is not base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("a histogram does not decode: {e:?}"))
}

/// A recorded second, ready to send.
pub fn second_to_wire(t: u64, second: &Second, orders: Vec<String>) -> FromShard {
    FromShard::Second {
        t,
        steps: second
            .iter()
            .map(|(step, s)| WireStep {
                step: *step,
                requests: s.requests,
                failed: s.failed,
                errors: s.errors.clone(),
                raw: encode(&s.raw),
                corrected: encode(&s.corrected),
            })
            .collect(),
        orders,
    }
}

/// A received second's steps, as the recorder holds them.
pub fn second_from_wire(steps: &[WireStep]) -> Result<Second, String> {
    steps
        .iter()
        .map(|w| {
            let mut s = StepSecond {
                requests: w.requests,
                failed: w.failed,
                errors: w.errors.clone(),
                ..StepSecond::default()
            };
            s.raw
                .add(decode(&w.raw)?)
                .map_err(|e| format!("a histogram is out of range: {e:?}"))?;
            s.corrected
                .add(decode(&w.corrected)?)
                .map_err(|e| format!("a histogram is out of range: {e:?}"))?;
            Ok((w.step, s))
        })
        .collect()
}

/// `msg` as one line (no newline).
pub fn line<T: Serialize>(msg: &T) -> String {
    serde_json::to_string(msg).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::record::Recorder;

    #[test]
    fn a_second_survives_the_wire_with_every_count_and_value() {
        let recorder = Recorder::new(std::time::Instant::now(), &["home", "checkout"]);
        for i in 0..300u64 {
            recorder.record(
                (i % 2) as usize,
                Duration::from_micros(150 + i * 37),
                (i % 30 == 0).then_some("status 503"),
                Duration::from_millis(1),
            );
        }
        let (t, second) = recorder.take_all().into_iter().next().unwrap();
        let text = line(&second_to_wire(t, &second, vec!["o-1".into()]));
        let FromShard::Second {
            t: back_t,
            steps,
            orders,
        } = serde_json::from_str(&text).unwrap()
        else {
            panic!("not a second: {text}");
        };
        assert_eq!((back_t, orders), (t, vec!["o-1".to_string()]));
        let back = second_from_wire(&steps).unwrap();
        assert_eq!(back.len(), second.len());
        for (step, s) in &second {
            let b = &back[step];
            assert_eq!(
                (b.requests, b.failed, &b.errors),
                (s.requests, s.failed, &s.errors)
            );
            assert_eq!(b.raw, s.raw);
            assert_eq!(b.corrected, s.corrected);
        }
    }

    #[test]
    fn a_garbled_histogram_is_an_error_not_a_zero() {
        let steps = vec![WireStep {
            step: 0,
            requests: 1,
            failed: 0,
            errors: BTreeMap::new(),
            raw: "not base64!".into(),
            corrected: String::new(),
        }];
        assert!(second_from_wire(&steps).unwrap_err().contains("base64"));
    }
}
