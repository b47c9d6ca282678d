//! The `baton.toml` schema (SPEC §5): defaults in one place, strict parsing, and
//! a check that reports every error with its key path.
//!
//! Parsing goes section by section so that one bad value does not hide the
//! next: unknown keys are collected with `serde_ignored` (all of them, with
//! their paths), type errors with `serde_path_to_error`, and semantic checks
//! (tiers, providers, globs, gates) run on what parsed.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use crate::sandbox::{SandboxConfig, SandboxMode};
pub use crate::types::{Budget, Price};
use crate::types::{ForgeKind, PhaseName, Route, Tier};

/// File names looked up in a repository, in order (after `--config` and
/// `BATON_CONFIG`).
pub const CONFIG_LOOKUP: &[&str] = &[".github/baton.toml", ".forgejo/baton.toml", "baton.toml"];

#[derive(Debug, Clone, Default, Serialize)]
pub struct Config {
    pub models: Models,
    pub providers: BTreeMap<String, ProviderConfig>,
    pub phases: BTreeMap<String, PhaseConfig>,
    pub budget: Budget,
    pub scope: Scope,
    pub gates: Vec<Gate>,
    pub triggers: Triggers,
    pub sweep: Sweep,
    pub agent: AgentConfig,
    pub pricing: BTreeMap<String, Price>,
    pub review: ReviewConfig,
    pub executor: Option<ExecutorConfig>,
    pub forge: ForgeConfig,
    pub publish: PublishConfig,
    pub sandbox: SandboxConfig,
}

/// `[forge]`: which forge and how patiently to talk to it. In CI the
/// environment (`FORGEJO_ACTIONS`, `GITHUB_API_URL`) wins.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ForgeConfig {
    pub kind: Option<ForgeKind>,
    pub api_url: Option<String>,
    /// Per request.
    pub timeout_s: u64,
    /// The longest rate-limit wait baton sits out.
    pub max_wait_s: u64,
}

impl Default for ForgeConfig {
    fn default() -> Self {
        Self {
            kind: None,
            api_url: None,
            timeout_s: 30,
            max_wait_s: 120,
        }
    }
}

/// `[publish]`: the pull request publish opens or updates.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PublishConfig {
    /// The PR's base branch (default: the repository's default branch).
    pub base: Option<String>,
    pub reviewers: Vec<String>,
    /// How a run that did not end `done` keeps its work: a draft PR
    /// (`draft`, the default) or only a comment on the issue (`comment`).
    pub unfinished: Unfinished,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unfinished {
    #[default]
    Draft,
    Comment,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Models {
    pub heavy: String,
    pub standard: String,
    pub light: String,
    pub fallback: Vec<String>,
}

impl Models {
    /// The `provider:model` a tier names.
    pub fn tier(&self, tier: Tier) -> &str {
        match tier {
            Tier::Heavy => &self.heavy,
            Tier::Standard => &self.standard,
            Tier::Light => &self.light,
        }
    }
}

impl Default for Models {
    fn default() -> Self {
        Self {
            heavy: "anthropic:claude-opus-4-1".into(),
            standard: "anthropic:claude-sonnet-4-5".into(),
            light: "anthropic:claude-haiku-4-5".into(),
            fallback: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Anthropic,
    Openai,
    Scripted,
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::Anthropic => "anthropic",
            Self::Openai => "openai",
            Self::Scripted => "scripted",
        })
    }
}

impl ProviderKind {
    /// The key variable used when `api_key_env` is not set, and the
    /// variable that may give the base URL; `None` for `scripted`.
    pub fn variables(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::Anthropic => Some(("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")),
            Self::Openai => Some(("OPENAI_API_KEY", "OPENAI_BASE_URL")),
            Self::Scripted => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
    /// `scripted` only: the JSON script of replies, relative to the config file.
    #[serde(default)]
    pub script: Option<PathBuf>,
    /// Retries of one request on 429, 529, 5xx, timeouts and connection errors.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// First backoff (doubled each retry, with jitter) when the server names no wait.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    /// The longest single wait, whatever the server asks.
    #[serde(default = "default_max_wait_s")]
    pub max_wait_s: u64,
    /// Timeout of one request.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: u64,
    /// When the model must call a tool: `auto` (from its second prose reply
    /// on), or from the first request for servers that leave tools out of
    /// the prompt unless forced: `required` (any tool) or `force` (the
    /// phase's submit tool; any tool in agent phases).
    #[serde(default)]
    pub tool_choice: ToolChoicePolicy,
    /// The model's context window in tokens (prompt and reply together):
    /// requests are kept inside it. Default: built in for well-known
    /// models, else 8192 (a local server's usual window).
    #[serde(default)]
    pub context_window: Option<u32>,
    /// The longest reply asked for (`max_tokens`). Default: built in for
    /// well-known models, else a quarter of the window.
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    /// One of the providers baton adds when the file does not define it.
    #[serde(skip)]
    pub builtin: bool,
}

/// What a model can take: its window and the longest reply asked of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelLimits {
    pub context_window: u32,
    pub max_output_tokens: u32,
}

