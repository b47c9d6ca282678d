//! Reading a unified diff (as `git diff` writes it) into per-file changes.
//!
//! Text only, so policy and evidence can judge `changes.patch` itself
//! (publish trusts nothing else) without a repository at hand. libgit2 reads
//! it, the same parser `WorkTree::apply` uses, so what is judged is what gets
//! applied: a hand-written parser could be led to count hunks differently.

use std::borrow::Cow;

use git2::{Delta, Diff, DiffLineType, Patch};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    pub path: String,
    /// The path before a rename, when it differs.
    pub old_path: Option<String>,
    pub added: usize,
    pub removed: usize,
    pub binary: bool,
    pub deleted: bool,
    pub created: bool,
    /// Text of the added lines, newline-joined, for the secret scan.
    #[serde(skip)]
    pub added_text: String,
}

/// The files `patch` changes, in patch order.
///
/// A patch libgit2 cannot read as a whole is read file by file, and the files
/// it can read are returned: the policy still sees them (a protected path in
/// a readable file is still caught), while the unreadable text is the
/// business of `WorkTree::apply`, which rejects the whole patch anyway.
/// Text that has no readable file at all gives an empty list.
pub fn parse(patch: &str) -> Vec<FileChange> {
    if patch.trim().is_empty() {
        return Vec::new();
    }
    // libgit2 rejects a hunk whose last line lacks its newline, which is all
    // that trimming a patch (or cutting it off at a line) does to it.
    let patch = if patch.ends_with('\n') {
        Cow::Borrowed(patch)
    } else {
        Cow::Owned(format!("{patch}\n"))
    };
    read(&patch).unwrap_or_else(|| {
        file_sections(&patch)
            .into_iter()
            .filter_map(read)
            .flatten()
            .collect()
    })
}

fn read(text: &str) -> Option<Vec<FileChange>> {
    let diff = Diff::from_buffer(text.as_bytes()).ok()?;
    (0..diff.deltas().len())
        .map(|index| file_change(&diff, index))
        .collect()
}

fn file_change(diff: &Diff<'_>, index: usize) -> Option<FileChange> {
    let delta = diff.get_delta(index)?;
    let deleted = delta.status() == Delta::Deleted;
    let created = delta.status() == Delta::Added;
    let old = delta.old_file().path_bytes().map(path_text);
    let new = delta.new_file().path_bytes().map(path_text);
    // libgit2 names both sides even for an added or deleted file (from the
    // `diff --git` line); the side that exists is the file's path.
    let path = if deleted {
        old.clone().or(new)?
    } else {
        new.or_else(|| old.clone())?
    };
    let old_path = old.filter(|old| !created && !deleted && *old != path);
    let mut change = FileChange {
        path,
        old_path,
        binary: delta.flags().is_binary(),
        deleted,
        created,
        ..FileChange::default()
    };
    // A parsed diff keeps a patch for every delta; `None` would only mean
    // there are no lines to count.
    if let Some(patch) = Patch::from_diff(diff, index).ok()? {
        (_, change.added, change.removed) = patch.line_stats().ok()?;
        for hunk in 0..patch.num_hunks() {
            for line in 0..patch.num_lines_in_hunk(hunk).ok()? {
                let line = patch.line_in_hunk(hunk, line).ok()?;
                if line.origin_value() == DiffLineType::Addition {
                    let content = String::from_utf8_lossy(line.content());
                    // As `str::lines` would split it: no `\n`, no `\r\n`.
                    let content = content.strip_suffix('\n').unwrap_or(&content);
                    let content = content.strip_suffix('\r').unwrap_or(content);
                    change.added_text.push_str(content);
                    change.added_text.push('\n');
                }
            }
        }
    }
    Some(change)
}

