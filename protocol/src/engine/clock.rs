//! Clock offsets on every link, and the corrected time records are stamped
//! with.
//!
//! Both ends of a protocol-2 link whose peer set [`CAP_CLOCK_SYNC`] probe
//! each other once the hellos are exchanged and then every
//! [`CLOCK_PROBE_EVERY_MS`] while the link lives ([`FrameV2::ClockProbe`],
//! answered at once by [`FrameV2::ClockEcho`]). Each echo is one NTP-style
//! sample: the peer's clock minus this node's, and the round trip. The
//! link's estimate is the sample with the smallest round trip among the last
//! [`CLOCK_WINDOW`]: queueing only ever adds delay, so the fastest exchange
//! is the one whose halves were most nearly equal.
//!
//! **Corrected time.** A node's corrected time is its clock plus its
//! correction: the estimated offset to its parent (or the fallback ancestor
//! it is attached to) plus the parent's own correction, which the parent
//! sends in every echo. The root's correction is 0, so corrected time is the
//! province's clock, whatever the offices' clocks say, to within half a
//! round trip per hop. The engine stamps what it writes with it (record
//! times, `generated_at`, the day of daily figures, `valid_until` expiry);
//! timers and staleness stay on the node's own clock, as durations. Before
//! the first echo from above (an office that has not reached its parent
//! since it started) the correction is 0: the raw clock. The offset is never
//! a reason to refuse anything.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{Engine, Transmit};
use crate::kv::Kv;
use crate::node_id::NodeId;
use crate::wire::{ClockEcho, ClockProbe, Frame, FrameV2, CAP_CLOCK_SYNC};

/// How often a live link measures its clock offset again.
pub const CLOCK_PROBE_EVERY_MS: u64 = 10_000;
/// Samples kept per link; the estimate is the one with the smallest round
/// trip among them (about the last 80 s at [`CLOCK_PROBE_EVERY_MS`]).
pub const CLOCK_WINDOW: usize = 8;
/// How long after open a node with a parent waits for its first clock
/// measurement before its first expiry check runs on the raw clock.
pub const CLOCK_FIRST_WAIT_MS: u64 = 60_000;
/// Beyond the round trips, how far a sample may differ from the estimate
/// before the window is taken to describe a clock that has since stepped.
pub const CLOCK_STEP_SLACK_MS: u64 = 1_000;
/// An echo whose round trip is longer than this says nothing useful (half
/// of it is the error bound) and is ignored.
pub const CLOCK_MAX_RTT_MS: u64 = 30_000;

/// A link's clock estimate: the peer's clock minus this node's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockEstimate {
    /// Peer's clock minus this node's, in ms (negative: the peer is behind).
    pub offset_ms: i64,
    /// Round trip of the sample the estimate comes from, in ms; the offset
    /// is off by at most half of it.
    pub rtt_ms: u64,
    /// When (this node's clock) the latest sample arrived.
    pub measured_at: u64,
    /// Samples in the window the estimate was chosen from.
    pub samples: usize,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    offset_ms: i64,
    rtt_ms: u64,
}

/// One peer's clock measurement, kept across reconnects so the last
/// estimate is still shown while a link is down.
#[derive(Debug, Default)]
pub(super) struct LinkClock {
    samples: VecDeque<Sample>,
    /// `t1` of the probe awaiting its echo.
    outstanding: Option<u64>,
    next_probe_at: u64,
    estimate: Option<ClockEstimate>,
    /// The correction the peer sent in its latest echo.
    peer_correction_ms: i64,
}

impl LinkClock {
    fn best(&self) -> Option<Sample> {
        self.samples.iter().copied().min_by_key(|s| s.rtt_ms)
    }
}

/// The sample of one exchange: (peer minus prober, round trip). `None` when
/// the times cannot be from one exchange (the echo arrived "before" the
/// probe left, by the prober's own clock).
pub fn sample(e: &ClockEcho, t4: u64) -> Option<(i64, u64)> {
    if t4 < e.t1 || e.t3 < e.t2 {
        return None;
    }
    let rtt = (t4 - e.t1).saturating_sub(e.t3 - e.t2);
    let offset = ((e.t2 as i128 - e.t1 as i128) + (e.t3 as i128 - t4 as i128)) / 2;
    Some((offset.clamp(i64::MIN as i128, i64::MAX as i128) as i64, rtt))
}

impl<K: Kv> Engine<K> {
    /// This node's corrected time at `now` by its own clock (see the module
    /// docs).
    pub fn corrected(&self, now: u64) -> u64 {
        (now as i64).saturating_add(self.clock_correction_ms).max(0) as u64
    }

    /// This node's correction: corrected time minus its clock, in ms; 0 at
    /// the root and until the first measurement from above.
    pub fn clock_correction_ms(&self) -> i64 {
        self.clock_correction_ms
    }

    /// The latest clock estimate of the link to `peer` (kept while the link
    /// is down), if one was ever measured.
    pub fn clock_estimate(&self, peer: &NodeId) -> Option<ClockEstimate> {
        self.clocks.get(peer).and_then(|c| c.estimate)
    }

    /// This node's clock minus its parent's (the link it corrects by: the
    /// parent, or the fallback ancestor in use), if measured.
    pub fn clock_offset_to_parent_ms(&self) -> Option<i64> {
        let up = self.clock_source()?;
        self.clock_estimate(&up).map(|e| -e.offset_ms)
    }

