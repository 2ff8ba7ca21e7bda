//! What can go wrong when gameday talks to AWS, in words an SRE can act on:
//! one error type for every call of the aws platform, with the cases the
//! engine and the user must tell apart (bad credentials, throttling, a
//! missing stack or database, a refused fault, an endpoint that does not
//! answer) as variants, never as strings to match on. It becomes
//! `platform::Error::Aws` at the seam.

use std::{error::Error as StdError, fmt, time::Duration};

use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::{orchestrator::HttpResponse, result::SdkError};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Error codes the SDK's own retry classifier treats as throttling
/// (`aws_runtime::retries::classifiers::THROTTLING_ERRORS`); they reach us
/// only once the retry strategy has given up.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Codes meaning "who you are was not accepted" (as opposed to "you may not").
const CREDENTIAL_CODES: &[&str] = &[
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "AuthFailure",
    "InvalidAccessKeyId",
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "MissingAuthenticationToken",
];

/// Codes meaning "you are known but not allowed".
const ACCESS_DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedAccess",
];

/// What kind of thing was not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Stack,
    AutoScalingGroup,
    DbInstance,
    DbCluster,
    CacheCluster,
    ReplicationGroup,
    Broker,
    TargetGroup,
    Instance,
    Alarm,
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Stack => "CloudFormation stack",
            Self::AutoScalingGroup => "Auto Scaling group",
            Self::DbInstance => "RDS DB instance",
            Self::DbCluster => "RDS DB cluster",
            Self::CacheCluster => "ElastiCache cluster",
            Self::ReplicationGroup => "ElastiCache replication group",
            Self::Broker => "Amazon MQ broker",
            Self::TargetGroup => "target group",
            Self::Instance => "EC2 instance",
            Self::Alarm => "CloudWatch alarm",
        })
    }
}

/// One failed resource of a stack operation, from the stack's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackFailure {
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: String,
}

impl fmt::Display for StackFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}) {}: {}",
            self.logical_id, self.resource_type, self.status, self.reason
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no AWS region: set target.region in the scenario, AWS_REGION, or a profile's region \
         (~/.aws/config)"
    )]
    NoRegion,

    /// No credentials could be found, or AWS refused them (bad key,
    /// signature mismatch, expired token).
    #[error(
        "{operation} on {place}: the AWS credentials are missing or were refused{}: {message}; \
         check AWS_PROFILE or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (an SSO session may \
         need `aws sso login`)",
        code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default()
    )]
    Credentials {
        operation: &'static str,
        place: String,
        code: Option<String>,
        message: String,
    },

    /// The caller is known but lacks the permission.
    #[error(
        "{operation}: access denied ({code}): {message}; the caller needs IAM permission for it"
    )]
    AccessDenied {
        operation: &'static str,
        code: String,
        message: String,
    },

    /// Still throttled after the SDK's retries (standard mode: 3 attempts,
    /// exponential backoff with jitter, token bucket).
    #[error("{operation}: throttled by AWS ({code}) after 3 attempts: {message}; try again later")]
    Throttled {
        operation: &'static str,
        code: String,
        message: String,
    },

    #[error("{kind} {id} does not exist{}", in_place(.place))]
    NotFound {
        kind: ResourceKind,
        id: String,
        place: String,
    },

    /// A stack operation ended in a failure state; `failures` are the failed
    /// resources in the order they failed (the first is usually the cause).
    #[error("stack {stack} ended in {status}{}", failures_suffix(.failures))]
    StackFailed {
        stack: String,
        status: String,
        failures: Vec<StackFailure>,
    },

    /// Something gameday will not do, with the reason (a forced failover of
    /// a single-AZ instance, a stack parameter given in the file).

    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },

    /// The endpoint could not be reached or did not answer in time.
    #[error("{operation}: cannot reach {place}: {message}")]
    Unreachable {
        operation: &'static str,
        place: String,
        message: String,
    },

    /// The service answered with an error not covered above.
    #[error("{operation}: {code}: {message}")]
    Api {
        operation: &'static str,
        code: String,
        message: String,
        request_id: Option<String>,
    },

    /// The service answered, but not with what the call needs.
    #[error("{operation}: unexpected answer: {message}")]
    Unexpected {
        operation: &'static str,
        message: String,
    },
}

fn in_place(place: &str) -> String {
    if place.is_empty() {
        String::new()
    } else {
        format!(" on {place}")
    }
}

fn failures_suffix(failures: &[StackFailure]) -> String {
    if failures.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = failures.iter().map(ToString::to_string).collect();
        format!(": {}", list.join("; "))
    }
}

