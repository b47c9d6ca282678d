//! Git through libgit2: the base commit, clean work trees at base + patch, the
//! patch of a work tree, and files as they are at the base commit.
//!
//! A work tree is a fresh repository in a temporary directory that borrows the
//! source repository's objects (like `git clone --shared`), so creating one is
//! cheap and the user's checkout is never touched.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, anyhow};
use git2::{ApplyLocation, Diff, DiffFormat, DiffOptions, IndexAddOption, Oid, Repository};

use crate::bad_input;

pub struct Source {
    repository: Repository,
    root: PathBuf,
}

impl Source {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let repository = Repository::discover(path).map_err(|error| {
            bad_input!(
                "{} is not inside a git repository ({}); pass the repository with --repo",
                path.display(),
                error.message()
            )
        })?;
        let root = repository
            .workdir()
            .ok_or_else(|| {
                bad_input!(
                    "{} is a bare repository; pass a checkout with --repo",
                    path.display()
                )
            })?
            .to_path_buf();
        Ok(Self { repository, root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn head_sha(&self) -> anyhow::Result<String> {
        let head = self.repository.head().map_err(|error| {
            bad_input!(
                "{} has no commit to start from ({}); commit first",
                self.root.display(),
                error.message()
            )
        })?;
        let commit = head.peel_to_commit().context("HEAD is not a commit")?;
        Ok(commit.id().to_string())
    }

    /// Whether tracked files differ from HEAD (those changes are not part of a run).
    pub fn is_dirty(&self) -> bool {
        let mut options = git2::StatusOptions::new();
        options.include_untracked(false);
        self.repository
            .statuses(Some(&mut options))
            .is_ok_and(|statuses| !statuses.is_empty())
    }

    /// `owner/name` from the `origin` remote, else the directory's name.
    pub fn repository_name(&self) -> String {
        let from_remote = self
            .repository
            .find_remote("origin")
            .ok()
            .and_then(|remote| {
                let url = remote.url().ok()?.trim_end_matches(".git").to_owned();
                let mut parts = url.rsplit(['/', ':']);
                let name = parts.next()?;
                let owner = parts.next()?;
                Some(format!("{owner}/{name}"))
            });
        from_remote.unwrap_or_else(|| {
            self.root.file_name().map_or_else(
                || "local".into(),
                |name| name.to_string_lossy().into_owned(),
            )
        })
    }

    /// A file as it is at `sha`, or `None` if it does not exist there.
    pub fn read_at(&self, sha: &str, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let commit = self.commit(sha)?;
        let tree = commit.tree()?;
        let Ok(entry) = tree.get_path(Path::new(path)) else {
            return Ok(None);
        };
        let blob = self
            .repository
            .find_blob(entry.id())
            .with_context(|| format!("{path} at {sha} is not a file"))?;
        Ok(Some(blob.content().to_vec()))
    }

    /// Every file path at `sha` (`/`-separated), for checking a plan's
    /// touchpoints against the repository.
    pub fn files_at(&self, sha: &str) -> anyhow::Result<Vec<String>> {
        let tree = self.commit(sha)?.tree()?;
        let mut files = Vec::new();
        tree.walk(git2::TreeWalkMode::PreOrder, |directory, entry| {
            if entry.kind() == Some(git2::ObjectType::Blob)
                && let Ok(name) = entry.name()
            {
                files.push(format!("{directory}{name}"));
            }
            git2::TreeWalkResult::Ok
        })?;
        Ok(files)
    }

    fn commit(&self, sha: &str) -> anyhow::Result<git2::Commit<'_>> {
        let oid = Oid::from_str(sha).map_err(|_| bad_input!("`{sha}` is not a commit id"))?;
        self.repository.find_commit(oid).map_err(|_| {
            bad_input!(
                "base commit {sha} is not in {}; fetch it (in CI: actions/checkout with fetch-depth: 0)",
                self.root.display()
            )
        })
    }

    /// Whether `sha` is HEAD or one of its ancestors: a run's base commit
    /// must be in the history of the checkout a job runs in.
    pub fn has_in_history(&self, sha: &str) -> anyhow::Result<bool> {
        let base = self.commit(sha)?.id();
        let head = Oid::from_str(&self.head_sha()?)?;
        Ok(head == base || self.repository.graph_descendant_of(head, base)?)
    }

    /// The `origin` remote's URL (what `actions/checkout` set).
    pub fn origin_url(&self) -> anyhow::Result<String> {
        let remote = self.repository.find_remote("origin").map_err(|_| {
            bad_input!(
                "{} has no `origin` remote to push the branch to",
                self.root.display()
            )
        })?;
        let url = remote
            .url()
            .map_err(|_| bad_input!("the `origin` remote's URL is not UTF-8"))?;
        // A relative path (a local origin) is relative to the checkout.
        if !url.contains("://") && !url.contains('@') && Path::new(url).is_relative() {
            return Ok(self.root.join(url).display().to_string());
        }
        Ok(url.to_owned())
    }

    /// Publishes the run: the base commit plus `patch` as one commit, pushed
    /// to `origin` as `branch` (replacing what an earlier publish pushed).
    /// The commit's author and date are fixed (baton, the base commit's
    /// time), so the same patch always makes the same commit and a rerun
    /// pushes nothing new. HTTPS remotes get the token through a credential
    /// callback; it never appears in a URL, a config or a message.
    ///
    /// With `on` (a `/baton fix`: the pull request's head), the commit is
    /// made on top of `on` instead, so the push is a fast-forward: its
    /// parent is `on`, and also `base` when `on` does not contain it yet (a
    /// merge of the default branch, so the pull request's diff stays the
    /// change).
    pub fn push_branch(
        &self,
        base: &str,
        patch: &str,
        branch: &str,
        message: &str,
        token: Option<&crate::secrets::Secret>,
        on: Option<&str>,
    ) -> anyhow::Result<String> {
        let tree = self.work_tree(base, patch)?;
        let commit = tree.commit(message, on)?;
        let url = self.origin_url()?;
        // A fix goes on top of the branch: a fast-forward only, so a commit
        // pushed while it ran is refused by the forge, never overwritten.
        tree.push(&url, commit, branch, token, on.is_none())?;
        Ok(commit.to_string())
    }

    /// The commit `push_branch` would push for the same arguments, made but
    /// not pushed: an approval is bound to it before publish decides.
    pub fn commit_for(
        &self,
        base: &str,
        patch: &str,
        message: &str,
        on: Option<&str>,
    ) -> anyhow::Result<String> {
        let tree = self.work_tree(base, patch)?;
        Ok(tree.commit(message, on)?.to_string())
    }

    /// Fetches `branch` from `origin` (HTTPS with the token, as a push
    /// does) and returns its head commit. The fetched head is kept under
    /// `refs/baton/`, never as a local branch.
    pub fn fetch_branch(
        &self,
        branch: &str,
        token: Option<&crate::secrets::Secret>,
    ) -> anyhow::Result<String> {
        let url = self.origin_url()?;
        let target = format!("refs/baton/fetched/{branch}");
        let mut remote = self.repository.remote_anonymous(&url)?;
        let mut options = git2::FetchOptions::new();
        options.remote_callbacks(credentials(&url, token));
        remote
            .fetch(
                &[format!("+refs/heads/{branch}:{target}")],
                Some(&mut options),
                None,
            )
            .map_err(|error| anyhow!("cannot fetch {branch} from origin: {}", error.message()))?;
        Ok(self.repository.refname_to_id(&target)?.to_string())
    }

    /// What `head` changed since it left `base`'s history, carried onto
    /// `base` (a merge of the two, in memory), as a patch against `base`.
    /// A conflict is refused: the change cannot be carried without a person.
    pub fn carried_patch(&self, base: &str, head: &str) -> anyhow::Result<String> {
        let base_commit = self.commit(base)?;
        let head_commit = self.commit(head)?;
        let mut index = self
            .repository
            .merge_commits(&base_commit, &head_commit, None)?;
        if index.has_conflicts() {
            return Err(bad_input!(
                "{} conflicts with {}: resolve the conflict on the branch, or start over with `/baton run`",
                &head[..head.len().min(12)],
                &base[..base.len().min(12)]
            ));
        }
        let merged = self
            .repository
            .find_tree(index.write_tree_to(&self.repository)?)?;
        let mut options = DiffOptions::new();
        options.show_binary(true);
        let diff = self.repository.diff_tree_to_tree(
            Some(&base_commit.tree()?),
            Some(&merged),
            Some(&mut options),
        )?;
        patch_text(&diff)
    }

    /// The checkout itself at `sha` with `patch` applied: in CI, verify runs
    /// the gates in the job's workspace, so the set-up steps a team put
    /// before it (toolchains, caches, services) apply. Refused when tracked
    /// files have changes (they would be lost, or judged).
    pub fn in_place(&self, sha: &str, patch: &str) -> anyhow::Result<WorkTree> {
        if self.is_dirty() {
            return Err(bad_input!(
                "{} has uncommitted changes; verify runs in a clean checkout",
                self.root.display()
            ));
        }
        let commit = self.commit(sha)?;
        let repository = Repository::open(&self.root)?;
        repository.set_head_detached(commit.id())?;
        repository.checkout_head(Some(git2::build::CheckoutBuilder::new().force()))?;
        let tree = WorkTree {
            directory: Location::InPlace(self.root.clone()),
            repository,
            base: commit.tree_id(),
            commit: commit.id(),
            authored: Mutex::new(None),
        };
        if !patch.trim().is_empty() {
            tree.apply(patch)?;
        }
        Ok(tree)
    }

    /// A clean work tree at `sha` with `patch` applied. Its git directory
    /// lives beside it, not in it (the tree's `.git` is a link file): the
    /// sandbox lets commands write the tree and nothing else, so the agent
    /// reads the repository but cannot rewrite its index, config or hooks.
    pub fn work_tree(&self, sha: &str, patch: &str) -> anyhow::Result<WorkTree> {
        let commit = self.commit(sha)?;
        let directory = tempfile::Builder::new().prefix("baton-work-").tempdir()?;
        let git_directory = tempfile::Builder::new().prefix("baton-git-").tempdir()?;
        let repository = Repository::init_opts(
            git_directory.path(),
            git2::RepositoryInitOptions::new()
                .bare(false)
                .no_dotgit_dir(true)
                .workdir_path(directory.path()),
        )?;
        let objects = self.repository.commondir().join("objects");
        let alternates = git_directory.path().join("objects/info/alternates");
        std::fs::write(&alternates, format!("{}\n", objects.display()))
            .with_context(|| format!("cannot write {}", alternates.display()))?;
        let repository = {
            drop(repository);
            Repository::open(git_directory.path())?
        };
        repository.set_head_detached(commit.id())?;
        repository.checkout_head(Some(git2::build::CheckoutBuilder::new().force()))?;
        let base = commit.tree_id();
        let tree = WorkTree {
            directory: Location::Temporary(directory, git_directory),
            repository,
            base,
            commit: commit.id(),
            authored: Mutex::new(None),
        };
        if !patch.trim().is_empty() {
            tree.apply(patch)?;
        }
        Ok(tree)
    }
}

/// Where a work tree lives: a temporary directory removed when it is
/// dropped, or the checkout itself (a CI job's workspace, thrown away with
/// the job).
enum Location {
    /// The tree, and its git directory (kept only to be removed with it).
    Temporary(
        tempfile::TempDir,
        #[expect(dead_code, reason = "removed on drop")] tempfile::TempDir,
    ),
    InPlace(PathBuf),
}

/// The host of a URL (`https://host:port/path`, `user@host:path`); empty for a path.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or(authority);
    host.split(':').next().unwrap_or(host)
}

