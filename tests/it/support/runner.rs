//! A small Actions runner for the pipeline workflow, as GitHub and Forgejo
//! run it: jobs in `needs` order, each job's `if:` evaluated with the
//! `needs` results and outputs it meets, a fresh checkout and runner
//! temporary directory per job, artifacts stored and copied back the way
//! upload/download-artifact do (hidden files left out), the composite action
//! of this repository run step by step with its inputs reaching the script
//! through `env:`, and `GITHUB_OUTPUT` files turned into step, action and job
//! outputs. Every `run:` step is run for real with bash.
//!
//! Expressions: the subset the workflow uses (`==`, `!=`, `&&`, `||`, `!`,
//! parentheses, strings, `always()`, `success()`, `failure()`,
//! `cancelled()`, contexts `github`, `inputs`, `needs`, `steps`, `secrets`,
//! `vars`, `runner`), with GitHub's value semantics: `||` and `&&` return an
//! operand, missing values are null, strings compare case-insensitively.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use serde_yaml::Value as Yaml;

use super::BATON;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    GitHub,
    Forgejo,
}

#[derive(Debug, Clone, Default)]
pub struct JobResult {
    /// success, failure, skipped or cancelled.
    pub result: String,
    pub outputs: BTreeMap<String, String>,
    /// What its steps printed.
    pub log: String,
    /// Every environment variable a step of the job saw, by step.
    pub environments: Vec<BTreeMap<String, String>>,
}

pub struct Runner {
    pub forge: Forge,
    workflow: Yaml,
    /// The bare repository every checkout clones.
    pub origin: PathBuf,
    root: PathBuf,
    pub event_name: String,
    pub event: Value,
    pub secrets: BTreeMap<String, String>,
    pub vars: BTreeMap<String, String>,
    /// Variables the runner itself sets (server and API addresses).
    pub base_env: BTreeMap<String, String>,
    pub token: String,
    pub repository: String,
    pub run_id: String,
    /// Artifact name → stored copy.
    pub artifacts: BTreeMap<String, PathBuf>,
    pub results: BTreeMap<String, JobResult>,
    /// Set to make the next job see a cancelled run.
    pub cancelled: bool,
    jobs_run: usize,
}

impl Runner {
    pub fn new(forge: Forge, workflow_text: &str, origin: &Path, root: &Path) -> Self {
        let workflow: Yaml = serde_yaml::from_str(workflow_text).expect("the workflow is YAML");
        Self {
            forge,
            workflow,
            origin: origin.to_path_buf(),
            root: root.to_path_buf(),
            event_name: String::new(),
            event: json!({}),
            secrets: BTreeMap::new(),
            vars: BTreeMap::new(),
            base_env: BTreeMap::new(),
            token: String::new(),
            repository: "octo/repo".into(),
            run_id: "4242".into(),
            artifacts: BTreeMap::new(),
            results: BTreeMap::new(),
            cancelled: false,
            jobs_run: 0,
        }
    }

    /// The job ids in the file's order, checked to be a `needs` order.
    pub fn job_ids(&self) -> Vec<String> {
        let jobs = self.workflow["jobs"].as_mapping().expect("jobs");
        let ids: Vec<String> = jobs
            .keys()
            .map(|key| key.as_str().unwrap().to_owned())
            .collect();
        for (index, id) in ids.iter().enumerate() {
            for need in needs(&self.workflow["jobs"][id.as_str()]) {
                let position = ids.iter().position(|each| *each == need);
                assert!(
                    position.is_some_and(|position| position < index),
                    "job {id} needs {need}, which is not an earlier job"
                );
            }
        }
        ids
    }

    pub fn job(&self, id: &str) -> &Yaml {
        &self.workflow["jobs"][id]
    }

    /// Runs every job in order, as one workflow run.
    pub fn run(&mut self) {
        self.results.clear();
        for id in self.job_ids() {
            let result = self.run_job(&id);
            self.results.insert(id, result);
        }
    }

    /// Runs one job again with the results of the jobs it needs as they
    /// stand (GitHub's "re-run job"); its result replaces the old one.
    pub fn rerun(&mut self, id: &str) -> JobResult {
        let result = self.run_job(id);
        self.results.insert(id.to_owned(), result.clone());
        result
    }

    pub fn result(&self, id: &str) -> &JobResult {
        &self.results[id]
    }

