//! A fault proxy for one link: an unprivileged UDP relay between a child and
//! its parent that can drop, delay (with jitter), duplicate and reorder
//! datagrams, blackhole the link (cut) and heal it, and flap on a schedule.
//!
//! The child's config points `[parent].addr` at the proxy's listen address;
//! the proxy forwards each datagram to the parent's real address from a
//! socket of its own (one per client address, as a NAT would), and relays the
//! parent's replies back to the client address they belong to. QUIC needs
//! nothing more: the parent checks the child's certificate, never its source
//! address.
//!
//! Faults apply to both directions and are changed at any time through a
//! [`ProxyHandle`] (in process) or, for a proxy running in another network
//! namespace, through a control socket ([`serve_control`], [`RemoteProxy`]).
//! The random choices come from a seeded generator, so a fault *schedule*
//! replays exactly; which datagram a loss hits still depends on timing.
//!
//! Limits: at most [`MAX_SESSIONS`] client addresses, [`MAX_QUEUED`] delayed
//! datagrams per proxy (more are dropped and counted, as a router queue
//! would), datagrams of at most [`MAX_DATAGRAM`] bytes.

use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UdpSocket, UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::wait::Rng;

/// Largest datagram relayed (QUIC never sends more than 64 KiB).
pub const MAX_DATAGRAM: usize = 65_535;
/// Most client addresses one proxy relays for (a child that restarts keeps
/// its address; this only bounds a flood).
pub const MAX_SESSIONS: usize = 256;
/// Most datagrams waiting for their delivery time, per proxy.
pub const MAX_QUEUED: usize = 65_536;
/// Extra hold of a datagram picked for reordering, on top of its delay:
/// long enough for the datagrams behind it to overtake it.
pub const REORDER_HOLD: Duration = Duration::from_millis(15);

/// An up/down schedule: the link is up for `up_ms`, then down for
/// `down_ms`, repeating, counted from the moment the schedule was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flap {
    pub up_ms: u64,
    pub down_ms: u64,
}

/// What the proxy does to each datagram, in both directions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Probability that a datagram is dropped.
    pub loss: f64,
    /// Probability that a datagram is sent twice.
    pub dup: f64,
    /// Probability that a datagram is held back so that later ones pass it.
    pub reorder: f64,
    /// One-way delay.
    pub delay_ms: u64,
    /// Each datagram's delay is drawn uniformly from `delay ± jitter`.
    pub jitter_ms: u64,
    /// Blackhole: every datagram is dropped, including those already
    /// delayed in the proxy when the cut happens.
    pub cut: bool,
    /// Up/down schedule; while down the link behaves as cut.
    pub flap: Option<Flap>,
}

impl Faults {
    /// A clean link.
    pub fn none() -> Faults {
        Faults::default()
    }

    /// `loss`, `dup` and `reorder` probabilities, nothing else.
    pub fn lossy(loss: f64, dup: f64, reorder: f64) -> Faults {
        Faults { loss, dup, reorder, ..Faults::default() }
    }

    /// A long link: `rtt_ms` round trip (half each way), jitter, loss.
    pub fn long_haul(rtt_ms: u64, jitter_ms: u64, loss: f64) -> Faults {
        Faults { loss, delay_ms: rtt_ms / 2, jitter_ms, ..Faults::default() }
    }

    /// Short description for reports: `loss=30% dup=10% delay=100±10ms`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.cut {
            parts.push("cut".to_string());
        }
        if let Some(f) = self.flap {
            parts.push(format!("flap up {}ms/down {}ms", f.up_ms, f.down_ms));
        }
        for (name, p) in [("loss", self.loss), ("dup", self.dup), ("reorder", self.reorder)] {
            if p > 0.0 {
                parts.push(format!("{name}={:.0}%", p * 100.0));
            }
        }
        if self.delay_ms > 0 || self.jitter_ms > 0 {
            parts.push(format!("delay={}±{}ms", self.delay_ms, self.jitter_ms));
        }
        if parts.is_empty() {
            "clean".into()
        } else {
            parts.join(" ")
        }
    }
}

