//! Confining the commands a model wrote: the agent's `run` tool, the gates
//! and external executors. baton re-executes itself as a small wrapper
//! (`baton __sandbox-exec`) that sets resource limits, a seccomp filter
//! (no IPv4/IPv6/Unix sockets) and a Landlock ruleset (read everywhere, write
//! only where the policy says) on itself, then execs `sh -c command`: every
//! step is a safe library call, so the crate stays free of `unsafe`.
//!
//! What the kernel could and could not confine comes back as a [`Report`]
//! and becomes the "Sandbox" line of each phase's evidence.

#[cfg(target_os = "linux")]
mod linux;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The hidden first argument that turns baton into the wrapper.
pub const WRAPPER_ARGUMENT: &str = "__sandbox-exec";

/// The wrapper's exit code when it cannot confine or start the command
/// (the shell's own "cannot execute").
pub const WRAPPER_FAILED: i32 = 126;

/// What runs the command: the agent (network off by default), a gate, or
/// an external executor (an agent CLI that must reach its own model API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Use {
    Agent,
    Gates,
    Executor,
}

impl Use {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent commands",
            Self::Gates => "gates",
            Self::Executor => "executor",
        }
    }
}

/// Resource limits per command; 0 is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub cpu_seconds: u64,
    pub address_space_mb: u64,
    pub processes: u64,
    pub file_size_mb: u64,
}

impl Limits {
    /// `cpu 600 s, file size 1024 MiB, processes 4096` (the limits set).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.cpu_seconds > 0 {
            parts.push(format!("cpu {} s", self.cpu_seconds));
        }
        if self.address_space_mb > 0 {
            parts.push(format!("address space {} MiB", self.address_space_mb));
        }
        if self.processes > 0 {
            parts.push(format!("processes {}", self.processes));
        }
        if self.file_size_mb > 0 {
            parts.push(format!("file size {} MiB", self.file_size_mb));
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

/// What the wrapper is told to do, passed to it as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Where writes are allowed (beneath each path); everything else is read-only.
    pub writable: Vec<PathBuf>,
    pub network: bool,
    pub limits: Limits,
    /// Refuse to run the command when any confinement is unavailable.
    pub enforce: bool,
}

/// What the wrapper managed to confine on this kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The Landlock ABI in force; `None` when filesystem writes are not confined.
    pub landlock_abi: Option<u32>,
    /// Whether the network is cut (seccomp on socket creation; `false` when
    /// the policy allows the network).
    pub network_confined: bool,
    /// Landlock's TCP rules (ABI 4+) also deny TCP bind and connect.
    pub landlock_tcp: bool,
    pub limits_set: bool,
    /// Kernel features that were asked for and are missing.
    pub missing: Vec<String>,
}

/// A phase's sandbox for one use: the policy, where the wrapper lives and
/// the run's temporary directory (`TMPDIR` for every command).
#[derive(Debug, Clone)]
pub struct Sandbox {
    mode: SandboxMode,
    purpose: Use,
    policy: Policy,
    wrapper: PathBuf,
    temporary: Option<Arc<tempfile::TempDir>>,
    /// How many package caches gates may write (`package_caches_for_gates`).
    caches: usize,
}

/// The package caches build tools download into: cargo's registry and git
/// checkouts (`$CARGO_HOME`, else `~/.cargo`), npm's, the XDG cache (pip,
/// go's build cache), go's module cache, Maven's and Gradle's.
fn package_caches(home: Option<&Path>) -> Vec<PathBuf> {
    let variable = |name: &str| std::env::var_os(name).map(PathBuf::from);
    let mut caches = Vec::new();
    if let Some(cargo) = variable("CARGO_HOME").or_else(|| home.map(|home| home.join(".cargo"))) {
        caches.push(cargo.join("registry"));
        caches.push(cargo.join("git"));
    }
    if let Some(modules) =
        variable("GOMODCACHE").or_else(|| home.map(|home| home.join("go/pkg/mod")))
    {
        caches.push(modules);
    }
    if let Some(home) = home {
        caches.push(variable("XDG_CACHE_HOME").unwrap_or_else(|| home.join(".cache")));
        caches.push(home.join(".npm"));
        caches.push(home.join(".m2/repository"));
        caches.push(home.join(".gradle/caches"));
    }
    caches
}

impl Sandbox {
    /// Commands run as they are (`mode = "off"`, and unit tests).
    pub fn unconfined() -> Self {
        Self {
            mode: SandboxMode::Off,
            purpose: Use::Agent,
            policy: Policy {
                writable: Vec::new(),
                network: true,
                limits: Limits::default(),
                enforce: false,
            },
            wrapper: PathBuf::new(),
            temporary: None,
            caches: 0,
        }
    }