pub struct WorkTree {
    directory: Location,
    repository: Repository,
    /// The base commit's tree, and the commit itself.
    base: Oid,
    commit: Oid,
    /// New files the agent wrote with its own tools (`write_file`,
    /// `edit_file`). Once set, a new file outside it and outside the
    /// applied patch is something a command produced (a build's output)
    /// and stays out of the patch.
    authored: Mutex<Option<BTreeSet<String>>>,
}

/// A patch and the new files left out of it.
#[derive(Debug, Default)]
pub struct Changes {
    pub patch: String,
    /// New files no tool wrote (a build's `target/`, `__pycache__/`),
    /// sorted, at most [`LEFT_OUT_KEPT`] of them named.
    pub left_out: Vec<String>,
    pub left_out_count: usize,
}

/// How many left-out files are named; the rest are counted.
pub const LEFT_OUT_KEPT: usize = 200;

/// Directories and files that are a build's or a tool's output whoever
/// wrote them: left out even when no tool record says otherwise (an
/// external executor's work tree).
const BUILD_OUTPUTS: &[&str] = &[
    "target/",
    "node_modules/",
    "__pycache__/",
    ".pytest_cache/",
    ".mypy_cache/",
    ".ruff_cache/",
    ".venv/",
    ".tox/",
    ".gradle/",
    ".next/",
    "dist/",
    "build/",
    "coverage/",
    ".coverage",
];

