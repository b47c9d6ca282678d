//! What confining a command costs: `sh -c true` started as baton starts a
//! command unconfined, against the same command through the sandbox
//! wrapper (`baton __sandbox-exec`: resource limits, the seccomp filter,
//! the capability drop and the Landlock ruleset, then exec), with the policy
//! an agent command gets (work tree, temp dir, devices; network off).
//!
//! The goal: under 5 ms added per command (median).
//!
//! Run: `cargo bench --bench sandbox` (ITERATIONS=N to change the sample size).

#![expect(clippy::expect_used, reason = "a benchmark stops at the first failure")]

use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::json;

const BATON: &str = env!("CARGO_BIN_EXE_baton");
const TARGET_MS: f64 = 5.0;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len().is_multiple_of(2) {
        f64::midpoint(values[middle - 1], values[middle])
    } else {
        values[middle]
    }
}

/// Milliseconds from spawn to exit.
fn time(command: &mut Command) -> f64 {
    let started = Instant::now();
    let status = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the command starts");
    assert!(status.success(), "{command:?}: {status}");
    started.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let iterations: usize = std::env::var("ITERATIONS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(200);
    let tree = tempfile::tempdir().expect("a temporary work tree");
    let temporary = tempfile::tempdir().expect("a temporary directory");
    let policy = json!({
        "writable": [
            tree.path(), temporary.path(),
            "/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/ptmx",
            "/dev/pts", "/dev/shm", "/dev/random", "/dev/urandom",
        ],
        "network": false,
        "limits": {"cpu_seconds": 3600, "address_space_mb": 0, "processes": 4096, "file_size_mb": 4096},
        "enforce": false,
    })
    .to_string();
    let report = Command::new(BATON)
        .args(["__sandbox-exec", &policy, "--report"])
        .output()
        .expect("the wrapper reports");
    println!("kernel: {}", String::from_utf8_lossy(&report.stdout).trim());

    let mut plain = Vec::with_capacity(iterations);
    let mut confined = Vec::with_capacity(iterations);
    // Interleaved, so that load from elsewhere falls on both alike.
    for _ in 0..iterations {
        plain.push(time(
            Command::new("/bin/sh")
                .args(["-c", "true"])
                .current_dir(tree.path()),
        ));
        confined.push(time(
            Command::new(BATON)
                .args(["__sandbox-exec", &policy, "--", "/bin/sh", "-c", "true"])
                .current_dir(tree.path()),
        ));
    }
    let plain_median = median(&mut plain);
    let confined_median = median(&mut confined);
    let added = confined_median - plain_median;
    println!("iterations: {iterations}");
    println!("sh -c true, unconfined: {plain_median:.2} ms (median)");
    println!("sh -c true, confined:   {confined_median:.2} ms (median)");
    println!(
        "added per command: {added:.2} ms (×{:.1}); goal under {TARGET_MS} ms: {}",
        confined_median / plain_median,
        if added < TARGET_MS { "met" } else { "NOT met" }
    );
}
