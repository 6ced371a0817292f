//! What a call costs, in micro-dollars (millionths of a US dollar), so that costs add up in
//! integers without float drift.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use crate::types::Usage;

/// Price of a model, in US dollars per million tokens.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Price {
    pub input_per_mtok_usd: f64,
    pub output_per_mtok_usd: f64,
}

/// Model name → price. A key ending in `*` is a prefix wildcard (`claude-sonnet-4*` covers
/// every dated release of that model); an exact key wins over wildcards, and among
/// wildcards the longest prefix wins, so `gpt-4.1-mini*` beats `gpt-4.1*`.
///
/// Deserializes from a plain map (`{"gpt-4o": {"input_per_mtok_usd": 2.5, …}}`), so it can sit
/// in settings as is.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PriceTable(HashMap<String, Price>);

impl PriceTable {
    pub fn new(prices: HashMap<String, Price>) -> PriceTable {
        PriceTable(prices)
    }

    /// A few well-known models at their public list prices (USD per million tokens, standard
    /// tier, no caching or batch discounts) when this was written. They are a starting point:
    /// operators override or extend them in configuration ([`PriceTable::extend`]), since
    /// prices change and negotiated prices differ.
    pub fn builtin() -> PriceTable {
        const LIST: &[(&str, f64, f64)] = &[
            ("gpt-4o", 2.50, 10.00),
            ("gpt-4o-mini", 0.15, 0.60),
            ("gpt-4.1*", 2.00, 8.00),
            ("gpt-4.1-mini*", 0.40, 1.60),
            ("gpt-4.1-nano*", 0.10, 0.40),
            ("claude-3-5-sonnet*", 3.00, 15.00),
            ("claude-3-7-sonnet*", 3.00, 15.00),
            ("claude-sonnet-4*", 3.00, 15.00),
            ("claude-3-5-haiku*", 0.80, 4.00),
            ("claude-haiku-4-5*", 1.00, 5.00),
            ("claude-opus-4*", 15.00, 75.00),
            ("claude-opus-4-5*", 5.00, 25.00),
        ];
        PriceTable(
            LIST.iter()
                .map(|&(model, input, output)| {
                    let price = Price {
                        input_per_mtok_usd: input,
                        output_per_mtok_usd: output,
                    };
                    (model.to_owned(), price)
                })
                .collect(),
        )
    }

    /// Adds `other`'s entries, replacing any with the same key (configuration over builtins).
    pub fn extend(&mut self, other: PriceTable) {
        self.0.extend(other.0);
    }

    /// Sets one model's price (configuration over builtins).
    pub fn set(&mut self, model: impl Into<String>, price: Price) {
        self.0.insert(model.into(), price);
    }

    pub fn price(&self, model: &str) -> Option<&Price> {
        if let Some(price) = self.0.get(model) {
            return Some(price);
        }
        self.0
            .iter()
            .filter_map(|(key, price)| {
                let prefix = key.strip_suffix('*')?;
                model.starts_with(prefix).then_some((prefix.len(), price))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, price)| price)
    }

    /// Cost of `usage` on `model` in micro-dollars, rounded up (a fraction of a micro-dollar
    /// is charged, not given away). `None` for an unknown model or an unusable price
    /// (negative, not finite, beyond `i64`).
    pub fn cost_micros(&self, model: &str, usage: Usage) -> Option<i64> {
        let price = self.price(model)?;
        let usable = |p: f64| p.is_finite() && p >= 0.0;
        if !usable(price.input_per_mtok_usd) || !usable(price.output_per_mtok_usd) {
            return None;
        }
        // tokens × USD/Mtok = micro-USD.
        let raw = usage.input_tokens as f64 * price.input_per_mtok_usd
            + usage.output_tokens as f64 * price.output_per_mtok_usd;
        if !raw.is_finite() || raw >= i64::MAX as f64 / 1000.0 {
            return None;
        }
        // Round to thousandths first so float noise (0.6 × 5 = 3.0000000000000004) does not
        // round an exact cost up by one.
        let thousandths = (raw * 1000.0).round() as i64;
        Some(thousandths.div_euclid(1000) + i64::from(thousandths.rem_euclid(1000) != 0))
    }

