//! `manifest.json`: the index of a run and the only state phases share.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::artifact;
use crate::types::{Budget, ForgeKind, Outcome, PhaseName, Route, Spend};

pub const SCHEMA: &str = "baton.run/v2";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: String,
    pub run_id: String,
    pub repository: String,
    pub issue: IssueRef,
    pub base_sha: String,
    pub branch: String,
    pub route: Route,
    /// Why this route: a label, the model's reason, an override, or the default.
    pub route_reason: String,
    /// What started the run (an issue file, a forge event).
    pub trigger: String,
    pub created_at: String,
    pub phases: Vec<PhaseRecord>,
    pub budget: BudgetState,
    pub outcome: Outcome,
    /// Why the run stopped, when it did not end `done`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The index in `phases` of the record that ended the run: invalidating
    /// that record (`--force`) reopens the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<usize>,
    /// The configuration the run was started with, pinned at intake.
    pub config: ConfigPin,
    /// Set when a forge event started the run: where baton reports back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge: Option<ForgeRun>,
    /// relative path → sha256 of every file in the run directory but this one.
    pub artifacts: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueRef {
    pub number: u64,
    pub title: String,
    pub url: String,
    /// The epic this issue was split from, when baton itself filed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u64>,
}

/// The forge side of a run started from a forge event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgeRun {
    pub kind: ForgeKind,
    /// `owner/name`.
    pub repository: String,
    /// The tracking comment's id, created at intake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_comment: Option<u64>,
    /// The CI run that started the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_url: Option<String>,
    /// The pull request publish opened or updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequestRef>,
    /// Child issues publish filed (epic route).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<u64>,
    /// The commit a `/baton approve` released the approval checkpoint for,
    /// when publish found that approval valid for what it pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_head: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestRef {
    pub number: u64,
    pub url: String,
    pub draft: bool,
}

/// Which configuration file a run reads, fixed at intake: later phases read
/// it from the base commit and refuse to run if its sha256 differs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigPin {
    /// Repository-relative path; `None` when the built-in defaults apply.
    /// For a config outside the repository (local runs only), its file name.
    pub path: Option<String>,
    /// sha256 of the file's bytes (empty for the defaults).
    pub sha256: String,
    /// A `--config` outside the repository: allowed only locally, flagged in
    /// the evidence, passed again to every later phase.
    #[serde(default)]
    pub outside_repository: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BudgetState {
    pub limits: Budget,
    pub spent: Spend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseStatus {
    /// Started and not ended: a live job holds the run's lock, or the job died.
    Running,
    Done,
    /// Could not finish (an infrastructure or input error): rerunnable.
    Failed,
    /// Ran to its end and stopped the run (blocked, failed, rejected, budget).
    Stopped,
    /// Stopped by SIGINT or SIGTERM: the run is `cancelled`, the phase rerunnable.
    Interrupted,
    /// Invalidated by `--force` on this or an earlier phase; kept for its spend.
    Superseded,
}

impl PhaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
            Self::Superseded => "superseded",
        }
    }
}

