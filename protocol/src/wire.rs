//! Wire frames and their codec.
//!
//! A frame on a link's stream is a 4-byte big-endian length followed by that
//! many bytes of bincode 2 (standard configuration). The length is checked
//! against [`MAX_FRAME_BYTES`] before anything is allocated, and bincode is
//! given the same limit so that a hostile collection length inside the frame
//! cannot allocate either. A frame that fails to decode closes its link; it
//! never touches the store.
//!
//! Versioning: [`Frame`] is an enum of protocol versions. A message that has
//! shipped never gains a field; new capabilities are new variants (or a
//! `V2`), offered only to peers that negotiated a version carrying them.
//!
//! Peers agree on a version in the QUIC handshake: each side offers the ALPN
//! names of every version it speaks, newest first ([`ALPNS`]), and the
//! server picks the first of its own list the client offered. 0.1.0 offers
//! only `jobmesh/1`, so a link with it speaks 1. The hello then repeats the
//! negotiated version, and a hello saying anything else closes the link.
//! On a link at version 1 only [`Frame::V1`] frames are sent, and their
//! records are only of kinds protocol 1 knows (see
//! [`crate::record::Kind::since_protocol`]): 0.1.0 decodes `FrameV1`
//! byte for byte as it shipped.

use serde::{Deserialize, Serialize};

use crate::node_id::NodeId;
use crate::record::Record;

/// QUIC application protocol name of protocol 1 (all that 0.1.0 offers).
pub const ALPN: &[u8] = b"jobmesh/1";
/// QUIC application protocol name of protocol 2.
pub const ALPN_V2: &[u8] = b"jobmesh/2";
/// Every ALPN name this build offers, newest first: its own protocol and
/// the previous one.
pub const ALPNS: [&[u8]; 2] = [ALPN_V2, ALPN];
/// The newest protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 2;
/// The oldest protocol version this build still speaks (the previous one).
pub const MIN_PROTOCOL_VERSION: u32 = 1;
/// Capability bit: this node serves and understands the restore frames
/// ([`FrameV2::RestoreRequest`], [`FrameV2::RestorePage`]). They are sent
/// only on a protocol-2 link whose peer's hello set this bit (0.1.0 sets
/// none).
pub const CAP_RESTORE: u64 = 1;
/// Capability bit: this node understands [`FrameV2::SummaryAges`], how long
/// each summary in the batch that follows has been held on its way (see
/// `rollup`). Sent only on a protocol-2 link whose peer's hello set it.
pub const CAP_CLOCK: u64 = 2;
/// Capability bit: this node takes revocation lists
/// ([`FrameV2::Revocations`]) from its parent and relays them to its
/// children. Sent only on a protocol-2 link whose peer's hello set it.
pub const CAP_REVOCATION: u64 = 4;
/// Capability bit: this node answers [`FrameV2::ClockProbe`] with a
/// [`FrameV2::ClockEcho`], so the two ends of a link measure the offset
/// between their clocks. Probes go only to a protocol-2 peer whose hello
/// set it.
pub const CAP_CLOCK_SYNC: u64 = 16;
/// Capability bits this build offers in its hello.
pub const CAPABILITIES: u64 = CAP_RESTORE | CAP_CLOCK | CAP_REVOCATION | CAP_CLOCK_SYNC;
/// Most entries in one [`SummaryAges`] frame (one per summary of a batch).
pub const MAX_SUMMARY_AGES: usize = MAX_BATCH_RECORDS;
/// Largest frame body accepted, in bytes.
pub const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;
/// Most records in one batch.
pub const MAX_BATCH_RECORDS: usize = 2048;
/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// The protocol version an ALPN name stands for, if this build speaks it.
pub fn alpn_version(alpn: &[u8]) -> Option<u32> {
    match alpn {
        b"jobmesh/1" => Some(1),
        b"jobmesh/2" => Some(2),
        _ => None,
    }
}

/// Every frame, by protocol version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    V1(FrameV1),
    /// Frames only a link at protocol 2 or later carries.
    V2(FrameV2),
}

impl Frame {
    /// The oldest protocol version that can carry this frame.
    pub fn since_protocol(&self) -> u32 {
        match self {
            Frame::V1(FrameV1::Batch(b)) => b.records.iter().map(|r| r.kind().since_protocol()).max().unwrap_or(1),
            Frame::V1(_) => 1,
            Frame::V2(_) => 2,
        }
    }
}

