//! The links of a cluster: how they are made (a fault proxy in this
//! process per link on loopback; a veth pair per link, and a proxy inside
//! the child's namespace, on the netns layer) and how faults are set on
//! them.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::{Cluster, ClusterOpts, Link, LinkCtl, NS_API_PORT, NS_PROXY_PORT, NS_QUIC_PORT};
use crate::bin::tail;
use crate::client::Api;
use crate::mesh::{free_tcp, free_udp};
use crate::netns::{self, Netns};
use crate::oracle::nid;
use crate::pki::Pki;
use crate::proxy::{Faults, Proxy, ProxyHandle, RemoteProxy};
use crate::wait::Rng;

impl Cluster {
    pub(super) async fn create_loopback(
        &mut self,
        ids: &[String],
        opts: &ClusterOpts,
        pki: &Pki,
        http: &reqwest::Client,
        rng: &mut Rng,
    ) {
        let mut listen: BTreeMap<String, SocketAddr> = BTreeMap::new();
        for id in ids {
            pki.issue(id);
            listen.insert(id.clone(), free_udp());
        }
        for id in ids {
            let api_addr = free_tcp();
            let mut cfg = self.base_config(id, opts);
            cfg.listen = Some(listen[id]);
            cfg.api = api_addr.to_string();
            if let Some(p) = nid(id).parent() {
                let parent = p.to_string();
                let proxy = Proxy::start(
                    "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
                    listen[&parent],
                    rng.next_u64(),
                )
                .await
                .unwrap_or_else(|e| panic!("fault proxy for {id}: {e}"));
                cfg.parent = Some((parent, proxy.listen_addr()));
                self.links.insert(id.clone(), Link { ctl: LinkCtl::Local { proxy }, faults: Faults::none() });
            }
            self.add_node(id, &cfg, Api::new(format!("http://{api_addr}"), http.clone()), None);
        }
    }

    pub(super) async fn create_netns(
        &mut self,
        ids: &[String],
        opts: &ClusterOpts,
        pki: &Pki,
        http: &reqwest::Client,
        rng: &mut Rng,
    ) {
        let chaos_bin = opts.chaos_bin.clone().unwrap_or_else(|| panic!("netns layer: no jobmesh-chaos binary given"));
        assert!(ids.len() <= netns::MAX_LINKS, "netns layer: too many nodes");
        let mut ns = Netns::new();
        let sock_dir = self.root_dir.join("s");
        std::fs::create_dir_all(&sock_dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", sock_dir.display()));
        let index: BTreeMap<String, usize> = ids.iter().cloned().enumerate().map(|(i, id)| (id, i)).collect();
        let mut names = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            pki.issue(id);
            names.push(ns.add(&format!("n{i}")).unwrap_or_else(|e| panic!("netns for {id}: {e}")));
        }
        self.netns = Some(ns);
        for (i, id) in ids.iter().enumerate() {
            let mut cfg = self.base_config(id, opts);
            cfg.listen = Some(SocketAddr::from(([0, 0, 0, 0], NS_QUIC_PORT)));
            cfg.api = format!("127.0.0.1:{NS_API_PORT}");
            let api_sock = sock_dir.join(format!("{i}.api"));
            let mut agent = netns::exec_in(&names[i], &chaos_bin);
            agent
                .arg("agent")
                .arg("--owner")
                .arg(std::process::id().to_string())
                .arg("--api-unix")
                .arg(&api_sock)
                .arg("--api-to")
                .arg(format!("127.0.0.1:{NS_API_PORT}"));
            let mut ctl_sock = None;
            if let Some(p) = nid(id).parent() {
                let parent = p.to_string();
                let j = index[&parent];
                // Link number i-1: node i's uplink (i ≥ 1 for every non-root).
                let (pa, ca) = netns::link_addrs(i - 1);
                let dev = "up0".to_string();
                let ns_ref = self.netns.as_ref().unwrap_or_else(|| unreachable!());
                ns_ref
                    .link(&names[j], &format!("c{i}"), pa, &names[i], &dev, ca)
                    .unwrap_or_else(|e| panic!("veth {parent} — {id}: {e}"));
                cfg.parent = Some((parent, SocketAddr::from(([127, 0, 0, 1], NS_PROXY_PORT))));
                let ctl = sock_dir.join(format!("{i}.ctl"));
                agent
                    .arg("--proxy-listen")
                    .arg(format!("127.0.0.1:{NS_PROXY_PORT}"))
                    .arg("--proxy-to")
                    .arg(format!("{pa}:{NS_QUIC_PORT}"))
                    .arg("--control")
                    .arg(&ctl)
                    .arg("--seed")
                    .arg(rng.next_u64().to_string());
                self.links.insert(
                    id.clone(),
                    Link {
                        ctl: LinkCtl::Netns {
                            child_ns: names[i].clone(),
                            dev,
                            remote: RemoteProxy { control: ctl.clone() },
                            flapper: None,
                            generation: Arc::new(Mutex::new(0)),
                        },
                        faults: Faults::none(),
                    },
                );
                ctl_sock = Some(ctl);
            }
            let dir = self.node_dir(id);
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            let alog = OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("agent.log"))
                .unwrap_or_else(|e| panic!("agent log: {e}"));
            let alog2 = alog.try_clone().unwrap_or_else(|e| panic!("dup log: {e}"));
            let child = agent
                .stdin(Stdio::null())
                .stdout(Stdio::from(alog))
                .stderr(Stdio::from(alog2))
                .spawn()
                .unwrap_or_else(|e| panic!("start agent for {id}: {e}"));
            self.agents.push(child);
            // Wait for the agent's sockets.
            let start = Instant::now();
            while !(api_sock.exists() && ctl_sock.as_ref().is_none_or(|c| c.exists())) {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "agent of {id} did not create its sockets: {}",
                    tail(&std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default(), 20)
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let (port, bridge) = host_bridge(api_sock).await;
            self.bridges.push(bridge);
            self.add_node(id, &cfg, Api::new(format!("http://127.0.0.1:{port}"), http.clone()), Some(names[i].clone()));
        }
    }

