//! The agent's tools (SPEC §4), confined to one work tree.
//!
//! Every path is resolved against the work tree and refused if it leaves it:
//! `..`, absolute paths, and symlinks whose target is outside. A refusal is a
//! tool error the model sees, never a crash.

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde_json::{Value, json};

use super::command;
use crate::llm::ToolSpec;
use crate::sandbox::Sandbox;

/// Directories the listing and search tools do not descend into.
const SKIPPED_DIRECTORIES: &[&str] = &[".git", "target", "node_modules", ".baton"];
const MAX_LISTED: usize = 500;
const MAX_MATCHES: usize = 200;
const MAX_READ_BYTES: usize = 256 * 1024;

pub struct Workspace {
    root: PathBuf,
    command_timeout: Duration,
    output_limit: usize,
    environment: Vec<(String, String)>,
    /// When set, `write_file` and `edit_file` may only touch paths these
    /// globs match (the tests phase writes tests, nothing else).
    writable: Option<(globset::GlobSet, Vec<String>)>,
    /// Paths no write may touch (`[scope].deny`, the config file).
    forbidden: Option<globset::GlobSet>,
    /// Files written through `write_file` and `edit_file`: the change.
    /// New files that only commands produced (a build's output) are not.
    written: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// What confines the `run` tool's commands.
    sandbox: Sandbox,
}

/// What a tool call produced: text for the model, and whether it is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    pub content: String,
    pub is_error: bool,
}

impl ToolOutput {
    fn ok(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            is_error: false,
        }
    }

    fn error(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            is_error: true,
        }
    }
}

impl Workspace {
    pub fn new(
        root: &Path,
        command_timeout: Duration,
        output_limit: usize,
        environment: Vec<(String, String)>,
    ) -> anyhow::Result<Self> {
        let root = root.canonicalize()?;
        Ok(Self {
            root,
            command_timeout,
            output_limit,
            environment,
            writable: None,
            forbidden: None,
            written: std::sync::Mutex::default(),
            sandbox: Sandbox::unconfined(),
        })
    }

    /// Runs the `run` tool's commands in `sandbox`.
    #[must_use]
    pub fn sandboxed(mut self, sandbox: Sandbox) -> Self {
        self.sandbox = sandbox;
        self
    }

    /// Confines writes to paths `matcher` matches (`globs`, for messages).
    #[must_use]
    pub fn writable_only(mut self, matcher: globset::GlobSet, globs: Vec<String>) -> Self {
        self.writable = Some((matcher, globs));
        self
    }

    /// Refuses writes to paths `forbidden` matches, with a message the
    /// model can act on.
    #[must_use]
    pub fn forbidding(mut self, forbidden: globset::GlobSet) -> Self {
        self.forbidden = Some(forbidden);
        self
    }

