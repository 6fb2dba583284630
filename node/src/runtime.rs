//! One node, start to finish: the single entry point shared by `main` and
//! the tests (in the manner of mini-redis's `server::run`).
//!
//! [`run`] takes a parsed config, sockets that are already bound (tests bind
//! port 0) and any future as the shutdown signal. It keeps no process-global
//! state, so several nodes can run in one process; each node's logs carry a
//! `node` span with its `node_id`.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use jobmesh_protocol::{Engine, EngineConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, info_span, warn, Instrument};

use crate::api::{self, ApiContext};
use crate::config::{Config, ConfigError};
use crate::driver;
use crate::metrics::Metrics;
use crate::state::now_ms;
use crate::tls::NodeTls;
use crate::transport::{Transport, TransportSettings, TransportStats};

/// Longest the API may take to finish its in-flight requests at shutdown.
const API_DRAIN: Duration = Duration::from_secs(10);
/// Longest the links may take to close at shutdown.
const LINKS_DRAIN: Duration = Duration::from_secs(10);

/// The node's sockets, bound before [`run`] so that tests can bind port 0
/// and learn the ports, and so that a port in use is reported before
/// anything else starts.
#[derive(Debug)]
pub struct BoundSockets {
    /// QUIC: the config's `listen`, or an ephemeral port on a leaf.
    pub udp: std::net::UdpSocket,
    /// HTTP API and web page: the config's `api`.
    pub api: tokio::net::TcpListener,
}

impl BoundSockets {
    /// Bind what the config says: UDP on `listen` (or an ephemeral port of
    /// the parent's address family when the node does not listen), TCP on
    /// `api`. Errors name the config key.
    pub async fn bind(cfg: &Config) -> Result<BoundSockets, ConfigError> {
        let (key, udp_addr) = match (cfg.listen, &cfg.parent) {
            (Some(listen), _) => ("listen", listen),
            (None, Some(p)) => ("parent.addr", ephemeral_for(p.addr.ip())),
            (None, None) => ("listen", SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)),
        };
        let mut udp = std::net::UdpSocket::bind(udp_addr);
        if udp.is_err() && cfg.listen.is_none() && udp_addr.is_ipv6() {
            // A parent named in DNS: IPv6 may be off on this machine.
            udp = std::net::UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
        }
        let udp = udp.map_err(|e| cfg.error(key, format!("cannot bind UDP {udp_addr}: {e}")))?;
        let api = tokio::net::TcpListener::bind(cfg.api)
            .await
            .map_err(|e| cfg.error("api", format!("cannot bind TCP {}: {e}", cfg.api)))?;
        Ok(BoundSockets { udp, api })
    }
}

