//! Reading a unified diff (as `git diff` writes it) into per-file changes.
//!
//! Pure text processing, so policy and evidence can judge `changes.patch`
//! itself (publish trusts nothing else) without a repository at hand.

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

pub fn parse(patch: &str) -> Vec<FileChange> {
    let mut files = Vec::new();
    let mut current: Option<FileChange> = None;
    let (mut old_left, mut new_left) = (0usize, 0usize);
    for line in patch.lines() {
        if old_left > 0 || new_left > 0 {
            if let Some(file) = current.as_mut() {
                match line.as_bytes().first() {
                    Some(b'+') => {
                        file.added += 1;
                        file.added_text.push_str(&line[1..]);
                        file.added_text.push('\n');
                        new_left = new_left.saturating_sub(1);
                    }
                    Some(b'-') => {
                        file.removed += 1;
                        old_left = old_left.saturating_sub(1);
                    }
                    Some(b'\\') => {}
                    _ => {
                        old_left = old_left.saturating_sub(1);
                        new_left = new_left.saturating_sub(1);
                    }
                }
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("diff --git ") {
            files.extend(current.take());
            let header_path = rest.rsplit_once(" b/").map_or(rest, |(_, after)| after);
            current = Some(FileChange {
                path: unquote(header_path),
                ..FileChange::default()
            });
        } else if let Some(file) = current.as_mut() {
            if let Some(old) = line.strip_prefix("--- ") {
                if old == "/dev/null" {
                    file.created = true;
                } else {
                    let old = unquote(old.strip_prefix("a/").unwrap_or(old));
                    if old != file.path {
                        file.old_path = Some(old);
                    }
                }
            } else if let Some(new) = line.strip_prefix("+++ ") {
                if new == "/dev/null" {
                    file.deleted = true;
                    if let Some(old) = file.old_path.take() {
                        file.path = old;
                    }
                } else {
                    file.path = unquote(new.strip_prefix("b/").unwrap_or(new));
                }
            } else if let Some(header) = line.strip_prefix("@@ ") {
                (old_left, new_left) = hunk_counts(header);
            } else if line.starts_with("Binary files ") || line == "GIT binary patch" {
                file.binary = true;
            } else if let Some(old) = line.strip_prefix("rename from ") {
                file.old_path = Some(unquote(old));
            } else if line.starts_with("deleted file mode") {
                file.deleted = true;
            } else if line.starts_with("new file mode") {
                file.created = true;
            }
        }
    }
    files.extend(current);
    files
}

/// `-12,3 +12,4 @@ context` → (3, 4); a missing count means 1.
fn hunk_counts(header: &str) -> (usize, usize) {
    let mut ranges = header.split_whitespace();
    let count = |range: Option<&str>| {
        range.and_then(|range| range.get(1..)).map_or(0, |range| {
            range
                .split_once(',')
                .map_or(Some(1), |(_, count)| count.parse().ok())
                .unwrap_or(0)
        })
    };
    let old = count(ranges.next());
    let new = count(ranges.next());
    (old, new)
}

fn unquote(path: &str) -> String {
    let path = path.trim_end_matches('\t');
    path.strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
        .unwrap_or(path)
        .to_owned()
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

    #[test]
    fn counts_lines_per_file_including_content_that_looks_like_a_header() {
        let files = parse(PATCH);
        let summary: Vec<(&str, usize, usize)> = files
            .iter()
            .map(|file| (file.path.as_str(), file.added, file.removed))
            .collect();
        assert_eq!(
            summary,
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
    fn empty_patch_has_no_files() {
        assert!(parse("").is_empty());
    }
}