fn path_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `text` cut before each `diff --git` line, for reading file by file when
/// libgit2 gives up on the whole (it keeps nothing once one file fails).
/// Safe to cut there: inside a hunk every line starts with ` `, `+`, `-` or
/// `\`, and binary data is base85, which has no space.
fn file_sections(text: &str) -> Vec<&str> {
    let mut sections = Vec::new();
    let mut start = 0;
    for (newline, _) in text.match_indices("\ndiff --git ") {
        sections.push(&text[start..=newline]);
        start = newline + 1;
    }
    sections.push(&text[start..]);
    sections
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATCH: &str = "diff --git a/src/lib.rs b/src/lib.rs
index 1111111..2222222 100644
--- a/src/lib.rs
+++ b/src/lib.rs
@@ -1,3 +1,4 @@
 pub mod a;
-pub mod b;
+pub mod c;
+++counter;
 pub mod d;
diff --git a/notes.txt b/notes.txt
new file mode 100644
index 0000000..3333333
--- /dev/null
+++ b/notes.txt
@@ -0,0 +1 @@
+hello
\\ No newline at end of file
diff --git a/old.txt b/old.txt
deleted file mode 100644
index 4444444..0000000
--- a/old.txt
+++ /dev/null
@@ -1 +0,0 @@
-bye
diff --git a/logo.png b/logo.png
new file mode 100644
index 0000000..5555555
Binary files /dev/null and b/logo.png differ
";

    /// As `git diff --binary -M` writes a pure rename and a new binary file.
    const RENAME_AND_BINARY: &str = "diff --git a/keep.txt b/kept.txt
similarity index 100%
rename from keep.txt
rename to kept.txt
diff --git a/logo.png b/logo.png
new file mode 100644
index 0000000000000000000000000000000000000000..029ace0fcbb58feb758971feed0457fd34dbb60b
GIT binary patch
literal 16
XcmeAS@N?(olHy`uVBq!ia0vnc8m<D~

literal 0
HcmV?d00001

";

    fn summary(files: &[FileChange]) -> Vec<(&str, usize, usize)> {
        files
            .iter()
            .map(|file| (file.path.as_str(), file.added, file.removed))
            .collect()
    }

    #[test]
    fn counts_lines_per_file_including_content_that_looks_like_a_header() {
        let files = parse(PATCH);
        assert_eq!(
            summary(&files),
            vec![
                ("src/lib.rs", 2, 1),
                ("notes.txt", 1, 0),
                ("old.txt", 0, 1),
                ("logo.png", 0, 0)
            ]
        );
        assert_eq!(files[0].added_text, "pub mod c;\n++counter;\n");
        assert!(files[1].created && files[2].deleted && files[3].binary);
    }

    #[test]
    fn marks_new_files() {
        let files = parse(PATCH);
        let notes = &files[1];
        assert!(notes.created && !notes.deleted && !notes.binary);
        assert_eq!(notes.old_path, None);
        assert_eq!(notes.added_text, "hello\n");
        assert!(!files[0].created && !files[2].created);
    }

    #[test]
    fn marks_deleted_files_under_their_old_path() {
        let files = parse(PATCH);
        let old = &files[2];
        assert!(old.deleted && !old.created);
        assert_eq!(
            (old.path.as_str(), old.old_path.as_deref()),
            ("old.txt", None)
        );
        assert!(old.added_text.is_empty());
    }

    #[test]
    fn reports_renames_and_binary_patches() {
        let files = parse(RENAME_AND_BINARY);
        assert_eq!(files.len(), 2);
        let renamed = &files[0];
        assert_eq!(renamed.path, "kept.txt");
        assert_eq!(renamed.old_path.as_deref(), Some("keep.txt"));
        assert!(!renamed.created && !renamed.deleted && !renamed.binary);
        assert_eq!((renamed.added, renamed.removed), (0, 0));
        let logo = &files[1];
        assert_eq!(logo.path, "logo.png");
        assert!(logo.binary && logo.created);
        assert_eq!((logo.added, logo.removed), (0, 0));
    }

    #[test]
    fn reports_a_rename_with_edits() {
        let patch = "diff --git a/src/old_name.rs b/src/new_name.rs
similarity index 80%
rename from src/old_name.rs
rename to src/new_name.rs
index 1111111..2222222 100644
--- a/src/old_name.rs
+++ b/src/new_name.rs
@@ -1,2 +1,2 @@
 fn a() {}
-fn b() {}
+fn c() {}
";
        let files = parse(patch);
        assert_eq!(summary(&files), vec![("src/new_name.rs", 1, 1)]);
        assert_eq!(files[0].old_path.as_deref(), Some("src/old_name.rs"));
        assert_eq!(files[0].added_text, "fn c() {}\n");
    }

    #[test]
    fn adds_up_several_hunks_of_one_file() {
        let patch = "diff --git a/a.txt b/a.txt
index 1111111..2222222 100644
--- a/a.txt
+++ b/a.txt
@@ -1,3 +1,3 @@
 one
-two
+TWO
 three
@@ -10,2 +10,4 @@ fn context()
 ten
+ten and a half
+ten and three quarters
-eleven
+ELEVEN
";
        let files = parse(patch);
        assert_eq!(summary(&files), vec![("a.txt", 4, 2)]);
        assert_eq!(
            files[0].added_text,
            "TWO\nten and a half\nten and three quarters\nELEVEN\n"
        );
    }

    #[test]
    fn reads_quoted_paths_and_mode_changes() {
        let patch = "diff --git \"a/caf\\303\\251 menu.txt\" \"b/caf\\303\\251 menu.txt\"
index 1111111..2222222 100644
--- \"a/caf\\303\\251 menu.txt\"
+++ \"b/caf\\303\\251 menu.txt\"
@@ -1 +1 @@
-tea
+coffee
diff --git a/run.sh b/run.sh
old mode 100644
new mode 100755
";
        let files = parse(patch);
        assert_eq!(
            summary(&files),
            vec![("café menu.txt", 1, 1), ("run.sh", 0, 0)]
        );
    }

    #[test]
    fn added_text_drops_carriage_returns_like_lines_does() {
        let patch = "diff --git a/a.txt b/a.txt
index 1111111..2222222 100644
--- a/a.txt
+++ b/a.txt
@@ -1 +1 @@
-old\r
+new\r
";
        assert_eq!(parse(patch)[0].added_text, "new\n");
    }

    #[test]
    fn empty_patch_has_no_files() {
        assert!(parse("").is_empty());
        assert!(parse(" \n\t\n").is_empty());
    }

    #[test]
    fn a_missing_final_newline_is_tolerated() {
        let files = parse(PATCH.trim_end());
        assert_eq!(files.len(), 4);
        let cut = parse(&PATCH[..PATCH.find("\\ No newline").unwrap()]);
        assert_eq!(
            summary(&cut)[..2],
            [("src/lib.rs", 2, 1), ("notes.txt", 1, 0)]
        );
    }

    #[test]
    fn text_that_is_no_patch_has_no_files() {
        assert!(parse("hello\nworld\n").is_empty());
        assert!(parse("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n").is_empty());
        assert!(parse("diff --git\n").is_empty());
    }

    #[test]
    fn a_corrupt_file_costs_only_itself() {
        // The hunk promises two lines and holds one.
        let corrupt = "diff --git a/broken.txt b/broken.txt
index 1111111..2222222 100644
--- a/broken.txt
+++ b/broken.txt
@@ -1,2 +1,2 @@
-a
";
        let (first, rest) = PATCH.split_at(PATCH.find("diff --git a/notes.txt").unwrap());
        let patch = format!("{first}{corrupt}{rest}");
        assert!(Diff::from_buffer(patch.as_bytes()).is_err());
        let files = parse(&patch);
        assert_eq!(
            summary(&files),
            vec![
                ("src/lib.rs", 2, 1),
                ("notes.txt", 1, 0),
                ("old.txt", 0, 1),
                ("logo.png", 0, 0)
            ]
        );
    }

    #[test]
    fn never_panics_on_a_cut_off_patch() {
        for text in [PATCH, RENAME_AND_BINARY] {
            for end in 0..=text.len() {
                let files = parse(&text[..end]);
                assert!(files.len() <= 4, "{end}");
            }
        }
    }
}
