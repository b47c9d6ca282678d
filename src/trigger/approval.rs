//! Approval checkpoints (`[scope].approval`): a patch that touches those
//! globs is published as a draft until a person with write access says
//! `/baton approve` on the pull request. The approval is bound to the pull
//! request's head commit at that moment and is kept as a hidden line in
//! baton's own reply, so only baton can write it: a person who pastes the
//! line into a comment of theirs approves nothing. Any later push changes
//! the head, and the approval is stale.

use crate::forge::Comment;

const APPROVED: &str = "<!-- baton:approved=";
const AWAITING: &str = "<!-- baton:awaiting-approval=";

/// The hidden line of baton's reply to a `/baton approve` on `sha`.
pub fn approved_marker(sha: &str) -> String {
    format!("{APPROVED}{sha} -->")
}

/// The hidden line publish puts in a pull request's body when the only
/// thing that keeps it a draft is the approval of `sha` (its head).
pub fn awaiting_marker(sha: &str) -> String {
    format!("{AWAITING}{sha} -->")
}

/// The commit the body of a pull request waits an approval for.
pub fn awaiting_in(body: &str) -> Option<&str> {
    sha_after(body, AWAITING)
}

/// The commit the last approval baton recorded on a pull request is bound
/// to: only comments written with baton's own token count.
pub fn last_approved(comments: &[Comment]) -> Option<&str> {
    comments
        .iter()
        .rev()
        .filter(|comment| comment.from_baton)
        .find_map(|comment| sha_after(&comment.body, APPROVED))
}

/// Where an approval stands against the commit a publish is about to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// Nobody approved this pull request yet.
    Missing,
    /// Approved on exactly this commit.
    Valid(String),
    /// Approved on an earlier commit; a push came since.
    Stale { approved: String, head: String },
}

impl Approval {
    pub fn of(approved: Option<&str>, head: &str) -> Self {
        match approved {
            None => Self::Missing,
            Some(sha) if sha == head => Self::Valid(head.to_owned()),
            Some(sha) => Self::Stale {
                approved: sha.to_owned(),
                head: head.to_owned(),
            },
        }
    }

    /// Why the checkpoint holds, for the paths that need it.
    pub fn reason(&self, paths: &[String]) -> String {
        let paths = paths.join(", ");
        match self {
            Self::Stale { approved, head } => format!(
                "the approval of {} is stale (the branch now holds {}): changes to {paths} need a new `/baton approve`",
                short(approved),
                short(head)
            ),
            _ => format!("changes to {paths} need `/baton approve`"),
        }
    }
}

/// The first twelve characters of a commit id.
pub fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

fn sha_after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let start = text.rfind(prefix)? + prefix.len();
    let rest = &text[start..];
    let end = rest.find(" -->")?;
    let sha = &rest[..end];
    (!sha.is_empty() && sha.chars().all(|c| c.is_ascii_hexdigit())).then_some(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comment(body: &str, from_baton: bool) -> Comment {
        Comment {
            id: 1,
            author: if from_baton { "baton" } else { "mallory" }.into(),
            from_baton,
            body: body.into(),
            url: String::new(),
        }
    }

    #[test]
    fn only_baton_records_an_approval_and_the_last_one_counts() {
        let comments = [
            comment(
                &format!("<!-- baton:reply=1 -->\n{}", approved_marker("aaa111")),
                true,
            ),
            comment(
                &format!("<!-- baton:reply=2 -->\n{}", approved_marker("bbb222")),
                true,
            ),
            comment(&approved_marker("ccc333"), false),
        ];
        assert_eq!(last_approved(&comments), Some("bbb222"));
        assert_eq!(last_approved(&comments[2..]), None);
        assert_eq!(
            last_approved(&[comment("<!-- baton:approved=nothex -->", true)]),
            None
        );
    }

    #[test]
    fn an_approval_is_bound_to_one_commit() {
        assert_eq!(Approval::of(None, "abc"), Approval::Missing);
        assert_eq!(
            Approval::of(Some("abc"), "abc"),
            Approval::Valid("abc".into())
        );
        let stale = Approval::of(Some("0123456789abcdef"), "fedcba9876543210");
        assert!(
            stale
                .reason(&["migrations/1.sql".into()])
                .contains("the approval of 0123456789ab is stale")
        );
        let body = format!(
            "<!-- baton:issue=7 -->\n{}\nevidence",
            awaiting_marker("abc")
        );
        assert_eq!(awaiting_in(&body), Some("abc"));
        assert_eq!(awaiting_in("evidence"), None);
    }
}
