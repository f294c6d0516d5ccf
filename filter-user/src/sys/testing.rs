//! Helpers for unit tests in every layer.

/// Deterministic xorshift, so a failure reproduces.
pub struct Rng(pub u64);
#[allow(clippy::should_implement_trait)] // Not an iterator: it never ends.
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
