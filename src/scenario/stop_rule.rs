//! `stop-when` rules: `<metric> <op> <value> for <duration>`.

use super::{Metric, Op, Percentile, StopRule, parse_duration, parse_percent};

/// `<metric> <op> <value> for <duration>`, e.g. `p99 > 2s for 30s`.
pub fn parse_stop_rule(text: &str) -> Result<StopRule, String> {
    const FORM: &str =
        "expected `<metric> <op> <value> for <duration>` such as `error-rate > 20% for 10s`";
    let words: Vec<&str> = text.split_whitespace().collect();
    let [metric, op, value, for_word, window] = words[..] else {
        return Err(format!("{FORM}, got `{text}`"));
    };
    if for_word != "for" {
        return Err(format!("{FORM}, got `{text}`"));
    }
    let metric = match metric {
        "error-rate" => Metric::ErrorRate,
        "availability" => Metric::Availability,
        other => Metric::Latency(Percentile::parse(other).filter(|p| *p != Percentile::Max).ok_or_else(|| {
            format!("unknown metric `{other}` (expected error-rate, availability, p50, p95, p99 or p99.9)")
        })?),
    };
    let op = match op {
        ">" => Op::Gt,
        ">=" => Op::Ge,
        "<" => Op::Lt,
        "<=" => Op::Le,
        other => {
            return Err(format!(
                "unknown operator `{other}` (expected >, >=, < or <=)"
            ));
        }
    };
    let value = match metric {
        Metric::ErrorRate | Metric::Availability => {
            parse_percent(value)
                .ok_or_else(|| format!("expected a percentage such as 20%, got `{value}`"))?
                / 100.0
        }
        Metric::Latency(_) => {
            parse_duration(value)
                .ok_or_else(|| format!("expected a duration such as 2s, got `{value}`"))?
                .as_secs_f64()
                * 1e3
        }
    };
    let window = parse_duration(window)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("expected a window such as 10s, got `{window}`"))?;
    Ok(StopRule {
        text: text.to_string(),
        metric,
        op,
        value,
        window,
    })
}
