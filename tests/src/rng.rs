//! Deterministic pseudo-random numbers (xorshift), so a failing test or benchmark reproduces.

pub struct Rng(pub u64);

// An endless generator, not an iterator over items.
#[allow(clippy::should_implement_trait)]
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
