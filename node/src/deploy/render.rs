//! `jobmesh deploy render`: one self-contained folder per office.
//!
//! From a topology (the province's TSV) and an [`AddressPlan`], [`render`]
//! writes:
//!
//! ```text
//! OUT/pki/ca.pem, ca.key          the province CA (created if absent; --ca DIR elsewhere)
//! OUT/topology.tsv                the whole tree, as rendered
//! OUT/addresses.tsv               the address plan, as rendered
//! OUT/index.tsv                   id, folder, quic, api, parent: what went where
//! OUT/offices/gz_guiyang/         one folder per office, copied as is to its machine:
//!     node.toml                   its config (relative paths: the folder moves as a whole)
//!     offices.tsv                 its ancestors and its subtree (so silent offices show as missing)
//!     pki/ca.pem                  the CA certificate (never the CA key)
//!     pki/gz_guiyang.pem, .key    its certificate and key
//!     data/                       created by the node on first start
//! ```
//!
//! Rendering again keeps every certificate and key that still chains to the
//! CA, names its office, matches its key and has more than
//! [`RENEW_BEFORE_DAYS`] left; it rewrites only files whose content changes
//! and never touches `data/`. Folders of offices that left the topology are
//! reported, not deleted. Everything runs in this process (no `jobmesh ca`
//! per office): ECDSA P-256 keys take well under a millisecond each.

use std::io::Write;
use std::path::{Path, PathBuf};

use jobmesh_protocol::topology::{Office, Topology};
use jobmesh_protocol::NodeId;

use super::address_plan::{AddressPlan, PlanError};
use crate::pki::{self, Ca, PkiError};
use crate::tls::NodeTls;

/// A certificate with fewer days than this left is reissued on render.
pub const RENEW_BEFORE_DAYS: i64 = 30;
/// The config file's name in an office folder.
pub const CONFIG_FILE: &str = "node.toml";
/// The office's copy of its part of the tree.
pub const OFFICE_TOPOLOGY_FILE: &str = "offices.tsv";
/// The index of a rendered folder.
pub const INDEX_FILE: &str = "index.tsv";
/// Where office folders go under OUT.
pub const OFFICES_DIR: &str = "offices";
/// An office's data folder, relative to its own folder.
pub const DATA_DIR: &str = "data";
/// An office's PKI folder, relative to its own folder.
pub const PKI_DIR: &str = "pki";
/// Largest index file read.
const MAX_INDEX_BYTES: u64 = 16 * 1024 * 1024;

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The address plan does not cover the topology, or clashes.
    #[error("address plan: {0}")]
    Plan(#[from] PlanError),
    /// Creating or loading the CA, or issuing a certificate, failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The CA folder holds a CA key without its certificate.
    #[error("{}: the CA key is there but not its certificate {}", .key.display(), .cert.display())]
    HalfCa { key: PathBuf, cert: PathBuf },
    /// A certificate has to be issued, and the CA key is not available.
    #[error("{id} needs a new certificate, but {} is absent (issuing needs the CA key)", .key.display())]
    NoCaKey { id: NodeId, key: PathBuf },
    /// Reading or writing a file failed.
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// An index file is malformed.
    #[error("{}: line {line}: {problem}", .path.display())]
    Index { path: PathBuf, line: usize, problem: String },
}

/// Settings of a render beyond the tree and the plan.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// The output folder.
    pub out: PathBuf,
    /// The CA folder; `OUT/pki` when `None`.
    pub ca_dir: Option<PathBuf>,
    /// Validity of newly issued office certificates.
    pub days: u32,
    /// Written into every config when set (the demo shortens it so that a
    /// mesh started all at once links up within a second).
    pub reconnect_max_ms: Option<u64>,
    /// Written into every config when set.
    pub stale_after_s: Option<u64>,
    /// Give offices with no office below them a `listen` address too. The
    /// demo does, so that every node binds exactly the port it was given
    /// and none takes an ephemeral port that another was about to bind.
    pub listen_on_leaves: bool,
    /// Point every office two or more levels below the root (counties,
    /// stations) at the root as its `[[fallback]]`, so that it reaches the
    /// province directly while its parent is down. Off by default: the
    /// rendered configs then carry the tables commented out.
    pub failover: bool,
}

impl RenderOptions {
    pub fn new(out: impl Into<PathBuf>) -> RenderOptions {
        RenderOptions {
            out: out.into(),
            ca_dir: None,
            days: pki::DEFAULT_NODE_DAYS,
            reconnect_max_ms: None,
            stale_after_s: None,
            listen_on_leaves: false,
            failover: false,
        }
    }

