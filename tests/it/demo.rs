//! `baton demo`, and the same run phase by phase as CI jobs would run it.

use std::path::Path;

use serde_json::Value;

use crate::support::{BATON, read_json};

fn baton(arguments: &[&str], cwd: &Path) -> std::process::Output {
    std::process::Command::new(BATON)
        .args(arguments)
        .current_dir(cwd)
        .env_remove("BATON_CONFIG")
        .env_remove("BATON_RUN_DIR")
        .output()
        .unwrap()
}

/// Removes what differs between two honest runs: ids, clocks, durations.
fn normalized(mut value: Value) -> Value {
    fn walk(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, field) in map.iter_mut() {
                    if matches!(
                        key.as_str(),
                        "run_id"
                            | "duration_s"
                            | "wall_s"
                            | "started_at"
                            | "finished_at"
                            | "created_at"
                    ) {
                        *field = Value::Null;
                    } else {
                        walk(field);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}

#[test]
fn the_demo_ends_done_and_shows_every_mechanism_and_matches_a_phase_by_phase_run() {
    let directory = tempfile::tempdir().unwrap();
    let local = directory.path().join("local");
    let output = baton(
        &["demo", "--dir", local.to_str().unwrap()],
        directory.path(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("outcome: done"), "{stderr}");
    let evidence_path = local.join("run/evidence.md");
    assert!(
        stderr.contains(&evidence_path.display().to_string()),
        "{stderr}"
    );

    // The demo ends with what to do next.
    assert!(stderr.contains("next:"), "{stderr}");
    assert!(stderr.contains("git -C "), "{stderr}");
    assert!(stderr.contains("Use it on your repository"), "{stderr}");

    // The body opens with the summary, the criteria ticked, the picture;
    // long sections are folded.
    let markdown = std::fs::read_to_string(&evidence_path).unwrap();
    let opening: Vec<&str> = markdown.lines().take(12).collect();
    assert!(
        opening.contains(&"Add textkit::slugify, which turns a title into a URL slug."),
        "{markdown}"
    );
    assert!(markdown.contains("### Acceptance criteria\n\n- [x] slugify(\"Hello World\")"));
    assert!(markdown.contains("```mermaid\nflowchart LR\n"));
    assert!(
        markdown.contains("[\"verify<br/>test failed\"]"),
        "{markdown}"
    );
    assert!(markdown.contains("<details><summary><b>Cost</b>"));
    let acceptance = markdown.find("### Acceptance criteria").unwrap();
    let picture = markdown.find("```mermaid").unwrap();
    let tables = markdown.find("### What changed").unwrap();
    assert!(acceptance < picture && picture < tables);

    let evidence = read_json(&local.join("run/evidence.json"));
    assert_eq!(evidence["outcome"], "done");
    // One validator revise, then pass.
    let spec_verdicts: Vec<&str> = evidence["validator"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["phase"] == "spec")
        .map(|entry| entry["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(spec_verdicts, ["revise", "pass"]);
    // Red on base, green after.
    assert_eq!(evidence["tests_first"]["red"], true);
    assert_eq!(evidence["tests_first"]["green"], true);
    // One gate failed and a repair fixed it.
    assert_eq!(
        evidence["repairs"][0]["failed_gates"],
        serde_json::json!(["test"])
    );
    assert!(
        evidence["gates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|gate| gate["status"] == "passed")
    );
    // What confined the commands: a Sandbox line for every phase that ran
    // any (agent commands in tests, implement and repair; gates in tests
    // and verify), in the JSON and in the pull request body.
    let sandboxed: Vec<&str> = evidence["sandbox"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["phase"].as_str().unwrap())
        .collect();
    for phase in ["tests", "implement", "verify", "repair"] {
        assert!(sandboxed.contains(&phase), "{phase}: {sandboxed:?}");
    }
    let markdown = std::fs::read_to_string(&evidence_path).unwrap();
    assert!(markdown.contains("### Sandbox"), "{markdown}");
    assert!(
        markdown.contains("agent commands (best_effort): "),
        "{markdown}"
    );
    // Tokens and cost per phase, summing to the totals.
    let by_phase = evidence["budget"]["by_phase"].as_object().unwrap();
    for phase in [
        "intake",
        "spec",
        "design",
        "plan",
        "tests",
        "implement",
        "repair",
        "review",
    ] {
        assert!(
            by_phase[phase]["tokens_in"].as_u64().unwrap() > 0,
            "{phase}"
        );
        assert!(
            by_phase[phase]["cost_usd"].as_f64().unwrap() > 0.0,
            "{phase}"
        );
    }
    let tokens_in: u64 = by_phase
        .values()
        .map(|phase| phase["tokens_in"].as_u64().unwrap())
        .sum();
    assert_eq!(tokens_in, evidence["budget"]["tokens_in"].as_u64().unwrap());
    let cost: f64 = by_phase
        .values()
        .map(|phase| phase["cost_usd"].as_f64().unwrap())
        .sum();
    assert!((cost - evidence["budget"]["cost_usd"].as_f64().unwrap()).abs() < 1e-9);

    // The same run, one `baton phase` per job as CI runs it: every job in a
    // fresh clone of the repository at a new path, the run directory copied
    // between jobs as an artifact would be.
    let sequence: Vec<String> = read_json(&local.join("run/manifest.json"))["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|phase| phase["name"].as_str().unwrap().to_owned())
        .collect();
    let jobs = directory.path().join("jobs");
    let prepared = baton(
        &["demo", "--dir", jobs.to_str().unwrap(), "--prepare-only"],
        directory.path(),
    );
    assert!(
        prepared.status.success(),
        "{}",
        String::from_utf8_lossy(&prepared.stderr)
    );
    // It says how to run what it prepared.
    assert!(
        String::from_utf8_lossy(&prepared.stderr).contains("run it:  cd "),
        "{}",
        String::from_utf8_lossy(&prepared.stderr)
    );
    let origin = jobs.join("project");
    let mut artifact = jobs.join("artifact-0");
    for (index, phase) in sequence.iter().enumerate() {
        let job_dir = jobs.join(format!("job-{index}"));
        if index > 0 {
            copy_dir(&artifact, &job_dir);
        }
        // `../script.json` in the demo's config resolves beside each clone.
        let checkout = jobs.join(format!("checkout-{index}"));
        git2::Repository::clone(origin.to_str().unwrap(), &checkout).unwrap();
        let mut arguments = vec![
            "phase",
            phase.as_str(),
            "--run-dir",
            job_dir.to_str().unwrap(),
            "--repo",
            checkout.to_str().unwrap(),
        ];
        let issue = jobs.join("issue.md");
        if phase == "intake" {
            arguments.extend(["--issue-file", issue.to_str().unwrap()]);
        }
        let output = baton(&arguments, &checkout);
        // A verify with a red gate turns its job red (exit 1) though the
        // run goes on with repair.
        let red =
            phase == "verify" && sequence.get(index + 1).map(String::as_str) == Some("repair");
        assert_eq!(
            output.status.code(),
            Some(i32::from(red)),
            "phase {phase}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        artifact = job_dir;
        // The job's machine is gone: nothing of the checkout carries over.
        std::fs::remove_dir_all(&checkout).unwrap();
    }
    let phased = read_json(&artifact.join("evidence.json"));
    assert_eq!(normalized(phased), normalized(evidence));
    let local_markdown = std::fs::read_to_string(&evidence_path).unwrap();
    let phased_markdown = std::fs::read_to_string(artifact.join("evidence.md")).unwrap();
    let strip = |text: &str| -> String {
        text.lines()
            .filter(|line| {
                !line.starts_with("<sub>Route ")
                    && !line.starts_with('|')
                    && !line.contains("<b>Cost</b>")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&phased_markdown), strip(&local_markdown));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
