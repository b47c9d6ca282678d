//! The run's own vocabulary, at the bottom of the module graph: routes,
//! phases, outcomes, verdicts, model tiers, budget limits and spend.
//!
//! Config, pipeline, run directory and evidence all speak these types and
//! none of them imports another to get them, so no import circle can form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The task shape picked at intake (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    Feature,
    Hotfix,
    Chore,
    Epic,
    /// `/baton fix <text>` on a baton pull request: the pull request's
    /// change repaired with that feedback and verified again. Only a fix
    /// dispatch picks it (never a label or the `route` input).
    Fix,
}

impl Route {
    /// The routes a label, the `route` input or `--route` may pick.
    pub const ALL: [Route; 4] = [Route::Feature, Route::Hotfix, Route::Chore, Route::Epic];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Feature => "feature",
            Self::Hotfix => "hotfix",
            Self::Chore => "chore",
            Self::Epic => "epic",
            Self::Fix => "fix",
        }
    }

    /// The phases of the route in order; `verify`/`repair` stand once each,
    /// their loop is decided by `next_phase`.
    pub fn phases(self) -> &'static [PhaseName] {
        use PhaseName::{
            Design, Implement, Intake, Plan, Publish, Repair, Review, Spec, Split, Tests, Verify,
        };
        match self {
            Self::Feature => &[
                Intake, Spec, Design, Plan, Tests, Implement, Verify, Repair, Review, Publish,
            ],
            Self::Hotfix => &[
                Intake, Spec, Tests, Implement, Verify, Repair, Review, Publish,
            ],
            Self::Chore => &[Intake, Plan, Implement, Verify, Repair, Review, Publish],
            Self::Epic => &[Intake, Spec, Design, Split, Publish],
            Self::Fix => &[Intake, Repair, Verify, Review, Publish],
        }
    }

    pub fn contains(self, phase: PhaseName) -> bool {
        self.phases().contains(&phase)
    }
}

impl fmt::Display for Route {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for Route {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Route::ALL
            .into_iter()
            .find(|route| route.as_str() == text)
            .ok_or_else(|| format!("unknown route `{text}`; use feature, hotfix, chore or epic"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseName {
    Intake,
    Spec,
    Design,
    Plan,
    Tests,
    Implement,
    Verify,
    Repair,
    Review,
    Split,
    Publish,
}

impl PhaseName {
    pub const ALL: [PhaseName; 11] = [
        Self::Intake,
        Self::Spec,
        Self::Design,
        Self::Plan,
        Self::Tests,
        Self::Implement,
        Self::Verify,
        Self::Repair,
        Self::Review,
        Self::Split,
        Self::Publish,
    ];

    pub const ALL_NAMES: &'static [&'static str] = &[
        "intake",
        "spec",
        "design",
        "plan",
        "tests",
        "implement",
        "verify",
        "repair",
        "review",
        "split",
        "publish",
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL_NAMES[self as usize]
    }

    /// The tier a phase uses when `[phases.X].model` is unset: the cheapest
    /// that fits the work.
    pub fn default_tier(self) -> Tier {
        match self {
            Self::Intake | Self::Verify | Self::Publish => Tier::Light,
            Self::Design => Tier::Heavy,
            _ => Tier::Standard,
        }
    }

    /// Phases whose deliverable goes through the validator loop.
    pub fn is_validated(self) -> bool {
        matches!(
            self,
            Self::Spec | Self::Design | Self::Plan | Self::Review | Self::Split
        )
    }
}

impl fmt::Display for PhaseName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for PhaseName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|phase| phase.as_str() == text)
            .ok_or_else(|| {
                format!(
                    "unknown phase `{text}`; use one of: {}",
                    Self::ALL_NAMES.join(" ")
                )
            })
    }
}

/// How a run ends (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Running,
    Done,
    Blocked,
    Failed,
    BudgetExceeded,
    Cancelled,
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Blocked => "blocked",
            Self::Failed => "failed",
            Self::BudgetExceeded => "budget_exceeded",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
        }
    }

    pub fn is_terminal(self) -> bool {
        self != Self::Running
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The validator's answer on a deliverable (SPEC §4, `submit_verdict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Revise,
}

impl Verdict {
    pub const NAMES: [&'static str; 2] = ["pass", "revise"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Revise => "revise",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The review's answer on the diff (SPEC §4, `submit_review`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewVerdict {
    Approve,
    RequestChanges,
}

impl ReviewVerdict {
    pub const NAMES: [&'static str; 2] = ["approve", "request_changes"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::RequestChanges => "request_changes",
        }
    }
}

impl fmt::Display for ReviewVerdict {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The model tiers of `[models]`, cheapest last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Heavy,
    Standard,
    Light,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Heavy, Tier::Standard, Tier::Light];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Heavy => "heavy",
            Self::Standard => "standard",
            Self::Light => "light",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|tier| tier.as_str() == text)
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The forge a repository lives on (SPEC §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    #[serde(rename = "github")]
    GitHub,
    Forgejo,
}

impl fmt::Display for ForgeKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::GitHub => "GitHub",
            Self::Forgejo => "Forgejo",
        })
    }
}

/// `[budget]`: the hard stop conditions of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Budget {
    pub max_cost_usd: f64,
    pub max_tokens: u64,
    pub max_wall_minutes: f64,
    pub max_repairs: u32,
    pub max_changed_files: usize,
    pub max_diff_lines: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            max_cost_usd: 5.0,
            max_tokens: 2_000_000,
            max_wall_minutes: 60.0,
            max_repairs: 2,
            max_changed_files: 25,
            max_diff_lines: 1500,
        }
    }
}

/// `[pricing."provider:model"]`: dollars per million tokens.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

/// What a run (or one phase) has spent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Spend {
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_usd: f64,
    pub wall_s: f64,
}

impl Spend {
    pub fn tokens(&self) -> u64 {
        self.tokens_in + self.tokens_out
    }

    pub fn add(&mut self, other: &Spend) {
        self.tokens_in += other.tokens_in;
        self.tokens_out += other.tokens_out;
        self.cost_usd += other.cost_usd;
        self.wall_s += other.wall_s;
    }
}