    /// The CA folder this render uses.
    pub fn ca_dir(&self) -> PathBuf {
        self.ca_dir.clone().unwrap_or_else(|| self.out.join("pki"))
    }
}

/// One office as rendered (a row of the index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub id: NodeId,
    /// The office's folder, relative to OUT (`offices/gz_guiyang`).
    pub folder: PathBuf,
    /// Where its children dial it.
    pub quic: std::net::SocketAddr,
    /// Its HTTP API and web page.
    pub api: std::net::SocketAddr,
    pub parent: Option<NodeId>,
}

impl IndexEntry {
    /// The office's config file, given the rendered folder OUT.
    pub fn config(&self, out: &Path) -> PathBuf {
        out.join(&self.folder).join(CONFIG_FILE)
    }
}

/// What a render did.
#[derive(Debug)]
pub struct Rendered {
    pub out: PathBuf,
    pub index_file: PathBuf,
    pub entries: Vec<IndexEntry>,
    /// A new CA was created.
    pub ca_created: bool,
    /// Offices that got a new certificate and key.
    pub issued: Vec<NodeId>,
    /// Offices whose certificate and key were kept.
    pub kept: usize,
    /// Office folders under OUT/offices that the topology no longer lists.
    pub orphans: Vec<PathBuf>,
}

/// The CA as far as this render needs it: its certificate always, its key
/// only if a certificate has to be issued (so a CA key kept offline is
/// enough for re-renders that change only configs).
enum CaSource {
    Signer(Box<Ca>),
    CertOnly { pem: String, key: PathBuf },
}

impl CaSource {
    fn open(dir: &Path) -> Result<(CaSource, bool), RenderError> {
        let files = pki::ca_paths(dir);
        match (files.cert.exists(), files.key.exists()) {
            (true, true) => Ok((CaSource::Signer(Box::new(pki::load_ca(dir)?)), false)),
            (true, false) => {
                let pem = std::fs::read_to_string(&files.cert).map_err(|source| io(&files.cert, source))?;
                Ok((CaSource::CertOnly { pem, key: files.key }, false))
            }
            (false, true) => Err(RenderError::HalfCa { key: files.key, cert: files.cert }),
            (false, false) => {
                pki::init_ca(dir, pki::DEFAULT_CA_DAYS, false)?;
                Ok((CaSource::Signer(Box::new(pki::load_ca(dir)?)), true))
            }
        }
    }

    fn cert_pem(&self) -> &str {
        match self {
            CaSource::Signer(ca) => ca.cert_pem(),
            CaSource::CertOnly { pem, .. } => pem,
        }
    }

    fn issue(&self, id: &NodeId, days: u32) -> Result<pki::IssuedPem, RenderError> {
        match self {
            CaSource::Signer(ca) => Ok(ca.issue(id, days)?),
            CaSource::CertOnly { key, .. } => Err(RenderError::NoCaKey { id: id.clone(), key: key.clone() }),
        }
    }
}

/// Render every office of `topo` into `opts.out` (see the module doc).
pub fn render(topo: &Topology, plan: &AddressPlan, opts: &RenderOptions) -> Result<Rendered, RenderError> {
    plan.check(topo)?;
    let out = &opts.out;
    create_dir(out, false)?;
    let ca_dir = opts.ca_dir();
    let (ca, ca_created) = CaSource::open(&ca_dir)?;

    let offices_dir = out.join(OFFICES_DIR);
    create_dir(&offices_dir, false)?;
    let mut entries = Vec::with_capacity(topo.len());
    let mut issued = Vec::new();
    let mut kept = 0;
    for office in &topo.offices {
        let id = &office.id;
        let folder_rel = Path::new(OFFICES_DIR).join(id.file_stem());
        let folder = out.join(&folder_rel);
        let pki_dir = folder.join(PKI_DIR);
        create_dir(&folder, false)?;
        create_dir(&pki_dir, true)?;

        write_if_changed(&pki_dir.join(pki::CA_CERT_FILE), ca.cert_pem().as_bytes(), false)?;
        let files = pki::node_cert_paths(&pki_dir, id);
        if cert_is_current(ca.cert_pem(), id, &files.cert, &files.key) {
            kept += 1;
        } else {
            let pem = ca.issue(id, opts.days)?;
            // Key first: a crash between the two leaves a certificate that
            // does not match its key, which the next render detects.
            write_if_changed(&files.key, pem.key_pem.as_bytes(), true)?;
            write_if_changed(&files.cert, pem.cert_pem.as_bytes(), false)?;
            issued.push(id.clone());
        }

        write_if_changed(&folder.join(OFFICE_TOPOLOGY_FILE), office_topology(topo, id).to_tsv().as_bytes(), false)?;
        let listens = opts.listen_on_leaves || topo.offices.iter().any(|o| id.is_parent_of(&o.id));
        let toml = node_toml(office, topo, plan, listens, opts);
        write_if_changed(&folder.join(CONFIG_FILE), toml.as_bytes(), false)?;

        let address = plan.get(id).ok_or_else(|| PlanError::Missing(id.clone()))?;
        entries.push(IndexEntry {
            id: id.clone(),
            folder: folder_rel,
            quic: address.quic(),
            api: address.api(),
            parent: id.parent(),
        });
    }

    write_if_changed(&out.join("topology.tsv"), topo.to_tsv().as_bytes(), false)?;
    write_if_changed(&out.join("addresses.tsv"), plan.to_tsv(topo).as_bytes(), false)?;
    let index_file = out.join(INDEX_FILE);
    write_if_changed(&index_file, index_tsv(&entries).as_bytes(), false)?;

    let orphans = orphan_folders(&offices_dir, topo)?;
    Ok(Rendered { out: out.clone(), index_file, entries, ca_created, issued, kept, orphans })
}