impl ModelLimits {
    /// Built-in limits for well-known model names; `None` for the rest.
    pub fn known(model: &str) -> Option<Self> {
        let model = model.to_ascii_lowercase();
        let limits = |context_window, max_output_tokens| Self {
            context_window,
            max_output_tokens,
        };
        let table: &[(&str, Self)] = &[
            ("claude-", limits(200_000, 8192)),
            ("gpt-5", limits(400_000, 16_384)),
            ("gpt-4.1", limits(1_000_000, 16_384)),
            ("gpt-4o", limits(128_000, 8192)),
            ("o3", limits(200_000, 16_384)),
            ("o4-mini", limits(200_000, 16_384)),
            ("qwen2.5-coder", limits(32_768, 4096)),
            ("qwen3", limits(32_768, 4096)),
        ];
        table
            .iter()
            .find(|(prefix, _)| model.starts_with(prefix) || model.contains(&format!("/{prefix}")))
            .map(|(_, limits)| *limits)
    }
}

/// The window assumed for a model baton knows nothing about.
const DEFAULT_CONTEXT_WINDOW: u32 = 8192;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoicePolicy {
    #[default]
    Auto,
    Required,
    Force,
}

fn default_max_retries() -> u32 {
    3
}

fn default_backoff_ms() -> u64 {
    1000
}

fn default_max_wait_s() -> u64 {
    60
}

fn default_timeout_s() -> u64 {
    300
}

