//! Running a shell command for the agent's `run` tool and for gates: a
//! timeout that kills the whole process group, merged output capped with a
//! visible marker, an environment scrubbed of every token and key, and the
//! sandbox (`crate::sandbox`) around it.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::sandbox::{self, Sandbox};
use crate::secrets::is_secret_name;

#[derive(Debug, Clone)]
pub struct CommandOutput {
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// stdout and stderr interleaved, redacted, the work tree's path shown as `.`.
    pub output: String,
    pub duration_s: f64,
}

impl CommandOutput {
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }

    /// `exit code 3`, or `timed out after 60 s`.
    pub fn status(&self, timeout_s: u64) -> String {
        if self.timed_out {
            format!("timed out after {timeout_s} s")
        } else {
            format!(
                "exit code {}",
                self.exit_code
                    .map_or_else(|| "none".to_owned(), |code| code.to_string())
            )
        }
    }
}

/// Variables that hand out credentials without looking like secrets.
const CREDENTIAL_CARRIERS: &[&str] = &["SSH_AUTH_SOCK", "GIT_ASKPASS", "SSH_ASKPASS", "GH_HOST"];

/// The runner's file commands and its own channels: a command that could
/// write to them would set the next steps' environment (`GITHUB_ENV`:
/// `BASH_ENV`, `LD_PRELOAD`), their `PATH`, or the job's outputs.
const RUNNER_CHANNELS: &[&str] = &[
    "GITHUB_ENV",
    "GITHUB_OUTPUT",
    "GITHUB_PATH",
    "GITHUB_STATE",
    "GITHUB_STEP_SUMMARY",
    "FORGEJO_ENV",
    "FORGEJO_OUTPUT",
    "FORGEJO_PATH",
    "FORGEJO_STATE",
    "FORGEJO_STEP_SUMMARY",
];

/// Whether a child must not see this variable at all.
fn withheld(name: &str) -> bool {
    is_secret_name(name)
        || name.starts_with("BATON_")
        || name.starts_with("ACTIONS_")
        || CREDENTIAL_CARRIERS.contains(&name)
        || RUNNER_CHANNELS.contains(&name)
}

/// The environment a child gets: ours, minus anything secret, minus baton's
/// own settings, minus the variables named in `also_remove`.
pub fn scrubbed_environment(also_remove: &[String]) -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(name, _)| !withheld(name) && !also_remove.iter().any(|removed| removed == name))
        .collect()
}

/// Runs `sh -c command` in `cwd`, confined by `sandbox`. Output beyond
/// `limit` bytes keeps its head and its tail (where errors usually are)
/// around a marker.
pub async fn run(
    command: &str,
    cwd: &Path,
    timeout: Duration,
    limit: usize,
    environment: &[(String, String)],
    sandbox: &Sandbox,
) -> anyhow::Result<CommandOutput> {
    let capture = tempfile::tempfile().context("cannot create a file for command output")?;
    let stderr = capture.try_clone()?;
    let started = Instant::now();
    let path = environment
        .iter()
        .find(|(name, _)| name == "PATH")
        .map(|(_, value)| value.as_str());
    let (program, arguments) = sandbox
        .command_line(command, path)
        .with_context(|| format!("cannot start `sh -c {command}` in {}", cwd.display()))?;
    let mut spawned = tokio::process::Command::new(program);
    spawned
        .args(arguments)
        .current_dir(cwd)
        .env_clear()
        .envs(environment.iter().map(|(name, value)| (name, value)));
    spawned.envs(sandbox.variables(environment));
    let mut child = spawned
        .stdin(Stdio::null())
        .stdout(Stdio::from(capture.try_clone()?))
        .stderr(Stdio::from(stderr))
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start `sh -c {command}` in {}", cwd.display()))?;
    // Dropped on every way out of this function, the cancelled future's
    // included (SIGINT, SIGTERM): a gate's children never outlive it.
    let _group = child.id().map(ProcessGroup);
    let (exit_code, signal, timed_out) =
        if let Ok(status) = tokio::time::timeout(timeout, child.wait()).await {
            let status = status?;
            (
                status.code(),
                std::os::unix::process::ExitStatusExt::signal(&status),
                false,
            )
        } else {
            if let Some(pid) = child.id() {
                kill_group(pid);
            }
            let _ = child.kill().await;
            (None, None, true)
        };
    let duration_s = started.elapsed().as_secs_f64();
    let raw = read_capped(capture, limit)?;
    let mut output = crate::secrets::redact(&raw).into_owned();
    if let Some(path) = cwd.to_str() {
        output = output.replace(path, ".");
    }
    if timed_out {
        output.push_str(&format!(
            "\n[baton: killed after {} s timeout]\n",
            timeout.as_secs()
        ));
    } else if let Some(note) = sandbox::limit_note(exit_code, signal, &output, sandbox.limits()) {
        output.push_str(&format!("\n{note}\n"));
    }
    Ok(CommandOutput {
        exit_code,
        timed_out,
        output,
        duration_s,
    })
}