    /// The sandbox for `purpose` in `tree`, from `[sandbox]`.
    pub fn new(config: &SandboxConfig, purpose: Use, tree: &Path) -> anyhow::Result<Self> {
        if config.mode == SandboxMode::Off {
            return Ok(Self {
                purpose,
                ..Self::unconfined()
            });
        }
        let temporary = tempfile::Builder::new().prefix("baton-tmp-").tempdir()?;
        let mut writable = vec![tree.to_path_buf(), temporary.path().to_path_buf()];
        writable.extend(DEVICES.iter().map(PathBuf::from));
        let home = std::env::var_os("HOME").map(PathBuf::from);
        for path in &config.writable {
            writable.push(expand(path, home.as_deref(), tree));
        }
        let mut caches = 0;
        if purpose == Use::Gates && config.package_caches_for_gates {
            // A gate with the network on must be able to fill the package
            // caches its build tool downloads into; their directories are
            // made first (Landlock can only allow what exists). The tools'
            // own binaries (`~/.cargo/bin`) stay read-only.
            for path in package_caches(home.as_deref()) {
                if std::fs::create_dir_all(&path).is_ok() {
                    writable.push(path);
                    caches += 1;
                }
            }
        }
        Ok(Self {
            caches,
            mode: config.mode,
            purpose,
            policy: Policy {
                writable,
                network: match purpose {
                    Use::Agent => config.network_for_agent,
                    Use::Gates => config.network_for_gates,
                    // An agent CLI must reach its model's API.
                    Use::Executor => true,
                },
                limits: config.limits(),
                enforce: config.mode == SandboxMode::Enforce,
            },
            wrapper: std::env::current_exe()?,
            temporary: Some(Arc::new(temporary)),
        })
    }

    pub fn is_confined(&self) -> bool {
        self.mode != SandboxMode::Off
    }

    pub fn limits(&self) -> Limits {
        self.policy.limits
    }

    /// The run's temporary directory, when confined.
    pub fn temporary_directory(&self) -> Option<&Path> {
        self.temporary.as_deref().map(tempfile::TempDir::path)
    }

