//! baton's own overhead per phase, with the scripted provider (no network).
//!
//! For every phase of the demo route, run as its own process the way a CI job
//! runs it, this measures:
//! - start → first model request: from just before the process is spawned to
//!   the `requested_at` of its first request in the transcript;
//! - end → exit: from the phase's `finished_at` in the manifest to the moment
//!   the process has exited.
//!
//! Gate commands (cargo build/test of the demo project) are the project's
//! time, not baton's, and are not part of either number.
//!
//! Run: `cargo bench --bench overhead` (ITERATIONS=N to change the sample size).

#![expect(clippy::expect_used, reason = "a benchmark stops at the first failure")]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use serde_json::Value;

const BATON: &str = env!("CARGO_BIN_EXE_baton");
const TARGET_MS: f64 = 20.0;

fn epoch_seconds(time: SystemTime) -> f64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |duration| duration.as_secs_f64())
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn baton(arguments: &[&str], cwd: &Path) {
    let output = Command::new(BATON)
        .args(arguments)
        .current_dir(cwd)
        .output()
        .expect("baton runs");
    assert!(
        output.status.success(),
        "baton {arguments:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len().is_multiple_of(2) {
        f64::midpoint(values[middle - 1], values[middle])
    } else {
        values[middle]
    }
}

/// The first request's timestamp in the transcripts a phase execution wrote.
fn first_request(run_dir: &Path, before: &[String]) -> Option<f64> {
    let transcripts = run_dir.join("transcripts");
    let mut earliest: Option<f64> = None;
    for entry in std::fs::read_dir(&transcripts).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if before.contains(&name) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).ok()?;
        let line: Value = serde_json::from_str(text.lines().next()?).ok()?;
        let at = baton::clock::parse_rfc3339(line["requested_at"].as_str()?)?;
        earliest = Some(earliest.map_or(at, |current: f64| current.min(at)));
    }
    earliest
}

fn transcripts(run_dir: &Path) -> Vec<String> {
    std::fs::read_dir(run_dir.join("transcripts"))
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn main() {
    let iterations: usize = std::env::var("ITERATIONS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(5);
    let directory = tempfile::tempdir().expect("temporary directory");
    let root = directory.path();

    // The phase sequence of the demo, from one local run.
    baton(
        &[
            "demo",
            "--dir",
            root.join("reference").to_str().unwrap_or_default(),
        ],
        root,
    );
    let sequence: Vec<String> = read_json(&root.join("reference/run/manifest.json"))["phases"]
        .as_array()
        .map(|phases| {
            phases
                .iter()
                .filter_map(|phase| phase["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();

    let mut start_to_request: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut end_to_exit: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for iteration in 0..iterations {
        let demo = root.join(format!("demo-{iteration}"));
        baton(
            &[
                "demo",
                "--dir",
                demo.to_str().unwrap_or_default(),
                "--prepare-only",
            ],
            root,
        );
        let project = demo.join("project");
        let run_dir = demo.join("run");
        let issue = demo.join("issue.md");
        for (index, phase) in sequence.iter().enumerate() {
            let label = if sequence[..index].contains(phase) {
                format!("{phase}#2")
            } else {
                phase.clone()
            };
            let seen = transcripts(&run_dir);
            let mut arguments = vec![
                "phase",
                phase.as_str(),
                "--run-dir",
                run_dir.to_str().unwrap_or_default(),
            ];
            if phase == "intake" {
                arguments.extend(["--issue-file", issue.to_str().unwrap_or_default()]);
            }
            let spawned = epoch_seconds(SystemTime::now());
            baton(&arguments, &project);
            let exited = epoch_seconds(SystemTime::now());
            let manifest = read_json(&run_dir.join("manifest.json"));
            let finished = manifest["phases"][index]["finished_at"]
                .as_str()
                .and_then(baton::clock::parse_rfc3339);
            if let Some(finished) = finished {
                end_to_exit
                    .entry(label.clone())
                    .or_default()
                    .push((exited - finished) * 1000.0);
            }
            if let Some(requested) = first_request(&run_dir, &seen) {
                start_to_request
                    .entry(label)
                    .or_default()
                    .push((requested - spawned) * 1000.0);
            }
        }
    }

    println!(
        "baton overhead per phase, scripted provider, {iterations} iteration(s), median (max) in ms"
    );
    println!(
        "{:<12} {:>24} {:>20}",
        "phase", "start → first request", "end → exit"
    );
    let mut worst: f64 = 0.0;
    let mut labels: Vec<String> = end_to_exit.keys().cloned().collect();
    labels.sort_by_key(|label| {
        sequence
            .iter()
            .position(|phase| label.starts_with(phase.as_str()))
    });
    for label in &labels {
        let request = start_to_request.get_mut(label.as_str()).map(|values| {
            let max = values.iter().copied().fold(0.0, f64::max);
            let median = median(values);
            worst = worst.max(median);
            format!("{median:.1} ({max:.1})")
        });
        let values = end_to_exit.get_mut(label.as_str()).expect("measured");
        let max = values.iter().copied().fold(0.0, f64::max);
        let exit = median(values);
        worst = worst.max(exit);
        println!(
            "{label:<12} {:>24} {:>20}",
            request.unwrap_or_else(|| "— (no model)".into()),
            format!("{exit:.1} ({max:.1})")
        );
    }
    println!(
        "worst median: {worst:.1} ms (target < {TARGET_MS} ms): {}",
        if worst < TARGET_MS { "met" } else { "NOT met" }
    );
}
