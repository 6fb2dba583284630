//! One link's session over one QUIC connection: a single bidirectional
//! stream carrying length-prefixed frames both ways.
//!
//! The session hands the engine thread its outbox with the link-up (so the
//! engine's output reaches it), then runs a writer (outbox → send stream,
//! coalescing queued frames into one write) and a reader (recv stream →
//! the engine thread's input channel) until either ends, the engine thread
//! asks it to close, or the connection is lost. Then it closes the
//! connection with an application code and a reason and reports the
//! link-down (which the engine thread ignores if a newer connection to the
//! same peer has replaced this one).

use std::sync::{Arc, Mutex};

use jobmesh_protocol::wire::{check_len, decode_body, encode_frame, Frame, LEN_PREFIX, MAX_FRAME_BYTES};
use jobmesh_protocol::NodeId;
use quinn::{ConnectionError, ReadError, ReadExactError, RecvStream, SendStream, VarInt, WriteError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{code, LinkCtx};
use crate::state::{Closing, Input, Outbox, OUTBOX_FRAMES};

/// Frames queued in the outbox are coalesced into one stream write up to
/// this many bytes.
const WRITE_COALESCE_BYTES: usize = 256 * 1024;
pub use crate::state::REPLACED;
/// Longest close reason sent to the peer (it must fit in one packet).
const MAX_REASON_BYTES: usize = 512;

/// Why a link session ended.
#[derive(Debug)]
enum LinkEnd {
    /// The node is shutting down.
    Shutdown,
    /// The peer broke the framing or sent an undecodable frame.
    Protocol(String),
    /// The engine refused the link or a frame on it.
    Refused(String),
    /// The node state closed the link (outbox overflow, refused batch,
    /// replaced by a newer connection).
    ClosedByNode(String),
    /// The connection is gone (closed by the peer, timed out, reset).
    Lost(ConnectionError),
}

impl LinkEnd {
    fn from_read(e: ReadError) -> LinkEnd {
        match e {
            ReadError::ConnectionLost(c) => LinkEnd::Lost(c),
            other => LinkEnd::Protocol(format!("receive stream failed: {other}")),
        }
    }

    fn from_write(e: WriteError) -> LinkEnd {
        match e {
            WriteError::ConnectionLost(c) => LinkEnd::Lost(c),
            other => LinkEnd::Protocol(format!("send stream failed: {other}")),
        }
    }
}

/// The protocol version the handshake's ALPN settled on. rustls refuses a
/// handshake without a common ALPN name, so the fallback (the oldest
/// version spoken) is only for a handshake that reports none.
fn negotiated_version(conn: &quinn::Connection) -> u32 {
    conn.handshake_data()
        .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|h| h.protocol)
        .and_then(|p| jobmesh_protocol::wire::alpn_version(&p))
        .unwrap_or(jobmesh_protocol::wire::MIN_PROTOCOL_VERSION)
}

/// How a session ended, as the dial loop needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// The peer refused the link or is busy: back off before redialling.
    RefusedByPeer,
    /// Anything else (lost, stalled, shutdown): redial promptly.
    Other,
}

/// Run one link session to its end. `send`/`recv` is the link's stream.
pub(super) async fn run(
    ctx: &LinkCtx,
    conn: quinn::Connection,
    peer: NodeId,
    mut send: SendStream,
    mut recv: RecvStream,
) -> Ended {
    let gen = ctx.next_gen();
    let (tx, rx) = mpsc::channel(OUTBOX_FRAMES);
    // A child of the node's shutdown token: shutdown closes every link.
    let close = ctx.shutdown.child_token();
    let close_reason = Arc::new(Mutex::new(None::<Closing>));
    let outbox = Outbox { conn: gen, tx, close: close.clone(), close_reason: close_reason.clone() };
    ctx.stats.link_up();
    info!(remote = %conn.remote_address(), "link up");

    let version = negotiated_version(&conn);
    info!(protocol = version, "protocol negotiated");
    // Registered for the session's length: the peer's certificate (status,
    // metrics, revocation) and a way to close the link if it is revoked.
    let certs = conn.peer_identity().and_then(|i| i.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>().ok());
    let _cert_link = ctx.certs.link_up(gen, &peer, certs.as_deref().map(|c| c.as_slice()), &outbox, version);
    let end = if !ctx.state.send(Input::LinkUp { peer: peer.clone(), version, outbox }).await {
        LinkEnd::Shutdown
    } else {
        tokio::select! {
            end = write_loop(ctx, &mut send, rx) => end,
            end = read_loop(ctx, &peer, gen, &mut recv, &close) => end,
            _ = close.cancelled() => {
                if ctx.shutdown.is_cancelled() {
                    LinkEnd::Shutdown
                } else {
                    match close_reason.lock().unwrap_or_else(|p| p.into_inner()).take() {
                        Some(Closing::Refused(r)) => LinkEnd::Refused(r),
                        Some(Closing::ByNode(r)) => LinkEnd::ClosedByNode(r),
                        None => LinkEnd::ClosedByNode("closed by the node".into()),
                    }
                }
            }
            e = conn.closed() => LinkEnd::Lost(e),
        }
    };

    let close_with = |code: VarInt, reason: &str| conn.close(code, truncate(reason).as_bytes());
    match &end {
        LinkEnd::Shutdown => close_with(code::SHUTDOWN, "shutdown"),
        LinkEnd::Protocol(r) => {
            ctx.stats.protocol_error();
            warn!(reason = %r, "closing the link: protocol error");
            close_with(code::PROTOCOL, r);
        }
        LinkEnd::Refused(r) => {
            ctx.stats.link_refused();
            warn!(reason = %r, "closing the link: refused");
            close_with(code::REFUSED, r);
        }
        LinkEnd::ClosedByNode(r) if r == REPLACED => {
            // The peer reconnected (it restarted, or this connection was
            // silently lost): routine, not a fault.
            info!("closing the link: {REPLACED}");
            close_with(code::CLOSED_BY_NODE, r);
        }
        LinkEnd::ClosedByNode(r) => {
            ctx.stats.link_refused();
            warn!(reason = %r, "closing the link");
            close_with(code::CLOSED_BY_NODE, r);
        }
        LinkEnd::Lost(_) => {}
    }
    // Ignored by the engine thread if this connection was already closed
    // by it or replaced.
    let _ = ctx.state.send(Input::LinkDown { peer: peer.clone(), conn: gen }).await;
    ctx.stats.link_down();
    let refused = |c: VarInt| c == code::REFUSED || c == code::BUSY;
    match end {
        LinkEnd::Lost(ConnectionError::ApplicationClosed(c)) if refused(c.error_code) => {
            info!(reason = %describe_close(&ConnectionError::ApplicationClosed(c)), "link down");
            Ended::RefusedByPeer
        }
        LinkEnd::Lost(e) => {
            info!(reason = %describe_close(&e), "link down");
            Ended::Other
        }
        LinkEnd::Shutdown => {
            info!("link down: shutdown");
            Ended::Other
        }
        _ => {
            info!("link down");
            Ended::Other
        }
    }
}

