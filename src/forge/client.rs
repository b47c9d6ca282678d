//! The one HTTP loop both forges share: rate limits waited out, idempotent
//! requests retried, writes never blindly resent, errors that name the
//! request and carry the forge's message.
//!
//! A `Transport` sends one request (octocrab for GitHub, reqwest for
//! Forgejo); `Client` decides what to do with the answer.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{BoxFuture, ForgeError, ForgeKind};

/// One answer, as the transport received it. Header names are lower case.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.trim())
    }
}

/// Why no answer came back; the request may or may not have been applied.
#[derive(Debug, Clone)]
pub struct NoAnswer(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }
}

pub trait Transport: Send + Sync {
    /// Sends `method path` (relative to the API base, with its query) with an
    /// optional JSON body.
    fn send<'a>(
        &'a self,
        method: Method,
        path: &'a str,
        body: Option<&'a Value>,
    ) -> BoxFuture<'a, Result<Response, NoAnswer>>;
}

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub backoff: Duration,
    /// The longest single wait, whatever the forge asks; a rate limit that
    /// resets later than this fails the request instead.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(120),
        }
    }
}

/// What an answer means for the request that got it.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Done,
    /// Rate limited: the forge did not apply the request; wait and resend.
    Wait(Duration, String),
    /// A server error: resend only if the request is idempotent.
    ServerError,
    Fail,
}

/// Reads an answer: GitHub's primary limit (403/429 with
/// `x-ratelimit-remaining: 0` and `x-ratelimit-reset`), its secondary limit
/// (403/429 with `retry-after`), Forgejo's 429, and 5xx.
pub fn next(response: &Response, now_epoch: f64) -> Next {
    let status = response.status;
    if (200..300).contains(&status) {
        return Next::Done;
    }
    if status == 403 || status == 429 {
        if let Some(seconds) = response
            .header("retry-after")
            .and_then(|value| value.parse::<f64>().ok())
        {
            return Next::Wait(
                Duration::from_secs_f64(seconds.max(0.0)),
                "secondary rate limit (retry-after)".into(),
            );
        }
        if response.header("x-ratelimit-remaining") == Some("0") {
            let reset = response
                .header("x-ratelimit-reset")
                .and_then(|value| value.parse::<f64>().ok())
                .unwrap_or(now_epoch + 60.0);
            return Next::Wait(
                Duration::from_secs_f64((reset - now_epoch).max(0.0) + 1.0),
                "primary rate limit (x-ratelimit-reset)".into(),
            );
        }
        // GitHub: "otherwise, wait for at least one minute" (its secondary
        // limit does not always send retry-after).
        if status == 429
            || response
                .body
                .to_ascii_lowercase()
                .contains("secondary rate limit")
        {
            return Next::Wait(
                Duration::from_secs(60),
                "rate limited without retry-after: waiting a minute".into(),
            );
        }
        return Next::Fail;
    }
    if status >= 500 {
        return Next::ServerError;
    }
    Next::Fail
}

pub struct Client<T> {
    pub kind: ForgeKind,
    pub transport: T,
    pub policy: RetryPolicy,
}

