//! Capped exponential backoff with jitter, for redialing the parent.
//!
//! Each delay is drawn uniformly from the upper half of the current step
//! ("equal jitter"), so that the children of a parent that restarts do not
//! all come back in the same instant, yet none waits less than half a step.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Delays between attempts: `initial`, doubling up to `max`, each jittered.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    step: Duration,
    rng: u64,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        let initial = initial.min(max);
        // Seeded from std's per-process random hasher keys: jitter needs no
        // reproducibility, only independence between nodes.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
        Backoff { initial, max, step: initial, rng: h.finish() | 1 }
    }

    /// The delay before the next attempt; later calls grow it up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let half = step / 2;
        let span = (step - half).as_micros() as u64;
        let jitter = if span == 0 { 0 } else { self.next_random() % (span + 1) };
        half + Duration::from_micros(jitter)
    }

    /// Start again from the initial delay (after a link that held).
    pub fn reset(&mut self) {
        self.step = self.initial;
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: plenty for jitter.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let mut steps = Vec::new();
        for _ in 0..12 {
            steps.push(b.next_delay());
        }
        let expected = [200u64, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000, 10_000, 10_000, 10_000];
        for (d, full) in steps.iter().zip(expected) {
            let full = Duration::from_millis(full);
            assert!(*d >= full / 2 && *d <= full, "{d:?} not in [{:?}, {full:?}]", full / 2);
        }
        assert!(steps[6..].windows(2).any(|w| w[0] != w[1]), "jitter varies: {steps:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(200));
    }
}
