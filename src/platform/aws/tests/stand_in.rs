//! A recording stand-in for AWS: an axum server on a loopback port that
//! records every request (method, path, body) and answers with what the
//! test says AWS would (awsQuery XML, ec2Query XML, rpc-v2-cbor). The
//! clients reach it through `endpoint-url`, over the SDK's real HTTP stack.
//!
//! It stands in for what moto cannot do or show: RebootCacheCluster and
//! TestFailover (moto answers 500, not implemented), CloudWatch (the SDK speaks rpc-v2-cbor,
//! which moto's server does not route), the ForceFailover flag of
//! RebootDBInstance (moto accepts it and changes nothing, so only the
//! request shows it), throttling, and a stack's per-resource failure events
//! (moto records only the stack's own). It is used instead of the SDK's
//! test clients, whose `test-util` features would make `cargo test`
//! compile the whole SDK a second time.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use axum::{
    body::Bytes,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

impl Request {
    /// The form fields of an awsQuery / ec2Query request.
    pub fn form(&self) -> BTreeMap<String, String> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }

    /// `Action=...` of a query request, or the operation of an rpc-v2-cbor
    /// one (the last segment of its path).
    pub fn operation(&self) -> String {
        match self.form().get("Action") {
            Some(action) => action.clone(),
            None => self.path.rsplit('/').next().unwrap_or_default().to_string(),
        }
    }
}

/// What the stand-in answers.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Answer {
    /// An awsQuery answer: `<{op}Response><{op}Result>{result}</...>`.
    pub fn query(operation: &str, namespace: &str, result: &str) -> Self {
        Self::xml(format!(
            "<{operation}Response xmlns=\"{namespace}\"><{operation}Result>{result}</{operation}Result>\
             <ResponseMetadata><RequestId>stand-in</RequestId></ResponseMetadata></{operation}Response>"
        ))
    }

    pub fn xml(body: impl Into<String>) -> Self {
        Self {
            status: 200,
            content_type: "text/xml",
            body: body.into().into_bytes(),
        }
    }

    /// An awsQuery error, such as Throttling.
    pub fn query_error(status: u16, code: &str, message: &str) -> Self {
        Self {
            status,
            content_type: "text/xml",
            body: format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
                 <Message>{message}</Message></Error><RequestId>stand-in</RequestId></ErrorResponse>"
            )
            .into_bytes(),
        }
    }

    pub fn cbor(body: Vec<u8>) -> Self {
        Self {
            status: 200,
            content_type: "application/cbor",
            body,
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::query_error(400, "NotHandledByTheStandIn", what)
    }
}

type Answers = dyn Fn(&Request) -> Answer + Send + Sync;