/// Counters of one proxy, both directions together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyStats {
    /// Datagrams from the child towards the parent, as received.
    pub received_up: u64,
    /// Datagrams from the parent towards the child, as received.
    pub received_down: u64,
    /// Datagrams sent on (copies included).
    pub sent: u64,
    /// Dropped by the loss probability.
    pub lost: u64,
    /// Dropped because the link was cut or flapped down.
    pub blackholed: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Held back for reordering.
    pub reordered: u64,
    /// Dropped because the delay queue was full.
    pub overflow: u64,
    /// Send errors (e.g. the link's interface is down).
    pub send_errors: u64,
}

#[derive(Default)]
struct Counters {
    received_up: AtomicU64,
    received_down: AtomicU64,
    sent: AtomicU64,
    lost: AtomicU64,
    blackholed: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    overflow: AtomicU64,
    send_errors: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct Settings {
    faults: Faults,
    /// When the current flap schedule started.
    flap_epoch: Instant,
    rng: Rng,
}

struct Shared {
    settings: Mutex<Settings>,
    counters: Counters,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Is the link blackholed at `now` (cut, or in a flap's down phase)?
    fn down_at(s: &Settings, now: Instant) -> bool {
        if s.faults.cut {
            return true;
        }
        match s.faults.flap {
            Some(f) if f.up_ms + f.down_ms > 0 => {
                let period = f.up_ms + f.down_ms;
                let phase = now.saturating_duration_since(s.flap_epoch).as_millis() as u64 % period;
                phase >= f.up_ms
            }
            _ => false,
        }
    }

    fn is_down(&self) -> bool {
        Shared::down_at(&self.lock(), Instant::now())
    }

    /// The delays of the copies to send of one datagram (empty: drop it).
    fn decide(&self) -> Vec<Duration> {
        let mut s = self.lock();
        let now = Instant::now();
        if Shared::down_at(&s, now) {
            bump(&self.counters.blackholed);
            return Vec::new();
        }
        let f = s.faults.clone();
        if f.loss > 0.0 && unit(&mut s.rng) < f.loss {
            bump(&self.counters.lost);
            return Vec::new();
        }
        let copies = if f.dup > 0.0 && unit(&mut s.rng) < f.dup {
            bump(&self.counters.duplicated);
            2
        } else {
            1
        };
        (0..copies)
            .map(|_| {
                let mut ms = f.delay_ms as i64;
                if f.jitter_ms > 0 {
                    ms += s.rng.range(0, 2 * f.jitter_ms + 1) as i64 - f.jitter_ms as i64;
                }
                let mut d = Duration::from_millis(ms.max(0) as u64);
                if f.reorder > 0.0 && unit(&mut s.rng) < f.reorder {
                    bump(&self.counters.reordered);
                    d += REORDER_HOLD + Duration::from_millis(2 * f.jitter_ms + s.rng.range(0, 10));
                }
                d
            })
            .collect()
    }
}

/// Uniform in `[0, 1)`.
fn unit(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Changes a running proxy's faults; cheap to clone.
#[derive(Clone)]
pub struct ProxyHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyHandle").field("faults", &self.faults()).finish()
    }
}

impl ProxyHandle {
    /// Replace every fault setting at once. A flap schedule given here
    /// starts now.
    pub fn set(&self, faults: Faults) {
        let mut s = self.shared.lock();
        if faults.flap != s.faults.flap {
            s.flap_epoch = Instant::now();
        }
        s.faults = faults;
    }

    /// Change some settings.
    pub fn update(&self, change: impl FnOnce(&mut Faults)) {
        let mut f = self.faults();
        change(&mut f);
        self.set(f);
    }

    pub fn faults(&self) -> Faults {
        self.shared.lock().faults.clone()
    }

    /// Blackhole the link.
    pub fn cut(&self) {
        self.update(|f| f.cut = true);
    }

    /// Undo a cut and stop flapping (loss, delay and the rest stay).
    pub fn heal(&self) {
        self.update(|f| {
            f.cut = false;
            f.flap = None;
        });
    }

    /// Flap: up `up`, down `down`, repeating from now.
    pub fn flap(&self, up: Duration, down: Duration) {
        self.update(|f| f.flap = Some(Flap { up_ms: up.as_millis() as u64, down_ms: down.as_millis() as u64 }));
    }

