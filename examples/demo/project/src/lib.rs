//! textkit: small text helpers.

/// Counts the words in `text`, split on whitespace.
pub fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_words() {
        assert_eq!(word_count("a b  c"), 3);
    }
}
