//! What starts a run. Today an issue file; forge events (a labelled issue, a
//! `workflow_dispatch`, a `/baton` comment) become variants of the same type,
//! so intake reads one value whatever started it.

use std::path::PathBuf;

pub mod approval;
pub mod command;
pub mod sweep;

use crate::types::Route;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// `--issue-file FILE`: GitHub's issue JSON, or Markdown with front matter.
    IssueFile(PathBuf),
    /// A forge event (a labelled issue, a `workflow_dispatch`): the issue,
    /// its labels and comments are fetched from the forge.
    Forge {
        issue: u64,
        description: String,
        /// `/baton fix`: the comment whose feedback the run applies to the
        /// issue's pull request.
        fix_comment: Option<u64>,
    },
}

impl Trigger {
    /// How the evidence and the manifest name the trigger.
    pub fn describe(&self) -> String {
        match self {
            Self::IssueFile(path) => format!(
                "issue file {}",
                path.file_name().map_or_else(
                    || path.display().to_string(),
                    |name| name.to_string_lossy().into_owned()
                )
            ),
            Self::Forge { description, .. } => description.clone(),
        }
    }
}

/// What intake is asked to do.
#[derive(Debug, Clone)]
pub struct IntakeRequest {
    pub trigger: Trigger,
    /// Where the run goes (default: `$BATON_RUN_DIR`, else `.baton/runs/<id>`).
    pub run_dir: Option<PathBuf>,
    /// `--route` (or a dispatch input): overrides labels and the model.
    pub route: Option<Route>,
}