fn is_build_output(path: &str) -> bool {
    let extension = Path::new(path)
        .extension()
        .and_then(|extension| extension.to_str())
        .unwrap_or_default();
    ["pyc", "o", "class"].contains(&extension)
        || BUILD_OUTPUTS.iter().any(|output| {
            path == output.trim_end_matches('/')
                || (output.ends_with('/')
                    && (path.starts_with(output) || path.contains(&format!("/{output}"))))
        })
}

impl WorkTree {
    pub fn path(&self) -> &Path {
        match &self.directory {
            Location::Temporary(directory, _) => directory.path(),
            Location::InPlace(path) => path,
        }
    }

    /// Whether this is the checkout itself (a CI job's workspace).
    pub fn is_in_place(&self) -> bool {
        matches!(self.directory, Location::InPlace(_))
    }

    pub fn apply(&self, patch: &str) -> anyhow::Result<()> {
        let diff = Diff::from_buffer(patch.as_bytes()).map_err(|error| {
            bad_input!("changes.patch is not a valid patch: {}", error.message())
        })?;
        self.repository
            .apply(&diff, ApplyLocation::Both, None)
            .map_err(|error| {
                anyhow!(
                    "changes.patch does not apply to the base commit: {}",
                    error.message()
                )
            })
    }

    /// Commits the tree as it is on top of the base commit, or of `on`
    /// (see `Source::push_branch`).
    fn commit(&self, message: &str, on: Option<&str>) -> anyhow::Result<Oid> {
        let mut index = self.repository.index()?;
        index.add_all(["*"], IndexAddOption::DEFAULT, None)?;
        index.update_all(["*"], None)?;
        let tree = self.repository.find_tree(index.write_tree()?)?;
        let base = self.repository.find_commit(self.commit)?;
        let mut parents = Vec::new();
        if let Some(on) = on {
            let on = self.repository.find_commit(Oid::from_str(on)?)?;
            let contains_base =
                on.id() == base.id() || self.repository.graph_descendant_of(on.id(), base.id())?;
            parents.push(on);
            if !contains_base {
                parents.push(base);
            }
        } else {
            parents.push(base);
        }
        let signature = git2::Signature::new(
            "baton",
            "baton@users.noreply.invalid",
            &parents[0].committer().when(),
        )?;
        let parents: Vec<&git2::Commit<'_>> = parents.iter().collect();
        Ok(self
            .repository
            .commit(None, &signature, &signature, message, &tree, &parents)?)
    }

