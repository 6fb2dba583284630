//! The node's certificates while it runs: the identity it presents, the CAs
//! it trusts, the certificates its peers presented, and the revocation list.
//!
//! [`CertState`] is shared by the transport (which builds every new
//! handshake's TLS config from [`CertState::current`]), the API (status and
//! metrics) and the watcher ([`watch`]), which reloads the files on SIGHUP
//! and when their contents change. A reload swaps the identity for new
//! handshakes only: links that are up keep the connection they have. A file
//! that does not parse, names another node, does not chain to the CA or does
//! not match the key is refused with a log line and the node keeps what it
//! has.

pub mod revocation;
pub mod watch;

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use jobmesh_protocol::wire::{Frame, FrameV2, Revocations, CAP_REVOCATION};
use jobmesh_protocol::NodeId;
use rustls_pki_types::CertificateDer;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::TlsPaths;
use crate::state::Closing;
use crate::tls::NodeTls;
use revocation::RevokedSet;

/// The serial number of a certificate (DER), lowercase hex without
/// separators; `None` if it does not parse.
pub fn serial_of(der: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.raw_serial().iter().map(|b| format!("{b:02x}")).collect())
}

/// A certificate's not-before and not-after (Unix seconds).
pub fn validity_of(der: &CertificateDer<'_>) -> Option<(i64, i64)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some((cert.validity().not_before.timestamp(), cert.validity().not_after.timestamp()))
}

/// ISO-8601 UTC of a Unix time in seconds.
pub fn iso_seconds(t: i64) -> String {
    crate::api::views::iso_time(t.max(0) as u64 * 1000)
}

/// What a peer presented at its last handshake with this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    pub serial: String,
    /// Unix seconds.
    pub not_after: i64,
    /// Its serial is on this node's revocation list.
    pub revoked: bool,
}

/// A link that is up, as the certificate side needs to know it: to close it
/// when its peer's certificate is revoked, and to send it revocation lists.
struct LiveLink {
    peer: NodeId,
    serial: String,
    tx: mpsc::Sender<Frame>,
    close: CancellationToken,
    close_reason: Arc<Mutex<Option<Closing>>>,
    /// The capability bits of the peer's hello (0 until it arrives).
    caps: u64,
    /// The link's negotiated protocol version.
    version: u32,
}

/// Why a reload was attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP: reload even if the files look unchanged.
    Signal,
    /// The watcher saw the files' contents change.
    FileChange,
}

/// A function that puts a new identity to use (the transport's server
/// config); an error refuses the reload.
type Apply = Box<dyn Fn(&NodeTls) -> Result<(), String> + Send + Sync>;

/// The node's certificates while it runs (see the module docs).
pub struct CertState {
    node_id: NodeId,
    files: TlsPaths,
    current: RwLock<Arc<NodeTls>>,
    /// Contents hash of the three files last loaded or refused, so that an
    /// unchanged (or unchanged bad) file is not tried again every poll.
    seen: Mutex<u64>,
    revoked: Arc<RevokedSet>,
    links: Mutex<HashMap<u64, LiveLink>>,
    peers: Mutex<BTreeMap<NodeId, PeerCert>>,
    apply: Mutex<Vec<Apply>>,
    reloads: AtomicU64,
    reloads_refused: AtomicU64,
    /// The revocation list held, kept and read from the config.
    pub revocations: revocation::ListState,
}

impl std::fmt::Debug for CertState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertState").field("node_id", &self.node_id).finish_non_exhaustive()
    }
}

impl CertState {
    /// The state of a node that loaded `tls` from `files`.
    pub fn new(tls: NodeTls, files: TlsPaths, revocations: revocation::ListState) -> Arc<CertState> {
        let revoked = Arc::new(RevokedSet::default());
        let tls = tls.with_revoked(revoked.clone());
        let seen = fingerprint(&files).unwrap_or(0);
        Arc::new(CertState {
            node_id: tls.node_id().clone(),
            files,
            current: RwLock::new(Arc::new(tls)),
            seen: Mutex::new(seen),
            revoked,
            links: Mutex::new(HashMap::new()),
            peers: Mutex::new(BTreeMap::new()),
            apply: Mutex::new(Vec::new()),
            reloads: AtomicU64::new(0),
            reloads_refused: AtomicU64::new(0),
            revocations,
        })
    }

    /// The identity new handshakes use.
    pub fn current(&self) -> Arc<NodeTls> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The certificate file this node loads.
    pub fn cert_path(&self) -> &std::path::Path {
        &self.files.cert
    }

    /// The serials every handshake refuses.
    pub fn revoked(&self) -> &Arc<RevokedSet> {
        &self.revoked
    }

