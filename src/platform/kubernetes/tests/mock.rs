//! A scripted Kubernetes API server for tests: a kube `Client` over
//! `tower_test::mock::pair`, and a verifier that takes the client's requests
//! one by one, asserts each one's method, path, query and body against the
//! script, and answers with the recorded object the script gives. A request
//! the script does not expect, or a scripted one that never comes, fails the
//! test with both sides spelled out.

use std::{collections::VecDeque, time::Duration};

use http::{Method, Request, Response, StatusCode};
use kube::{Client, client::Body};
use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinHandle;
use tower_test::mock::{Handle, SendResponse};

use crate::platform::kubernetes::{Cluster, Identity};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

/// What the verifier checks of a request body.
#[derive(Debug, Clone)]
pub enum ExpectBody {
    /// Anything, or nothing.
    Any,
    /// JSON equal to this value.
    Json(Value),
}

/// How the scripted server answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A status code and a body, as the API server sends them.
    Send { status: StatusCode, body: Vec<u8> },
    /// No answer, ever (a watch that stays open).
    Hold,
}

/// One request the script expects, and the answer to it.
#[derive(Debug, Clone)]
pub struct Exchange {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: ExpectBody,
    content_type: Option<String>,
    reply: Reply,
}

impl Exchange {
    fn new(method: Method, path: &str) -> Self {
        Self {
            method,
            path: path.to_string(),
            query: Vec::new(),
            body: ExpectBody::Any,
            content_type: None,
            reply: Reply::Send {
                status: StatusCode::OK,
                body: b"{}".to_vec(),
            },
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new(Method::GET, path)
    }

    pub fn post(path: &str) -> Self {
        Self::new(Method::POST, path)
    }

    pub fn patch(path: &str) -> Self {
        Self::new(Method::PATCH, path)
    }

    pub fn delete(path: &str) -> Self {
        Self::new(Method::DELETE, path)
    }

    /// The query the request must carry, pair for pair (order aside).
    pub fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        self.query = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self
    }

    /// The JSON body the request must carry.
    pub fn body(mut self, body: Value) -> Self {
        self.body = ExpectBody::Json(body);
        self
    }

    /// The Content-Type the request must carry.
    pub fn content_type(mut self, content_type: &str) -> Self {
        self.content_type = Some(content_type.to_string());
        self
    }

    /// Answers 200 with this object.
    pub fn ok(self, object: impl Serialize) -> Self {
        self.reply(200, object)
    }

    /// Answers with this status code and object.
    pub fn reply(mut self, status: u16, object: impl Serialize) -> Self {
        self.reply = Reply::Send {
            status: StatusCode::from_u16(status).expect("a valid status code"),
            body: serde_json::to_vec(&object).expect("a serializable reply"),
        };
        self
    }

    /// Answers 200 with a watch stream: one JSON event a line.
    pub fn watch_events(mut self, events: &[Value]) -> Self {
        let mut body = Vec::new();
        for event in events {
            body.extend(serde_json::to_vec(event).expect("a serializable event"));
            body.push(b'\n');
        }
        self.reply = Reply::Send {
            status: StatusCode::OK,
            body,
        };
        self
    }

    /// Never answers, as a watch that stays open.
    pub fn hold(mut self) -> Self {
        self.reply = Reply::Hold;
        self
    }

    fn describe(&self) -> String {
        let query: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{} {}?{}", self.method, self.path, query.join("&"))
    }
}

/// A request as the client sent it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub body: Option<Value>,
}

impl Recorded {
    fn describe(&self) -> String {
        let query: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "{} {}?{} body {}",
            self.method,
            self.path,
            query.join("&"),
            self.body
                .as_ref()
                .map(Value::to_string)
                .unwrap_or_else(|| "(none)".into())
        )
    }
}

/// The test's side of the mock transport.
pub struct ApiServer(ApiHandle);

/// A client whose every request goes to the returned [`ApiServer`].
pub fn pair() -> (Client, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), ApiServer(handle))
}

/// A [`Cluster`] for namespace `gameday-shop` over the mock transport.
pub fn cluster() -> (Cluster, ApiServer) {
    let (client, server) = pair();
    let identity = Identity {
        url: "https://mock.invalid/".into(),
        context: "mock".into(),
    };
    (
        Cluster::from_client(client, "gameday-shop", identity),
        server,
    )
}

async fn record(request: Request<Body>) -> Recorded {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let mut query: Vec<(String, String)> = request
        .uri()
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    query.sort();
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = request
        .into_body()
        .collect_bytes()
        .await
        .expect("a readable request body");
    let body = if bytes.is_empty() {
        None
    } else {
        Some(serde_json::from_slice(&bytes).expect("a JSON request body"))
    };
    Recorded {
        method,
        path,
        query,
        content_type,
        body,
    }
}

