//! Opt-in: a whole local route against a real OpenAI-compatible server
//! (OpenAI, vLLM, Ollama, llama.cpp's server, LiteLLM). Ignored by default:
//!
//! ```sh
//! BATON_E2E_OPENAI_BASE_URL=http://127.0.0.1:11434/v1 BATON_E2E_OPENAI_MODEL=qwen2.5-coder \
//!   cargo test --test it e2e -- --ignored --nocapture
//! ```
//!
//! `BATON_E2E_OPENAI_API_KEY` is sent as the bearer token when set.

use crate::support::TestContext;

#[test]
#[ignore = "needs a real OpenAI-compatible server named by BATON_E2E_OPENAI_BASE_URL"]
fn a_chore_route_against_a_real_openai_compatible_server() {
    let Ok(base_url) = std::env::var("BATON_E2E_OPENAI_BASE_URL") else {
        panic!("set BATON_E2E_OPENAI_BASE_URL (and BATON_E2E_OPENAI_MODEL) to run this test");
    };
    let model = std::env::var("BATON_E2E_OPENAI_MODEL").unwrap_or_else(|_| "gpt-5-mini".into());
    let config = format!(
        r#"
[models]
heavy = "e2e:{model}"
standard = "e2e:{model}"
light = "e2e:{model}"

[providers.e2e]
kind = "openai"
base_url = "{base_url}"
api_key_env = "BATON_E2E_OPENAI_API_KEY"

[budget]
max_cost_usd = 1.0
max_tokens = 400000

[phases.implement]
max_turns = 20

[[gates]]
name = "test"
run = "sh run_tests.sh"
timeout_s = 60
"#
    );
    let mut context = TestContext::with_config(&config);
    if let Ok(key) = std::env::var("BATON_E2E_OPENAI_API_KEY") {
        context = context.env("BATON_E2E_OPENAI_API_KEY", &key);
    }
    std::fs::write(
        context.repo.join("tests/greet_test.sh"),
        crate::support::GOOD_TEST,
    )
    .unwrap();
    context.commit("a failing test for the issue");
    context.issue_with_labels(&["chore"]);
    let run = context.run_local();
    eprintln!("{}", run.stderr());
    let evidence = context.evidence();
    eprintln!("outcome: {} ({})", evidence["outcome"], evidence["reason"]);
    assert_ne!(evidence["outcome"], "running");
    assert!(
        evidence["budget"]["tokens_in"].as_u64().unwrap() > 0,
        "no model call was made"
    );
    assert!(context.phase_names().contains(&"implement".to_owned()));
}