    /// Variables a confined command gets on top of its environment:
    /// `TMPDIR`, the run's temp dir; and, when the user's cache directory
    /// is not writable, `XDG_CACHE_HOME` inside it, so that tools that keep
    /// a build cache there (`go`, `pip`) work, starting cold.
    /// `environment` is the command's own.
    pub fn variables(&self, environment: &[(String, String)]) -> Vec<(String, PathBuf)> {
        let Some(temporary) = self.temporary_directory() else {
            return Vec::new();
        };
        let mut variables = vec![("TMPDIR".to_owned(), temporary.to_path_buf())];
        let value = |name: &str| {
            environment
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| PathBuf::from(value))
        };
        let cache =
            value("XDG_CACHE_HOME").or_else(|| value("HOME").map(|home| home.join(".cache")));
        let writable = |path: &Path| {
            self.policy
                .writable
                .iter()
                .any(|root| path.starts_with(root))
        };
        if cache.is_none_or(|cache| !writable(&cache)) {
            variables.push(("XDG_CACHE_HOME".to_owned(), temporary.join("cache")));
        }
        variables
    }

    /// The program and arguments that run `sh -c command`, wrapped or not.
    /// `path` is the command's `PATH`: a wrapped `sh` is looked up there
    /// first, so that a missing shell is baton's error (the command could
    /// not start), not a command that failed.
    pub fn command_line(
        &self,
        command: &str,
        path: Option<&str>,
    ) -> std::io::Result<(OsString, Vec<OsString>)> {
        if !self.is_confined() {
            return Ok(("sh".into(), vec!["-c".into(), command.into()]));
        }
        let shell = std::env::split_paths(path.unwrap_or("/usr/bin:/bin"))
            .map(|directory| directory.join("sh"))
            .find(|candidate| candidate.is_file())
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "`sh` is not on the command's PATH",
                )
            })?;
        let policy = serde_json::to_string(&self.policy).unwrap_or_default();
        Ok((
            self.wrapper.clone().into_os_string(),
            vec![
                WRAPPER_ARGUMENT.into(),
                policy.into(),
                "--".into(),
                shell.into_os_string(),
                "-c".into(),
                command.into(),
            ],
        ))
    }

    /// Asks the wrapper what this kernel confines, without running anything.
    pub async fn probe(&self) -> Report {
        if !self.is_confined() {
            return Report::default();
        }
        let policy = serde_json::to_string(&Policy {
            enforce: false,
            ..self.policy.clone()
        })
        .unwrap_or_default();
        let output = tokio::process::Command::new(&self.wrapper)
            .args([WRAPPER_ARGUMENT, &policy, "--report"])
            .env_clear()
            .stdin(std::process::Stdio::null())
            .output()
            .await;
        match output {
            Ok(output) => serde_json::from_slice(&output.stdout).unwrap_or_else(|_| Report {
                missing: vec![format!(
                    "the sandbox wrapper ({}) did not answer: {}",
                    self.wrapper.display(),
                    String::from_utf8_lossy(&output.stderr).trim()
                )],
                ..Report::default()
            }),
            Err(error) => Report {
                missing: vec![format!(
                    "the sandbox wrapper ({}) cannot start: {error}",
                    self.wrapper.display()
                )],
                ..Report::default()
            },
        }
    }

    /// The evidence line: what was confined, what the kernel had, what it lacked.
    pub fn line(&self, report: &Report) -> String {
        let purpose = self.purpose.as_str();
        if !self.is_confined() {
            return format!("{purpose}: not confined ([sandbox] mode = \"off\")");
        }
        let mut parts = Vec::new();
        let configured = self
            .policy
            .writable
            .len()
            .saturating_sub(2 + DEVICES.len() + self.caches);
        let mut places = vec!["the work tree".to_owned(), "the run's temp dir".to_owned()];
        if self.caches > 0 {
            places.push("the package caches".to_owned());
        }
        if configured > 0 {
            places.push(format!("{configured} configured path(s)"));
        }
        let last = places.pop().unwrap_or_default();
        parts.push(match report.landlock_abi {
            Some(abi) => format!(
                "writes only in {} and {last} (Landlock ABI {abi})",
                places.join(", ")
            ),
            None => "filesystem not confined".into(),
        });
        parts.push(if self.policy.network {
            "network on".into()
        } else if report.network_confined {
            let mut how = vec!["seccomp: no IPv4/IPv6/Unix sockets"];
            if report.landlock_tcp {
                how.push("Landlock TCP");
            }
            format!("network off ({})", how.join(", "))
        } else {
            "network NOT cut".into()
        });
        parts.push(if report.limits_set {
            format!("limits: {}", self.policy.limits.describe())
        } else {
            "no resource limits".into()
        });
        let mode = match self.mode {
            SandboxMode::Enforce => "enforce",
            SandboxMode::BestEffort => "best_effort",
            SandboxMode::Off => "off",
        };
        let mut line = format!("{purpose} ({mode}): {}", parts.join("; "));
        if report.missing.is_empty() {
            line.push_str("; nothing missing");
        } else {
            line.push_str(&format!("; not available: {}", report.missing.join(", ")));
        }
        line
    }
}

/// `[sandbox]`: how the commands a model wrote are confined (the agent's
/// `run` tool, gates, external executors). See `src/sandbox`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxConfig {
    pub mode: SandboxMode,
    /// Paths writable besides the work tree and the run's temp dir (`~/`
    /// is the home directory; relative paths are in the work tree).
    pub writable: Vec<String>,
    pub network_for_agent: bool,
    pub network_for_gates: bool,
    /// Gates may write the package caches their build tools download into
    /// (cargo's registry, npm, pip, go modules, Maven, Gradle).
    pub package_caches_for_gates: bool,
    /// Per command; 0 is no limit.
    pub cpu_seconds: u64,
    pub address_space_mb: u64,
    pub processes: u64,
    pub file_size_mb: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            mode: SandboxMode::BestEffort,
            writable: Vec::new(),
            network_for_agent: false,
            network_for_gates: true,
            package_caches_for_gates: true,
            cpu_seconds: 3600,
            // Runtimes (rustc, the JVM, V8) reserve far more address space
            // than they use: off unless asked for.
            address_space_mb: 0,
            processes: 4096,
            file_size_mb: 4096,
        }
    }
}

impl SandboxConfig {
    pub fn limits(&self) -> Limits {
        Limits {
            cpu_seconds: self.cpu_seconds,
            address_space_mb: self.address_space_mb,
            processes: self.processes,
            file_size_mb: self.file_size_mb,
        }
    }
}

/// `enforce` refuses an agent phase the kernel cannot confine; `best_effort`
/// confines what it can and says what it could not; `off` confines nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxMode {
    Enforce,
    #[default]
    BestEffort,
    Off,
}

/// Devices a command may write to (and use ioctls on).
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
    "/dev/shm",
    "/dev/random",
    "/dev/urandom",
];