    /// The ids of the jobs that ran (not skipped), in order.
    pub fn ran(&self) -> Vec<String> {
        self.job_ids()
            .into_iter()
            .filter(|id| self.results.get(id).is_some_and(|r| r.result != "skipped"))
            .collect()
    }

    fn run_job(&mut self, id: &str) -> JobResult {
        let job = self.job(id).clone();
        let needs: Vec<String> = needs(&job);
        let mut needs_context = serde_json::Map::new();
        for need in &needs {
            let result = self.results.get(need).cloned().unwrap_or_default();
            needs_context.insert(
                need.clone(),
                json!({"result": result.result, "outputs": result.outputs}),
            );
        }
        let needs_ok = needs.iter().all(|need| {
            self.results
                .get(need)
                .is_some_and(|result| result.result == "success")
        });
        let status = Status {
            success: needs_ok && !self.cancelled,
            failure: needs.iter().any(|need| {
                self.results
                    .get(need)
                    .is_some_and(|result| result.result == "failure")
            }),
            cancelled: self.cancelled,
        };
        let mut context = self.base_context();
        context["needs"] = Value::Object(needs_context);
        let condition = job["if"].as_str().unwrap_or("");
        if !evaluate_condition(condition, &context, status) {
            return JobResult {
                result: "skipped".into(),
                ..JobResult::default()
            };
        }
        self.jobs_run += 1;
        let machine = self.root.join(format!("job-{}-{id}", self.jobs_run));
        let workspace = machine.join("workspace");
        let temp = machine.join("temp");
        std::fs::create_dir_all(&temp).unwrap();
        context["runner"] = json!({"temp": temp.to_str().unwrap(), "os": "Linux"});
        context["steps"] = json!({});
        let mut result = JobResult {
            result: "success".into(),
            ..JobResult::default()
        };
        let mut env = self.runner_env(&workspace, &temp);
        for (key, value) in yaml_map(&job["env"]) {
            env.insert(key, interpolate(&value, &context));
        }
        let steps = job["steps"].as_sequence().cloned().unwrap_or_default();
        for (index, step) in steps.iter().enumerate() {
            let failed = result.result == "failure";
            let status = Status {
                success: !failed && !self.cancelled,
                failure: failed,
                cancelled: self.cancelled,
            };
            let condition = step["if"].as_str().unwrap_or("");
            let step_id = step["id"]
                .as_str()
                .map_or_else(|| format!("__{index}"), str::to_owned);
            if !evaluate_condition(condition, &context, status) {
                context["steps"][&step_id] =
                    json!({"outcome": "skipped", "conclusion": "skipped", "outputs": {}});
                continue;
            }
            let (ok, outputs) = self.step(step, &context, &env, &workspace, &machine, &mut result);
            let outcome = if ok { "success" } else { "failure" };
            context["steps"][&step_id] =
                json!({"outcome": outcome, "conclusion": outcome, "outputs": outputs});
            if !ok {
                result.result = "failure".into();
            }
        }
        for (key, value) in yaml_map(&job["outputs"]) {
            let value = interpolate(&value, &context);
            if !value.is_empty() {
                result.outputs.insert(key, value);
            }
        }
        // The job's machine is gone afterwards; only artifacts remain.
        std::fs::remove_dir_all(&machine).unwrap();
        result
    }

    fn base_context(&self) -> Value {
        let inputs = if self.event_name == "workflow_dispatch" {
            self.event["inputs"].clone()
        } else {
            json!({})
        };
        json!({
            "github": {
                "event_name": self.event_name,
                "event": self.event,
                "token": self.token,
                "repository": self.repository,
                "run_id": self.run_id,
                "server_url": self.base_env.get("GITHUB_SERVER_URL"),
            },
            "inputs": inputs,
            "secrets": self.secrets,
            "vars": self.vars,
        })
    }

