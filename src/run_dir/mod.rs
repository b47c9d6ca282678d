//! The run directory (the baton): one folder handed from job to job.
//!
//! Every file but `manifest.json` is listed in the manifest with its sha256;
//! opening a run checks them all and refuses (exit 2, naming the file) on a
//! missing or changed one. Every write is atomic (temp file, fsync, rename)
//! and passes the redaction function, so no artifact can carry a secret.

pub mod manifest;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::bad_input;
use manifest::Manifest;

pub const MANIFEST: &str = "manifest.json";

pub struct RunDir {
    path: PathBuf,
    pub manifest: Manifest,
}

impl RunDir {
    /// Creates a new run directory. An existing non-empty directory is refused
    /// so that an earlier run is never overwritten.
    pub fn create(path: &Path, manifest: Manifest) -> anyhow::Result<Self> {
        if path.join(MANIFEST).exists() {
            return Err(bad_input!(
                "{} already holds a run; pass a new --run-dir or continue it with `baton phase`",
                path.display()
            ));
        }
        fs::create_dir_all(path)
            .with_context(|| format!("cannot create run directory {}", path.display()))?;
        let mut run = Self {
            path: path.to_owned(),
            manifest,
        };
        run.save()?;
        Ok(run)
    }

    /// Opens a run and checks every artifact against its recorded sha256.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let manifest_path = path.join(MANIFEST);
        let text = fs::read_to_string(&manifest_path).map_err(|error| {
            bad_input!(
                "{} is not a baton run directory ({}: {error}); pass the directory intake created with --run-dir",
                path.display(),
                manifest_path.display()
            )
        })?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|error| {
            bad_input!(
                "{} is not a valid run manifest: {error}",
                manifest_path.display()
            )
        })?;
        if manifest.schema != manifest::SCHEMA {
            return Err(bad_input!(
                "{} has schema `{}`; this baton reads `{}`",
                manifest_path.display(),
                manifest.schema,
                manifest::SCHEMA
            ));
        }
        for (relative, expected) in &manifest.artifacts {
            let file = path.join(relative);
            let bytes = fs::read(&file).map_err(|_| {
                bad_input!(
                    "run directory {} is missing artifact {relative} (listed in manifest.json); restore the run directory as the previous phase uploaded it",
                    path.display()
                )
            })?;
            if sha256_hex(&bytes) != *expected {
                return Err(bad_input!(
                    "artifact {} does not match its sha256 in manifest.json: it was changed after baton wrote it; refusing to run on a tampered run directory",
                    file.display()
                ));
            }
        }
        Ok(Self {
            path: path.to_owned(),
            manifest,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes an artifact (redacted, atomically) and records its hash.
    /// The manifest itself is saved by `save`.
    pub fn write(&mut self, relative: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let safe = match std::str::from_utf8(bytes) {
            Ok(text) => crate::secrets::redact(text).into_owned().into_bytes(),
            Err(_) => bytes.to_vec(),
        };
        write_atomic(&self.path.join(relative), &safe)?;
        self.manifest
            .artifacts
            .insert(relative.to_owned(), sha256_hex(&safe));
        Ok(())
    }

    /// Writes a patch, redacted so that it still applies (see
    /// `Redactor::redact_patch`), and records its hash.
    pub fn write_patch(&mut self, relative: &str, patch: &str) -> anyhow::Result<()> {
        let safe = crate::secrets::global().redact_patch(patch);
        write_atomic(&self.path.join(relative), safe.as_bytes())?;
        self.manifest
            .artifacts
            .insert(relative.to_owned(), sha256_hex(safe.as_bytes()));
        Ok(())
    }

    pub fn write_text(&mut self, relative: &str, text: &str) -> anyhow::Result<()> {
        self.write(relative, text.as_bytes())
    }

    pub fn write_json<T: Serialize>(&mut self, relative: &str, value: &T) -> anyhow::Result<()> {
        let mut text = serde_json::to_string_pretty(value)?;
        text.push('\n');
        self.write(relative, text.as_bytes())
    }

    /// Reads an artifact listed in the manifest; `None` if it was never written.
    pub fn read(&self, relative: &str) -> anyhow::Result<Option<Vec<u8>>> {
        if !self.manifest.artifacts.contains_key(relative) {
            return Ok(None);
        }
        let file = self.path.join(relative);
        let bytes = fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        Ok(Some(bytes))
    }

    pub fn read_text(&self, relative: &str) -> anyhow::Result<Option<String>> {
        self.read(relative)?
            .map(|bytes| {
                String::from_utf8(bytes).map_err(|_| {
                    bad_input!("{} is not UTF-8 text", self.path.join(relative).display())
                })
            })
            .transpose()
    }

    pub fn read_json<T: DeserializeOwned>(&self, relative: &str) -> anyhow::Result<Option<T>> {
        self.read(relative)?
            .map(|bytes| {
                serde_json::from_slice(&bytes).map_err(|error| {
                    bad_input!(
                        "{} is not what baton wrote: {error}",
                        self.path.join(relative).display()
                    )
                })
            })
            .transpose()
    }

    /// Appends a line to a JSONL artifact (transcripts), keeping its hash current.
    pub fn append_line(&mut self, relative: &str, line: &str) -> anyhow::Result<()> {
        let mut bytes = self.read(relative)?.unwrap_or_default();
        bytes.extend_from_slice(crate::secrets::redact(line).as_bytes());
        bytes.push(b'\n');
        write_atomic(&self.path.join(relative), &bytes)?;
        self.manifest
            .artifacts
            .insert(relative.to_owned(), sha256_hex(&bytes));
        Ok(())
    }

    pub fn save(&mut self) -> anyhow::Result<()> {
        self.manifest.refresh_spent();
        let mut text = serde_json::to_string_pretty(&self.manifest)?;
        text.push('\n');
        let text = crate::secrets::redact(&text).into_owned();
        write_atomic(&self.path.join(MANIFEST), text.as_bytes())
    }

    pub fn sha256_of(&self, relative: &str) -> Option<&str> {
        self.manifest.artifacts.get(relative).map(String::as_str)
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::pipeline::hex(&Sha256::digest(bytes))
}

/// Write-to-temp, fsync, rename: a reader sees the old file or the new one,
/// never half of one, even if the job is killed mid-write.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let parent = path.parent().unwrap_or_else(|| Path::new("."));
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let mut temporary = tempfile::NamedTempFile::new_in(parent)
        .with_context(|| format!("cannot create a temporary file in {}", parent.display()))?;
    temporary.write_all(bytes)?;
    temporary.as_file().sync_all()?;
    temporary
        .persist(path)
        .map_err(|error| anyhow::anyhow!("cannot write {}: {}", path.display(), error.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Route;

    #[test]
    fn tampering_and_missing_files_are_refused_by_name() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("run");
        let mut run = RunDir::create(&path, Manifest::for_tests(Route::Chore)).unwrap();
        run.write_text("plan.md", "# Plan\n").unwrap();
        run.save().unwrap();
        assert!(RunDir::open(&path).is_ok());

        fs::write(path.join("plan.md"), "# Plan, edited\n").unwrap();
        let error = RunDir::open(&path).err().unwrap();
        assert!(error.to_string().contains("plan.md"), "{error}");
        assert_eq!(
            crate::error::classify(&error),
            crate::error::ExitStatus::BadInput
        );

        fs::remove_file(path.join("plan.md")).unwrap();
        let error = RunDir::open(&path).err().unwrap();
        assert!(
            error.to_string().contains("missing artifact plan.md"),
            "{error}"
        );
    }

    #[test]
    fn an_existing_run_is_never_overwritten() {
        let directory = tempfile::tempdir().unwrap();
        RunDir::create(directory.path(), Manifest::for_tests(Route::Chore)).unwrap();
        assert!(RunDir::create(directory.path(), Manifest::for_tests(Route::Chore)).is_err());
    }
}