/// `~/x` → `$HOME/x`; a relative path is relative to the work tree.
fn expand(path: &str, home: Option<&Path>, tree: &Path) -> PathBuf {
    if let (Some(rest), Some(home)) = (path.strip_prefix("~/"), home) {
        home.join(rest)
    } else if path == "~"
        && let Some(home) = home
    {
        home.to_path_buf()
    } else {
        tree.join(path)
    }
}

/// Why a command stopped, when a limit stopped it: the shell reports a
/// child killed by a signal as 128 + the signal.
pub fn limit_note(
    exit_code: Option<i32>,
    signal: Option<i32>,
    output: &str,
    limits: Limits,
) -> Option<String> {
    const SIGXCPU: i32 = 24;
    const SIGXFSZ: i32 = 25;
    let signal = signal.or_else(|| exit_code.filter(|code| *code > 128).map(|code| code - 128));
    match signal {
        Some(SIGXFSZ) if limits.file_size_mb > 0 => Some(format!(
            "[baton: stopped by the file-size limit ({} MiB, [sandbox] file_size_mb)]",
            limits.file_size_mb
        )),
        Some(SIGXCPU) if limits.cpu_seconds > 0 => Some(format!(
            "[baton: stopped by the CPU-time limit ({} s, [sandbox] cpu_seconds)]",
            limits.cpu_seconds
        )),
        _ if limits.processes > 0
            && exit_code != Some(0)
            && (output.contains("Resource temporarily unavailable")
                || output.contains("Cannot fork")) =>
        {
            Some(format!(
                "[baton: a process could not start: the process limit ({}, [sandbox] processes) was reached]",
                limits.processes
            ))
        }
        _ => None,
    }
}

/// baton's own hardening, first thing in `main`: not dumpable, so the
/// commands it starts cannot read its environment (the model key) or its
/// memory through `/proc/<pid>/`.
pub fn harden_self() {
    #[cfg(target_os = "linux")]
    {
        let _ = nix::sys::prctl::set_dumpable(false);
    }
}

/// The wrapper: `baton __sandbox-exec <policy> -- program args…` confines
/// itself and execs the program; `baton __sandbox-exec <policy> --report`
/// prints what it could confine as JSON. Returns only on failure.
pub fn wrapper_main(arguments: &[OsString]) -> i32 {
    let Some(policy) = arguments.first().and_then(|policy| policy.to_str()) else {
        eprintln!("[baton sandbox: no policy given]");
        return WRAPPER_FAILED;
    };
    let policy: Policy = match serde_json::from_str(policy) {
        Ok(policy) => policy,
        Err(error) => {
            eprintln!("[baton sandbox: the policy is not valid: {error}]");
            return WRAPPER_FAILED;
        }
    };
    let report = confine(&policy);
    match arguments.get(1).and_then(|flag| flag.to_str()) {
        Some("--report") => {
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
            0
        }
        Some("--") if arguments.len() > 2 => {
            if policy.enforce && !report.missing.is_empty() {
                eprintln!(
                    "[baton sandbox: refused: [sandbox] mode = \"enforce\" and this kernel lacks {}]",
                    report.missing.join(", ")
                );
                return WRAPPER_FAILED;
            }
            let error = exec(&arguments[2], &arguments[3..]);
            eprintln!(
                "[baton sandbox: cannot run {}: {error}]",
                arguments[2].to_string_lossy()
            );
            WRAPPER_FAILED
        }
        _ => {
            eprintln!("[baton sandbox: usage: baton {WRAPPER_ARGUMENT} <policy> -- program args…]");
            WRAPPER_FAILED
        }
    }
}

fn exec(program: &OsString, arguments: &[OsString]) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    std::process::Command::new(program).args(arguments).exec()
}

#[cfg(target_os = "linux")]
fn confine(policy: &Policy) -> Report {
    linux::confine(policy)
}

/// Elsewhere only the resource limits apply (macOS's `sandbox-exec` is
/// not used yet).
#[cfg(not(target_os = "linux"))]
fn confine(policy: &Policy) -> Report {
    let mut missing = vec![format!(
        "not confined: Landlock and seccomp are Linux's, this is {}",
        std::env::consts::OS
    )];
    let limits_set = set_limits(&policy.limits, &mut missing);
    Report {
        landlock_abi: None,
        network_confined: false,
        landlock_tcp: false,
        limits_set,
        missing,
    }
}

