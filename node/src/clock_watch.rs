//! Warnings about clocks: a task that looks at the clock offsets the engine
//! measured on every link and logs a warning when one is beyond
//! `clock_skew_warn_s`, at most once per peer every [`WARN_EVERY`] (and
//! again at once when the offset moves by more than the threshold since
//! the last warning). Nothing is ever refused over a clock: an office with
//! a wrong clock keeps working, its records stamped by the corrected time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobmesh_protocol::NodeId;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::state::NodeState;

/// How often the offsets are looked at.
const LOOK_EVERY: Duration = Duration::from_secs(5);
/// Longest silence about a peer whose clock stays off.
pub const WARN_EVERY: Duration = Duration::from_secs(600);

/// "N min behind" / "N s ahead": a peer's offset in words.
pub fn describe(offset_ms: i64) -> String {
    let secs = offset_ms.unsigned_abs() / 1000;
    let amount = if secs >= 120 { format!("{} min", (secs + 30) / 60) } else { format!("{secs} s") };
    format!("{amount} {}", if offset_ms < 0 { "behind" } else { "ahead" })
}

/// Run until `stop`.
/// `health`, when given, gets this node's offset from its parent, so the
/// province sees the skew of offices below its own links (the report is
/// republished only when the offset moved by more than a few seconds).
pub async fn run(
    state: Arc<NodeState>,
    warn_s: u64,
    health: Option<Arc<crate::health::HealthReporter>>,
    stop: CancellationToken,
) {
    let threshold_ms = warn_s.saturating_mul(1000);
    // Per peer: when last warned and the offset then.
    let mut warned: BTreeMap<NodeId, (Instant, i64)> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(LOOK_EVERY) => {}
        }
        let (clocks, to_parent) = state.inspect(|v| (v.clock().links.clone(), v.clock().offset_to_parent_ms));
        if let Some(h) = &health {
            if to_parent.is_some() && h.facts().clock_offset_ms != to_parent {
                h.update(|f| f.clock_offset_ms = to_parent);
            }
        }
        for (peer, est) in clocks {
            let off = est.offset_ms;
            if off.unsigned_abs() <= threshold_ms {
                if warned.remove(&peer).is_some() {
                    info!(%peer, offset_ms = off, "the peer's clock is back within clock_skew_warn_s of this node's");
                }
                continue;
            }
            let due = match warned.get(&peer) {
                None => true,
                Some((at, last)) => at.elapsed() >= WARN_EVERY || (off - last).unsigned_abs() > threshold_ms,
            };
            if due {
                warn!(
                    %peer,
                    offset_ms = off,
                    rtt_ms = est.rtt_ms,
                    threshold_s = warn_s,
                    "the peer's clock is {} this node's; records are stamped by the corrected time, nothing is refused",
                    describe(off)
                );
                warned.insert(peer, (Instant::now(), off));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn offsets_in_words() {
        assert_eq!(describe(-600_400), "10 min behind");
        assert_eq!(describe(90_000), "90 s ahead");
        assert_eq!(describe(3_600_000), "60 min ahead");
    }
}