impl ProviderConfig {
    fn builtin(kind: ProviderKind, api_key_env: &str) -> Self {
        Self {
            kind,
            api_key_env: Some(api_key_env.into()),
            base_url: None,
            script: None,
            max_retries: default_max_retries(),
            backoff_ms: default_backoff_ms(),
            max_wait_s: default_max_wait_s(),
            timeout_s: default_timeout_s(),
            tool_choice: ToolChoicePolicy::Auto,
            context_window: None,
            max_output_tokens: None,
            builtin: true,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PhaseConfig {
    /// A tier (`heavy`, `standard`, `light`) or `provider:model`.
    pub model: Option<String>,
    /// Validator-checked tries before the run is `blocked`.
    pub attempts: Option<u32>,
    /// Model turns per attempt before the attempt counts as failed.
    pub max_turns: Option<u32>,
    /// The validator's model; the light tier when unset.
    pub validator: Option<String>,
    /// After a validator `revise`, the next attempt runs on this model.
    pub escalate: Option<String>,
    /// spec only: a second reviewer hunts edge cases, failure modes and
    /// missing acceptance criteria before design starts.
    pub adversarial: bool,
    /// implement only: one fresh-context session per plan step.
    pub per_step: bool,
    /// tests only: the globs the tests phase may write (default: the common
    /// test layouts, `TEST_PATHS`).
    pub paths: Option<Vec<String>>,
}

/// Where tests live in the common layouts: what the tests phase may write
/// unless `[phases.tests].paths` says otherwise.
pub const TEST_PATHS: &[&str] = &[
    "tests/**",
    "test/**",
    "spec/**",
    "**/test_*.*",
    "**/*_test.*",
    "**/*.test.*",
    "**/*_spec.*",
];

/// `[review]`: several reviewers, each with a persona and a weight.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ReviewConfig {
    pub panel: Vec<Persona>,
    /// The weighted share of `approve` votes that must be exceeded to approve.
    pub approve_threshold: f64,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        Self {
            panel: Vec::new(),
            approve_threshold: 0.5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persona {
    /// `security`, `reliability`, `product`, … (free text: the reviewer's lens).
    pub persona: String,
    #[serde(default = "default_weight")]
    pub weight: f64,
}

fn default_weight() -> f64 {
    1.0
}

/// `[executor]`: an external agent CLI for implement and repair.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorConfig {
    pub kind: ExecutorKind,
    /// The command, run with `sh -c` in the work tree; `{prompt_file}` is
    /// replaced by the prompt file's quoted path (also in `$BATON_PROMPT_FILE`).
    /// Defaults per kind; required for `command`.
    #[serde(default)]
    pub command: Option<String>,
    /// The one variable the executor may see (its model key); none by default
    /// for `command`.
    #[serde(default)]
    pub key_env: Option<String>,
    #[serde(default = "default_executor_timeout")]
    pub timeout_s: u64,
    /// The phases it runs (implement, repair).
    #[serde(default = "default_executor_phases")]
    pub phases: Vec<String>,
}

fn default_executor_timeout() -> u64 {
    1800
}

fn default_executor_phases() -> Vec<String> {
    vec!["implement".into(), "repair".into()]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecutorKind {
    ClaudeCode,
    Codex,
    Opencode,
    Aider,
    Command,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Scope {
    pub deny: Vec<String>,
    pub allow: Vec<String>,
    pub approval: Vec<String>,
    /// Whether files outside the plan's touchpoints reject the run (`true`) or
    /// are only reported.
    pub enforce_plan: bool,
}

impl Default for Scope {
    fn default() -> Self {
        Self {
            deny: [
                ".github/**",
                ".forgejo/**",
                "**/.env*",
                "**/*.pem",
                "**/*.key",
            ]
            .map(String::from)
            .to_vec(),
            allow: Vec::new(),
            approval: Vec::new(),
            enforce_plan: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gate {
    pub name: String,
    pub run: String,
    #[serde(default = "default_gate_timeout")]
    pub timeout_s: u64,
    #[serde(default = "default_true")]
    pub required: bool,
}

fn default_gate_timeout() -> u64 {
    900
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Triggers {
    pub label: String,
    pub sweep_label: String,
    pub routes: BTreeMap<String, Route>,
    /// The workflow `/baton run` and the sweep dispatch.
    pub workflow: String,
    /// Bot logins whose `/baton` comments are acted on (any other bot's,
    /// and baton's own, are ignored).
    pub allowed_bots: Vec<String>,
}

impl Default for Triggers {
    fn default() -> Self {
        Self {
            label: "baton".into(),
            sweep_label: "baton:ready".into(),
            allowed_bots: Vec::new(),
            routes: [
                ("bug", Route::Hotfix),
                ("epic", Route::Epic),
                ("chore", Route::Chore),
            ]
            .into_iter()
            .map(|(label, route)| (label.to_owned(), route))
            .collect(),
            workflow: "baton.yml".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Sweep {
    pub max_runs: u32,
}

impl Default for Sweep {
    fn default() -> Self {
        Self { max_runs: 5 }
    }
}

/// Limits of the agent's tools.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentConfig {
    pub max_turns: u32,
    pub command_timeout_s: u64,
    pub output_limit_bytes: usize,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            max_turns: 40,
            command_timeout_s: 300,
            output_limit_bytes: 16 * 1024,
        }
    }
}

/// One problem found in a config file, with its key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            formatter.write_str(&self.message)
        } else {
            write!(formatter, "`{}`: {}", self.key, self.message)
        }
    }
}

/// Where the config came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    Defaults,
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(formatter, "{}", path.display()),
            Self::Defaults => formatter.write_str("built-in defaults"),
        }
    }
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "models",
    "providers",
    "phases",
    "budget",
    "scope",
    "gates",
    "triggers",
    "sweep",
    "agent",
    "pricing",
    "review",
    "executor",
    "forge",
    "publish",
    "sandbox",
];

impl Config {
    /// Parses and checks TOML text. Returns the config, or every issue found.
    pub fn parse(text: &str) -> Result<Self, Vec<ConfigIssue>> {
        let (config, issues) = Self::parse_with_issues(text).map_err(|issue| vec![issue])?;
        if issues.is_empty() {
            Ok(config)
        } else {
            Err(issues)
        }
    }

    /// The config as far as it could be read (a table with errors keeps
    /// its defaults), and every issue; `Err` when the text is not TOML.
    pub fn parse_with_issues(text: &str) -> Result<(Self, Vec<ConfigIssue>), ConfigIssue> {
        let table: toml::Table = match text.parse() {
            Ok(table) => table,
            Err(error) => {
                return Err(ConfigIssue {
                    key: String::new(),
                    message: format!("not valid TOML: {}", error.to_string().trim()),
                });
            }
        };
        let mut issues = Vec::new();
        let mut config = Self::default();
        for (key, value) in &table {
            match key.as_str() {
                "models" => section(key, value, &mut issues, &mut config.models),
                "providers" => section(key, value, &mut issues, &mut config.providers),
                "phases" => section(key, value, &mut issues, &mut config.phases),
                "budget" => section(key, value, &mut issues, &mut config.budget),
                "scope" => section(key, value, &mut issues, &mut config.scope),
                "gates" => section(key, value, &mut issues, &mut config.gates),
                "triggers" => section(key, value, &mut issues, &mut config.triggers),
                "forge" => section(key, value, &mut issues, &mut config.forge),
                "publish" => section(key, value, &mut issues, &mut config.publish),
                "sweep" => section(key, value, &mut issues, &mut config.sweep),
                "agent" => section(key, value, &mut issues, &mut config.agent),
                "pricing" => section(key, value, &mut issues, &mut config.pricing),
                "review" => section(key, value, &mut issues, &mut config.review),
                "executor" => section(key, value, &mut issues, &mut config.executor),
                "sandbox" => section(key, value, &mut issues, &mut config.sandbox),
                _ => issues.push(unknown_key(key, TOP_LEVEL_KEYS)),
            }
        }
        config.add_default_providers();
        issues.extend(config.semantic_issues());
        Ok((config, issues))
    }

    /// Reads a file; an unreadable file or any issue is an error naming the file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            crate::bad_input!(
                "cannot read config file {}: {error}; pass an existing file with --config",
                path.display()
            )
        })?;
        Self::parse(&text).map_err(|issues| config_error(&path.display().to_string(), &issues))
    }

    /// The anthropic and openai providers exist unless the file redefines them.
    fn add_default_providers(&mut self) {
        self.providers.entry("anthropic".into()).or_insert_with(|| {
            ProviderConfig::builtin(ProviderKind::Anthropic, "ANTHROPIC_API_KEY")
        });
        self.providers
            .entry("openai".into())
            .or_insert_with(|| ProviderConfig::builtin(ProviderKind::Openai, "OPENAI_API_KEY"));
    }

    fn semantic_issues(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        for (name, provider) in &self.providers {
            if let Some(url) = &provider.base_url {
                let lower = url.to_ascii_lowercase();
                if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                    issues.push(ConfigIssue {
                        key: format!("providers.{name}.base_url"),
                        message: format!(
                            "`{url}` has no scheme; write it in full, like `http://127.0.0.1:8080/v1`"
                        ),
                    });
                } else if let Some((default_key, _)) = provider.kind.variables()
                    && provider.api_key_env.is_none()
                    && !is_loopback_url(url)
                    && !is_official_url(provider.kind, url)
                {
                    issues.push(ConfigIssue {
                        key: format!("providers.{name}.api_key_env"),
                        message: format!(
                            "`{url}` is neither this machine nor the {kind} API: name the variable holding its key with `api_key_env` (${default_key} is only ever sent to the {kind} API)",
                            kind = provider.kind
                        ),
                    });
                }
            }
            if let Some(window) = provider.context_window
                && window < 1024
            {
                issues.push(ConfigIssue {
                    key: format!("providers.{name}.context_window"),
                    message: format!(
                        "{window} tokens is too small to hold a phase's prompt; give at least 1024"
                    ),
                });
            }
            if let (Some(window), Some(output)) =
                (provider.context_window, provider.max_output_tokens)
                && output.saturating_mul(2) > window
            {
                issues.push(ConfigIssue {
                    key: format!("providers.{name}.max_output_tokens"),
                    message: format!("{output} leaves too little of the {window}-token window for the prompt; give at most half of context_window"),
                });
            }
        }
        let check_model = |key: String, reference: &str, issues: &mut Vec<ConfigIssue>| {
            if let Err(message) = self.resolve_model_reference(reference) {
                issues.push(ConfigIssue { key, message });
            }
        };
        for tier in Tier::ALL {
            let reference = self.models.tier(tier);
            if Tier::parse(reference).is_some() {
                issues.push(ConfigIssue {
                    key: format!("models.{tier}"),
                    message: "a tier must name `provider:model`, not another tier".into(),
                });
            } else {
                check_model(format!("models.{tier}"), reference, &mut issues);
            }
        }
        for (index, reference) in self.models.fallback.iter().enumerate() {
            check_model(format!("models.fallback[{index}]"), reference, &mut issues);
        }
        for (name, provider) in &self.providers {
            if provider.kind == ProviderKind::Scripted && provider.script.is_none() {
                issues.push(ConfigIssue {
                    key: format!("providers.{name}.script"),
                    message: "a scripted provider needs `script = \"path/to/script.json\"`".into(),
                });
            }
        }
        for (phase, settings) in &self.phases {
            if phase.parse::<PhaseName>().is_err() {
                issues.push(unknown_key(
                    &format!("phases.{phase}"),
                    PhaseName::ALL_NAMES,
                ));
                continue;
            }
            if let Some(reference) = &settings.model {
                check_model(format!("phases.{phase}.model"), reference, &mut issues);
            }
            if let Some(reference) = &settings.validator {
                check_model(format!("phases.{phase}.validator"), reference, &mut issues);
            }
            if let Some(reference) = &settings.escalate {
                check_model(format!("phases.{phase}.escalate"), reference, &mut issues);
            }
            if settings.adversarial && phase != "spec" {
                issues.push(ConfigIssue {
                    key: format!("phases.{phase}.adversarial"),
                    message: "only the spec phase has an adversarial pass".into(),
                });
            }
            if settings.per_step && phase != "implement" {
                issues.push(ConfigIssue {
                    key: format!("phases.{phase}.per_step"),
                    message: "only implement runs per plan step".into(),
                });
            }
            if settings.attempts == Some(0) {
                issues.push(ConfigIssue {
                    key: format!("phases.{phase}.attempts"),
                    message: "must be at least 1".into(),
                });
            }
            if settings.max_turns == Some(0) {
                issues.push(ConfigIssue {
                    key: format!("phases.{phase}.max_turns"),
                    message: "must be at least 1".into(),
                });
            }
        }
        for (key, value) in [
            ("budget.max_cost_usd", self.budget.max_cost_usd),
            ("budget.max_wall_minutes", self.budget.max_wall_minutes),
        ] {
            if !(value.is_finite() && value > 0.0) {
                issues.push(ConfigIssue {
                    key: key.into(),
                    message: "must be a positive number".into(),
                });
            }
        }
        for (key, globs) in [
            ("scope.deny", &self.scope.deny),
            ("scope.allow", &self.scope.allow),
            ("scope.approval", &self.scope.approval),
        ] {
            for (index, glob) in globs.iter().enumerate() {
                if let Err(error) = globset::Glob::new(glob) {
                    issues.push(ConfigIssue {
                        key: format!("{key}[{index}]"),
                        message: format!("`{glob}` is not a valid glob: {error}"),
                    });
                }
            }
        }
        for (label, route) in &self.triggers.routes {
            if !Route::ALL.contains(route) {
                issues.push(ConfigIssue {
                    key: format!("triggers.routes.{label}"),
                    message: format!(
                        "`{route}` is started only by `/baton fix`; use feature, hotfix, chore or epic"
                    ),
                });
            }
        }
        let mut gate_names = std::collections::BTreeSet::new();
        for (index, gate) in self.gates.iter().enumerate() {
            let valid_name = !gate.name.is_empty()
                && gate
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid_name {
                issues.push(ConfigIssue {
                    key: format!("gates[{index}].name"),
                    message: "use letters, digits, `-` and `_` only (it names gates/<name>.json)"
                        .into(),
                });
            } else if !gate_names.insert(gate.name.as_str()) {
                issues.push(ConfigIssue {
                    key: format!("gates[{index}].name"),
                    message: format!("gate `{}` is defined twice", gate.name),
                });
            }
            if gate.run.trim().is_empty() {
                issues.push(ConfigIssue {
                    key: format!("gates[{index}].run"),
                    message: "the command is empty".into(),
                });
            }
            if gate.timeout_s == 0 {
                issues.push(ConfigIssue {
                    key: format!("gates[{index}].timeout_s"),
                    message: "must be at least 1".into(),
                });
            }
        }
        for (index, persona) in self.review.panel.iter().enumerate() {
            if !(persona.weight.is_finite() && persona.weight > 0.0) {
                issues.push(ConfigIssue {
                    key: format!("review.panel[{index}].weight"),
                    message: "must be a positive number".into(),
                });
            }
        }
        if !(0.0..1.0).contains(&self.review.approve_threshold) {
            issues.push(ConfigIssue {
                key: "review.approve_threshold".into(),
                message: "must be at least 0 and below 1".into(),
            });
        }
        if let Some(executor) = &self.executor {
            if executor.kind == ExecutorKind::Command && executor.command.is_none() {
                issues.push(ConfigIssue {
                    key: "executor.command".into(),
                    message: "kind = \"command\" needs a command".into(),
                });
            }
            for (index, phase) in executor.phases.iter().enumerate() {
                if phase != "implement" && phase != "repair" {
                    issues.push(ConfigIssue {
                        key: format!("executor.phases[{index}]"),
                        message: "an executor runs implement and repair only".into(),
                    });
                }
            }
        }
        for (model, price) in &self.pricing {
            if !model.contains(':') {
                issues.push(ConfigIssue {
                    key: format!("pricing.\"{model}\""),
                    message: "price keys are `provider:model`".into(),
                });
            }
            if price.input_per_mtok < 0.0 || price.output_per_mtok < 0.0 {
                issues.push(ConfigIssue {
                    key: format!("pricing.\"{model}\""),
                    message: "prices cannot be negative".into(),
                });
            }
        }
        issues
    }

    /// `heavy` → `anthropic:claude-opus-4-1` → (provider, model).
    pub fn resolve_model_reference(&self, reference: &str) -> Result<ModelRef, String> {
        let full = Tier::parse(reference).map_or(reference, |tier| self.models.tier(tier));
        let Some((provider, model)) = full.split_once(':') else {
            return Err(format!(
                "`{full}` is neither a tier (heavy, standard, light) nor `provider:model`"
            ));
        };
        if provider.is_empty() || model.is_empty() {
            return Err(format!("`{full}` must be `provider:model`"));
        }
        if !self.providers.contains_key(provider) {
            let known: Vec<&str> = self.providers.keys().map(String::as_str).collect();
            return Err(format!(
                "provider `{provider}` is not defined; add [providers.{provider}] or use one of: {}",
                known.join(", ")
            ));
        }
        Ok(ModelRef {
            provider: provider.to_owned(),
            model: model.to_owned(),
        })
    }

    pub fn phase(&self, phase: PhaseName) -> PhaseConfig {
        self.phases.get(phase.as_str()).cloned().unwrap_or_default()
    }

    /// The model a phase runs on: its own setting, else its default tier.
    pub fn phase_model(&self, phase: PhaseName) -> Result<ModelRef, String> {
        let reference = self
            .phase(phase)
            .model
            .unwrap_or_else(|| phase.default_tier().as_str().to_owned());
        self.resolve_model_reference(&reference)
    }

    /// The validator's model for a phase: the cheapest tier unless configured.
    pub fn validator_model(&self, phase: PhaseName) -> Result<ModelRef, String> {
        let reference = self
            .phase(phase)
            .validator
            .unwrap_or_else(|| Tier::Light.as_str().to_owned());
        self.resolve_model_reference(&reference)
    }

    /// The globs the tests phase may write.
    pub fn test_paths(&self) -> Vec<String> {
        self.phase(PhaseName::Tests)
            .paths
            .unwrap_or_else(|| TEST_PATHS.iter().map(|glob| (*glob).to_owned()).collect())
    }

    /// The test paths as one matcher.
    pub fn test_path_matcher(&self) -> anyhow::Result<globset::GlobSet> {
        let mut builder = globset::GlobSetBuilder::new();
        for glob in self.test_paths() {
            builder.add(globset::Glob::new(&glob).map_err(|error| {
                crate::bad_input!("phases.tests.paths: `{glob}` is not a glob: {error}")
            })?);
        }
        Ok(builder.build()?)
    }

    pub fn attempts(&self, phase: PhaseName) -> u32 {
        self.phase(phase).attempts.unwrap_or(3)
    }

    pub fn max_turns(&self, phase: PhaseName) -> u32 {
        self.phase(phase).max_turns.unwrap_or(self.agent.max_turns)
    }

    /// The `tool_choice` policy of a model's provider.
    pub fn tool_choice(&self, model: &ModelRef) -> ToolChoicePolicy {
        self.providers
            .get(&model.provider)
            .map(|provider| provider.tool_choice)
            .unwrap_or_default()
    }

    /// The model's window and reply limit: the provider's settings, else
    /// the built-in values for its name, else conservative defaults. The
    /// scripted provider has no window.
    pub fn limits(&self, model: &ModelRef) -> ModelLimits {
        let provider = self.providers.get(&model.provider);
        let known = ModelLimits::known(&model.model);
        let scripted = provider.is_some_and(|provider| provider.kind == ProviderKind::Scripted);
        let context_window = provider
            .and_then(|provider| provider.context_window)
            .or(known.map(|known| known.context_window))
            .unwrap_or(if scripted {
                u32::MAX
            } else {
                DEFAULT_CONTEXT_WINDOW
            });
        let max_output_tokens = provider
            .and_then(|provider| provider.max_output_tokens)
            .or(known
                .filter(|known| known.context_window == context_window)
                .map(|known| known.max_output_tokens))
            .unwrap_or(if scripted {
                8192
            } else {
                (context_window / 4).clamp(256, 8192)
            });
        ModelLimits {
            context_window,
            max_output_tokens: max_output_tokens.min(context_window / 2),
        }
    }

    /// The key variables the run's models need and `lookup` does not
    /// have, as (the config key that names the model, the variable). A
    /// provider needs a key when the config names its `api_key_env`, or
    /// when its server is not on this machine (a loopback server without
    /// `api_key_env` needs none). Fallbacks are left out: one that cannot
    /// be built is skipped, not fatal. `base_variable` gives a provider
    /// kind's base-URL variable's value (`ANTHROPIC_BASE_URL`, …).
    pub fn missing_keys(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
        let mut references: Vec<(String, String)> = Tier::ALL
            .iter()
            .map(|tier| (format!("models.{tier}"), self.models.tier(*tier).to_owned()))
            .collect();
        for (phase, settings) in &self.phases {
            for (key, reference) in [
                ("model", &settings.model),
                ("validator", &settings.validator),
                ("escalate", &settings.escalate),
            ] {
                if let Some(reference) = reference {
                    references.push((format!("phases.{phase}.{key}"), reference.clone()));
                }
            }
        }
        let mut missing: Vec<(String, String)> = Vec::new();
        for (key, reference) in references {
            let Ok(model) = self.resolve_model_reference(&reference) else {
                continue;
            };
            let Some(provider) = self.providers.get(&model.provider) else {
                continue;
            };
            let Some((default_key, base_variable)) = provider.kind.variables() else {
                continue;
            };
            let base_url = provider.base_url.clone().or_else(|| lookup(base_variable));
            let loopback = base_url.as_deref().is_some_and(is_loopback_url);
            let named = provider.api_key_env.is_some() && !provider.builtin;
            if loopback && !named {
                continue;
            }
            // A server the config names, not the kind's own API, takes no
            // default key (config check requires `api_key_env` for one
            // that is not on this machine).
            if provider.api_key_env.is_none()
                && provider
                    .base_url
                    .as_deref()
                    .is_some_and(|url| !is_official_url(provider.kind, url))
            {
                continue;
            }
            let variable = provider
                .api_key_env
                .clone()
                .unwrap_or_else(|| default_key.to_owned());
            if lookup(&variable).is_none() && !missing.iter().any(|(_, each)| *each == variable) {
                missing.push((key, variable));
            }
        }
        missing
    }

    pub fn price(&self, model: &ModelRef) -> Option<Price> {
        self.pricing.get(&model.to_string()).copied()
    }
}

