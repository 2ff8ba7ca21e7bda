//! The service clients, built once from the SDK's standard chain, and the
//! one way their errors are mapped (naming where the call went).

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig, retry::RetryConfig, timeout::TimeoutConfig};
use aws_smithy_runtime_api::client::{orchestrator::HttpResponse, result::SdkError};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::errors::{Call, Error, ResourceKind, Result};
use crate::platform::is_loopback_url;

/// Every client the aws platform uses, sharing one `SdkConfig` (region,
/// credentials, retry and timeout settings, HTTP client).
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub ec2: aws_sdk_ec2::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub rds: aws_sdk_rds::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub elasticache: aws_sdk_elasticache::Client,
    pub mq: aws_sdk_mq::Client,
    pub sts: aws_sdk_sts::Client,
    pub s3: aws_sdk_s3::Client,
    region: String,
    endpoint_url: Option<String>,
    /// Where calls go, for error messages.
    place: String,
    /// How often waits poll (5 s against AWS, 100 ms against a stand-in).
    pub poll_interval: Duration,
}

/// Retries: standard mode, 3 attempts, exponential backoff with jitter
/// (initial 1 s, max 20 s) and a client-side token bucket; throttling,
/// transient errors, 5xx and I/O errors are retried, then surface as
/// [`Error::Throttled`] or [`Error::Unreachable`].
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(3)
}

/// S3 with path-style addresses for a stand-in's endpoint (moto's server
/// has no per-bucket host names), and checksums only where S3 requires
/// them (the SDK's default sends a streaming CRC that stand-ins may refuse).
fn s3_client(config: &SdkConfig, endpoint: bool) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(endpoint)
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

impl AwsClients {
    /// Region: `region`, else the standard chain (AWS_REGION, the profile).
    /// Credentials: the standard chain (environment, profile, SSO,
    /// credential_process, web identity, ECS or instance role).
    /// `endpoint_url` points every client at one stand-in (moto's server on
    /// `http://127.0.0.1:PORT`).
    pub async fn connect(region: Option<&str>, endpoint_url: Option<&str>) -> Result<Self> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(retry_config())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .operation_timeout(Duration::from_secs(90))
                    .build(),
            );
        if let Some(r) = region {
            loader = loader.region(Region::new(r.to_string()));
        }
        if let Some(url) = endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let config = loader.load().await;
        Self::from_sdk_config(&config, endpoint_url.map(str::to_string))
    }

    /// Builds the clients from a ready `SdkConfig` (tests pass one with
    /// static credentials and a fast retry).
    pub fn from_sdk_config(config: &SdkConfig, endpoint_url: Option<String>) -> Result<Self> {
        let region = config.region().ok_or(Error::NoRegion)?.to_string();
        let stand_in = endpoint_url.as_deref().is_some_and(is_loopback_url);
        let place = match &endpoint_url {
            Some(url) if stand_in => format!("the stand-in at {url} (region {region})"),
            Some(url) => format!("the endpoint {url} (region {region})"),
            None => format!("AWS in region {region}"),
        };
        Ok(Self {
            ec2: aws_sdk_ec2::Client::new(config),
            autoscaling: aws_sdk_autoscaling::Client::new(config),
            rds: aws_sdk_rds::Client::new(config),
            elbv2: aws_sdk_elasticloadbalancingv2::Client::new(config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(config),
            cloudformation: aws_sdk_cloudformation::Client::new(config),
            elasticache: aws_sdk_elasticache::Client::new(config),
            mq: aws_sdk_mq::Client::new(config),
            sts: aws_sdk_sts::Client::new(config),
            s3: s3_client(config, endpoint_url.is_some()),
            region,
            endpoint_url,
            place,
            poll_interval: if stand_in {
                Duration::from_millis(100)
            } else {
                Duration::from_secs(5)
            },
        })
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn endpoint_url(&self) -> Option<&str> {
        self.endpoint_url.as_deref()
    }

    /// `AWS in region us-east-1`, `the stand-in at http://127.0.0.1:5000 (region us-east-1)`.
    pub fn place(&self) -> &str {
        &self.place
    }

    /// True when every call goes to a stand-in on this machine (no
    /// confirmation needed, see DESIGN.md "Cloud safety").
    pub fn is_stand_in(&self) -> bool {
        self.endpoint_url.as_deref().is_some_and(is_loopback_url)
    }

    /// The account the credentials act in (STS GetCallerIdentity).
    pub async fn account_id(&self) -> Result<String> {
        const OP: &str = "GetCallerIdentity";
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| self.error(OP, e))?;
        out.account()
            .map(str::to_string)
            .ok_or_else(|| Error::unexpected(OP, "the answer names no account"))
    }

    /// Maps an SDK error of a call that is not about one named resource.
    pub(crate) fn error<E>(&self, operation: &'static str, err: SdkError<E, HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        Error::from_sdk(
            Call {
                operation,
                place: &self.place,
                not_found: None,
            },
            err,
        )
    }

    /// Maps an SDK error of a call about `id`: the service's `codes` mean
    /// it does not exist.
    pub(crate) fn error_about<E>(
        &self,
        operation: &'static str,
        err: SdkError<E, HttpResponse>,
        codes: &[&str],
        kind: ResourceKind,
        id: &str,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        Error::from_sdk(
            Call {
                operation,
                place: &self.place,
                not_found: Some((codes, kind, id)),
            },
            err,
        )
    }

    /// A "does not exist" naming where it was looked for.
    pub(crate) fn not_found(&self, kind: ResourceKind, id: &str) -> Error {
        Error::NotFound {
            kind,
            id: id.to_string(),
            place: self.place.clone(),
        }
    }
}