    /// Whether a write to `path` (relative to the work tree) is allowed.
    fn may_write(&self, path: &str) -> Result<(), String> {
        let relative = path.trim_start_matches("./");
        if self
            .forbidden
            .as_ref()
            .is_some_and(|forbidden| forbidden.is_match(relative))
        {
            return Err(format!(
                "`{path}` is out of bounds for this run ([scope].deny or baton's own config); a change there would reject the whole run: leave it as it is"
            ));
        }
        match &self.writable {
            Some((set, globs)) if !set.is_match(path.trim_start_matches("./")) => Err(format!(
                "this phase writes only test files ({}); `{path}` is not one: leave the code under test as it is",
                globs.join(", ")
            )),
            _ => Ok(()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The files written with `write_file` and `edit_file` so far, relative
    /// to the work tree.
    pub fn written(&self) -> Vec<String> {
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    fn note_written(&self, full: &Path) {
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(self.display(full));
    }

    /// Resolves a model-supplied path inside the work tree, or says why not.
    pub fn confine(&self, requested: &str) -> Result<PathBuf, String> {
        let relative = Path::new(requested);
        if relative.is_absolute() {
            return Err(format!(
                "`{requested}` is an absolute path; use a path relative to the work tree"
            ));
        }
        if relative
            .components()
            .any(|component| matches!(component, Component::ParentDir))
        {
            return Err(format!(
                "`{requested}` leaves the work tree (`..` is not allowed)"
            ));
        }
        if relative
            .components()
            .any(|component| component.as_os_str() == ".git")
        {
            return Err(format!(
                "`{requested}` is inside .git, which the agent may not touch"
            ));
        }
        let joined = self.root.join(relative);
        // The deepest part that exists decides where the path really goes:
        // a symlinked directory anywhere on the way is resolved here.
        let mut existing = joined.as_path();
        let mut rest = Vec::new();
        while !existing.exists() && existing.symlink_metadata().is_err() {
            rest.push(existing.file_name().map(ToOwned::to_owned));
            existing = existing.parent().unwrap_or(&self.root);
        }
        let resolved = existing
            .canonicalize()
            .map_err(|_| format!("`{requested}` is a symlink that points nowhere; refused"))?;
        if !resolved.starts_with(&self.root) {
            return Err(format!(
                "`{requested}` resolves outside the work tree (through a symlink); refused"
            ));
        }
        let mut full = resolved;
        for part in rest.into_iter().rev().flatten() {
            full.push(part);
        }
        Ok(full)
    }

    fn display(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .to_string_lossy()
            .replace('\\', "/")
    }

    pub fn read_file(&self, path: &str) -> ToolOutput {
        let full = match self.confine(path) {
            Ok(full) => full,
            Err(message) => return ToolOutput::error(message),
        };
        match fs::read(&full) {
            Ok(bytes) if bytes.len() > MAX_READ_BYTES => ToolOutput::ok(format!(
                "{}\n[... file is {} bytes; only the first {MAX_READ_BYTES} are shown ...]",
                String::from_utf8_lossy(&bytes[..MAX_READ_BYTES]),
                bytes.len()
            )),
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => ToolOutput::ok(text),
                Err(_) => ToolOutput::error(format!("`{path}` is not a text file")),
            },
            Err(error) => ToolOutput::error(format!("cannot read `{path}`: {error}")),
        }
    }

    pub fn list_files(&self, path: &str) -> ToolOutput {
        let full = match self.confine(if path.is_empty() { "." } else { path }) {
            Ok(full) => full,
            Err(message) => return ToolOutput::error(message),
        };
        if !full.is_dir() {
            return ToolOutput::error(format!("`{path}` is not a directory"));
        }
        let mut files = Vec::new();
        let truncated = Self::walk(&full, &mut files, MAX_LISTED);
        let mut listing: Vec<String> = files.iter().map(|file| self.display(file)).collect();
        listing.sort();
        if truncated {
            listing.push(format!(
                "[... more than {MAX_LISTED} files; list a subdirectory ...]"
            ));
        }
        ToolOutput::ok(listing.join("\n"))
    }

    pub fn search(&self, pattern: &str, path: Option<&str>) -> ToolOutput {
        let regex = match Regex::new(pattern) {
            Ok(regex) => regex,
            Err(error) => return ToolOutput::error(format!("invalid regular expression: {error}")),
        };
        let full = match self.confine(path.unwrap_or(".")) {
            Ok(full) => full,
            Err(message) => return ToolOutput::error(message),
        };
        let mut files = Vec::new();
        if full.is_file() {
            files.push(full);
        } else {
            Self::walk(&full, &mut files, 10_000);
        }
        files.sort();
        let mut matches = Vec::new();
        'files: for file in files {
            let Ok(text) = fs::read_to_string(&file) else {
                continue;
            };
            for (number, line) in text.lines().enumerate() {
                if regex.is_match(line) {
                    if matches.len() == MAX_MATCHES {
                        matches.push(format!("[... stopped at {MAX_MATCHES} matches ...]"));
                        break 'files;
                    }
                    matches.push(format!(
                        "{}:{}: {}",
                        self.display(&file),
                        number + 1,
                        line.trim_end()
                    ));
                }
            }
        }
        if matches.is_empty() {
            ToolOutput::ok("no matches")
        } else {
            ToolOutput::ok(matches.join("\n"))
        }
    }

    pub fn write_file(&self, path: &str, content: &str) -> ToolOutput {
        let full = match self
            .confine(path)
            .and_then(|full| self.may_write(path).map(|()| full))
        {
            Ok(full) => full,
            Err(message) => return ToolOutput::error(message),
        };
        if full.is_dir() {
            return ToolOutput::error(format!("`{path}` is a directory"));
        }
        if let Some(parent) = full.parent()
            && let Err(error) = fs::create_dir_all(parent)
        {
            return ToolOutput::error(format!("cannot create the directory of `{path}`: {error}"));
        }
        match fs::write(&full, content) {
            Ok(()) => {
                self.note_written(&full);
                ToolOutput::ok(format!("wrote {} bytes to {path}", content.len()))
            }
            Err(error) => ToolOutput::error(format!("cannot write `{path}`: {error}")),
        }
    }

    pub fn edit_file(&self, path: &str, old: &str, new: &str) -> ToolOutput {
        let full = match self
            .confine(path)
            .and_then(|full| self.may_write(path).map(|()| full))
        {
            Ok(full) => full,
            Err(message) => return ToolOutput::error(message),
        };
        let Ok(text) = fs::read_to_string(&full) else {
            return ToolOutput::error(format!("cannot read `{path}`; create it with write_file"));
        };
        if old.is_empty() {
            return ToolOutput::error("`old` is empty; give the exact text to replace");
        }
        match text.matches(old).count() {
            0 => ToolOutput::error(format!(
                "`old` was not found in {path}; read the file and copy the text exactly"
            )),
            1 => match fs::write(&full, text.replacen(old, new, 1)) {
                Ok(()) => {
                    self.note_written(&full);
                    ToolOutput::ok(format!("edited {path}"))
                }
                Err(error) => ToolOutput::error(format!("cannot write `{path}`: {error}")),
            },
            count => ToolOutput::error(format!(
                "`old` matches {count} places in {path}; include more surrounding text so it matches once"
            )),
        }
    }

    pub async fn run(&self, command_line: &str) -> ToolOutput {
        match command::run(
            command_line,
            &self.root,
            self.command_timeout,
            self.output_limit,
            &self.environment,
            &self.sandbox,
        )
        .await
        {
            Ok(output) => {
                let status = output.status(self.command_timeout.as_secs());
                ToolOutput {
                    content: format!("[{status}]\n{}", output.output),
                    is_error: !output.succeeded(),
                }
            }
            Err(error) => ToolOutput::error(format!("cannot run the command: {error:#}")),
        }
    }

    /// Collects files below `directory`; true when it stopped at `limit`.
    fn walk(directory: &Path, files: &mut Vec<PathBuf>, limit: usize) -> bool {
        let Ok(entries) = fs::read_dir(directory) else {
            return false;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(fs::DirEntry::file_name);
        for entry in entries {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                let name = entry.file_name();
                if SKIPPED_DIRECTORIES.iter().any(|skipped| name == *skipped) {
                    continue;
                }
                if Self::walk(&path, files, limit) {
                    return true;
                }
            } else if kind.is_file() {
                if files.len() >= limit {
                    return true;
                }
                files.push(path);
            }
        }
        false
    }

    /// Runs one tool call by name; unknown tools and bad arguments are errors
    /// for the model.
    pub async fn call(&self, name: &str, arguments: &Value) -> ToolOutput {
        let field = |key: &str| arguments.get(key).and_then(Value::as_str);
        let missing =
            |key: &str| ToolOutput::error(format!("`{name}` needs a string field `{key}`"));
        match name {
            "read_file" => {
                field("path").map_or_else(|| missing("path"), |path| self.read_file(path))
            }
            "list_files" => self.list_files(field("path").unwrap_or(".")),
            "search" => match field("pattern") {
                Some(pattern) => self.search(pattern, field("path")),
                None => missing("pattern"),
            },
            "write_file" => match (field("path"), field("content")) {
                (Some(path), Some(content)) => self.write_file(path, content),
                (None, _) => missing("path"),
                (_, None) => missing("content"),
            },
            "edit_file" => match (field("path"), field("old"), field("new")) {
                (Some(path), Some(old), Some(new)) => self.edit_file(path, old, new),
                (None, _, _) => missing("path"),
                (_, None, _) => missing("old"),
                (_, _, None) => missing("new"),
            },
            "run" => match field("command") {
                Some(command_line) => self.run(command_line).await,
                None => missing("command"),
            },
            other => ToolOutput::error(format!("there is no tool `{other}`")),
        }
    }
}

fn spec(name: &str, description: &str, properties: &Value, required: &[&str]) -> ToolSpec {
    ToolSpec {
        name: name.into(),
        description: description.into(),
        input_schema: json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false}),
    }
}