/// Lowers the soft and hard limits (never raises them); true when all were set.
fn set_limits(limits: &Limits, missing: &mut Vec<String>) -> bool {
    use rlimit::Resource;
    const MIB: u64 = 1024 * 1024;
    let wanted = [
        (Resource::CPU, limits.cpu_seconds, "RLIMIT_CPU"),
        (
            Resource::AS,
            limits.address_space_mb.saturating_mul(MIB),
            "RLIMIT_AS",
        ),
        (Resource::NPROC, limits.processes, "RLIMIT_NPROC"),
        (
            Resource::FSIZE,
            limits.file_size_mb.saturating_mul(MIB),
            "RLIMIT_FSIZE",
        ),
    ];
    let mut all = true;
    for (resource, value, name) in wanted {
        if value == 0 {
            continue;
        }
        // At the CPU hard limit the kernel sends SIGKILL, at the soft one
        // SIGXCPU: a few seconds between them let the stop be named.
        let grace = if name == "RLIMIT_CPU" { 5 } else { 0 };
        let result = resource.get().and_then(|(soft, hard)| {
            let hard = hard.min(value.saturating_add(grace));
            resource.set(soft.min(value).min(hard), hard)
        });
        if result.is_err() {
            missing.push(name.into());
            all = false;
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_from_a_limit_is_named() {
        let limits = Limits {
            cpu_seconds: 10,
            address_space_mb: 0,
            processes: 64,
            file_size_mb: 16,
        };
        assert!(
            limit_note(Some(153), None, "", limits)
                .unwrap()
                .contains("file-size limit (16 MiB")
        );
        assert!(
            limit_note(None, Some(24), "", limits)
                .unwrap()
                .contains("CPU-time limit")
        );
        assert!(
            limit_note(
                Some(2),
                None,
                "sh: fork: Resource temporarily unavailable",
                limits
            )
            .unwrap()
            .contains("process limit (64")
        );
        assert_eq!(limit_note(Some(1), None, "", limits), None);
        assert_eq!(limit_note(Some(153), None, "", Limits::default()), None);
    }

    #[test]
    fn a_cache_that_is_not_writable_moves_into_the_temp_dir() {
        let tree = tempfile::tempdir().unwrap();
        let sandbox = Sandbox::new(&SandboxConfig::default(), Use::Gates, tree.path()).unwrap();
        let temporary = sandbox.temporary_directory().unwrap().to_path_buf();
        let home = vec![("HOME".to_owned(), "/home/u".to_owned())];
        assert_eq!(
            sandbox.variables(&home),
            [
                ("TMPDIR".to_owned(), temporary.clone()),
                ("XDG_CACHE_HOME".to_owned(), temporary.join("cache")),
            ]
        );
        let config = SandboxConfig {
            writable: vec!["/home/u/.cache".into()],
            ..SandboxConfig::default()
        };
        let sandbox = Sandbox::new(&config, Use::Gates, tree.path()).unwrap();
        assert_eq!(
            sandbox.variables(&home).len(),
            1,
            "the cache stays where it is"
        );
        assert!(Sandbox::unconfined().variables(&home).is_empty());
    }

    #[test]
    fn writable_paths_expand_home_and_the_work_tree() {
        let tree = Path::new("/work/tree");
        let home = Some(Path::new("/home/u"));
        assert_eq!(
            expand("~/.cargo", home, tree),
            PathBuf::from("/home/u/.cargo")
        );
        assert_eq!(expand("/opt/x", home, tree), PathBuf::from("/opt/x"));
        assert_eq!(expand("out", home, tree), PathBuf::from("/work/tree/out"));
    }

    #[test]
    fn the_line_says_what_was_confined_and_what_was_missing() {
        let config = SandboxConfig::default();
        let tree = tempfile::tempdir().unwrap();
        let sandbox = Sandbox::new(&config, Use::Agent, tree.path()).unwrap();
        let line = sandbox.line(&Report {
            landlock_abi: Some(6),
            network_confined: true,
            landlock_tcp: true,
            limits_set: true,
            missing: Vec::new(),
        });
        assert!(line.starts_with("agent commands (best_effort): writes only in the work tree"));
        assert!(line.contains("Landlock ABI 6"), "{line}");
        assert!(line.contains("network off (seccomp"), "{line}");
        assert!(line.contains("nothing missing"), "{line}");
        let line = sandbox.line(&Report {
            missing: vec!["Landlock (not implemented by this kernel)".into()],
            ..Report::default()
        });
        assert!(line.contains("filesystem not confined"), "{line}");
        assert!(line.contains("network NOT cut"), "{line}");
        assert!(line.contains("not available: Landlock"), "{line}");
        let off = Sandbox::unconfined().line(&Report::default());
        assert_eq!(
            off,
            "agent commands: not confined ([sandbox] mode = \"off\")"
        );
    }
}
