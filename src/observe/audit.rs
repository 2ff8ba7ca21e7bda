//! The order audit: after the load, gameday waits (bounded) until every
//! order a shopper was acknowledged is dispatched, then compares the order
//! ids shoppers were given with the shop's own audit
//! (`POST /admin/orders/verify`). Lost orders are measured, never guessed:
//! without an answer from the shop (no admin token, the shop down), the
//! figures are not measured (null), not zero.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

/// The order figures of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Orders {
    pub accepted: Option<u64>,
    pub dispatched: Option<u64>,
    pub lost: Option<u64>,
    pub duplicated: Option<u64>,
}

/// What the shop's audit endpoint answers (the fields gameday reads).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AuditAnswer {
    pub accepted: u64,
    pub paid: u64,
    pub dispatched: u64,
    pub duplicated: u64,
    /// Outbox events not yet confirmed by the broker.
    pub outbox_unsent: u64,
    #[serde(default)]
    pub checked: Option<IdCheck>,
}

/// The check of the ids shoppers were given.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct IdCheck {
    pub given: u64,
    /// Acknowledged ids the shop has no paid order for.
    pub missing: Vec<String>,
    /// Paid, not (yet) dispatched.
    pub not_dispatched: Vec<String>,
}

impl AuditAnswer {
    /// Nothing left on its way: every acknowledged order dispatched and the
    /// outbox empty.
    pub fn settled(&self) -> bool {
        self.outbox_unsent == 0
            && self
                .checked
                .as_ref()
                .is_some_and(|c| c.not_dispatched.is_empty())
    }
}

/// The figures for `acknowledged` orders, from the shop's last answer.
pub fn orders(acknowledged: u64, answer: Option<&AuditAnswer>) -> Orders {
    let checked = answer.and_then(|a| a.checked.as_ref());
    let lost = checked.map(|c| {
        let mut ids: Vec<&String> = c.missing.iter().chain(&c.not_dispatched).collect();
        ids.sort();
        ids.dedup();
        ids.len() as u64
    });
    Orders {
        accepted: Some(acknowledged),
        dispatched: lost.map(|l| acknowledged.saturating_sub(l)),
        lost,
        duplicated: checked.and(answer.map(|a| a.duplicated)),
    }
}

/// Why the audit could not be made (for the report).
#[derive(Debug, Clone, PartialEq)]
pub enum NotAudited {
    NoAdminToken,
    NoAnswer(String),
}

/// Waits up to `wait` for every acknowledged order to be dispatched, then
/// compares; says why when nothing could be measured.
pub async fn audit(
    http: &reqwest::Client,
    entry: &str,
    token: Option<&str>,
    acknowledged: &[String],
    wait: Duration,
) -> (Orders, Option<NotAudited>) {
    let n = acknowledged.len() as u64;
    let Some(token) = token else {
        return (orders(n, None), Some(NotAudited::NoAdminToken));
    };
    let deadline = Instant::now() + wait;
    let mut last: Option<AuditAnswer> = None;
    let mut last_error = String::from("no answer");
    while Instant::now() < deadline {
        let answer = async {
            http.post(format!("{entry}/admin/orders/verify"))
                .bearer_auth(token)
                .json(&json!({"order_ids": acknowledged}))
                .send()
                .await?
                .error_for_status()?
                .json::<AuditAnswer>()
                .await
        }
        .await;
        match answer {
            Ok(a) => {
                let settled = a.settled();
                last = Some(a);
                if settled {
                    break;
                }
            }
            Err(e) => last_error = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let missing = last.is_none().then_some(NotAudited::NoAnswer(last_error));
    (orders(n, last.as_ref()), missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(missing: &[&str], not_dispatched: &[&str]) -> AuditAnswer {
        serde_json::from_value(json!({
            "accepted": 10, "paid": 9, "dispatched": 8, "pending": 0, "payment_failed": 1,
            "duplicated": 0, "outbox_unsent": 0, "stuck": [], "stuck_after_s": 30.0,
            "checked": {"given": 3, "missing": missing, "not_dispatched": not_dispatched}
        }))
        .unwrap()
    }

    #[test]
    fn lost_orders_are_the_missing_and_the_undispatched_ones() {
        let a = answer(&["o-1"], &["o-2"]);
        assert!(!a.settled());
        let o = orders(3, Some(&a));
        assert_eq!(
            (o.accepted, o.dispatched, o.lost, o.duplicated),
            (Some(3), Some(1), Some(2), Some(0))
        );
        assert!(answer(&[], &[]).settled());
    }

    #[test]
    fn more_lost_ids_than_acknowledged_orders_cannot_underflow() {
        // An answer about ids gameday did not count (a retry, a replay).
        let o = orders(1, Some(&answer(&["o-1", "o-2"], &["o-3"])));
        assert_eq!((o.dispatched, o.lost), (Some(0), Some(3)));
    }

    #[test]
    fn without_an_answer_nothing_is_measured_but_what_shoppers_were_told() {
        let o = orders(5, None);
        assert_eq!(
            (o.accepted, o.dispatched, o.lost, o.duplicated),
            (Some(5), None, None, None)
        );
    }
}
