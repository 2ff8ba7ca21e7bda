//! CloudFormation stack lifecycle: create from template text and wait (with
//! progress), outputs, existence, delete and wait.

use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant, SystemTime},
};

use aws_sdk_cloudformation::types::{Capability, OnFailure, Parameter, StackEvent, Tag};

use super::{
    clients::AwsClients,
    errors::{Error, ResourceKind, Result, StackFailure},
};

/// One stack event, as shown to the user while a stack is created or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackProgress {
    pub at: Option<SystemTime>,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackInfo {
    pub id: String,
    pub name: String,
    pub status: String,
    pub reason: Option<String>,
    pub outputs: BTreeMap<String, String>,
}

/// What to create: the template text, its parameters and tags.
#[derive(Debug, Clone, Default)]
pub struct StackSpec {
    pub name: String,
    pub template_body: String,
    pub parameters: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
}

impl AwsClients {
    /// Creates the stack and waits until it is complete, calling
    /// `on_progress` for every new stack event (oldest first). On failure
    /// the stack is rolled back (left in ROLLBACK_COMPLETE for the caller to
    /// delete) and the error lists the failed resources with their reasons.
    pub async fn create_stack(
        &self,
        spec: &StackSpec,
        timeout: Duration,
        mut on_progress: impl FnMut(&StackProgress),
    ) -> Result<StackInfo> {
        const OP: &str = "CreateStack";
        let parameters = spec
            .parameters
            .iter()
            .map(|(k, v)| {
                Parameter::builder()
                    .parameter_key(k)
                    .parameter_value(v)
                    .build()
            })
            .collect();
        let tags = spec
            .tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        let out = self
            .cloudformation
            .create_stack()
            .stack_name(&spec.name)
            .template_body(&spec.template_body)
            .set_parameters(Some(parameters))
            .set_tags(Some(tags))
            // The template creates an IAM role and instance profile.
            .capabilities(Capability::CapabilityIam)
            .on_failure(OnFailure::Rollback)
            .send()
            .await
            .map_err(|e| self.error(OP, e))?;
        let stack_id = out
            .stack_id()
            .ok_or_else(|| Error::unexpected(OP, "no StackId in the answer"))?
            .to_string();
        let mut seen = HashSet::new();
        let status = self
            .wait_stack(&stack_id, &spec.name, timeout, &mut seen, &mut on_progress)
            .await?;
        match status {
            Some(info) if info.status == "CREATE_COMPLETE" => Ok(info),
            other => Err(self.stack_failed(&spec.name, &stack_id, other).await),
        }
    }

    /// Name, status and outputs of a stack (by name or id).
    pub async fn describe_stack(&self, name_or_id: &str) -> Result<StackInfo> {
        const OP: &str = "DescribeStacks";
        let out = self
            .cloudformation
            .describe_stacks()
            .stack_name(name_or_id)
            .send()
            .await
            .map_err(|e| self.error_about(OP, e, &[], ResourceKind::Stack, name_or_id))?;
        let stack = out
            .stacks()
            .first()
            .ok_or_else(|| self.not_found(ResourceKind::Stack, name_or_id))?;
        let outputs = stack
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
            .collect();
        Ok(StackInfo {
            id: stack.stack_id().unwrap_or(name_or_id).to_string(),
            name: stack.stack_name().unwrap_or(name_or_id).to_string(),
            status: stack
                .stack_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            reason: stack.stack_status_reason().map(str::to_string),
            outputs,
        })
    }

    pub async fn stack_outputs(&self, name_or_id: &str) -> Result<BTreeMap<String, String>> {
        Ok(self.describe_stack(name_or_id).await?.outputs)
    }

