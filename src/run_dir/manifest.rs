//! `manifest.json`: the index of a run and the only state phases share.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::Budget;
use crate::pipeline::budget::Spend;
use crate::pipeline::{Outcome, PhaseName, Route};

pub const SCHEMA: &str = "baton.run/v1";

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
    pub created_at: String,
    pub phases: Vec<PhaseRecord>,
    pub budget: BudgetState,
    pub outcome: Outcome,
    /// Why the run stopped, when it did not end `done`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// relative path → sha256 of every file in the run directory but this one.
    pub artifacts: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueRef {
    pub number: u64,
    pub title: String,
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BudgetState {
    pub limits: Budget,
    pub spent: Spend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseStatus {
    Running,
    Done,
    Failed,
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
    /// verify: sha256 of the patch it checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_sha256: Option<String>,
    /// verify: whether every required gate passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
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
            input_sha256: None,
            passed: None,
            note: None,
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

    pub fn count(&self, name: PhaseName) -> u32 {
        self.phases
            .iter()
            .filter(|record| record.name == name && record.status == PhaseStatus::Done)
            .count() as u32
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
            },
            base_sha: "0".repeat(40),
            branch: "baton/issue-1".into(),
            route,
            route_reason: "test".into(),
            created_at: crate::clock::now_rfc3339(),
            phases: Vec::new(),
            budget: BudgetState {
                limits: Budget::default(),
                spent: Spend::default(),
            },
            outcome: Outcome::Running,
            reason: None,
            artifacts: BTreeMap::new(),
        }
    }
}
