//! The run directory (the baton): one folder handed from job to job.
//!
//! Every file but `manifest.json` is listed in the manifest with its sha256;
//! opening a run checks them all and refuses (exit 2, naming the file) on a
//! missing or changed one. Every write is atomic (temp file, fsync, rename)
//! and passes the redaction function, so no artifact can carry a secret.
//! The manifest, the evidence and the transcripts name files relative to the
//! repository or the run directory, never by a machine's absolute path.
//!
//! One process writes a run at a time: `open_for_write` takes an advisory
//! lock that the kernel releases when the process dies, so a killed runner
//! never leaves a run stuck, and a second writer exits 2 naming the holder.

pub mod artifact;
pub mod manifest;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use anyhow::Context;
use regex::Regex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bad_input;
pub use crate::digest::sha256_hex;
pub use artifact::MANIFEST;
use manifest::Manifest;

pub struct RunDir {
    path: PathBuf,
    pub manifest: Manifest,
    /// Held for as long as this value lives; `None` for read-only opens.
    lock: Option<fs::File>,
    /// Directories whose absolute paths are written relative (repository first).
    roots: Vec<PathBuf>,
    /// Artifacts appended to since the last `save`, whose hashes are due.
    appended: BTreeSet<String>,
}

impl RunDir {
    /// Creates a new run directory. An existing non-empty directory is refused
    /// so that an earlier run is never overwritten.
    pub fn create(path: &Path, manifest: Manifest) -> anyhow::Result<Self> {
        fs::create_dir_all(path)
            .with_context(|| format!("cannot create run directory {}", path.display()))?;
        let lock = lock(path)?;
        if path.join(MANIFEST).exists() {
            return Err(bad_input!(
                "{} already holds a run; pass a new --run-dir or continue it with `baton phase`",
                path.display()
            ));
        }
        let mut run = Self {
            path: path.to_owned(),
            manifest,
            lock: Some(lock),
            roots: vec![path.to_owned()],
            appended: BTreeSet::new(),
        };
        run.save()?;
        Ok(run)
    }

    /// Opens a run to change it: takes the run's lock first (exit 2 naming
    /// the holder's pid when another process has it), then checks it.
    pub fn open_for_write(path: &Path) -> anyhow::Result<Self> {
        if !path.join(MANIFEST).is_file() {
            // Not a run: say so before leaving a lock file behind.
            return Self::open(path);
        }
        let lock = lock(path)?;
        let mut run = Self::open(path)?;
        run.lock = Some(lock);
        Ok(run)
    }

    /// Whether this value holds the run's lock.
    pub fn is_locked(&self) -> bool {
        self.lock.is_some()
    }

    /// Names `directory` (the repository) relative in what this run writes.
    pub fn relative_to(&mut self, directory: &Path) {
        self.roots.insert(0, directory.to_owned());
        if let Ok(canonical) = directory.canonicalize() {
            self.roots.insert(0, canonical);
        }
    }