/// One execution of a phase. `verify` and `repair` may appear several times.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseRecord {
    pub name: PhaseName,
    pub status: PhaseStatus,
    pub attempts: u32,
    pub model: Option<String>,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_usd: f64,
    pub wall_s: f64,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Spend per model (fallbacks and validators use other models).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_model: BTreeMap<String, Spend>,
    /// Models that took over from the phase's model (`from → to`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
    /// verify: sha256 of the patch it checked; tests, implement, repair: of
    /// the patch they left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_sha256: Option<String>,
    /// verify: whether every required gate passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed: Option<bool>,
    /// verify: the failure signature when gates failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Tool calls repeated with nothing written since, answered from their
    /// first result instead of being run again.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repeated_calls: u32,
    /// tests, implement, repair: new files that commands produced (a
    /// build's output), left out of the patch; the first ones named.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub left_out_count: usize,
    /// The transcripts this execution wrote (removed when it is superseded
    /// or when an unfinished execution is run again).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transcripts: Vec<String>,
    /// What confined the commands this execution ran, one line per use
    /// (agent commands, gates, executor): `crate::sandbox::Sandbox::line`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sandbox: Vec<String>,
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_zero(count: &u32) -> bool {
    *count == 0
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_zero_usize(count: &usize) -> bool {
    *count == 0
}

impl PhaseRecord {
    pub fn started(name: PhaseName, model: Option<String>) -> Self {
        Self {
            name,
            status: PhaseStatus::Running,
            attempts: 0,
            model,
            tokens_in: 0,
            tokens_out: 0,
            cost_usd: 0.0,
            wall_s: 0.0,
            started_at: crate::clock::now_rfc3339(),
            finished_at: None,
            by_model: BTreeMap::new(),
            fallbacks: Vec::new(),
            patch_sha256: None,
            passed: None,
            signature: None,
            note: None,
            repeated_calls: 0,
            left_out: Vec::new(),
            left_out_count: 0,
            transcripts: Vec::new(),
            sandbox: Vec::new(),
        }
    }

    pub fn spend(&self) -> Spend {
        Spend {
            tokens_in: self.tokens_in,
            tokens_out: self.tokens_out,
            cost_usd: self.cost_usd,
            wall_s: self.wall_s,
        }
    }

    /// Adds one model reply's usage to this phase.
    pub fn record_usage(&mut self, model: &str, spend: &Spend) {
        self.tokens_in += spend.tokens_in;
        self.tokens_out += spend.tokens_out;
        self.cost_usd += spend.cost_usd;
        self.by_model
            .entry(model.to_owned())
            .or_default()
            .add(&Spend {
                wall_s: 0.0,
                ..*spend
            });
    }
}

impl Manifest {
    /// Total spend, derived from the phase records so it can never drift.
    pub fn spent(&self) -> Spend {
        let mut total = Spend::default();
        for record in &self.phases {
            total.add(&record.spend());
        }
        total
    }

    pub fn refresh_spent(&mut self) {
        self.budget.spent = self.spent();
    }

    pub fn last_record(&self, name: PhaseName) -> Option<&PhaseRecord> {
        self.phases.iter().rev().find(|record| record.name == name)
    }

    /// Records that still count for deciding what runs (not superseded).
    pub fn valid(&self) -> impl DoubleEndedIterator<Item = (usize, &PhaseRecord)> {
        self.phases
            .iter()
            .enumerate()
            .filter(|(_, record)| record.status != PhaseStatus::Superseded)
    }

    /// The current patch's sha256, as the artifacts list records it.
    pub fn patch_sha256(&self) -> Option<&str> {
        self.artifacts.get(artifact::PATCH).map(String::as_str)
    }

    pub fn count(&self, name: PhaseName) -> u32 {
        self.phases
            .iter()
            .filter(|record| record.name == name && record.status == PhaseStatus::Done)
            .count() as u32
    }

    /// Whether the run has ended (any outcome but `running`).
    pub fn has_ended(&self) -> bool {
        self.outcome.is_terminal()
    }

    #[cfg(test)]
    pub fn for_tests(route: Route) -> Self {
        Self {
            schema: SCHEMA.into(),
            run_id: "run-test".into(),
            repository: "local".into(),
            issue: IssueRef {
                number: 1,
                title: "t".into(),
                url: String::new(),
                parent: None,
            },
            base_sha: "0".repeat(40),
            branch: "baton/issue-1".into(),
            route,
            route_reason: "test".into(),
            trigger: "test".into(),
            created_at: crate::clock::now_rfc3339(),
            phases: Vec::new(),
            budget: BudgetState {
                limits: Budget::default(),
                spent: Spend::default(),
            },
            outcome: Outcome::Running,
            reason: None,
            ended_by: None,
            config: ConfigPin::default(),
            forge: None,
            artifacts: BTreeMap::new(),
        }
    }
}
