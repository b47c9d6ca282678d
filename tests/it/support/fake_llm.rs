//! A fake model server on 127.0.0.1 that speaks the real wire formats:
//! Anthropic's Messages API (`POST /v1/messages`) and OpenAI's Chat
//! Completions (`POST /v1/chat/completions`). It replays a script in the
//! scripted provider's shape (phase from `x-baton-phase`, turn from the
//! number of assistant messages), checks each request for the fields and
//! headers the real APIs require, and injects faults first: statuses with
//! headers and bodies, per model.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Anthropic,
    OpenAi,
}

#[derive(Debug, Clone)]
pub struct Fault {
    /// Only requests for this model; `None`: any.
    pub model: Option<String>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub times: usize,
    /// Wait this long before answering (to fake a server that hangs).
    pub delay_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub headers: HashMap<String, String>,
    pub body: Value,
    pub at: Instant,
    pub status: u16,
}

struct State {
    wire: Wire,
    key: String,
    script: Value,
    faults: Vec<Fault>,
    requests: Vec<Recorded>,
    attempts: HashMap<String, u32>,
    /// A server's context: requests whose messages and `max_tokens` (at
    /// three characters a token) exceed it get llama.cpp's 400.
    context_chars: Option<usize>,
    /// Behave like llama-cpp-python's server: tools are left out of the
    /// prompt unless one is forced (so the model answers in prose), and a
    /// message whose `content` is null is a 500.
    llama_cpp: bool,
    /// Fail `tool_choice: "required"` with an empty 500, as
    /// llama-cpp-python's function-calling handler does.
    refuse_required: bool,
}

pub struct FakeLlm {
    pub address: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl FakeLlm {
    pub fn start(wire: Wire, key: &str, script: Value) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            wire,
            key: key.to_owned(),
            script,
            faults: Vec::new(),
            requests: Vec::new(),
            attempts: HashMap::new(),
            context_chars: None,
            llama_cpp: false,
            refuse_required: false,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_state, thread_stop) = (Arc::clone(&state), Arc::clone(&stop));
        let handle = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stop.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(stream) = stream {
                    let _ = handle(stream, &thread_state);
                }
            }
        });
        Self {
            address,
            state,
            stop,
            handle: Some(handle),
        }
    }

    /// The base URL a provider config should name.
    pub fn base_url(&self) -> String {
        let wire = self.state.lock().unwrap().wire;
        match wire {
            Wire::Anthropic => format!("http://{}", self.address),
            Wire::OpenAi => format!("http://{}/v1", self.address),
        }
    }

    pub fn fault(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push(fault);
    }

    pub fn set_script(&self, script: Value) {
        self.state.lock().unwrap().script = script;
    }

    /// Answers as llama-cpp-python's OpenAI-compatible server does (see
    /// the `llama_cpp` field).
    pub fn behave_like_llama_cpp(&self) {
        self.state.lock().unwrap().llama_cpp = true;
    }

    /// Fails every request whose `tool_choice` is `required`.
    pub fn refuse_tool_choice_required(&self) {
        self.state.lock().unwrap().refuse_required = true;
    }

    /// Refuses requests larger than `chars` as llama.cpp's server does.
    pub fn limit_context(&self, chars: usize) {
        self.state.lock().unwrap().context_chars = Some(chars);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.address);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn handle(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_owned();

    let (status, extra_headers, response) = respond(state, &path, &headers, &body);
    state.lock().unwrap().requests.push(Recorded {
        headers,
        body,
        at: Instant::now(),
        status,
    });
    let mut stream = stream;
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        if status == 200 { "OK" } else { "Error" },
        response.len()
    );
    for (name, value) in extra_headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

fn error_body(wire: Wire, kind: &str, message: &str) -> String {
    match wire {
        Wire::Anthropic => {
            json!({"type": "error", "error": {"type": kind, "message": message}}).to_string()
        }
        Wire::OpenAi => {
            json!({"error": {"message": message, "type": kind, "param": null, "code": kind}})
                .to_string()
        }
    }
}

