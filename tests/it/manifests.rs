//! Every Kubernetes manifest of the reference shop parses into k8s-openapi's
//! types, so a typo in reference-app/k8s fails CI instead of a deploy.

use std::path::Path;

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    autoscaling::v2::HorizontalPodAutoscaler,
    core::v1::{ConfigMap, Namespace, Secret, Service},
    policy::v1::PodDisruptionBudget,
};
use serde::Deserialize;

#[derive(Default, Debug)]
struct Parsed {
    deployments: Vec<Deployment>,
    services: Vec<Service>,
    hpas: Vec<HorizontalPodAutoscaler>,
    pdbs: Vec<PodDisruptionBudget>,
    statefulsets: Vec<StatefulSet>,
    other: usize,
}

fn parse_all() -> Parsed {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference-app/k8s");
    let mut parsed = Parsed::default();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
    {
        let text = std::fs::read_to_string(file).unwrap();
        for (i, doc) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
            let value = serde_yaml_ng::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: document {i}: {e}", file.display()));
            if value.is_null() {
                continue;
            }
            let kind = value["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: document {i} has no kind", file.display()))
                .to_string();
            let at = format!("{} document {i} ({kind})", file.display());
            macro_rules! typed {
                ($t:ty) => {
                    serde_yaml_ng::from_value::<$t>(value.clone())
                        .unwrap_or_else(|e| panic!("{at}: {e}"))
                };
            }
            match kind.as_str() {
                "Deployment" => parsed.deployments.push(typed!(Deployment)),
                "Service" => parsed.services.push(typed!(Service)),
                "HorizontalPodAutoscaler" => parsed.hpas.push(typed!(HorizontalPodAutoscaler)),
                "PodDisruptionBudget" => parsed.pdbs.push(typed!(PodDisruptionBudget)),
                "StatefulSet" => parsed.statefulsets.push(typed!(StatefulSet)),
                "ConfigMap" => {
                    typed!(ConfigMap);
                    parsed.other += 1;
                }
                "Secret" => {
                    typed!(Secret);
                    parsed.other += 1;
                }
                "Namespace" => {
                    typed!(Namespace);
                    parsed.other += 1;
                }
                other => panic!("{at}: unexpected kind {other}"),
            }
        }
    }
    parsed
}

const STATELESS: [&str; 6] = ["web", "user", "catalogue", "cart", "orders", "shipping"];

#[test]
fn every_manifest_parses_into_kubernetes_types_and_each_service_is_highly_available() {
    let parsed = parse_all();
    for service in STATELESS {
        let d = parsed
            .deployments
            .iter()
            .find(|d| d.metadata.name.as_deref() == Some(service))
            .unwrap_or_else(|| panic!("no Deployment {service}"));
        let spec = d.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(2), "{service} replicas");
        let pod = spec.template.spec.as_ref().unwrap();
        let c = &pod.containers[0];
        let resources = c.resources.as_ref().unwrap();
        assert!(
            resources.requests.as_ref().unwrap().contains_key("cpu"),
            "{service} cpu request"
        );
        assert!(
            resources.limits.as_ref().unwrap().contains_key("cpu"),
            "{service} cpu limit"
        );
        let live = c
            .liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(live.path.as_deref(), Some("/health/live"), "{service}");
        let ready = c
            .readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(ready.path.as_deref(), Some("/health/ready"), "{service}");
        assert!(
            c.lifecycle
                .as_ref()
                .and_then(|l| l.pre_stop.as_ref())
                .is_some(),
            "{service} preStop"
        );

        assert!(
            parsed
                .services
                .iter()
                .any(|s| s.metadata.name.as_deref() == Some(service)),
            "Service {service}"
        );
        let hpa = parsed
            .hpas
            .iter()
            .find(|h| h.metadata.name.as_deref() == Some(service))
            .unwrap_or_else(|| panic!("no HPA {service}"));
        let hs = hpa.spec.as_ref().unwrap();
        assert_eq!(
            (hs.min_replicas, hs.max_replicas),
            (Some(2), 10),
            "{service} HPA bounds"
        );
        let metric = &hs.metrics.as_ref().unwrap()[0];
        let target = &metric.resource.as_ref().unwrap().target;
        assert_eq!(target.average_utilization, Some(70), "{service} HPA target");
        assert!(
            parsed
                .pdbs
                .iter()
                .any(|p| p.metadata.name.as_deref() == Some(service)),
            "PDB {service}"
        );
    }
    for stateful in ["mariadb", "redis", "rabbitmq"] {
        assert!(
            parsed
                .statefulsets
                .iter()
                .any(|s| s.metadata.name.as_deref() == Some(stateful)),
            "StatefulSet {stateful}"
        );
    }
}