/// True when the office's certificate and key exist, chain to the CA, name
/// the office, belong together, and have more than [`RENEW_BEFORE_DAYS`]
/// left. Any doubt means "issue a new one".
fn cert_is_current(ca_pem: &str, id: &NodeId, cert: &Path, key: &Path) -> bool {
    let (Ok(cert_pem), Ok(key_pem)) = (std::fs::read(cert), std::fs::read(key)) else { return false };
    // The node's own start-up check: chain, id, key.
    if NodeTls::from_pem(id, ca_pem.as_bytes(), &cert_pem, &key_pem).is_err() {
        return false;
    }
    let Some(Ok(der)) = rustls_pemfile::certs(&mut cert_pem.as_slice()).next() else { return false };
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(&der) else { return false };
    parsed.validity().time_to_expiration().is_some_and(|left| left.whole_days() > RENEW_BEFORE_DAYS)
}

/// The part of the tree an office keeps: its ancestors (the topology format
/// needs the root, and the page names the parent) and its subtree (so that
/// an office below it that never reported shows as missing).
pub fn office_topology(topo: &Topology, id: &NodeId) -> Topology {
    let offices = topo.offices.iter().filter(|o| o.id.is_in_subtree_of(id) || o.id.is_ancestor_of(id)).cloned();
    Topology { offices: offices.collect() }
}

