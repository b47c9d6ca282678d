//! Context is a budget: total input tokens of the demo route, as baton sends
//! them (each phase only its own inputs, capped), against a naive pipeline
//! that resends every earlier deliverable to every phase.
//!
//! Both sides are measured the same way: the demo runs with a scripted model
//! whose usage is estimated from the real request text (four characters a
//! token). For the naive side, each request keeps its system prompt and its
//! conversation, but its opening prompt is replaced by the ticket plus every
//! deliverable produced before that phase (spec, design, plan, patch, gate
//! logs, review…).
//!
//! Run: `cargo bench --bench context`.

#![expect(clippy::expect_used, reason = "a benchmark stops at the first failure")]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const BATON: &str = env!("CARGO_BIN_EXE_baton");

fn estimate(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// What each phase leaves for later phases to (re)read.
fn deliverables(phase: &str) -> &'static [&'static str] {
    match phase {
        "spec" => &["spec.md"],
        "design" => &["design.md"],
        "plan" => &["plan.md"],
        "tests" => &["tests.json", "changes.patch"],
        "implement" => &["changes.patch", "implement.json"],
        "verify" => &["verify.json", "gates/build.log", "gates/test.log"],
        "repair" => &["repair.json"],
        "review" => &["review.md"],
        _ => &[],
    }
}

fn main() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let demo = directory.path().join("demo");
    let status = Command::new(BATON)
        .args([
            "demo",
            "--dir",
            demo.to_str().expect("utf-8 path"),
            "--prepare-only",
        ])
        .status()
        .expect("baton runs");
    assert!(status.success());
    // Usage estimated from the real requests, not the script's fixed numbers.
    let mut script: Value = serde_json::from_str(&read(&demo.join("script.json"))).expect("script");
    for replies in script.as_object_mut().expect("object").values_mut() {
        for reply in replies.as_array_mut().into_iter().flatten() {
            if let Some(reply) = reply.as_object_mut() {
                reply.remove("usage");
            }
        }
    }
    std::fs::write(demo.join("script.json"), script.to_string()).expect("write script");
    let run_dir = demo.join("run");
    let output = Command::new(BATON)
        .args([
            "run",
            "--local",
            "--issue-file",
            demo.join("issue.md").to_str().expect("utf-8"),
            "--run-dir",
            run_dir.to_str().expect("utf-8"),
        ])
        .current_dir(demo.join("project"))
        .output()
        .expect("baton runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let manifest: Value =
        serde_json::from_str(&read(&run_dir.join("manifest.json"))).expect("manifest");
    let order: Vec<String> = manifest["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();

    let mut rows: Vec<(String, u64, u64)> = Vec::new();
    for (index, phase) in order.iter().enumerate() {
        // The ticket goes to every phase on both sides.
        let mut pile = read(&run_dir.join("ticket.json"));
        for earlier in &order[..index] {
            for file in deliverables(earlier) {
                pile.push_str(&read(&run_dir.join(file)));
            }
        }
        let mut baton_tokens = 0;
        let mut naive_tokens = 0;
        let Ok(entries) = std::fs::read_dir(run_dir.join("transcripts")) else {
            continue;
        };
        let attempt_of_run = order[..index]
            .iter()
            .filter(|earlier| *earlier == phase)
            .count()
            + 1;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((label, attempt)) = name.trim_end_matches(".jsonl").rsplit_once('-') else {
                continue;
            };
            let matches_phase = label == phase || label.starts_with(&format!("{phase}."));
            // repair-N belongs to the N-th repair; other phases own all their attempts.
            if !matches_phase || (phase == "repair" && attempt != attempt_of_run.to_string()) {
                continue;
            }
            let mut system = String::new();
            let mut messages: Vec<Value> = Vec::new();
            for line in read(&entry.path()).lines() {
                let line: Value = serde_json::from_str(line).expect("transcript line");
                if let Some(text) = line["system"].as_str() {
                    text.clone_into(&mut system);
                }
                messages.extend(line["sent"].as_array().cloned().unwrap_or_default());
                let conversation =
                    serde_json::to_string(&messages[1.min(messages.len())..]).unwrap_or_default();
                let opening =
                    serde_json::to_string(&messages[..1.min(messages.len())]).unwrap_or_default();
                baton_tokens += estimate(&system) + estimate(&opening) + estimate(&conversation);
                naive_tokens += estimate(&system) + estimate(&pile) + estimate(&conversation);
                messages.push(
                    serde_json::json!({"role": "assistant", "content": line["reply"]["content"]}),
                );
            }
        }
        if baton_tokens > 0 {
            rows.push((phase.clone(), baton_tokens, naive_tokens));
        }
    }
    println!("input tokens of the demo route (estimated at 4 characters a token)");
    println!("{:<12} {:>10} {:>10}", "phase", "baton", "naive");
    for (phase, baton_tokens, naive_tokens) in &rows {
        println!("{phase:<12} {baton_tokens:>10} {naive_tokens:>10}");
    }
    let baton_total: u64 = rows.iter().map(|row| row.1).sum();
    let naive_total: u64 = rows.iter().map(|row| row.2).sum();
    println!("{:<12} {baton_total:>10} {naive_total:>10}", "total");
    println!(
        "baton / naive = {:.2} (baton sends {:.0}% of the naive pipeline's input tokens)",
        baton_total as f64 / naive_total as f64,
        100.0 * baton_total as f64 / naive_total as f64
    );
    // The first implement request whole (system, tool schemas, prompt):
    // what a small model's window must hold before any work is done.
    let first_implement = read(&run_dir.join("transcripts/implement-1.jsonl"))
        .lines()
        .next()
        .and_then(|line| serde_json::from_str::<Value>(line).ok())
        .and_then(|line| line["reply"]["usage"]["input_tokens"].as_u64())
        .unwrap_or(0);
    println!("first implement request: {first_implement} input tokens (system, tools and prompt)");
    let recorded = manifest["budget"]["spent"]["tokens_in"]
        .as_u64()
        .unwrap_or(0);
    println!("(baton's own accounting for the same run: {recorded} input tokens)");
}