    /// Run `f` with every identity loaded from now on (before it is used).
    pub fn on_reload(&self, f: impl Fn(&NodeTls) -> Result<(), String> + Send + Sync + 'static) {
        self.apply.lock().unwrap_or_else(|p| p.into_inner()).push(Box::new(f));
    }

    /// Reloads that took effect and reloads refused since start.
    pub fn reload_counts(&self) -> (u64, u64) {
        (self.reloads.load(Ordering::Relaxed), self.reloads_refused.load(Ordering::Relaxed))
    }

    /// Load the TLS files again. Returns whether a new identity is in use.
    /// On SIGHUP the files are read even if they look unchanged; the
    /// watcher only reloads files whose contents changed.
    pub fn reload(&self, trigger: Trigger) -> bool {
        let Some(print) = fingerprint(&self.files) else {
            if trigger == Trigger::Signal {
                self.reloads_refused.fetch_add(1, Ordering::Relaxed);
                warn!(
                    "certificate reload refused: cannot read {}, {} or {}; keeping the current certificate",
                    self.files.cert.display(),
                    self.files.key.display(),
                    self.files.ca_cert.display()
                );
            }
            return false;
        };
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if trigger == Trigger::FileChange && *seen == print {
                return false;
            }
            *seen = print;
        }
        let old = self.current();
        let loaded = read_tls(&self.node_id, &self.files).and_then(|tls| {
            let tls = tls.with_revoked(self.revoked.clone());
            for f in self.apply.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                f(&tls)?;
            }
            Ok(tls)
        });
        match loaded {
            Ok(tls) => {
                if trigger == Trigger::FileChange && tls.serial() == old.serial() && tls.ca_certs() == old.ca_certs() {
                    // Touched or rewritten with the same contents in effect.
                    *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(tls);
                    return false;
                }
                info!(
                    trigger = ?trigger,
                    old_serial = %old.serial(),
                    serial = %tls.serial(),
                    not_after = %tls.cert_not_after().map(iso_seconds).unwrap_or_default(),
                    cas = tls.ca_certs().len(),
                    "reloaded the certificate, key and CA files; new handshakes use them, links that are up stay"
                );
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(tls);
                self.reloads.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                self.reloads_refused.fetch_add(1, Ordering::Relaxed);
                warn!(
                    trigger = ?trigger,
                    serial = %old.serial(),
                    "certificate reload refused: {e}; keeping the current certificate"
                );
                false
            }
        }
    }

    /// A link came up on a connection whose peer presented `certs`. The
    /// returned guard unregisters it when the session ends.
    pub(crate) fn link_up(
        self: &Arc<Self>,
        gen: u64,
        peer: &NodeId,
        certs: Option<&[CertificateDer<'static>]>,
        outbox: &crate::state::Outbox,
        version: u32,
    ) -> LinkGuard {
        let leaf = certs.and_then(|c| c.first());
        let serial = leaf.and_then(serial_of).unwrap_or_default();
        let not_after = leaf.and_then(validity_of).map(|v| v.1).unwrap_or(0);
        let revoked = self.revoked.contains(&serial);
        self.peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(peer.clone(), PeerCert { serial: serial.clone(), not_after, revoked });
        let link = LiveLink {
            peer: peer.clone(),
            serial,
            tx: outbox.tx.clone(),
            close: outbox.close.clone(),
            close_reason: outbox.close_reason.clone(),
            caps: 0,
            version,
        };
        if revoked {
            // The list arrived between the handshake and now.
            close_revoked(&link);
        }
        self.links.lock().unwrap_or_else(|p| p.into_inner()).insert(gen, link);
        LinkGuard { state: self.clone(), gen }
    }

    /// Close every live link whose peer's certificate is revoked now; mark
    /// the peers' certificates. Returns how many links were closed.
    fn enforce_revocations(&self) -> usize {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        for cert in peers.values_mut() {
            cert.revoked = self.revoked.contains(&cert.serial);
        }
        drop(peers);
        let links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        let mut closed = 0;
        for link in links.values() {
            if self.revoked.contains(&link.serial) && !link.close.is_cancelled() {
                close_revoked(link);
                closed += 1;
            }
        }
        closed
    }

    /// Offer a signed revocation list (from `from`: the config's file, the
    /// data dir, or the parent). It is checked against the CA certificates
    /// this node trusts, never against who sent it; a newer valid list
    /// replaces the one held, is kept in the data dir, closes live links to
    /// revoked certificates and goes on to the children. Returns whether it
    /// was taken.
    pub fn offer_list(&self, bytes: Vec<u8>, from: &str) -> bool {
        let tls = self.current();
        let list = match revocation::verify(&bytes, tls.ca_certs()) {
            Ok(l) => l,
            Err(e) => {
                self.revocations.count_refusal();
                warn!(from, "revocation list refused: {e}");
                return false;
            }
        };
        let issued_at_ms = list.issued_at_ms;
        let serials: std::collections::HashSet<String> = list.entries.iter().map(|e| e.serial.clone()).collect();
        match self.revocations.take_if_newer(revocation::Held { list, bytes: bytes.clone() }) {
            Ok(false) => return false,
            Ok(true) => {}
            Err(e) => {
                warn!(from, "revocation list not applied: cannot keep it in the data dir: {e}");
                return false;
            }
        }
        let n = serials.len();
        self.revoked.replace(serials);
        let closed = self.enforce_revocations();
        let mut sent = 0;
        for (child, tx) in self.children_with(CAP_REVOCATION) {
            if tx.try_send(revocations_frame(&bytes)).is_ok() {
                sent += 1;
            } else {
                // A full outbox: the child gets the list at its next link-up.
                warn!(peer = %child, "cannot queue the revocation list for the child now");
            }
        }
        info!(
            from,
            issued_at = %iso_seconds((issued_at_ms / 1000) as i64),
            serials = n,
            links_closed = closed,
            children = sent,
            "revocation list applied"
        );
        true
    }

    /// Look at a frame from `peer` on link `gen` before the engine does:
    /// note the hello's capabilities (and send a child that takes them the
    /// list held), and take revocation lists, which are not the engine's.
    /// Returns the frame if the engine should have it.
    pub(crate) fn intercept(&self, peer: &NodeId, gen: u64, frame: Frame) -> Option<Frame> {
        match frame {
            Frame::V1(jobmesh_protocol::wire::FrameV1::Hello(ref h)) => {
                let link = self.hello_seen(gen, h.capabilities);
                if let (Some((tx, version)), Some(held)) = (link, self.revocations.held()) {
                    if version >= 2 && h.capabilities & CAP_REVOCATION != 0 && self.node_id.is_parent_of(peer) {
                        let _ = tx.try_send(revocations_frame(&held.bytes));
                    }
                }
                Some(frame)
            }
            Frame::V2(FrameV2::Revocations(r)) => {
                if peer.is_parent_of(&self.node_id) {
                    self.offer_list(r.list, &format!("parent {peer}"));
                } else {
                    // Lists travel down the tree only.
                    warn!(%peer, "ignoring a revocation list from a child");
                }
                None
            }
            other => Some(other),
        }
    }

    /// The peer's hello on link `gen` carried `caps`.
    fn hello_seen(&self, gen: u64, caps: u64) -> Option<(mpsc::Sender<Frame>, u32)> {
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        let link = links.get_mut(&gen)?;
        link.caps = caps;
        Some((link.tx.clone(), link.version))
    }

    /// The outboxes of the live links to children whose hello carried
    /// `cap`, on protocol 2 or later.
    fn children_with(&self, cap: u64) -> Vec<(NodeId, mpsc::Sender<Frame>)> {
        let links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        links
            .values()
            .filter(|l| l.caps & cap != 0 && l.version >= 2 && self.node_id.is_parent_of(&l.peer))
            .map(|l| (l.peer.clone(), l.tx.clone()))
            .collect()
    }

    /// The peers' certificates as last presented, by peer.
    pub fn peer_certs(&self) -> BTreeMap<NodeId, PeerCert> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn revocations_frame(bytes: &[u8]) -> Frame {
    Frame::V2(FrameV2::Revocations(Revocations { list: bytes.to_vec() }))
}

fn close_revoked(link: &LiveLink) {
    warn!(peer = %link.peer, serial = %link.serial, "closing the link: the peer's certificate is revoked");
    *link.close_reason.lock().unwrap_or_else(|p| p.into_inner()) =
        Some(Closing::Refused(format!("the certificate of {} (serial {}) is revoked", link.peer, link.serial)));
    link.close.cancel();
}

/// Unregisters a link from [`CertState`] when its session ends.
pub(crate) struct LinkGuard {
    state: Arc<CertState>,
    gen: u64,
}

impl Drop for LinkGuard {
    fn drop(&mut self) {
        self.state.links.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.gen);
    }
}

/// A hash of the three files' contents; `None` if one cannot be read.
fn fingerprint(files: &TlsPaths) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in [&files.ca_cert, &files.cert, &files.key] {
        std::fs::read(p).ok()?.hash(&mut h);
    }
    Some(h.finish())
}

/// Read and check the three files, naming the file at fault.
fn read_tls(node_id: &NodeId, files: &TlsPaths) -> Result<NodeTls, String> {
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let (ca, cert, key) = (read(&files.ca_cert)?, read(&files.cert)?, read(&files.key)?);
    NodeTls::from_pem(node_id, &ca, &cert, &key).map_err(|e| {
        let path = match e.config_key() {
            "tls.ca_cert" => &files.ca_cert,
            "tls.key" => &files.key,
            _ => &files.cert,
        };
        format!("{}: {e}", path.display())
    })
}
