//! The node's QUIC transport: one quinn endpoint per node, on one UDP socket.
//!
//! A node dials its parent (if it has one) and, if it listens, accepts its
//! children. Both directions use mutual TLS ([`crate::tls`]): the peer's node
//! id is read from its certificate once the handshake is done, and that id is
//! what the link runs under. Each connection carries one bidirectional
//! stream, opened by the dialer; the dialer also writes first (its hello), so
//! the acceptor's `accept_bi` fires as soon as the child's hello arrives.
//! Frames on the stream are length-prefixed bincode ([`jobmesh_protocol::wire`]).
//!
//! Every link has its own tasks and its own bounded outbox, so a slow child
//! never blocks the others: when its outbox fills up, the node state closes
//! that link and the child resumes from its checkpoint when it comes back.
//! A lost parent is redialed at once and then every [`RETRY_UNREACHABLE`]
//! while it does not answer (each attempt waits [`CONNECT_TIMEOUT`]), so a
//! link is back within about a round trip of a cut healing, whatever the
//! cut's length; a parent that refuses (its store failing, a certificate
//! problem) is redialed with capped exponential backoff and jitter.
//!
//! Connections are closed with an application code from [`code`] and a
//! reason in words.

mod backoff;
pub mod failover;
mod link;
pub mod stats;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobmesh_protocol::NodeId;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{ConnectionError, Endpoint, TransportConfig, VarInt};
use rustls_pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, info_span, warn, Instrument};

pub use backoff::Backoff;
pub use failover::{FailoverState, FailoverView};
pub use link::REPLACED;
pub use stats::{TransportSnapshot, TransportStats};

use crate::certs::CertState;
use crate::config::{ParentConfig, PeerAddr};
use crate::state::NodeState;
use crate::tls::{NodeTls, TlsError, SERVER_NAME};

/// Application error codes used when closing a link's connection.
pub mod code {
    use quinn::VarInt;

    /// The node is shutting down.
    pub const SHUTDOWN: VarInt = VarInt::from_u32(0);
    /// The peer sent a malformed or oversized frame, or broke the stream
    /// protocol; nothing of it was stored.
    pub const PROTOCOL: VarInt = VarInt::from_u32(1);
    /// The engine refused the link or a batch (authorization, version,
    /// hello claiming another id, store failure).
    pub const REFUSED: VarInt = VarInt::from_u32(2);
    /// The node closed the link (outbox overflow, replaced by a newer
    /// connection from the same peer).
    pub const CLOSED_BY_NODE: VarInt = VarInt::from_u32(3);
    /// The connection opened no stream in time.
    pub const NO_STREAM: VarInt = VarInt::from_u32(4);
    /// Too many connections at once.
    pub const BUSY: VarInt = VarInt::from_u32(5);

    /// The code's name, for logs.
    pub fn name(code: VarInt) -> &'static str {
        match code.into_inner() {
            0 => "shutdown",
            1 => "protocol error",
            2 => "refused",
            3 => "closed by node",
            4 => "no stream",
            5 => "busy",
            _ => "unknown code",
        }
    }
}

/// Keep-alive: well under the idle timeout (a ping a second is a few dozen
/// bytes per second per link).
pub const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// A connection that hears nothing for this long is dead. Short, because
/// after a longer cut QUIC's retransmit timer has backed off to many
/// seconds, while a fresh connection recovers in one round trip: it is
/// cheaper to drop a quiet connection and redial than to wait for it.
pub const MAX_IDLE: Duration = Duration::from_secs(5);
/// Longest a dial to the parent may take before it counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest a DNS lookup of the parent's name may take.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between dials while the parent does not answer at all (a cut or a
/// parent that is down): with the attempt's own timeout, one attempt every
/// few seconds, each a handful of small packets.
pub const RETRY_UNREACHABLE: Duration = Duration::from_millis(300);
/// The round trip assumed before one is measured: quinn's default (333 ms)
/// spaces the first handshake retransmits a second apart, which is most of
/// the wait after a heal.
const INITIAL_RTT: Duration = Duration::from_millis(100);
/// Longest an accepted connection may take to open its stream.
pub const STREAM_OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// First delay before redialing the parent.
pub const RECONNECT_INITIAL: Duration = Duration::from_millis(200);
/// A link that held this long and was not refused is redialed at once.
const QUICK_REDIAL_AFTER: Duration = Duration::from_secs(1);
/// A link that held this long resets the backoff.
pub const STABLE_LINK: Duration = Duration::from_secs(10);
/// Most connections (links and handshakes) a node accepts at once. The real
/// tree's widest fan-out is a few dozen; this only bounds a flood.
pub const MAX_ACCEPTED: usize = 4096;
/// Largest stream receive window, bytes: a full frame in flight.
const STREAM_WINDOW: u32 = 8 * 1024 * 1024;

