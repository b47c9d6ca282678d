//! One HTTP call to a model API, retried on purpose.
//!
//! Retried: 408, 409, 429, 5xx (529 included), connection errors, timeouts and
//! malformed bodies — with exponential backoff and jitter, honouring
//! `retry-after` (seconds or an HTTP date), `retry-after-ms` and the
//! providers' rate-limit reset headers, capped. Never retried: 400, 401, 403,
//! 404, 422, and the 429s that mean money ran out (a spend limit, OpenAI's
//! `insufficient_quota`). Every retry is logged with its reason and wait.
//! Only POSTs to generation endpoints are sent here, which the providers
//! document as safe to retry.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::ProviderError;
use crate::secrets::Secret;
use crate::settings::env;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub backoff: Duration,
    pub max_wait: Duration,
    pub timeout: Duration,
}

pub struct HttpClient {
    client: reqwest::Client,
    pub provider: String,
    /// The variable the key comes from, named in authentication errors.
    pub key_variable: String,
    pub policy: RetryPolicy,
}

/// A header to send; secret ones are marked sensitive so no debug output shows them.
pub enum Header<'a> {
    Plain(&'static str, &'a str),
    Secret(&'static str, &'a Secret, &'static str),
}

enum Failure {
    Retry {
        reason: String,
        wait: Option<Duration>,
    },
    Stop(ProviderError),
}

impl HttpClient {
    pub fn new(
        provider: &str,
        key_variable: &str,
        policy: RetryPolicy,
    ) -> Result<Self, ProviderError> {
        let client = reqwest::Client::builder()
            .timeout(policy.timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("baton/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| ProviderError::Unavailable {
                provider: provider.into(),
                message: format!("cannot build an HTTP client: {error}"),
            })?;
        Ok(Self {
            client,
            provider: provider.into(),
            key_variable: key_variable.into(),
            policy,
        })
    }

    /// POSTs `body` to `url`; `parse` turns a 2xx body into the reply.
    /// A body `parse` rejects counts as a transient failure.
    pub async fn post<T>(
        &self,
        url: &str,
        headers: &[Header<'_>],
        body: &Value,
        model: &str,
        (run_id, phase): (&str, &str),
        parse: impl Fn(&Value) -> Result<T, String>,
    ) -> Result<T, ProviderError> {
        let mut header_map = HeaderMap::new();
        for header in headers {
            let (name, value) = match header {
                Header::Plain(name, value) => (*name, HeaderValue::from_str(value)),
                Header::Secret(name, secret, prefix) => {
                    let mut value = HeaderValue::from_str(&format!("{prefix}{}", secret.expose()));
                    if let Ok(value) = value.as_mut() {
                        value.set_sensitive(true);
                    }
                    (*name, value)
                }
            };
            let value = value.map_err(|_| ProviderError::Unavailable {
                provider: self.provider.clone(),
                message: format!(
                    "the value of header `{name}` is not valid in HTTP; check it for newlines"
                ),
            })?;
            header_map.insert(HeaderName::from_static(name), value);
        }
        for (name, value) in [("x-baton-run", run_id), ("x-baton-phase", phase)] {
            if let Ok(value) = HeaderValue::from_str(value) {
                header_map.insert(HeaderName::from_static(name), value);
            }
        }
        let mut retry = 0;
        loop {
            let failure = match self
                .client
                .post(url)
                .headers(header_map.clone())
                .json(body)
                .send()
                .await
            {
                Err(error) if error.is_timeout() => Failure::Retry {
                    reason: format!("timed out after {} s", self.policy.timeout.as_secs()),
                    wait: None,
                },
                Err(error) => Failure::Retry {
                    reason: format!("connection error: {}", without_url(&error)),
                    wait: None,
                },
                Ok(response) => {
                    let status = response.status().as_u16();
                    let response_headers = response.headers().clone();
                    let text = response.text().await.unwrap_or_default();
                    if (200..300).contains(&status) {
                        match serde_json::from_str::<Value>(&text)
                            .map_err(|error| error.to_string())
                            .and_then(|value| parse(&value))
                        {
                            Ok(reply) => return Ok(reply),
                            Err(error) => Failure::Retry {
                                reason: format!("malformed response body ({error})"),
                                wait: None,
                            },
                        }
                    } else {
                        self.classify(status, &response_headers, &text, url)
                    }
                }
            };
            match failure {
                Failure::Stop(error) => return Err(error),
                Failure::Retry { reason, wait } => {
                    if retry >= self.policy.max_retries {
                        return Err(ProviderError::Exhausted {
                            provider: self.provider.clone(),
                            model: model.into(),
                            attempts: retry + 1,
                            last: reason,
                        });
                    }
                    retry += 1;
                    let wait = wait
                        .unwrap_or_else(|| self.backoff(retry))
                        .min(self.policy.max_wait);
                    tracing::warn!(
                        "{} ({model}): {reason}; retry {retry}/{} in {:.1} s",
                        self.provider,
                        self.policy.max_retries,
                        wait.as_secs_f64()
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    fn classify(&self, status: u16, headers: &HeaderMap, body: &str, url: &str) -> Failure {
        let message = error_message(body);
        let provider = self.provider.clone();
        match status {
            401 | 403 => Failure::Stop(ProviderError::Auth {
                provider,
                variable: self.key_variable.clone(),
                status,
                message,
            }),
            429 if is_spend_limit(body) => {
                Failure::Stop(ProviderError::SpendLimit { provider, message })
            }
            // Some servers (llama.cpp's Python one) answer a request they
            // cannot parse with a 500: sending it again cannot help.
            500 if is_invalid_request(body) => Failure::Stop(ProviderError::Rejected {
                provider,
                status,
                message,
            }),
            408 | 409 | 429 | 500..=599 => Failure::Retry {
                reason: format!("HTTP {status} from {url}: {message}"),
                wait: server_wait(headers),
            },
            _ => Failure::Stop(ProviderError::Rejected {
                provider,
                status,
                message,
            }),
        }
    }

    /// Exponential backoff with jitter: base × 2^(retry−1) × [0.5, 1.0).
    fn backoff(&self, retry: u32) -> Duration {
        let exponential = self.policy.backoff.saturating_mul(1 << (retry - 1).min(16));
        exponential.mul_f64(0.5 + jitter() * 0.5)
    }
}

/// A pseudo-random fraction in [0, 1): enough to spread retries, not crypto.
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |duration| duration.subsec_nanos());
    let mut x = u64::from(nanos) ^ 0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id());
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    (x % 10_000) as f64 / 10_000.0
}

/// What the server asked us to wait, if anything.
pub fn server_wait(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };
    if let Some(milliseconds) = header("retry-after-ms").and_then(|value| value.parse::<f64>().ok())
    {
        return Some(Duration::from_secs_f64(milliseconds.max(0.0) / 1000.0));
    }
    if let Some(value) = header("retry-after") {
        if let Ok(seconds) = value.parse::<f64>() {
            return Some(Duration::from_secs_f64(seconds.max(0.0)));
        }
        if let Some(at) = crate::clock::parse_http_date(value) {
            return Some(Duration::from_secs_f64(
                (at - crate::clock::now_epoch()).max(0.0),
            ));
        }
    }
    // Reset headers: Anthropic gives RFC 3339 times, OpenAI durations like `6m0s`.
    let mut latest: Option<f64> = None;
    for (name, value) in headers {
        let name = name.as_str();
        let Ok(value) = value.to_str() else { continue };
        let seconds = if name.starts_with("anthropic-ratelimit-") && name.ends_with("-reset") {
            crate::clock::parse_rfc3339(value).map(|at| at - crate::clock::now_epoch())
        } else if name.starts_with("x-ratelimit-reset-") {
            parse_go_duration(value)
        } else {
            None
        };
        if let Some(seconds) = seconds {
            latest = Some(latest.map_or(seconds, |current| current.max(seconds)));
        }
    }
    latest.map(|seconds| Duration::from_secs_f64(seconds.max(0.0)))
}

/// `1s`, `6m0s`, `20ms`, `1h2m3.5s` → seconds.
pub fn parse_go_duration(text: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut number = String::new();
    let mut chars = text.trim().chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let value: f64 = number.parse().ok()?;
        number.clear();
        let unit = match c {
            'h' => 3600.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0.001
            }
            'm' => 60.0,
            's' => 1.0,
            _ => return None,
        };
        total += value * unit;
        any = true;
    }
    (any && number.is_empty()).then_some(total)
}

