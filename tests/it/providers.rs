//! The anthropic and openai providers against a fake server on loopback that
//! speaks each wire format, including the failures real services have.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::fake_llm::{FakeLlm, Fault, Wire};
use crate::support::{Run, TestContext, agent, happy_script, write};

const KEY: &str = "fake-llm-key-0123456789";

fn config(wire: Wire, base_url: &str, timeout_s: u64) -> String {
    config_with(wire, base_url, timeout_s, "")
}

/// The fake server's config, with extra keys for `[providers.llm]`.
fn config_with(wire: Wire, base_url: &str, timeout_s: u64, provider_extra: &str) -> String {
    let kind = match wire {
        Wire::Anthropic => "anthropic",
        Wire::OpenAi => "openai",
    };
    format!(
        r#"
[models]
heavy = "llm:model-a"
standard = "llm:model-a"
light = "llm:model-a"
fallback = ["llm:model-b"]

[providers.llm]
kind = "{kind}"
base_url = "{base_url}"
api_key_env = "FAKE_LLM_KEY"
max_retries = 2
backoff_ms = 20
timeout_s = {timeout_s}
{provider_extra}

[[gates]]
name = "test"
run = "sh run_tests.sh"
timeout_s = 60

[pricing."llm:model-a"]
input_per_mtok = 3.0
output_per_mtok = 15.0

[pricing."llm:model-b"]
input_per_mtok = 1.0
output_per_mtok = 5.0
"#
    )
}

/// A chore run (plan, implement, review) against the fake server.
fn chore_run(wire: Wire, script: Value, faults: Vec<Fault>) -> (TestContext, FakeLlm, Run) {
    chore_run_with_timeout(wire, script, faults, 10)
}

fn chore_run_with_timeout(
    wire: Wire,
    script: Value,
    faults: Vec<Fault>,
    timeout_s: u64,
) -> (TestContext, FakeLlm, Run) {
    let server = FakeLlm::start(wire, KEY, script);
    for fault in faults {
        server.fault(fault);
    }
    let context = TestContext::with_config(&config(wire, &server.base_url(), timeout_s))
        .env("FAKE_LLM_KEY", KEY);
    context.issue_with_labels(&["chore"]);
    let run = context.run_local();
    (context, server, run)
}

fn fault(
    model: Option<&str>,
    status: u16,
    headers: &[(&str, &str)],
    body: &str,
    times: usize,
) -> Fault {
    Fault {
        model: model.map(str::to_owned),
        status,
        headers: headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect(),
        body: body.to_owned(),
        times,
        delay_ms: 0,
    }
}

fn for_each_wire(test: impl Fn(Wire)) {
    for wire in [Wire::Anthropic, Wire::OpenAi] {
        test(wire);
    }
}

#[test]
fn tool_calls_round_trip_and_costs_add_up() {
    for_each_wire(|wire| {
        let (context, server, run) = chore_run(wire, happy_script(), Vec::new());
        run.assert_code(0);
        let requests = server.requests();
        let phases: Vec<&str> = requests
            .iter()
            .map(|r| r.headers["x-baton-phase"].as_str())
            .collect();
        assert_eq!(
            phases,
            [
                "plan",
                "plan.validate",
                "implement",
                "implement",
                "review",
                "review.validate"
            ],
            "{wire:?}"
        );
        let run_id = context.manifest()["run_id"].as_str().unwrap().to_owned();
        assert!(requests.iter().all(|r| r.headers["x-baton-run"] == run_id));
        // The second implement request carries the result of the first's tool call.
        let second = requests[3].body.to_string();
        assert!(
            second.contains("wrote 33 bytes to lib.sh"),
            "{wire:?}: {second}"
        );
        // Tokens and cost per phase and model sum to the manifest's totals.
        let evidence = context.evidence();
        let manifest = context.manifest();
        let by_phase = evidence["budget"]["by_phase"].as_object().unwrap();
        let mut tokens_in = 0;
        let mut cost = 0.0;
        for phase in by_phase.values() {
            for model in phase["by_model"].as_object().unwrap().values() {
                tokens_in += model["tokens_in"].as_u64().unwrap();
                cost += model["cost_usd"].as_f64().unwrap();
            }
        }
        assert_eq!(
            tokens_in,
            manifest["budget"]["spent"]["tokens_in"].as_u64().unwrap()
        );
        assert_eq!(tokens_in, 6 * 1000);
        assert!((cost - manifest["budget"]["spent"]["cost_usd"].as_f64().unwrap()).abs() < 1e-9);
        assert!((cost - 6.0 * (1000.0 * 3.0 + 100.0 * 15.0) / 1e6).abs() < 1e-9);
        // The key never reached the run directory.
        for (path, text) in crate::support::all_files(&context.run_dir) {
            assert!(!text.contains(KEY), "{}", path.display());
        }
    });
}