/// What a call was about, for its error: the operation, where it went, and
/// the resource a "not found" code would be about.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call<'a> {
    pub operation: &'static str,
    /// `AWS in region us-east-1`, or `the stand-in at http://127.0.0.1:5000`.
    pub place: &'a str,
    pub not_found: Option<(&'a [&'a str], ResourceKind, &'a str)>,
}

impl Error {
    pub fn not_found(kind: ResourceKind, id: impl Into<String>) -> Self {
        Self::NotFound {
            kind,
            id: id.into(),
            place: String::new(),
        }
    }

    pub(crate) fn unexpected(operation: &'static str, message: impl Into<String>) -> Self {
        Self::Unexpected {
            operation,
            message: message.into(),
        }
    }

    /// The service's error code, when the service answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. }
            | Self::AccessDenied { code, .. }
            | Self::Throttled { code, .. } => Some(code),
            Self::Credentials { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    pub fn is_throttling(&self) -> bool {
        matches!(self, Self::Throttled { .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// Maps an SDK error of any service.
    pub(crate) fn from_sdk<E>(call: Call<'_>, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let operation = call.operation;
        match &err {
            SdkError::ServiceError(ctx) => {
                let e = ctx.err();
                let raw = ctx.raw();
                let request_id = e.meta().extra("aws_request_id").map(str::to_string);
                let message = e.message().unwrap_or_default().to_string();
                match e.code() {
                    Some(code) => classify(call, code.to_string(), message, request_id),
                    None => unparsed_error(call, raw, message, request_id),
                }
            }
            SdkError::TimeoutError(_) => Self::Unreachable {
                operation,
                place: call.place.to_string(),
                message: "no answer in time".into(),
            },
            SdkError::DispatchFailure(df) => {
                if let Some(c) = find_source::<CredentialsError>(&err) {
                    return Self::Credentials {
                        operation,
                        place: call.place.to_string(),
                        code: None,
                        message: error_chain(c),
                    };
                }
                let kind = if df.is_timeout() {
                    "no answer in time"
                } else if df.is_io() {
                    "the connection failed"
                } else {
                    "the request could not be sent"
                };
                Self::Unreachable {
                    operation,
                    place: call.place.to_string(),
                    message: format!("{kind} ({})", error_chain(&err)),
                }
            }
            _ => Self::Unexpected {
                operation,
                message: error_chain(&err),
            },
        }
    }
}

/// The SDK could not read an error code from the answer. AWS always sends
/// one; moto's auth errors use `<ErrorResponse><Errors><Error>`, which the
/// awsQuery parser does not read. Take `<Code>` from the body, else judge by
/// the HTTP status.
fn unparsed_error(
    call: Call<'_>,
    raw: &HttpResponse,
    message: String,
    request_id: Option<String>,
) -> Error {
    let status = raw.status().as_u16();
    let body = raw
        .body()
        .bytes()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    if let Some(code) = xml_text(&body, "Code") {
        let message = xml_text(&body, "Message").unwrap_or(message);
        return classify(call, code, message, request_id);
    }
    let message = if message.is_empty() {
        format!("HTTP {status} without an error code")
    } else {
        message
    };
    let operation = call.operation;
    match status {
        401 | 403 => Error::Credentials {
            operation,
            place: call.place.to_string(),
            code: None,
            message,
        },
        429 => Error::Throttled {
            operation,
            code: format!("HTTP {status}"),
            message,
        },
        _ => Error::Api {
            operation,
            code: format!("HTTP {status}"),
            message,
            request_id,
        },
    }
}

/// The text of the first `<tag>...</tag>` (no nesting, no entities beyond
/// what error codes and messages use).
fn xml_text(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&close)? + start;
    let text = body[start..end].trim();
    (!text.is_empty()).then(|| {
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&")
    })
}

fn classify(call: Call<'_>, code: String, message: String, request_id: Option<String>) -> Error {
    let operation = call.operation;
    if let Some((codes, kind, id)) = call.not_found
        && (codes.contains(&code.as_str())
            || is_cloudformation_missing_stack(&code, &message, kind))
    {
        return Error::NotFound {
            kind,
            id: id.to_string(),
            place: call.place.to_string(),
        };
    }
    if CREDENTIAL_CODES.contains(&code.as_str()) {
        return Error::Credentials {
            operation,
            place: call.place.to_string(),
            code: Some(code),
            message,
        };
    }
    if ACCESS_DENIED_CODES.contains(&code.as_str()) {
        return Error::AccessDenied {
            operation,
            code,
            message,
        };
    }
    if THROTTLING_CODES.contains(&code.as_str()) {
        return Error::Throttled {
            operation,
            code,
            message,
        };
    }
    Error::Api {
        operation,
        code,
        message,
        request_id,
    }
}

/// CloudFormation has no "stack not found" code: it answers
/// `ValidationError` with "Stack with id NAME does not exist".
fn is_cloudformation_missing_stack(code: &str, message: &str, kind: ResourceKind) -> bool {
    kind == ResourceKind::Stack && code == "ValidationError" && message.contains("does not exist")
}

fn find_source<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        cur = e.source();
    }
    None
}

/// "outer: inner: innermost", like `DisplayErrorContext` but without the
/// debug dump.
fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if parts.last() != Some(&s) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    const PLACE: &str = "AWS in region us-east-1";

