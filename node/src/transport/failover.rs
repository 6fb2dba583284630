//! Failover: while the parent link has been down for `failover_after_s`,
//! dial the `[[fallback]]` ancestors in order and keep a link to the first
//! that answers; once the parent link is back and has held for a while,
//! close the fallback link.
//!
//! The parent's dial loop runs all along and reports its link's state to a
//! [`ParentWatch`]; this module's loop only reads it. Hysteresis, so that a
//! flapping parent causes no reconnect storm:
//!
//! - the node fails over only after the parent link has been down
//!   *continuously* for `failover_after`;
//! - it returns only after the parent link has been up *continuously* for
//!   `failover_after` plus a random share of half of it (jitter: the counties
//!   of a returning city do not all move in the same second); a parent that
//!   drops within that time resets the wait;
//! - failed dials to the fallbacks back off with jitter (the transport's
//!   [`Backoff`]).
//!
//! Correctness does not depend on any of these timings: the engine keeps
//! separate checkpoints for the fallback link and the parent link, and a
//! node linked to both at once converges exactly (see ARCHITECTURE.md,
//! "Failover").

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobmesh_protocol::NodeId;
use quinn::Endpoint;
use serde::Serialize;
use tracing::{info, info_span, warn, Instrument};

use super::{dial_once, Backoff, Dial, DialRole, LinkCtx};
use crate::config::ParentConfig;

/// How often the failover loop looks at the parent link's state.
const POLL: Duration = Duration::from_millis(250);

/// The parent link's state as its dial loop sees it.
#[derive(Debug)]
pub(crate) struct ParentWatch {
    inner: Mutex<WatchState>,
}

#[derive(Debug, Clone, Copy)]
struct WatchState {
    /// The parent link is up since then (`None`: down).
    up_since: Option<Instant>,
    /// The parent link is down since then (`None`: up). At start the link
    /// counts as down since the node started.
    down_since: Option<Instant>,
    /// Unix ms of `down_since`, for status.
    down_since_ms: Option<u64>,
}

impl ParentWatch {
    pub(crate) fn new() -> ParentWatch {
        ParentWatch {
            inner: Mutex::new(WatchState {
                up_since: None,
                down_since: Some(Instant::now()),
                down_since_ms: Some(crate::state::now_ms()),
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut WatchState) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn up(&self) {
        self.with(|s| {
            s.up_since = Some(Instant::now());
            s.down_since = None;
            s.down_since_ms = None;
        })
    }

    pub(crate) fn down(&self) {
        self.with(|s| {
            if s.down_since.is_none() {
                s.down_since = Some(Instant::now());
                s.down_since_ms = Some(crate::state::now_ms());
            }
            s.up_since = None;
        })
    }

    fn down_for(&self) -> Option<Duration> {
        self.with(|s| s.down_since.map(|t| t.elapsed()))
    }

    fn up_for(&self) -> Option<Duration> {
        self.with(|s| s.up_since.map(|t| t.elapsed()))
    }

    /// Unix ms since when the parent link is down, if it is.
    pub(crate) fn down_since_ms(&self) -> Option<u64> {
        self.with(|s| s.down_since_ms)
    }
}

/// What `/v1/status` and the page show about failover at this node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FailoverView {
    /// The fallback ancestor linked now, if any.
    pub node_id: Option<NodeId>,
    pub addr: Option<String>,
    /// Unix ms when the fallback link came up.
    pub since: Option<u64>,
}

/// The fallback in use and the parent link's state, shared with the API.
#[derive(Debug)]
pub struct FailoverState {
    view: Mutex<FailoverView>,
    pub(crate) watch: ParentWatch,
}

impl Default for FailoverState {
    fn default() -> Self {
        FailoverState { view: Mutex::new(FailoverView::default()), watch: ParentWatch::new() }
    }
}

impl FailoverState {
    pub fn new() -> FailoverState {
        FailoverState::default()
    }

    /// Unix ms since when the parent link is down (`None` while it is up).
    pub fn parent_down_since(&self) -> Option<u64> {
        self.watch.down_since_ms()
    }

    pub fn view(&self) -> FailoverView {
        self.view.lock().map(|v| v.clone()).unwrap_or_default()
    }

    fn set(&self, v: FailoverView) {
        if let Ok(mut held) = self.view.lock() {
            *held = v;
        }
    }
}

/// While a fallback link is up: the return condition.
pub(super) struct Return<'a> {
    pub(super) watch: &'a ParentWatch,
    pub(super) state: &'a FailoverState,
    pub(super) after: Duration,
}

impl Return<'_> {
    /// Wait until the parent link has been up for the return delay, then
    /// close `conn` (the link session then ends as it does on any close).
    pub(super) async fn close_on_return(&self, conn: &quinn::Connection, peer: &ParentConfig) {
        self.state.set(FailoverView {
            node_id: Some(peer.node_id.clone()),
            addr: Some(peer.addr.to_string()),
            since: Some(crate::state::now_ms()),
        });
        loop {
            tokio::time::sleep(POLL).await;
            if self.watch.up_for().is_some_and(|d| d >= self.after) {
                info!(fallback = %peer.node_id, "the parent link is back and stable: returning to the parent");
                conn.close(super::code::CLOSED_BY_NODE, b"returning to the parent");
                return;
            }
        }
    }
}

