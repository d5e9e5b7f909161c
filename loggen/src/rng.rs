//! SplitMix64: a tiny, well-tested PRNG (Steele, Lea and Flood, 2014) that needs nothing but
//! wrapping integer arithmetic, so a seed gives the same stream on every platform. No floating
//! point anywhere: `f64::ln` and friends may differ in the last bit between libms.

#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is below 2^-40 for our `n`).
    /// Returns 0 for `n == 0`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `pct` percent.
    pub(crate) fn percent(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    /// True with probability `pm` per mille.
    pub(crate) fn per_mille(&mut self, pm: u64) -> bool {
        self.below(1000) < pm
    }

    /// A uniformly chosen element; `items` must not be empty.
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// An index skewed towards the front of `0..n`: a few "regulars" produce most traffic.
    pub(crate) fn skewed(&mut self, n: u64) -> usize {
        let upper = self.below(n) + 1;
        self.below(upper) as usize
    }

    /// A value drawn from `(value, weight)` pairs; the weights must not all be zero.
    pub(crate) fn weighted<T: Copy>(&mut self, table: &[(T, u32)]) -> T {
        let total: u64 = table.iter().map(|&(_, w)| u64::from(w)).sum();
        let mut x = self.below(total);
        for &(value, w) in table {
            if x < u64::from(w) {
                return value;
            }
            x -= u64::from(w);
        }
        table[table.len() - 1].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_values() {
        // First outputs for seed 1234567, as published with the reference C implementation.
        let mut r = Rng::new(1_234_567);
        assert_eq!(r.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(r.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn bounded_draws_stay_in_range() {
        let mut r = Rng::new(9);
        for _ in 0..10_000 {
            assert!(r.below(7) < 7);
            let v = r.between(3, 5);
            assert!((3..=5).contains(&v));
            assert!(r.skewed(10) < 10);
        }
        assert_eq!(r.below(0), 0);
    }
}
