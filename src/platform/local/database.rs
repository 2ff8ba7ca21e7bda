//! The shop's database as a MariaDB primary and standby: GTID replication,
//! semi-synchronous (AFTER_SYNC), so a write the primary acknowledged is
//! already on the standby. Failover kills the primary, lets the standby apply
//! everything it received, promotes it (replication stopped, writable) and
//! points the writer file at it; a new standby can then be rebuilt from the
//! new primary's binary log.
//!
//! The writer file holds the primary's `host:port`. The shop reads it at
//! start and again every 50 ms (`mysql_writer_file`), as clients of a
//! managed database re-resolve the DNS name that moves on failover: new
//! connections go to the new primary, old ones are closed. Nothing proxies
//! the queries, so the balancer's cost is the shop's HTTP traffic alone.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use sqlx::{Row, mysql::MySqlConnection};

use super::errors::{Error, Result};
use super::infra::{ADMIN_USER, MariaDb, MariaDbOptions, Server};
use crate::events::{EventKind, EventLog};

pub struct DatabasePair {
    pub primary: MariaDb,
    pub standby: Option<MariaDb>,
    dir: PathBuf,
    ip: IpAddr,
    next_server_id: u32,
}

/// Writes the writer file (`host:port`) atomically: a reader sees the old
/// address or the new one, never half of it.
pub fn point_writer(file: &Path, addr: SocketAddr) -> Result<()> {
    let tmp = file.with_extension("new");
    std::fs::write(&tmp, format!("{addr}\n")).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, file).map_err(|e| Error::io(file, e))
}

/// The address the writer file names.
pub fn read_writer(file: &Path) -> Result<SocketAddr> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    text.trim().parse().map_err(|_| Error::BadWriterFile {
        path: file.to_path_buf(),
        found: text.trim().to_string(),
    })
}

/// How long each step of a failover took, in milliseconds from the kill.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FailoverReport {
    pub old_primary: String,
    pub new_primary: String,
    pub promoted_ms: u64,
    pub writer_moved_ms: u64,
    pub standby_rebuilt_ms: Option<u64>,
}

fn server_options(dir: &std::path::Path, ip: IpAddr, id: u32) -> MariaDbOptions {
    MariaDbOptions {
        dir: dir.join(format!("mariadb-{id}")),
        ip,
        port: None,
        server_id: id,
        replication: true,
    }
}

impl DatabasePair {
    pub async fn start(dir: PathBuf, ip: IpAddr) -> Result<Self> {
        let (primary, standby) = tokio::join!(
            MariaDb::start(server_options(&dir, ip, 1)),
            MariaDb::start(server_options(&dir, ip, 2))
        );
        let (primary, standby) = (primary?, standby?);
        replicate_from(&standby, &primary).await?;
        wait_semi_sync(&primary).await?;
        Ok(Self {
            primary,
            standby: Some(standby),
            dir,
            ip,
            next_server_id: 3,
        })
    }

    pub fn primary_name(&self) -> String {
        format!("mariadb-{}", self.primary.options.server_id)
    }

    pub fn standby_name(&self) -> Option<String> {
        self.standby
            .as_ref()
            .map(|s| format!("mariadb-{}", s.options.server_id))
    }

    /// Kills the primary, promotes the standby and points `writer_file` at it.
    pub async fn failover(
        &mut self,
        writer_file: &Path,
        events: &EventLog,
        rebuild: bool,
    ) -> Result<FailoverReport> {
        let Some(standby) = self.standby.take() else {
            return Err(Error::Failover("there is no standby to promote"));
        };
        let old_primary = self.primary_name();
        let new_primary = format!("mariadb-{}", standby.options.server_id);
        let started = std::time::Instant::now();
        self.primary.kill();
        events.emit(EventKind::DbPrimaryKilled {
            server: old_primary.clone(),
        });

        let promoted = async {
            let mut conn = standby.admin().await?;
            sqlx::query("STOP SLAVE IO_THREAD")
                .execute(&mut conn)
                .await?;
            wait_relay_log_applied(&mut conn).await?;
            for statement in [
                "STOP SLAVE",
                "RESET SLAVE ALL",
                "SET GLOBAL read_only = OFF",
            ] {
                sqlx::query(statement).execute(&mut conn).await?;
            }
            Ok::<_, Error>(())
        }
        .await;
        if let Err(e) = promoted {
            self.standby = Some(standby);
            return Err(e);
        }
        let promoted_ms = started.elapsed().as_millis() as u64;
        events.emit(EventKind::DbStandbyPromoted {
            server: new_primary.clone(),
            after_ms: Some(promoted_ms),
        });

        point_writer(writer_file, standby.addr)?;
        let writer_moved_ms = started.elapsed().as_millis() as u64;
        events.emit(EventKind::DbWriterMoved {
            to: new_primary.clone(),
            address: Some(standby.addr.to_string()),
            after_ms: Some(writer_moved_ms),
        });

        let mut old = std::mem::replace(&mut self.primary, standby);
        old.kill();
        let mut report = FailoverReport {
            old_primary,
            new_primary,
            promoted_ms,
            writer_moved_ms,
            standby_rebuilt_ms: None,
        };
        if rebuild {
            self.rebuild_standby(events).await?;
            report.standby_rebuilt_ms = Some(started.elapsed().as_millis() as u64);
        }
        Ok(report)
    }