    /// What a runner sets for every step of a job.
    fn runner_env(&self, workspace: &Path, temp: &Path) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for name in [
            "PATH",
            "HOME",
            "CARGO_HOME",
            "RUSTUP_HOME",
            "RUSTUP_TOOLCHAIN",
            "LANG",
        ] {
            if let Ok(value) = std::env::var(name) {
                env.insert(name.to_owned(), value);
            }
        }
        let event_path = temp.join("event.json");
        std::fs::write(&event_path, self.event.to_string()).unwrap();
        for (key, value) in [
            ("CI", "true".to_owned()),
            ("GITHUB_ACTIONS", "true".to_owned()),
            ("GITHUB_EVENT_NAME", self.event_name.clone()),
            ("GITHUB_EVENT_PATH", event_path.display().to_string()),
            ("GITHUB_REPOSITORY", self.repository.clone()),
            ("GITHUB_RUN_ID", self.run_id.clone()),
            ("GITHUB_RUN_ATTEMPT", "1".to_owned()),
            ("GITHUB_WORKSPACE", workspace.display().to_string()),
            ("RUNNER_TEMP", temp.display().to_string()),
            ("TMPDIR", temp.display().to_string()),
        ] {
            env.insert(key.to_owned(), value);
        }
        if self.forge == Forge::Forgejo {
            env.insert("FORGEJO_ACTIONS".into(), "true".into());
        }
        env.extend(self.base_env.clone());
        env
    }

    /// One step: an action or a `run:` script. Returns whether it passed
    /// and its outputs.
    fn step(
        &mut self,
        step: &Yaml,
        context: &Value,
        env: &BTreeMap<String, String>,
        workspace: &Path,
        machine: &Path,
        result: &mut JobResult,
    ) -> (bool, BTreeMap<String, String>) {
        let mut env = env.clone();
        for (key, value) in yaml_map(&step["env"]) {
            env.insert(key, interpolate(&value, context));
        }
        let with: BTreeMap<String, String> = yaml_map(&step["with"])
            .into_iter()
            .map(|(key, value)| (key, interpolate(&value, context)))
            .collect();
        if let Some(script) = step["run"].as_str() {
            let shell = step["shell"].as_str().unwrap_or("bash");
            return run_script(shell, script, &env, workspace, machine, result);
        }
        let uses = step["uses"].as_str().expect("a step runs or uses");
        if uses.contains("/checkout@") {
            let cloned = Command::new("git")
                .args(["clone", "--quiet"])
                .arg(&self.origin)
                .arg(workspace)
                .status()
                .unwrap()
                .success();
            return (cloned, BTreeMap::new());
        }
        if uses.contains("/download-artifact@") {
            let name = &with["name"];
            let Some(stored) = self.artifacts.get(name) else {
                result
                    .log
                    .push_str(&format!("download-artifact: no artifact named '{name}'\n"));
                return (false, BTreeMap::new());
            };
            copy_tree(stored, Path::new(&with["path"]), false);
            return (true, BTreeMap::new());
        }
        if uses.contains("/upload-artifact@") {
            let name = with["name"].clone();
            let path = PathBuf::from(&with["path"]);
            if !path.exists() {
                let ignore = with.get("if-no-files-found").map(String::as_str) == Some("ignore");
                return (ignore, BTreeMap::new());
            }
            if self.artifacts.contains_key(&name)
                && with.get("overwrite").map(String::as_str) != Some("true")
            {
                result
                    .log
                    .push_str(&format!("upload-artifact: '{name}' exists\n"));
                return (false, BTreeMap::new());
            }
            let stored = self.root.join("artifacts").join(&name);
            if stored.exists() {
                std::fs::remove_dir_all(&stored).unwrap();
            }
            let hidden = with.get("include-hidden-files").map(String::as_str) == Some("true");
            copy_tree(&path, &stored, !hidden);
            self.artifacts.insert(name, stored);
            return (true, BTreeMap::new());
        }
        assert!(
            uses == "./" || uses.starts_with("baton-ci/baton@"),
            "the runner knows no action {uses}"
        );
        Self::composite(&with, &env, context, workspace, machine, result)
    }

    /// This repository's `action.yml`, step by step. Its install step is
    /// answered with the binary under test (the install script has its own
    /// test against a fake release server).
    fn composite(
        with: &BTreeMap<String, String>,
        env: &BTreeMap<String, String>,
        outer: &Value,
        workspace: &Path,
        machine: &Path,
        result: &mut JobResult,
    ) -> (bool, BTreeMap<String, String>) {
        let action_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let action: Yaml =
            serde_yaml::from_str(&std::fs::read_to_string(action_path.join("action.yml")).unwrap())
                .unwrap();
        let mut inputs = serde_json::Map::new();
        for (key, spec) in action["inputs"].as_mapping().unwrap() {
            let key = key.as_str().unwrap();
            let default = spec["default"].as_str().unwrap_or("");
            let value = with.get(key).cloned().unwrap_or_else(|| default.to_owned());
            inputs.insert(key.to_owned(), Value::String(value));
        }
        for key in with.keys() {
            assert!(inputs.contains_key(key), "action.yml has no input {key}");
        }
        let mut context = outer.clone();
        context["inputs"] = Value::Object(inputs);
        context["steps"] = json!({});
        context["github"]["action_path"] = json!(action_path.to_str().unwrap());
        let mut env = env.clone();
        env.insert(
            "GITHUB_ACTION_PATH".into(),
            action_path.display().to_string(),
        );
        let mut ok = true;
        for step in action["runs"]["steps"].as_sequence().unwrap() {
            let id = step["id"].as_str().unwrap_or("");
            if !ok && step["if"].as_str().is_none() {
                continue;
            }
            let (passed, outputs) = if id == "install" {
                let mut outputs = BTreeMap::new();
                outputs.insert("path".to_owned(), BATON.to_owned());
                (true, outputs)
            } else {
                let mut step_env = env.clone();
                for (key, value) in yaml_map(&step["env"]) {
                    step_env.insert(key, interpolate(&value, &context));
                }
                let script = step["run"].as_str().expect("composite steps run scripts");
                let shell = step["shell"]
                    .as_str()
                    .expect("composite run steps name their shell");
                run_script(shell, script, &step_env, workspace, machine, result)
            };
            context["steps"][id] = json!({"outputs": outputs});
            ok &= passed;
        }
        let outputs = action["outputs"]
            .as_mapping()
            .unwrap()
            .iter()
            .map(|(key, spec)| {
                (
                    key.as_str().unwrap().to_owned(),
                    interpolate(spec["value"].as_str().unwrap(), &context),
                )
            })
            .collect();
        (ok, outputs)
    }
}