    /// The most a call may cost: its input plus the full `max_output_tokens`. What to
    /// reserve against a budget before the call.
    pub fn max_cost_micros(
        &self,
        model: &str,
        input_tokens: u64,
        max_output_tokens: u64,
    ) -> Option<i64> {
        self.cost_micros(
            model,
            Usage {
                input_tokens,
                output_tokens: max_output_tokens,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input_tokens: u64, output_tokens: u64) -> Usage {
        Usage {
            input_tokens,
            output_tokens,
        }
    }

    fn table(entries: &[(&str, f64, f64)]) -> PriceTable {
        let mut t = PriceTable::default();
        for &(model, i, o) in entries {
            t.set(
                model,
                Price {
                    input_per_mtok_usd: i,
                    output_per_mtok_usd: o,
                },
            );
        }
        t
    }

    #[test]
    fn cost_is_tokens_times_price_per_million() {
        let t = table(&[("m", 2.5, 10.0)]);
        // 1M input tokens at $2.50 = 2_500_000 µ$; 1k output at $10/M = 10_000 µ$.
        assert_eq!(t.cost_micros("m", usage(1_000_000, 0)), Some(2_500_000));
        assert_eq!(t.cost_micros("m", usage(0, 1_000)), Some(10_000));
        assert_eq!(t.cost_micros("m", usage(0, 0)), Some(0));
    }

    #[test]
    fn cost_rounds_fractions_up_but_not_float_noise() {
        let t = table(&[("m", 0.15, 0.6)]);
        assert_eq!(t.cost_micros("m", usage(1, 0)), Some(1)); // 0.15 µ$ → 1
        assert_eq!(t.cost_micros("m", usage(0, 5)), Some(3)); // 3.0000000000000004 → 3
        assert_eq!(t.cost_micros("m", usage(7, 3)), Some(3)); // 1.05 + 1.8 = 2.85 → 3
    }

    #[test]
    fn unusable_prices_give_none() {
        let t = table(&[
            ("neg", -1.0, 1.0),
            ("nan", f64::NAN, 1.0),
            ("huge", 1e300, 1.0),
        ]);
        for m in ["neg", "nan", "huge", "unknown"] {
            assert_eq!(t.cost_micros(m, usage(10, 10)), None, "{m}");
        }
    }

    #[test]
    fn max_cost_reserves_all_output_tokens() {
        let t = table(&[("m", 1.0, 4.0)]);
        assert_eq!(t.max_cost_micros("m", 100, 1_000), Some(100 + 4_000));
    }

    #[test]
    fn exact_match_beats_wildcards_and_longest_prefix_wins() {
        let t = table(&[
            ("gpt-4.1*", 2.0, 8.0),
            ("gpt-4.1-mini*", 0.4, 1.6),
            ("gpt-4.1-mini-special", 9.0, 9.0),
            ("*", 100.0, 100.0),
        ]);
        let input = |m: &str| t.price(m).map(|p| p.input_per_mtok_usd);
        assert_eq!(input("gpt-4.1-mini-special"), Some(9.0));
        assert_eq!(input("gpt-4.1-mini-2025-04-14"), Some(0.4));
        assert_eq!(input("gpt-4.1-2025-04-14"), Some(2.0));
        assert_eq!(input("gpt-4.1"), Some(2.0));
        assert_eq!(input("llama3"), Some(100.0)); // the catch-all
        assert_eq!(table(&[("gpt-4.1*", 2.0, 8.0)]).price("gpt-4"), None);
    }

    #[test]
    fn builtin_covers_dated_releases() {
        let t = PriceTable::builtin();
        let input = |m: &str| t.price(m).map(|p| p.input_per_mtok_usd);
        assert_eq!(input("gpt-4o"), Some(2.5));
        assert_eq!(input("gpt-4o-mini"), Some(0.15));
        assert_eq!(input("claude-sonnet-4-20250514"), Some(3.0));
        assert_eq!(input("claude-3-5-haiku-20241022"), Some(0.8));
        assert_eq!(input("claude-opus-4-5-20251101"), Some(5.0));
        assert_eq!(input("claude-opus-4-1-20250805"), Some(15.0));
        assert_eq!(input("no-such-model"), None);
    }

    #[test]
    fn configuration_overrides_builtins() {
        let mut t = PriceTable::builtin();
        let config: PriceTable = serde_json::from_str(
            r#"{"gpt-4o": {"input_per_mtok_usd": 1.0, "output_per_mtok_usd": 2.0},
                "llama3*": {"input_per_mtok_usd": 0.0, "output_per_mtok_usd": 0.0}}"#,
        )
        .unwrap();
        t.extend(config);
        assert_eq!(t.cost_micros("gpt-4o", usage(1_000, 1_000)), Some(3_000));
        assert_eq!(t.cost_micros("llama3:8b", usage(1_000, 1_000)), Some(0));
        assert_eq!(
            t.cost_micros("gpt-4o-mini", usage(1_000_000, 0)),
            Some(150_000)
        );
    }
}
