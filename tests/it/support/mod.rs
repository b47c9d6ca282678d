//! The shared test context: a temporary git repository holding a tiny shell
//! project, a scripted model, and the real `baton` binary run against them.

#![allow(dead_code)]

pub mod fake_forge;
pub mod fake_llm;
pub mod runner;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

pub const BATON: &str = env!("CARGO_BIN_EXE_baton");

/// The project every test starts from: `greet` says "hello"; the issue asks
/// for "hello, world". Its one gate runs every `tests/*.sh`.
const LIB: &str = "greet() { echo \"hello\"; }\n";
const RUN_TESTS: &str = "for t in tests/*.sh; do [ -e \"$t\" ] || continue; sh \"$t\" || exit 1; done\necho all tests passed\n";

pub const BASE_CONFIG: &str = r#"
[models]
heavy = "fake:heavy"
standard = "fake:standard"
light = "fake:light"

[providers.fake]
kind = "scripted"
script = "../script.json"

[[gates]]
name = "test"
run = "sh run_tests.sh"
timeout_s = 60

[pricing."fake:standard"]
input_per_mtok = 3.0
output_per_mtok = 15.0

[pricing."fake:heavy"]
input_per_mtok = 15.0
output_per_mtok = 75.0

[pricing."fake:light"]
input_per_mtok = 1.0
output_per_mtok = 5.0
"#;

pub const GOOD_TEST: &str = ". ./lib.sh\n[ \"$(greet)\" = \"hello, world\" ] || { echo \"greet said: $(greet)\"; exit 1; }\n";

pub struct TestContext {
    pub directory: tempfile::TempDir,
    pub repo: PathBuf,
    pub run_dir: PathBuf,
    pub issue: PathBuf,
    pub script: PathBuf,
    environment: Vec<(String, String)>,
}

impl TestContext {
    /// A repository with the base config and the given extra config text.
    pub fn new(extra_config: &str) -> Self {
        Self::with_config(&format!("{BASE_CONFIG}\n{extra_config}"))
    }

    /// A repository whose `baton.toml` is exactly `config`.
    pub fn with_config(config: &str) -> Self {
        let directory = tempfile::tempdir().unwrap();
        let repo = directory.path().join("repo");
        std::fs::create_dir_all(repo.join("tests")).unwrap();
        std::fs::write(repo.join("lib.sh"), LIB).unwrap();
        std::fs::write(repo.join("run_tests.sh"), RUN_TESTS).unwrap();
        std::fs::write(repo.join("tests/.keep"), "").unwrap();
        std::fs::write(repo.join("baton.toml"), config).unwrap();
        let context = Self {
            run_dir: directory.path().join("run"),
            issue: directory.path().join("issue.md"),
            script: directory.path().join("script.json"),
            repo,
            directory,
            environment: Vec::new(),
        };
        context.commit("base");
        context.issue_with_labels(&[]);
        context
    }

    pub fn path(&self) -> &Path {
        self.directory.path()
    }

    pub fn commit(&self, message: &str) {
        let repository = git2::Repository::init(&self.repo).unwrap();
        let mut index = repository.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        index.write().unwrap();
        let tree = repository.find_tree(index.write_tree().unwrap()).unwrap();
        let signature = git2::Signature::now("test", "test@example.com").unwrap();
        let parent = repository
            .head()
            .ok()
            .and_then(|head| head.peel_to_commit().ok());
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        repository
            .commit(
                Some("HEAD"),
                &signature,
                &signature,
                message,
                &tree,
                &parents,
            )
            .unwrap();
    }

    pub fn issue_with_labels(&self, labels: &[&str]) {
        std::fs::write(
            &self.issue,
            format!(
                "---\nnumber: 7\nlabels: [{}]\n---\n# Greet the whole world\n\n`greet` should say \"hello, world\".\n",
                labels.join(", ")
            ),
        )
        .unwrap();
    }