pub struct StandIn {
    pub url: String,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl StandIn {
    /// Starts the stand-in on a free loopback port; `answer` is called for
    /// each request (after it was recorded).
    pub async fn start(answer: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> Self {
        let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
        let answer: Arc<Answers> = Arc::new(answer);
        let recorded = requests.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, _headers: HeaderMap, body: Bytes| {
                let (recorded, answer) = (recorded.clone(), answer.clone());
                async move {
                    let request = Request {
                        method: method.to_string(),
                        path: uri.path().to_string(),
                        body: body.to_vec(),
                    };
                    recorded.lock().unwrap().push(request.clone());
                    let a = answer(&request);
                    let mut response: Response = (
                        StatusCode::from_u16(a.status).unwrap(),
                        [("content-type", a.content_type)],
                        a.body,
                    )
                        .into_response();
                    if a.content_type == "application/cbor" {
                        response
                            .headers_mut()
                            .insert("smithy-protocol", "rpc-v2-cbor".parse().unwrap());
                    }
                    response
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            url,
            requests,
            stop: Some(stop),
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// The operations received, in order.
    pub fn operations(&self) -> Vec<String> {
        self.requests().iter().map(Request::operation).collect()
    }

    /// The requests for one operation.
    pub fn of(&self, operation: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.operation() == operation)
            .collect()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub const RDS: &str = "http://rds.amazonaws.com/doc/2014-10-31/";
pub const ELASTICACHE: &str = "http://elasticache.amazonaws.com/doc/2015-02-02/";
pub const AUTOSCALING: &str = "http://autoscaling.amazonaws.com/doc/2011-01-01/";
pub const ELBV2: &str = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";
pub const CLOUDFORMATION: &str = "http://cloudformation.amazonaws.com/doc/2010-05-15/";

/// An RDS DBInstance element.
pub fn db_instance(id: &str, multi_az: bool, replica_of: Option<&str>) -> String {
    format!(
        "<DBInstance><DBInstanceIdentifier>{id}</DBInstanceIdentifier>\
         <DBInstanceArn>arn:aws:rds:us-east-1:123456789012:db:{id}</DBInstanceArn>\
         <Engine>mariadb</Engine><EngineVersion>10.11.9</EngineVersion>\
         <DBInstanceStatus>available</DBInstanceStatus><MultiAZ>{multi_az}</MultiAZ>\
         <AvailabilityZone>us-east-1a</AvailabilityZone>\
         <SecondaryAvailabilityZone>us-east-1b</SecondaryAvailabilityZone>{}</DBInstance>",
        replica_of
            .map(|s| format!(
                "<ReadReplicaSourceDBInstanceIdentifier>{s}</ReadReplicaSourceDBInstanceIdentifier>"
            ))
            .unwrap_or_default()
    )
}

/// An Auto Scaling group with `members` (id, lifecycle state), all in
/// us-east-1a, registered in target group `arn:tg`.
pub fn auto_scaling_group(name: &str, desired: u32, members: &[(&str, &str)]) -> String {
    let instances: String = members
        .iter()
        .map(|(id, state)| {
            format!(
                "<member><InstanceId>{id}</InstanceId><AvailabilityZone>us-east-1a</AvailabilityZone>\
                 <LifecycleState>{state}</LifecycleState><HealthStatus>Healthy</HealthStatus>\
                 <ProtectedFromScaleIn>false</ProtectedFromScaleIn></member>"
            )
        })
        .collect();
    format!(
        "<AutoScalingGroups><member><AutoScalingGroupName>{name}</AutoScalingGroupName>\
         <AutoScalingGroupARN>arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:1:autoScalingGroupName/{name}</AutoScalingGroupARN>\
         <MinSize>3</MinSize><MaxSize>6</MaxSize><DesiredCapacity>{desired}</DesiredCapacity>\
         <Instances>{instances}</Instances><TargetGroupARNs><member>arn:tg</member></TargetGroupARNs>\
         </member></AutoScalingGroups>"
    )
}

/// DescribeTargetHealth's result: each (instance, state) on port 8080.
pub fn target_health(targets: &[(&str, &str)]) -> String {
    let members: String = targets
        .iter()
        .map(|(id, state)| {
            format!(
                "<member><Target><Id>{id}</Id><Port>8080</Port></Target>\
                 <TargetHealth><State>{state}</State></TargetHealth></member>"
            )
        })
        .collect();
    format!("<TargetHealthDescriptions>{members}</TargetHealthDescriptions>")
}

/// An empty ec2 DescribeInstances answer (EC2 knows nothing more).
pub fn no_reservations() -> Answer {
    Answer::xml(
        "<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
         <requestId>stand-in</requestId><reservationSet/></DescribeInstancesResponse>",
    )
}

/// CloudWatch's DescribeAlarms answer in CBOR: (name, state, reason).
pub fn alarms_cbor(alarms: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut e = aws_smithy_cbor::Encoder::new(Vec::new());
    e.begin_map().str("MetricAlarms").array(alarms.len());
    for (name, state, reason) in alarms {
        e.map(3)
            .str("AlarmName")
            .str(name)
            .str("StateValue")
            .str(state)
            .str("StateReason")
            .str(reason);
    }
    e.str("CompositeAlarms").array(0).end();
    e.into_writer()
}

/// An ElastiCache ReplicationGroup element, cluster mode disabled: node
/// group 0001 with `members` (cluster id, role, zone). The elements are the
/// ElastiCache API reference's (DescribeReplicationGroups, ReplicationGroup,
/// NodeGroup, NodeGroupMember) in the awsQuery XML the SDK reads.
pub fn replication_group(
    id: &str,
    automatic_failover: &str,
    members: &[(&str, &str, &str)],
) -> String {
    let nodes: String = members
        .iter()
        .map(|(cluster, role, zone)| {
            format!(
                "<NodeGroupMember><CacheClusterId>{cluster}</CacheClusterId>\
                 <CacheNodeId>0001</CacheNodeId><CurrentRole>{role}</CurrentRole>\
                 <PreferredAvailabilityZone>{zone}</PreferredAvailabilityZone></NodeGroupMember>"
            )
        })
        .collect();
    let clusters: String = members
        .iter()
        .map(|(cluster, _, _)| format!("<ClusterId>{cluster}</ClusterId>"))
        .collect();
    format!(
        "<ReplicationGroup><ReplicationGroupId>{id}</ReplicationGroupId>\
         <ARN>arn:aws:elasticache:us-east-1:123456789012:replicationgroup:{id}</ARN>\
         <Status>available</Status><Engine>redis</Engine><ClusterEnabled>false</ClusterEnabled>\
         <AutomaticFailover>{automatic_failover}</AutomaticFailover><MultiAZ>{}</MultiAZ>\
         <MemberClusters>{clusters}</MemberClusters><NodeGroups><NodeGroup>\
         <NodeGroupId>0001</NodeGroupId><Status>available</Status>\
         <PrimaryEndpoint><Address>{id}.abc123.ng.0001.use1.cache.amazonaws.com</Address><Port>6379</Port></PrimaryEndpoint>\
         <NodeGroupMembers>{nodes}</NodeGroupMembers></NodeGroup></NodeGroups></ReplicationGroup>",
        if automatic_failover == "enabled" {
            "enabled"
        } else {
            "disabled"
        }
    )
}