    /// Force-pushes `commit` as `branch` to `url`.
    fn push(
        &self,
        url: &str,
        commit: Oid,
        branch: &str,
        token: Option<&crate::secrets::Secret>,
        force: bool,
    ) -> anyhow::Result<()> {
        let reference = format!("refs/heads/{branch}");
        self.repository
            .reference(&reference, commit, true, "baton publish")?;
        let mut remote = self.repository.remote_anonymous(url)?;
        let mut callbacks = credentials(url, token);
        let refused = std::rc::Rc::new(std::cell::RefCell::new(None));
        let seen = std::rc::Rc::clone(&refused);
        callbacks.push_update_reference(move |name, status| {
            if let Some(message) = status {
                *seen.borrow_mut() = Some(format!("{name}: {message}"));
            }
            Ok(())
        });
        let mut options = git2::PushOptions::new();
        options.remote_callbacks(callbacks);
        remote
            .push(
                &[format!(
                    "{}{reference}:{reference}",
                    if force { "+" } else { "" }
                )],
                Some(&mut options),
            )
            .map_err(|error| anyhow!("cannot push {branch} to origin: {}", error.message()))?;
        drop(options);
        if let Some(message) = refused.borrow_mut().take() {
            return Err(anyhow!("origin refused {branch}: {message}"));
        }
        Ok(())
    }

