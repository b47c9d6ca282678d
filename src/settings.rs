//! CLI + environment + config file → `Settings`, the one value the core reads.
//!
//! Intake resolves the config by the lookup order and pins it in the
//! manifest; every later phase reads the pinned file from the base commit,
//! so a job cannot loosen a run's rules by changing its checkout.
//! Every environment variable baton reads is a named constant here.

use std::path::{Path, PathBuf};

use crate::bad_input;
use crate::config::{CONFIG_LOOKUP, Config, ConfigSource, config_error};
use crate::digest::sha256_hex;
use crate::git::Source;
use crate::run_dir::manifest::{ConfigPin, Manifest};

/// The environment variables of SPEC §3.
pub mod env {
    pub const GITHUB_EVENT_NAME: &str = "GITHUB_EVENT_NAME";
    pub const GITHUB_EVENT_PATH: &str = "GITHUB_EVENT_PATH";
    pub const GITHUB_REPOSITORY: &str = "GITHUB_REPOSITORY";
    pub const GITHUB_API_URL: &str = "GITHUB_API_URL";
    pub const GITHUB_SERVER_URL: &str = "GITHUB_SERVER_URL";
    pub const GITHUB_RUN_ID: &str = "GITHUB_RUN_ID";
    pub const GITHUB_WORKSPACE: &str = "GITHUB_WORKSPACE";
    pub const GITHUB_OUTPUT: &str = "GITHUB_OUTPUT";
    pub const GITHUB_STEP_SUMMARY: &str = "GITHUB_STEP_SUMMARY";
    pub const FORGEJO_ACTIONS: &str = "FORGEJO_ACTIONS";
    pub const BATON_FORGE_TOKEN: &str = "BATON_FORGE_TOKEN";
    pub const GITHUB_TOKEN: &str = "GITHUB_TOKEN";
    pub const BATON_CONFIG: &str = "BATON_CONFIG";
    pub const BATON_RUN_DIR: &str = "BATON_RUN_DIR";
    pub const BATON_LOG: &str = "BATON_LOG";
    pub const BATON_LOG_FORMAT: &str = "BATON_LOG_FORMAT";
    pub const NO_COLOR: &str = "NO_COLOR";
    /// Set to `true` by GitHub, Forgejo and most CI systems.
    pub const CI: &str = "CI";
    /// `true` on a GitHub Actions runner (and on Forgejo's, which mirrors it).
    pub const GITHUB_ACTIONS: &str = "GITHUB_ACTIONS";
    /// For tests of `[sandbox] mode = "enforce"`: a kernel feature to report
    /// as missing (e.g. `Landlock`). It only adds to what is reported
    /// missing; the confinement itself is applied as always.
    pub const BATON_SANDBOX_SIMULATE_MISSING: &str = "BATON_SANDBOX_SIMULATE_MISSING";

    /// Whether baton runs in CI, where a config outside the repository is refused.
    pub fn in_ci() -> bool {
        get(CI).is_some_and(|value| value == "true" || value == "1")
    }

    /// A variable's value, treating empty as unset (CI often sets empty strings).
    pub fn get(name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|value| !value.is_empty())
    }
}

/// What a run needs before anything is spent: gates to judge it by, and
/// the keys of the providers its models use. Checked by `config check` and
/// before intake; nothing is sent to a model when it fails.
pub fn preflight(config: &Config, source: &dyn std::fmt::Display) -> anyhow::Result<()> {
    let issues = preflight_issues(config);
    if issues.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = issues.iter().map(|issue| format!("  {issue}")).collect();
    Err(crate::bad_input!(
        "{source} cannot start a run ({} problem{}):\n{}\nnothing was sent to any model; `baton config check` lists every problem",
        issues.len(),
        if issues.len() == 1 { "" } else { "s" },
        lines.join("\n")
    ))
}

/// What stops a run before it spends: no gate to judge by, and each key
/// variable a model of the run needs but the environment lacks.
pub fn preflight_issues(config: &Config) -> Vec<crate::config::ConfigIssue> {
    let mut issues = Vec::new();
    if config.gates.is_empty() {
        issues.push(crate::config::ConfigIssue {
            key: "gates".into(),
            message: "no [[gates]]: CI judges a change only by its gates, so a run without one could never end done; add one, e.g. [[gates]] name = \"test\" run = \"cargo test\"".into(),
        });
    }
    for (key, variable) in config.missing_keys(&env::get) {
        issues.push(crate::config::ConfigIssue {
            key,
            message: format!(
                "${variable} is not set, and this model's provider needs it; set it (in CI: a repository secret)"
            ),
        });
    }
    issues
}