/// A concrete model on a concrete provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    pub provider: String,
    pub model: String,
}

impl fmt::Display for ModelRef {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}", self.provider, self.model)
    }
}

/// One error for a whole file: every issue on its own line, exit code 2.
pub fn config_error(file: &str, issues: &[ConfigIssue]) -> anyhow::Error {
    let lines: Vec<String> = issues.iter().map(|issue| format!("  {issue}")).collect();
    crate::bad_input!(
        "invalid config {file} ({} problem{}):\n{}\nfix the key(s) named above; `baton config check` lists them again",
        issues.len(),
        if issues.len() == 1 { "" } else { "s" },
        lines.join("\n")
    )
}

/// Deserializes one top-level section, collecting unknown keys and every
/// type error inside it, each with its full key path: a key found wrong is
/// taken out and the section read again, so one bad key does not hide the
/// next.
fn section<T: DeserializeOwned>(
    name: &str,
    value: &toml::Value,
    issues: &mut Vec<ConfigIssue>,
    target: &mut T,
) {
    let mut unknown = std::collections::BTreeSet::new();
    let mut value = value.clone();
    let mut found = Vec::new();
    // Each round takes a key out; a section has far fewer keys than this.
    for _ in 0..64 {
        let mut track = |path: serde_ignored::Path<'_>| {
            unknown.insert(path.to_string());
        };
        let tracked = serde_ignored::Deserializer::new(value.clone(), &mut track);
        match serde_path_to_error::deserialize::<_, T>(tracked) {
            Ok(parsed) => {
                *target = parsed;
                break;
            }
            Err(error) => {
                let segments: Vec<serde_path_to_error::Segment> =
                    error.path().iter().cloned().collect();
                let message = error.into_inner().to_string();
                let message = message.lines().next().unwrap_or_default().to_owned();
                // A key taken out that the section cannot do without: its
                // own error was already reported.
                if message.starts_with("missing field") && !found.is_empty() {
                    break;
                }
                found.push(ConfigIssue {
                    key: key_path(name, &segments),
                    message: in_toml_terms(&message),
                });
                if !remove_at(&mut value, &segments) {
                    break;
                }
            }
        }
    }
    issues.extend(found);
    for path in unknown {
        let key = format!("{name}.{path}");
        let last = path.rsplit('.').next().unwrap_or(&path);
        let suggestion = section_keys(name).and_then(|known| closest(last, known));
        issues.push(ConfigIssue {
            key,
            message: match suggestion {
                Some(known) => format!("unknown key (did you mean `{known}`?)"),
                None => "unknown key".into(),
            },
        });
    }
}

