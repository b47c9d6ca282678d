//! Usage → cost. `[pricing."provider:model"]` wins; otherwise built-in list
//! prices (USD per million tokens) for common models, matched by model name
//! or a dated variant of it (`claude-sonnet-4-5-20250929`).

use super::Usage;
use crate::config::{Config, ModelRef, Price};

const BUILT_IN: &[(&str, f64, f64)] = &[
    ("claude-opus-4-1", 15.0, 75.0),
    ("claude-opus-4", 15.0, 75.0),
    ("claude-sonnet-4-5", 3.0, 15.0),
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-haiku-4-5", 1.0, 5.0),
    ("claude-3-5-haiku", 0.8, 4.0),
    ("gpt-5", 1.25, 10.0),
    ("gpt-5-mini", 0.25, 2.0),
    ("gpt-5-nano", 0.05, 0.4),
    ("gpt-4.1", 2.0, 8.0),
    ("gpt-4.1-mini", 0.4, 1.6),
    ("gpt-4.1-nano", 0.1, 0.4),
    ("gpt-4o", 2.5, 10.0),
    ("gpt-4o-mini", 0.15, 0.6),
];

/// Cache reads cost a tenth of input, cache writes a quarter more (Anthropic's
/// published multipliers; OpenAI reports reads only).
const CACHE_READ: f64 = 0.1;
const CACHE_WRITE: f64 = 1.25;

pub fn price(config: &Config, model: &ModelRef) -> Option<Price> {
    config.price(model).or_else(|| built_in(&model.model))
}

pub fn built_in(model: &str) -> Option<Price> {
    BUILT_IN
        .iter()
        .filter(|(name, _, _)| {
            model == *name
                || model.strip_prefix(name).is_some_and(|rest| {
                    rest.starts_with('-') && rest[1..].chars().all(|c| c.is_ascii_digit())
                })
        })
        .max_by_key(|(name, _, _)| name.len())
        .map(|(_, input, output)| Price {
            input_per_mtok: *input,
            output_per_mtok: *output,
        })
}

pub fn cost_usd(price: Option<Price>, usage: &Usage) -> f64 {
    price.map_or(0.0, |price| {
        let input = usage.input_tokens as f64
            + usage.cache_read_tokens as f64 * CACHE_READ
            + usage.cache_write_tokens as f64 * CACHE_WRITE;
        (input * price.input_per_mtok + usage.output_tokens as f64 * price.output_per_mtok)
            / 1_000_000.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_prices_match_names_and_dated_variants() {
        assert!((built_in("claude-sonnet-4-5").unwrap().input_per_mtok - 3.0).abs() < 1e-9);
        assert!(
            (built_in("claude-sonnet-4-5-20250929")
                .unwrap()
                .output_per_mtok
                - 15.0)
                .abs()
                < 1e-9
        );
        assert!((built_in("gpt-5-mini").unwrap().input_per_mtok - 0.25).abs() < 1e-9);
        assert!(built_in("my-local-llama").is_none());
    }

    #[test]
    fn config_overrides_built_in() {
        let config = Config::parse("[pricing.\"anthropic:claude-sonnet-4-5\"]\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n").unwrap();
        let model = ModelRef {
            provider: "anthropic".into(),
            model: "claude-sonnet-4-5".into(),
        };
        assert!((price(&config, &model).unwrap().input_per_mtok - 1.0).abs() < 1e-9);
    }

    #[test]
    fn cache_tokens_are_priced() {
        let price = Some(Price {
            input_per_mtok: 10.0,
            output_per_mtok: 20.0,
        });
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 0,
            cache_read_tokens: 1_000_000,
            cache_write_tokens: 1_000_000,
        };
        assert!((cost_usd(price, &usage) - (10.0 + 1.0 + 12.5)).abs() < 1e-9);
    }
}
