//! `jobmesh deploy render` over the whole province, and the deploy/ files
//! that operators copy: every rendered config parses with the node's own
//! parser, every certificate passes the node's own start-up check (chains to
//! the CA, names its office, matches its key), every office's parent is in
//! the tree, and rendering again keeps every key. No node is started and no
//! packet is sent.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use jobmesh_node::config::Config;
use jobmesh_node::deploy::address_plan::AddressPlan;
use jobmesh_node::deploy::render::{self, read_index, RenderOptions};
use jobmesh_node::pki;
use jobmesh_node::tls::NodeTls;
use jobmesh_protocol::topology::Topology;
use jobmesh_protocol::NodeId;

const BIN: &str = env!("CARGO_BIN_EXE_jobmesh");
/// Rendering 381 offices takes well under a second; this bound only catches
/// something pathological (a process per office, a slow key type).
const RENDER_BOUND: Duration = Duration::from_secs(30);

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn province() -> (PathBuf, Topology) {
    let file = deploy_dir().join("topology/guizhou-offices.tsv");
    let topo = Topology::parse_tsv(&std::fs::read_to_string(&file).unwrap()).unwrap();
    (file, topo)
}

fn render_cli(topology: &Path, out: &Path, extra: &[&str]) -> String {
    let started = Instant::now();
    let o = Command::new(BIN)
        .args(["deploy", "render", "--topology"])
        .arg(topology)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "render failed: {stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    let took = started.elapsed();
    assert!(took < RENDER_BOUND, "rendering took {took:?}");
    println!("rendered in {took:?}: {stdout}");
    stdout
}