/// Why the transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The TLS configuration was refused.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// quinn found no usable initial cipher suite (a build problem).
    #[error("QUIC TLS setup failed: {0}")]
    Crypto(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    /// The UDP socket could not be used.
    #[error("QUIC endpoint on {addr}: {source}")]
    Endpoint { addr: String, source: std::io::Error },
}

/// What every link task of one node shares.
pub(crate) struct LinkCtx {
    state: Arc<NodeState>,
    /// The identity for new handshakes, peers' certificates, revocations.
    certs: Arc<CertState>,
    stats: Arc<TransportStats>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    generation: AtomicU64,
    accepted: AtomicUsize,
    /// The parent link's state and the fallback in use (failover loop, API).
    failover: Arc<FailoverState>,
}

impl LinkCtx {
    fn next_gen(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// The transport of one running node.
pub struct Transport {
    endpoint: Endpoint,
    ctx: Arc<LinkCtx>,
}

/// Settings the transport takes from the config.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// Accept children (the config has `listen`).
    pub accept: bool,
    pub parent: Option<ParentConfig>,
    /// Cap of the reconnect backoff.
    pub reconnect_max: Duration,
    /// Ancestors to dial, in order, while the parent link is down for
    /// `failover_after` (see [`failover`]).
    pub fallbacks: Vec<ParentConfig>,
    pub failover_after: Duration,
    /// Where the failover loop shows the fallback in use.
    pub failover: Arc<FailoverState>,
}

fn transport_config(acceptor: bool) -> TransportConfig {
    let mut t = TransportConfig::default();
    t.keep_alive_interval(Some(KEEP_ALIVE));
    t.initial_rtt(INITIAL_RTT);
    t.max_idle_timeout(Some(quinn::IdleTimeout::from(VarInt::from_u32(MAX_IDLE.as_millis() as u32))));
    // One stream per connection, opened by the dialer: the acceptor allows
    // one, the dialer none.
    t.max_concurrent_bidi_streams(VarInt::from_u32(u32::from(acceptor)));
    t.max_concurrent_uni_streams(VarInt::from_u32(0));
    t.stream_receive_window(VarInt::from_u32(STREAM_WINDOW));
    t.receive_window(VarInt::from_u32(2 * STREAM_WINDOW));
    t.send_window(2 * u64::from(STREAM_WINDOW));
    t
}

/// quinn's server configuration: mutual TLS accepting direct children.
pub fn server_config(tls: &NodeTls) -> Result<quinn::ServerConfig, TransportError> {
    let crypto = QuicServerConfig::try_from(Arc::new(tls.server_config()?))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    cfg.transport_config(Arc::new(transport_config(true)));
    cfg.max_incoming(MAX_ACCEPTED);
    Ok(cfg)
}

/// quinn's client configuration: mutual TLS accepting only `parent`.
pub fn client_config(tls: &NodeTls, parent: &NodeId) -> Result<quinn::ClientConfig, TransportError> {
    let crypto = QuicClientConfig::try_from(Arc::new(tls.client_config(parent)?))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(Arc::new(transport_config(false)));
    Ok(cfg)
}

impl Transport {
    /// Open the endpoint on `udp` and spawn the accept loop (if `accept`)
    /// and the dial loop (if there is a parent) on `tracker`. The tasks stop
    /// when `shutdown` is cancelled; see [`Transport::close`].
    pub fn start(
        udp: std::net::UdpSocket,
        certs: &Arc<CertState>,
        settings: TransportSettings,
        state: Arc<NodeState>,
        stats: Arc<TransportStats>,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Result<Transport, TransportError> {
        let addr = udp.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
        let endpoint_err = |source| TransportError::Endpoint { addr: addr.clone(), source };
        let tls = certs.current();
        let server = if settings.accept { Some(server_config(&tls)?) } else { None };
        // Checked here so that a config rustls refuses stops the start; the
        // dial loop builds a new one per attempt from the current identity.
        if let Some(p) = &settings.parent {
            client_config(&tls, &p.node_id)?;
        }
        let fallbacks: Vec<ParentConfig> = settings.fallbacks.clone();
        udp.set_nonblocking(true).map_err(endpoint_err)?;
        let runtime = quinn::default_runtime()
            .ok_or_else(|| endpoint_err(std::io::Error::other("no async runtime found for quinn")))?;
        let (reset_key, cid_key) = tls.quic_endpoint_keys();
        let mut endpoint_cfg = quinn::EndpointConfig::new(Arc::new(reset_key));
        endpoint_cfg.cid_generator(move || Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key)));
        let endpoint = Endpoint::new(endpoint_cfg, server, udp, runtime).map_err(endpoint_err)?;
        if settings.accept {
            // A reloaded identity serves every handshake from then on;
            // connections already up keep theirs.
            let endpoint = endpoint.clone();
            certs.on_reload(move |tls| {
                let cfg = server_config(tls).map_err(|e| e.to_string())?;
                endpoint.set_server_config(Some(cfg));
                Ok(())
            });
        }
        let ctx = Arc::new(LinkCtx {
            state,
            certs: certs.clone(),
            stats,
            shutdown,
            tracker: tracker.clone(),
            generation: AtomicU64::new(0),
            accepted: AtomicUsize::new(0),
            failover: settings.failover.clone(),
        });
        if settings.accept {
            tracker.spawn(accept_loop(endpoint.clone(), ctx.clone()).in_current_span());
        }
        if settings.parent.is_some() && !fallbacks.is_empty() {
            let fo = failover::failover_loop(
                endpoint.clone(),
                fallbacks,
                settings.failover_after,
                settings.reconnect_max,
                ctx.clone(),
            );
            tracker.spawn(fo.in_current_span());
        }
        if let Some(parent) = settings.parent {
            tracker.spawn(dial_loop(endpoint.clone(), parent, settings.reconnect_max, ctx.clone()).in_current_span());
        }
        Ok(Transport { endpoint, ctx })
    }