/// `gates[0].required`, `budget.max_repairs`: the key as a TOML user writes it.
fn key_path(section: &str, segments: &[serde_path_to_error::Segment]) -> String {
    use serde_path_to_error::Segment;
    let mut key = section.to_owned();
    for segment in segments {
        match segment {
            Segment::Seq { index } => {
                let _ = write!(key, "[{index}]");
            }
            Segment::Map { key: name } | Segment::Enum { variant: name } => {
                key.push('.');
                key.push_str(name);
            }
            Segment::Unknown => key.push_str(".?"),
        }
    }
    key
}

/// Takes the value at `segments` out of `value`; false when there is none.
fn remove_at(value: &mut toml::Value, segments: &[serde_path_to_error::Segment]) -> bool {
    use serde_path_to_error::Segment;
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut current = value;
    for segment in parents {
        current = match (segment, current) {
            (Segment::Seq { index }, toml::Value::Array(items)) => match items.get_mut(*index) {
                Some(item) => item,
                None => return false,
            },
            (Segment::Map { key } | Segment::Enum { variant: key }, toml::Value::Table(table)) => {
                match table.get_mut(key) {
                    Some(item) => item,
                    None => return false,
                }
            }
            _ => return false,
        };
    }
    match (last, current) {
        (Segment::Map { key } | Segment::Enum { variant: key }, toml::Value::Table(table)) => {
            table.remove(key).is_some()
        }
        // An element of an array cannot go without shifting the others'
        // indexes: the first error in an array is the one reported.
        _ => false,
    }
}