fn respond(
    state: &Mutex<State>,
    path: &str,
    headers: &HashMap<String, String>,
    body: &Value,
) -> (u16, Vec<(String, String)>, String) {
    let mut state = state.lock().unwrap();
    let wire = state.wire;
    // The request must be what the real API accepts.
    if let Err(problem) = check_request(wire, &state.key, path, headers, body) {
        return (
            400,
            Vec::new(),
            error_body(wire, "invalid_request_error", &problem),
        );
    }
    if let Some(limit) = state.context_chars {
        let size = body["messages"].to_string().len()
            + 3 * body["max_tokens"]
                .as_u64()
                .or_else(|| body["max_completion_tokens"].as_u64())
                .unwrap_or(0) as usize;
        if size > limit {
            let body = json!({"error": {"code": 400, "message": "the request exceeds the available context size, try increasing it", "type": "exceed_context_size_error"}});
            return (400, Vec::new(), body.to_string());
        }
    }
    let model = body["model"].as_str().unwrap_or("").to_owned();
    if let Some(fault) = state
        .faults
        .iter_mut()
        .find(|fault| fault.times > 0 && fault.model.as_deref().is_none_or(|only| only == model))
    {
        fault.times -= 1;
        let answer = (fault.status, fault.headers.clone(), fault.body.clone());
        let delay = std::time::Duration::from_millis(fault.delay_ms);
        drop(state);
        std::thread::sleep(delay);
        return answer;
    }
    let phase = headers.get("x-baton-phase").cloned().unwrap_or_default();
    if state.refuse_required && body.get("tool_choice") == Some(&json!("required")) {
        return (500, Vec::new(), String::new());
    }
    if state.llama_cpp {
        let null_content = body["messages"].as_array().is_some_and(|messages| {
            messages
                .iter()
                .any(|message| message.get("content").is_some_and(Value::is_null))
        });
        if null_content {
            let detail = json!({"detail": [{"type": "string_type", "loc": ["body", "messages", 1, "content"], "msg": "Input should be a valid string", "input": null}]});
            return (500, Vec::new(), detail.to_string());
        }
        // Its chat templates read `message.content` of every message.
        let no_content = body["messages"].as_array().is_some_and(|messages| {
            messages
                .iter()
                .any(|message| message.get("content").is_none())
        });
        if no_content {
            let error = json!({"error": {"message": "'dict object' has no attribute 'content'", "type": "internal_server_error"}});
            return (500, Vec::new(), error.to_string());
        }
        let forced = body
            .get("tool_choice")
            .is_some_and(|choice| choice != "auto" && choice != "none");
        if !forced {
            let reply =
                json!({"text": "To do this, I would edit the file and then run the tests."});
            return (
                200,
                Vec::new(),
                to_wire(wire, &model, &reply, 99).to_string(),
            );
        }
    }
    // The turn is the number of the model's replies so far; prose a
    // llama.cpp-like server made the model write does not count.
    let llama_cpp = state.llama_cpp;
    let turn = body["messages"].as_array().map_or(0, |messages| {
        messages
            .iter()
            .filter(|m| m["role"] == "assistant")
            .filter(|m| !llama_cpp || m.get("tool_calls").is_some())
            .count()
    });
    if turn == 0 {
        *state.attempts.entry(phase.clone()).or_insert(0) += 1;
    }
    let attempt = state.attempts.get(&phase).copied().unwrap_or(1);
    let replies = state
        .script
        .get(format!("{phase}#{attempt}"))
        .or_else(|| state.script.get(&phase));
    let Some(reply) = replies.and_then(|replies| replies.get(turn)) else {
        return (
            500,
            Vec::new(),
            error_body(
                wire,
                "api_error",
                &format!("fake server: no scripted reply for {phase} turn {turn}"),
            ),
        );
    };
    (
        200,
        Vec::new(),
        to_wire(wire, &model, reply, turn).to_string(),
    )
}

