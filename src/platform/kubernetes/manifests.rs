//! The shop's manifests (reference-app/k8s/*.yaml) as gameday applies them:
//! every document read, put into the scenario's namespace, the shop's
//! Deployments pointed at the scenario's image, and ordered so what others
//! depend on (the Namespace, then configuration) is applied first.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use kube::{
    core::{DynamicObject, GroupVersionKind},
    discovery::ApiResource,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::errors::{Error, Result};
pub use crate::scenario::Autoscale;

/// One kind of object the shop's manifests may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    /// Lower is applied first.
    pub rank: u8,
}

/// The kinds gameday applies, in the order it applies them. A manifest of
/// another kind is refused: applying it would need discovery, and the shop
/// has no use for one.
pub const KINDS: [Kind; 8] = [
    Kind {
        api_version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        namespaced: false,
        rank: 0,
    },
    Kind {
        api_version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        namespaced: true,
        rank: 1,
    },
    Kind {
        api_version: "v1",
        kind: "Secret",
        plural: "secrets",
        namespaced: true,
        rank: 1,
    },
    Kind {
        api_version: "v1",
        kind: "Service",
        plural: "services",
        namespaced: true,
        rank: 2,
    },
    Kind {
        api_version: "apps/v1",
        kind: "StatefulSet",
        plural: "statefulsets",
        namespaced: true,
        rank: 3,
    },
    Kind {
        api_version: "apps/v1",
        kind: "Deployment",
        plural: "deployments",
        namespaced: true,
        rank: 4,
    },
    Kind {
        api_version: "autoscaling/v2",
        kind: "HorizontalPodAutoscaler",
        plural: "horizontalpodautoscalers",
        namespaced: true,
        rank: 5,
    },
    Kind {
        api_version: "policy/v1",
        kind: "PodDisruptionBudget",
        plural: "poddisruptionbudgets",
        namespaced: true,
        rank: 5,
    },
];

impl Kind {
    /// What kube needs to address this kind without discovery.
    pub fn api_resource(&self) -> ApiResource {
        let (group, version) = self
            .api_version
            .split_once('/')
            .unwrap_or(("", self.api_version));
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, self.kind),
            self.plural,
        )
    }
}

/// One document of one manifest file.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub file: PathBuf,
    /// The document's index in its file, from 0.
    pub document: usize,
    pub kind: Kind,
    pub name: String,
    /// The object as the file has it (after [`prepare`], as gameday applies it).
    pub object: Value,
    /// Replicas set through the scale subresource after applying, not in
    /// the applied object: a Deployment an HPA manages (see [`prepare`]).
    pub scale_to: Option<i64>,
}

impl Manifest {
    /// `Deployment web`, for messages.
    pub fn label(&self) -> String {
        format!("{} {}", self.kind.kind, self.name)
    }

    pub fn to_dynamic(&self) -> Result<DynamicObject> {
        serde_json::from_value(self.object.clone()).map_err(|e| self.error(e.to_string()))
    }

    fn error(&self, message: String) -> Error {
        Error::Manifest {
            file: self.file.clone(),
            document: self.document,
            message,
        }
    }
}

/// Reads every document of every `*.yaml` file in `dir`, in file-name order.
pub fn load(dir: &Path) -> Result<Vec<Manifest>> {
    let io = |cause| Error::ManifestIo {
        path: dir.to_path_buf(),
        cause,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    files.sort();
    let mut manifests = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|cause| Error::ManifestIo {
            path: file.clone(),
            cause,
        })?;
        manifests.extend(parse(&file, &text)?);
    }
    Ok(manifests)
}

/// Parses the documents of one file; empty documents are skipped.
pub fn parse(file: &Path, text: &str) -> Result<Vec<Manifest>> {
    let mut manifests = Vec::new();
    for (document, yaml) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let error = |message: String| Error::Manifest {
            file: file.to_path_buf(),
            document,
            message,
        };
        let value = serde_yaml_ng::Value::deserialize(yaml).map_err(|e| error(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        let object: Value = serde_json::to_value(value).map_err(|e| error(e.to_string()))?;
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind_name = object["kind"].as_str().unwrap_or_default();
        let kind = KINDS
            .iter()
            .find(|k| k.kind == kind_name && k.api_version == api_version)
            .copied()
            .ok_or_else(|| {
                let known: Vec<&str> = KINDS.iter().map(|k| k.kind).collect();
                error(format!(
                    "kind {kind_name:?} (apiVersion {api_version:?}) is not one gameday applies; \
                     it applies {}",
                    known.join(", ")
                ))
            })?;
        let name = object["metadata"]["name"]
            .as_str()
            .ok_or_else(|| error("metadata.name is missing".into()))?
            .to_string();
        manifests.push(Manifest {
            file: file.to_path_buf(),
            document,
            kind,
            name,
            object,
            scale_to: None,
        });
    }
    Ok(manifests)
}

/// What the scenario's `target` changes in the manifests when deploying.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// The shop's image, for every container of every Deployment.
    pub image: Option<String>,
    /// Replicas per service: the Deployment's `spec.replicas`.
    pub replicas: BTreeMap<String, u32>,
    /// HPA bounds and CPU target per service.
    pub autoscale: BTreeMap<String, Autoscale>,
    /// Images of the StatefulSets by name (`mariadb`, `redis`, `rabbitmq`),
    /// for all their containers and init containers.
    pub images: BTreeMap<String, String>,
    /// The StorageClass of every volume claim template.
    pub storage_class: Option<String>,
}

/// The label gameday puts on a namespace it creates: `down` deletes only a
/// namespace that carries it.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "gameday");

