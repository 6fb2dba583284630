//! Network namespaces for the chaos tests' production-like layer: every
//! office in its own namespace, a veth pair per tree link, private addresses
//! (`10.77.0.0/16`) that exist only inside the namespaces made here.
//!
//! The kernels these tests run on have neither `sch_netem` nor iptables
//! modules, so a cut is the link's veth set down (verified by
//! `tests/chaos_netns.rs`: a datagram that crossed the link before does not
//! after), and degradation is the fault proxy ([`crate::proxy`]) running
//! inside the child's namespace.
//!
//! Nothing on the host is touched but the namespaces this module creates:
//! veths are created directly inside them (no interface ever exists in the
//! host namespace), every name starts with `jmc-<pid>-<n>-`, and dropping
//! [`Netns`] deletes them (the veths go with them), on panic too. Namespaces
//! left behind by a test process that was itself killed are reaped by
//! [`reap_stale`] (only `jmc-<pid>-` names whose pid no longer runs).

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every namespace made here.
pub const PREFIX: &str = "jmc-";
/// Links that fit the address plan (`/30` each in `10.77.0.0/16`).
pub const MAX_LINKS: usize = 16_384;

static INSTANCE: AtomicU32 = AtomicU32::new(0);

/// Run `ip ARGS`; `Err` with its stderr on failure.
pub fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run `ip {}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("`ip {}` failed ({}): {}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn euid() -> Option<u32> {
    let out = Command::new("id").arg("-u").output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// `Ok` when this process can make namespaces and veths (root, iproute2,
/// `ip netns add` works); else why not, for the "skipped" line.
pub fn available() -> Result<(), String> {
    match euid() {
        Some(0) => {}
        Some(u) => return Err(format!("running as uid {u}, not root")),
        None => return Err("cannot tell the user id (`id -u` failed)".into()),
    }
    ip(&["-V"]).map_err(|e| format!("iproute2 missing: {e}"))?;
    let probe = format!("{PREFIX}{}-probe", std::process::id());
    ip(&["netns", "add", &probe]).map_err(|e| format!("`ip netns add` does not work here: {e}"))?;
    let veth = ip(&["-n", &probe, "link", "add", "a0", "type", "veth", "peer", "name", "b0"]);
    let _ = ip(&["netns", "del", &probe]);
    veth.map_err(|e| format!("veth pairs do not work here: {e}"))?;
    Ok(())
}

/// Delete `jmc-<pid>-…` namespaces whose process is gone (a test process
/// that was killed before its guard could run).
pub fn reap_stale() {
    let Ok(list) = ip(&["netns", "list"]) else { return };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(PREFIX) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// The two ends of link number `i`: `(parent side, child side)`, a `/30`.
pub fn link_addrs(i: usize) -> (Ipv4Addr, Ipv4Addr) {
    assert!(i < MAX_LINKS, "link {i} is beyond the address plan ({MAX_LINKS} links)");
    let base = (i * 4) as u32;
    let net = u32::from(Ipv4Addr::new(10, 77, 0, 0)) + base;
    (Ipv4Addr::from(net + 1), Ipv4Addr::from(net + 2))
}

/// The namespaces of one cluster; dropping it deletes them all.
#[derive(Debug)]
pub struct Netns {
    prefix: String,
    made: Vec<String>,
}

impl Netns {
    /// A new, empty set with a unique prefix.
    pub fn new() -> Netns {
        reap_stale();
        let n = INSTANCE.fetch_add(1, Ordering::SeqCst);
        Netns { prefix: format!("{PREFIX}{}-{n}-", std::process::id()), made: Vec::new() }
    }

    /// The namespace name for a short `tag`.
    pub fn name(&self, tag: &str) -> String {
        format!("{}{tag}", self.prefix)
    }

    /// Create namespace `tag` with its loopback up; returns its name.
    pub fn add(&mut self, tag: &str) -> Result<String, String> {
        let name = self.name(tag);
        ip(&["netns", "add", &name])?;
        self.made.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"])?;
        Ok(name)
    }

    /// A veth pair `if_a`@`ns_a` — `if_b`@`ns_b` with the given `/30`
    /// addresses, both ends up.
    pub fn link(
        &self,
        ns_a: &str,
        if_a: &str,
        addr_a: Ipv4Addr,
        ns_b: &str,
        if_b: &str,
        addr_b: Ipv4Addr,
    ) -> Result<(), String> {
        ip(&["-n", ns_a, "link", "add", if_a, "type", "veth", "peer", "name", if_b, "netns", ns_b])?;
        ip(&["-n", ns_a, "addr", "add", &format!("{addr_a}/30"), "dev", if_a])?;
        ip(&["-n", ns_b, "addr", "add", &format!("{addr_b}/30"), "dev", if_b])?;
        set_link(ns_a, if_a, true)?;
        set_link(ns_b, if_b, true)
    }

    /// Namespaces made so far.
    pub fn names(&self) -> &[String] {
        &self.made
    }
}

impl Default for Netns {
    fn default() -> Self {
        Netns::new()
    }
}

/// Set interface `dev` in namespace `ns` up or down.
pub fn set_link(ns: &str, dev: &str, up: bool) -> Result<(), String> {
    ip(&["-n", ns, "link", "set", "dev", dev, if up { "up" } else { "down" }]).map(|_| ())
}

/// A command that runs `program` inside namespace `ns`
/// (`ip netns exec NS PROGRAM`: iproute2 execs in place, so the child's
/// pid is the program's).
pub fn exec_in(ns: &str, program: &std::path::Path) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(program);
    c
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in self.made.drain(..).rev() {
            if let Err(e) = ip(&["netns", "del", &n]) {
                eprintln!("netns: could not delete {n}: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_plan() {
        assert_eq!(link_addrs(0), (Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 2)));
        assert_eq!(link_addrs(64), (Ipv4Addr::new(10, 77, 1, 1), Ipv4Addr::new(10, 77, 1, 2)));
        assert_eq!(link_addrs(MAX_LINKS - 1), (Ipv4Addr::new(10, 77, 255, 253), Ipv4Addr::new(10, 77, 255, 254)));
    }
}
