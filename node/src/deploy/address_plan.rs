//! Where each office listens: a host and two ports per office id.
//!
//! The plan is a TSV file next to the topology (`deploy/topology/
//! guizhou-addresses.tsv`): `# comments`, a header line starting with `id`,
//! then `id host quic_port api_port`. What the ports become in a node's
//! config depends on the host:
//!
//! - a loopback host (`127.0.0.1`, rehearsals and the demo): several offices
//!   share the machine, so the office listens for QUIC on `host:quic_port`
//!   and serves its API on `host:api_port`, and every port must be distinct;
//! - any other host (production, one office per machine): the office listens
//!   for QUIC on every interface (`0.0.0.0:quic_port`, or `[::]` for an IPv6
//!   host), children dial `host:quic_port`, and the API stays on loopback
//!   (`127.0.0.1:api_port`) so that it needs no token.
//!
//! [`AddressPlan::loopback`] makes the rehearsal plan: `127.0.0.1`, QUIC
//! ports from a base upwards in topology order, API ports 1,000 higher.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use jobmesh_protocol::topology::Topology;
use jobmesh_protocol::NodeId;

/// The first QUIC port of the default loopback plan; API ports start at
/// [`LOOPBACK_API_OFFSET`] above it.
pub const LOOPBACK_QUIC_BASE: u16 = 17_400;
/// How far above the QUIC ports the API ports of a loopback plan start (for
/// trees of up to 1,000 offices; larger trees move the API ports up by
/// whole thousands).
pub const LOOPBACK_API_OFFSET: u16 = 1_000;
/// Largest plan file read, so a wrong path fails fast.
const MAX_PLAN_BYTES: usize = 16 * 1024 * 1024;

/// One office's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    /// The address its children dial (and, on loopback, where it listens).
    pub host: IpAddr,
    pub quic_port: u16,
    pub api_port: u16,
}

impl Address {
    /// Where children dial this office.
    pub fn quic(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.quic_port)
    }

    /// The config's `listen`: the host itself on loopback, every interface
    /// otherwise (one office per machine).
    pub fn listen(&self) -> SocketAddr {
        let ip = match self.host {
            h if h.is_loopback() => h,
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        SocketAddr::new(ip, self.quic_port)
    }

    /// The config's `api`: always a loopback address, so the API needs no
    /// token; on a production machine an operator reaches it through SSH or
    /// a local reverse proxy.
    pub fn api(&self) -> SocketAddr {
        let ip = match self.host {
            h if h.is_loopback() => h,
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        };
        SocketAddr::new(ip, self.api_port)
    }
}

/// Why a plan is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A line of the plan file is malformed.
    #[error("line {line}: {problem}")]
    Line { line: usize, problem: String },
    /// An office of the topology has no address.
    #[error("no address for {0} (add a line for it to the address plan)")]
    Missing(NodeId),
    /// Two offices would bind the same socket on one machine.
    #[error("{a} and {b} both use {addr}")]
    Clash { a: NodeId, b: NodeId, addr: String },
    /// A loopback plan does not fit in the port range.
    #[error("a loopback plan for {offices} offices from port {base} runs past port 65535; use a lower --port-base")]
    TooManyPorts { offices: usize, base: u16 },
    /// The plan file is larger than any real plan.
    #[error("the plan is larger than {MAX_PLAN_BYTES} bytes")]
    TooLarge,
}

/// Addresses by office id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPlan {
    by_id: BTreeMap<NodeId, Address>,
}