/// The process group a command runs in (its leader's pid), killed whole
/// when dropped: what a test runner or `cargo build` started goes with it.
struct ProcessGroup(u32);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        kill_group(self.0);
    }
}

/// SIGKILL to the whole group. `kill(1)` rather than a libc call keeps the
/// crate free of `unsafe`; a group already gone is not an error.
fn kill_group(leader: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{leader}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn read_capped(mut file: std::fs::File, limit: usize) -> anyhow::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let length = file.seek(SeekFrom::End(0))? as usize;
    file.seek(SeekFrom::Start(0))?;
    if length <= limit {
        let mut bytes = Vec::with_capacity(length);
        file.read_to_end(&mut bytes)?;
        return Ok(String::from_utf8_lossy(&bytes).into_owned());
    }
    let head_length = limit / 4;
    let tail_length = limit - head_length;
    let mut head = vec![0; head_length];
    file.read_exact(&mut head)?;
    file.seek(SeekFrom::Start((length - tail_length) as u64))?;
    let mut tail = Vec::with_capacity(tail_length);
    file.read_to_end(&mut tail)?;
    Ok(format!(
        "{}\n[... {} bytes trimmed by baton ...]\n{}",
        String::from_utf8_lossy(&head),
        length - head_length - tail_length,
        String::from_utf8_lossy(&tail)
    ))
}

/// The last `lines` lines of a log, with a marker when lines were dropped.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    if all.len() <= lines {
        return text.to_owned();
    }
    format!(
        "[... {} lines trimmed ...]\n{}",
        all.len() - lines,
        all[all.len() - lines..].join("\n")
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_runners_file_commands_and_tokens_are_withheld() {
        for name in [
            "GITHUB_ENV",
            "GITHUB_OUTPUT",
            "GITHUB_PATH",
            "GITHUB_STEP_SUMMARY",
            "FORGEJO_ENV",
            "ACTIONS_RUNTIME_TOKEN",
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            "GITHUB_TOKEN",
            "BATON_FORGE_TOKEN",
            "SSH_AUTH_SOCK",
        ] {
            assert!(super::withheld(name), "{name}");
        }
        for name in ["PATH", "HOME", "GITHUB_WORKSPACE", "CI", "RUNNER_TEMP"] {
            assert!(!super::withheld(name), "{name}");
        }
    }

    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn captures_output_and_exit_code() {
        let directory = tempfile::tempdir().unwrap();
        let output = runtime()
            .block_on(run(
                "echo out; echo err >&2; exit 3",
                directory.path(),
                Duration::from_secs(10),
                1000,
                &scrubbed_environment(&[]),
                &Sandbox::unconfined(),
            ))
            .unwrap();
        assert_eq!(output.exit_code, Some(3));
        assert!(output.output.contains("out") && output.output.contains("err"));
    }

    #[test]
    fn times_out_and_caps_output() {
        let directory = tempfile::tempdir().unwrap();
        let environment = scrubbed_environment(&[]);
        let output = runtime()
            .block_on(run(
                "sleep 30",
                directory.path(),
                Duration::from_millis(200),
                1000,
                &environment,
                &Sandbox::unconfined(),
            ))
            .unwrap();
        assert!(output.timed_out && !output.succeeded());
        let output = runtime()
            .block_on(run(
                "seq 1 100000",
                directory.path(),
                Duration::from_secs(10),
                400,
                &environment,
                &Sandbox::unconfined(),
            ))
            .unwrap();
        assert!(output.output.contains("bytes trimmed by baton"));
        assert!(output.output.trim_end().ends_with("100000"));
    }

    #[test]
    fn a_cancelled_command_takes_its_whole_process_group_with_it() {
        let directory = tempfile::tempdir().unwrap();
        let marker = directory.path().join("pid");
        let command = format!("sh -c 'echo $$ > {}; sleep 30' & wait", marker.display());
        let runtime = runtime();
        let environment = scrubbed_environment(&[]);
        let unconfined = Sandbox::unconfined();
        runtime.block_on(async {
            let running = run(
                &command,
                directory.path(),
                Duration::from_secs(60),
                1000,
                &environment,
                &unconfined,
            );
            // Cancel it the way an interrupt does: drop the future.
            let _ = tokio::time::timeout(Duration::from_millis(500), running).await;
        });
        let pid = std::fs::read_to_string(&marker).unwrap();
        let pid = pid.trim();
        // Gone, or a zombie waiting for init to reap it: either way not running.
        let running = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| !stat.contains(") Z "))
        };
        for _ in 0..50 {
            if !running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("grandchild {pid} outlived the cancelled command");
    }

    #[test]
    fn tail_marks_trimmed_lines() {
        assert_eq!(tail("a\nb\nc", 2), "[... 1 lines trimmed ...]\nb\nc");
        assert_eq!(tail("a", 2), "a");
    }
}
