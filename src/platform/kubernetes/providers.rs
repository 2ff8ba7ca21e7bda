//! How terminate-instance loses a node's machine: not a polite drain, the
//! machine gone, as when a cloud instance dies. The node provider is chosen
//! from the Node's `providerID`:
//!
//! - `aws:///<zone>/<instance-id>` (EKS): EC2 TerminateInstances through the
//!   aws platform's client, in the zone's region; the node group's Auto
//!   Scaling group replaces the instance;
//! - anything else: the command the scenario gives
//!   (`target.node-provider.command`, with `{node}`, `{zone}` and
//!   `{provider-id}`), such as `scripts/cluster.sh terminate {node}` on this
//!   machine's cluster, or `docker kill {node}` on kind.
//!
//! What follows is Kubernetes' own: the node goes NotReady after the node
//! monitor grace period, its pods are evicted after their tolerations, a
//! replacement node joins, the pods are rescheduled. The watchers see it.

use std::time::Duration;

use super::{Error, inventory::NodeInfo};
use crate::platform;

/// How a node's machine is lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeProvider {
    /// An EC2 instance, terminated through the EC2 API.
    Aws { region: String, instance: String },
    /// The scenario's command, with the node's names filled in.
    Command(String),
}

impl NodeProvider {
    /// The provider of `node`: its providerID's cloud, else the scenario's
    /// command; why not, when neither.
    pub fn of(node: &NodeInfo, command: Option<&str>) -> Result<Self, String> {
        let id = node.provider_id.as_deref().unwrap_or_default();
        if let Some(rest) = id.strip_prefix("aws:///") {
            let (zone, instance) = rest.split_once('/').unwrap_or(("", rest));
            let region = zone.trim_end_matches(|c: char| c.is_ascii_lowercase());
            if instance.starts_with("i-") && !region.is_empty() {
                return Ok(NodeProvider::Aws {
                    region: region.to_string(),
                    instance: instance.to_string(),
                });
            }
        }
        match command {
            Some(template) => Ok(NodeProvider::Command(
                template
                    .replace("{node}", &shell_word(&node.name))
                    .replace("{zone}", &shell_word(node.zone.as_deref().unwrap_or("")))
                    .replace("{provider-id}", &shell_word(id)),
            )),
            None => Err(format!(
                "node {}'s providerID `{id}` names no cloud gameday drives; set \
                 target.node-provider.command (such as `scripts/cluster.sh terminate {{node}}` \
                 on the local cluster, or `docker kill {{node}}` on kind)",
                node.name
            )),
        }
    }

    /// For `plan`: what losing the node does.
    pub fn describe(&self) -> String {
        match self {
            NodeProvider::Aws { region, instance } => format!(
                "EC2 TerminateInstances {instance} in {region} (the node group replaces it)"
            ),
            NodeProvider::Command(command) => format!("runs `{command}`"),
        }
    }

    /// Loses the machine.
    pub async fn lose(&self, node: &str) -> platform::Result<()> {
        match self {
            NodeProvider::Aws { region, instance } => {
                let aws = platform::aws::AwsClients::connect(Some(region), None).await?;
                aws.terminate_instances(std::slice::from_ref(instance))
                    .await?;
                Ok(())
            }
            NodeProvider::Command(command) => run(node, command).await,
        }
    }
}

/// A word the shell reads as itself.
fn shell_word(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:".contains(c))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// How long a node provider's command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

async fn run(node: &str, command: &str) -> platform::Result<()> {
    let failed = |why: String| Error::NodeProvider {
        node: node.to_string(),
        command: command.to_string(),
        why,
    };
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(COMMAND_TIMEOUT, child)
        .await
        .map_err(|_| failed(format!("no answer in {} s", COMMAND_TIMEOUT.as_secs())))?
        .map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(failed(format!("{}: {}", out.status, tail.join(" | "))).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(provider_id: &str) -> NodeInfo {
        NodeInfo {
            name: "node-b".into(),
            ready: true,
            schedulable: true,
            zone: Some("b".into()),
            address: None,
            control_plane: false,
            provider_id: Some(provider_id.into()),
        }
    }

    #[test]
    fn an_eks_node_is_terminated_through_ec2_and_another_through_the_scenario_s_command() {
        assert_eq!(
            NodeProvider::of(&node("aws:///us-east-1b/i-0abc123"), None),
            Ok(NodeProvider::Aws {
                region: "us-east-1".into(),
                instance: "i-0abc123".into()
            })
        );
        assert_eq!(
            NodeProvider::of(
                &node("gameday-cluster://local/b/node-b"),
                Some("scripts/cluster.sh terminate {node} # {zone} {provider-id}")
            ),
            Ok(NodeProvider::Command(
                "scripts/cluster.sh terminate node-b # b gameday-cluster://local/b/node-b".into()
            ))
        );
        let why = NodeProvider::of(&node("kind://docker/kind/kind-worker"), None).unwrap_err();
        assert!(why.contains("target.node-provider.command"), "{why}");
        // A name is never read by the shell as more than itself.
        let mut odd = node("x");
        odd.name = "a; rm -rf /".into();
        assert_eq!(
            NodeProvider::of(&odd, Some("echo {node}")),
            Ok(NodeProvider::Command("echo 'a; rm -rf /'".into()))
        );
    }

    #[tokio::test]
    async fn a_command_that_fails_says_how_with_the_end_of_its_output() {
        let e = NodeProvider::Command("echo started; echo gone wrong >&2; exit 3".into())
            .lose("node-b")
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("node-b") && text.contains("gone wrong"),
            "{text}"
        );
        NodeProvider::Command("true".into())
            .lose("node-b")
            .await
            .unwrap();
    }
}