#[test]
fn a_429_with_retry_after_is_waited_out() {
    for_each_wire(|wire| {
        let body = r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#;
        let (_context, server, run) = chore_run(
            wire,
            happy_script(),
            vec![fault(None, 429, &[("retry-after", "2")], body, 1)],
        );
        run.assert_code(0);
        let requests = server.requests();
        assert_eq!(requests[0].status, 429);
        let waited = requests[1].at.duration_since(requests[0].at);
        assert!(
            waited >= Duration::from_secs(2),
            "{wire:?}: waited {waited:?}"
        );
        assert!(
            run.stderr().contains("HTTP 429") && run.stderr().contains("retry 1/2 in 2.0 s"),
            "{}",
            run.stderr()
        );
    });
}

#[test]
fn repeated_overloads_fall_back_to_the_next_model() {
    for_each_wire(|wire| {
        let (status, body) = match wire {
            Wire::Anthropic => (
                529,
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ),
            Wire::OpenAi => (
                500,
                r#"{"error":{"message":"The server had an error","type":"server_error"}}"#,
            ),
        };
        let (context, server, run) = chore_run(
            wire,
            happy_script(),
            vec![fault(Some("model-a"), status, &[], body, 3)],
        );
        run.assert_code(0);
        let models: Vec<String> = server
            .requests()
            .iter()
            .map(|r| r.body["model"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            &models[..4],
            ["model-a", "model-a", "model-a", "model-b"],
            "{wire:?}"
        );
        let plan = &context.manifest()["phases"][1];
        assert_eq!(plan["fallbacks"], json!(["llm:model-a → llm:model-b"]));
        assert!(
            plan["by_model"]["llm:model-b"]["tokens_in"]
                .as_u64()
                .unwrap()
                > 0
        );
        let evidence = context.evidence();
        assert!(evidence["risks"].to_string().contains("fell back"));
        assert!(
            run.stderr().contains("falls back to llm:model-b"),
            "{}",
            run.stderr()
        );
    });
}

#[test]
fn a_401_stops_the_run_at_once_naming_provider_and_variable() {
    for_each_wire(|wire| {
        let body = r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#;
        let (context, server, run) =
            chore_run(wire, happy_script(), vec![fault(None, 401, &[], body, 100)]);
        run.assert_code(1);
        assert_eq!(server.requests().len(), 1, "{wire:?}: a 401 was retried");
        let stderr = run.stderr();
        assert!(
            stderr.contains("provider `llm`") && stderr.contains("$FAKE_LLM_KEY"),
            "{stderr}"
        );
        assert_eq!(context.evidence()["outcome"], "blocked");
    });
}

#[test]
fn malformed_tool_arguments_are_told_to_the_model_and_the_run_goes_on() {
    for_each_wire(|wire| {
        let mut script = happy_script();
        let mut implement = agent(vec![vec![write(
            "lib.sh",
            "greet() { echo \"hello, world\"; }\n",
        )]]);
        let broken = json!({"calls": [{"name": "write_file", "raw_arguments": "{\"path\": \"lib.sh\", \"content\": "}], "usage": {"input": 500, "output": 50}});
        implement.as_array_mut().unwrap().insert(0, broken);
        script["implement"] = implement;
        let (context, server, run) = chore_run(wire, script, Vec::new());
        run.assert_code(0);
        let told = server
            .requests()
            .iter()
            .any(|r| r.body.to_string().contains("are not a JSON object"));
        assert!(told, "{wire:?}: the model was not told");
        assert_eq!(context.evidence()["outcome"], "done");
    });
}

#[test]
fn a_spend_limit_429_is_not_retried() {
    for_each_wire(|wire| {
        let body = match wire {
            Wire::Anthropic => {
                r#"{"type":"error","error":{"type":"rate_limit_error","message":"You have reached your specified workspace spend limit."}}"#
            }
            Wire::OpenAi => {
                r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#
            }
        };
        let (context, server, run) = chore_run(
            wire,
            happy_script(),
            vec![fault(None, 429, &[("retry-after", "1")], body, 100)],
        );
        run.assert_code(1);
        assert_eq!(
            server.requests().len(),
            1,
            "{wire:?}: a spend-limit 429 was retried"
        );
        assert!(
            run.stderr().contains("spend or quota limit"),
            "{}",
            run.stderr()
        );
        assert_eq!(context.evidence()["outcome"], "blocked");
    });
}

#[test]
fn server_errors_and_malformed_bodies_are_retried() {
    for_each_wire(|wire| {
        let (_context, server, run) = chore_run(
            wire,
            happy_script(),
            vec![
                fault(None, 503, &[], "upstream unavailable", 1),
                fault(None, 200, &[], "{\"this is\": \"not a reply\"}", 1),
            ],
        );
        run.assert_code(0);
        let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).take(3).collect();
        assert_eq!(statuses, [503, 200, 200]);
        assert!(
            run.stderr().contains("malformed response body"),
            "{}",
            run.stderr()
        );
    });
}