pub struct Settings {
    pub config: Config,
    pub config_source: ConfigSource,
    /// Where relative paths in the config (a script) are resolved.
    pub config_dir: PathBuf,
    /// The config file's path inside the repository, when it lives there:
    /// publish re-reads it from the base commit, and the agent may not change it.
    pub config_in_repo: Option<String>,
    pub repo: PathBuf,
    /// Values of the variables the providers read keys from, for redaction.
    pub key_variables: Vec<String>,
    /// sha256 of the config file's bytes; empty for the built-in defaults.
    pub config_sha256: String,
}

/// Finds the config file: `--config`, `$BATON_CONFIG`, then the lookup list in
/// the repository. An explicit path that does not exist is an error.
pub fn locate_config(explicit: Option<&Path>, repo: &Path) -> anyhow::Result<Option<PathBuf>> {
    let explicit = explicit
        .map(Path::to_path_buf)
        .or_else(|| env::get(env::BATON_CONFIG).map(PathBuf::from));
    if let Some(path) = explicit {
        if path.is_dir() {
            return Err(bad_input!(
                "config file {} is a directory; pass the TOML file itself with --config or ${}",
                path.display(),
                env::BATON_CONFIG
            ));
        }
        if !path.is_file() {
            return Err(bad_input!(
                "config file {} does not exist; fix --config or ${}",
                path.display(),
                env::BATON_CONFIG
            ));
        }
        return Ok(Some(path));
    }
    Ok(CONFIG_LOOKUP
        .iter()
        .map(|name| repo.join(name))
        .find(|path| path.is_file()))
}

fn resolve_repo(repo: Option<&Path>) -> anyhow::Result<PathBuf> {
    let repo = match repo {
        Some(path) => path.to_path_buf(),
        None => std::env::current_dir()?,
    };
    if !repo.is_dir() {
        return Err(bad_input!("--repo {} is not a directory", repo.display()));
    }
    Ok(repo.canonicalize()?)
}

fn key_variables(config: &Config) -> Vec<String> {
    config
        .providers
        .values()
        .filter_map(|provider| provider.api_key_env.clone())
        .collect()
}

impl Settings {
    /// For intake and `config check`: the config by the lookup order.
    pub fn resolve(explicit_config: Option<&Path>, repo: Option<&Path>) -> anyhow::Result<Self> {
        let repo = resolve_repo(repo)?;
        let Some(path) = locate_config(explicit_config, &repo)? else {
            return Ok(Self::defaults(repo));
        };
        let bytes = std::fs::read(&path).map_err(|error| {
            bad_input!(
                "cannot read config file {}: {error}; pass an existing file with --config",
                path.display()
            )
        })?;
        let config = parse(&bytes, &path.display().to_string())?;
        let path = path.canonicalize()?;
        let config_dir = path
            .parent()
            .map_or_else(|| repo.clone(), Path::to_path_buf);
        let config_in_repo = path
            .strip_prefix(&repo)
            .ok()
            .map(|relative| relative.to_string_lossy().replace('\\', "/"));
        Ok(Self {
            key_variables: key_variables(&config),
            config,
            config_source: ConfigSource::File(path),
            config_dir,
            config_in_repo,
            repo,
            config_sha256: sha256_hex(&bytes),
        })
    }

    fn defaults(repo: PathBuf) -> Self {
        let config = Config::parse("").unwrap_or_default();
        Self {
            key_variables: key_variables(&config),
            config,
            config_source: ConfigSource::Defaults,
            config_dir: repo.clone(),
            config_in_repo: None,
            repo,
            config_sha256: String::new(),
        }
    }