    fn call(operation: &'static str) -> Call<'static> {
        Call {
            operation,
            place: PLACE,
            not_found: None,
        }
    }

    fn code(c: &str, message: &str) -> Error {
        classify(call("Op"), c.into(), message.into(), None)
    }

    #[test]
    fn service_codes_become_throttling_credential_and_permission_errors() {
        assert!(code("Throttling", "Rate exceeded").is_throttling());
        assert!(code("RequestLimitExceeded", "").is_throttling());
        let e = code("InvalidClientTokenId", "bad");
        assert!(
            matches!(e, Error::Credentials { code: Some(ref c), .. } if c == "InvalidClientTokenId"),
            "{e:?}"
        );
        assert!(
            e.to_string().contains("on AWS in region us-east-1")
                && e.to_string().contains("AWS_PROFILE"),
            "{e}"
        );
        assert!(matches!(
            code("UnauthorizedOperation", ""),
            Error::AccessDenied { .. }
        ));
    }

    #[test]
    fn cloudformation_s_validation_error_about_a_missing_stack_is_not_found() {
        let missing = Call {
            not_found: Some((&[], ResourceKind::Stack, "nope")),
            ..call("DescribeStacks")
        };
        let e = classify(
            missing,
            "ValidationError".into(),
            "Stack with id nope does not exist".into(),
            None,
        );
        assert_eq!(
            e.to_string(),
            "CloudFormation stack nope does not exist on AWS in region us-east-1"
        );
        // A ValidationError about something else stays an API error.
        let e = classify(
            missing,
            "ValidationError".into(),
            "Template format error".into(),
            None,
        );
        assert!(matches!(e, Error::Api { ref code, .. } if code == "ValidationError"));
    }

    #[test]
    fn codes_the_sdk_could_not_read_are_taken_from_the_body_or_the_status() {
        let moto_auth = HttpResponse::new(
            403u16.try_into().unwrap(),
            aws_smithy_types::body::SdkBody::from(
                "<ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code>\
                 <Message>The security token included in the request is invalid.</Message>\
                 </Error></Errors></ErrorResponse>",
            ),
        );
        let e = unparsed_error(call("Op"), &moto_auth, String::new(), None);
        assert!(
            matches!(e, Error::Credentials { code: Some(ref c), ref message, .. }
            if c == "InvalidClientTokenId" && message.starts_with("The security token")),
            "{e:?}"
        );
        let bare = HttpResponse::new(
            403u16.try_into().unwrap(),
            aws_smithy_types::body::SdkBody::empty(),
        );
        assert!(matches!(
            unparsed_error(call("Op"), &bare, String::new(), None),
            Error::Credentials { code: None, .. }
        ));
        let teapot = HttpResponse::new(
            418u16.try_into().unwrap(),
            aws_smithy_types::body::SdkBody::empty(),
        );
        assert!(matches!(
            unparsed_error(call("Op"), &teapot, String::new(), None),
            Error::Api { ref code, .. } if code == "HTTP 418"
        ));
    }

    #[test]
    fn a_failed_stack_lists_each_failed_resource_with_its_reason() {
        let e = Error::StackFailed {
            stack: "shop".into(),
            status: "ROLLBACK_COMPLETE".into(),
            failures: vec![StackFailure {
                logical_id: "Database".into(),
                resource_type: "AWS::RDS::DBInstance".into(),
                status: "CREATE_FAILED".into(),
                reason: "quota exceeded".into(),
            }],
        };
        assert_eq!(
            e.to_string(),
            "stack shop ended in ROLLBACK_COMPLETE: Database (AWS::RDS::DBInstance) CREATE_FAILED: quota exceeded"
        );
    }
}