    /// Starts a fresh server replicating from the current primary.
    pub async fn rebuild_standby(&mut self, events: &EventLog) -> Result<()> {
        let id = self.next_server_id;
        self.next_server_id += 1;
        let standby = MariaDb::start(server_options(&self.dir, self.ip, id)).await?;
        replicate_from(&standby, &self.primary).await?;
        wait_semi_sync(&self.primary).await?;
        events.emit(EventKind::DbStandbyRebuilt {
            server: format!("mariadb-{id}"),
        });
        self.standby = Some(standby);
        Ok(())
    }

    pub fn kill_all(&mut self) {
        self.primary.kill();
        if let Some(s) = self.standby.as_mut() {
            s.kill();
        }
    }
}

async fn replicate_from(replica: &MariaDb, source: &MariaDb) -> Result<()> {
    let mut conn = replica.admin().await?;
    let (user, password) = ADMIN_USER;
    let change = format!(
        "CHANGE MASTER TO MASTER_HOST='{}', MASTER_PORT={}, MASTER_USER='{user}', MASTER_PASSWORD='{password}', \
         MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
        source.addr.ip(),
        source.addr.port()
    );
    for statement in [change.as_str(), "START SLAVE", "SET GLOBAL read_only = ON"] {
        sqlx::query(statement).execute(&mut conn).await?;
    }
    Ok(())
}

/// Waits until the primary has a semi-synchronous replica attached.
async fn wait_semi_sync(primary: &MariaDb) -> Result<()> {
    let mut conn = primary.admin().await?;
    for _ in 0..200 {
        let row = sqlx::query("SHOW STATUS LIKE 'Rpl_semi_sync_master_clients'")
            .fetch_optional(&mut conn)
            .await?;
        let clients: String = row
            .map(|r| r.try_get::<String, _>(1).unwrap_or_default())
            .unwrap_or_default();
        if clients.trim().parse::<u32>().unwrap_or(0) >= 1 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(Error::Failover(
        "the standby did not attach as a semi-synchronous replica in 10 s",
    ))
}

/// Waits until the SQL thread has applied every event the IO thread received.
async fn wait_relay_log_applied(conn: &mut MySqlConnection) -> Result<()> {
    for _ in 0..400 {
        let row = sqlx::query("SHOW SLAVE STATUS")
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else { return Ok(()) };
        let read: u64 = row.try_get("Read_Master_Log_Pos").unwrap_or(0);
        let exec: u64 = row.try_get("Exec_Master_Log_Pos").unwrap_or(0);
        let read_file: String = row.try_get("Master_Log_File").unwrap_or_default();
        let exec_file: String = row.try_get("Relay_Master_Log_File").unwrap_or_default();
        if read == exec && read_file == exec_file {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(Error::Failover(
        "the standby did not finish applying its relay log in 10 s",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_file_is_replaced_whole_and_read_back_as_an_address() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("writer");
        let first: SocketAddr = "127.0.0.1:3306".parse().unwrap();
        let second: SocketAddr = "127.0.0.1:3307".parse().unwrap();
        point_writer(&file, first).unwrap();
        assert_eq!(read_writer(&file).unwrap(), first);
        point_writer(&file, second).unwrap();
        assert_eq!(read_writer(&file).unwrap(), second);
        assert!(!file.with_extension("new").exists(), "no temporary left");
        std::fs::write(&file, "nonsense").unwrap();
        let err = read_writer(&file).unwrap_err().to_string();
        assert!(err.contains("expected host:port"), "{err}");
    }
}