/// Puts every object into `namespace`, applies the scenario's
/// [`Overrides`] and orders the objects for applying.
///
/// A Deployment that an HPA manages is applied without `spec.replicas`:
/// server-side apply would otherwise set it back on every apply, undoing
/// the HPA's scaling. Its replicas go through the scale subresource instead
/// ([`Manifest::scale_to`]), raised only when below.
pub fn prepare(
    mut manifests: Vec<Manifest>,
    namespace: &str,
    overrides: &Overrides,
) -> Result<Vec<Manifest>> {
    check_services(&manifests, overrides)?;
    let scaled: Vec<String> = manifests
        .iter()
        .filter(|m| m.kind.kind == "HorizontalPodAutoscaler")
        .filter_map(|m| m.object["spec"]["scaleTargetRef"]["name"].as_str())
        .map(String::from)
        .collect();
    for manifest in &mut manifests {
        let metadata = &mut manifest.object["metadata"];
        if manifest.kind.kind == "Namespace" {
            metadata["name"] = Value::from(namespace);
            metadata["labels"][MANAGED_BY.0] = Value::from(MANAGED_BY.1);
            manifest.name = namespace.to_string();
        } else if manifest.kind.namespaced {
            metadata["namespace"] = Value::from(namespace);
        }
        // Indexing a JSON object with `[]` would add a null `spec`.
        let Some(spec) = manifest.object.get_mut("spec") else {
            continue;
        };
        match manifest.kind.kind {
            "Deployment" => {
                if let Some(image) = &overrides.image {
                    set_images(&mut spec["template"]["spec"], image);
                }
                if let Some(replicas) = overrides.replicas.get(&manifest.name) {
                    spec["replicas"] = Value::from(*replicas);
                }
                if scaled.contains(&manifest.name)
                    && let Some(map) = spec.as_object_mut()
                {
                    let min = overrides
                        .autoscale
                        .get(&manifest.name)
                        .map_or(1, |a| i64::from(a.min));
                    let replicas = map.remove("replicas").and_then(|r| r.as_i64());
                    manifest.scale_to = Some(replicas.unwrap_or(1).max(min));
                }
            }
            "StatefulSet" => {
                if let Some(image) = overrides.images.get(&manifest.name) {
                    set_images(&mut spec["template"]["spec"], image);
                }
                if let Some(class) = &overrides.storage_class
                    && let Some(claims) = spec["volumeClaimTemplates"].as_array_mut()
                {
                    for claim in claims {
                        claim["spec"]["storageClassName"] = Value::from(class.as_str());
                    }
                }
            }
            "HorizontalPodAutoscaler" => {
                if let Some(autoscale) = overrides.autoscale.get(&manifest.name) {
                    autoscale_hpa(spec, autoscale);
                }
            }
            _ => {}
        }
    }
    manifests.sort_by_key(|m| m.kind.rank);
    Ok(manifests)
}

/// Every service the overrides name has its Deployment (and HPA).
fn check_services(manifests: &[Manifest], overrides: &Overrides) -> Result<()> {
    for (service, setting) in overrides
        .replicas
        .keys()
        .map(|s| (s, "replicas"))
        .chain(overrides.autoscale.keys().map(|s| (s, "autoscale")))
    {
        let kind = if setting == "replicas" {
            "Deployment"
        } else {
            "HorizontalPodAutoscaler"
        };
        if !manifests
            .iter()
            .any(|m| m.kind.kind == kind && &m.name == service)
        {
            return Err(Error::UnknownService {
                service: service.clone(),
                setting,
            });
        }
    }
    Ok(())
}

/// Sets the image of every container and init container of a pod spec.
fn set_images(pod: &mut Value, image: &str) {
    for key in ["containers", "initContainers"] {
        if let Some(containers) = pod.get_mut(key).and_then(Value::as_array_mut) {
            for container in containers {
                container["image"] = Value::from(image);
            }
        }
    }
}

fn autoscale_hpa(spec: &mut Value, autoscale: &Autoscale) {
    spec["minReplicas"] = Value::from(autoscale.min);
    spec["maxReplicas"] = Value::from(autoscale.max);
    let cpu = autoscale.cpu_percent.round() as i64;
    let metrics = spec["metrics"].as_array_mut();
    let resource_cpu = metrics
        .into_iter()
        .flatten()
        .find(|m| m["type"] == "Resource" && m["resource"]["name"] == "cpu");
    match resource_cpu {
        Some(metric) => {
            metric["resource"]["target"] =
                json!({ "type": "Utilization", "averageUtilization": cpu });
        }
        None => {
            spec["metrics"] = json!([{
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": { "type": "Utilization", "averageUtilization": cpu }
                }
            }]);
        }
    }
}

/// The shop's admin token as the manifests' Secret `shop-secrets` sets it
/// (`stringData`, or base64 `data`), when it does.
pub fn admin_token(manifests: &[Manifest]) -> Option<String> {
    let secret = manifests
        .iter()
        .find(|m| m.kind.kind == "Secret" && m.name == SECRET)?;
    if let Some(token) = secret.object["stringData"][ADMIN_TOKEN_KEY].as_str() {
        return Some(token.to_string());
    }
    let encoded = secret.object["data"][ADMIN_TOKEN_KEY].as_str()?;
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The Secret that holds the shop's settings, and the admin token's key.
pub const SECRET: &str = "shop-secrets";
pub const ADMIN_TOKEN_KEY: &str = "SHOP_ADMIN_TOKEN";

/// The reference shop's manifests, in this repository.
pub fn reference_app_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/reference-app/k8s"))
}
