//! What the benchmarks share.

/// This process's CPU seconds (user and system) so far, and its peak RSS
/// in KiB.
pub fn usage() -> (f64, u64) {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .expect("getrusage");
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    (
        secs(u.user_time()) + secs(u.system_time()),
        u.max_rss() as u64,
    )
}
