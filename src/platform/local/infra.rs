//! The shop's infrastructure as real servers: redis-server, mariadbd and
//! rabbitmq-server, each found on PATH, started as a supervised child with
//! its data under a directory gameday owns, on ports gameday chooses. A
//! RabbitMQ node gets its own epmd, node name and ports, so it never touches
//! a system-wide RabbitMQ.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use sqlx::{Connection, mysql::MySqlConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::errors::{Error, Result};
use super::process::{Supervised, accepts_tcp, find_program, free_port, wait_until};

/// A server gameday runs: how to launch it, and the lifecycle every server
/// shares (kill, graceful stop, restart on the same address and data).
pub trait Server {
    /// Starts the process and waits until it answers.
    fn launch(&mut self) -> impl Future<Output = Result<()>>;
    fn process(&mut self) -> &mut Option<Supervised>;
    fn running(&self) -> Option<&Supervised>;
    /// How long a graceful stop may take before SIGKILL.
    fn stop_grace(&self) -> Duration;

    fn pid(&self) -> Option<u32> {
        self.running().and_then(Supervised::pid)
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.process().take() {
            p.kill();
        }
    }

    fn stop(&mut self) {
        let grace = self.stop_grace();
        if let Some(mut p) = self.process().take() {
            p.stop(grace);
        }
    }

    /// Stops (gracefully) and starts again on the same address and data.
    fn restart(&mut self) -> impl Future<Output = Result<()>> {
        self.stop();
        self.launch()
    }

    /// Starts again after a `kill` or `stop`, on the same address and data.
    fn start_again(&mut self) -> impl Future<Output = Result<()>> {
        self.launch()
    }
}

/// Implements [`Server`] for a launcher with a `process` field and a
/// `launch_process` method.
macro_rules! server {
    ($ty:ty, stop grace $secs:literal s) => {
        impl Server for $ty {
            async fn launch(&mut self) -> Result<()> {
                self.launch_process().await
            }
            fn process(&mut self) -> &mut Option<Supervised> {
                &mut self.process
            }
            fn running(&self) -> Option<&Supervised> {
                self.process.as_ref()
            }
            fn stop_grace(&self) -> Duration {
                Duration::from_secs($secs)
            }
        }
    };
}

/// Waits until `check` passes; fails at once if the process exits first.
async fn wait_ready<F, Fut>(process: &mut Supervised, timeout: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = std::time::Instant::now();
    let mut exited = false;
    let ready = wait_until(timeout, || {
        exited = !process.is_running();
        let probe = (!exited).then(&mut check);
        async move {
            match probe {
                Some(p) => p.await,
                None => true,
            }
        }
    })
    .await;
    if ready && !exited {
        return Ok(());
    }
    Err(Error::NotReady {
        name: process.name().to_string(),
        waited: started.elapsed(),
        log: process.log().to_path_buf(),
        tail: process.log_tail(20),
    })
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

// ---------------------------------------------------------------- Redis

pub struct Redis {
    pub addr: SocketAddr,
    dir: PathBuf,
    process: Option<Supervised>,
}

impl Redis {
    /// Starts redis-server with an append-only file (carts survive a
    /// restart) under `dir`.
    pub async fn start(dir: impl Into<PathBuf>, ip: IpAddr, port: Option<u16>) -> Result<Self> {
        let dir: PathBuf = dir.into();
        let port = match port {
            Some(p) => p,
            None => free_port(ip)?,
        };
        let mut redis = Self {
            addr: SocketAddr::new(ip, port),
            dir,
            process: None,
        };
        redis.launch().await?;
        Ok(redis)
    }

    async fn launch_process(&mut self) -> Result<()> {
        let program = find_program("redis-server", "redis-server")?;
        create_dir(&self.dir)?;
        let mut cmd = Command::new(program);
        cmd.args(["--port", &self.addr.port().to_string()])
            .args(["--bind", &self.addr.ip().to_string()])
            .arg("--dir")
            .arg(&self.dir)
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
            ])
            .args([
                "--daemonize",
                "no",
                "--protected-mode",
                "no",
                "--logfile",
                "",
            ]);
        let mut process = Supervised::spawn("redis", cmd, &self.dir.join("redis.log"))?;
        let addr = self.addr;
        wait_ready(&mut process, Duration::from_secs(15), || redis_pong(addr)).await?;
        self.process = Some(process);
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }
}