impl<T: Transport> Client<T> {
    /// Sends a request. Rate limits are waited out for every request (the
    /// forge did not apply it). Server errors and missing answers are retried
    /// only when `idempotent`; a write that got neither comes back as
    /// `ForgeError::NoAnswer`, for the caller to check before trying again.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotent: bool,
    ) -> Result<Response, ForgeError> {
        let mut retries = 0;
        loop {
            let response = match self.transport.send(method, path, body).await {
                Ok(response) => response,
                Err(NoAnswer(reason)) => {
                    if !idempotent || retries >= self.policy.max_retries {
                        return Err(self.no_answer(method, path, &reason));
                    }
                    tracing::warn!(
                        "{} {} {path}: no answer ({reason}); retrying",
                        self.kind,
                        method.as_str()
                    );
                    tokio::time::sleep(self.backoff(retries)).await;
                    retries += 1;
                    continue;
                }
            };
            let wait = match next(&response, crate::clock::now_epoch()) {
                Next::Done => return Ok(response),
                Next::Fail => return Err(self.status_error(method, path, &response)),
                Next::ServerError if !idempotent => {
                    // The write may have happened: the caller checks first.
                    return Err(self.no_answer(
                        method,
                        path,
                        &format!("status {}", response.status),
                    ));
                }
                Next::ServerError if retries >= self.policy.max_retries => {
                    return Err(self.status_error(method, path, &response));
                }
                Next::ServerError => {
                    tracing::warn!(
                        "{} {} {path}: status {}; retrying",
                        self.kind,
                        method.as_str(),
                        response.status
                    );
                    self.backoff(retries)
                }
                Next::Wait(wait, reason) => {
                    if wait > self.policy.max_wait || retries >= self.policy.max_retries {
                        return Err(ForgeError::RateLimited {
                            forge: self.kind,
                            request: format!("{} {path}", method.as_str()),
                            wait_s: wait.as_secs(),
                            retries,
                        });
                    }
                    // Every wait is said: a person watching the job sees
                    // why it is quiet.
                    tracing::warn!(
                        "{} {} {path}: {reason}; waiting {:.1} s",
                        self.kind,
                        method.as_str(),
                        wait.as_secs_f64()
                    );
                    wait
                }
            };
            tokio::time::sleep(wait).await;
            retries += 1;
        }
    }

    /// A JSON answer decoded into `W` (a wire struct).
    pub async fn json<W: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotent: bool,
    ) -> Result<W, ForgeError> {
        let response = self.request(method, path, body, idempotent).await?;
        self.decode(method, path, &response)
    }

    /// An answer's JSON decoded into `W` (a wire struct), for callers that
    /// also read its headers (paging).
    pub fn decode<W: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        response: &Response,
    ) -> Result<W, ForgeError> {
        serde_json::from_str(&response.body).map_err(|error| ForgeError::Unreadable {
            forge: self.kind,
            request: format!("{} {path}", method.as_str()),
            message: format!("{error}: {}", cap(&response.body)),
        })
    }

    fn backoff(&self, retries: u32) -> Duration {
        self.policy
            .backoff
            .saturating_mul(1 << retries.min(8))
            .min(self.policy.max_wait)
    }

    fn no_answer(&self, method: Method, path: &str, reason: &str) -> ForgeError {
        ForgeError::NoAnswer {
            forge: self.kind,
            request: format!("{} {path}", method.as_str()),
            reason: reason.to_owned(),
        }
    }

    fn status_error(&self, method: Method, path: &str, response: &Response) -> ForgeError {
        let message = serde_json::from_str::<Value>(&response.body)
            .ok()
            .and_then(|value| value.get("message")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| cap(&response.body));
        ForgeError::Status {
            forge: self.kind,
            request: format!("{} {path}", method.as_str()),
            status: response.status,
            message,
        }
    }
}

fn cap(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((index, _)) => format!("{}…", &text[..index]),
        None => text.to_owned(),
    }
}

/// Percent-encodes one path segment (a label such as `baton:running`, a branch).
pub fn segment(text: &str) -> String {
    let mut encoded = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(byte as char);
            }
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)]) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            body: String::new(),
        }
    }

    #[test]
    fn rate_limits_are_read_from_the_headers() {
        assert_eq!(next(&response(201, &[]), 0.0), Next::Done);
        assert_eq!(
            next(&response(403, &[("retry-after", "3")]), 0.0),
            Next::Wait(
                Duration::from_secs(3),
                "secondary rate limit (retry-after)".into()
            )
        );
        assert_eq!(
            next(
                &response(
                    403,
                    &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "110")]
                ),
                100.0
            ),
            Next::Wait(
                Duration::from_secs(11),
                "primary rate limit (x-ratelimit-reset)".into()
            )
        );
        assert_eq!(next(&response(403, &[]), 0.0), Next::Fail);
        let mut secondary = response(403, &[]);
        secondary.body = r#"{"message": "You have exceeded a secondary rate limit."}"#.into();
        assert!(
            matches!(next(&secondary, 0.0), Next::Wait(wait, _) if wait == Duration::from_secs(60))
        );
        assert_eq!(next(&response(502, &[]), 0.0), Next::ServerError);
        assert_eq!(next(&response(422, &[]), 0.0), Next::Fail);
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("baton:running"), "baton%3Arunning");
        assert_eq!(segment("baton/issue-7"), "baton%2Fissue-7");
    }
}