fn needs(job: &Yaml) -> Vec<String> {
    match &job["needs"] {
        Yaml::String(one) => vec![one.clone()],
        Yaml::Sequence(many) => many
            .iter()
            .map(|need| need.as_str().unwrap().to_owned())
            .collect(),
        _ => Vec::new(),
    }
}

fn yaml_map(value: &Yaml) -> Vec<(String, String)> {
    value
        .as_mapping()
        .map(|mapping| {
            mapping
                .iter()
                .map(|(key, value)| {
                    let text = match value {
                        Yaml::String(text) => text.clone(),
                        Yaml::Bool(flag) => flag.to_string(),
                        Yaml::Number(number) => number.to_string(),
                        other => panic!("unexpected value {other:?}"),
                    };
                    (key.as_str().unwrap().to_owned(), text)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A `run:` script with bash, as the runner runs it; its `GITHUB_OUTPUT`
/// becomes the step's outputs.
fn run_script(
    shell: &str,
    script: &str,
    env: &BTreeMap<String, String>,
    workspace: &Path,
    machine: &Path,
    result: &mut JobResult,
) -> (bool, BTreeMap<String, String>) {
    assert!(
        !script.contains("${{"),
        "an expression inside run: is a template injection; pass it through env:\n{script}"
    );
    let count = result.environments.len();
    let file = machine.join(format!("step-{count}.sh"));
    let output = machine.join(format!("output-{count}"));
    let summary = machine.join(format!("summary-{count}"));
    std::fs::write(&file, script).unwrap();
    std::fs::write(&output, "").unwrap();
    let mut env = env.clone();
    env.insert("GITHUB_OUTPUT".into(), output.display().to_string());
    env.insert("GITHUB_STEP_SUMMARY".into(), summary.display().to_string());
    let directory = if workspace.exists() {
        workspace
    } else {
        machine
    };
    let mut command = match shell {
        "bash" => {
            let mut command = Command::new("bash");
            command.args(["--noprofile", "--norc", "-eo", "pipefail"]);
            command
        }
        "sh" => {
            let mut command = Command::new("sh");
            command.arg("-e");
            command
        }
        other => panic!("the runner knows no shell {other}"),
    };
    let ran = command
        .arg(&file)
        .current_dir(directory)
        .env_clear()
        .envs(&env)
        .output()
        .unwrap();
    result.log.push_str(&String::from_utf8_lossy(&ran.stdout));
    result.log.push_str(&String::from_utf8_lossy(&ran.stderr));
    result
        .log
        .push_str(&std::fs::read_to_string(&summary).unwrap_or_default());
    result.environments.push(env);
    let outputs = parse_outputs(&std::fs::read_to_string(&output).unwrap());
    (ran.status.success(), outputs)
}

/// `key=value` lines and `key<<DELIMITER` blocks.
pub fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    let mut outputs = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((key, delimiter)) = line.split_once("<<") {
            let mut value = Vec::new();
            for line in lines.by_ref() {
                if line == delimiter {
                    break;
                }
                value.push(line);
            }
            outputs.insert(key.to_owned(), value.join("\n"));
        } else if let Some((key, value)) = line.split_once('=') {
            outputs.insert(key.to_owned(), value.to_owned());
        }
    }
    outputs
}

fn copy_tree(from: &Path, to: &Path, skip_hidden: bool) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        if skip_hidden && entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target, skip_hidden);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

// ---- expressions ----

#[derive(Debug, Clone, Copy)]
pub struct Status {
    pub success: bool,
    pub failure: bool,
    pub cancelled: bool,
}

/// An `if:` (with or without `${{ }}`); without a status function the
/// runner adds `success() &&`.
pub fn evaluate_condition(condition: &str, context: &Value, status: Status) -> bool {
    let text = condition.trim();
    let text = text
        .strip_prefix("${{")
        .and_then(|rest| rest.strip_suffix("}}"))
        .unwrap_or(text)
        .trim();
    if text.is_empty() {
        return status.success;
    }
    let has_status = ["always()", "success()", "failure()", "cancelled()"]
        .iter()
        .any(|function| text.contains(function));
    let value = evaluate(text, context, status);
    if has_status {
        truthy(&value)
    } else {
        status.success && truthy(&value)
    }
}

/// Replaces every `${{ expression }}` in `text`.
pub fn interpolate(text: &str, context: &Value) -> String {
    let status = Status {
        success: true,
        failure: false,
        cancelled: false,
    };
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("an unclosed ${{") + start;
        let value = evaluate(rest[start + 3..end].trim(), context, status);
        out.push_str(&to_text(&value));
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

pub fn evaluate(text: &str, context: &Value, status: Status) -> Value {
    let tokens = tokenize(text);
    let mut parser = Parser {
        tokens,
        position: 0,
        context,
        status,
    };
    let value = parser.or();
    assert!(
        parser.position == parser.tokens.len(),
        "unparsed expression text in `{text}`"
    );
    value
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Path(String),
    Text(String),
    Number(f64),
    Open,
    Close,
    Comma,
    Not,
    Equal,
    NotEqual,
    And,
    Or,
}

fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        let next = chars.get(index + 1).copied();
        match c {
            ' ' | '\t' | '\n' => index += 1,
            '(' => {
                tokens.push(Token::Open);
                index += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                index += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                index += 1;
            }
            '!' if next == Some('=') => {
                tokens.push(Token::NotEqual);
                index += 2;
            }
            '!' => {
                tokens.push(Token::Not);
                index += 1;
            }
            '=' if next == Some('=') => {
                tokens.push(Token::Equal);
                index += 2;
            }
            '&' if next == Some('&') => {
                tokens.push(Token::And);
                index += 2;
            }
            '|' if next == Some('|') => {
                tokens.push(Token::Or);
                index += 2;
            }
            '\'' => {
                let mut value = String::new();
                index += 1;
                loop {
                    match chars.get(index) {
                        Some('\'') if chars.get(index + 1) == Some(&'\'') => {
                            value.push('\'');
                            index += 2;
                        }
                        Some('\'') => {
                            index += 1;
                            break;
                        }
                        Some(other) => {
                            value.push(*other);
                            index += 1;
                        }
                        None => panic!("unterminated string in `{text}`"),
                    }
                }
                tokens.push(Token::Text(value));
            }
            c if c.is_ascii_digit() => {
                let start = index;
                while index < chars.len() && (chars[index].is_ascii_digit() || chars[index] == '.')
                {
                    index += 1;
                }
                let number: String = chars[start..index].iter().collect();
                tokens.push(Token::Number(number.parse().unwrap()));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = index;
                while index < chars.len()
                    && (chars[index].is_ascii_alphanumeric() || "_-.*".contains(chars[index]))
                {
                    index += 1;
                }
                tokens.push(Token::Path(chars[start..index].iter().collect()));
            }
            other => panic!("unexpected `{other}` in `{text}`"),
        }
    }
    tokens
}

struct Parser<'a> {
    tokens: Vec<Token>,
    position: usize,
    context: &'a Value,
    status: Status,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn take(&mut self) -> Token {
        let token = self.tokens[self.position].clone();
        self.position += 1;
        token
    }

    fn or(&mut self) -> Value {
        let mut left = self.and();
        while self.peek() == Some(&Token::Or) {
            self.take();
            let right = self.and();
            left = if truthy(&left) { left } else { right };
        }
        left
    }

    fn and(&mut self) -> Value {
        let mut left = self.comparison();
        while self.peek() == Some(&Token::And) {
            self.take();
            let right = self.comparison();
            left = if truthy(&left) { right } else { left };
        }
        left
    }

    fn comparison(&mut self) -> Value {
        let left = self.unary();
        match self.peek() {
            Some(Token::Equal) => {
                self.take();
                let right = self.unary();
                Value::Bool(equal(&left, &right))
            }
            Some(Token::NotEqual) => {
                self.take();
                let right = self.unary();
                Value::Bool(!equal(&left, &right))
            }
            _ => left,
        }
    }

    fn unary(&mut self) -> Value {
        if self.peek() == Some(&Token::Not) {
            self.take();
            return Value::Bool(!truthy(&self.unary()));
        }
        self.primary()
    }

    fn primary(&mut self) -> Value {
        match self.take() {
            Token::Open => {
                let value = self.or();
                assert_eq!(self.take(), Token::Close, "a missing )");
                value
            }
            Token::Text(text) => Value::String(text),
            Token::Number(number) => json!(number),
            Token::Path(path) if self.peek() == Some(&Token::Open) => {
                self.take();
                let mut arguments = Vec::new();
                while self.peek() != Some(&Token::Close) {
                    arguments.push(self.or());
                    if self.peek() == Some(&Token::Comma) {
                        self.take();
                    }
                }
                self.take();
                self.call(&path, &arguments)
            }
            Token::Path(path) => match path.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => lookup(self.context, &path),
            },
            other => panic!("unexpected {other:?}"),
        }
    }

    fn call(&self, name: &str, arguments: &[Value]) -> Value {
        match name {
            "always" => Value::Bool(true),
            "success" => Value::Bool(self.status.success),
            "failure" => Value::Bool(self.status.failure),
            "cancelled" => Value::Bool(self.status.cancelled),
            "contains" => {
                let needle = to_text(&arguments[1]).to_lowercase();
                Value::Bool(match &arguments[0] {
                    Value::Array(items) => items
                        .iter()
                        .any(|item| to_text(item).to_lowercase() == needle),
                    other => to_text(other).to_lowercase().contains(&needle),
                })
            }
            "format" => {
                let mut text = to_text(&arguments[0]);
                for (index, argument) in arguments[1..].iter().enumerate() {
                    text = text.replace(&format!("{{{index}}}"), &to_text(argument));
                }
                Value::String(text)
            }
            other => panic!("the runner knows no function {other}()"),
        }
    }
}