/// A 500 whose body says the request itself is wrong.
fn is_invalid_request(body: &str) -> bool {
    let lower = body.to_ascii_lowercase();
    [
        "invalid_request_error",
        "input should be a valid",
        "validation error",
        "unprocessable",
    ]
    .iter()
    .any(|marker| lower.contains(marker))
}

fn is_spend_limit(body: &str) -> bool {
    let lower = body.to_ascii_lowercase();
    [
        "spend_limit",
        "spend limit",
        "insufficient_quota",
        "credit balance",
        "billing",
        "usage limit",
    ]
    .iter()
    .any(|marker| lower.contains(marker))
}

/// The API's own error message (both providers nest it under `error.message`),
/// else the body, trimmed, redacted.
fn error_message(body: &str) -> String {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|value| {
            value
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| body.chars().take(300).collect());
    if message.trim().is_empty() {
        return "an empty body (the server's log says why)".into();
    }
    crate::secrets::redact(&message).into_owned()
}

fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(source) = std::error::Error::source(error) {
        text = format!("{text}: {source}");
    }
    text
}

/// The key for a provider: its variable's value, or `None` when unset.
pub fn key_from(variable: &str) -> Option<Secret> {
    env::get(variable).map(Secret::new)
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_empty_error_body_says_so() {
        assert_eq!(
            super::error_message(""),
            "an empty body (the server's log says why)"
        );
        assert_eq!(
            super::error_message(r#"{"error": {"message": "bad tool"}}"#),
            "bad tool"
        );
    }

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn retry_after_in_seconds_dates_and_reset_headers() {
        assert_eq!(
            server_wait(&headers(&[("retry-after", "2")])),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            server_wait(&headers(&[("retry-after-ms", "250")])),
            Some(Duration::from_millis(250))
        );
        let past = server_wait(&headers(&[(
            "retry-after",
            "Sun, 06 Nov 1994 08:49:37 GMT",
        )]));
        assert_eq!(past, Some(Duration::ZERO));
        let reset = server_wait(&headers(&[
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]));
        assert_eq!(reset, Some(Duration::from_secs(360)));
        assert_eq!(server_wait(&headers(&[])), None);
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("20ms"), Some(0.02));
        assert_eq!(parse_go_duration("1h2m3.5s"), Some(3723.5));
        assert_eq!(parse_go_duration("soon"), None);
    }

    #[test]
    fn spend_limits_are_recognised() {
        assert!(is_invalid_request(
            r#"{"detail":[{"type":"string_type","msg":"Input should be a valid string","loc":["body","messages",2,"content"]}]}"#
        ));
        assert!(!is_invalid_request(r#"{"error":"upstream timed out"}"#));
        assert!(is_spend_limit(
            r#"{"error":{"type":"insufficient_quota","code":"insufficient_quota"}}"#
        ));
        assert!(is_spend_limit(
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"You have reached your specified workspace spend limit"}}"#
        ));
        assert!(!is_spend_limit(
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#
        ));
    }
}
