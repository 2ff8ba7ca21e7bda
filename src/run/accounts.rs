//! The shopper accounts, one per peak shopper, created before the measured
//! window (a login per shopper, never shared: shoppers sharing an account
//! empty each other's carts).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::errors::{Error, Result};

/// Creates the shopper accounts before the measured window.
pub(super) async fn create(
    http: &reqwest::Client,
    entry: &str,
    n: usize,
    run_id: &str,
) -> Result<Vec<(String, String)>> {
    use futures::stream::{self, StreamExt};
    let started = Instant::now();
    eprintln!("gameday: creating {n} shopper accounts");
    let accounts: Vec<(String, String)> = (0..n)
        .map(|i| {
            (
                format!("shopper-{i}-{run_id}@gameday.test"),
                format!("pw-{run_id}-{i}"),
            )
        })
        .collect();
    let results: Vec<bool> = stream::iter(accounts.iter())
        .map(|(email, password)| async move {
            for _ in 0..3 {
                let r = http
                    .post(format!("{entry}/api/users/register"))
                    .json(&json!({"name": "shopper", "email": email, "password": password}))
                    .send()
                    .await;
                if let Ok(r) = r
                    && (r.status().as_u16() == 201 || r.status().as_u16() == 409)
                {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            false
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let failed = results.iter().filter(|ok| !**ok).count();
    if failed > 0 {
        return Err(Error::Accounts { failed, wanted: n });
    }
    eprintln!(
        "gameday: {n} accounts ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(accounts)
}
