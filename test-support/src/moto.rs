//! A private moto server (`moto[server]` from PyPI) on a free loopback port,
//! killed when dropped (and, through PR_SET_PDEATHSIG, when the test
//! process dies first). The unit tests of the aws platform and the
//! integration tests both start moto with it, alike.
//!
//! moto is found at `GAMEDAY_MOTO_SERVER`, else in the virtualenv that
//! scripts/venv.sh creates (`/var/tmp/gameday-venv`), else on PATH. A test
//! that needs it and does not find it fails, saying how to install it:
//! nothing is skipped silently.
//!
//! `MotoServer::start_recording` turns on moto's own recorder
//! (`MOTO_ENABLE_RECORDING`, docs.getmoto.org "Recorder"): every request it
//! receives is appended to a file as JSON, so a test can assert what
//! gameday sent even where moto ignores a field (TerminateInstances'
//! `SkipOsShutdown`).

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// How to install moto, for the failure message.
pub const INSTALL: &str = "scripts/venv.sh (or: python3 -m venv /var/tmp/gameday-venv && \
     /var/tmp/gameday-venv/bin/pip install 'moto[server]==5.2.5'), or set GAMEDAY_MOTO_SERVER";

/// Where `moto_server` is.
pub fn moto_server_path() -> PathBuf {
    if let Some(p) = std::env::var_os("GAMEDAY_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let venv = std::env::var_os("GAMEDAY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/gameday-venv"))
        .join("bin/moto_server");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("moto_server")
}

pub struct MotoServer {
    child: Child,
    pub port: u16,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    log: PathBuf,
    /// moto's recording, when it records (see [`MotoServer::recorded`]).
    recording: Option<PathBuf>,
}

/// One request moto received, from its recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub url: String,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The form fields of a query-protocol request (ec2Query, awsQuery).
    pub fn form(&self) -> BTreeMap<String, String> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }

    /// `Action=...` of a query-protocol request.
    pub fn action(&self) -> Option<String> {
        self.form().remove("Action")
    }
}

impl MotoServer {
    /// A moto that accepts any credentials (its default).
    pub fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// A moto that checks credentials (`INITIAL_NO_AUTH_ACTION_COUNT=0`):
    /// only its own test keys are accepted.
    pub fn start_checking_credentials() -> Self {
        Self::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")])
    }

    /// A moto that records every request it receives (moto's recorder,
    /// on from the start); read them with [`MotoServer::recorded`].
    pub fn start_recording() -> Self {
        let file = std::env::temp_dir().join(format!(
            "gameday-moto-recording-{}-{}.jsonl",
            std::process::id(),
            free_port()
        ));
        let path = file.to_string_lossy().into_owned();
        let mut moto = Self::start_with_env(&[
            ("MOTO_ENABLE_RECORDING", "true"),
            ("MOTO_RECORDER_FILEPATH", &path),
        ]);
        moto.recording = Some(file);
        moto
    }

    /// Every request moto received so far, oldest first (empty unless
    /// started with [`MotoServer::start_recording`]).
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        use base64::Engine as _;
        let Some(file) = &self.recording else {
            return Vec::new();
        };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .map(|entry| {
                let body = entry["body"].as_str().unwrap_or_default();
                let body = if entry["body_encoded"].as_bool() == Some(true) {
                    base64::engine::general_purpose::STANDARD
                        .decode(body)
                        .unwrap_or_default()
                } else {
                    body.as_bytes().to_vec()
                };
                RecordedRequest {
                    method: entry["method"].as_str().unwrap_or_default().to_string(),
                    url: entry["url"].as_str().unwrap_or_default().to_string(),
                    body,
                }
            })
            .collect()
    }

    /// The recorded query-protocol requests for `action`.
    pub fn recorded_action(&self, action: &str) -> Vec<RecordedRequest> {
        self.recorded()
            .into_iter()
            .filter(|r| r.action().as_deref() == Some(action))
            .collect()
    }

    fn start_with_env(env: &[(&str, &str)]) -> Self {
        let path = moto_server_path();
        // A port is free when we bind it; another process could take it
        // before moto does, so retry on another one.
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let log = std::env::temp_dir()
                .join(format!("gameday-moto-{}-{port}.log", std::process::id()));
            let log_file = std::fs::File::create(&log).expect("create moto's log file");
            let mut command = Command::new(&path);
            command
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("clone the log handle"))
                .stderr(log_file)
                .envs(env.iter().copied());
            // SAFETY: prctl is async-signal-safe; nothing else runs between
            // fork and exec.
            unsafe {
                use std::os::unix::process::CommandExt;
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let child = command.spawn().unwrap_or_else(|e| {
                panic!(
                    "cannot start moto's server ({}): {e}. Install it: {INSTALL}",
                    path.display()
                )
            });
            let mut moto = MotoServer {
                child,
                port,
                endpoint: format!("http://127.0.0.1:{port}"),
                log,
                recording: None,
            };
            match moto.wait_ready(Duration::from_secs(30)) {
                Ok(()) => return moto,
                Err(why) => {
                    last = format!(
                        "{why}; its log:\n{}",
                        std::fs::read_to_string(&moto.log).unwrap_or_default()
                    );
                }
            }
        }
        panic!("moto's server did not start: {last}")
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let start = Instant::now();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("moto_server exited with {status}"));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("not listening after {timeout:?}"))
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
        if let Some(file) = &self.recording {
            let _ = std::fs::remove_file(file);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free loopback port")
}

/// The stack parameters the shop's template needs that a scenario gives.
/// The release's three are what `gameday up` passes after uploading it;
/// a test that creates the stack directly gives them (moto boots nothing,
/// so the object need not exist).
pub const SHOP_PARAMETERS: [(&str, &str); 5] = [
    ("ReleaseBucket", "gameday-123456789012-us-east-1-tests"),
    ("ReleaseKey", "releases/gameday-shop-tests.tar.gz"),
    (
        "ReleaseArtifactSha256",
        "0000000000000000000000000000000000000000000000000000000000000000",
    ),
    // Documentation addresses (RFC 5737): the template has no open default.
    ("AllowedIngressCidr", "198.51.100.0/24"),
    ("AdminIngressCidr", "198.51.100.7/32"),
];

/// What a scenario run through `gameday up` or `run` gives: the rest,
/// gameday packs and uploads the release itself.
pub const SCENARIO_PARAMETERS: [(&str, &str); 2] = [
    ("AllowedIngressCidr", "198.51.100.0/24"),
    ("AdminIngressCidr", "198.51.100.7/32"),
];

/// The admin token the tests give the stack (through the environment in the
/// end-to-end test, directly here).
pub const TEST_ADMIN_TOKEN: &str = "admin-token-for-tests";

/// Creates a RabbitMQ broker on moto, for the tests that name one in the
/// scenario, and returns its id.
pub async fn create_broker(mq: &aws_sdk_mq::Client) -> String {
    mq.create_broker()
        .broker_name("shop-broker")
        .engine_type(aws_sdk_mq::types::EngineType::Rabbitmq)
        .engine_version("3.13")
        .host_instance_type("mq.t3.micro")
        .deployment_mode(aws_sdk_mq::types::DeploymentMode::SingleInstance)
        .publicly_accessible(false)
        .auto_minor_version_upgrade(true)
        .users(
            aws_sdk_mq::types::User::builder()
                .username("shop")
                .password("a-password-for-moto")
                .build(),
        )
        .send()
        .await
        .expect("moto creates a broker")
        .broker_id()
        .expect("a broker id")
        .to_string()
}