#[test]
fn prose_and_empty_replies_over_the_wire_are_answered() {
    let mut script = happy_script();
    script["plan"] = json!([
        {"text": "I think the plan is obvious.", "usage": {"input": 500, "output": 50}},
        {"usage": {"input": 500, "output": 50}},
        script["plan"][0].clone()
    ]);
    for_each_wire(|wire| {
        let (_context, server, run) = chore_run(wire, script.clone(), Vec::new());
        run.assert_code(0);
        let third = server.requests()[2].body.to_string();
        assert!(third.contains("prose alone does nothing"), "{wire:?}");
    });
}

#[test]
fn a_request_that_hangs_times_out_and_is_retried() {
    for_each_wire(|wire| {
        let mut hang = fault(None, 200, &[], "{}", 1);
        hang.delay_ms = 2500;
        let (_context, _server, run) = chore_run_with_timeout(wire, happy_script(), vec![hang], 1);
        run.assert_code(0);
        assert!(
            run.stderr().contains("timed out after 1 s; retry 1/2"),
            "{}",
            run.stderr()
        );
    });
}

/// A reply with only prose.
fn prose(text: &str) -> Value {
    json!({"text": text, "usage": {"input": 100, "output": 10}})
}

#[test]
fn prose_replies_get_the_tool_forced_and_three_in_a_row_end_the_attempt() {
    for_each_wire(|wire| {
        let mut script = happy_script();
        // The plan: prose once, then (with the tool forced) the plan.
        let plan = script["plan"][0].clone();
        script["plan"] = json!([prose("I would change lib.sh."), plan]);
        // The first implement: prose, prose, prose; it never calls a tool.
        script["implement#1"] = json!([prose("a"), prose("b"), prose("c"), prose("d")]);
        let (context, server, run) = chore_run(wire, script, Vec::new());
        run.assert_code(1);
        let requests = server.requests();
        let bodies = |phase: &str| -> Vec<Value> {
            requests
                .iter()
                .filter(|request| request.headers["x-baton-phase"] == phase)
                .map(|request| request.body.clone())
                .collect()
        };
        let plan = bodies("plan");
        assert_eq!(plan.len(), 2, "{wire:?}");
        assert!(
            plan[0].get("tool_choice").is_none(),
            "{wire:?}: {}",
            plan[0]
        );
        let forced = match wire {
            Wire::OpenAi => json!({"type": "function", "function": {"name": "submit_plan"}}),
            Wire::Anthropic => json!({"type": "tool", "name": "submit_plan"}),
        };
        assert_eq!(plan[1]["tool_choice"], forced, "{wire:?}");
        // The agent phase forces "some tool"; the third prose reply ends it.
        let implement = bodies("implement");
        assert_eq!(implement.len(), 3, "{wire:?}");
        let any = match wire {
            Wire::OpenAi => json!("required"),
            Wire::Anthropic => json!({"type": "any"}),
        };
        assert_eq!(implement[2]["tool_choice"], any, "{wire:?}");
        let manifest = context.manifest();
        assert_eq!(manifest["outcome"], "blocked");
        assert!(
            manifest["reason"]
                .as_str()
                .unwrap()
                .contains("prose 3 times in a row"),
            "{}",
            manifest["reason"]
        );
    });
}