/// serde's wording (`invalid type: string "10", expected u64`) in TOML's
/// terms (`is the string "10"; give a whole number, 0 or more`).
fn in_toml_terms(message: &str) -> String {
    let parsed = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|rest| rest.rsplit_once(", expected "));
    let Some((found, expected)) = parsed else {
        return message.to_owned();
    };
    let found = if let Some(text) = found.strip_prefix("string ") {
        format!("the string {text}")
    } else if let Some(number) = found.strip_prefix("integer ") {
        format!("the integer {}", number.trim_matches('`'))
    } else if let Some(number) = found.strip_prefix("floating point ") {
        format!("the number {}", number.trim_matches('`'))
    } else if let Some(value) = found.strip_prefix("boolean ") {
        value.trim_matches('`').to_owned()
    } else if found == "sequence" {
        "an array".to_owned()
    } else if found == "map" {
        "a table".to_owned()
    } else {
        found.to_owned()
    };
    let expected = match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a boolean" => "true or false".to_owned(),
        "a sequence" => "an array, like [\"a\", \"b\"]".to_owned(),
        "a map" => "a table".to_owned(),
        "a string" | "a borrowed string" => "a string in quotes".to_owned(),
        other if other.starts_with("struct ") => "a table".to_owned(),
        other => other.to_owned(),
    };
    format!("is {found}; give {expected}")
}