    pub fn script(&self, script: &Value) {
        std::fs::write(&self.script, serde_json::to_string_pretty(script).unwrap()).unwrap();
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.environment.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Runs the real binary in the repository with a clean environment.
    pub fn baton(&self, arguments: &[&str]) -> Run {
        Run(self.command(arguments).output().unwrap())
    }

    /// Runs the binary, killing it (and failing the test) if it has not
    /// ended within `seconds`: for runs that must end by themselves.
    #[track_caller]
    pub fn baton_within(&self, seconds: u64, arguments: &[&str]) -> Run {
        let mut child = self
            .command(arguments)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let output = child.wait_with_output().unwrap();
                panic!(
                    "baton {arguments:?} did not end within {seconds} s\n{}",
                    String::from_utf8_lossy(&output.stderr)
                        .lines()
                        .rev()
                        .take(20)
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Run(child.wait_with_output().unwrap())
    }

    /// The command `baton` would run, to spawn it and signal it.
    pub fn command(&self, arguments: &[&str]) -> Command {
        let mut command = Command::new(BATON);
        command.args(arguments).current_dir(&self.repo).env_clear();
        for name in [
            "PATH",
            "HOME",
            "CARGO_HOME",
            "RUSTUP_HOME",
            "RUSTUP_TOOLCHAIN",
            "TMPDIR",
            "LANG",
        ] {
            if let Ok(value) = std::env::var(name) {
                command.env(name, value);
            }
        }
        for (name, value) in &self.environment {
            command.env(name, value);
        }
        command
    }

    pub fn run_local(&self) -> Run {
        self.baton(&[
            "run",
            "--local",
            "--issue-file",
            self.issue.to_str().unwrap(),
            "--run-dir",
            self.run_dir.to_str().unwrap(),
        ])
    }

    /// `baton phase intake` on this context's issue and run directory.
    pub fn intake(&self, extra: &[&str]) -> Run {
        let mut arguments = vec![
            "phase",
            "intake",
            "--issue-file",
            self.issue.to_str().unwrap(),
            "--run-dir",
            self.run_dir.to_str().unwrap(),
        ];
        arguments.extend_from_slice(extra);
        self.baton(&arguments)
    }

    pub fn phase(&self, name: &str) -> Run {
        self.baton(&["phase", name, "--run-dir", self.run_dir.to_str().unwrap()])
    }

    pub fn manifest(&self) -> Value {
        read_json(&self.run_dir.join("manifest.json"))
    }

    pub fn evidence(&self) -> Value {
        read_json(&self.run_dir.join("evidence.json"))
    }

    pub fn phase_names(&self) -> Vec<String> {
        self.manifest()["phases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    }

    pub fn run_file(&self, relative: &str) -> String {
        std::fs::read_to_string(self.run_dir.join(relative))
            .unwrap_or_else(|error| panic!("{relative}: {error}"))
    }
}

pub fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    #[track_caller]
    pub fn assert_code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code(),
            expected,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

// ---- script building -------------------------------------------------------

pub fn call(name: &str, arguments: Value) -> Value {
    json!({"name": name, "arguments": arguments})
}

/// One reply with the given tool calls and a fixed usage.
pub fn reply(calls: Vec<Value>) -> Value {
    json!({"calls": calls, "usage": {"input": 1000, "output": 100}})
}

pub fn pass() -> Value {
    json!([reply(vec![call(
        "submit_verdict",
        json!({"verdict": "pass", "objections": []})
    )])])
}

pub fn revise(objection: &str) -> Value {
    json!([reply(vec![call(
        "submit_verdict",
        json!({"verdict": "revise", "objections": [objection]})
    )])])
}

pub fn write(path: &str, content: &str) -> Value {
    call("write_file", json!({"path": path, "content": content}))
}

pub fn finish(summary: &str) -> Value {
    call("finish", json!({"summary": summary}))
}

/// Agent turns: each element is one reply's calls; `finish` is added last.
pub fn agent(turns: Vec<Vec<Value>>) -> Value {
    let mut replies: Vec<Value> = turns.into_iter().map(reply).collect();
    replies.push(reply(vec![finish("done")]));
    Value::Array(replies)
}

/// A script under which every route finishes `done`.
pub fn happy_script() -> Value {
    json!({
        "intake": [reply(vec![call("submit_route", json!({"route": "feature", "reason": "new behaviour"}))])],
        "spec": [reply(vec![call("submit_spec", json!({
            "summary": "greet says hello, world",
            "objectives": ["greet prints hello, world"],
            "non_goals": ["other greetings"],
            "acceptance": ["greet prints exactly `hello, world`"]
        }))])],
        "spec.validate": pass(),
        "design": [reply(vec![call("submit_design", json!({
            "approach": "change the echo in lib.sh",
            "components": [{"name": "lib.sh", "responsibility": "greet"}]
        }))])],
        "design.validate": pass(),
        "plan": [reply(vec![call("submit_plan", json!({
            "steps": ["test", "change greet"],
            "touchpoints": ["lib.sh", "tests/"],
            "tests": ["tests/greet_test.sh"],
            "rollback": "restore the old echo"
        }))])],
        "plan.validate": pass(),
        "tests": agent(vec![vec![write("tests/greet_test.sh", GOOD_TEST)]]),
        "implement": agent(vec![vec![write("lib.sh", "greet() { echo \"hello, world\"; }\n")]]),
        "review": [reply(vec![call("submit_review", json!({"verdict": "approve", "findings": []}))])],
        "review.validate": pass(),
        "split": [reply(vec![call("submit_children", json!({"children": [
            {"title": "Part one", "body": "the first half"},
            {"title": "Part two", "body": "the second half"}
        ]}))])],
        "split.validate": pass(),
    })
}

/// Every file under the run directory, with its text.
pub fn all_files(directory: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut stack = vec![directory.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                files.push((path, text));
            }
        }
    }
    files
}
