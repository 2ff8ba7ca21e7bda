//! The one place that picks a platform's back-end from a scenario's
//! `target`. Everything else talks to `dyn Backend` (the lifecycle) and
//! `dyn Platform` (the engine).

use std::sync::Arc;

use super::{
    Platform, Support, aws, kubernetes,
    lifecycle::{self, Backend, Purpose},
    local,
};
use crate::{
    events::EventLog,
    scenario::{PlatformSpec, Scenario},
};

/// The back-end of a scenario's target.
pub fn backend(spec: &PlatformSpec) -> Arc<dyn Backend> {
    match spec {
        PlatformSpec::Local(topology) => Arc::new(local::LocalBackend::new(topology.clone())),
        PlatformSpec::Kubernetes(target) => {
            Arc::new(kubernetes::KubernetesBackend::new(target.clone()))
        }
        PlatformSpec::Aws(target) => Arc::new(aws::AwsBackend::new(target.clone())),
    }
}

/// Opens the target's platform for `purpose` (see `lifecycle`).
pub async fn open(
    spec: &PlatformSpec,
    purpose: Purpose,
    events: Arc<EventLog>,
) -> super::Result<Box<dyn Platform>> {
    lifecycle::open(backend(spec), purpose, events).await
}

/// The scenario's faults its platform cannot perform: (key, why), located
/// in the file by the caller.
pub fn check_faults(scenario: &Scenario) -> Vec<(String, String)> {
    let backend = backend(&scenario.target);
    scenario
        .faults
        .iter()
        .enumerate()
        .filter_map(|(i, f)| match backend.supports(f) {
            Support::Yes => None,
            Support::No { why } => Some((
                format!("faults[{i}].{}", f.kind.key()),
                format!("the {} platform cannot do this: {why}", backend.name()),
            )),
        })
        .collect()
}

/// True for http(s)://127.x.x.x, ::1 or localhost URLs.
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    let host = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn errors(text: &str) -> Vec<String> {
        Scenario::parse_with(std::path::Path::new("s.yaml"), text, check_faults)
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const LOAD: &str = "load:\n  stages:\n    - { users: 1, over: 10s }\n";

    #[test]
    fn a_fault_the_platform_cannot_perform_is_refused_with_its_reason_and_line() {
        let local = format!(
            "name: s\ntarget:\n  replicas: {{ cart: 0 }}\n{LOAD}faults:\n  - at: 1s\n    kill-pod: {{ service: cart }}\n"
        );
        assert_eq!(
            errors(&local),
            [
                "s.yaml:9:5: faults[0].kill-pod: the local platform cannot do this: the target runs no cart replica to kill"
            ]
        );
        let aws = format!(
            "name: s\ntarget:\n  platform: aws\n  stack: shop\n{LOAD}faults:\n  - at: 1s\n    kill-pod: {{ service: cart }}\n  - at: 2s\n    duration: 5s\n    restart-cache: {{}}\n"
        );
        let e = errors(&aws);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("s.yaml:10:5: faults[0].kill-pod: the aws platform cannot do this: an Auto Scaling group runs instances, not pods"), "{e:?}");
        assert!(
            e[1].contains("faults[1].restart-cache") && e[1].contains("rebooted, not held down"),
            "{e:?}"
        );
    }

    #[test]
    fn loopback_urls_are_recognised() {
        assert!(is_loopback_url("http://127.0.0.1:5000"));
        assert!(is_loopback_url("http://127.3.4.5"));
        assert!(is_loopback_url("http://localhost:4566/"));
        assert!(is_loopback_url("http://[::1]:5000"));
        assert!(!is_loopback_url("https://ec2.us-east-1.amazonaws.com"));
        assert!(!is_loopback_url("http://10.0.0.1:5000"));
    }
}