fn section_keys(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "models" => &["heavy", "standard", "light", "fallback"],
        "providers" => &[
            "kind",
            "api_key_env",
            "base_url",
            "script",
            "max_retries",
            "backoff_ms",
            "max_wait_s",
            "timeout_s",
            "tool_choice",
        ],
        "phases" => &[
            "model",
            "attempts",
            "max_turns",
            "validator",
            "escalate",
            "adversarial",
            "per_step",
            "paths",
        ],
        "review" => &["panel", "approve_threshold", "persona", "weight"],
        "executor" => &["kind", "command", "key_env", "timeout_s", "phases"],
        "budget" => &[
            "max_cost_usd",
            "max_tokens",
            "max_wall_minutes",
            "max_repairs",
            "max_changed_files",
            "max_diff_lines",
        ],
        "scope" => &["deny", "allow", "approval", "enforce_plan"],
        "gates" => &["name", "run", "timeout_s", "required"],
        "triggers" => &["label", "sweep_label", "routes", "workflow", "allowed_bots"],
        "forge" => &["kind", "api_url", "timeout_s", "max_wait_s"],
        "publish" => &["base", "reviewers", "unfinished"],
        "sweep" => &["max_runs"],
        "agent" => &["max_turns", "command_timeout_s", "output_limit_bytes"],
        "sandbox" => &[
            "mode",
            "writable",
            "network_for_agent",
            "network_for_gates",
            "package_caches_for_gates",
            "cpu_seconds",
            "address_space_mb",
            "processes",
            "file_size_mb",
        ],
        _ => return None,
    })
}

fn unknown_key(key: &str, known: &[&str]) -> ConfigIssue {
    let last = key.rsplit('.').next().unwrap_or(key);
    let message = match closest(last, known) {
        Some(suggestion) => format!("unknown key (did you mean `{suggestion}`?)"),
        None => format!("unknown key; known keys here: {}", known.join(", ")),
    };
    ConfigIssue {
        key: key.to_owned(),
        message,
    }
}

/// The known key nearest to a misspelt one, if it is plausibly a typo.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|candidate| (edit_distance(word, candidate), *candidate))
        .filter(|(distance, candidate)| {
            *distance <= 3.max(candidate.len() / 3) && *distance < candidate.len()
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b_chars: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b_chars.len()).collect();
    for (i, a_char) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, b_char) in b_chars.iter().enumerate() {
            let substitution = previous[j] + usize::from(a_char != *b_char);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b_chars.len()]
}

/// Whether a URL's host is this machine (`localhost`, `127.x`, `[::1]`).
/// Whether `url` is the provider kind's own API (api.anthropic.com,
/// api.openai.com), where its default key variable is meant to go.
pub fn is_official_url(kind: ProviderKind, url: &str) -> bool {
    let host = url_host(url);
    match kind {
        ProviderKind::Anthropic => host.eq_ignore_ascii_case("api.anthropic.com"),
        ProviderKind::Openai => host.eq_ignore_ascii_case("api.openai.com"),
        ProviderKind::Scripted => false,
    }
}