    /// Records files the agent wrote with its tools (paths relative to the
    /// work tree): they belong to the patch even when new.
    pub fn note_authored(&self, paths: impl IntoIterator<Item = String>) {
        let mut authored = self
            .authored
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        authored.get_or_insert_with(BTreeSet::new).extend(paths);
    }

    /// Everything that differs from the base commit, as a git patch
    /// (ignored files excluded, binary files included).
    pub fn diff(&self) -> anyhow::Result<String> {
        Ok(self.changes()?.patch)
    }

    /// The patch of the work tree: changes to tracked files (the base's and
    /// the applied patch's), and new files the agent wrote with its tools.
    /// New files a command produced are left out and named; with no tool
    /// record (an external executor), only build outputs are left out.
    pub fn changes(&self) -> anyhow::Result<Changes> {
        let mut index = self.repository.index()?;
        let tracked: HashSet<Vec<u8>> = index.iter().map(|entry| entry.path).collect();
        let authored = self
            .authored
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut left_out = Vec::new();
        let mut keep = |path: &Path, _: &[u8]| -> i32 {
            let text = path.to_string_lossy().replace('\\', "/");
            if tracked.contains(text.as_bytes()) {
                return 0;
            }
            let kept = match &authored {
                Some(authored) => authored.contains(&text),
                None => !is_build_output(&text),
            };
            if kept {
                0
            } else {
                left_out.push(text);
                1
            }
        };
        index.add_all(["*"], IndexAddOption::DEFAULT, Some(&mut keep))?;
        index.update_all(["*"], None)?;
        let tree_id = index.write_tree()?;
        let new_tree = self.repository.find_tree(tree_id)?;
        let base_tree = self.repository.find_tree(self.base)?;
        let mut options = DiffOptions::new();
        options.show_binary(true);
        let diff = self.repository.diff_tree_to_tree(
            Some(&base_tree),
            Some(&new_tree),
            Some(&mut options),
        )?;
        let patch = patch_text(&diff)?;
        left_out.sort();
        let left_out_count = left_out.len();
        left_out.truncate(LEFT_OUT_KEPT);
        Ok(Changes {
            patch,
            left_out,
            left_out_count,
        })
    }
}

/// A diff as git patch text.
fn patch_text(diff: &Diff<'_>) -> anyhow::Result<String> {
    let mut patch = Vec::new();
    diff.print(DiffFormat::Patch, |_, _, line| {
        if matches!(line.origin(), '+' | '-' | ' ') {
            patch.push(line.origin() as u8);
        }
        patch.extend_from_slice(line.content());
        true
    })?;
    Ok(String::from_utf8_lossy(&patch).into_owned())
}

