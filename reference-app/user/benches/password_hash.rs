//! Prints what one login costs: an argon2id verification at the service's
//! default cost, beside a few other costs measured in the same run.
//! Run: cargo bench -p shop-user --bench password_hash

use std::time::Instant;

use shop_common::settings::Argon2Cost;
use shop_user::{hash_password, hasher, verify_password};

fn main() {
    let costs = [
        ("default (4 MiB, t=1, p=1)", Argon2Cost::default()),
        (
            "OWASP minimum = argon2 crate default (19 MiB, t=2, p=1)",
            Argon2Cost {
                memory_kib: 19 * 1024,
                iterations: 2,
                lanes: 1,
            },
        ),
        (
            "8 MiB, t=1, p=1",
            Argon2Cost {
                memory_kib: 8192,
                iterations: 1,
                lanes: 1,
            },
        ),
    ];
    for (label, cost) in costs {
        let h = hasher(cost).expect("valid cost");
        let hash = hash_password(&h, "correct horse battery").expect("hash");
        let rounds = 50;
        let started = Instant::now();
        for _ in 0..rounds {
            assert!(verify_password(&h, "correct horse battery", &hash));
        }
        let per = started.elapsed() / rounds;
        println!(
            "login verify, {label}: {:.2} ms per login, {:.0} logins/s per core",
            per.as_secs_f64() * 1e3,
            1.0 / per.as_secs_f64()
        );
    }
}