    /// Opens a run read-only and checks every artifact against its sha256.
    /// A locked run can be read (`status`): writes are atomic renames.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let manifest = read_manifest(path)?;
        let manifest_path = path.join(MANIFEST);
        for (relative, expected) in &manifest.artifacts {
            if !is_artifact_name(relative) {
                return Err(bad_input!(
                    "{} lists artifact `{relative}`, which is not a path inside the run directory; refusing to run on a tampered run directory",
                    manifest_path.display()
                ));
            }
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
        let mut roots = vec![path.to_owned()];
        if let Ok(canonical) = path.canonicalize() {
            roots.insert(0, canonical);
        }
        Ok(Self {
            path: path.to_owned(),
            manifest,
            lock: None,
            roots,
            appended: BTreeSet::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes an artifact (redacted, atomically) and records its hash.
    /// The manifest itself is saved by `save`.
    pub fn write(&mut self, relative: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let safe = match std::str::from_utf8(bytes) {
            Ok(text) if names_no_machine_paths(relative) => {
                self.portable(&crate::secrets::redact(text)).into_bytes()
            }
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

    /// Appends one line to a JSONL artifact (transcripts): one write per
    /// line, flushed to disk; its hash is brought up to date by `save`.
    pub fn append_line(&mut self, relative: &str, line: &str) -> anyhow::Result<()> {
        let file = self.path.join(relative);
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut text = self.portable(&crate::secrets::redact(line));
        text.push('\n');
        let mut handle = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .with_context(|| format!("cannot open {} to append", file.display()))?;
        handle
            .write_all(text.as_bytes())
            .and_then(|()| handle.sync_data())
            .with_context(|| format!("cannot append to {}", file.display()))?;
        self.appended.insert(relative.to_owned());
        Ok(())
    }

    /// Removes an artifact (a `--force` invalidated the phase that wrote it).
    pub fn remove(&mut self, relative: &str) -> anyhow::Result<()> {
        if self.manifest.artifacts.remove(relative).is_some() {
            let file = self.path.join(relative);
            if let Err(error) = fs::remove_file(&file)
                && error.kind() != std::io::ErrorKind::NotFound
            {
                return Err(error).with_context(|| format!("cannot remove {}", file.display()));
            }
        }
        Ok(())
    }

    /// Writes bytes baton wrote before (a patch snapshot) back unchanged.
    pub fn copy(&mut self, from: &str, to: &str) -> anyhow::Result<()> {
        let bytes = self
            .read(from)?
            .ok_or_else(|| bad_input!("{from} is missing from the run directory"))?;
        write_atomic(&self.path.join(to), &bytes)?;
        self.manifest
            .artifacts
            .insert(to.to_owned(), sha256_hex(&bytes));
        Ok(())
    }

    pub fn save(&mut self) -> anyhow::Result<()> {
        for relative in std::mem::take(&mut self.appended) {
            let file = self.path.join(&relative);
            let bytes =
                fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            self.manifest.artifacts.insert(relative, sha256_hex(&bytes));
        }
        self.manifest.refresh_spent();
        let mut text = serde_json::to_string_pretty(&self.manifest)?;
        text.push('\n');
        let text = self.portable(&crate::secrets::redact(&text));
        write_atomic(&self.path.join(MANIFEST), text.as_bytes())
    }

    /// `text` with the run directory's and the repository's absolute paths
    /// made relative, and any other absolute path cut to `…/<file name>`.
    pub fn portable(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for root in &self.roots {
            let Some(root) = root.to_str().filter(|root| root.starts_with('/')) else {
                continue;
            };
            text = text.replace(&format!("{root}/"), "").replace(root, ".");
        }
        ABSOLUTE_PATH
            .replace_all(&text, |captures: &regex::Captures<'_>| {
                let name = captures[2].rsplit('/').next().unwrap_or_default();
                format!("{}…/{name}", &captures[1])
            })
            .into_owned()
    }

    pub fn sha256_of(&self, relative: &str) -> Option<&str> {
        self.manifest.artifacts.get(relative).map(String::as_str)
    }
}

/// The manifest alone, parsed and its schema checked, without hashing the
/// artifacts: for what only needs to know how the run stands (the driver's
/// next step, step outputs, the pinned config before the phase opens the
/// run under its lock and checks everything).
pub fn read_manifest(path: &Path) -> anyhow::Result<Manifest> {
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
    Ok(manifest)
}

/// An absolute path of two or more components, not inside a URL (a URL's
/// path follows its host, so the character before the slash is a letter).
/// In JSON text a line break is the two characters `\n`: a path at the start
/// of a line of tool output follows those.
static ABSOLUTE_PATH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(^|[\s\x22'`(\[=,:<]|\\[nrt])(/[\w.@+~-]+(?:/[\w.@+~-]+)+)").unwrap_or_else(|_| {
        // A literal pattern: it compiles; an impossible one keeps the type total.
        Regex::new("$^").unwrap_or_else(|_| unreachable!())
    })
});

/// A name an artifact may have: relative, inside the run directory, made of
/// plain components (no `..`, no absolute path), and not the manifest or lock.
fn is_artifact_name(relative: &str) -> bool {
    !relative.is_empty()
        && relative != MANIFEST
        && relative != artifact::LOCK
        && Path::new(relative)
            .components()
            .all(|component| matches!(component, std::path::Component::Normal(_)))
}

/// The artifacts that must not carry machine paths. Gate logs and patches
/// keep their text as the tools wrote it: repair reads them.
fn names_no_machine_paths(relative: &str) -> bool {
    relative.starts_with("transcripts/")
        || relative == artifact::EVIDENCE
        || relative == artifact::EVIDENCE_MARKDOWN
}

/// The pid of the process that holds the run's lock, if one does. Asking
/// takes the lock for a moment when it is free; nothing is written.
pub fn lock_holder(path: &Path) -> Option<String> {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path.join(artifact::LOCK))
        .ok()?;
    match file.try_lock() {
        Err(fs::TryLockError::WouldBlock) => Some(
            fs::read_to_string(path.join(artifact::LOCK))
                .map(|pid| pid.trim().to_owned())
                .unwrap_or_default(),
        ),
        _ => None,
    }
}

/// Takes the run's advisory lock, writing our pid into the lock file for
/// whoever finds it taken.
fn lock(path: &Path) -> anyhow::Result<fs::File> {
    let lock_path = path.join(artifact::LOCK);
    // A lock that is a symlink or a directory was put there by someone
    // else: following it would write outside the run directory.
    if let Ok(metadata) = fs::symlink_metadata(&lock_path)
        && !metadata.file_type().is_file()
    {
        return Err(bad_input!(
            "{} is not a plain file; remove it (it holds only the pid of the run's writer) and run again",
            lock_path.display()
        ));
    }
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .map_err(|error| {
            bad_input!(
                "cannot open the run's lock {}: {error}",
                lock_path.display()
            )
        })?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(&lock_path).unwrap_or_default();
            let run_id = fs::read_to_string(path.join(MANIFEST))
                .ok()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .and_then(|manifest| manifest.get("run_id")?.as_str().map(str::to_owned))
                .unwrap_or_else(|| "being created".into());
            return Err(bad_input!(
                "run {run_id} in {} is busy: process {} holds its lock; wait for it to end (or stop it), then run again; `baton status` reads a busy run",
                path.display(),
                holder
                    .trim()
                    .parse::<u32>()
                    .map_or_else(|_| "(unknown pid)".to_owned(), |pid| pid.to_string())
            ));
        }
        Err(fs::TryLockError::Error(error)) => {
            return Err(error).with_context(|| format!("cannot lock the run {}", path.display()));
        }
    }
    file.set_len(0)?;
    write!(file, "{}", std::process::id())?;
    file.sync_data()?;
    Ok(file)
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
    use crate::types::Route;

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
    fn one_writer_at_a_time_and_readers_always() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("run");
        let run = RunDir::create(&path, Manifest::for_tests(Route::Chore)).unwrap();
        let error = RunDir::open_for_write(&path).err().unwrap();
        let message = error.to_string();
        assert!(
            message.contains("run-test") && message.contains(&std::process::id().to_string()),
            "{message}"
        );
        assert_eq!(
            crate::error::classify(&error),
            crate::error::ExitStatus::BadInput
        );
        assert!(RunDir::open(&path).is_ok());
        drop(run);
        assert!(RunDir::open_for_write(&path).is_ok());
    }

    #[test]
    fn artifact_names_outside_the_run_and_odd_locks_are_refused() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("run");
        let mut manifest = Manifest::for_tests(Route::Chore);
        let victim = directory.path().join("victim.txt");
        fs::write(&victim, "keep me").unwrap();
        manifest
            .artifacts
            .insert("gates/../../victim.txt".into(), sha256_hex(b"keep me"));
        drop(RunDir::create(&path, manifest).unwrap());
        let error = RunDir::open_for_write(&path).err().unwrap();
        assert!(
            error.to_string().contains("gates/../../victim.txt"),
            "{error}"
        );
        assert_eq!(
            crate::error::classify(&error),
            crate::error::ExitStatus::BadInput
        );
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");

        let path = directory.path().join("second");
        drop(RunDir::create(&path, Manifest::for_tests(Route::Chore)).unwrap());
        fs::remove_file(path.join(artifact::LOCK)).unwrap();
        std::os::unix::fs::symlink(&victim, path.join(artifact::LOCK)).unwrap();
        let error = RunDir::open_for_write(&path).err().unwrap();
        assert_eq!(
            crate::error::classify(&error),
            crate::error::ExitStatus::BadInput
        );
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
    }

    #[test]
    fn machine_paths_become_relative() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("run");
        let mut run = RunDir::create(&path, Manifest::for_tests(Route::Chore)).unwrap();
        run.relative_to(Path::new("/work/repo"));
        let text = format!(
            "cannot read /work/repo/src/lib.rs, {}/plan.json and /tmp/.tmpXyz/script.json: see https://example.com/a/b",
            path.display()
        );
        assert_eq!(
            run.portable(&text),
            "cannot read src/lib.rs, plan.json and …/script.json: see https://example.com/a/b"
        );
        assert_eq!(
            run.portable(r#"{"output":"/usr/share/doc\nPATH=/root/.cargo/bin:/usr/bin file:/etc/x/y </opt/a/b>"}"#),
            r#"{"output":"…/doc\nPATH=…/bin:…/bin file:…/y <…/b>"}"#
        );
    }

    #[test]
    fn appended_lines_are_hashed_on_save() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("run");
        let mut run = RunDir::create(&path, Manifest::for_tests(Route::Chore)).unwrap();
        run.append_line("transcripts/spec-1.jsonl", "{\"turn\":0}")
            .unwrap();
        run.append_line("transcripts/spec-1.jsonl", "{\"turn\":1}")
            .unwrap();
        run.save().unwrap();
        drop(run);
        let run = RunDir::open(&path).unwrap();
        assert_eq!(
            run.read_text("transcripts/spec-1.jsonl").unwrap().unwrap(),
            "{\"turn\":0}\n{\"turn\":1}\n"
        );
    }

    #[test]
    fn an_existing_run_is_never_overwritten() {
        let directory = tempfile::tempdir().unwrap();
        drop(RunDir::create(directory.path(), Manifest::for_tests(Route::Chore)).unwrap());
        assert!(RunDir::create(directory.path(), Manifest::for_tests(Route::Chore)).is_err());
    }
}
