//! Prometheus metrics of the node.
//!
//! Two sorts of metric live here:
//!
//! - **event metrics**, counted as things happen and kept in [`Metrics`]:
//!   store flushes and their latency, batches refused by reason, API
//!   requests by route and status;
//! - **state metrics**, read at scrape time from the engine and the store
//!   (records held by kind, link state, backlog and per-link counters, the
//!   per-office figures of the summaries) and handed to [`Metrics::render`]
//!   as a [`Scrape`].
//!
//! This module is a leaf: it imports nothing else of the node (the state,
//! the engine host and the transport all feed it), so there is no import
//! circle between them.
//!
//! Every scrape builds a fresh registry: the event metrics are registered by
//! handle (their values are shared), the state metrics are created with the
//! values just read. So a link or an office that disappears also disappears
//! from the exposition, and per-link counters that the engine keeps as
//! absolute numbers are exposed as counters without double counting.

use std::time::Duration;

use jobmesh_protocol::engine::LinkStats;
use jobmesh_protocol::figures::Totals;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Most distinct route labels kept for API request metrics; anything beyond
/// is counted under `other`, so a scanner probing random paths cannot grow
/// the registry without bound (routes are labelled by their template, so in
/// practice there are about twenty).
const MAX_ROUTES: usize = 64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerOnlyLabels {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: String,
    role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MatterLabels {
    /// `category`, `channel` or `key_group`.
    by: &'static str,
    value: String,
    /// `opened`, `resolved` or `open_now`.
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OfficeLabels {
    node_id: String,
    tier: String,
}

/// A metric's name, help text and how to read its value from `T`.
type Described<T, V> = (&'static str, &'static str, fn(&T) -> V);

fn latency_histogram() -> Histogram {
    // 100 µs .. ~26 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

/// The node's event metrics. Cheap to update from any task.
pub struct Metrics {
    flushes: Counter,
    flush_seconds: Histogram,
    refused: Family<ReasonLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    routes_seen: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("flushes", &self.flushes.get()).finish_non_exhaustive()
    }
}

/// One link as seen at scrape time.
#[derive(Debug, Clone)]
pub struct LinkSample {
    pub peer: String,
    /// `parent` or `child`.
    pub role: &'static str,
    pub connected: bool,
    /// Journal entries still to deliver (counted up to a cap).
    pub backlog: u64,
    /// Records waiting for the peer to upgrade (counted up to a cap).
    pub held_for_older_peer: u64,
    pub stats: LinkStats,
    /// The peer's clock minus this node's (ms), if measured.
    pub clock_offset_ms: Option<i64>,
    /// Round trip of the exchange that offset comes from (ms).
    pub clock_rtt_ms: Option<u64>,
}

/// One office's figures as its latest summary held here says.
#[derive(Debug, Clone)]
pub struct OfficeSample {
    pub node_id: String,
    pub tier: String,
    /// `None`: the office is expected (topology) but never reported.
    pub totals: Option<Totals>,
    pub age_s: Option<u64>,
    pub stale: bool,
    /// The office's matter figures (`None`: no matters summary held here).
    pub matters: Option<jobmesh_protocol::matters::MatterCounts>,
}

/// State read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// Records held, by kind name.
    pub records: Vec<(&'static str, u64)>,
    pub links: Vec<LinkSample>,
    pub offices: Vec<OfficeSample>,
    /// Bytes the store occupies on disk.
    pub store_bytes: u64,
    /// Journal sequence written and durable.
    pub last_seq: u64,
    pub durable_seq: u64,
    /// Transport counters (connections, handshakes, bytes).
    pub transport: TransportSnapshot,
    /// Matter figures summed over this node's subtree.
    pub matters: jobmesh_protocol::matters::MatterFigures,
    /// Certificates: expiry of this node's and its peers', reloads.
    pub certs: CertSample,
}

/// Certificate figures at one moment.
#[derive(Debug, Clone, Default)]
pub struct CertSample {
    /// Seconds until this node's certificate expires (negative once expired).
    pub own_expiry_s: Option<i64>,
    /// Seconds until each peer's certificate (as last presented) expires.
    pub peers: Vec<(String, i64)>,
    pub reloads: u64,
    pub reloads_refused: u64,
    /// Serials on the revocation list held.
    pub revoked_serials: u64,
    /// Revocation lists refused (bad signature, another CA, malformed).
    pub lists_refused: u64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TransportSnapshot {
    /// Links established (stream open, outbox registered), both directions.
    pub connects: u64,
    /// Links ended, for any reason.
    pub disconnects: u64,
    /// Links up now (gauge).
    pub links_up: u64,
    /// Connection attempts to the parent.
    pub dial_attempts: u64,
    /// Attempts to reach the parent that timed out or could not start.
    pub connect_failures: u64,
    /// TLS handshakes that failed (refused certificate, wrong CA, wrong
    /// node, ALPN mismatch), in either direction.
    pub handshake_failures: u64,
    /// Connections closed because the peer sent a malformed or oversized
    /// frame, or broke the stream protocol.
    pub protocol_errors: u64,
    /// Links closed by the engine (refused batch, wrong hello, outbox overflow).
    pub links_refused: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub frames_sent: u64,
    pub frames_received: u64,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            flushes: Counter::default(),
            flush_seconds: latency_histogram(),
            refused: Family::default(),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            routes_seen: std::sync::Mutex::new(Default::default()),
        }
    }

    /// A batch from a peer was refused for `reason`.
    pub fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// A store flush completed.
    pub fn flush_done(&self, took: Duration) {
        self.flushes.inc();
        self.flush_seconds.observe(took.as_secs_f64());
    }

    /// How many flushes completed (for tests and status).
    pub fn flush_count(&self) -> u64 {
        self.flushes.get()
    }

    /// An API request was answered. `route` is the route template
    /// (`/v1/postings/:id`), never the raw path.
    pub fn api_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let route = {
            let mut seen = self.routes_seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.contains(route) || seen.len() < MAX_ROUTES {
                seen.insert(route.to_owned());
                route.to_owned()
            } else {
                "other".to_owned()
            }
        };
        self.requests.get_or_create(&RequestLabels { route: route.clone(), method: method.to_owned(), status }).inc();
        self.request_seconds.get_or_create(&RouteLabels { route }).observe(took.as_secs_f64());
    }

    /// The Prometheus text exposition: event metrics plus `scrape`.
    pub fn render(&self, scrape: &Scrape) -> String {
        let mut reg = Registry::with_prefix("jobmesh");
        reg.register("store_flushes", "Store flushes completed", self.flushes.clone());
        reg.register("store_flush_seconds", "Latency of store flushes", self.flush_seconds.clone());
        reg.register("frames_refused", "Batches refused from peers, by reason", self.refused.clone());
        reg.register("api_requests", "HTTP API requests by route, method and status", self.requests.clone());
        reg.register("api_request_seconds", "HTTP API latency by route", self.request_seconds.clone());

        let records = Family::<KindLabels, Gauge>::default();
        for (kind, n) in &scrape.records {
            records.get_or_create(&KindLabels { kind }).set(*n as i64);
        }
        reg.register("records", "Records held on this node, by kind", records);
        let gauge = |v: u64| {
            let g = Gauge::<i64>::default();
            g.set(v as i64);
            g
        };
        reg.register("store_bytes", "Bytes the store occupies on disk", gauge(scrape.store_bytes));
        reg.register("journal_last_seq", "Last journal sequence written", gauge(scrape.last_seq));
        reg.register("journal_durable_seq", "Last journal sequence known durable", gauge(scrape.durable_seq));

        let t = &scrape.transport;
        let transport: [(&str, &str, u64); 12] = [
            ("transport_connects", "QUIC links established", t.connects),
            ("transport_disconnects", "QUIC links ended", t.disconnects),
            ("transport_dial_attempts", "Connection attempts to the parent", t.dial_attempts),
            ("transport_connect_failures", "Attempts to reach the parent that failed", t.connect_failures),
            ("transport_handshake_failures", "TLS handshakes refused or failed", t.handshake_failures),
            ("transport_protocol_errors", "Links closed for a malformed or oversized frame", t.protocol_errors),
            ("transport_links_refused", "Links closed by the engine", t.links_refused),
            ("transport_bytes_sent", "Bytes of frames sent", t.bytes_sent),
            ("transport_bytes_received", "Bytes of frames received", t.bytes_received),
            ("transport_frames_sent", "Frames sent", t.frames_sent),
            ("transport_frames_received", "Frames received", t.frames_received),
            (
                "transport_reconnects",
                "Links established beyond the first per peer",
                t.connects.saturating_sub(t.links_up),
            ),
        ];
        for (name, help, v) in transport {
            let c = Counter::<u64>::default();
            c.inc_by(v);
            reg.register(name, help, c);
        }
        reg.register("transport_links_up", "QUIC links up now", gauge(t.links_up));

        let c = &scrape.certs;
        if let Some(s) = c.own_expiry_s {
            let g = Gauge::<i64>::default();
            g.set(s);
            reg.register("cert_expiry_seconds", "Seconds until this node's certificate expires", g);
        }
        let peer_expiry = Family::<PeerOnlyLabels, Gauge>::default();
        for (peer, s) in &c.peers {
            peer_expiry.get_or_create(&PeerOnlyLabels { peer: peer.clone() }).set(*s);
        }
        reg.register(
            "peer_cert_expiry_seconds",
            "Seconds until the certificate each peer last presented expires",
            peer_expiry,
        );
        for (name, help, v) in [
            ("cert_reloads", "Reloads of the certificate, key and CA files that took effect", c.reloads),
            (
                "cert_reloads_refused",
                "Reloads refused (file unreadable, not parsing, wrong node or key)",
                c.reloads_refused,
            ),
        ] {
            let counter = Counter::<u64>::default();
            counter.inc_by(v);
            reg.register(name, help, counter);
        }
        let refused = Counter::<u64>::default();
        refused.inc_by(c.lists_refused);
        reg.register(
            "revocation_lists_refused",
            "Revocation lists refused: bad signature, another CA, malformed",
            refused,
        );
        reg.register("revoked_serials", "Certificates on the revocation list held", gauge(c.revoked_serials));

        let connected = Family::<PeerLabels, Gauge>::default();
        let backlog = Family::<PeerLabels, Gauge>::default();
        let last_contact = Family::<PeerLabels, Gauge>::default();
        let protocol = Family::<PeerLabels, Gauge>::default();
        let held = Family::<PeerLabels, Gauge>::default();
        let clock_offset = Family::<PeerLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let clock_rtt = Family::<PeerLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let counters: [Described<LinkStats, u64>; 8] = [
            ("link_connects", "Connections established per link (reconnects)", |s| s.connects),
            ("link_batches_sent", "Batches sent per link", |s| s.batches_sent),
            ("link_records_sent", "Records sent per link", |s| s.records_sent),
            ("link_batches_applied", "Batches applied from each peer", |s| s.batches_applied),
            ("link_records_applied", "Records applied from each peer", |s| s.records_applied),
            ("link_refused", "Batches refused from each peer", |s| s.refused),
            ("link_rewinds", "Resends from the last ack per link", |s| s.rewinds),
            ("link_nacks_sent", "Negative acknowledgements sent per link", |s| s.nacks_sent),
        ];
        let families: Vec<Family<PeerLabels, Counter>> = counters.iter().map(|_| Family::default()).collect();
        for l in &scrape.links {
            let labels = PeerLabels { peer: l.peer.clone(), role: l.role };
            connected.get_or_create(&labels).set(i64::from(l.connected));
            backlog.get_or_create(&labels).set(l.backlog as i64);
            held.get_or_create(&labels).set(l.held_for_older_peer as i64);
            if l.stats.protocol > 0 {
                protocol.get_or_create(&labels).set(i64::from(l.stats.protocol));
            }
            if let Some(o) = l.clock_offset_ms {
                clock_offset.get_or_create(&labels).set(o as f64 / 1000.0);
            }
            if let Some(r) = l.clock_rtt_ms {
                clock_rtt.get_or_create(&labels).set(r as f64 / 1000.0);
            }
            if let Some(t) = l.stats.last_contact {
                last_contact.get_or_create(&labels).set((t / 1000) as i64);
            }
            for ((_, _, get), fam) in counters.iter().zip(&families) {
                fam.get_or_create(&labels).inc_by(get(&l.stats));
            }
        }
        reg.register("link_connected", "1 when the link to the peer is connected", connected);
        reg.register("link_backlog", "Journal entries still to deliver to the peer", backlog);
        reg.register("link_protocol", "Protocol version negotiated with the peer (current or last link)", protocol);
        reg.register(
            "link_held_for_older_peer",
            "Records waiting for the peer to upgrade: its protocol version cannot carry them",
            held,
        );
        reg.register("link_last_contact_seconds", "Unix time of the last frame from the peer", last_contact);
        reg.register(
            "link_clock_offset_seconds",
            "The peer's clock minus this node's, measured on the link (negative: the peer is behind)",
            clock_offset,
        );
        reg.register(
            "link_clock_rtt_seconds",
            "Round trip of the clock exchange the offset comes from (the offset is off by at most half)",
            clock_rtt,
        );
        for ((name, help, _), fam) in counters.iter().zip(families) {
            reg.register(*name, *help, fam);
        }

        let office: [Described<Totals, i64>; 6] = [
            ("office_postings_open", "Open postings with positions left, per office", |t| t.postings_open),
            ("office_positions_open", "Positions left on open postings, per office", |t| t.positions_open),
            ("office_positions_filled", "Positions filled by placements made at the office", |t| t.positions_filled),
            ("office_workers_registered", "Workers registered at the office", |t| t.workers_registered),
            ("office_workers_seeking", "Workers with no placement known, per office", |t| t.workers_seeking),
            ("office_placements", "Placements made at the office", |t| t.placements),
        ];
        let office_fams: Vec<Family<OfficeLabels, Gauge>> = office.iter().map(|_| Family::default()).collect();
        let age = Family::<OfficeLabels, Gauge>::default();
        let stale = Family::<OfficeLabels, Gauge>::default();
        for o in &scrape.offices {
            let labels = OfficeLabels { node_id: o.node_id.clone(), tier: o.tier.clone() };
            stale.get_or_create(&labels).set(i64::from(o.stale));
            if let Some(a) = o.age_s {
                age.get_or_create(&labels).set(a as i64);
            }
            if let Some(t) = &o.totals {
                for ((_, _, get), fam) in office.iter().zip(&office_fams) {
                    fam.get_or_create(&labels).set(get(t));
                }
            }
        }
        for ((name, help, _), fam) in office.iter().zip(office_fams) {
            reg.register(*name, *help, fam);
        }
        reg.register("office_age_seconds", "Age of the office's latest summary held here", age);

        let matter_office: [Described<jobmesh_protocol::matters::MatterCounts, i64>; 3] = [
            ("office_matters_opened", "Service matters opened at the office", |c| c.opened),
            ("office_matters_resolved", "Service matters resolved at the office", |c| c.resolved),
            ("office_matters_open", "Service matters open now at the office", |c| c.open_now),
        ];
        let matter_fams: Vec<Family<OfficeLabels, Gauge>> = matter_office.iter().map(|_| Family::default()).collect();
        for o in &scrape.offices {
            let labels = OfficeLabels { node_id: o.node_id.clone(), tier: o.tier.clone() };
            if let Some(c) = &o.matters {
                for ((_, _, get), fam) in matter_office.iter().zip(&matter_fams) {
                    fam.get_or_create(&labels).set(get(c));
                }
            }
        }
        for ((name, help, _), fam) in matter_office.iter().zip(matter_fams) {
            reg.register(*name, *help, fam);
        }
        let m = &scrape.matters;
        let by = Family::<MatterLabels, Gauge>::default();
        for (dim, map) in [("category", &m.by_category), ("channel", &m.by_channel), ("key_group", &m.by_key_group)] {
            for (value, c) in map {
                for (status, v) in [("opened", c.opened), ("resolved", c.resolved), ("open_now", c.open_now)] {
                    by.get_or_create(&MatterLabels { by: dim, value: value.clone(), status }).set(v);
                }
            }
        }
        reg.register(
            "subtree_matters",
            "Service matters of this node's subtree, by category, channel or key group",
            by,
        );
        let median = prometheus_client::metrics::gauge::Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        median.set(m.median_days_to_resolve().unwrap_or(f64::NAN));
        reg.register(
            "subtree_matters_median_days_to_resolve",
            "Median whole days from opening to resolving, over the subtree's resolved matters",
            median,
        );
        reg.register("office_stale", "1 when the office's figures are stale or it never reported", stale);

        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &reg) {
            // Writing into a String cannot fail; keep what was written.
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_event_and_state_metrics() {
        let m = Metrics::new();
        m.refused("origin_outside_child");
        m.flush_done(Duration::from_millis(3));
        m.api_request("/v1/postings", "GET", 200, Duration::from_millis(1));
        let scrape = Scrape {
            records: vec![("posting", 3)],
            links: vec![LinkSample {
                peer: "gz/a".into(),
                role: "parent",
                connected: true,
                backlog: 7,
                held_for_older_peer: 3,
                stats: LinkStats { connects: 2, protocol: 1, ..Default::default() },
                clock_offset_ms: Some(-600_250),
                clock_rtt_ms: Some(2),
            }],
            offices: vec![OfficeSample {
                node_id: "gz/a/x".into(),
                tier: "county".into(),
                totals: Some(Totals { postings_open: 4, ..Default::default() }),
                age_s: Some(5),
                stale: false,
                matters: Some(jobmesh_protocol::matters::MatterCounts { opened: 9, resolved: 4, open_now: 5 }),
            }],
            ..Default::default()
        };
        let text = m.render(&scrape);
        for want in [
            "jobmesh_frames_refused_total{reason=\"origin_outside_child\"} 1",
            "jobmesh_store_flushes_total 1",
            "jobmesh_records{kind=\"posting\"} 3",
            "jobmesh_link_connected{peer=\"gz/a\",role=\"parent\"} 1",
            "jobmesh_link_backlog{peer=\"gz/a\",role=\"parent\"} 7",
            "jobmesh_link_connects_total{peer=\"gz/a\",role=\"parent\"} 2",
            "jobmesh_office_postings_open{node_id=\"gz/a/x\",tier=\"county\"} 4",
            "jobmesh_office_age_seconds{node_id=\"gz/a/x\",tier=\"county\"} 5",
            "jobmesh_link_protocol{peer=\"gz/a\",role=\"parent\"} 1",
            "jobmesh_link_held_for_older_peer{peer=\"gz/a\",role=\"parent\"} 3",
            "jobmesh_link_clock_offset_seconds{peer=\"gz/a\",role=\"parent\"} -600.25",
            "jobmesh_office_matters_open{node_id=\"gz/a/x\",tier=\"county\"} 5",
            "jobmesh_api_requests_total{route=\"/v1/postings\",method=\"GET\",status=\"200\"} 1",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }
}