fn check_request(
    wire: Wire,
    key: &str,
    path: &str,
    headers: &HashMap<String, String>,
    body: &Value,
) -> Result<(), String> {
    for header in ["x-baton-run", "x-baton-phase"] {
        if !headers.contains_key(header) {
            return Err(format!("missing header {header}"));
        }
    }
    if !body["model"].is_string() || !body["messages"].is_array() {
        return Err("model and messages are required".into());
    }
    match wire {
        Wire::Anthropic => {
            if path != "/v1/messages" {
                return Err(format!("unknown path {path}"));
            }
            if headers.get("x-api-key").map(String::as_str) != Some(key) {
                return Err("bad x-api-key".into());
            }
            if !headers.contains_key("anthropic-version") || !body["max_tokens"].is_u64() {
                return Err("anthropic-version header and max_tokens are required".into());
            }
            // Every tool_result answers a tool_use of the previous assistant turn.
            let mut open: Vec<String> = Vec::new();
            for message in body["messages"].as_array().unwrap() {
                for block in message["content"]
                    .as_array()
                    .ok_or("content must be an array of blocks")?
                {
                    match block["type"].as_str() {
                        Some("tool_use") => {
                            if !block["input"].is_object() {
                                return Err("tool_use.input must be an object".into());
                            }
                            open.push(block["id"].as_str().unwrap_or("").to_owned());
                        }
                        Some("tool_result") => {
                            let id = block["tool_use_id"].as_str().unwrap_or("");
                            if !open.iter().any(|open| open == id) {
                                return Err(format!("tool_result for unknown tool_use {id}"));
                            }
                        }
                        Some("text") => {}
                        other => return Err(format!("unknown block type {other:?}")),
                    }
                }
            }
        }
        Wire::OpenAi => {
            if path != "/v1/chat/completions" {
                return Err(format!("unknown path {path}"));
            }
            // An empty key: a server on this machine that takes none, and
            // must be sent none.
            let expected = (!key.is_empty()).then(|| format!("Bearer {key}"));
            if headers.get("authorization") != expected.as_ref() {
                return Err("bad authorization".into());
            }
            let messages = body["messages"].as_array().unwrap();
            if messages.first().map(|m| &m["role"]) != Some(&json!("system")) {
                return Err("the first message must be the system message".into());
            }
            let mut open: Vec<String> = Vec::new();
            for message in messages {
                for call in message["tool_calls"].as_array().into_iter().flatten() {
                    if call["type"] != "function" || !call["function"]["arguments"].is_string() {
                        return Err("tool_calls[].function.arguments must be a string".into());
                    }
                    open.push(call["id"].as_str().unwrap_or("").to_owned());
                }
                if message["role"] == "tool"
                    && !open.iter().any(|id| message["tool_call_id"] == json!(id))
                {
                    return Err("tool message for an unknown tool_call_id".into());
                }
            }
            if body["tools"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|tool| tool["type"] != "function")
            {
                return Err("tools[].type must be function".into());
            }
        }
    }
    Ok(())
}

/// A script reply (`calls`, `text`, `usage`, `raw_arguments`, `cut_off`:
/// stopped at the token limit) in the wire format.
fn to_wire(wire: Wire, model: &str, reply: &Value, turn: usize) -> Value {
    let cut_off = reply["cut_off"].as_bool().unwrap_or(false);
    let usage = (
        reply["usage"]["input"].as_u64().unwrap_or(500),
        reply["usage"]["output"].as_u64().unwrap_or(50),
    );
    let calls = reply["calls"].as_array().cloned().unwrap_or_default();
    let text = reply["text"].as_str();
    match wire {
        Wire::Anthropic => {
            let mut content = Vec::new();
            if let Some(text) = text {
                content.push(json!({"type": "text", "text": text}));
            }
            for (index, call) in calls.iter().enumerate() {
                let input = call
                    .get("raw_arguments")
                    .cloned()
                    .unwrap_or_else(|| call["arguments"].clone());
                content.push(json!({"type": "tool_use", "id": format!("toolu_{turn}_{index}"), "name": call["name"], "input": input}));
            }
            json!({
                "id": format!("msg_{turn}"), "type": "message", "role": "assistant", "model": model,
                "content": content,
                "stop_reason": if cut_off { "max_tokens" } else if calls.is_empty() { "end_turn" } else { "tool_use" },
                "stop_sequence": null,
                "usage": {"input_tokens": usage.0, "output_tokens": usage.1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
            })
        }
        Wire::OpenAi => {
            let tool_calls: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(index, call)| {
                    let arguments = call["raw_arguments"].as_str().map_or_else(|| call["arguments"].to_string(), str::to_owned);
                    json!({"id": format!("call_{turn}_{index}"), "type": "function", "function": {"name": call["name"], "arguments": arguments}})
                })
                .collect();
            let mut message = json!({"role": "assistant", "content": text});
            if !tool_calls.is_empty() {
                message["tool_calls"] = json!(tool_calls);
            }
            json!({
                "id": format!("chatcmpl-{turn}"), "object": "chat.completion", "created": 1_767_225_600, "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": if cut_off { "length" } else if tool_calls.is_empty() { "stop" } else { "tool_calls" }}],
                "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1},
            })
        }
    }
}
