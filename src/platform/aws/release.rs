//! The shop's release on AWS: `gameday up` packs the `shop-*` binaries it
//! was built with into a gzipped tarball (`bin/shop-<service>`), uploads it
//! to a bucket gameday owns for the stack and passes where it is to the
//! template (ReleaseBucket, ReleaseKey, ReleaseArtifactSha256). The
//! instance role may read that object, so replacement instances keep
//! booting for as long as the stack lives; `gameday down` deletes the
//! bucket after the stack.

use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufWriter, Read},
    path::{Path, PathBuf},
};

use aws_sdk_s3::{
    primitives::ByteStream,
    types::{BucketLocationConstraint, CreateBucketConfiguration, PublicAccessBlockConfiguration},
};
use sha2::{Digest, Sha256};

use super::{
    clients::AwsClients,
    errors::{Error, Result},
};
use crate::platform::{self, local::shop::SERVICES};

/// The template parameters a release fills.
pub const BUCKET_PARAMETER: &str = "ReleaseBucket";
pub const KEY_PARAMETER: &str = "ReleaseKey";
pub const SHA256_PARAMETER: &str = "ReleaseArtifactSha256";

/// A packed release: the tarball on disk (deleted when dropped) and its
/// SHA-256 in lowercase hex.
#[derive(Debug)]
pub struct Release {
    pub file: tempfile::NamedTempFile,
    pub sha256: String,
    pub bytes: u64,
}

impl Release {
    /// Where the release goes in its bucket (named by its content, so the
    /// same build is uploaded once).
    pub fn key(&self) -> String {
        format!("releases/gameday-shop-{}.tar.gz", self.sha256)
    }
}

/// The bucket gameday owns for `stack` (S3 names: 3 to 63 characters of
/// a-z 0-9 and hyphens).
pub fn bucket_name(account: &str, region: &str, stack: &str) -> String {
    let name: String = format!("gameday-{account}-{region}-{stack}")
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    name.trim_end_matches('-').to_string()
}

/// True when the scenario hosts the release itself (any of the release
/// parameters given): gameday then uploads nothing.
pub fn given_by_scenario(given: &BTreeMap<String, String>) -> bool {
    [BUCKET_PARAMETER, KEY_PARAMETER, SHA256_PARAMETER]
        .iter()
        .any(|p| given.contains_key(*p))
}

/// Stand-ins for the release's parameters, to check the others before
/// the release is packed and uploaded.
pub fn placeholders() -> [(String, String); 3] {
    [
        (BUCKET_PARAMETER.into(), "gameday-release".into()),
        (KEY_PARAMETER.into(), "releases/gameday-shop.tar.gz".into()),
        (SHA256_PARAMETER.into(), "0".repeat(64)),
    ]
}

/// Packs `bin_dir`'s `shop-<service>` binaries (each must be an x86_64
/// Linux executable: the instances run Debian 12 on x86_64).
pub fn pack(bin_dir: &Path) -> platform::Result<Release> {
    let refuse = |why: String| platform::Error::refused("the shop's release for aws", why);
    let binaries: Vec<(String, PathBuf)> = SERVICES
        .iter()
        .map(|s| (format!("bin/shop-{s}"), bin_dir.join(format!("shop-{s}"))))
        .collect();
    for (_, path) in &binaries {
        check_executable(path).map_err(refuse)?;
    }
    let io = |what: &str, e: std::io::Error| refuse(format!("{what}: {e}"));
    let file = tempfile::Builder::new()
        .prefix("gameday-shop-")
        .suffix(".tar.gz")
        .tempfile()
        .map_err(|e| io("a temporary file for the tarball", e))?;
    {
        let gz = flate2::write::GzEncoder::new(
            BufWriter::new(file.as_file()),
            flate2::Compression::fast(),
        );
        let mut tar = tar::Builder::new(gz);
        tar.mode(tar::HeaderMode::Deterministic);
        for (name, path) in &binaries {
            let mut f = File::open(path).map_err(|e| io(&path.display().to_string(), e))?;
            let mut header = tar::Header::new_gnu();
            header.set_size(f.metadata().map_err(|e| io(name, e))?.len());
            header.set_mode(0o755);
            header.set_cksum();
            tar.append_data(&mut header, name, &mut f)
                .map_err(|e| io(name, e))?;
        }
        tar.into_inner()
            .and_then(flate2::write::GzEncoder::finish)
            .and_then(|mut w| std::io::Write::flush(&mut w))
            .map_err(|e| io("writing the tarball", e))?;
    }
    let (sha256, bytes) = sha256_of(file.path()).map_err(|e| io("reading the tarball", e))?;
    Ok(Release {
        file,
        sha256,
        bytes,
    })
}

/// An x86_64 ELF executable, or why not.
fn check_executable(path: &Path) -> std::result::Result<(), String> {
    let mut head = [0u8; 20];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| {
            format!(
                "{} cannot be read ({e}); build the shop first (`cargo build --release \
                 --workspace --bins`) or set GAMEDAY_SHOP_BIN_DIR to where its binaries are",
                path.display()
            )
        })?;
    // e_machine (offset 18, little-endian) 0x3E is x86-64.
    if &head[..4] != b"\x7fELF" || head[18] != 0x3e || head[19] != 0 {
        return Err(format!(
            "{} is not an x86_64 Linux executable; the shop's instances run Debian 12 on x86_64",
            path.display()
        ));
    }
    Ok(())
}

fn sha256_of(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut f, &mut hasher)?;
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((hex, bytes))
}

