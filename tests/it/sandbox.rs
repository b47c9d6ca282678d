//! The sandbox around the commands a model wrote (`[sandbox]`): agent
//! commands driven through the scripted model's `run` tool, on this
//! machine's kernel. A test whose kernel feature is missing says so on
//! stderr and passes without asserting (Landlock, seccomp).

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{BATON, Run, TestContext, agent, call, happy_script, write};

const FIXED: &str = "greet() { echo \"hello, world\"; }\n";

/// What the wrapper confines on this kernel, asked the way baton asks.
fn kernel(network: bool) -> Value {
    let policy = json!({
        "writable": ["/tmp"],
        "network": network,
        "limits": {"cpu_seconds": 0, "address_space_mb": 0, "processes": 0, "file_size_mb": 0},
        "enforce": false,
    });
    let output = Command::new(BATON)
        .args(["__sandbox-exec", &policy.to_string(), "--report"])
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout).unwrap()
}

fn has_landlock() -> bool {
    let report = kernel(true);
    if report["landlock_abi"].is_null() {
        eprintln!(
            "skipped: this kernel has no Landlock ({})",
            report["missing"]
        );
        return false;
    }
    true
}

fn has_seccomp() -> bool {
    let report = kernel(false);
    if report["network_confined"] != true {
        eprintln!("skipped: seccomp is not available ({})", report["missing"]);
        return false;
    }
    true
}

/// A run whose implement phase runs `commands` through the `run` tool,
/// then fixes lib.sh so the run can finish.
fn implement_runs(context: &TestContext, commands: &[&str]) -> String {
    let mut script = happy_script();
    let mut turns: Vec<Vec<Value>> = commands
        .iter()
        .map(|command| vec![call("run", json!({ "command": command }))])
        .collect();
    turns.push(vec![write("lib.sh", FIXED)]);
    script["implement"] = agent(turns);
    context.script(&script);
    let run = context.run_local();
    run.assert_code(0);
    context.run_file("transcripts/implement-1.jsonl")
}

#[test]
fn an_agent_command_writes_in_the_work_tree_and_nowhere_else() {
    if !has_landlock() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let context = TestContext::new("").env("HOME", home.path().to_str().unwrap());
    let transcript = implement_runs(
        &context,
        &[
            "echo planted > \"$HOME/x\"; echo home-write-status=$?",
            "echo kept > inside.txt && cat inside.txt && rm inside.txt && echo tree-write-ok",
            "echo t > \"$TMPDIR/scratch\" && echo tmp-write-ok",
            // The work tree's git directory is read, not written.
            "git status --short >/dev/null && echo git-read-ok; touch \"$(git rev-parse --git-dir)/planted\"; echo git-write-status=$?",
        ],
    );
    assert!(!home.path().join("x").exists(), "{transcript}");
    assert!(
        transcript.contains("home-write-status=2"),
        "the write to $HOME did not fail: {transcript}"
    );
    assert!(transcript.contains("Permission denied"), "{transcript}");
    assert!(transcript.contains("tree-write-ok"), "{transcript}");
    assert!(transcript.contains("tmp-write-ok"), "{transcript}");
    assert!(transcript.contains("git-read-ok"), "{transcript}");
    assert!(transcript.contains("git-write-status=1"), "{transcript}");
    let evidence = context.evidence();
    let lines: Vec<&Value> = evidence["sandbox"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["phase"] == "implement")
        .collect();
    assert!(
        lines[0]["line"]
            .as_str()
            .unwrap()
            .starts_with("agent commands (best_effort): writes only in the work tree"),
        "{lines:?}"
    );
}