    /// The ancestor whose echoes set the correction: the parent while its
    /// link is ready, else a ready fallback link, else the parent.
    fn clock_source(&self) -> Option<NodeId> {
        let parent = self.parent.clone()?;
        if self.is_ready(&parent) {
            return Some(parent);
        }
        let fallback = self.links.keys().find(|p| p.is_ancestor_of(&self.me) && self.is_ready(p)).cloned();
        Some(fallback.unwrap_or(parent))
    }

    fn clock_probing(&self, peer: &NodeId) -> bool {
        self.links.get(peer).is_some_and(|l| l.peer_hello && l.version >= 2 && l.peer_caps & CAP_CLOCK_SYNC != 0)
    }

    /// A link came up: measure afresh (the peer may have restarted with
    /// another clock).
    pub(super) fn clock_link_up(&mut self, peer: &NodeId) {
        let c = self.clocks.entry(peer.clone()).or_default();
        c.samples.clear();
        c.outstanding = None;
        c.next_probe_at = 0;
    }

    /// When the next probe is due on any link.
    pub(super) fn clock_timeout(&self) -> Option<u64> {
        self.links
            .keys()
            .filter(|p| self.clock_probing(p))
            .map(|p| self.clocks.get(p).map(|c| c.next_probe_at).unwrap_or(0))
            .min()
    }

    /// Send a probe to `peer` if one is due.
    pub(super) fn clock_probe(&mut self, peer: &NodeId) {
        if !self.clock_probing(peer) {
            return;
        }
        let now = self.now;
        let c = self.clocks.entry(peer.clone()).or_default();
        if now < c.next_probe_at {
            return;
        }
        c.outstanding = Some(now);
        c.next_probe_at = now + CLOCK_PROBE_EVERY_MS;
        let frame = Frame::V2(FrameV2::ClockProbe(ClockProbe { t1: now }));
        self.transmits.push_back(Transmit { peer: peer.clone(), frame });
    }

    pub(super) fn on_clock_probe(&mut self, peer: &NodeId, p: ClockProbe) {
        // Answered at once and not held behind a flush: it carries no data.
        // t2 = t3: the engine sees arrival and answer at one instant.
        let now = self.now;
        let e = ClockEcho { t1: p.t1, t2: now, t3: now, correction_ms: self.clock_correction_ms };
        self.transmits.push_back(Transmit { peer: peer.clone(), frame: Frame::V2(FrameV2::ClockEcho(e)) });
    }

    pub(super) fn on_clock_echo(&mut self, peer: &NodeId, e: ClockEcho) {
        let now = self.now;
        let Some(c) = self.clocks.get_mut(peer) else { return };
        // Only the answer to the probe outstanding: a duplicate or a late
        // echo of an earlier probe would be measured against the wrong t1.
        if c.outstanding != Some(e.t1) {
            return;
        }
        c.outstanding = None;
        let Some((offset_ms, rtt_ms)) = sample(&e, now) else { return };
        if rtt_ms > CLOCK_MAX_RTT_MS {
            return;
        }
        // Two samples of one steady offset differ by at most half their
        // round trips summed; a bigger difference means a clock stepped
        // (NTP, or a hand): the older samples describe a clock that is gone.
        if let Some(best) = c.best() {
            let consistent = (rtt_ms + best.rtt_ms) / 2 + CLOCK_STEP_SLACK_MS;
            if offset_ms.abs_diff(best.offset_ms) > consistent {
                c.samples.clear();
            }
        }
        if c.samples.len() >= CLOCK_WINDOW {
            c.samples.pop_front();
        }
        c.samples.push_back(Sample { offset_ms, rtt_ms });
        c.peer_correction_ms = e.correction_ms;
        let Some(best) = c.best() else { return };
        c.estimate = Some(ClockEstimate {
            offset_ms: best.offset_ms,
            rtt_ms: best.rtt_ms,
            measured_at: now,
            samples: c.samples.len(),
        });
        if self.clock_source().as_ref() == Some(peer) {
            let correction = best.offset_ms.saturating_add(e.correction_ms);
            self.clock_correction_ms = correction;
            self.clock_measured = true;
            // A day already checked for expiry by a clock found fast is
            // checked again when the corrected time reaches its midnight.
            let today = crate::time::local_day(self.corrected(now));
            self.expiry_checked_day = self.expiry_checked_day.map(|d| d.min(today - 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_compensates_the_round_trip() {
        // Peer 600 s behind; 40 ms each way; 5 ms to answer.
        let e = ClockEcho { t1: 1_000_000, t2: 1_000_040 - 600_000, t3: 1_000_045 - 600_000, correction_ms: 0 };
        assert_eq!(sample(&e, 1_000_085), Some((-600_000, 80)));
        // Asymmetric delays (10 ms out, 70 back): off by half the difference.
        let e = ClockEcho { t1: 0, t2: 10 + 5_000, t3: 10 + 5_000, correction_ms: 0 };
        assert_eq!(sample(&e, 80), Some((5_000 - 30, 80)));
        // An echo "before" its probe is no sample.
        let e = ClockEcho { t1: 100, t2: 0, t3: 0, correction_ms: 0 };
        assert_eq!(sample(&e, 99), None);
    }
}
