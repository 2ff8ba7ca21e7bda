//! What can go wrong when gameday talks to a Kubernetes cluster, in words an
//! SRE can act on: which cluster, which namespace, which object, and what
//! the API server said. It becomes `platform::Error::Kubernetes` at the seam.

use std::{path::PathBuf, time::Duration};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot load the Kubernetes configuration{}: {cause}", for_context(.context))]
    Config {
        context: Option<String>,
        cause: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error(
        "cannot reach the Kubernetes API server at {url} (context {context}): {cause}; \
         check that the cluster is running and that the context is the right one"
    )]
    Unreachable {
        url: String,
        context: String,
        /// What the connection ran into, deepest cause first.
        cause: String,
    },

    #[error(
        "the Kubernetes API refused to {action} (403 Forbidden: {message}); \
         the user of this kube context needs RBAC permission for it"
    )]
    Forbidden { action: String, message: String },

    #[error(
        "{fault} would be refused: the user of kube context {context} may not {}; \
         it needs RBAC permission for it",
        missing.join(", ")
    )]
    NotAllowed {
        context: String,
        fault: &'static str,
        missing: Vec<String>,
    },

    #[error(
        "namespace {namespace} does not exist on this cluster; deploy the shop first \
         (`deploy: true`) or set target.namespace to where it runs"
    )]
    NamespaceMissing { namespace: String },

    #[error(
        "cannot {action}: the namespace is still being deleted (a previous `down`?); \
         wait until it is gone, then deploy again ({message})"
    )]
    NamespaceTerminating { action: String, message: String },

    #[error("cannot {action}: {what} does not exist")]
    NotFound { action: String, what: String },

    #[error("cannot {action}: {cause}")]
    Api { action: String, cause: kube::Error },

    #[error("cannot read manifests from {}: {cause}", path.display())]
    ManifestIo {
        path: PathBuf,
        cause: std::io::Error,
    },

    #[error("{} document {document}: {message}", file.display())]
    Manifest {
        file: PathBuf,
        document: usize,
        message: String,
    },

    #[error(
        "the shop in namespace {namespace} was not available after {}s; not ready: {}{}",
        waited.as_secs(),
        not_ready.join(", "),
        pod_problems(problems)
    )]
    RolloutTimedOut {
        namespace: String,
        waited: Duration,
        not_ready: Vec<String>,
        problems: Vec<PodProblem>,
    },

    #[error("namespace {namespace} was still there after {}s ({state})", waited.as_secs())]
    NamespaceDeletionTimedOut {
        namespace: String,
        waited: Duration,
        state: String,
    },

    #[error(
        "gave up evicting pod {namespace}/{pod} from node {node} after {attempts} attempts \
         in {}s: {message}; the node stays cordoned until the fault is undone",
        waited.as_secs()
    )]
    EvictionBlocked {
        namespace: String,
        pod: String,
        node: String,
        attempts: u32,
        waited: Duration,
        message: String,
    },

    #[error("target.{setting} names service {service}, which the shop's manifests do not deploy")]
    UnknownService {
        service: String,
        setting: &'static str,
    },

    #[error("losing node {node} with `{command}` failed: {why}")]
    NodeProvider {
        node: String,
        command: String,
        why: String,
    },

    #[error("crashing pod {pod} failed: {why}")]
    Crash { pod: String, why: String },

    #[error(
        "gameday cannot reach the shop in namespace {namespace}: {why}; set target.entry-url \
         to the Ingress or LoadBalancer in front of Service web (the local cluster of \
         scripts/cluster.sh: entry-url: http://127.0.0.1:30080; on kind: `kubectl port-forward \
         -n {namespace} svc/web 8080:80` and entry-url: http://127.0.0.1:8080)"
    )]
    NoEntryUrl { namespace: String, why: String },
}

/// Why one pod is not running: what the kubelet or the scheduler said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodProblem {
    pub pod: String,
    /// The container, when the reason comes from a container status.
    pub container: Option<String>,
    /// A machine-readable reason such as `ImagePullBackOff` or `Unschedulable`.
    pub reason: String,
    pub message: String,
}

impl std::fmt::Display for PodProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pod {}", self.pod)?;
        if let Some(container) = &self.container {
            write!(f, " container {container}")?;
        }
        write!(f, ": {}", self.reason)?;
        if !self.message.is_empty() {
            write!(f, " ({})", self.message)?;
        }
        Ok(())
    }
}

fn for_context(context: &Option<String>) -> String {
    context
        .as_ref()
        .map(|c| format!(" for context {c}"))
        .unwrap_or_default()
}

fn pod_problems(problems: &[PodProblem]) -> String {
    if problems.is_empty() {
        return String::new();
    }
    let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
    format!("; {}", listed.join("; "))
}

/// The deepest cause of an error, where the reason usually is ("Connection
/// refused", "certificate verify failed"), rather than its wrappers.
pub(super) fn deepest_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest = error;
    while let Some(next) = deepest.source() {
        deepest = next;
    }
    deepest.to_string()
}

/// The API server's answer, when the error is one.
pub(super) fn api_status(error: &kube::Error) -> Option<&kube::core::Status> {
    match error {
        kube::Error::Api(status) => Some(status),
        _ => None,
    }
}

pub(super) fn is_not_found(error: &kube::Error) -> bool {
    api_status(error).is_some_and(|s| s.is_not_found())
}

/// Turns a client error into ours, naming the action that failed; a 403
/// becomes [`Error::Forbidden`] so the missing permission is plain.
pub(super) fn api_error(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    move |source| {
        let action = action.into();
        match api_status(&source) {
            Some(status) if is_namespace_terminating(status) => Error::NamespaceTerminating {
                action,
                message: status.message.clone(),
            },
            Some(status) if status.is_forbidden() => Error::Forbidden {
                action,
                message: status.message.clone(),
            },
            _ => Error::Api {
                action,
                cause: source,
            },
        }
    }
}

/// The API server refuses new objects in a namespace being deleted with a
/// 403 whose cause is `NamespaceTerminating`: not a permission problem.
fn is_namespace_terminating(status: &kube::core::Status) -> bool {
    status
        .details
        .iter()
        .flat_map(|d| d.causes.iter())
        .any(|c| c.reason == "NamespaceTerminating")
}