    /// Blackholed right now?
    pub fn is_down(&self) -> bool {
        self.shared.is_down()
    }

    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProxyStats {
            received_up: g(&c.received_up),
            received_down: g(&c.received_down),
            sent: g(&c.sent),
            lost: g(&c.lost),
            blackholed: g(&c.blackholed),
            duplicated: g(&c.duplicated),
            reordered: g(&c.reordered),
            overflow: g(&c.overflow),
            send_errors: g(&c.send_errors),
        }
    }
}

/// One datagram waiting for its delivery time.
struct Pending {
    due: Instant,
    seq: u64,
    data: Vec<u8>,
    via: Arc<UdpSocket>,
    to: SocketAddr,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    /// Reversed, so that `BinaryHeap` pops the earliest first.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.due, o.seq).cmp(&(self.due, self.seq))
    }
}

/// Sends datagrams through the fault pipeline: immediately when no delay is
/// drawn, else through the delay queue.
#[derive(Clone)]
struct Relay {
    shared: Arc<Shared>,
    queue: mpsc::Sender<Pending>,
    seq: Arc<AtomicU64>,
}

impl Relay {
    async fn forward(&self, data: &[u8], via: &Arc<UdpSocket>, to: SocketAddr) {
        for delay in self.shared.decide() {
            if delay.is_zero() {
                send(&self.shared, via, data, to).await;
                continue;
            }
            let p = Pending {
                due: Instant::now() + delay,
                seq: self.seq.fetch_add(1, Ordering::Relaxed),
                data: data.to_vec(),
                via: via.clone(),
                to,
            };
            if self.queue.try_send(p).is_err() {
                bump(&self.shared.counters.overflow);
            }
        }
    }
}

async fn send(shared: &Shared, via: &UdpSocket, data: &[u8], to: SocketAddr) {
    // A datagram still in the proxy when the link goes down is lost with it.
    if shared.is_down() {
        bump(&shared.counters.blackholed);
        return;
    }
    match via.send_to(data, to).await {
        Ok(_) => bump(&shared.counters.sent),
        // An unreachable network (interface down) or a full buffer loses the
        // datagram, as it would on a real link; the relay goes on.
        Err(_) => bump(&shared.counters.send_errors),
    }
}

/// The delay queue: holds datagrams until their time, earliest first.
async fn delay_loop(shared: Arc<Shared>, mut rx: mpsc::Receiver<Pending>) {
    let mut heap: BinaryHeap<Pending> = BinaryHeap::new();
    loop {
        let next_due = heap.peek().map(|p| p.due);
        tokio::select! {
            got = rx.recv() => match got {
                Some(p) => heap.push(p),
                None => return,
            },
            _ = async {
                match next_due {
                    Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                    None => std::future::pending::<()>().await,
                }
            } => {
                let now = Instant::now();
                while heap.peek().is_some_and(|p| p.due <= now) {
                    if let Some(p) = heap.pop() {
                        send(&shared, &p.via, &p.data, p.to).await;
                    }
                }
            }
        }
    }
}

/// A running proxy; dropping it stops it.
pub struct Proxy {
    listen: SocketAddr,
    upstream: SocketAddr,
    handle: ProxyHandle,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").field("listen", &self.listen).field("upstream", &self.upstream).finish()
    }
}

fn unspecified_like(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

impl Proxy {
    /// Bind `listen` (port 0 for any) and relay to `upstream`, with a clean
    /// link to begin with. Must be called inside a tokio runtime.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr, seed: u64) -> io::Result<Proxy> {
        let sock = Arc::new(UdpSocket::bind(listen).await?);
        let listen = sock.local_addr()?;
        let shared = Arc::new(Shared {
            settings: Mutex::new(Settings { faults: Faults::none(), flap_epoch: Instant::now(), rng: Rng::new(seed) }),
            counters: Counters::default(),
        });
        let (tx, rx) = mpsc::channel(MAX_QUEUED);
        let relay = Relay { shared: shared.clone(), queue: tx, seq: Arc::new(AtomicU64::new(0)) };
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let delay = tokio::spawn(delay_loop(shared.clone(), rx));
        let main = tokio::spawn(accept_loop(sock, upstream, relay, tasks.clone()));
        {
            let mut t = tasks.lock().unwrap_or_else(|p| p.into_inner());
            t.push(delay);
            t.push(main);
        }
        Ok(Proxy { listen, upstream, handle: ProxyHandle { shared }, tasks })
    }

    /// Where the child sends (its `[parent].addr`).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The parent's real address.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    pub fn handle(&self) -> ProxyHandle {
        self.handle.clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for t in self.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            t.abort();
        }
    }
}