/// An unspecified address with port 0, of the family of `peer`; for a
/// parent named in DNS (`None`), IPv6, which on Linux also reaches IPv4
/// addresses (quinn maps them), whichever family the name resolves to.
fn ephemeral_for(peer: Option<SocketAddr>) -> SocketAddr {
    match peer {
        Some(SocketAddr::V4(_)) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        Some(SocketAddr::V6(_)) | None => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

/// Run one node until `shutdown` resolves, then stop it in order and return.
/// Errors at start (TLS, store, sockets) name the config file and key.
pub async fn run(cfg: Config, sockets: BoundSockets, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let span = info_span!("node", node_id = %cfg.node_id);
    run_node(cfg, sockets, shutdown).instrument(span).await
}

async fn run_node(cfg: Config, sockets: BoundSockets, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    // The certificate must be this node's and from the province CA: checked
    // before the store is opened, so a mix-up changes nothing on disk.
    let tls = NodeTls::load(&cfg)?;
    let (kv, store, verified_in) =
        crate::store_check::open_checked(&cfg.data_dir).map_err(|e| cfg.error("data_dir", e))?;
    info!(records = store.records, journal = store.journal, ms = verified_in.as_millis() as u64, "store checked");
    let mut engine = Engine::open(cfg.node_id.clone(), kv.clone(), EngineConfig::default(), now_ms())
        .map_err(|e| cfg.error("data_dir", format!("{}: {e}", cfg.data_dir.display())))?;
    // Offices the topology lists count as expected (missing until they
    // report) in the roll-up the engine keeps.
    if let Some(t) = &cfg.topology {
        engine.expect_offices(t);
    }
    engine
        .set_fallbacks(cfg.fallbacks.iter().map(|f| f.node_id.clone()).collect())
        .map_err(|e| cfg.error("fallback", e))?;
    let failover = Arc::new(crate::transport::FailoverState::new());
    let (state, host) = driver::start(engine, kv, Arc::new(Metrics::new()), driver::HostConfig::default())
        .context("cannot start the engine thread")?;
    let stop_sink = CancellationToken::new();
    // The sink reads the store through its own handle and asks the engine
    // thread only for its durable sequence (see crate::sink).
    let sink = match crate::sink::start(&cfg, &state, stop_sink.clone()).await {
        Ok(s) => s,
        Err(e) => {
            let _ = host.stop().await;
            return Err(e.into());
        }
    };
    let stats = Arc::new(TransportStats::new());

    // Two stages of stopping: `stop` ends everything that takes input (API,
    // QUIC accept and dial, links); then the engine host, which must outlive
    // every write the first stage lets finish, makes its final flush.
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();

    let settings = TransportSettings {
        accept: cfg.listen.is_some(),
        parent: cfg.parent.clone(),
        reconnect_max: Duration::from_millis(cfg.reconnect_max_ms),
        fallbacks: cfg.fallbacks.clone(),
        failover_after: Duration::from_secs(cfg.failover_after_s),
        failover: failover.clone(),
    };
    let show = |a: std::io::Result<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_else(|e| e.to_string());
    info!(
        quic = %show(sockets.udp.local_addr()),
        accepting = cfg.listen.is_some(),
        api = %show(sockets.api.local_addr()),
        parent = %cfg.parent.as_ref().map(|p| format!("{} at {}", p.node_id, p.addr)).unwrap_or_else(|| "none (root)".into()),
        "node starting"
    );
    let lists = crate::certs::revocation::ListState::new(&cfg.data_dir, cfg.revocations.clone());
    let certs = crate::certs::CertState::new(tls, cfg.tls.clone(), lists);
    // The health report (release, certificate) goes up the tree; a reloaded
    // certificate is news.
    let health = crate::health::HealthReporter::new(state.clone(), &certs.current());
    health.publish();
    {
        let health = health.clone();
        certs.on_reload(move |tls| {
            health.certificate_changed(tls);
            Ok(())
        });
    }
    // The list kept from an earlier run, then the one this node publishes.
    if let Some(kept) = certs.revocations.kept_bytes() {
        certs.offer_list(kept, "data dir");
    }
    if let Some(published) = certs.revocations.source_changed() {
        certs.offer_list(published, "config revocations");
    }
    let transport = match Transport::start(
        sockets.udp,
        &certs,
        settings,
        state.clone(),
        stats.clone(),
        stop.clone(),
        tracker.clone(),
    ) {
        Ok(t) => t,
        Err(e) => {
            let _ = host.stop().await;
            return Err(e).context(cfg.error("listen", "cannot start QUIC").to_string());
        }
    };

    // ApiContext belongs to the API module and may gain fields; the ones
    // this runtime knows are set from the config, the rest keep defaults.
    #[allow(clippy::needless_update)]
    let ctx = ApiContext {
        token: cfg.api_token.clone(),
        topology: cfg.topology.clone(),
        stale_after_s: cfg.stale_after_s,
        clock_skew_warn_s: cfg.clock_skew_warn_s,
        parent: cfg.parent.as_ref().map(|p| (p.node_id.clone(), p.addr.to_string())),
        transport: stats.clone(),
        certs: Some(certs.clone()),
        failover: failover.clone(),
        health: Some(health.clone()),
        sink: sink.as_ref().map(|s| s.status.clone()),
    };
    // Clocks off by more than clock_skew_warn_s are warned about.
    tracker.spawn(
        crate::clock_watch::run(state.clone(), cfg.clock_skew_warn_s, Some(health.clone()), stop.clone())
            .in_current_span(),
    );
    // SIGHUP and changed files reload the certificate, key and CA.
    tracker.spawn(crate::certs::watch::run(certs.clone(), stop.clone()).in_current_span());
    let router = api::router(state.clone(), Arc::new(ctx));
    let api_stop = stop.clone();
    let mut api_task = tokio::spawn(
        async move {
            axum::serve(sockets.api, router.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(api_stop.cancelled_owned())
                .await
        }
        .in_current_span(),
    );

    let api_failed = tokio::select! {
        _ = shutdown => None,
        why = host.failed() => Some(anyhow::anyhow!("{why}")),
        r = &mut api_task => Some(match r {
            Ok(Ok(())) => anyhow::anyhow!("the HTTP API stopped unexpectedly"),
            Ok(Err(e)) => anyhow::Error::new(e).context("the HTTP API failed"),
            Err(e) => anyhow::Error::new(e).context("the HTTP API task failed"),
        }),
    };
    info!("shutting down");

    // Shutdown order:
    // 1. Stop accepting: cancel `stop`. The API stops accepting connections
    //    and finishes its in-flight requests (their writes still get flushed,
    //    the flusher runs); the QUIC accept and dial loops end.
    // 2. Close every QUIC link with application code 0 "shutdown": each
    //    link's close token is a child of `stop`. A link task ends once the
    //    frames it read are queued for the engine thread, which still runs.
    //    Then the endpoint closes whatever handshakes remain.
    // 3. Final flush: stop the engine host; its thread makes one last flush
    //    of everything applied or written, and we await it.
    // 4. Return (dropping the store handle closes sled).
    stop.cancel();
    if api_failed.is_some() {
        api_task.abort();
    } else {
        match tokio::time::timeout(API_DRAIN, &mut api_task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => warn!(error = %e, "the HTTP API ended with an error"),
            Ok(Err(e)) => warn!(error = %e, "the HTTP API task failed"),
            Err(_) => {
                warn!("the HTTP API did not finish its requests within {API_DRAIN:?}; dropping them");
                api_task.abort();
            }
        }
    }
    tracker.close();
    if tokio::time::timeout(LINKS_DRAIN, tracker.wait()).await.is_err() {
        warn!("links did not close within {LINKS_DRAIN:?}");
    }
    transport.close().await;
    if let Some(sink) = sink {
        stop_sink.cancel();
        sink.stopped().await;
    }
    let host_result = host.stop().await;
    info!(transport = ?stats.snapshot(), "stopped");
    match (api_failed, host_result) {
        (Some(e), _) => Err(e),
        (None, Err(why)) => Err(anyhow::anyhow!("{why}")),
        (None, Ok(())) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    //! Whole nodes in one process, over real sockets: links come up through
    //! mutual TLS, a write replicates, and a hostile frame closes only its
    //! connection.

    use std::path::Path;
    use std::time::Instant;

    use jobmesh_protocol::NodeId;
    use tokio::sync::oneshot;

    use super::*;
    use crate::pki::Ca;

    struct TestNode {
        api: SocketAddr,
        udp: SocketAddr,
        stop: oneshot::Sender<()>,
        task: tokio::task::JoinHandle<anyhow::Result<()>>,
    }

    impl TestNode {
        async fn stop(self) {
            let _ = self.stop.send(());
            self.task.await.unwrap().unwrap();
        }
    }

    fn issue(dir: &Path, ca: &Ca, id: &str) {
        let node = NodeId::parse(id).unwrap();
        let pem = ca.issue(&node, 1).unwrap();
        std::fs::write(dir.join(format!("{}.pem", node.file_stem())), pem.cert_pem).unwrap();
        std::fs::write(dir.join(format!("{}.key", node.file_stem())), pem.key_pem).unwrap();
    }

    async fn start(dir: &Path, ca: &Ca, id: &str, parent: Option<(&str, SocketAddr)>) -> TestNode {
        issue(dir, ca, id);
        // Written once: nodes already running read it as they start.
        if !dir.join("ca.pem").exists() {
            std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
        }
        let stem = NodeId::parse(id).unwrap().file_stem();
        let mut text = format!(
            "node_id = \"{id}\"\ndata_dir = \"data-{stem}\"\nlisten = \"127.0.0.1:0\"\napi = \"127.0.0.1:0\"\n\
             reconnect_max_ms = 1000\n"
        );
        if let Some((p, addr)) = parent {
            text += &format!("[parent]\nnode_id = \"{p}\"\naddr = \"{addr}\"\n");
        }
        text += &format!("[tls]\nca_cert = \"ca.pem\"\ncert = \"{stem}.pem\"\nkey = \"{stem}.key\"\n");
        let cfg = Config::parse(&text, &dir.join(format!("{stem}.toml"))).unwrap();
        let sockets = BoundSockets::bind(&cfg).await.unwrap();
        let api = sockets.api.local_addr().unwrap();
        let udp = sockets.udp.local_addr().unwrap();
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(run(cfg, sockets, async move {
            let _ = rx.await;
        }));
        TestNode { api, udp, stop, task }
    }

    /// Poll `check` until it holds or `secs` pass.
    async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !check().await {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn holds_posting(http: &reqwest::Client, api: SocketAddr, id: &str) -> bool {
        match http.get(format!("http://{api}/v1/postings/{id}")).send().await {
            Ok(r) => r.status().is_success(),
            Err(_) => false,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_nodes_in_one_process_link_and_replicate() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::generate(1).unwrap();
        let root = start(dir.path(), &ca, "gz", None).await;
        let mid = start(dir.path(), &ca, "gz/a", Some(("gz", root.udp))).await;
        let leaf = start(dir.path(), &ca, "gz/a/x", Some(("gz/a", mid.udp))).await;

        let http = reqwest::Client::new();
        let posting = serde_json::json!({
            "title": "Welder", "employer": "ACME", "category": "manufacturing",
            "work_type": "full_time", "positions": 2
        });
        let r = http.post(format!("http://{}/v1/postings", leaf.api)).json(&posting).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let body: serde_json::Value = r.json().await.unwrap();
        let id = body["id"].as_str().unwrap().to_owned();
        eventually(30, "the posting reaches the root", || holds_posting(&http, root.api, &id)).await;
        assert!(holds_posting(&http, mid.api, &id).await);

        leaf.stop().await;
        mid.stop().await;
        root.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn foreign_and_outside_subtree_certificates_get_no_link() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::generate(1).unwrap();
        let other = Ca::generate(1).unwrap();
        let parent = start(dir.path(), &ca, "gz", None).await;
        let gz = NodeId::parse("gz").unwrap();
        let rogues = [
            (crate::tls::tests::forged(&ca, &other, "gz/x"), "UnknownIssuer"),
            // A descendant below a child is accepted (a county attached
            // directly while its city is down); an office of another tree
            // is not.
            (crate::tls::tests::node_tls(&ca, "gx/y"), "not a child of gz nor below one"),
        ];
        for (tls, expected) in rogues {
            let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
            endpoint.set_default_client_config(crate::transport::client_config(&tls, &gz).unwrap());
            let connecting = endpoint.connect(parent.udp, crate::tls::SERVER_NAME).unwrap();
            let outcome = async {
                // With TLS 1.3 the client may finish before the server has
                // judged its certificate: then the refusal closes the
                // connection right after.
                match connecting.await {
                    Ok(conn) => conn.closed().await,
                    Err(e) => e,
                }
            };
            let e = tokio::time::timeout(Duration::from_secs(10), outcome).await.unwrap();
            assert!(e.to_string().contains(expected), "{e}");
            endpoint.close(0u32.into(), b"done");
        }
        parent.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_malformed_or_oversized_frame_closes_only_that_connection() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::generate(1).unwrap();
        let parent = start(dir.path(), &ca, "gz", None).await;
        let child = NodeId::parse("gz/x").unwrap();
        let pem = ca.issue(&child, 1).unwrap();
        let tls = NodeTls::from_pem(&child, ca.cert_pem().as_bytes(), pem.cert_pem.as_bytes(), pem.key_pem.as_bytes())
            .unwrap();
        let client = crate::transport::client_config(&tls, &NodeId::parse("gz").unwrap()).unwrap();
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(client);

        let cases: [(&[u8], &str); 3] = [
            (&[0xff, 0xff, 0xff, 0xff], "exceeds the limit"),
            (&[0, 0, 0, 0], "empty frame"),
            (&[0, 0, 0, 3, 0xde, 0xad, 0xbe], "malformed"),
        ];
        for (bytes, expected) in cases {
            let conn = endpoint.connect(parent.udp, crate::tls::SERVER_NAME).unwrap().await.unwrap();
            let (mut send, _recv) = conn.open_bi().await.unwrap();
            send.write_all(bytes).await.unwrap();
            match tokio::time::timeout(Duration::from_secs(10), conn.closed()).await.unwrap() {
                quinn::ConnectionError::ApplicationClosed(c) => {
                    assert_eq!(c.error_code, crate::transport::code::PROTOCOL);
                    let reason = String::from_utf8_lossy(&c.reason);
                    assert!(reason.contains(expected), "{reason}");
                }
                other => panic!("unexpected close: {other}"),
            }
        }
        // The node still serves.
        let r = reqwest::get(format!("http://{}/healthz", parent.api)).await.unwrap();
        assert!(r.status().is_success());
        endpoint.close(0u32.into(), b"done");
        parent.stop().await;
    }
}