/// A TOML string literal.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// One line of a comment: no line breaks from a topology's names.
fn comment(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

fn node_toml(office: &Office, topo: &Topology, plan: &AddressPlan, listens: bool, opts: &RenderOptions) -> String {
    let id = &office.id;
    let stem = id.file_stem();
    let mut s = String::new();
    let names: Vec<&str> =
        [office.name.as_str(), office.name_zh.as_str()].into_iter().filter(|n| !n.is_empty()).collect();
    s.push_str(&format!("# {id}: {}\n", comment(&names.join(" / "))));
    s.push_str("# Rendered by `jobmesh deploy render`; rendering again rewrites this file.\n");
    s.push_str("# Relative paths are relative to this folder, which moves to the office's machine as a whole.\n");
    let Some(address) = plan.get(id) else { return s };
    s.push_str(&format!("node_id  = {}\n", quote(id.as_str())));
    s.push_str(&format!("data_dir = {}\n", quote(DATA_DIR)));
    if listens {
        s.push_str(&format!("listen   = {}   # QUIC, for its children\n", quote(&address.listen().to_string())));
    } else {
        s.push_str("# listen: none, no office below this one (rendering again adds it when one is added)\n");
    }
    s.push_str(&format!("api      = {}   # HTTP API and web page\n", quote(&address.api().to_string())));
    s.push_str(&format!("topology = {}\n", quote(OFFICE_TOPOLOGY_FILE)));
    if let Some(ms) = opts.reconnect_max_ms {
        s.push_str(&format!("reconnect_max_ms = {ms}\n"));
    }
    if let Some(secs) = opts.stale_after_s {
        s.push_str(&format!("stale_after_s = {secs}\n"));
    }
    if let Some(parent) = id.parent() {
        let parent_addr = plan.get(&parent).map(|a| a.quic().to_string()).unwrap_or_default();
        let parent_name = topo.get(&parent).map(|o| comment(&o.name)).unwrap_or_default();
        s.push_str(&format!("\n[parent]   # {parent_name}\n"));
        s.push_str(&format!("node_id = {}\n", quote(parent.as_str())));
        s.push_str(&format!("addr    = {}\n", quote(&parent_addr)));
    }
    if let Some(root) = id.parent().and_then(|p| p.parent()).map(|_| topo.root().clone()) {
        // A county or station: the province as its fallback (see README,
        // "Failover"); written commented out unless rendered with --failover.
        let root_addr = plan.get(&root).map(|a| a.quic().to_string()).unwrap_or_default();
        let c = if opts.failover { "" } else { "# " };
        if !opts.failover {
            s.push_str(
                "\n# Failover (render with --failover): reach the province directly while the parent is down.\n",
            );
        } else {
            s.push_str("\n# Failover: reach the province directly while the parent is down.\n");
        }
        s.push_str(&format!("{c}[[fallback]]\n"));
        s.push_str(&format!("{c}node_id = {}\n", quote(root.as_str())));
        s.push_str(&format!("{c}addr    = {}\n", quote(&root_addr)));
    }
    s.push_str("\n[tls]\n");
    s.push_str(&format!("ca_cert = {}\n", quote(&format!("{PKI_DIR}/{}", pki::CA_CERT_FILE))));
    s.push_str(&format!("cert    = {}\n", quote(&format!("{PKI_DIR}/{stem}.pem"))));
    s.push_str(&format!("key     = {}\n", quote(&format!("{PKI_DIR}/{stem}.key"))));
    s
}

fn index_tsv(entries: &[IndexEntry]) -> String {
    let mut s = String::from("id\tfolder\tquic\tapi\tparent\n");
    for e in entries {
        let parent = e.parent.as_ref().map(NodeId::to_string).unwrap_or_default();
        s.push_str(&format!("{}\t{}\t{}\t{}\t{parent}\n", e.id, e.folder.display(), e.quic, e.api));
    }
    s
}

/// Read `OUT/index.tsv`.
pub fn read_index(out: &Path) -> Result<Vec<IndexEntry>, RenderError> {
    let path = out.join(INDEX_FILE);
    let meta = std::fs::metadata(&path).map_err(|source| io(&path, source))?;
    if meta.len() > MAX_INDEX_BYTES {
        return Err(RenderError::Index { path, line: 0, problem: format!("larger than {MAX_INDEX_BYTES} bytes") });
    }
    let text = std::fs::read_to_string(&path).map_err(|source| io(&path, source))?;
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') || line.starts_with("id\t") {
            continue;
        }
        let bad = |problem: String| RenderError::Index { path: path.clone(), line: i + 1, problem };
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() != 5 {
            return Err(bad(format!("expected 5 tab-separated columns, found {}", cols.len())));
        }
        let id = NodeId::parse(cols[0]).map_err(|e| bad(e.to_string()))?;
        let folder = PathBuf::from(cols[1]);
        if folder.is_absolute() || folder.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            return Err(bad(format!("folder {:?} is not inside the rendered folder", cols[1])));
        }
        let addr = |s: &str| s.parse().map_err(|_| bad(format!("{s:?} is not an address")));
        let parent = match cols[4] {
            "" => None,
            p => Some(NodeId::parse(p).map_err(|e| bad(e.to_string()))?),
        };
        entries.push(IndexEntry { id, folder, quic: addr(cols[2])?, api: addr(cols[3])?, parent });
    }
    Ok(entries)
}

fn orphan_folders(offices_dir: &Path, topo: &Topology) -> Result<Vec<PathBuf>, RenderError> {
    let stems: std::collections::HashSet<String> = topo.offices.iter().map(|o| o.id.file_stem()).collect();
    let mut orphans = Vec::new();
    for entry in std::fs::read_dir(offices_dir).map_err(|source| io(offices_dir, source))? {
        let entry = entry.map_err(|source| io(offices_dir, source))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && !stems.contains(&name) {
            orphans.push(entry.path());
        }
    }
    orphans.sort();
    Ok(orphans)
}

fn io(path: &Path, source: std::io::Error) -> RenderError {
    RenderError::Io { path: path.to_owned(), source }
}

fn create_dir(dir: &Path, private: bool) -> Result<(), RenderError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        // A PKI folder holds a private key: only its owner may list it.
        b.mode(if private { 0o700 } else { 0o755 });
    }
    b.create(dir).map_err(|source| io(dir, source))
}