#[test]
fn a_refused_call_repeated_ends_the_attempt_at_once_and_becomes_its_objection() {
    let mut script = happy_script();
    // `submit_plan` without `rollback`, twice: the second refusal ends attempt 1.
    let mut incomplete = script["plan"][0].clone();
    incomplete["calls"][0]["arguments"]
        .as_object_mut()
        .unwrap()
        .remove("rollback");
    script["plan#1"] = json!([incomplete.clone(), incomplete.clone(), incomplete]);
    let (context, server, run) = chore_run(Wire::OpenAi, script, Vec::new());
    run.assert_code(0);
    let plan_requests = server
        .requests()
        .iter()
        .filter(|request| request.headers["x-baton-phase"] == "plan")
        .count();
    // Attempt 1: two requests; attempt 2: one.
    assert_eq!(plan_requests, 3);
    let feedback = crate::support::read_json(&context.run_dir.join("feedback/plan.json"));
    let first = feedback["attempts"][0]["objections"][0].as_str().unwrap();
    assert!(first.contains("refused twice in a row"), "{first}");
    // Attempt 2 was told why attempt 1 failed.
    assert!(
        context
            .run_file("transcripts/plan-2.jsonl")
            .contains("refused twice")
    );
}

#[test]
fn an_assistant_message_with_only_tool_calls_sends_an_empty_string_content() {
    // Not null (llama-cpp-python's 500) and not left out (its templates
    // read the key): a string on every message.
    let (_, server, run) = chore_run(Wire::OpenAi, happy_script(), Vec::new());
    run.assert_code(0);
    for request in server.requests() {
        for message in request.body["messages"].as_array().unwrap() {
            assert!(
                message.get("content").is_some_and(Value::is_string),
                "{message}"
            );
        }
    }
}

#[test]
fn a_500_that_says_the_request_is_invalid_is_not_retried() {
    let body = r#"{"detail":[{"type":"string_type","loc":["body","messages",2,"content"],"msg":"Input should be a valid string","input":null}]}"#;
    let (context, server, run) = chore_run(
        Wire::OpenAi,
        happy_script(),
        vec![fault(None, 500, &[], body, 10)],
    );
    run.assert_code(1);
    // One request, no retry, no fallback: the same request cannot succeed.
    assert_eq!(server.requests().len(), 1);
    let reason = context.manifest()["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.contains("Input should be a valid string"),
        "{reason}"
    );
}

#[test]
fn a_provider_can_force_tool_calls_from_the_first_request() {
    for (policy, deliverable, agent) in [
        (
            "force",
            json!({"type": "function", "function": {"name": "submit_plan"}}),
            json!("required"),
        ),
        ("required", json!("required"), json!("required")),
    ] {
        let server = FakeLlm::start(Wire::OpenAi, KEY, happy_script());
        let context = TestContext::with_config(&config_with(
            Wire::OpenAi,
            &server.base_url(),
            10,
            &format!("tool_choice = \"{policy}\""),
        ))
        .env("FAKE_LLM_KEY", KEY);
        context.issue_with_labels(&["chore"]);
        context.run_local().assert_code(0);
        let first = |phase: &str| {
            server
                .requests()
                .into_iter()
                .find(|request| request.headers["x-baton-phase"] == phase)
                .unwrap()
                .body
        };
        assert_eq!(first("plan")["tool_choice"], deliverable, "{policy}");
        assert_eq!(first("implement")["tool_choice"], agent, "{policy}");
    }
}