#[test]
fn an_agent_command_cannot_reach_a_loopback_server() {
    if !has_seccomp() {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let accepted = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&accepted);
    let server = std::thread::spawn(move || {
        for _ in 0..600 {
            if let Ok((mut stream, _)) = listener.accept() {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut buffer = [0; 16];
                let _ = stream.read(&mut buffer);
            }
            if counter.load(Ordering::SeqCst) > 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let context = TestContext::new("");
    let transcript = implement_runs(
        &context,
        &[&format!(
            "python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5); print('connected')\"; echo connect-status=$?"
        )],
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "{transcript}");
    assert!(!transcript.contains("connected\\n"), "{transcript}");
    assert!(transcript.contains("connect-status=1"), "{transcript}");
    assert!(transcript.contains("PermissionError"), "{transcript}");
    drop(server);
}

#[test]
fn an_agent_command_reads_nothing_of_batons_environment() {
    let context = TestContext::new("").env("SANDBOX_PROBE_MARKER", "marker-from-batons-environ");
    let transcript = implement_runs(
        &context,
        &[
            "echo parent=$PPID; tr '\\0' '\\n' < /proc/$PPID/environ | grep -c marker-from; echo read-status=$?",
        ],
    );
    assert!(
        !transcript.contains("marker-from-batons-environ"),
        "{transcript}"
    );
    // grep found nothing: the file could not be read.
    assert!(transcript.contains("read-status=1"), "{transcript}");
    assert!(transcript.contains("Permission denied"), "{transcript}");
}

#[test]
fn a_huge_write_and_a_busy_loop_are_stopped_by_the_limits_and_reported() {
    let context = TestContext::new("[sandbox]\nfile_size_mb = 8\ncpu_seconds = 1\n");
    let transcript = implement_runs(
        &context,
        &[
            "head -c 10000000000 /dev/zero > big.bin",
            "ls -l big.bin; rm -f big.bin",
            "while :; do :; done",
        ],
    );
    assert!(
        transcript.contains("stopped by the CPU-time limit (1 s"),
        "{transcript}"
    );
    assert!(
        transcript.contains("stopped by the file-size limit (8 MiB"),
        "{transcript}"
    );
    // 8 MiB written, not 10 GB; baton went on to finish the run.
    assert!(transcript.contains(" 8388608 "), "{transcript}");
    assert_eq!(context.evidence()["outcome"], "done");
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// A bounded fork bomb: 1000 children against a limit of 50.
const FORK_BOMB: &str = "i=0; while [ $i -lt 1000 ]; do sleep 20 & i=$((i+1)); done; wait";

#[test]
fn a_fork_bomb_is_stopped_and_baton_survives() {
    let context = TestContext::new("[agent]\ncommand_timeout_s = 5\n[sandbox]\nprocesses = 50\n");
    let transcript = implement_runs(&context, &[FORK_BOMB]);
    assert_eq!(context.evidence()["outcome"], "done");
    if running_as_root() {
        // The kernel exempts root from RLIMIT_NPROC: the timeout and the
        // process-group kill stop it instead.
        eprintln!(
            "running as root, which RLIMIT_NPROC does not bind: checked that the timeout stops it"
        );
        assert!(
            transcript.contains("killed after 5 s timeout"),
            "{transcript}"
        );
    } else {
        assert!(
            transcript.contains("the process limit (50, [sandbox] processes) was reached"),
            "{transcript}"
        );
    }
}

/// As root, the limit itself is checked on the wrapper run as `nobody`.
#[test]
fn the_process_limit_binds_an_unprivileged_user() {
    use std::os::unix::process::CommandExt;
    if !running_as_root() {
        eprintln!("skipped: covered by a_fork_bomb_is_stopped_and_baton_survives as non-root");
        return;
    }
    let copy = tempfile::Builder::new()
        .prefix("baton-nproc-")
        .tempdir()
        .unwrap();
    let binary = copy.path().join("baton");
    std::fs::copy(BATON, &binary).unwrap();
    for path in [copy.path(), binary.as_path()] {
        let mut permissions = std::fs::metadata(path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(path, permissions).unwrap();
    }
    let policy = json!({
        "writable": [],
        "network": false,
        "limits": {"cpu_seconds": 30, "address_space_mb": 0, "processes": 20, "file_size_mb": 0},
        "enforce": false,
    });
    let output = Command::new(&binary)
        .args(["__sandbox-exec", &policy.to_string(), "--", "/bin/sh", "-c"])
        .arg("i=0; while [ $i -lt 200 ]; do sleep 2 & i=$((i+1)); done; echo survived")
        .current_dir(Path::new("/"))
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("survived"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Cannot fork") || stderr.contains("Resource temporarily unavailable"),
        "{stderr}"
    );
}

#[test]
fn enforce_without_kernel_support_is_refused_before_any_model_request() {
    let context = TestContext::new("[sandbox]\nmode = \"enforce\"\n")
        .env("BATON_SANDBOX_SIMULATE_MISSING", "Landlock");
    context.script(&happy_script());
    let run = context.run_local();
    run.assert_code(1);
    let evidence = context.evidence();
    assert_eq!(evidence["outcome"], "blocked");
    let reason = evidence["reason"].as_str().unwrap();
    assert!(reason.contains("mode = \"enforce\""), "{reason}");
    assert!(reason.contains("Landlock"), "{reason}");
    let transcripts = context.run_dir.join("transcripts");
    let sent = std::fs::read_dir(&transcripts).map_or(0, Iterator::count);
    assert_eq!(sent, 0, "a model was asked before the refusal");
    assert_eq!(context.manifest()["phases"][0]["tokens_in"], 0);
}

#[test]
fn enforce_runs_no_gate_where_the_kernel_cannot_confine_it() {
    if !(has_landlock() && has_seccomp()) {
        return;
    }
    let context = TestContext::new("[sandbox]\nmode = \"enforce\"\n");
    context.script(&happy_script());
    context.intake(&["--route", "chore"]).assert_code(0);
    context.phase("plan").assert_code(0);
    context.phase("implement").assert_code(0);
    let run_dir = context.run_dir.to_str().unwrap();
    let mut command = context.command(&["phase", "verify", "--run-dir", run_dir]);
    command.env("BATON_SANDBOX_SIMULATE_MISSING", "Landlock");
    let run = Run(command.output().unwrap());
    run.assert_code(2);
    assert!(
        run.stderr().contains("gates cannot run"),
        "{}",
        run.stderr()
    );
    assert!(!context.run_dir.join("gates").exists(), "a gate ran");
}

#[test]
fn mode_off_says_not_confined() {
    let context = TestContext::new("[sandbox]\nmode = \"off\"\n");
    implement_runs(&context, &["echo hi"]);
    let markdown = context.run_file("evidence.md");
    assert!(
        markdown.contains("agent commands: not confined ([sandbox] mode = \"off\")"),
        "{markdown}"
    );
}

#[test]
fn a_gate_fills_the_package_caches_but_not_the_toolchain_and_an_agent_command_neither() {
    if !has_landlock() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let cargo = home.path().join("cargo-home");
    // The gate writes where cargo downloads crates (allowed) and where it
    // keeps installed binaries (refused); the test still passes either way,
    // so the run goes on and the markers tell.
    let gate = "echo c > \"$CARGO_HOME/registry/marker\"; echo b > \"$CARGO_HOME/bin-marker\"; sh run_tests.sh";
    let context = TestContext::with_config(
        &crate::support::BASE_CONFIG
            .replace("run = \"sh run_tests.sh\"", &format!("run = '{gate}'")),
    )
    .env("HOME", home.path().to_str().unwrap())
    .env("CARGO_HOME", cargo.to_str().unwrap());
    let transcript = implement_runs(
        &context,
        &["echo a > \"$CARGO_HOME/registry/agent\"; echo agent-cache-status=$?"],
    );
    assert!(
        cargo.join("registry/marker").exists(),
        "the gate could not fill the registry"
    );
    assert!(
        !cargo.join("bin-marker").exists(),
        "the gate wrote beside the toolchain"
    );
    assert!(!cargo.join("registry/agent").exists(), "{transcript}");
    assert!(transcript.contains("agent-cache-status=2"), "{transcript}");
    let evidence = context.evidence().to_string();
    assert!(
        evidence.contains("gates (best_effort): writes only in the work tree, the run's temp dir and the package caches"),
        "{evidence}"
    );
}

#[test]
fn an_agent_command_cannot_reach_a_unix_socket_either() {
    // A Docker daemon's socket is a root shell with the network.
    if !has_seccomp() {
        return;
    }
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("daemon.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    listener.set_nonblocking(true).unwrap();
    let context = TestContext::new("");
    let transcript = implement_runs(
        &context,
        &[&format!(
            "python3 -c \"import socket; s = socket.socket(socket.AF_UNIX); s.connect('{}'); print('connected')\"; echo unix-status=$?",
            path.display()
        )],
    );
    assert!(
        listener.accept().is_err(),
        "a connection arrived: {transcript}"
    );
    assert!(transcript.contains("unix-status=1"), "{transcript}");
    assert!(transcript.contains("PermissionError"), "{transcript}");
}