/// Tools that only look.
pub fn read_only_specs() -> Vec<ToolSpec> {
    vec![
        spec(
            "read_file",
            "Read a text file of the work tree.",
            &json!({"path": {"type": "string"}}),
            &["path"],
        ),
        spec(
            "list_files",
            "List files below a directory of the work tree.",
            &json!({"path": {"type": "string"}}),
            &["path"],
        ),
        spec(
            "search",
            "Search file contents with a regular expression.",
            &json!({"pattern": {"type": "string"}, "path": {"type": "string"}}),
            &["pattern"],
        ),
    ]
}

/// Every tool of an agent phase, `finish` included.
pub fn agent_specs() -> Vec<ToolSpec> {
    let mut specs = read_only_specs();
    specs.extend([
        spec(
            "write_file",
            "Create or overwrite a file of the work tree.",
            &json!({"path": {"type": "string"}, "content": {"type": "string"}}),
            &["path", "content"],
        ),
        spec(
            "edit_file",
            "Replace one exact, unique occurrence of `old` with `new` in a file.",
            &json!({"path": {"type": "string"}, "old": {"type": "string"}, "new": {"type": "string"}}),
            &["path", "old", "new"],
        ),
        spec(
            "run",
            "Run a shell command in the work tree (timeout, output capped, no credentials).",
            &json!({"command": {"type": "string"}}),
            &["command"],
        ),
        spec(
            "finish",
            "End the phase with a summary of what you changed. CI, not you, decides whether it works.",
            &json!({"summary": {"type": "string", "minLength": 1}}),
            &["summary"],
        ),
    ]);
    specs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> (tempfile::TempDir, Workspace) {
        let directory = tempfile::tempdir().unwrap();
        let workspace = Workspace::new(
            directory.path(),
            Duration::from_secs(5),
            4096,
            command::scrubbed_environment(&[]),
        )
        .unwrap();
        (directory, workspace)
    }

    #[test]
    fn paths_that_leave_the_tree_are_refused() {
        let (directory, workspace) = workspace();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), "outside").unwrap();
        std::os::unix::fs::symlink(outside.path(), directory.path().join("escape")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret.txt"),
            directory.path().join("link.txt"),
        )
        .unwrap();
        for path in [
            "../x",
            "/etc/passwd",
            "escape/secret.txt",
            "link.txt",
            "escape/new.txt",
            ".git/config",
        ] {
            let output = workspace.read_file(path);
            assert!(output.is_error, "{path} was not refused");
            let output = workspace.write_file(path, "x");
            assert!(output.is_error, "{path} was writable");
        }
        assert!(!outside.path().join("new.txt").exists());
    }

    #[test]
    fn write_edit_read_list_search() {
        let (_directory, workspace) = workspace();
        assert!(
            !workspace
                .write_file("src/a.rs", "fn a() {}\nfn b() {}\n")
                .is_error
        );
        assert!(
            workspace.edit_file("src/a.rs", "fn", "pub fn").is_error,
            "ambiguous edit accepted"
        );
        assert!(!workspace.edit_file("src/a.rs", "fn b", "pub fn b").is_error);
        assert_eq!(
            workspace.read_file("src/a.rs").content,
            "fn a() {}\npub fn b() {}\n"
        );
        assert_eq!(workspace.list_files(".").content, "src/a.rs");
        assert_eq!(
            workspace.search("pub fn", None).content,
            "src/a.rs:2: pub fn b() {}"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn unknown_tools_and_missing_fields_are_errors() {
        let (_directory, workspace) = workspace();
        assert!(workspace.call("rm_rf", &json!({})).await.is_error);
        assert!(
            workspace
                .call("write_file", &json!({"path": "a"}))
                .await
                .content
                .contains("content")
        );
    }
}