    /// The UDP address the endpoint is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// The counters this transport bumps.
    pub fn stats(&self) -> &Arc<TransportStats> {
        &self.ctx.stats
    }

    /// Last step of shutdown, once the link tasks have ended: close whatever
    /// connection is left (handshakes in progress) with code 0 "shutdown"
    /// and give the close frames a moment to leave.
    pub async fn close(self) {
        self.endpoint.close(code::SHUTDOWN, b"shutdown");
        if tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await.is_err() {
            debug!("QUIC endpoint did not drain within 1 s");
        }
    }
}

/// The peer's node id, from the certificate its handshake presented.
fn peer_of(conn: &quinn::Connection) -> Result<NodeId, String> {
    let identity = conn.peer_identity().ok_or("the peer presented no certificate")?;
    let certs = identity
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| "the peer identity is not a certificate chain".to_string())?;
    crate::tls::peer_node_id(&certs).map_err(|e| e.to_string())
}

/// A connection counted against [`MAX_ACCEPTED`] while it lives.
struct AcceptedGuard(Arc<LinkCtx>);

impl Drop for AcceptedGuard {
    fn drop(&mut self) {
        self.0.accepted.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn accept_loop(endpoint: Endpoint, ctx: Arc<LinkCtx>) {
    info!(listen = ?endpoint.local_addr().ok(), "accepting children");
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => break,
            },
            _ = ctx.shutdown.cancelled() => break,
        };
        if ctx.accepted.fetch_add(1, Ordering::Relaxed) >= MAX_ACCEPTED {
            ctx.accepted.fetch_sub(1, Ordering::Relaxed);
            warn!(remote = %incoming.remote_address(), "refusing a connection: {MAX_ACCEPTED} connections already");
            incoming.refuse();
            continue;
        }
        let guard = AcceptedGuard(ctx.clone());
        ctx.tracker.spawn(async move { accept_one(incoming, &guard.0).await }.in_current_span());
    }
    debug!("stopped accepting children");
}