/// Datagrams from clients: open a session per client address and forward.
async fn accept_loop(sock: Arc<UdpSocket>, upstream: SocketAddr, relay: Relay, tasks: Arc<Mutex<Vec<JoinHandle<()>>>>) {
    let mut sessions: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        // Errors on an unconnected UDP socket (an ICMP unreachable reported
        // late) concern one earlier datagram, not the socket: go on.
        let Ok((n, from)) = sock.recv_from(&mut buf).await else { continue };
        bump(&relay.shared.counters.received_up);
        let up = match sessions.get(&from) {
            Some(s) => s.clone(),
            None => {
                if sessions.len() >= MAX_SESSIONS {
                    continue;
                }
                let Ok(s) = UdpSocket::bind(unspecified_like(upstream)).await else { continue };
                let s = Arc::new(s);
                sessions.insert(from, s.clone());
                let t = tokio::spawn(reply_loop(s.clone(), sock.clone(), from, relay.clone()));
                tasks.lock().unwrap_or_else(|p| p.into_inner()).push(t);
                s
            }
        };
        relay.forward(&buf[..n], &up, upstream).await;
    }
}

/// Datagrams from the parent to one client's session: relay them back.
async fn reply_loop(up: Arc<UdpSocket>, back: Arc<UdpSocket>, client: SocketAddr, relay: Relay) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((n, _)) = up.recv_from(&mut buf).await else { continue };
        bump(&relay.shared.counters.received_down);
        relay.forward(&buf[..n], &back, client).await;
    }
}

/// A request on a proxy's control socket (one JSON line per connection).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControlRequest {
    /// Replace the faults.
    Set(Faults),
    /// Only read the counters.
    Stats,
}

/// The answer: the faults now in force and the counters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlReply {
    pub faults: Faults,
    pub stats: ProxyStats,
}

/// Serve `handle` on a Unix socket at `path` (for a proxy that runs inside
/// another network namespace: a socket file is reachable from every
/// namespace that shares the file system). Runs until the task is dropped.
pub async fn serve_control(path: &Path, handle: ProxyHandle) -> io::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    loop {
        let (stream, _) = listener.accept().await?;
        let handle = handle.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut line = String::new();
            let mut r = BufReader::new(r);
            if r.read_line(&mut line).await.is_err() {
                return;
            }
            let reply = match serde_json::from_str::<ControlRequest>(&line) {
                Ok(ControlRequest::Set(f)) => {
                    handle.set(f);
                    serde_json::to_string(&ControlReply { faults: handle.faults(), stats: handle.stats() })
                }
                Ok(ControlRequest::Stats) => {
                    serde_json::to_string(&ControlReply { faults: handle.faults(), stats: handle.stats() })
                }
                Err(e) => Ok(serde_json::json!({ "error": e.to_string() }).to_string()),
            };
            if let Ok(text) = reply {
                let _ = w.write_all(format!("{text}\n").as_bytes()).await;
            }
        });
    }
}

/// A proxy running elsewhere, controlled through its Unix socket.
#[derive(Debug, Clone)]
pub struct RemoteProxy {
    pub control: PathBuf,
}