impl AwsClients {
    /// Uploads `release` to `bucket`, creating the bucket (tagged with the
    /// stack, public access blocked) unless this account already has it.
    pub async fn publish_release(
        &self,
        bucket: &str,
        stack: &str,
        release: &Release,
    ) -> Result<()> {
        self.ensure_bucket(bucket, stack).await?;
        const OP: &str = "PutObject";
        let body = ByteStream::from_path(release.file.path())
            .await
            .map_err(|e| Error::unexpected(OP, format!("reading the tarball: {e}")))?;
        self.s3
            .put_object()
            .bucket(bucket)
            .key(release.key())
            .content_type("application/gzip")
            .body(body)
            .send()
            .await
            .map_err(|e| self.error(OP, e))?;
        Ok(())
    }

    async fn ensure_bucket(&self, bucket: &str, stack: &str) -> Result<()> {
        if self.bucket_exists(bucket).await? {
            return Ok(());
        }
        const OP: &str = "CreateBucket";
        let mut create = self.s3.create_bucket().bucket(bucket);
        // us-east-1 is the one region that takes no location constraint.
        if self.region() != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.region()))
                    .build(),
            );
        }
        create.send().await.map_err(|e| self.error(OP, e))?;
        self.s3
            .put_public_access_block()
            .bucket(bucket)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.error("PutPublicAccessBlock", e))?;
        let tag = |k: &str, v: &str| aws_sdk_s3::types::Tag::builder().key(k).value(v).build();
        let tagging = aws_sdk_s3::types::Tagging::builder()
            .tag_set(tag("gameday:created-by", "gameday").map_err(|e| self.built(e))?)
            .tag_set(tag("gameday:stack", stack).map_err(|e| self.built(e))?)
            .build()
            .map_err(|e| self.built(e))?;
        self.s3
            .put_bucket_tagging()
            .bucket(bucket)
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| self.error("PutBucketTagging", e))?;
        Ok(())
    }

    fn built(&self, e: aws_sdk_s3::error::BuildError) -> Error {
        Error::unexpected("PutBucketTagging", e.to_string())
    }

    /// Whether this account has `bucket` (HeadBucket: 404 is no).
    pub async fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        match self.s3.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
            Err(e) => Err(self.error("HeadBucket", e)),
        }
    }

    /// The keys in `bucket`.
    pub async fn release_keys(&self, bucket: &str) -> Result<Vec<String>> {
        const OP: &str = "ListObjectsV2";
        let mut keys = Vec::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error(OP, e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
        }
        Ok(keys)
    }

    /// Empties and deletes `bucket`; false when it did not exist.
    pub async fn delete_release_bucket(&self, bucket: &str) -> Result<bool> {
        if !self.bucket_exists(bucket).await? {
            return Ok(false);
        }
        for key in self.release_keys(bucket).await? {
            self.s3
                .delete_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| self.error("DeleteObject", e))?;
        }
        self.s3
            .delete_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| self.error("DeleteBucket", e))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_name_is_a_valid_s3_name_of_the_account_region_and_stack() {
        assert_eq!(
            bucket_name("123456789012", "eu-west-1", "Shop_Game.Day"),
            "gameday-123456789012-eu-west-1-shop-game-day"
        );
        let long = bucket_name("123456789012", "ap-southeast-2", &"x".repeat(80));
        assert_eq!(long.len(), 63);
        let trailing = bucket_name("123456789012", "us-east-1", &format!("{}-", "a".repeat(33)));
        assert!(!trailing.ends_with('-'), "{trailing}");
    }

    #[test]
    fn pack_refuses_what_is_not_an_x86_64_linux_executable_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let e = pack(dir.path()).unwrap_err().to_string();
        assert!(e.contains("shop-web cannot be read"), "{e}");
        assert!(e.contains("GAMEDAY_SHOP_BIN_DIR"), "{e}");
        for s in SERVICES {
            std::fs::write(
                dir.path().join(format!("shop-{s}")),
                b"#!/bin/sh\necho not elf\n",
            )
            .unwrap();
        }
        let e = pack(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is not an x86_64 Linux executable"), "{e}");
    }

    /// The tarball holds bin/shop-<service> for every service, executable,
    /// byte for byte, and its SHA-256 is the file's.
    #[test]
    fn pack_makes_a_tarball_of_the_six_binaries_with_its_sha256() {
        let dir = tempfile::tempdir().unwrap();
        // Any x86_64 ELF will do: this machine's `true` is one.
        let me = std::fs::read("/usr/bin/true").unwrap();
        for (i, s) in SERVICES.iter().enumerate() {
            let mut bytes = me.clone();
            bytes.extend_from_slice(s.as_bytes());
            bytes.push(i as u8);
            std::fs::write(dir.path().join(format!("shop-{s}")), bytes).unwrap();
        }
        let release = pack(dir.path()).unwrap();
        assert_eq!(release.sha256.len(), 64);
        assert!(
            release
                .key()
                .ends_with(&format!("{}.tar.gz", release.sha256))
        );
        let out = std::process::Command::new("sha256sum")
            .arg(release.file.path())
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(&release.sha256));
        let unpacked = tempfile::tempdir().unwrap();
        let tar = std::process::Command::new("tar")
            .arg("-xzf")
            .arg(release.file.path())
            .arg("-C")
            .arg(unpacked.path())
            .status()
            .unwrap();
        assert!(tar.success());
        for s in SERVICES {
            let path = unpacked.path().join(format!("bin/shop-{s}"));
            assert_eq!(
                std::fs::read(&path).unwrap(),
                std::fs::read(dir.path().join(format!("shop-{s}"))).unwrap(),
                "{s}"
            );
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o755
            );
        }
    }
}