    /// False for a stack that never existed or is DELETE_COMPLETE.
    pub async fn stack_exists(&self, name_or_id: &str) -> Result<bool> {
        match self.describe_stack(name_or_id).await {
            Ok(info) => Ok(info.status != "DELETE_COMPLETE"),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes the stack and waits until it is gone. Returns false when
    /// there was no such stack. Deleting is judged by what the stack becomes,
    /// not by DeleteStack's answer alone: if DeleteStack answers an error
    /// but the stack is gone afterwards, the deletion succeeded (moto
    /// answers DependencyViolation or DBInstanceNotFound for templates it
    /// cannot fully delete, after removing the stack).
    pub async fn delete_stack(
        &self,
        name_or_id: &str,
        timeout: Duration,
        mut on_progress: impl FnMut(&StackProgress),
    ) -> Result<bool> {
        const OP: &str = "DeleteStack";
        let info = match self.describe_stack(name_or_id).await {
            Ok(info) if info.status == "DELETE_COMPLETE" => return Ok(false),
            Ok(info) => info,
            Err(Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        // Events from before the deletion are not this operation's.
        let mut seen: HashSet<String> = self
            .new_stack_events(&info.id, &HashSet::new())
            .await?
            .into_iter()
            .filter_map(|e| e.event_id().map(str::to_string))
            .collect();
        if let Err(e) = self
            .cloudformation
            .delete_stack()
            .stack_name(&info.id)
            .send()
            .await
        {
            let err = self.error_about(OP, e, &[], ResourceKind::Stack, name_or_id);
            if self.stack_exists(&info.id).await? {
                return Err(err);
            }
            tracing::warn!(stack = %info.name, error = %err, "DeleteStack answered an error but the stack is gone");
            return Ok(true);
        }
        let end = self
            .wait_stack(&info.id, &info.name, timeout, &mut seen, &mut on_progress)
            .await?;
        match end {
            None => Ok(true),
            Some(s) if s.status == "DELETE_COMPLETE" => Ok(true),
            other => Err(self.stack_failed(&info.name, &info.id, other).await),
        }
    }

    /// Polls until the stack leaves every *_IN_PROGRESS state; None when it
    /// no longer exists.
    async fn wait_stack(
        &self,
        stack_id: &str,
        name: &str,
        timeout: Duration,
        seen: &mut HashSet<String>,
        on_progress: &mut impl FnMut(&StackProgress),
    ) -> Result<Option<StackInfo>> {
        let start = Instant::now();
        loop {
            let events = match self.new_stack_events(stack_id, seen).await {
                Ok(ev) => ev,
                Err(Error::NotFound { .. }) => Vec::new(),
                Err(e) => return Err(e),
            };
            for e in events.iter().rev() {
                if let Some(id) = e.event_id() {
                    seen.insert(id.to_string());
                }
                on_progress(&progress_of(e));
            }
            let info = match self.describe_stack(stack_id).await {
                Ok(info) => info,
                Err(Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            if !info.status.ends_with("_IN_PROGRESS") {
                return Ok(Some(info));
            }
            if start.elapsed() >= timeout {
                return Err(Error::Timeout {
                    what: format!("stack {name} ({})", info.status),
                    after: timeout,
                });
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }

    /// Events not in `seen`, newest first (the API's order).
    async fn new_stack_events(
        &self,
        stack_id: &str,
        seen: &HashSet<String>,
    ) -> Result<Vec<StackEvent>> {
        const OP: &str = "DescribeStackEvents";
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .cloudformation
                .describe_stack_events()
                .stack_name(stack_id)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| self.error_about(OP, e, &[], ResourceKind::Stack, stack_id))?;
            for e in page.stack_events() {
                if e.event_id().is_some_and(|id| seen.contains(id)) {
                    return Ok(out);
                }
                out.push(e.clone());
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// Builds StackFailed from the stack's *_FAILED events.
    async fn stack_failed(&self, name: &str, stack_id: &str, end: Option<StackInfo>) -> Error {
        let status = end
            .as_ref()
            .map(|s| s.status.clone())
            .unwrap_or_else(|| "DELETE_COMPLETE".into());
        let events = self
            .new_stack_events(stack_id, &HashSet::new())
            .await
            .unwrap_or_default();
        let mut failures: Vec<StackFailure> = events
            .iter()
            .rev()
            .filter_map(|e| {
                let status = e.resource_status()?.as_str();
                if !status.ends_with("_FAILED") {
                    return None;
                }
                Some(StackFailure {
                    logical_id: e.logical_resource_id().unwrap_or_default().to_string(),
                    resource_type: e.resource_type().unwrap_or_default().to_string(),
                    status: status.to_string(),
                    reason: e.resource_status_reason().unwrap_or_default().to_string(),
                })
            })
            .collect();
        // "Resource creation cancelled" only follows the real cause.
        if failures.iter().any(|f| !is_consequence(&f.reason)) {
            failures.retain(|f| !is_consequence(&f.reason));
        }
        if failures.is_empty()
            && let Some(reason) = end.as_ref().and_then(|s| s.reason.clone())
        {
            failures.push(StackFailure {
                logical_id: name.to_string(),
                resource_type: "AWS::CloudFormation::Stack".into(),
                status: status.clone(),
                reason,
            });
        }
        Error::StackFailed {
            stack: name.to_string(),
            status,
            failures,
        }
    }
}

fn is_consequence(reason: &str) -> bool {
    reason.contains("Resource creation cancelled") || reason.contains("Resource update cancelled")
}

fn progress_of(e: &StackEvent) -> StackProgress {
    StackProgress {
        at: e.timestamp().and_then(|t| SystemTime::try_from(*t).ok()),
        logical_id: e.logical_resource_id().unwrap_or_default().to_string(),
        resource_type: e.resource_type().unwrap_or_default().to_string(),
        status: e
            .resource_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        reason: e.resource_status_reason().map(str::to_string),
    }
}