/// A chore run whose implement reads three large files before it writes:
/// with `context_window` set small, the conversation must stay inside it.
fn long_conversation(server: &FakeLlm, window: u32) -> (TestContext, Run) {
    let context = TestContext::with_config(&config_with(
        Wire::OpenAi,
        &server.base_url(),
        10,
        &format!("context_window = {window}"),
    ))
    .env("FAKE_LLM_KEY", KEY);
    for name in ["a", "b", "c"] {
        std::fs::write(
            context.repo.join(format!("notes-{name}.txt")),
            format!("{name}: {}\n", "lorem ipsum dolor sit amet ".repeat(200)),
        )
        .unwrap();
    }
    context.commit("notes");
    context.issue_with_labels(&["chore"]);
    let read = |name: &str| {
        crate::support::call("read_file", json!({"path": format!("notes-{name}.txt")}))
    };
    let mut script = happy_script();
    script["implement"] = agent(vec![
        vec![read("a")],
        vec![read("b")],
        vec![read("c")],
        vec![write("lib.sh", "greet() { echo \"hello, world\"; }\n")],
    ]);
    script["plan"] = json!([crate::support::reply(vec![crate::support::call(
        "submit_plan",
        json!({
            "steps": ["change greet"],
            "touchpoints": ["lib.sh"],
            "tests": ["tests/greet_test.sh"],
            "rollback": "restore the old echo"
        })
    )])]);
    server.set_script(script);
    let run = context.run_local();
    (context, run)
}

#[test]
fn a_small_context_window_is_kept_by_trimming_the_oldest_tool_results() {
    let server = FakeLlm::start(Wire::OpenAi, KEY, json!({}));
    let (context, run) = long_conversation(&server, 4000);
    run.assert_code(0);
    assert_eq!(context.manifest()["outcome"], "done");
    let implement: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|request| request.headers["x-baton-phase"] == "implement")
        .collect();
    let last = implement.last().unwrap();
    assert_eq!(last.body["max_tokens"], 1000, "a quarter of the window");
    let text = last.body["messages"].to_string();
    assert!(
        text.contains("was trimmed to keep the conversation inside"),
        "{text}"
    );
    for request in &implement {
        let tokens = request.body.to_string().len() / 3;
        assert!(
            tokens + 1000 <= 4000,
            "a request of ~{tokens} tokens left no room for the reply"
        );
    }
}

#[test]
fn a_server_that_says_the_context_is_exceeded_gets_a_trimmed_request_once() {
    let server = FakeLlm::start(Wire::OpenAi, KEY, json!({}));
    // The server's real window is smaller than the config says: baton's
    // requests fit its own estimate and the server refuses them.
    server.limit_context(16_000);
    let (context, run) = long_conversation(&server, 8192);
    run.assert_code(0);
    assert_eq!(context.manifest()["outcome"], "done");
    let statuses: Vec<u16> = server
        .requests()
        .iter()
        .filter(|request| request.headers["x-baton-phase"] == "implement")
        .map(|request| request.status)
        .collect();
    assert!(statuses.contains(&400), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&200));
    for pair in statuses.windows(2) {
        assert!(pair != [400, 400], "one retry per refusal: {statuses:?}");
    }
}