async fn accept_one(incoming: quinn::Incoming, ctx: &LinkCtx) {
    let remote = incoming.remote_address();
    let conn = tokio::select! {
        c = incoming => c,
        _ = ctx.shutdown.cancelled() => return,
    };
    let conn = match conn {
        Ok(c) => c,
        Err(e) => {
            ctx.stats.handshake_failure();
            warn!(%remote, error = %link::describe_close(&e), "handshake with a connecting node failed");
            return;
        }
    };
    // A child, or a descendant further down attaching directly while its
    // own parent is down (failover): the engine treats it as a child.
    let peer = match peer_of(&conn) {
        Ok(p) if ctx.state.me.is_ancestor_of(&p) => {
            if !ctx.state.me.is_parent_of(&p) {
                info!(%remote, peer = %p, "a descendant attaches directly (its parent link is down)");
            }
            p
        }
        Ok(p) => {
            // The verifier already checks this; a second look costs nothing.
            ctx.stats.handshake_failure();
            warn!(%remote, peer = %p, "refusing a connection from a node outside this node's subtree");
            conn.close(code::REFUSED, b"not in this node's subtree");
            return;
        }
        Err(e) => {
            ctx.stats.handshake_failure();
            warn!(%remote, error = %e, "refusing a connection without a node id");
            conn.close(code::REFUSED, e.as_bytes());
            return;
        }
    };
    let span = info_span!("link", peer = %peer);
    async {
        // The child opens the stream and writes its hello first.
        let stream = tokio::select! {
            s = tokio::time::timeout(STREAM_OPEN_TIMEOUT, conn.accept_bi()) => s,
            _ = ctx.shutdown.cancelled() => {
                conn.close(code::SHUTDOWN, b"shutdown");
                return;
            }
        };
        match stream {
            Ok(Ok((send, recv))) => {
                link::run(ctx, conn, peer, send, recv).await;
            }
            Ok(Err(e)) => {
                debug!(%remote, error = %link::describe_close(&e), "connection ended before its stream opened")
            }
            Err(_) => {
                warn!(%remote, "the child opened no stream within {STREAM_OPEN_TIMEOUT:?}; closing");
                conn.close(code::NO_STREAM, b"no stream opened");
            }
        }
    }
    .instrument(span)
    .await
}

async fn dial_loop(endpoint: Endpoint, parent: ParentConfig, reconnect_max: Duration, ctx: Arc<LinkCtx>) {
    let span = info_span!("link", peer = %parent.node_id);
    async {
        let mut backoff = Backoff::new(RECONNECT_INITIAL, reconnect_max);
        // Failures repeat every few seconds while the parent is away: log
        // the first of a kind at warn, repeats at debug.
        let mut last_failure: Option<String> = None;
        let mut attempt = 0usize;
        while !ctx.shutdown.is_cancelled() {
            ctx.stats.dial_attempt();
            attempt = attempt.wrapping_add(1);
            let delay = match dial_once(&endpoint, &parent, attempt, &ctx, DialRole::Parent).await {
                Dial::Shutdown => return,
                Dial::Linked { held, refused } => {
                    last_failure = None;
                    if held >= STABLE_LINK {
                        backoff.reset();
                    }
                    if refused || held < QUICK_REDIAL_AFTER {
                        backoff.next_delay()
                    } else {
                        // Lost or stalled after working a while: the parent
                        // was there a moment ago; try again at once.
                        Duration::ZERO
                    }
                }
                Dial::Failed { what, handshake } => {
                    ctx.stats.set_parent_error(Some(what.clone()));
                    if handshake {
                        ctx.stats.handshake_failure();
                    } else {
                        ctx.stats.connect_failure();
                    }
                    if last_failure.as_deref() == Some(what.as_str()) {
                        debug!(addr = %parent.addr, error = %what, "still cannot reach the parent");
                    } else {
                        warn!(addr = %parent.addr, error = %what, "cannot reach the parent; retrying");
                        last_failure = Some(what);
                    }
                    if handshake {
                        backoff.next_delay()
                    } else {
                        // No answer at all: the attempt already waited its
                        // timeout, so retry soon; nothing on the parent's
                        // side is loaded by it.
                        RETRY_UNREACHABLE
                    }
                }
            };
            debug!(delay_ms = delay.as_millis() as u64, "redialing the parent");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = ctx.shutdown.cancelled() => return,
            }
        }
    }
    .instrument(span)
    .await
}

/// "; this node's certificate (serial S) expired at T" when it has.
fn own_expiry_note(certs: &CertState) -> String {
    let tls = certs.current();
    match tls.cert_not_after() {
        Some(t) if t <= (crate::state::now_ms() / 1000) as i64 => format!(
            "; this node's certificate {} (serial {}) expired at {}",
            certs.cert_path().display(),
            tls.serial(),
            crate::certs::iso_seconds(t)
        ),
        _ => String::new(),
    }
}

enum Dial {
    Shutdown,
    Linked { held: Duration, refused: bool },
    Failed { what: String, handshake: bool },
}