server!(Redis, stop grace 10 s);

async fn redis_pong(addr: SocketAddr) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf).await.ok()?;
        Some(buf[..n].starts_with(b"+PONG"))
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), attempt).await,
        Ok(Some(true))
    )
}

// ---------------------------------------------------------------- MariaDB

/// Accounts every MariaDB server gets (created by an init file at each start,
/// outside the binary log so replicas never see them as their own writes).
pub const SHOP_USER: (&str, &str) = ("shop", "shop");
pub const ADMIN_USER: (&str, &str) = ("gameday", "gameday");
pub const DATABASE: &str = "shop";

#[derive(Debug, Clone)]
pub struct MariaDbOptions {
    pub dir: PathBuf,
    pub ip: IpAddr,
    pub port: Option<u16>,
    /// Unique per server of a replication pair.
    pub server_id: u32,
    /// Binary log, GTID and semi-synchronous replication settings.
    pub replication: bool,
}

pub struct MariaDb {
    pub addr: SocketAddr,
    pub options: MariaDbOptions,
    process: Option<Supervised>,
}

impl MariaDb {
    pub async fn start(options: MariaDbOptions) -> Result<Self> {
        let port = match options.port {
            Some(p) => p,
            None => free_port(options.ip)?,
        };
        let mut db = Self {
            addr: SocketAddr::new(options.ip, port),
            options,
            process: None,
        };
        db.launch().await?;
        Ok(db)
    }

    fn data_dir(&self) -> PathBuf {
        self.options.dir.join("data")
    }

