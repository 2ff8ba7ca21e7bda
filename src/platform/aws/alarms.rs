//! CloudWatch alarm states: what the stack's alarms and the group's scaling
//! alarms said during a run (how soon the team would have known).

use super::{clients::AwsClients, errors::Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmState {
    pub name: String,
    /// OK, ALARM or INSUFFICIENT_DATA.
    pub state: String,
    pub reason: Option<String>,
    pub updated_at: Option<std::time::SystemTime>,
}

impl AwsClients {
    /// States of the named metric alarms (all of them; CloudWatch accepts
    /// up to 100 names per call). An empty `names` returns nothing.
    pub async fn alarm_states(&self, names: &[String]) -> Result<Vec<AlarmState>> {
        const OP: &str = "DescribeAlarms";
        let mut states = Vec::new();
        for chunk in names.chunks(100) {
            let mut token = None;
            loop {
                let out = self
                    .cloudwatch
                    .describe_alarms()
                    .set_alarm_names(Some(chunk.to_vec()))
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| self.error(OP, e))?;
                states.extend(out.metric_alarms().iter().map(|a| {
                    AlarmState {
                        name: a.alarm_name().unwrap_or_default().to_string(),
                        state: a
                            .state_value()
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_default(),
                        reason: a.state_reason().map(str::to_string),
                        updated_at: a
                            .state_updated_timestamp()
                            .and_then(|t| std::time::SystemTime::try_from(*t).ok()),
                    }
                }));
                match out.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
        }
        Ok(states)
    }
}