#[test]
fn a_llama_cpp_like_server_gets_through_the_hotfix_route() {
    // Prose unless a tool is forced, a 500 for `"content": null`, and a
    // small window: what llama-cpp-python's server does with a small model.
    let server = FakeLlm::start(Wire::OpenAi, KEY, happy_script());
    server.behave_like_llama_cpp();
    let context = TestContext::with_config(&config_with(
        Wire::OpenAi,
        &server.base_url(),
        10,
        "context_window = 8192",
    ))
    .env("FAKE_LLM_KEY", KEY);
    context.issue_with_labels(&["bug"]);
    context.run_local().assert_code(0);
    let manifest = context.manifest();
    assert_eq!(manifest["route"], "hotfix");
    assert_eq!(manifest["outcome"], "done");
    let requests = server.requests();
    assert!(requests.iter().all(|request| request.status != 500));
    let prose = requests
        .iter()
        .filter(|request| request.body.get("tool_choice").is_none())
        .count();
    // Each session's first request is answered in prose; from then on the
    // tool is forced, so no later request of that session is prose.
    let sessions = requests
        .iter()
        .filter(|request| {
            request.body["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|message| message["role"] != "system")
                .count()
                == 1
        })
        .count();
    assert_eq!(prose, sessions, "one unforced request per session");
    for request in &requests {
        assert_eq!(request.body["max_tokens"], 2048, "a quarter of the window");
    }
}

#[test]
fn with_no_gates_or_no_key_nothing_is_sent_and_the_exit_code_is_2() {
    let server = FakeLlm::start(Wire::OpenAi, KEY, happy_script());
    // No [[gates]]: nothing could ever judge the change.
    let without_gates = config(Wire::OpenAi, &server.base_url(), 10).replace(
        "[[gates]]\nname = \"test\"\nrun = \"sh run_tests.sh\"\ntimeout_s = 60\n",
        "",
    );
    assert!(!without_gates.contains("[[gates]]"));
    let context = TestContext::with_config(&without_gates).env("FAKE_LLM_KEY", KEY);
    let run = context.run_local();
    run.assert_code(2);
    assert!(run.stderr().contains("no [[gates]]"), "{}", run.stderr());
    assert!(!context.run_dir.exists(), "no run was created");

    // The key the config names is not set.
    let context = TestContext::with_config(&config(Wire::OpenAi, &server.base_url(), 10));
    let run = context.run_local();
    run.assert_code(2);
    assert!(
        run.stderr().contains("$FAKE_LLM_KEY is not set"),
        "{}",
        run.stderr()
    );
    let check = context.baton(&["config", "check"]);
    check.assert_code(2);
    assert!(check.stderr().contains("$FAKE_LLM_KEY"));
    assert!(
        server.requests().is_empty(),
        "nothing was sent to the model"
    );

    // A server on this machine with no api_key_env needs no key.
    let keyless = config(Wire::OpenAi, &server.base_url(), 10)
        .replace("api_key_env = \"FAKE_LLM_KEY\"\n", "");
    let context = TestContext::with_config(&keyless);
    context.baton(&["config", "check"]).assert_code(0);
}

#[test]
fn a_model_slower_than_the_wall_time_budget_is_cut_off_at_the_budget() {
    // Every request hangs for 8 s; the request timeout (30 s) and its
    // retries would take far longer. The wall-time budget is 3 s.
    let server = FakeLlm::start(Wire::OpenAi, KEY, happy_script());
    let mut hang = fault(None, 200, &[], "{}", 10);
    hang.delay_ms = 8_000;
    server.fault(hang);
    let context = TestContext::with_config(&format!(
        "{}\n[budget]\nmax_wall_minutes = 0.05\n",
        config(Wire::OpenAi, &server.base_url(), 30)
    ))
    .env("FAKE_LLM_KEY", KEY);
    context.issue_with_labels(&["chore"]);
    let run = context.baton_within(
        15,
        &[
            "run",
            "--local",
            "--issue-file",
            context.issue.to_str().unwrap(),
            "--run-dir",
            context.run_dir.to_str().unwrap(),
        ],
    );
    run.assert_code(1);
    let manifest = context.manifest();
    assert_eq!(manifest["outcome"], "budget_exceeded");
    assert!(
        manifest["reason"]
            .as_str()
            .unwrap()
            .contains("while waiting"),
        "{}",
        manifest["reason"]
    );
}

#[test]
fn a_server_that_fails_on_a_forced_any_tool_is_asked_again_without_forcing() {
    let server = FakeLlm::start(Wire::OpenAi, KEY, json!({}));
    server.refuse_tool_choice_required();
    let mut script = happy_script();
    // implement answers in prose first: its next request forces a tool,
    // which this server cannot do.
    script["implement"] = json!([
        prose("I will change greet now."),
        crate::support::reply(vec![write(
            "lib.sh",
            "greet() { echo \"hello, world\"; }\n"
        )]),
        crate::support::reply(vec![crate::support::call(
            "finish",
            json!({"summary": "done"})
        )]),
    ]);
    server.set_script(script);
    let context = TestContext::with_config(&config(Wire::OpenAi, &server.base_url(), 10))
        .env("FAKE_LLM_KEY", KEY);
    context.issue_with_labels(&["chore"]);
    let run = context.run_local();
    run.assert_code(0);
    assert_eq!(context.manifest()["outcome"], "done");
    let implement: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|request| request.headers["x-baton-phase"] == "implement")
        .collect();
    assert!(implement.iter().any(|request| request.status == 500));
    // Once refused, "required" is not sent again in that session.
    let last_refused = implement
        .iter()
        .rposition(|request| request.body.get("tool_choice") == Some(&json!("required")))
        .unwrap();
    assert!(
        implement[last_refused + 1..]
            .iter()
            .all(|request| request.body.get("tool_choice").is_none()),
        "{:?}",
        implement
            .iter()
            .map(|r| r.body.get("tool_choice").cloned())
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_server_the_config_names_is_never_sent_the_default_key() {
    // A server on this machine with no api_key_env: the user's real
    // OPENAI_API_KEY stays home.
    let server = FakeLlm::start(Wire::OpenAi, "", happy_script());
    let keyless = config(Wire::OpenAi, &server.base_url(), 10)
        .replace("api_key_env = \"FAKE_LLM_KEY\"\n", "");
    let context =
        TestContext::with_config(&keyless).env("OPENAI_API_KEY", "sk-proj-realkey0123456789");
    context.run_local().assert_code(0);
    assert!(!server.requests().is_empty());
    for request in server.requests() {
        assert!(
            !request.headers.contains_key("authorization"),
            "{:?}",
            request.headers
        );
    }

    // A server elsewhere must name its key variable, and a URL needs its scheme.
    for (base_url, key) in [
        ("http://10.1.2.3:8080/v1", "providers.llm.api_key_env"),
        ("127.0.0.1:8080/v1", "providers.llm.base_url"),
    ] {
        let text =
            config(Wire::OpenAi, base_url, 10).replace("api_key_env = \"FAKE_LLM_KEY\"\n", "");
        let context =
            TestContext::with_config(&text).env("OPENAI_API_KEY", "sk-proj-realkey0123456789");
        let check = context.baton(&["config", "check"]);
        check.assert_code(2);
        assert!(check.stderr().contains(key), "{}", check.stderr());
    }
}

#[test]
fn a_401_while_routing_stops_the_run_at_intake() {
    let server = FakeLlm::start(Wire::OpenAi, KEY, happy_script());
    server.fault(fault(None, 401, &[], r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#, 100));
    let context = TestContext::with_config(&config(Wire::OpenAi, &server.base_url(), 10))
        .env("FAKE_LLM_KEY", KEY);
    // No route label: intake asks the model, which refuses the key.
    let run = context.run_local();
    run.assert_code(1);
    assert_eq!(server.requests().len(), 1, "nothing after the refusal");
    assert_eq!(context.phase_names(), ["intake", "publish"]);
    let manifest = context.manifest();
    assert_eq!(manifest["outcome"], "blocked");
    assert!(
        manifest["reason"]
            .as_str()
            .unwrap()
            .contains("$FAKE_LLM_KEY"),
        "{manifest}"
    );
    assert!(
        !run.stderr().contains("routing falls back"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_call_cut_off_at_the_token_limit_is_told_as_such() {
    for_each_wire(|wire| {
        let mut script = happy_script();
        let mut implement = agent(vec![vec![write(
            "lib.sh",
            "greet() { echo \"hello, world\"; }\n",
        )]]);
        let cut = json!({"calls": [{"name": "write_file", "raw_arguments": "{\"path\": \"lib.sh\", \"content\": \"greet() { ec"}], "cut_off": true, "usage": {"input": 500, "output": 2048}});
        implement.as_array_mut().unwrap().insert(0, cut);
        script["implement"] = implement;
        let (context, server, run) = chore_run(wire, script, Vec::new());
        run.assert_code(0);
        let bodies: Vec<String> = server
            .requests()
            .iter()
            .map(|request| request.body.to_string())
            .collect();
        assert!(
            bodies
                .iter()
                .any(|body| body.contains("cut off at the token limit")),
            "{wire:?}: the model was not told it was cut off"
        );
        assert!(
            !bodies
                .iter()
                .any(|body| body.contains("are not a JSON object")),
            "{wire:?}"
        );
        assert_eq!(context.evidence()["outcome"], "done");
    });
}