/// The failover loop of a node with fallbacks (spawned next to the parent's
/// dial loop).
pub(super) async fn failover_loop(
    endpoint: Endpoint,
    // Each dial builds its TLS config from the node's current identity
    // (renewed certificates apply), accepting only that fallback.
    fallbacks: Vec<ParentConfig>,
    after: Duration,
    reconnect_max: Duration,
    ctx: Arc<LinkCtx>,
) {
    let span = info_span!("failover");
    async {
        let mut backoff = Backoff::new(super::RECONNECT_INITIAL, reconnect_max);
        let mut attempt = 0usize;
        let mut last_failure: Option<String> = None;
        loop {
            // Wait for the parent link to be down for `after`, continuously.
            loop {
                if ctx.shutdown.is_cancelled() {
                    return;
                }
                if ctx.failover.watch.down_for().is_some_and(|d| d >= after) {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = ctx.shutdown.cancelled() => return,
                }
            }
            let mut delay = None;
            for f in &fallbacks {
                if ctx.failover.watch.up_for().is_some() {
                    break;
                }
                attempt = attempt.wrapping_add(1);
                // Return after `after` plus up to half of it again.
                let jitter = Backoff::new(after, after).next_delay();
                let ret = Return { watch: &ctx.failover.watch, state: &ctx.failover, after: after / 2 + jitter };
                info!(fallback = %f.node_id, addr = %f.addr, "the parent link is down: dialing a fallback");
                let link_span = info_span!("link", peer = %f.node_id, fallback = true);
                let dialed =
                    dial_once(&endpoint, f, attempt, &ctx, DialRole::Fallback(&ret)).instrument(link_span);
                match dialed.await {
                    Dial::Shutdown => return,
                    Dial::Linked { held, .. } => {
                        ctx.failover.set(FailoverView::default());
                        last_failure = None;
                        if held >= super::STABLE_LINK {
                            backoff.reset();
                        }
                        delay = Some(if held >= super::STABLE_LINK { Duration::ZERO } else { backoff.next_delay() });
                        break;
                    }
                    Dial::Failed { what, .. } => {
                        if last_failure.as_deref() == Some(what.as_str()) {
                            tracing::debug!(fallback = %f.node_id, error = %what, "still cannot reach the fallback");
                        } else {
                            warn!(fallback = %f.node_id, addr = %f.addr, error = %what, "cannot reach the fallback; trying the next");
                            last_failure = Some(what);
                        }
                    }
                }
            }
            let delay = delay.unwrap_or_else(|| backoff.next_delay());
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = ctx.shutdown.cancelled() => return,
            }
        }
    }
    .instrument(span)
    .await
}