impl RemoteProxy {
    async fn call(&self, req: &ControlRequest) -> Result<ControlReply, String> {
        let what = format!("proxy control {}", self.control.display());
        let go = async {
            let mut s = UnixStream::connect(&self.control).await.map_err(|e| format!("{what}: connect: {e}"))?;
            let text = serde_json::to_string(req).map_err(|e| format!("{what}: encode: {e}"))?;
            s.write_all(format!("{text}\n").as_bytes()).await.map_err(|e| format!("{what}: write: {e}"))?;
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line).await.map_err(|e| format!("{what}: read: {e}"))?;
            serde_json::from_str::<ControlReply>(&line).map_err(|e| format!("{what}: answer {line:?}: {e}"))
        };
        tokio::time::timeout(Duration::from_secs(5), go).await.map_err(|_| format!("{what}: no answer in 5 s"))?
    }

    /// Replace the faults.
    pub async fn set(&self, faults: Faults) -> Result<ControlReply, String> {
        self.call(&ControlRequest::Set(faults)).await
    }

    pub async fn stats(&self) -> Result<ControlReply, String> {
        self.call(&ControlRequest::Stats).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> (SocketAddr, JoinHandle<()>) {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let a = s.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let t = tokio::spawn(async move {
            let mut b = vec![0u8; 2048];
            while let Ok((n, from)) = s.recv_from(&mut b).await {
                let _ = s.send_to(&b[..n], from).await;
            }
        });
        (a, t)
    }

    /// Send `n` numbered datagrams through the proxy and collect the echoes
    /// that arrive within `wait` after the last one.
    async fn exchange(proxy: SocketAddr, n: u32, wait: Duration) -> Vec<u32> {
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        for i in 0..n {
            c.send_to(&i.to_be_bytes(), proxy).await.unwrap_or_else(|e| panic!("{e}"));
            // Paced, so that no socket buffer overflows on a busy machine:
            // every drop must be the proxy's.
            if i % 20 == 19 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        let mut got = Vec::new();
        let mut b = [0u8; 16];
        while let Ok(Ok((len, _))) = tokio::time::timeout(wait, c.recv_from(&mut b)).await {
            if len == 4 {
                got.push(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            }
        }
        got
    }

    #[tokio::test]
    async fn clean_link_relays_both_ways_in_order() {
        let (echo, _t) = echo_server().await;
        let p = Proxy::start("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")), echo, 1)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let got = exchange(p.listen_addr(), 100, Duration::from_millis(300)).await;
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        let s = p.handle().stats();
        assert_eq!((s.received_up, s.received_down, s.sent), (100, 100, 200), "{s:?}");
    }

    #[tokio::test]
    async fn cut_blackholes_and_heal_restores() {
        let (echo, _t) = echo_server().await;
        let p = Proxy::start("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")), echo, 2)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        p.handle().cut();
        assert!(exchange(p.listen_addr(), 20, Duration::from_millis(200)).await.is_empty());
        p.handle().heal();
        assert_eq!(exchange(p.listen_addr(), 20, Duration::from_millis(300)).await.len(), 20);
    }

    #[tokio::test]
    async fn loss_dup_reorder_and_delay_happen_at_about_their_rates() {
        let (echo, _t) = echo_server().await;
        let p = Proxy::start("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")), echo, 3)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        p.handle().set(Faults { loss: 0.3, dup: 0.2, reorder: 0.2, delay_ms: 5, jitter_ms: 2, ..Faults::none() });
        let got = exchange(p.listen_addr(), 1000, Duration::from_millis(500)).await;
        let s = p.handle().stats();
        // Each direction drops 30%: about half of 1000 round trips survive,
        // duplicates add some back.
        assert!((300..800).contains(&got.len()), "{} echoes, {s:?}", got.len());
        assert!(s.lost > 300 && s.duplicated > 100 && s.reordered > 100, "{s:?}");
        let distinct: std::collections::BTreeSet<_> = got.iter().collect();
        assert!(distinct.len() < got.len(), "no duplicates arrived: {s:?}");
        assert!(got.windows(2).any(|w| w[0] > w[1]), "nothing arrived out of order: {s:?}");
    }

    #[tokio::test]
    async fn flap_alternates() {
        let (echo, _t) = echo_server().await;
        let p = Proxy::start("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")), echo, 4)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let h = p.handle();
        h.flap(Duration::from_millis(200), Duration::from_millis(200));
        assert!(!h.is_down());
        let mut downs = 0;
        let mut ups = 0;
        for _ in 0..16 {
            if h.is_down() {
                downs += 1
            } else {
                ups += 1
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(downs >= 4 && ups >= 4, "ups {ups} downs {downs}");
        h.heal();
        assert!(!h.is_down());
    }
}