    fn install(&self) -> Result<()> {
        let data = self.data_dir();
        if data.join("mysql").exists() {
            return Ok(());
        }
        create_dir(&data)?;
        // Concurrent bootstraps must not share a temporary directory.
        let tmp = self.tmp_dir();
        create_dir(&tmp)?;
        let program = find_program("mariadb-install-db", "mariadb-server")?;
        let output = Command::new(program)
            .args([
                "--no-defaults",
                "--user=root",
                "--auth-root-authentication-method=normal",
            ])
            .args(["--skip-test-db", "--skip-name-resolve"])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .env("TMPDIR", &tmp)
            .output()
            .map_err(|source| Error::Spawn {
                program: "mariadb-install-db".into(),
                source,
            })?;
        if !output.status.success() {
            return Err(Error::ProgramFailed {
                program: "mariadb-install-db".into(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(())
    }

    fn tmp_dir(&self) -> PathBuf {
        self.options.dir.join("tmp")
    }

    fn init_file(&self) -> Result<PathBuf> {
        let (su, sp) = SHOP_USER;
        let (au, ap) = ADMIN_USER;
        let sql = format!(
            "SET sql_log_bin = 0;\n\
             CREATE DATABASE IF NOT EXISTS {DATABASE};\n\
             CREATE USER IF NOT EXISTS '{su}'@'%' IDENTIFIED BY '{sp}';\n\
             GRANT ALL PRIVILEGES ON {DATABASE}.* TO '{su}'@'%';\n\
             CREATE USER IF NOT EXISTS '{au}'@'%' IDENTIFIED BY '{ap}';\n\
             GRANT ALL PRIVILEGES ON *.* TO '{au}'@'%' WITH GRANT OPTION;\n"
        );
        let path = self.options.dir.join("init.sql");
        std::fs::write(&path, sql).map_err(|e| Error::io(&path, e))?;
        Ok(path)
    }

    async fn launch_process(&mut self) -> Result<()> {
        let program = find_program("mariadbd", "mariadb-server")?;
        self.install()?;
        let init = self.init_file()?;
        let data = self.data_dir();
        let mut cmd = Command::new(program);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!(
                "--socket={}",
                super::process::socket_path(&self.options.dir, "mariadbd.sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                self.options.dir.join("mariadbd.pid").display()
            ))
            .arg(format!("--init-file={}", init.display()))
            .arg(format!("--tmpdir={}", self.tmp_dir().display()))
            .arg(format!("--port={}", self.addr.port()))
            .arg(format!("--bind-address={}", self.addr.ip()))
            .arg(format!("--server-id={}", self.options.server_id))
            .args([
                "--user=root",
                "--skip-name-resolve",
                "--performance-schema=OFF",
            ])
            .args([
                "--innodb-buffer-pool-size=64M",
                "--max-connections=500",
                "--log-error=",
            ])
            // A few threads take turns serving every connection, instead of
            // a thread per connection woken for each statement: 5% less
            // CPU per statement at 2,000 shoppers, measured against the
            // same run's catalogue (hundreds of pooled connections, 2 cores).
            .arg("--thread-handling=pool-of-threads")
            // The redo log is written at each commit and flushed to disk
            // once a second: a killed mariadbd (every local fault) loses
            // nothing, since the kernel still holds what it wrote, and with
            // replication a commit is also on the standby before the shop
            // hears of it (semi-sync). Only a crash of this machine could
            // lose the last second, which no fault does.
            .arg("--innodb-flush-log-at-trx-commit=2");
        if self.options.replication {
            cmd.arg(format!(
                "--log-bin={}",
                self.options
                    .dir
                    .join("binlog")
                    .join("mariadb-bin")
                    .display()
            ))
            .args([
                "--binlog-format=ROW",
                "--log-slave-updates=ON",
                "--gtid-strict-mode=ON",
            ])
            .args([
                "--rpl-semi-sync-master-enabled=ON",
                "--rpl-semi-sync-slave-enabled=ON",
            ])
            .args([
                "--rpl-semi-sync-master-timeout=3000",
                "--relay-log=relay-bin",
            ]);
            create_dir(&self.options.dir.join("binlog"))?;
        } else {
            cmd.arg("--skip-log-bin");
        }
        let mut process = Supervised::spawn(
            format!("mariadb-{}", self.options.server_id),
            cmd,
            &self.options.dir.join("mariadbd.log"),
        )?;
        let url = self.admin_url();
        wait_ready(&mut process, Duration::from_secs(30), || {
            let url = url.clone();
            async move {
                match MySqlConnection::connect(&url).await {
                    Ok(mut c) => sqlx::query("SELECT 1").execute(&mut c).await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await?;
        self.process = Some(process);
        Ok(())
    }

    /// The URL the shop's services use.
    pub fn shop_url(&self) -> String {
        format!(
            "mysql://{}:{}@{}/{DATABASE}?ssl-mode=disabled",
            SHOP_USER.0, SHOP_USER.1, self.addr
        )
    }

    /// An administrative URL (replication, promotion, audits by hand).
    pub fn admin_url(&self) -> String {
        format!(
            "mysql://{}:{}@{}/mysql?ssl-mode=disabled",
            ADMIN_USER.0, ADMIN_USER.1, self.addr
        )
    }

    pub async fn admin(&self) -> Result<MySqlConnection> {
        match tokio::time::timeout(
            Duration::from_secs(5),
            MySqlConnection::connect(&self.admin_url()),
        )
        .await
        {
            Ok(conn) => Ok(conn?),
            Err(_) => Err(Error::DatabaseTimeout {
                server: format!("mariadb-{}", self.options.server_id),
            }),
        }
    }
}

server!(MariaDb, stop grace 20 s);

// ---------------------------------------------------------------- RabbitMQ

pub struct RabbitMq {
    pub addr: SocketAddr,
    dir: PathBuf,
    epmd_port: u16,
    dist_port: u16,
    epmd: Option<Supervised>,
    process: Option<Supervised>,
}

impl RabbitMq {
    pub async fn start(dir: impl Into<PathBuf>, ip: IpAddr, port: Option<u16>) -> Result<Self> {
        let dir: PathBuf = dir.into();
        let port = match port {
            Some(p) => p,
            None => free_port(ip)?,
        };
        let loopback = IpAddr::from([127, 0, 0, 1]);
        let mut rabbit = Self {
            addr: SocketAddr::new(ip, port),
            dir,
            epmd_port: free_port(loopback)?,
            dist_port: free_port(loopback)?,
            epmd: None,
            process: None,
        };
        rabbit.launch().await?;
        Ok(rabbit)
    }

    fn node_name(&self) -> String {
        format!("gameday-{}@localhost", self.addr.port())
    }

    async fn launch_process(&mut self) -> Result<()> {
        // Debian's /usr/sbin/rabbitmq-server switches to the rabbitmq user;
        // the script behind it runs the node as whoever calls it.
        let direct = PathBuf::from("/usr/lib/rabbitmq/bin/rabbitmq-server");
        let server = if direct.is_file() {
            direct
        } else {
            find_program("rabbitmq-server", "rabbitmq-server")?
        };
        create_dir(&self.dir)?;
        if self.epmd.as_mut().is_none_or(|e| !e.is_running()) {
            let epmd = find_program("epmd", "erlang-base")?;
            let mut cmd = Command::new(epmd);
            cmd.args([
                "-port",
                &self.epmd_port.to_string(),
                "-address",
                "127.0.0.1",
            ]);
            self.epmd = Some(Supervised::spawn("epmd", cmd, &self.dir.join("epmd.log"))?);
        }
        let conf = self.dir.join("rabbitmq.conf");
        let settings = format!(
            "listeners.tcp.default = {}\n\
             loopback_users = none\n\
             disk_free_limit.absolute = 50MB\n\
             vm_memory_high_watermark.relative = 0.2\n\
             log.console = true\n\
             log.file = false\n",
            self.addr
        );
        std::fs::write(&conf, settings).map_err(|e| Error::io(&conf, e))?;
        let plugins = self.dir.join("enabled_plugins");
        std::fs::write(&plugins, "[].\n").map_err(|e| Error::io(&plugins, e))?;
        for sub in ["mnesia", "log"] {
            create_dir(&self.dir.join(sub))?;
        }
        let env_file = self.dir.join("rabbitmq-env.conf");
        std::fs::write(&env_file, "").map_err(|e| Error::io(&env_file, e))?;
        // The distribution port is picked free and released before the node
        // binds it, so another process can take it in between (seen once
        // in CI with tests starting servers in parallel). It is internal
        // to the node: pick another and try again.
        for attempt in 1..=3 {
            match self.launch_node(&server, &env_file, &plugins).await {
                Err(e) if attempt < 3 && e.to_string().contains("dist_port_already_used") => {
                    tracing::warn!(
                        port = self.dist_port,
                        "rabbitmq's distribution port was taken; retrying"
                    );
                    self.dist_port = free_port(IpAddr::from([127, 0, 0, 1]))?;
                }
                other => return other,
            }
        }
        Ok(())
    }

    async fn launch_node(&mut self, server: &Path, env_file: &Path, plugins: &Path) -> Result<()> {
        let mut cmd = Command::new(server);
        cmd.env("HOME", &self.dir)
            .env("RUNNING_UNDER_SYSTEMD", "true")
            .env("RABBITMQ_NODENAME", self.node_name())
            .env("RABBITMQ_NODE_IP_ADDRESS", self.addr.ip().to_string())
            .env("RABBITMQ_NODE_PORT", self.addr.port().to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_CONF_ENV_FILE", env_file)
            .env("RABBITMQ_CONFIG_FILE", self.dir.join("rabbitmq"))
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", plugins)
            .env("RABBITMQ_PID_FILE", self.dir.join("rabbitmq.pid"))
            .env(
                "RABBITMQ_FEATURE_FLAGS_FILE",
                self.dir.join("feature_flags"),
            )
            .env("ERL_CRASH_DUMP", self.dir.join("erl_crash.dump"))
            .current_dir(&self.dir);
        let mut process = Supervised::spawn("rabbitmq", cmd, &self.dir.join("rabbitmq.log"))?;
        let addr = self.addr;
        wait_ready(&mut process, Duration::from_secs(60), || accepts_tcp(addr)).await?;
        self.process = Some(process);
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }
}

server!(RabbitMq, stop grace 30 s);

impl RabbitMq {
    /// The node's own epmd (the name server it registers with).
    pub fn epmd_pid(&self) -> Option<u32> {
        self.epmd.as_ref().and_then(Supervised::pid)
    }
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        // The node before its epmd.
        self.process.take();
        self.epmd.take();
    }
}
