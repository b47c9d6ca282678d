//! `/baton <verb> [args]` comments: what they ask, read from the first line
//! (case and spacing forgiven). Everything else about them (who may ask,
//! what runs) is decided with the forge, never from the payload alone.

use crate::types::PhaseName;

/// The verbs of SPEC §7, as a reply lists them.
pub const VERBS: &str = "`run`, `retry [phase]`, `fix <text>`, `approve`, `stop`, `status`";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    Run,
    Retry(Option<PhaseName>),
    Fix(String),
    Approve,
    Stop,
    Status,
    /// Not a verb baton knows: the reply lists them.
    Unknown(String),
}

/// The command in a comment, or `None` when its first line is not one.
pub fn parse(body: &str) -> Option<Result<Verb, String>> {
    let first = body.lines().find(|line| !line.trim().is_empty())?.trim();
    let mut words = first.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("/baton") {
        return None;
    }
    let verb = words.next().unwrap_or("").to_ascii_lowercase();
    let rest: Vec<&str> = words.collect();
    Some(Ok(match verb.as_str() {
        "run" => Verb::Run,
        "retry" => match rest.first() {
            None => Verb::Retry(None),
            Some(phase) => match phase.to_ascii_lowercase().parse::<PhaseName>() {
                Ok(phase) => Verb::Retry(Some(phase)),
                Err(message) => return Some(Err(message)),
            },
        },
        "fix" => {
            // The feedback is the rest of the comment: the first line's
            // words after the verb, then every later line.
            let mut text = rest.join(" ");
            let later: Vec<&str> = body
                .lines()
                .skip_while(|line| line.trim() != first)
                .skip(1)
                .collect();
            if !later.is_empty() {
                text.push('\n');
                text.push_str(later.join("\n").trim());
            }
            Verb::Fix(text.trim().to_owned())
        }
        "approve" => Verb::Approve,
        "stop" => Verb::Stop,
        "status" => Verb::Status,
        other => Verb::Unknown(other.to_owned()),
    }))
}

/// The issue a baton pull request's body names (`<!-- baton:issue=N -->`).
pub fn issue_of_pull_request(body: &str) -> Option<u64> {
    let start = body.find("<!-- baton:issue=")? + "<!-- baton:issue=".len();
    let digits: String = body[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The parent an epic's child names (`<!-- baton:child=<parent>/<index> -->`,
/// written by publish when it files the child).
pub fn parent_of_child(body: &str) -> Option<u64> {
    let start = body.rfind("<!-- baton:child=")? + "<!-- baton:child=".len();
    let rest = &body[start..];
    let (parent, rest) = rest.split_once('/')?;
    rest.split_once(" -->")?
        .0
        .parse::<usize>()
        .ok()
        .and(parent.parse().ok())
}

/// The workflow run id in a run link (`…/actions/runs/<id>`).
pub fn run_id_of(url: &str) -> Option<u64> {
    let start = url.rfind("/actions/runs/")? + "/actions/runs/".len();
    let digits: String = url[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_with_case_and_spacing_forgiven() {
        assert_eq!(parse("/baton run"), Some(Ok(Verb::Run)));
        assert_eq!(parse("\n  /Baton   RUN  \nthanks"), Some(Ok(Verb::Run)));
        assert_eq!(
            parse("/baton retry verify"),
            Some(Ok(Verb::Retry(Some(PhaseName::Verify))))
        );
        assert_eq!(parse("/baton retry"), Some(Ok(Verb::Retry(None))));
        assert!(matches!(parse("/baton retry nonsense"), Some(Err(_))));
        assert_eq!(
            parse("/baton fix use a slice\nand keep the old name"),
            Some(Ok(Verb::Fix("use a slice\nand keep the old name".into())))
        );
        assert_eq!(
            parse("/baton dance"),
            Some(Ok(Verb::Unknown("dance".into())))
        );
        assert_eq!(parse("/baton"), Some(Ok(Verb::Unknown(String::new()))));
        assert_eq!(parse("please /baton run"), None);
        assert_eq!(parse("/batonrun"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn markers_and_links() {
        assert_eq!(
            issue_of_pull_request("<!-- baton:issue=42 -->\n# x"),
            Some(42)
        );
        assert_eq!(issue_of_pull_request("no marker"), None);
        assert_eq!(
            parent_of_child("do it\n\n_Split from #3._\n<!-- baton:child=3/1 -->"),
            Some(3)
        );
        assert_eq!(parent_of_child("<!-- baton:child=x/1 -->"), None);
        assert_eq!(parent_of_child("no marker"), None);
        assert_eq!(
            run_id_of("https://github.com/o/r/actions/runs/4242"),
            Some(4242)
        );
        assert_eq!(run_id_of("https://example.com"), None);
    }
}