/// Write a file through a temporary name and a rename, unless it already
/// holds exactly `contents` (a re-render leaves unchanged files alone).
/// There is no fsync: a render that a crash cuts short is simply run again,
/// and the certificate check above reissues whatever came out damaged.
fn write_if_changed(path: &Path, contents: &[u8], private: bool) -> Result<bool, RenderError> {
    if std::fs::read(path).is_ok_and(|old| old == contents) {
        return Ok(false);
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    let mode = if private { 0o600 } else { 0o644 };
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        #[cfg(unix)]
        {
            // The mode given at creation is filtered by the umask.
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        f.write_all(contents)?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|source| io(path, source))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn id(s: &str) -> NodeId {
        NodeId::parse(s).unwrap()
    }

    #[test]
    fn a_small_tree_renders_parses_and_keeps_its_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let topo = Topology::generated("gz", &[2, 1]);
        let plan = AddressPlan::loopback(&topo, 30_000).unwrap();
        let opts = RenderOptions::new(tmp.path().join("out"));
        let r = render(&topo, &plan, &opts).unwrap();
        assert!(r.ca_created);
        assert_eq!((r.issued.len(), r.kept), (5, 0));
        assert_eq!(read_index(&opts.out).unwrap(), r.entries);

        let root = Config::load(&r.entries[0].config(&opts.out)).unwrap();
        assert!(root.parent.is_none() && root.listen.is_some());
        assert_eq!(root.topology.as_ref().unwrap().len(), 5);
        let leaf_entry = r.entries.iter().find(|e| e.id == id("gz/c0/k0")).unwrap();
        let leaf = Config::load(&leaf_entry.config(&opts.out)).unwrap();
        assert!(leaf.listen.is_none(), "a leaf does not listen");
        assert_eq!(leaf.parent.as_ref().unwrap().addr, r.entries[1].quic);
        // ancestors and subtree: gz, gz/c0, gz/c0/k0
        assert_eq!(leaf.topology.as_ref().unwrap().len(), 3);
        let key = std::fs::read(&leaf.tls.key).unwrap();

        let again = render(&topo, &plan, &opts).unwrap();
        assert!(!again.ca_created);
        assert_eq!((again.issued.len(), again.kept), (0, 5));
        assert_eq!(std::fs::read(&leaf.tls.key).unwrap(), key);

        // A certificate for the wrong office is replaced.
        std::fs::copy(&root.tls.cert, &leaf.tls.cert).unwrap();
        let third = render(&topo, &plan, &opts).unwrap();
        assert_eq!(third.issued, vec![id("gz/c0/k0")]);
        NodeTls::load(&leaf).unwrap();

        // The demo's option: leaves listen too.
        let everywhere = RenderOptions { listen_on_leaves: true, ..opts.clone() };
        render(&topo, &plan, &everywhere).unwrap();
        assert_eq!(Config::load(&leaf_entry.config(&opts.out)).unwrap().listen, Some(leaf_entry.quic));

        // An office that left the tree is reported.
        let smaller = Topology { offices: topo.offices[..3].to_vec() };
        let r = render(&smaller, &plan, &opts).unwrap();
        assert_eq!(r.orphans.len(), 2);
    }

    #[test]
    fn a_ca_without_its_key_renders_configs_but_cannot_issue() {
        let tmp = tempfile::tempdir().unwrap();
        let topo = Topology::generated("gz", &[1]);
        let plan = AddressPlan::loopback(&topo, 30_000).unwrap();
        let opts = RenderOptions::new(tmp.path());
        render(&topo, &plan, &opts).unwrap();
        let ca_key = opts.ca_dir().join("ca.key");
        std::fs::rename(&ca_key, tmp.path().join("offline.key")).unwrap();
        render(&topo, &plan, &opts).unwrap();
        let bigger = Topology::generated("gz", &[2]);
        let plan = AddressPlan::loopback(&bigger, 30_000).unwrap();
        let e = render(&bigger, &plan, &opts).unwrap_err().to_string();
        assert!(e.contains("gz/c1 needs a new certificate"), "{e}");
        std::fs::rename(tmp.path().join("offline.key"), &ca_key).unwrap();
        std::fs::remove_file(opts.ca_dir().join("ca.pem")).unwrap();
        let e = render(&bigger, &plan, &opts).unwrap_err().to_string();
        assert!(e.contains("the CA key is there but not its certificate"), "{e}");
    }
}
