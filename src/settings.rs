//! CLI + environment + config file → `Settings`, the one value the core reads.
//!
//! Every environment variable baton reads is a named constant here.

use std::path::{Path, PathBuf};

use crate::bad_input;
use crate::config::{CONFIG_LOOKUP, Config, ConfigSource};

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

    /// A variable's value, treating empty as unset (CI often sets empty strings).
    pub fn get(name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|value| !value.is_empty())
    }
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
}

/// Finds the config file: `--config`, `$BATON_CONFIG`, then the lookup list in
/// the repository. An explicit path that does not exist is an error.
pub fn locate_config(explicit: Option<&Path>, repo: &Path) -> anyhow::Result<Option<PathBuf>> {
    let explicit = explicit
        .map(Path::to_path_buf)
        .or_else(|| env::get(env::BATON_CONFIG).map(PathBuf::from));
    if let Some(path) = explicit {
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

impl Settings {
    pub fn resolve(explicit_config: Option<&Path>, repo: Option<&Path>) -> anyhow::Result<Self> {
        let repo = match repo {
            Some(path) => path.to_path_buf(),
            None => std::env::current_dir()?,
        };
        if !repo.is_dir() {
            return Err(bad_input!("--repo {} is not a directory", repo.display()));
        }
        let repo = repo.canonicalize()?;
        let (config, config_source, config_dir) = match locate_config(explicit_config, &repo)? {
            Some(path) => {
                let config = Config::load(&path)?;
                let path = path.canonicalize()?;
                let directory = path
                    .parent()
                    .map_or_else(|| repo.clone(), Path::to_path_buf);
                (config, ConfigSource::File(path), directory)
            }
            None => (
                Config::parse("").map_err(|_| anyhow::anyhow!("built-in defaults are invalid"))?,
                ConfigSource::Defaults,
                repo.clone(),
            ),
        };
        let config_in_repo = match &config_source {
            ConfigSource::File(path) => path
                .strip_prefix(&repo)
                .ok()
                .map(|relative| relative.to_string_lossy().replace('\\', "/")),
            ConfigSource::Defaults => None,
        };
        let key_variables = config
            .providers
            .values()
            .filter_map(|provider| provider.api_key_env.clone())
            .collect();
        Ok(Self {
            config,
            config_source,
            config_dir,
            config_in_repo,
            repo,
            key_variables,
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