/// The parent's address for this attempt: a DNS name is looked up again on
/// every dial, and successive attempts rotate through its addresses (of a
/// family this endpoint can reach), so one dead address does not hide the
/// others.
async fn resolve(endpoint: &Endpoint, addr: &PeerAddr, attempt: usize) -> Result<SocketAddr, String> {
    let (host, port) = match addr {
        PeerAddr::Ip(a) => return Ok(*a),
        PeerAddr::Name { host, port } => (host.as_str(), *port),
    };
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| format!("no answer from DNS for {host} within {RESOLVE_TIMEOUT:?}"))?
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    let v6 = endpoint.local_addr().map(|a| a.is_ipv6()).unwrap_or(false);
    let usable: Vec<SocketAddr> = found.filter(|a| v6 || a.is_ipv4()).collect();
    if usable.is_empty() {
        return Err(format!("{host} resolves to no address of this socket's family"));
    }
    Ok(usable[attempt % usable.len()])
}

/// Whom a dial is for: the parent (its link's state feeds the failover
/// loop), or a fallback (whose link closes once the parent is back).
enum DialRole<'a> {
    Parent,
    Fallback(&'a failover::Return<'a>),
}

async fn dial_once(
    endpoint: &Endpoint,
    parent: &ParentConfig,
    attempt: usize,
    ctx: &LinkCtx,
    role: DialRole<'_>,
) -> Dial {
    let addr = tokio::select! {
        a = resolve(endpoint, &parent.addr, attempt) => a,
        _ = ctx.shutdown.cancelled() => return Dial::Shutdown,
    };
    let addr = match addr {
        Ok(a) => a,
        Err(what) => return Dial::Failed { what, handshake: false },
    };
    // Built per attempt, so that a reloaded certificate, key or CA bundle is
    // what the next handshake presents and checks against.
    let client = match client_config(&ctx.certs.current(), &parent.node_id) {
        Ok(c) => c,
        Err(e) => return Dial::Failed { what: e.to_string(), handshake: true },
    };
    let connecting = match endpoint.connect_with(client, addr, SERVER_NAME) {
        Ok(c) => c,
        Err(e) => return Dial::Failed { what: e.to_string(), handshake: false },
    };
    let conn = tokio::select! {
        c = tokio::time::timeout(CONNECT_TIMEOUT, connecting) => c,
        _ = ctx.shutdown.cancelled() => return Dial::Shutdown,
    };
    let conn = match conn {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            let handshake = !matches!(e, ConnectionError::TimedOut | ConnectionError::Reset);
            let mut what = link::describe_close(&e);
            if handshake {
                // The parent's alert does not say why; if it is our own
                // certificate's age, say which one and since when.
                what += &own_expiry_note(&ctx.certs);
            }
            return Dial::Failed { what, handshake };
        }
        Err(_) => return Dial::Failed { what: format!("no answer within {CONNECT_TIMEOUT:?}"), handshake: false },
    };
    match peer_of(&conn) {
        Ok(p) if p == parent.node_id => {}
        Ok(p) => {
            conn.close(code::REFUSED, b"not the configured peer");
            return Dial::Failed {
                what: format!("the peer's certificate is for {p}, not {}", parent.node_id),
                handshake: true,
            };
        }
        Err(e) => {
            conn.close(code::REFUSED, e.as_bytes());
            return Dial::Failed { what: e, handshake: true };
        }
    }
    let (send, recv) = match conn.open_bi().await {
        Ok(s) => s,
        Err(e) => return Dial::Failed { what: link::describe_close(&e), handshake: false },
    };
    let started = Instant::now();
    let ended = match role {
        DialRole::Parent => {
            ctx.stats.set_parent_error(None);
            ctx.failover.watch.up();
            let ended = link::run(ctx, conn, parent.node_id.clone(), send, recv).await;
            ctx.failover.watch.down();
            ended
        }
        DialRole::Fallback(ret) => {
            let watch = conn.clone();
            let session = link::run(ctx, conn, parent.node_id.clone(), send, recv);
            tokio::pin!(session);
            tokio::select! {
                ended = &mut session => ended,
                _ = ret.close_on_return(&watch, parent) => session.await,
            }
        }
    };
    if ctx.shutdown.is_cancelled() {
        return Dial::Shutdown;
    }
    Dial::Linked { held: started.elapsed(), refused: ended == link::Ended::RefusedByPeer }
}
