//! Reaching the cluster: inference, contexts, and an unreachable server.

use std::net::TcpListener;

use crate::platform::kubernetes::{Cluster, ClusterTarget, Error, cluster::client_config};

fn kubeconfig_for(server: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
current-context: gameday-test
clusters:
- name: gameday-test
  cluster:
    server: {server}
contexts:
- name: gameday-test
  context:
    cluster: gameday-test
    user: tester
    namespace: gameday-shop
- name: other
  context:
    cluster: gameday-test
    user: tester
users:
- name: tester
  user:
    token: not-a-real-token
"
    )
}

fn closed_loopback_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("local addr").port();
    drop(listener);
    port
}

#[tokio::test]
async fn an_unreachable_api_server_is_reported_with_its_url_and_context() {
    let port = closed_loopback_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, kubeconfig_for(&format!("http://127.0.0.1:{port}"))).unwrap();
    let target = ClusterTarget {
        kubeconfig: Some(path),
        context: None,
    };

    let error = match Cluster::connect(&target, "gameday-shop").await {
        Ok(_) => panic!("a closed port must not connect"),
        Err(e) => e,
    };

    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&format!("http://127.0.0.1:{port}/")),
        "{message}"
    );
    assert!(message.contains("context gameday-test"), "{message}");
}

#[tokio::test]
async fn a_named_context_is_used_and_kubes_own_429_retries_are_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, kubeconfig_for("https://127.0.0.1:6443")).unwrap();
    let target = ClusterTarget {
        kubeconfig: Some(path),
        context: Some("other".into()),
    };

    let (config, identity) = client_config(&target).await.unwrap();

    assert_eq!(identity.context, "other");
    assert_eq!(identity.url, "https://127.0.0.1:6443/");
    assert_eq!(
        config.default_namespace, "default",
        "the other context has none"
    );
    assert!(!config.default_retry);
}

#[tokio::test]
async fn a_context_that_does_not_exist_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, kubeconfig_for("https://127.0.0.1:6443")).unwrap();
    let target = ClusterTarget {
        kubeconfig: Some(path),
        context: Some("kind-nowhere".into()),
    };

    let error = client_config(&target).await.unwrap_err();

    assert!(
        error.to_string().contains("for context kind-nowhere"),
        "{error}"
    );
}
