//! Budgets as pure arithmetic: usage → cost, and whether a limit is reached.

use crate::types::{Budget, Price, Spend};

/// Cost of one reply; an unpriced model costs nothing and evidence says so.
pub fn cost_usd(price: Option<Price>, tokens_in: u64, tokens_out: u64) -> f64 {
    price.map_or(0.0, |price| {
        (tokens_in as f64 * price.input_per_mtok + tokens_out as f64 * price.output_per_mtok)
            / 1_000_000.0
    })
}

/// The first limit that `spent` has reached, as a sentence naming the key.
pub fn exceeded(limits: &Budget, spent: &Spend) -> Option<String> {
    if spent.tokens() >= limits.max_tokens {
        return Some(format!(
            "token budget reached: {} of {} tokens (budget.max_tokens)",
            spent.tokens(),
            limits.max_tokens
        ));
    }
    if spent.cost_usd >= limits.max_cost_usd {
        return Some(format!(
            "cost budget reached: ${:.4} of ${:.2} (budget.max_cost_usd)",
            spent.cost_usd, limits.max_cost_usd
        ));
    }
    if spent.wall_s >= limits.max_wall_minutes * 60.0 {
        return Some(format!(
            "wall-time budget reached: {:.0} s of {} min (budget.max_wall_minutes)",
            spent.wall_s, limits.max_wall_minutes
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_from_price_per_million_tokens() {
        let price = Price {
            input_per_mtok: 3.0,
            output_per_mtok: 15.0,
        };
        let cost = cost_usd(Some(price), 1_000_000, 100_000);
        assert!((cost - 4.5).abs() < 1e-9);
        assert!(cost_usd(None, 10, 10).abs() < f64::EPSILON);
    }

    #[test]
    fn each_limit_is_named() {
        let limits = Budget {
            max_tokens: 100,
            max_cost_usd: 1.0,
            max_wall_minutes: 1.0,
            ..Budget::default()
        };
        let tokens = Spend {
            tokens_in: 60,
            tokens_out: 40,
            ..Spend::default()
        };
        assert!(
            exceeded(&limits, &tokens)
                .unwrap()
                .contains("budget.max_tokens")
        );
        let cost = Spend {
            cost_usd: 1.5,
            ..Spend::default()
        };
        assert!(
            exceeded(&limits, &cost)
                .unwrap()
                .contains("budget.max_cost_usd")
        );
        let wall = Spend {
            wall_s: 61.0,
            ..Spend::default()
        };
        assert!(
            exceeded(&limits, &wall)
                .unwrap()
                .contains("budget.max_wall_minutes")
        );
        assert!(exceeded(&limits, &Spend::default()).is_none());
    }
}
