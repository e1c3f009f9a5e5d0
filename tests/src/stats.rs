//! Bounds for checks on random outcomes, at a stated false-failure rate.

use std::ops::RangeInclusive;

/// The standard normal quantile for a two-sided false-failure rate of 1e-6.
const Z_1E6: f64 = 4.891_638;

/// The counts a `Binomial(n, p)` outcome falls outside with probability at most 1e-6 (two
/// sided, normal approximation: `n·p` and `n·(1-p)` should be well above 10).
pub fn binomial_bounds(n: u64, p: f64) -> RangeInclusive<u64> {
    let mean = n as f64 * p;
    let spread = Z_1E6 * (n as f64 * p * (1.0 - p)).sqrt();
    let low = (mean - spread).floor().max(0.0) as u64;
    let high = ((mean + spread).ceil() as u64).min(n);
    low..=high
}

#[cfg(test)]
mod tests {
    use super::binomial_bounds;

    #[test]
    fn bounds_are_about_five_standard_deviations() {
        // 4,000 draws at 20 %: mean 800, sd 25.3.
        assert_eq!(binomial_bounds(4000, 0.2), 676..=924);
        // A 15/85 split (mean 600) falls below the lower bound.
        assert!(*binomial_bounds(4000, 0.2).start() > 600 + 3 * 23);
    }
}