/// The token for git, offered only to origin's host (not to wherever a
/// redirect leads), and once: asked again means the token was refused; do
/// not loop.
fn credentials<'a>(
    url: &str,
    token: Option<&'a crate::secrets::Secret>,
) -> git2::RemoteCallbacks<'a> {
    let mut callbacks = git2::RemoteCallbacks::new();
    let mut asked = false;
    let origin_host = host_of(url).to_owned();
    callbacks.credentials(move |asking, _, _| match token {
        Some(_) if host_of(asking) != origin_host => Err(git2::Error::from_str(
            "git asked for credentials for another host than origin's; refused",
        )),
        Some(token) if !asked => {
            asked = true;
            git2::Cred::userpass_plaintext("x-access-token", token.expose())
        }
        _ => Err(git2::Error::from_str(
            "the forge refused the token for git (it needs contents: write)",
        )),
    });
    callbacks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit_all(repository: &Repository, message: &str) {
        let mut index = repository.index().unwrap();
        index.add_all(["*"], IndexAddOption::DEFAULT, None).unwrap();
        index.write().unwrap();
        let tree = repository.find_tree(index.write_tree().unwrap()).unwrap();
        let signature = git2::Signature::now("t", "t@example.com").unwrap();
        let parents: Vec<git2::Commit<'_>> = repository
            .head()
            .ok()
            .and_then(|head| head.peel_to_commit().ok())
            .into_iter()
            .collect();
        let parents: Vec<&git2::Commit<'_>> = parents.iter().collect();
        repository
            .commit(
                Some("HEAD"),
                &signature,
                &signature,
                message,
                &tree,
                &parents,
            )
            .unwrap();
    }

    #[test]
    fn work_tree_round_trips_a_patch() {
        let directory = tempfile::tempdir().unwrap();
        let repository = Repository::init(directory.path()).unwrap();
        std::fs::write(directory.path().join("a.txt"), "one\ntwo\n").unwrap();
        std::fs::write(directory.path().join("gone.txt"), "bye\n").unwrap();
        std::fs::write(directory.path().join(".gitignore"), "target/\n").unwrap();
        commit_all(&repository, "base");
        let source = Source::open(directory.path()).unwrap();
        let base = source.head_sha().unwrap();

        let tree = source.work_tree(&base, "").unwrap();
        // The git directory is outside the tree (the sandbox keeps it read-only).
        let link = std::fs::read_to_string(tree.path().join(".git")).unwrap();
        assert!(link.starts_with("gitdir: "), "{link}");
        assert!(!Path::new(link["gitdir: ".len()..].trim()).starts_with(tree.path()));
        std::fs::write(tree.path().join("a.txt"), "one\nTWO\n").unwrap();
        std::fs::write(tree.path().join("new.txt"), "hello\n").unwrap();
        std::fs::remove_file(tree.path().join("gone.txt")).unwrap();
        std::fs::create_dir(tree.path().join("target")).unwrap();
        std::fs::write(tree.path().join("target/junk"), "x").unwrap();
        let patch = tree.diff().unwrap();
        let files: Vec<String> = crate::patch::parse(&patch)
            .into_iter()
            .map(|file| file.path)
            .collect();
        assert_eq!(files, vec!["a.txt", "gone.txt", "new.txt"]);

        let again = source.work_tree(&base, &patch).unwrap();
        assert_eq!(
            std::fs::read_to_string(again.path().join("a.txt")).unwrap(),
            "one\nTWO\n"
        );
        assert!(!again.path().join("gone.txt").exists());
        assert_eq!(again.diff().unwrap(), patch);
        assert_eq!(
            source.read_at(&base, "a.txt").unwrap().unwrap(),
            b"one\ntwo\n"
        );
        assert!(source.read_at(&base, "missing").unwrap().is_none());
    }

    #[test]
    fn new_files_no_tool_wrote_stay_out_of_the_patch() {
        let directory = tempfile::tempdir().unwrap();
        let repository = Repository::init(directory.path()).unwrap();
        std::fs::write(directory.path().join("a.txt"), "one\n").unwrap();
        commit_all(&repository, "base");
        let source = Source::open(directory.path()).unwrap();
        let base = source.head_sha().unwrap();
        // The run's earlier patch brings `earlier.txt`: tracked from then on.
        let earlier = "diff --git a/earlier.txt b/earlier.txt\nnew file mode 100644\n--- /dev/null\n+++ b/earlier.txt\n@@ -0,0 +1 @@\n+before\n";
        let fill = |tree: &WorkTree| {
            std::fs::write(tree.path().join("a.txt"), "two\n").unwrap();
            std::fs::write(tree.path().join("earlier.txt"), "after\n").unwrap();
            std::fs::write(tree.path().join("written.rs"), "fn f() {}\n").unwrap();
            std::fs::write(tree.path().join("Cargo.lock"), "# lock\n").unwrap();
            std::fs::create_dir_all(tree.path().join("target/debug")).unwrap();
            std::fs::write(tree.path().join("target/debug/out"), "x").unwrap();
            std::fs::create_dir_all(tree.path().join("pkg/__pycache__")).unwrap();
            std::fs::write(tree.path().join("pkg/__pycache__/m.pyc"), "x").unwrap();
        };
        let files = |changes: &Changes| -> Vec<String> {
            crate::patch::parse(&changes.patch)
                .into_iter()
                .map(|file| file.path)
                .collect()
        };

        // The built-in agent: what its tools wrote, and tracked files.
        let tree = source.work_tree(&base, earlier).unwrap();
        fill(&tree);
        tree.note_authored(["written.rs".to_owned()]);
        let changes = tree.changes().unwrap();
        assert_eq!(files(&changes), ["a.txt", "earlier.txt", "written.rs"]);
        assert_eq!(
            changes.left_out,
            ["Cargo.lock", "pkg/__pycache__/m.pyc", "target/debug/out"]
        );
        assert_eq!(changes.left_out_count, 3);

        // An external executor (no tool record): build outputs only.
        let tree = source.work_tree(&base, earlier).unwrap();
        fill(&tree);
        let changes = tree.changes().unwrap();
        assert_eq!(
            files(&changes),
            ["Cargo.lock", "a.txt", "earlier.txt", "written.rs"]
        );
        assert_eq!(
            changes.left_out,
            ["pkg/__pycache__/m.pyc", "target/debug/out"]
        );
    }

    #[test]
    fn a_branch_s_change_is_carried_onto_a_base_that_moved_on() {
        let directory = tempfile::tempdir().unwrap();
        let repository = Repository::init(directory.path()).unwrap();
        std::fs::write(directory.path().join("a.txt"), "one\n").unwrap();
        std::fs::create_dir(directory.path().join("tests")).unwrap();
        std::fs::write(directory.path().join("tests/.keep"), "").unwrap();
        commit_all(&repository, "base");
        let source = Source::open(directory.path()).unwrap();
        let fork = source.head_sha().unwrap();
        // The branch: a.txt changed and a new test.
        std::fs::write(directory.path().join("a.txt"), "ONE\n").unwrap();
        std::fs::write(directory.path().join("tests/t.sh"), "test\n").unwrap();
        commit_all(&repository, "branch");
        let branch = source.head_sha().unwrap();
        // The default branch moves on from the fork point.
        let fork_commit = repository
            .find_commit(Oid::from_str(&fork).unwrap())
            .unwrap();
        repository
            .reset(fork_commit.as_object(), git2::ResetType::Hard, None)
            .unwrap();
        std::fs::write(directory.path().join("b.txt"), "other\n").unwrap();
        commit_all(&repository, "main moved");
        let main = source.head_sha().unwrap();

        let patch = source.carried_patch(&main, &branch).unwrap();
        let files: Vec<String> = crate::patch::parse(&patch)
            .into_iter()
            .map(|file| file.path)
            .collect();
        assert_eq!(files, ["a.txt", "tests/t.sh"]);
        let tree = source.work_tree(&main, &patch).unwrap();
        std::fs::write(tree.path().join("a.txt"), "One\n").unwrap();
        let after: Vec<String> = crate::patch::parse(&tree.diff().unwrap())
            .into_iter()
            .map(|file| file.path)
            .collect();
        assert_eq!(after, ["a.txt", "tests/t.sh"]);
        // On top of the branch, with main as a second parent.
        let commit = tree.commit("fix", Some(&branch)).unwrap();
        let commit = tree.repository.find_commit(commit).unwrap();
        let parents: Vec<String> = commit.parent_ids().map(|id| id.to_string()).collect();
        assert_eq!(parents, [branch, main]);
    }
}