pub fn is_loopback_url(url: &str) -> bool {
    let host = url_host(url);
    host.eq_ignore_ascii_case("localhost") || host == "::1" || host.starts_with("127.")
}

/// The host of a URL: no scheme, user, port, path or IPv6 brackets.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if let Some(bracketed) = host.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sandbox_section_is_strict_and_defaults_to_best_effort() {
        let config = Config::parse("").unwrap();
        assert_eq!(config.sandbox.mode, SandboxMode::BestEffort);
        assert!(!config.sandbox.network_for_agent && config.sandbox.network_for_gates);
        let config = Config::parse(
            "[sandbox]\nmode = \"enforce\"\nwritable = [\"~/.cargo/registry\"]\nnetwork_for_agent = true\nfile_size_mb = 0\n",
        )
        .unwrap();
        assert_eq!(config.sandbox.mode, SandboxMode::Enforce);
        assert_eq!(config.sandbox.writable, ["~/.cargo/registry"]);
        assert_eq!(config.sandbox.limits().file_size_mb, 0);
        let issues = Config::parse("[sandbox]\nmod = \"off\"\n").unwrap_err();
        assert_eq!(issues[0].key, "sandbox.mod");
        assert!(issues[0].message.contains("`mode`"), "{issues:?}");
        let issues = Config::parse("[sandbox]\nmode = \"strict\"\n").unwrap_err();
        assert_eq!(issues[0].key, "sandbox.mode");
    }

    #[test]
    fn loopback_urls() {
        for url in [
            "http://127.0.0.1:8080/v1",
            "http://localhost:11434",
            "http://[::1]:8080",
            "http://user@127.0.0.2/v1",
        ] {
            assert!(super::is_loopback_url(url), "{url}");
        }
        for url in [
            "https://api.openai.com/v1",
            "http://10.0.0.2:8080",
            "http://localhost.evil.example",
        ] {
            assert!(!super::is_loopback_url(url), "{url}");
        }
    }

    #[test]
    fn missing_keys_name_the_variable_a_model_needs() {
        let config = Config::parse("[models]\nheavy = \"anthropic:claude-opus-4-1\"\nstandard = \"local:qwen\"\nlight = \"named:small\"\n[providers.local]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:8080/v1\"\n[providers.named]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:8081/v1\"\napi_key_env = \"NAMED_KEY\"\n").unwrap();
        let none = |_: &str| None;
        let missing = config.missing_keys(&none);
        assert_eq!(
            missing,
            [
                ("models.heavy".to_owned(), "ANTHROPIC_API_KEY".to_owned()),
                ("models.light".to_owned(), "NAMED_KEY".to_owned())
            ]
        );
        let all = |_: &str| Some("set".to_owned());
        assert!(config.missing_keys(&all).is_empty());
        // The built-in provider pointed at this machine needs no key.
        let local =
            |name: &str| (name == "ANTHROPIC_BASE_URL").then(|| "http://127.0.0.1:9".to_owned());
        assert_eq!(config.missing_keys(&local).len(), 1);
    }

    use super::*;

    #[test]
    fn defaults_parse_from_empty_text() {
        let config = Config::parse("").unwrap();
        assert!((config.budget.max_cost_usd - 5.0).abs() < f64::EPSILON);
        assert_eq!(config.triggers.routes.get("bug"), Some(&Route::Hotfix));
        assert_eq!(
            config.phase_model(PhaseName::Design).unwrap().model,
            "claude-opus-4-1"
        );
    }

    #[test]
    fn every_unknown_key_is_reported_with_its_path() {
        let issues = Config::parse(
            "[budget]\nmax_cost = 1.0\n[scope]\ndenny = []\n[[gates]]\nname='t'\nrun='x'\ncolour='red'\n[nonsense]\n",
        )
        .unwrap_err();
        let keys: Vec<&str> = issues.iter().map(|issue| issue.key.as_str()).collect();
        assert!(keys.contains(&"budget.max_cost"), "{keys:?}");
        assert!(keys.contains(&"scope.denny"), "{keys:?}");
        assert!(keys.contains(&"gates.0.colour"), "{keys:?}");
        assert!(keys.contains(&"nonsense"), "{keys:?}");
        let budget = issues
            .iter()
            .find(|issue| issue.key == "budget.max_cost")
            .unwrap();
        assert!(
            budget.message.contains("max_cost_usd"),
            "{}",
            budget.message
        );
    }

    #[test]
    fn type_errors_name_the_key() {
        let issues = Config::parse("[budget]\nmax_repairs = \"two\"\n").unwrap_err();
        assert_eq!(issues[0].key, "budget.max_repairs");
    }

    #[test]
    fn semantic_errors_name_the_key() {
        let issues = Config::parse(
            "[models]\nheavy = \"nowhere:big\"\n[phases.desing]\nmodel = \"heavy\"\n[scope]\ndeny = [\"a/[\"]\n",
        )
        .unwrap_err();
        let keys: Vec<&str> = issues.iter().map(|issue| issue.key.as_str()).collect();
        assert_eq!(keys, vec!["models.heavy", "phases.desing", "scope.deny[0]"]);
        assert!(issues[1].message.contains("design"));
    }
}
