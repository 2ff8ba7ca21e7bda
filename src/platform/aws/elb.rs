//! Target groups and load balancers in front of an Auto Scaling group.

use super::{
    clients::AwsClients,
    errors::{ResourceKind, Result},
    group::GroupState,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealth {
    pub instance_id: String,
    pub port: Option<i32>,
    /// initial, healthy, unhealthy, unused, draining, unavailable, ...
    pub state: String,
    pub reason: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroupInfo {
    pub arn: String,
    pub name: String,
    pub port: Option<i32>,
    pub health_check_path: Option<String>,
    pub load_balancer_arns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancerInfo {
    pub arn: String,
    pub name: String,
    pub dns_name: String,
    pub state: Option<String>,
}

const TG_NOT_FOUND: &[&str] = &["TargetGroupNotFound", "TargetGroupNotFoundException"];

impl AwsClients {
    /// DescribeTargetHealth for every target registered in the group.
    pub async fn target_health(&self, target_group_arn: &str) -> Result<Vec<TargetHealth>> {
        const OP: &str = "DescribeTargetHealth";
        let out = self
            .elbv2
            .describe_target_health()
            .target_group_arn(target_group_arn)
            .send()
            .await
            .map_err(|e| {
                self.error_about(
                    OP,
                    e,
                    TG_NOT_FOUND,
                    ResourceKind::TargetGroup,
                    target_group_arn,
                )
            })?;
        Ok(out
            .target_health_descriptions()
            .iter()
            .map(|d| TargetHealth {
                instance_id: d
                    .target()
                    .and_then(|t| t.id())
                    .unwrap_or_default()
                    .to_string(),
                port: d.target().and_then(|t| t.port()),
                state: d
                    .target_health()
                    .and_then(|h| h.state())
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                reason: d
                    .target_health()
                    .and_then(|h| h.reason())
                    .map(|r| r.as_str().to_string()),
                description: d
                    .target_health()
                    .and_then(|h| h.description())
                    .map(str::to_string),
            })
            .collect())
    }

    /// The target groups the Auto Scaling group registers its instances in,
    /// with the load balancers that use them.
    pub async fn target_groups_of_group(&self, group: &GroupState) -> Result<Vec<TargetGroupInfo>> {
        const OP: &str = "DescribeTargetGroups";
        let arns = group.target_group_arns.clone();
        if arns.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .elbv2
            .describe_target_groups()
            .set_target_group_arns(Some(arns))
            .send()
            .await
            .map_err(|e| self.error(OP, e))?;
        Ok(out
            .target_groups()
            .iter()
            .map(|t| TargetGroupInfo {
                arn: t.target_group_arn().unwrap_or_default().to_string(),
                name: t.target_group_name().unwrap_or_default().to_string(),
                port: t.port(),
                health_check_path: t.health_check_path().map(str::to_string),
                load_balancer_arns: t.load_balancer_arns().to_vec(),
            })
            .collect())
    }

    pub async fn load_balancers(&self, arns: &[String]) -> Result<Vec<LoadBalancerInfo>> {
        const OP: &str = "DescribeLoadBalancers";
        if arns.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .elbv2
            .describe_load_balancers()
            .set_load_balancer_arns(Some(arns.to_vec()))
            .send()
            .await
            .map_err(|e| self.error(OP, e))?;
        Ok(out
            .load_balancers()
            .iter()
            .map(|l| LoadBalancerInfo {
                arn: l.load_balancer_arn().unwrap_or_default().to_string(),
                name: l.load_balancer_name().unwrap_or_default().to_string(),
                dns_name: l.dns_name().unwrap_or_default().to_string(),
                state: l
                    .state()
                    .and_then(|s| s.code())
                    .map(|c| c.as_str().to_string()),
            })
            .collect())
    }
}
