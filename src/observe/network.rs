//! What a network fault added to the latency shoppers felt: the p50 and
//! p99 of the steps whose service uses one of its links (`shop::step_links`),
//! over the fault's window against the same span just before it.

use hdrhistogram::Histogram;

use super::{FaultSummary, LinkLatency};
use crate::{record::Timeline, shop::step_links};

/// The fault kinds that degrade links.
pub const KINDS: [&str; 4] = [
    "network-latency",
    "network-loss",
    "network-partition",
    "bandwidth",
];

/// The links a fault's targets name (`client→server`).
fn links(targets: &[String]) -> Vec<(String, String)> {
    targets
        .iter()
        .filter_map(|t| t.split_once('→'))
        .map(|(c, s)| (c.to_string(), s.to_string()))
        .collect()
}

/// The steps of `steps` that use one of `links`.
pub fn steps_using<'a>(
    steps: impl Iterator<Item = &'a str>,
    links: &[(String, String)],
) -> Vec<String> {
    steps
        .filter(|step| {
            step_links(step)
                .iter()
                .any(|(c, s)| links.iter().any(|(lc, ls)| lc == c && ls == s))
        })
        .map(str::to_string)
        .collect()
}

fn percentile(h: &Histogram<u64>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0)
}

/// The link latency figure of one fault, when it is a network fault that
/// ended (or ran to `run_end_s`), measured from `load_start_s` on.
pub fn link_latency(
    fault: &FaultSummary,
    timeline: &Timeline,
    load_start_s: u64,
    run_end_s: f64,
) -> Option<LinkLatency> {
    if !KINDS.contains(&fault.kind.as_str()) {
        return None;
    }
    let links = links(&fault.targets);
    let names = timeline
        .histograms
        .keys()
        .filter(|k| !k.contains('~') && k.as_str() != crate::record::timeline::OVERALL);
    let steps = steps_using(names.map(String::as_str), &links);
    let start = fault.injected_at_s? as u64;
    let end = fault.ended_at_s.unwrap_or(run_end_s).ceil() as u64;
    let span = end.saturating_sub(start).max(1);
    let before_from = start.saturating_sub(span).max(load_start_s);
    let merge = |range: std::ops::Range<u64>| {
        let mut all = crate::record::new_histogram();
        for step in &steps {
            if let Some(h) = timeline.merged(step, false, range.clone()) {
                let _ = all.add(&h);
            }
        }
        all
    };
    let (before, during) = (merge(before_from..start), merge(start..end));
    let figure = |h: &Histogram<u64>, q| percentile(h, q);
    let added = |d: Option<f64>, b: Option<f64>| Some(d? - b?);
    let (bp50, bp99) = (figure(&before, 0.5), figure(&before, 0.99));
    let (dp50, dp99) = (figure(&during, 0.5), figure(&during, 0.99));
    Some(LinkLatency {
        steps,
        before_from_s: before_from as f64,
        during_until_s: end as f64,
        before_p50_ms: bp50,
        before_p99_ms: bp99,
        during_p50_ms: dp50,
        during_p99_ms: dp99,
        added_p50_ms: added(dp50, bp50),
        added_p99_ms: added(dp99, bp99),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_steps_of_a_link_are_those_whose_services_use_it() {
        let steps = [
            "home",
            "login",
            "checkout",
            "order-status",
            "view-cart",
            "products",
        ];
        let db = links(&["orders→database".to_string()]);
        assert_eq!(
            steps_using(steps.into_iter(), &db),
            ["checkout", "order-status"]
        );
        let cache = links(&["cart→cache".to_string(), "catalogue→cache".to_string()]);
        assert_eq!(
            steps_using(steps.into_iter(), &cache),
            ["checkout", "view-cart", "products"]
        );
    }
}