fn answer(
    send: SendResponse<Response<Body>>,
    reply: &Reply,
    held: &mut Vec<SendResponse<Response<Body>>>,
) {
    match reply {
        Reply::Send { status, body } => {
            let response = Response::builder()
                .status(*status)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.clone()))
                .expect("a valid response");
            send.send_response(response);
        }
        Reply::Hold => held.push(send),
    }
}

fn check(step: usize, expected: &Exchange, got: &Recorded) {
    let mut expected_query = expected.query.clone();
    expected_query.sort();
    let same =
        expected.method == got.method && expected.path == got.path && expected_query == got.query;
    assert!(
        same,
        "request {step}: expected {}\n            got {}",
        expected.describe(),
        got.describe()
    );
    if let ExpectBody::Json(body) = &expected.body {
        assert_eq!(
            got.body.as_ref(),
            Some(body),
            "request {step} ({}): body",
            expected.describe()
        );
    }
    if let Some(content_type) = &expected.content_type {
        assert_eq!(
            got.content_type.as_deref(),
            Some(content_type.as_str()),
            "request {step} ({}): content type",
            expected.describe()
        );
    }
}

impl ApiServer {
    /// Answers the script in order, then fails on any further request.
    ///
    /// Await the handle (see [`finish`]) after the code under test has
    /// dropped its client: the verifier then knows no request is missing.
    pub fn run(mut self, script: Vec<Exchange>) -> JoinHandle<Vec<Recorded>> {
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut held = Vec::new();
            for (step, expected) in script.iter().enumerate() {
                let Some((request, send)) = self.0.next_request().await else {
                    panic!(
                        "request {step}: expected {}, but the client made no more requests",
                        expected.describe()
                    );
                };
                let got = record(request).await;
                check(step, expected, &got);
                answer(send, &expected.reply, &mut held);
                seen.push(got);
            }
            if let Some((request, _send)) = self.0.next_request().await {
                let got = record(request).await;
                panic!(
                    "request {}: the script had ended, but the client sent {}",
                    script.len(),
                    got.describe()
                );
            }
            drop(held);
            seen
        })
    }

    /// Answers by route rather than order, for code whose requests race
    /// (several watchers at once). Each route answers its replies in turn,
    /// then holds every further request open. Unrouted requests fail.
    pub fn route(mut self, mut routes: Vec<Route>) -> JoinHandle<Vec<Recorded>> {
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut held = Vec::new();
            while let Some((request, send)) = self.0.next_request().await {
                let got = record(request).await;
                let route = routes
                    .iter_mut()
                    .find(|r| r.matches(&got))
                    .unwrap_or_else(|| panic!("no route for {}", got.describe()));
                match route.replies.pop_front() {
                    Some(reply) => answer(send, &reply, &mut held),
                    None => held.push(send),
                }
                seen.push(got);
            }
            seen
        })
    }
}

/// Requests with this method and path, watch or not, get these replies.
pub struct Route {
    method: Method,
    path: String,
    watch: bool,
    replies: VecDeque<Reply>,
}

impl Route {
    pub fn list(path: &str, list: impl Serialize) -> Self {
        Self {
            method: Method::GET,
            path: path.to_string(),
            watch: false,
            replies: VecDeque::from([Reply::Send {
                status: StatusCode::OK,
                body: serde_json::to_vec(&list).expect("a serializable list"),
            }]),
        }
    }

    pub fn watch(path: &str, events: &[Value]) -> Self {
        let reply = match Exchange::get(path).watch_events(events).reply {
            Reply::Send { status, body } => Reply::Send { status, body },
            Reply::Hold => unreachable!("watch_events sends"),
        };
        Self {
            method: Method::GET,
            path: path.to_string(),
            watch: true,
            replies: VecDeque::from([reply]),
        }
    }

    fn matches(&self, got: &Recorded) -> bool {
        let is_watch = got.query.iter().any(|(k, v)| k == "watch" && v == "true");
        self.method == got.method && self.path == got.path && self.watch == is_watch
    }
}

/// Waits for the verifier to finish its script, failing the test if it does
/// not within a few (virtual, under paused time) seconds.
pub async fn finish(server: JoinHandle<Vec<Recorded>>) -> Vec<Recorded> {
    match tokio::time::timeout(Duration::from_secs(30), server).await {
        Ok(Ok(seen)) => seen,
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(Err(e)) => panic!("the mock API server failed: {e}"),
        Err(_) => panic!("the mock API server did not finish: is a client still alive?"),
    }
}