    /// What intake records: the config's repository-relative path and hash.
    /// A config in the repository must be committed as it is (the run reads
    /// it from the base commit); one outside it is allowed only locally.
    pub fn pin(&self, source: &Source, base_sha: &str) -> anyhow::Result<ConfigPin> {
        let ConfigSource::File(path) = &self.config_source else {
            return Ok(ConfigPin::default());
        };
        let Some(relative) = &self.config_in_repo else {
            if env::in_ci() {
                return Err(bad_input!(
                    "config {} is outside the repository; in CI a run reads its config from the base commit: move it into the repository ({})",
                    path.display(),
                    CONFIG_LOOKUP.join(", ")
                ));
            }
            return Ok(ConfigPin {
                path: path
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned()),
                sha256: self.config_sha256.clone(),
                outside_repository: true,
            });
        };
        let committed = source.read_at(base_sha, relative)?;
        if committed.as_deref().map(sha256_hex).as_deref() != Some(self.config_sha256.as_str()) {
            return Err(bad_input!(
                "config {relative} differs from the base commit {}: a run reads its config from the base commit, so commit the change first",
                &base_sha[..base_sha.len().min(12)]
            ));
        }
        Ok(ConfigPin {
            path: Some(relative.clone()),
            sha256: self.config_sha256.clone(),
            outside_repository: false,
        })
    }

    /// For every phase after intake: the config the manifest pinned, read
    /// from the base commit (or, for a local run started with a config
    /// outside the repository, from `--config` again), refused (exit 2)
    /// when its sha256 differs from the pin.
    pub fn pinned(
        explicit_config: Option<&Path>,
        repo: Option<&Path>,
        manifest: &Manifest,
    ) -> anyhow::Result<Self> {
        let repo = resolve_repo(repo)?;
        let pin = &manifest.config;
        let base = &manifest.base_sha;
        let short = &base[..base.len().min(12)];
        // The manifest is not hashed: in CI its base commit must be in the
        // history of the job's checkout, so it cannot name a laxer config's.
        if env::in_ci() && !Source::open(&repo)?.has_in_history(base)? {
            return Err(bad_input!(
                "base commit {short} in manifest.json is not in the history of this checkout; the run belongs to another branch or was changed by hand"
            ));
        }
        let Some(name) = &pin.path else {
            // "No config" must be true at the base commit too.
            let source = Source::open(&repo)?;
            for candidate in CONFIG_LOOKUP {
                if source.read_at(base, candidate)?.is_some() {
                    return Err(bad_input!(
                        "manifest.json pins no config, but {candidate} is in base commit {short}; the run directory was changed by hand"
                    ));
                }
            }
            return Ok(Self::defaults(repo));
        };
        let (bytes, path, label) = if pin.outside_repository {
            let path = explicit_config
                .map(Path::to_path_buf)
                .or_else(|| env::get(env::BATON_CONFIG).map(PathBuf::from))
                .ok_or_else(|| {
                    bad_input!(
                        "this run was started with a config outside the repository ({name}); pass the same file again with --config"
                    )
                })?;
            let bytes = std::fs::read(&path).map_err(|error| {
                bad_input!("cannot read config file {}: {error}", path.display())
            })?;
            let label = path.display().to_string();
            (bytes, path.canonicalize()?, label)
        } else {
            let source = Source::open(&repo)?;
            let bytes = source.read_at(base, name)?.ok_or_else(|| {
                bad_input!(
                    "config {name}, pinned at intake, is not in base commit {short}; run this phase in a checkout of the run's repository"
                )
            })?;
            (bytes, repo.join(name), format!("{name} at {short}"))
        };
        let sha256 = sha256_hex(&bytes);
        if sha256 != pin.sha256 {
            return Err(bad_input!(
                "config {label} has sha256 {}…, not the {}… intake pinned in manifest.json; a run keeps the config it started with: start a new run to use another",
                &sha256[..12],
                &pin.sha256[..pin.sha256.len().min(12)]
            ));
        }
        let config = parse(&bytes, &label)?;
        let config_dir = path
            .parent()
            .map_or_else(|| repo.clone(), Path::to_path_buf);
        Ok(Self {
            key_variables: key_variables(&config),
            config,
            config_in_repo: (!pin.outside_repository).then(|| name.clone()),
            config_source: ConfigSource::File(path),
            config_dir,
            repo,
            config_sha256: sha256,
        })
    }

    /// Installs the process-wide redactor with every secret-looking variable
    /// plus the providers' key variables, whatever their names.
    pub fn install_redactor(&self) {
        let extra = self
            .key_variables
            .iter()
            .filter_map(|name| Some((name.clone(), env::get(name)?)));
        crate::secrets::install(crate::secrets::Redactor::from_environment().with_values(extra));
    }
}

fn parse(bytes: &[u8], label: &str) -> anyhow::Result<Config> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| bad_input!("config file {label} is not UTF-8 text"))?;
    Config::parse(text).map_err(|issues| config_error(label, &issues))
}