/// Every key file under OUT/offices, with its bytes.
fn keys(out: &Path) -> HashMap<PathBuf, Vec<u8>> {
    let mut m = HashMap::new();
    for office in std::fs::read_dir(out.join("offices")).unwrap() {
        for f in std::fs::read_dir(office.unwrap().path().join("pki")).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "key" || e == "pem") {
                m.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    m
}

#[test]
fn the_whole_province_renders_and_every_office_checks_out() {
    let (tsv, topo) = province();
    assert_eq!(topo.len(), 381);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("rendered");
    let said = render_cli(&tsv, &out, &[]);
    assert!(said.contains("381 new certificates, 0 kept"), "{said}");

    let ca_pem = std::fs::read(out.join("pki/ca.pem")).unwrap();
    let other_ca = pki::Ca::generate(10).unwrap();
    let entries = read_index(&out).unwrap();
    assert_eq!(entries.len(), 381);
    let ids: HashSet<NodeId> = topo.ids().into_iter().collect();
    let by_id: HashMap<&NodeId, &render::IndexEntry> = entries.iter().map(|e| (&e.id, e)).collect();
    let mut sockets = HashSet::new();
    for e in &entries {
        // The tree: every office's parent is in it, and the index says so.
        assert!(ids.contains(&e.id), "{} is not in the topology", e.id);
        assert_eq!(e.parent, e.id.parent());
        if let Some(p) = &e.parent {
            assert!(ids.contains(p), "the parent {p} of {} is not in the tree", e.id);
        }
        assert!(e.quic.ip().is_loopback() && e.api.ip().is_loopback());
        assert!(sockets.insert(e.quic) && sockets.insert(e.api), "{}: a port is used twice", e.id);

        // The config, through the node's own parser.
        let folder = out.join(&e.folder);
        let cfg = Config::load(&e.config(&out)).unwrap_or_else(|err| panic!("{}: {err}", e.id));
        assert_eq!(cfg.node_id, e.id);
        assert_eq!(cfg.api, e.api);
        let has_children = topo.offices.iter().any(|o| e.id.is_parent_of(&o.id));
        assert_eq!(cfg.listen, has_children.then_some(e.quic), "{}", e.id);
        match (&cfg.parent, &e.parent) {
            (Some(p), Some(expected)) => {
                assert_eq!(&p.node_id, expected);
                assert_eq!(p.addr, by_id[expected].quic, "{} dials its parent's QUIC address", e.id);
            }
            (None, None) => {}
            other => panic!("{}: parent {other:?}", e.id),
        }
        let office_topo = cfg.topology.as_ref().expect("every office gets its part of the tree");
        assert_eq!(office_topo.subtree(&e.id).len(), topo.subtree(&e.id).len(), "{}", e.id);

        // Self-contained: everything the config names is inside the folder.
        for p in [&cfg.data_dir, &cfg.tls.ca_cert, &cfg.tls.cert, &cfg.tls.key] {
            assert!(p.starts_with(&folder), "{}: {} is outside {}", e.id, p.display(), folder.display());
        }
        assert_eq!(std::fs::read(&cfg.tls.ca_cert).unwrap(), ca_pem, "{}", e.id);
        assert!(!folder.join("pki/ca.key").exists(), "the CA key never goes into an office folder");

        // The certificate: the node's own start-up check (chain to the CA,
        // the office's id in it, the key that belongs to it) ...
        NodeTls::load(&cfg).unwrap_or_else(|err| panic!("{}: {err}", e.id));
        let cert = std::fs::read(&cfg.tls.cert).unwrap();
        let key = std::fs::read(&cfg.tls.key).unwrap();
        let der = rustls_pemfile::certs(&mut cert.as_slice()).next().unwrap().unwrap();
        assert_eq!(pki::node_id_of_cert(&der).unwrap(), e.id);
        // ... which is a real check: another CA does not vouch for it.
        assert!(NodeTls::from_pem(&e.id, other_ca.cert_pem().as_bytes(), &cert, &key).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&cfg.tls.key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", cfg.tls.key.display());
        }
    }

    // Rendering again keeps every key and certificate.
    let before = keys(&out);
    assert_eq!(before.len(), 3 * 381);
    let said = render_cli(&tsv, &out, &[]);
    assert!(said.contains("0 new certificates, 381 kept"), "{said}");
    assert!(keys(&out) == before, "a re-render changed a key or certificate");
}

#[test]
fn the_production_address_plan_covers_the_province_and_renders() {
    let (_, topo) = province();
    let plan_file = deploy_dir().join("topology/guizhou-addresses.tsv");
    let plan = AddressPlan::parse_tsv(&std::fs::read_to_string(&plan_file).unwrap()).unwrap();
    plan.check(&topo).unwrap();
    assert_eq!(plan.len(), topo.len());

    // Render through the library (the CLI path is covered above); no node
    // starts, so these addresses are never used.
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = RenderOptions::new(tmp.path());
    opts.ca_dir = Some(tmp.path().join("ca"));
    let r = render::render(&topo, &plan, &opts).unwrap();
    assert!(r.ca_created && tmp.path().join("ca/ca.key").exists());
    for e in &r.entries {
        let cfg = Config::load(&e.config(tmp.path())).unwrap_or_else(|err| panic!("{}: {err}", e.id));
        assert_eq!(cfg.api, "127.0.0.1:7480".parse().unwrap(), "the API stays on loopback");
        if let Some(listen) = cfg.listen {
            assert_eq!(listen, "0.0.0.0:7400".parse().unwrap());
        }
        if let Some(p) = &cfg.parent {
            assert_eq!(p.addr, plan.get(&p.node_id).unwrap().quic());
            assert!(p.addr.to_string().starts_with("10."), "{}", p.addr);
        }
    }
    assert_eq!(r.entries.len(), 381);
}

#[test]
fn the_example_configs_parse_with_the_nodes_parser() {
    let dir = deploy_dir().join("examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(cfg.topology.is_some(), "{}", path.display());
            n += 1;
        }
    }
    assert!(n >= 4, "expected the province, city, county and station examples in {}", dir.display());
}

#[test]
fn the_systemd_unit_runs_a_command_line_that_parses() {
    use clap::Parser;
    let unit = std::fs::read_to_string(deploy_dir().join("systemd/jobmesh@.service")).unwrap();
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("an ExecStart line");
    let words: Vec<String> = exec.split_whitespace().map(|w| w.replace("%S", "/var/lib").replace("%i", "gz")).collect();
    assert!(words[0].ends_with("/jobmesh"), "{exec}");
    let cli = jobmesh::cli::Cli::try_parse_from(&words).unwrap_or_else(|e| panic!("{exec}: {e}"));
    assert!(matches!(cli.command, jobmesh::cli::Command::Node(jobmesh_node::cli::Command::Run(_))), "{exec}");
    for line in [
        "User=jobmesh",
        "StateDirectory=jobmesh/%i",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
}