/// A context path; `*` maps the rest of the path over an array
/// (`github.event.issue.labels.*.name`).
fn lookup(context: &Value, path: &str) -> Value {
    let mut value = context.clone();
    let parts: Vec<&str> = path.split('.').collect();
    for (index, part) in parts.iter().enumerate() {
        if *part == "*" {
            let rest = parts[index + 1..].join(".");
            let items = value.as_array().cloned().unwrap_or_default();
            return Value::Array(
                items
                    .iter()
                    .map(|item| {
                        if rest.is_empty() {
                            item.clone()
                        } else {
                            lookup(item, &rest)
                        }
                    })
                    .collect(),
            );
        }
        match value.get(*part) {
            Some(next) => value = next.clone(),
            None => return Value::Null,
        }
    }
    value
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        Value::String(text) => !text.is_empty(),
        _ => true,
    }
}

fn equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::String(a), Value::String(b)) => a.eq_ignore_ascii_case(b),
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Null, Value::Null) => true,
        _ => {
            let number = |value: &Value| match value {
                Value::Null => Some(0.0),
                Value::Bool(flag) => Some(f64::from(u8::from(*flag))),
                Value::Number(number) => number.as_f64(),
                Value::String(text) if text.trim().is_empty() => Some(0.0),
                Value::String(text) => text.trim().parse().ok(),
                _ => None,
            };
            matches!((number(left), number(right)), (Some(a), Some(b)) if (a - b).abs() < f64::EPSILON)
        }
    }
}

fn to_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        Value::Number(number) => match number.as_f64() {
            Some(n) if n.fract() == 0.0 => format!("{}", n as i64),
            _ => number.to_string(),
        },
        other => other.to_string(),
    }
}
