//! The shop's manifests as gameday applies them.

use std::{collections::BTreeMap, path::Path};

use serde_json::json;

use crate::platform::kubernetes::manifests::{
    Autoscale, KINDS, Manifest, Overrides, admin_token, load, parse, prepare, reference_app_dir,
};

#[test]
fn every_document_of_the_reference_shop_is_read_and_the_namespace_comes_first() {
    let manifests = prepare(
        load(&reference_app_dir()).unwrap(),
        "shop-test",
        &Overrides::default(),
    )
    .unwrap();

    let labels: Vec<String> = manifests.iter().map(Manifest::label).collect();
    assert_eq!(labels[0], "Namespace shop-test");
    assert_eq!(manifests.len(), 33, "{labels:?}");
    for service in ["web", "user", "catalogue", "cart", "orders", "shipping"] {
        for kind in [
            "Deployment",
            "Service",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
        ] {
            assert!(
                labels.contains(&format!("{kind} {service}")),
                "{kind} {service}"
            );
        }
    }
    let ranks: Vec<u8> = manifests.iter().map(|m| m.kind.rank).collect();
    assert!(ranks.is_sorted(), "{labels:?}");
}

#[test]
fn the_scenarios_namespace_image_replicas_and_autoscaling_replace_the_manifests_own() {
    let overrides = Overrides {
        image: Some("registry.example.com/gameday-shop:0.2.0".into()),
        replicas: BTreeMap::from([("cart".into(), 3)]),
        autoscale: BTreeMap::from([(
            "catalogue".into(),
            Autoscale {
                min: 3,
                max: 6,
                cpu_percent: 55.0,
            },
        )]),
        ..Overrides::default()
    };

    let manifests = prepare(load(&reference_app_dir()).unwrap(), "shop-test", &overrides).unwrap();

    for m in &manifests {
        if m.kind.namespaced {
            assert_eq!(
                m.object["metadata"]["namespace"],
                "shop-test",
                "{}",
                m.label()
            );
        }
    }
    let web = manifests
        .iter()
        .find(|m| m.label() == "Deployment web")
        .unwrap();
    let container = &web.object["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["image"],
        "registry.example.com/gameday-shop:0.2.0"
    );
    assert_eq!(container["command"][0], "/usr/local/bin/shop-web");
    let redis = manifests
        .iter()
        .find(|m| m.label() == "StatefulSet redis")
        .unwrap();
    assert_eq!(
        redis.object["spec"]["template"]["spec"]["containers"][0]["image"], "redis:7.0",
        "infrastructure keeps its upstream image"
    );
    let find = |label: &str| {
        &manifests
            .iter()
            .find(|m| m.label() == label)
            .unwrap()
            .object
    };
    // An HPA manages every Deployment: its replicas are not applied (that
    // would undo the HPA's scaling) but set through the scale subresource,
    // at least the HPA's minimum.
    let scale_to = |label: &str| {
        manifests
            .iter()
            .find(|m| m.label() == label)
            .unwrap()
            .scale_to
    };
    assert_eq!(scale_to("Deployment cart"), Some(3));
    assert_eq!(scale_to("Deployment web"), Some(2));
    assert_eq!(
        scale_to("Deployment catalogue"),
        Some(3),
        "its HPA's minimum"
    );
    assert!(find("Deployment cart")["spec"].get("replicas").is_none());
    let hpa = &find("HorizontalPodAutoscaler catalogue")["spec"];
    assert_eq!(
        (&hpa["minReplicas"], &hpa["maxReplicas"]),
        (&json!(3), &json!(6))
    );
    assert_eq!(hpa["metrics"].as_array().unwrap().len(), 1);
    assert_eq!(
        hpa["metrics"][0]["resource"]["target"]["averageUtilization"],
        55
    );
    assert_eq!(
        find("HorizontalPodAutoscaler web")["spec"]["minReplicas"],
        2
    );
}

#[test]
fn replicas_for_a_service_the_manifests_do_not_deploy_are_refused() {
    let overrides = Overrides {
        replicas: BTreeMap::from([("basket".into(), 3)]),
        ..Overrides::default()
    };

    let error = prepare(load(&reference_app_dir()).unwrap(), "shop-test", &overrides).unwrap_err();

    assert_eq!(
        error.to_string(),
        "target.replicas names service basket, which the shop's manifests do not deploy"
    );
}

#[test]
fn a_kind_gameday_does_not_apply_is_refused_with_the_file_and_document() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n\
                apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: b}\n";

    let error = parse(Path::new("extra.yaml"), text)
        .unwrap_err()
        .to_string();

    assert!(
        error.starts_with("extra.yaml document 1: kind \"ClusterRole\""),
        "{error}"
    );
}

#[test]
fn api_resources_carry_group_version_and_plural() {
    let hpa = KINDS
        .iter()
        .find(|k| k.kind == "HorizontalPodAutoscaler")
        .unwrap();
    let resource = hpa.api_resource();
    assert_eq!(
        (
            resource.group.as_str(),
            resource.version.as_str(),
            resource.plural.as_str()
        ),
        ("autoscaling", "v2", "horizontalpodautoscalers")
    );
    let namespace = KINDS[0].api_resource();
    assert_eq!(
        (namespace.group.as_str(), namespace.api_version.as_str()),
        ("", "v1")
    );
}

#[test]
fn the_admin_token_is_read_from_the_secret_the_manifests_apply() {
    let manifests = load(&reference_app_dir()).unwrap();

    assert_eq!(admin_token(&manifests).as_deref(), Some("change-me-admin"));

    let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: shop-secrets}\n\
                data: {SHOP_ADMIN_TOKEN: c2VjcmV0}\n";
    let encoded = parse(Path::new("s.yaml"), text).unwrap();
    assert_eq!(admin_token(&encoded).as_deref(), Some("secret"));
    let none = parse(
        Path::new("c.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shop-config}\n",
    )
    .unwrap();
    assert_eq!(admin_token(&none), None);
}