/// Frames added in protocol 2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FrameV2 {
    /// Records of kinds the peer's previous version could not carry, from
    /// the part of the sender's journal the peer's checkpoint already covers
    /// (they were held back while the link spoke the older version). They
    /// are applied without moving the checkpoint.
    Backfill(Backfill),
    /// The receiver has durably applied the backfill through `through`.
    BackfillAck(Ack),
    /// A child restored from a backup asks its parent for the records of
    /// the child's own subtree that the parent holds (only if the parent
    /// advertised [`CAP_RESTORE`]).
    RestoreRequest(RestoreRequest),
    /// The parent's answer: one page of them.
    RestorePage(RestorePage),
    /// Sent just before a batch that carries summaries, only to a peer that
    /// advertised [`CAP_CLOCK`]: for each summary, how long the sender had
    /// held the figures since they were fresh, by the sender's own clock.
    /// The receiver dates them `its now - age_ms`, so freshness is measured
    /// by durations on each hop's clock, never by another machine's time.
    SummaryAges(SummaryAges),
    /// A revocation list signed by the province CA, from a parent to a
    /// child that set [`CAP_REVOCATION`]. Opaque here: the node checks its
    /// signature against the CA certificates it trusts; the engine never
    /// sees it.
    Revocations(Revocations),
    /// "What time is it on your clock?", sent at link-up and refreshed
    /// while the link lives, only to a peer that set [`CAP_CLOCK_SYNC`].
    ClockProbe(ClockProbe),
    /// The answer, NTP-style: the probe's send time (the prober's clock),
    /// when it arrived and when the answer left (the answerer's clock).
    ClockEcho(ClockEcho),
}

/// See [`FrameV2::ClockProbe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockProbe {
    /// The prober's clock when it sent the probe (Unix ms).
    pub t1: u64,
}

/// See [`FrameV2::ClockEcho`]. With `t4` the prober's clock when the echo
/// arrives, the answerer's clock minus the prober's is
/// `((t2 - t1) + (t3 - t4)) / 2`, off by at most half the round trip
/// `(t4 - t1) - (t3 - t2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockEcho {
    pub t1: u64,
    /// The answerer's clock when the probe arrived.
    pub t2: u64,
    /// The answerer's clock when the echo left.
    pub t3: u64,
    /// The answerer's own correction: its province time minus its clock
    /// (0 at the root, and at a node that never measured its parent), so a
    /// child corrects to the root's clock through any number of hops.
    pub correction_ms: i64,
}

/// A signed revocation list, the bytes of its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocations {
    pub list: Vec<u8>,
}

/// See [`FrameV2::SummaryAges`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryAges {
    pub ages: Vec<SummaryAge>,
}

/// One summary's age at the sender: the office, the summary's version,
/// milliseconds since the figures were fresh (made by the office, or
/// heard fresh from the hop before).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryAge {
    pub office: NodeId,
    pub version: u64,
    pub age_ms: u64,
}

/// A run of backfill: records from the sender's journal in `(from, through]`
/// of the kinds the link's previous version could not carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backfill {
    pub from: u64,
    pub through: u64,
    pub records: Vec<Record>,
}

/// Frames of protocol version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FrameV1 {
    /// First frame each side sends on a new link (and repeats until it knows
    /// the peer has it).
    Hello(Hello),
    /// Records from the sender's journal in `(from, through]`.
    Batch(Batch),
    /// The receiver has durably applied the sender's journal through here.
    Ack(Ack),
    /// The receiver saw a gap: it holds the sender's journal only through
    /// `have`; resend from there.
    Nack(Nack),
}

/// Opening of a link: who the sender says it is, and where it wants the
/// peer's journal resumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub capabilities: u64,
    /// Claimed id; the transport checks it against the certificate.
    pub node_id: NodeId,
    /// The receiver's durable checkpoint of the peer's journal: "send me
    /// yours after this sequence".
    pub resume_after: u64,
    /// True when the sender has already received the peer's hello on this
    /// link, so the peer may stop repeating its own.
    pub seen_yours: bool,
}

/// A run of the sender's journal. `from` is the `through` of the previous
/// batch on this link (the receiver must hold at least that much), `through`
/// the last journal sequence this batch covers, including entries that the
/// routing rule filtered out for this receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub from: u64,
    pub through: u64,
    pub records: Vec<Record>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub through: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nack {
    pub have: u64,
}

/// "Send me the records of my subtree from your journal after `after`."
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRequest {
    pub after: u64,
}

/// Records with an origin in the requesting child's subtree, found in the
/// parent's journal in `(after, through]`. `done` when `through` reached
/// the parent's durable journal end: the child then holds everything of
/// its subtree that the parent held when the page was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePage {
    pub after: u64,
    pub through: u64,
    pub done: bool,
    pub records: Vec<Record>,
}