impl AddressPlan {
    /// Parse the plan's TSV format.
    pub fn parse_tsv(text: &str) -> Result<AddressPlan, PlanError> {
        if text.len() > MAX_PLAN_BYTES {
            return Err(PlanError::TooLarge);
        }
        let mut by_id = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            if line.trim().is_empty() || line.starts_with('#') || line.starts_with("id\t") {
                continue;
            }
            let err = |problem: String| PlanError::Line { line: line_no, problem };
            let cols: Vec<&str> = line.split('\t').map(str::trim).collect();
            if cols.len() != 4 {
                return Err(err(format!(
                    "expected 4 tab-separated columns (id, host, quic_port, api_port), found {}",
                    cols.len()
                )));
            }
            let id = NodeId::parse(cols[0]).map_err(|e| err(e.to_string()))?;
            let host: IpAddr = cols[1].parse().map_err(|_| err(format!("host {:?} is not an IP address", cols[1])))?;
            let port = |name: &str, s: &str| -> Result<u16, PlanError> {
                match s.parse::<u16>() {
                    Ok(p) if p > 0 => Ok(p),
                    _ => Err(err(format!("{name} {s:?} is not a port (1-65535)"))),
                }
            };
            let address =
                Address { host, quic_port: port("quic_port", cols[2])?, api_port: port("api_port", cols[3])? };
            if by_id.insert(id.clone(), address).is_some() {
                return Err(err(format!("{id} is listed twice")));
            }
        }
        Ok(AddressPlan { by_id })
    }

    /// The plan as TSV, in the topology's order (offices of the plan that
    /// the topology does not list follow, by id).
    pub fn to_tsv(&self, topo: &Topology) -> String {
        let mut s = String::from("id\thost\tquic_port\tapi_port\n");
        let mut listed = HashSet::new();
        let ordered = topo.offices.iter().map(|o| &o.id).chain(self.by_id.keys());
        for id in ordered {
            if let Some(a) = self.by_id.get(id) {
                if listed.insert(id) {
                    s.push_str(&format!("{id}\t{}\t{}\t{}\n", a.host, a.quic_port, a.api_port));
                }
            }
        }
        s
    }

    /// The rehearsal plan: every office on 127.0.0.1, QUIC ports `base`,
    /// `base + 1`, … in topology order, API ports from `base + 1000` (or the
    /// next whole thousand above the QUIC ports for larger trees).
    pub fn loopback(topo: &Topology, base: u16) -> Result<AddressPlan, PlanError> {
        let n = topo.len();
        let thousands = n.div_ceil(usize::from(LOOPBACK_API_OFFSET)).max(1);
        let api_offset = thousands * usize::from(LOOPBACK_API_OFFSET);
        if usize::from(base) + api_offset + n > usize::from(u16::MAX) + 1 || base == 0 {
            return Err(PlanError::TooManyPorts { offices: n, base });
        }
        let by_id = topo
            .offices
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let quic = usize::from(base) + i;
                let address = Address {
                    host: IpAddr::V4(Ipv4Addr::LOCALHOST),
                    quic_port: quic as u16,
                    api_port: (quic + api_offset) as u16,
                };
                (o.id.clone(), address)
            })
            .collect();
        Ok(AddressPlan { by_id })
    }

    pub fn get(&self, id: &NodeId) -> Option<&Address> {
        self.by_id.get(id)
    }

    pub fn insert(&mut self, id: NodeId, address: Address) {
        self.by_id.insert(id, address);
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Check that every office of `topo` has an address and that no two
    /// offices of `topo` would bind the same socket: the same host and port
    /// for QUIC, or for the API on a shared loopback host (on other hosts the
    /// API binds loopback on each office's own machine, so API ports may
    /// repeat).
    pub fn check(&self, topo: &Topology) -> Result<(), PlanError> {
        let mut used: BTreeMap<String, NodeId> = BTreeMap::new();
        for o in &topo.offices {
            let a = self.by_id.get(&o.id).ok_or_else(|| PlanError::Missing(o.id.clone()))?;
            // UDP and TCP ports are separate spaces, but one number for two
            // purposes on one host is a mistake in a plan.
            let mut sockets = vec![format!("{}:{}", a.host, a.quic_port)];
            if a.host.is_loopback() {
                sockets.push(format!("{}:{}", a.host, a.api_port));
            }
            if a.host.is_loopback() && a.quic_port == a.api_port {
                return Err(PlanError::Clash { a: o.id.clone(), b: o.id.clone(), addr: sockets[0].clone() });
            }
            for s in sockets {
                if let Some(prev) = used.insert(s.clone(), o.id.clone()) {
                    return Err(PlanError::Clash { a: prev, b: o.id.clone(), addr: s });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Topology {
        Topology::generated("gz", &[2, 2])
    }

    #[test]
    fn loopback_plans_use_distinct_ports_and_round_trip() {
        let t = tree();
        let p = AddressPlan::loopback(&t, LOOPBACK_QUIC_BASE).unwrap();
        p.check(&t).unwrap();
        let root = p.get(t.root()).unwrap();
        assert_eq!((root.quic_port, root.api_port), (17_400, 18_400));
        assert_eq!(root.listen(), "127.0.0.1:17400".parse().unwrap());
        assert_eq!(root.api(), "127.0.0.1:18400".parse().unwrap());
        assert_eq!(AddressPlan::parse_tsv(&p.to_tsv(&t)).unwrap(), p);

        let big = Topology::generated_province();
        let p = AddressPlan::loopback(&big, LOOPBACK_QUIC_BASE).unwrap();
        p.check(&big).unwrap();
        assert!(matches!(AddressPlan::loopback(&big, 60_000), Err(PlanError::TooManyPorts { .. })));
    }

    #[test]
    fn production_hosts_listen_everywhere_and_keep_the_api_on_loopback() {
        let p = AddressPlan::parse_tsv("# x\nid\thost\tquic_port\tapi_port\ngz\t10.0.0.10\t7400\t7480\n").unwrap();
        let a = p.get(&NodeId::parse("gz").unwrap()).unwrap();
        assert_eq!(a.quic(), "10.0.0.10:7400".parse().unwrap());
        assert_eq!(a.listen(), "0.0.0.0:7400".parse().unwrap());
        assert_eq!(a.api(), "127.0.0.1:7480".parse().unwrap());
        let p = AddressPlan::parse_tsv("gz\tfd00::1\t7400\t7480\n").unwrap();
        assert_eq!(p.get(&NodeId::parse("gz").unwrap()).unwrap().listen(), "[::]:7400".parse().unwrap());
    }

    #[test]
    fn bad_plans_are_named() {
        let e = AddressPlan::parse_tsv("gz\t10.0.0.1\t7400\n").unwrap_err().to_string();
        assert!(e.starts_with("line 1: expected 4"), "{e}");
        let e = AddressPlan::parse_tsv("gz\tlocalhost\t7400\t7480\n").unwrap_err().to_string();
        assert!(e.contains("not an IP address"), "{e}");
        let e = AddressPlan::parse_tsv("gz\t10.0.0.1\t0\t7480\n").unwrap_err().to_string();
        assert!(e.contains("quic_port"), "{e}");
        let e = AddressPlan::parse_tsv("gz\t10.0.0.1\t1\t2\ngz\t10.0.0.1\t1\t2\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("twice"), "{e}");

        let t = tree();
        let mut p = AddressPlan::loopback(&t, 20_000).unwrap();
        let first = t.offices[1].id.clone();
        let clash = *p.get(&t.offices[2].id).unwrap();
        p.insert(first, clash);
        assert!(matches!(p.check(&t), Err(PlanError::Clash { .. })));
        let mut p = AddressPlan::default();
        assert!(matches!(p.check(&t), Err(PlanError::Missing(_))));
        p = AddressPlan::parse_tsv("gz\t10.0.0.1\t7400\t7480\n").unwrap();
        assert!(matches!(p.check(&t), Err(PlanError::Missing(_))));
    }
}