/// Drain the outbox into the send stream, coalescing frames that are
/// already queued into one write.
async fn write_loop(ctx: &LinkCtx, send: &mut SendStream, mut rx: mpsc::Receiver<Frame>) -> LinkEnd {
    let mut buf = Vec::with_capacity(WRITE_COALESCE_BYTES);
    loop {
        let Some(first) = rx.recv().await else {
            // The outbox was dropped: a newer connection replaced this one.
            return LinkEnd::ClosedByNode(REPLACED.into());
        };
        buf.clear();
        let mut frames = 0u64;
        let mut next = Some(first);
        while let Some(frame) = next.take() {
            let encoded = encode_frame(&frame);
            if encoded.len() - LEN_PREFIX > MAX_FRAME_BYTES {
                // The peer would refuse it and the link would loop on it.
                return LinkEnd::Refused(format!(
                    "a frame of {} bytes exceeds the limit of {MAX_FRAME_BYTES}",
                    encoded.len() - LEN_PREFIX
                ));
            }
            buf.extend_from_slice(&encoded);
            frames += 1;
            if buf.len() < WRITE_COALESCE_BYTES {
                next = rx.try_recv().ok();
            }
        }
        if let Err(e) = send.write_all(&buf).await {
            return LinkEnd::from_write(e);
        }
        ctx.stats.sent(frames, buf.len() as u64);
    }
}

/// Read frames and hand them to the engine thread, in order. A full input
/// queue makes this wait, which holds back the peer through QUIC's flow
/// control.
async fn read_loop(
    ctx: &LinkCtx,
    peer: &NodeId,
    conn: u64,
    recv: &mut RecvStream,
    close: &CancellationToken,
) -> LinkEnd {
    loop {
        let mut prefix = [0u8; LEN_PREFIX];
        match recv.read_exact(&mut prefix).await {
            Ok(()) => {}
            Err(ReadExactError::FinishedEarly(0)) => return LinkEnd::Protocol("the peer finished its stream".into()),
            Err(ReadExactError::FinishedEarly(_)) => return LinkEnd::Protocol("stream ended inside a frame".into()),
            Err(ReadExactError::ReadError(e)) => return LinkEnd::from_read(e),
        }
        // The length is checked before anything is allocated.
        let len = match check_len(prefix) {
            Ok(len) => len,
            Err(e) => return LinkEnd::Protocol(e.to_string()),
        };
        let mut body = vec![0u8; len];
        match recv.read_exact(&mut body).await {
            Ok(()) => {}
            Err(ReadExactError::FinishedEarly(_)) => return LinkEnd::Protocol("stream ended inside a frame".into()),
            Err(ReadExactError::ReadError(e)) => return LinkEnd::from_read(e),
        }
        ctx.stats.received((LEN_PREFIX + len) as u64);
        let frame = match decode_body(&body) {
            Ok(f) => f,
            Err(e) => return LinkEnd::Protocol(e.to_string()),
        };
        drop(body);
        if close.is_cancelled() {
            // Replaced or closing: a frame of this connection must not reach
            // the engine's state for the peer's newer link.
            return LinkEnd::ClosedByNode("closing".into());
        }
        // Hellos are noted and revocation lists taken by the certificate side.
        let Some(frame) = ctx.certs.intercept(peer, conn, frame) else { continue };
        if !ctx.state.send(Input::Frame { peer: peer.clone(), conn, frame }).await {
            return LinkEnd::Shutdown;
        }
    }
}

/// A close reason cut to fit in a packet, on a character boundary.
fn truncate(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_BYTES {
        return reason;
    }
    let mut end = MAX_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// How a connection ended, for logs: the application code's name and the
/// reason the peer gave, if it closed it.
pub(super) fn describe_close(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ApplicationClosed(c) => {
            let reason = String::from_utf8_lossy(&c.reason);
            format!("closed by peer ({}): {reason}", code::name(c.error_code))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_cut_on_a_character_boundary() {
        let long = "é".repeat(400);
        let t = truncate(&long);
        assert!(t.len() <= MAX_REASON_BYTES && t.len() >= MAX_REASON_BYTES - 1);
        assert_eq!(truncate("short"), "short");
    }
}