/// Why bytes are not a frame.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The length prefix exceeds [`MAX_FRAME_BYTES`].
    #[error("frame of {len} bytes exceeds the limit of {MAX_FRAME_BYTES}")]
    TooLarge { len: usize },
    /// The length prefix is zero.
    #[error("empty frame")]
    Empty,
    /// bincode could not decode the body.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The body decoded but bytes were left over.
    #[error("frame has {0} trailing bytes")]
    Trailing(usize),
    /// The frame decoded but breaks a limit or an invariant.
    #[error("invalid frame: {0}")]
    Invalid(String),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME_BYTES>()
}

impl Frame {
    /// Invariants a decoder checks beyond the encoding.
    pub fn validate(&self) -> Result<(), DecodeError> {
        match self {
            Frame::V2(FrameV2::Backfill(b)) => {
                if b.records.len() > MAX_BATCH_RECORDS {
                    return Err(DecodeError::Invalid(format!(
                        "backfill of {} records exceeds {MAX_BATCH_RECORDS}",
                        b.records.len()
                    )));
                }
                if b.from > b.through {
                    return Err(DecodeError::Invalid(format!("backfill from {} > through {}", b.from, b.through)));
                }
                Ok(())
            }
            Frame::V1(FrameV1::Batch(b)) => {
                if b.records.len() > MAX_BATCH_RECORDS {
                    return Err(DecodeError::Invalid(format!(
                        "batch of {} records exceeds {MAX_BATCH_RECORDS}",
                        b.records.len()
                    )));
                }
                if b.from > b.through {
                    return Err(DecodeError::Invalid(format!("batch from {} > through {}", b.from, b.through)));
                }
                Ok(())
            }
            Frame::V2(FrameV2::RestorePage(p)) => {
                if p.records.len() > MAX_BATCH_RECORDS {
                    return Err(DecodeError::Invalid(format!(
                        "restore page of {} records exceeds {MAX_BATCH_RECORDS}",
                        p.records.len()
                    )));
                }
                if p.after > p.through {
                    return Err(DecodeError::Invalid(format!(
                        "restore page after {} > through {}",
                        p.after, p.through
                    )));
                }
                Ok(())
            }
            Frame::V2(FrameV2::SummaryAges(a)) if a.ages.len() > MAX_SUMMARY_AGES => {
                Err(DecodeError::Invalid(format!("summary ages of {} entries exceed {MAX_SUMMARY_AGES}", a.ages.len())))
            }
            _ => Ok(()),
        }
    }
}

/// Encode a frame with its length prefix.
pub fn encode_frame(frame: &Frame) -> Vec<u8> {
    let mut out = vec![0u8; LEN_PREFIX];
    bincode::serde::encode_into_std_write(frame, &mut out, bincode::config::standard())
        .unwrap_or_else(|e| unreachable!("encoding into a Vec cannot fail: {e}"));
    let len = (out.len() - LEN_PREFIX) as u32;
    out[..LEN_PREFIX].copy_from_slice(&len.to_be_bytes());
    out
}

/// Check a length prefix before reading the body it announces.
pub fn check_len(prefix: [u8; LEN_PREFIX]) -> Result<usize, DecodeError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len == 0 {
        return Err(DecodeError::Empty);
    }
    if len > MAX_FRAME_BYTES {
        return Err(DecodeError::TooLarge { len });
    }
    Ok(len)
}

/// Decode a frame body (without its prefix).
pub fn decode_body(body: &[u8]) -> Result<Frame, DecodeError> {
    if body.len() > MAX_FRAME_BYTES {
        return Err(DecodeError::TooLarge { len: body.len() });
    }
    let (frame, used): (Frame, usize) =
        bincode::serde::decode_from_slice(body, config()).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if used != body.len() {
        return Err(DecodeError::Trailing(body.len() - used));
    }
    frame.validate()?;
    Ok(frame)
}

/// Splits a byte stream into frames (for transports that deliver bytes).
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        if self.buf.len() < LEN_PREFIX {
            return Ok(None);
        }
        let len = check_len(self.buf[..LEN_PREFIX].try_into().unwrap_or([0; LEN_PREFIX]))?;
        if self.buf.len() < LEN_PREFIX + len {
            return Ok(None);
        }
        let frame = decode_body(&self.buf[LEN_PREFIX..LEN_PREFIX + len]);
        self.buf.drain(..LEN_PREFIX + len);
        frame.map(Some)
    }
}