    fn link_mut(&mut self, child: &str) -> &mut Link {
        self.links.get_mut(child).unwrap_or_else(|| panic!("no link from {child} to its parent"))
    }

    /// The faults set on the link from `child` to its parent.
    pub fn faults(&self, child: &str) -> Faults {
        self.links.get(child).map(|l| l.faults.clone()).unwrap_or_default()
    }

    /// Set the link's faults (loss, dup, reorder, delay, cut, flap). On the
    /// netns layer `cut` and `flap` act on the veth, the rest on the proxy in
    /// the child's namespace.
    pub async fn set_faults(&mut self, child: &str, faults: Faults) {
        let link = self.link_mut(child);
        link.faults = faults.clone();
        match &mut link.ctl {
            LinkCtl::Local { proxy } => proxy.handle().set(faults),
            LinkCtl::Netns { child_ns, dev, remote, flapper, generation } => {
                if let Some(f) = flapper.take() {
                    f.abort();
                }
                let proxy_faults = Faults { cut: false, flap: None, ..faults.clone() };
                remote.set(proxy_faults).await.unwrap_or_else(|e| panic!("link {child}: {e}"));
                let mine = {
                    let mut g = generation.lock().unwrap_or_else(|p| p.into_inner());
                    *g += 1;
                    netns::set_link(child_ns, dev, !faults.cut).unwrap_or_else(|e| panic!("link {child}: {e}"));
                    *g
                };
                if let (Some(flap), false) = (faults.flap, faults.cut) {
                    let (ns, dev, generation) = (child_ns.clone(), dev.clone(), generation.clone());
                    *flapper = Some(tokio::spawn(async move {
                        // `ip` runs for a few milliseconds: called in place,
                        // under the generation lock.
                        let step = |up: bool| {
                            let g = generation.lock().unwrap_or_else(|p| p.into_inner());
                            if *g == mine {
                                let _ = netns::set_link(&ns, &dev, up);
                            }
                            *g == mine
                        };
                        loop {
                            tokio::time::sleep(Duration::from_millis(flap.up_ms)).await;
                            if !step(false) {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(flap.down_ms)).await;
                            if !step(true) {
                                return;
                            }
                        }
                    }));
                }
            }
        }
    }

    /// Blackhole the link (netns: its veth down).
    pub async fn cut(&mut self, child: &str) {
        let f = Faults { cut: true, ..self.faults(child) };
        self.set_faults(child, f).await;
    }

    /// Undo cut and flap (loss and delay stay).
    pub async fn heal(&mut self, child: &str) {
        let f = Faults { cut: false, flap: None, ..self.faults(child) };
        self.set_faults(child, f).await;
    }

    /// Flap: up `up`, down `down`, from now.
    pub async fn flap(&mut self, child: &str, up: Duration, down: Duration) {
        let flap = crate::proxy::Flap { up_ms: up.as_millis() as u64, down_ms: down.as_millis() as u64 };
        let f = Faults { flap: Some(flap), cut: false, ..self.faults(child) };
        self.set_faults(child, f).await;
    }

    /// Every link clean again.
    pub async fn heal_all(&mut self) {
        for child in self.links() {
            if self.faults(&child) != Faults::none() {
                self.set_faults(&child, Faults::none()).await;
            }
        }
    }

    /// The in-process proxy of a link (loopback layer), for its counters.
    pub fn proxy(&self, child: &str) -> Option<ProxyHandle> {
        match &self.links.get(child)?.ctl {
            LinkCtl::Local { proxy } => Some(proxy.handle()),
            LinkCtl::Netns { .. } => None,
        }
    }

    /// Sum of every link's proxy counters.
    pub async fn proxy_totals(&self) -> crate::proxy::ProxyStats {
        let mut t = crate::proxy::ProxyStats::default();
        for l in self.links.values() {
            let s = match &l.ctl {
                LinkCtl::Local { proxy } => proxy.handle().stats(),
                LinkCtl::Netns { remote, .. } => match remote.stats().await {
                    Ok(r) => r.stats,
                    Err(_) => continue,
                },
            };
            t.received_up += s.received_up;
            t.received_down += s.received_down;
            t.sent += s.sent;
            t.lost += s.lost;
            t.blackholed += s.blackholed;
            t.duplicated += s.duplicated;
            t.reordered += s.reordered;
            t.overflow += s.overflow;
            t.send_errors += s.send_errors;
        }
        t
    }
}

/// A loopback TCP port of this process that forwards each connection to
/// the Unix socket `path` (an agent's API bridge).
async fn host_bridge(path: PathBuf) -> (u16, JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bridge bind: {e}"));
    let port = l.local_addr().unwrap_or_else(|e| panic!("bridge addr: {e}")).port();
    let t = tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = l.accept().await else { continue };
            let path = path.clone();
            tokio::spawn(async move {
                if let Ok(mut unix) = tokio::net::UnixStream::connect(&path).await {
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                }
            });
        }
    });
    (port, t)
}
