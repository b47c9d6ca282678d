//! Fallback: a phase's model first, then `[models].fallback` in order. A model
//! whose retries are used up (429s, overloads, 5xx, timeouts) hands the phase
//! to the next one for the rest of the phase; which model served each reply is
//! recorded, so evidence says who did what.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{BoxFuture, Provider, ProviderError, Reply, Request};
use crate::config::ModelRef;

pub struct Chain {
    entries: Vec<(ModelRef, Box<dyn Provider>)>,
    current: AtomicUsize,
}

impl Chain {
    pub fn new(entries: Vec<(ModelRef, Box<dyn Provider>)>) -> Self {
        Self {
            entries,
            current: AtomicUsize::new(0),
        }
    }
}

impl Provider for Chain {
    fn complete<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Reply, ProviderError>> {
        Box::pin(async move {
            let mut index = self.current.load(Ordering::Relaxed);
            loop {
                let Some((model, provider)) = self.entries.get(index) else {
                    return Err(ProviderError::Unavailable {
                        provider: "fallback".into(),
                        message: "no model left to try".into(),
                    });
                };
                let mut attempt = request.clone();
                attempt.model.clone_from(&model.model);
                match provider.complete(&attempt).await {
                    Ok(mut reply) => {
                        reply.served_by = model.to_string();
                        return Ok(reply);
                    }
                    Err(error) if error.allows_fallback() && index + 1 < self.entries.len() => {
                        let next = &self.entries[index + 1].0;
                        tracing::warn!(
                            "{model} keeps failing ({error}); phase {} falls back to {next}",
                            request.phase
                        );
                        index += 1;
                        self.current.store(index, Ordering::Relaxed);
                    }
                    Err(error) => return Err(error),
                }
            }
        })
    }
}
