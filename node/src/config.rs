//! The node's configuration file (TOML; see `../shared/design.md`, Interfaces).
//!
//! The file is parsed once into typed values: a [`Config`] holds node ids,
//! socket addresses, absolute paths and a loaded topology, so nothing later
//! re-validates strings. Relative paths are taken relative to the folder of
//! the config file. Every error names the file, the key and the problem, e.g.
//! `node.toml: parent.node_id: node id "gz/Guiyang": segment 1 ...`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use jobmesh_protocol::topology::Topology;
use jobmesh_protocol::NodeId;
use serde::Deserialize;

/// Figures older than this many seconds are shown as stale, unless the
/// config says otherwise.
pub const DEFAULT_STALE_AFTER_S: u64 = 120;
/// Default `failover_after_s`: how long the parent link must be down before
/// a node with `[[fallback]]` tables dials them.
pub const DEFAULT_FAILOVER_AFTER_S: u64 = 60;
/// Default `clock_skew_warn_s`: a link whose clocks differ by more is
/// warned about and shown as "clock N min behind/ahead".
pub const DEFAULT_CLOCK_SKEW_WARN_S: u64 = 60;
/// Most `[[fallback]]` tables (a node has only so many ancestors).
const MAX_FALLBACKS: usize = 8;
/// Longest wait between two attempts to reach the parent, by default.
pub const DEFAULT_RECONNECT_MAX_MS: u64 = 10_000;
/// Where the HTTP API listens when the config does not say.
pub const DEFAULT_API: &str = "127.0.0.1:7480";
/// Shortest allowed reconnect cap: below this a down parent would be
/// hammered with handshakes.
const MIN_RECONNECT_MAX_MS: u64 = 200;
/// Largest file read as a topology or token, so a wrong path (a disk image,
/// a log) fails fast instead of filling memory.
const MAX_SIDE_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// A config that cannot be used: which file, which key, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The config file as given on the command line.
    pub file: PathBuf,
    /// The key at fault (`parent.node_id`), or where in the file (`line 3`).
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file.display(), self.key, self.problem)
    }
}

/// The `[parent]` table: the node this one dials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentConfig {
    pub node_id: NodeId,
    pub addr: PeerAddr,
}

/// Where to dial a peer: an IP address, or a DNS name that is resolved
/// again on every dial (city machines change addresses; operators keep the
/// names in DNS). Only the shape is checked when the config is read: a
/// name that does not resolve yet is the transport's to retry, not a
/// config error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddr {
    Ip(SocketAddr),
    Name { host: String, port: u16 },
}

impl PeerAddr {
    /// The address when it is an IP address (no lookup needed).
    pub fn ip(&self) -> Option<SocketAddr> {
        match self {
            PeerAddr::Ip(a) => Some(*a),
            PeerAddr::Name { .. } => None,
        }
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Ip(a) => a.fmt(f),
            PeerAddr::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl PartialEq<SocketAddr> for PeerAddr {
    fn eq(&self, other: &SocketAddr) -> bool {
        self.ip() == Some(*other)
    }
}

/// Longest DNS name (RFC 1035: 253 characters in text form).
const MAX_HOST_NAME: usize = 253;

/// Parse `10.0.1.1:7400`, `[::1]:7400` or `zunyi.jobmesh.example:7400`.
fn parse_peer_addr(s: &str) -> Result<PeerAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(PeerAddr::Ip(a));
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err("no port (e.g. \"10.0.1.1:7400\" or \"zunyi.jobmesh.example:7400\")".into());
    };
    let port: u16 = port.parse().map_err(|_| format!("port {port:?} is not a number from 1 to 65535"))?;
    if port == 0 {
        return Err("port 0 cannot be dialed".into());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() || name.len() > MAX_HOST_NAME || !name.split('.').all(label_ok) {
        return Err(format!("{host:?} is neither an IP address nor a DNS name (letters, digits, '-' and '.')"));
    }
    Ok(PeerAddr::Name { host: host.to_owned(), port })
}

/// The `[tls]` table, as absolute (or config-relative resolved) paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    /// The province CA's certificate (`ca.pem`).
    pub ca_cert: PathBuf,
    /// This office's certificate (`gz_guiyang.pem`).
    pub cert: PathBuf,
    /// This office's private key (`gz_guiyang.key`).
    pub key: PathBuf,
}

/// One node's configuration, parsed and checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from (as given), for messages.
    pub file: PathBuf,
    pub node_id: NodeId,
    pub data_dir: PathBuf,
    /// QUIC listen address for children; `None` on a leaf that has none.
    pub listen: Option<SocketAddr>,
    /// HTTP API and web page.
    pub api: SocketAddr,
    /// Absent exactly when `node_id` is a root.
    pub parent: Option<ParentConfig>,
    pub tls: TlsPaths,
    /// The tree below this node, if configured.
    pub topology: Option<Topology>,
    /// Bearer token for the API (read from `api_token_file`, trimmed).
    pub api_token: Option<String>,
    pub stale_after_s: u64,
    /// Cap of the reconnect backoff towards the parent.
    pub reconnect_max_ms: u64,
    /// A revocation list file (`jobmesh ca revoke`) this node publishes:
    /// set at the root; the list travels down the tree from there.
    pub revocations: Option<PathBuf>,
    /// `[[fallback]]` tables: ancestors above the parent, tried in order
    /// once the parent link has been down for `failover_after_s`.
    pub fallbacks: Vec<ParentConfig>,
    pub failover_after_s: u64,
    /// `[sink.postgres]`: mirror every record held here into PostgreSQL.
    pub sink_postgres: Option<crate::sink::PostgresConfig>,
    /// A peer whose clock is off from this node's by more than this is
    /// warned about in the log and shown on the page (never refused).
    pub clock_skew_warn_s: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node_id: String,
    data_dir: String,
    listen: Option<String>,
    api: Option<String>,
    parent: Option<RawParent>,
    tls: RawTls,
    topology: Option<String>,
    api_token_file: Option<String>,
    stale_after_s: Option<u64>,
    reconnect_max_ms: Option<u64>,
    clock_skew_warn_s: Option<u64>,
    revocations: Option<String>,
    #[serde(default)]
    fallback: Vec<RawParent>,
    failover_after_s: Option<u64>,
    sink: Option<crate::sink::RawSink>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParent {
    node_id: String,
    addr: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca_cert: String,
    cert: String,
    key: String,
}

impl Config {
    /// Read and parse a config file.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
            file: file.to_owned(),
            key: "file".into(),
            problem: format!("cannot read: {e}"),
        })?;
        Config::parse(&text, file)
    }

    /// Parse config text as if read from `file` (relative paths resolve
    /// against `file`'s folder; `topology` and `api_token_file` are read).
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let p = Parser { file };
        let raw: RawConfig = toml::from_str(text).map_err(|e| p.toml_error(text, &e))?;

        let node_id = p.node_id("node_id", &raw.node_id)?;
        let data_dir = p.path("data_dir", &raw.data_dir)?;
        let listen = raw.listen.as_deref().map(|s| p.addr("listen", s)).transpose()?;
        let api = p.addr("api", raw.api.as_deref().unwrap_or(DEFAULT_API))?;

        let parent = match (raw.parent, node_id.parent()) {
            (None, None) => None,
            (None, Some(expected)) => {
                return Err(p.err(
                    "parent",
                    format!("missing: node {node_id} is not a root, so a [parent] table for {expected} is required"),
                ))
            }
            (Some(_), None) => {
                return Err(p.err(
                    "parent",
                    format!("node {node_id} is a root (one segment) and has no parent; remove the [parent] table"),
                ))
            }
            (Some(rp), Some(expected)) => {
                let pid = p.node_id("parent.node_id", &rp.node_id)?;
                if pid != expected {
                    return Err(p.err(
                        "parent.node_id",
                        format!("{pid} is not the parent of {node_id}; its parent is {expected} (the id minus its last segment)"),
                    ));
                }
                let addr =
                    parse_peer_addr(&rp.addr).map_err(|e| p.err("parent.addr", format!("{:?}: {e}", rp.addr)))?;
                Some(ParentConfig { node_id: pid, addr })
            }
        };

        let tls = TlsPaths {
            ca_cert: p.path("tls.ca_cert", &raw.tls.ca_cert)?,
            cert: p.path("tls.cert", &raw.tls.cert)?,
            key: p.path("tls.key", &raw.tls.key)?,
        };

        let topology = match raw.topology {
            None => None,
            Some(t) => {
                let path = p.path("topology", &t)?;
                let text = p.read_side_file("topology", &path)?;
                let topo =
                    Topology::parse_tsv(&text).map_err(|e| p.err("topology", format!("{}: {e}", path.display())))?;
                if topo.get(&node_id).is_none() {
                    return Err(p.err("topology", format!("{}: does not list this node ({node_id})", path.display())));
                }
                Some(topo)
            }
        };

        let api_token = match raw.api_token_file {
            None => None,
            Some(t) => {
                let path = p.path("api_token_file", &t)?;
                let token = p.read_side_file("api_token_file", &path)?.trim().to_owned();
                if token.is_empty() {
                    return Err(p.err("api_token_file", format!("{}: the token file is empty", path.display())));
                }
                if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(p.err(
                        "api_token_file",
                        format!("{}: the token must be one word without spaces or control characters", path.display()),
                    ));
                }
                Some(token)
            }
        };
        if !api.ip().is_loopback() && api_token.is_none() {
            return Err(p.err(
                "api",
                format!("{api} is not a loopback address: set api_token_file so that the API requires a bearer token"),
            ));
        }

        let stale_after_s = raw.stale_after_s.unwrap_or(DEFAULT_STALE_AFTER_S);
        if stale_after_s == 0 {
            return Err(p.err("stale_after_s", "must be at least 1".into()));
        }
        let clock_skew_warn_s = raw.clock_skew_warn_s.unwrap_or(DEFAULT_CLOCK_SKEW_WARN_S);
        if clock_skew_warn_s == 0 {
            return Err(p.err("clock_skew_warn_s", "must be at least 1".into()));
        }
        let reconnect_max_ms = raw.reconnect_max_ms.unwrap_or(DEFAULT_RECONNECT_MAX_MS);
        if reconnect_max_ms < MIN_RECONNECT_MAX_MS {
            return Err(p.err("reconnect_max_ms", format!("must be at least {MIN_RECONNECT_MAX_MS}")));
        }

        let revocations = raw.revocations.as_deref().map(|r| p.path("revocations", r)).transpose()?;
        let mut fallbacks: Vec<ParentConfig> = Vec::with_capacity(raw.fallback.len());
        if raw.fallback.len() > MAX_FALLBACKS {
            return Err(p.err("fallback", format!("{} tables; at most {MAX_FALLBACKS}", raw.fallback.len())));
        }
        for (i, f) in raw.fallback.iter().enumerate() {
            let key = format!("fallback[{i}].node_id");
            let id = p.node_id(&key, &f.node_id)?;
            if !id.is_ancestor_of(&node_id) || node_id.parent().as_ref() == Some(&id) {
                return Err(p.err(
                    &key,
                    format!("{id} cannot be a fallback of {node_id}: a fallback is an ancestor above the parent (e.g. the province)"),
                ));
            }
            if fallbacks.iter().any(|g| g.node_id == id) {
                return Err(p.err(&key, format!("{id} is listed twice")));
            }
            let addr = parse_peer_addr(&f.addr)
                .map_err(|e| p.err(&format!("fallback[{i}].addr"), format!("{:?}: {e}", f.addr)))?;
            fallbacks.push(ParentConfig { node_id: id, addr });
        }
        let failover_after_s = raw.failover_after_s.unwrap_or(DEFAULT_FAILOVER_AFTER_S);
        if failover_after_s == 0 {
            return Err(p.err("failover_after_s", "must be at least 1".into()));
        }
        let sink_postgres = match raw.sink.and_then(|s| s.postgres) {
            None => None,
            Some(raw) => Some(
                crate::sink::PostgresConfig::parse(
                    raw,
                    |key, s| p.path(key, s).map_err(|e| e.problem),
                    |key, path| p.read_side_file(key, path).map_err(|e| e.problem),
                )
                .map_err(|(key, problem)| p.err(key, problem))?,
            ),
        };

        Ok(Config {
            file: file.to_owned(),
            node_id,
            data_dir,
            listen,
            api,
            parent,
            tls,
            topology,
            api_token,
            stale_after_s,
            reconnect_max_ms,
            revocations,
            fallbacks,
            failover_after_s,
            sink_postgres,
            clock_skew_warn_s,
        })
    }

    /// A config error about `key` of this config's file (for checks made
    /// after parsing, such as the certificate's id or binding a socket).
    pub fn error(&self, key: &str, problem: impl fmt::Display) -> ConfigError {
        ConfigError { file: self.file.clone(), key: key.to_owned(), problem: problem.to_string() }
    }
}

struct Parser<'a> {
    file: &'a Path,
}

impl Parser<'_> {
    fn err(&self, key: &str, problem: String) -> ConfigError {
        ConfigError { file: self.file.to_owned(), key: key.to_owned(), problem }
    }

    fn toml_error(&self, text: &str, e: &toml::de::Error) -> ConfigError {
        // toml names the field in its message ("unknown field `lisen`",
        // "missing field `api`"); the span gives the line.
        let key = match e.span() {
            Some(span) => format!("line {}", text[..span.start.min(text.len())].matches('\n').count() + 1),
            None => "toml".to_owned(),
        };
        self.err(&key, e.message().to_owned())
    }

    fn node_id(&self, key: &str, s: &str) -> Result<NodeId, ConfigError> {
        NodeId::parse(s).map_err(|e| self.err(key, e.to_string()))
    }

    fn addr(&self, key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
        s.parse::<SocketAddr>().map_err(|_| {
            self.err(key, format!("{s:?} is not an IP address with a port (e.g. \"10.0.1.1:7400\" or \"[::1]:7400\")"))
        })
    }

    fn path(&self, key: &str, s: &str) -> Result<PathBuf, ConfigError> {
        if s.is_empty() {
            return Err(self.err(key, "empty path".into()));
        }
        let p = Path::new(s);
        if p.is_absolute() {
            return Ok(p.to_owned());
        }
        // A bare file name has an empty parent: the path stays as written,
        // relative to the current folder, which is the config's folder.
        Ok(self.file.parent().unwrap_or(Path::new("")).join(p))
    }

    fn read_side_file(&self, key: &str, path: &Path) -> Result<String, ConfigError> {
        let meta = std::fs::metadata(path).map_err(|e| self.err(key, format!("{}: {e}", path.display())))?;
        // A device or pipe reports length 0 and may never end (/dev/zero).
        if !meta.is_file() {
            return Err(self.err(key, format!("{}: not a regular file", path.display())));
        }
        if meta.len() > MAX_SIDE_FILE_BYTES {
            return Err(self.err(key, format!("{}: larger than {MAX_SIDE_FILE_BYTES} bytes", path.display())));
        }
        std::fs::read_to_string(path).map_err(|e| self.err(key, format!("{}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEAF: &str = r#"
node_id  = "gz/guiyang/guanshanhu"
data_dir = "data/guanshanhu"
listen   = "0.0.0.0:7400"
api      = "127.0.0.1:7480"
[parent]
node_id = "gz/guiyang"
addr    = "10.0.1.1:7400"
[tls]
ca_cert = "pki/ca.pem"
cert    = "pki/gz_guiyang_guanshanhu.pem"
key     = "/etc/jobmesh/gz_guiyang_guanshanhu.key"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/jobmesh/node.toml"))
    }

    fn err(text: &str) -> String {
        parse(text).expect_err("config must be refused").to_string()
    }

    #[test]
    fn the_design_example_parses() {
        let c = parse(LEAF).unwrap();
        assert_eq!(c.node_id.as_str(), "gz/guiyang/guanshanhu");
        assert_eq!(c.data_dir, Path::new("/etc/jobmesh/data/guanshanhu"));
        assert_eq!(c.listen, Some("0.0.0.0:7400".parse().unwrap()));
        assert_eq!(c.api, "127.0.0.1:7480".parse().unwrap());
        let p = c.parent.unwrap();
        assert_eq!(p.node_id.as_str(), "gz/guiyang");
        assert_eq!(p.addr, "10.0.1.1:7400".parse::<SocketAddr>().unwrap());
        assert_eq!(c.tls.ca_cert, Path::new("/etc/jobmesh/pki/ca.pem"));
        assert_eq!(c.tls.key, Path::new("/etc/jobmesh/gz_guiyang_guanshanhu.key"));
        assert_eq!(c.stale_after_s, DEFAULT_STALE_AFTER_S);
        assert_eq!(c.clock_skew_warn_s, DEFAULT_CLOCK_SKEW_WARN_S);
        assert_eq!(c.reconnect_max_ms, DEFAULT_RECONNECT_MAX_MS);
        assert!(c.topology.is_none() && c.api_token.is_none());
    }

    #[test]
    fn fallbacks_parse_in_order_with_the_failover_delay() {
        assert!(parse(LEAF).unwrap().fallbacks.is_empty());
        assert_eq!(parse(LEAF).unwrap().failover_after_s, DEFAULT_FAILOVER_AFTER_S);
        let text =
            format!("failover_after_s = 5\n{LEAF}[[fallback]]\nnode_id = \"gz\"\naddr = \"gz.jobmesh.example:7400\"\n");
        let c = parse(&text).unwrap();
        assert_eq!(c.failover_after_s, 5);
        assert_eq!(c.fallbacks.len(), 1);
        assert_eq!(c.fallbacks[0].node_id.as_str(), "gz");
        assert_eq!(c.fallbacks[0].addr, PeerAddr::Name { host: "gz.jobmesh.example".into(), port: 7400 });
    }

    #[test]
    fn a_fallback_must_be_an_ancestor_above_the_parent() {
        let with = |id: &str| format!("{LEAF}[[fallback]]\nnode_id = \"{id}\"\naddr = \"10.0.0.1:7400\"\n");
        assert!(err(&with("gz/guiyang")).contains("fallback[0].node_id"), "the parent itself");
        assert!(err(&with("gz/zunyi")).contains("cannot be a fallback"), "not an ancestor");
        assert!(err(&with("gz/guiyang/guanshanhu/x")).contains("cannot be a fallback"), "a descendant");
        let twice = format!("{}[[fallback]]\nnode_id = \"gz\"\naddr = \"10.0.0.1:7400\"\n", with("gz"));
        assert!(err(&twice).contains("listed twice"));
        assert!(err(&format!("{LEAF}[[fallback]]\nnode_id = \"gz\"\naddr = \"nope\"\n")).contains("fallback[0].addr"));
        assert!(err(&format!("failover_after_s = 0\n{LEAF}")).contains("failover_after_s"));
    }

    #[test]
    fn a_bare_file_name_resolves_against_the_current_folder() {
        let c = Config::parse(LEAF, Path::new("node.toml")).unwrap();
        assert_eq!(c.data_dir, Path::new("data/guanshanhu"));
    }

    #[test]
    fn a_root_has_no_parent_and_optional_keys_parse() {
        let c = parse(
            r#"node_id = "gz"
data_dir = "d"
stale_after_s = 30
reconnect_max_ms = 2000
clock_skew_warn_s = 300
[tls]
ca_cert = "a"
cert = "b"
key = "c"
"#,
        )
        .unwrap();
        assert!(c.parent.is_none() && c.listen.is_none());
        assert_eq!(c.api, DEFAULT_API.parse().unwrap());
        assert_eq!((c.stale_after_s, c.reconnect_max_ms, c.clock_skew_warn_s), (30, 2000, 300));
        assert!(err(&format!("clock_skew_warn_s = 0\n{LEAF}")).contains("clock_skew_warn_s"));
    }

    #[test]
    fn bad_node_ids_name_the_key() {
        let e = err(&LEAF.replace("node_id = \"gz/guiyang\"", "node_id = \"gz/Guiyang\""));
        assert!(e.starts_with("/etc/jobmesh/node.toml: parent.node_id: "), "{e}");
        assert!(e.contains("segment 1"), "{e}");
        let e = err(&LEAF.replace("gz/guiyang/guanshanhu\"", "gz//guanshanhu\""));
        assert!(e.contains(": node_id: "), "{e}");
    }

    #[test]
    fn parent_must_be_the_ids_parent_and_absent_at_the_root() {
        let e = err(&LEAF.replace("node_id = \"gz/guiyang\"", "node_id = \"gz/zunyi\""));
        assert!(e.contains("parent.node_id: gz/zunyi is not the parent of gz/guiyang/guanshanhu"), "{e}");
        let e = err(&LEAF.replace("node_id = \"gz/guiyang\"", "node_id = \"gz\""));
        assert!(e.contains("parent.node_id"), "{e}");
        let e = err(&LEAF.replace("node_id  = \"gz/guiyang/guanshanhu\"", "node_id = \"gz\""));
        assert!(e.contains(": parent: ") && e.contains("root"), "{e}");
        let no_parent = LEAF.replace("[parent]\nnode_id = \"gz/guiyang\"\naddr    = \"10.0.1.1:7400\"\n", "");
        let e = err(&no_parent);
        assert!(e.contains(": parent: missing"), "{e}");
    }

    #[test]
    fn unknown_and_missing_keys_are_refused() {
        let e = err(&LEAF.replace("listen ", "lisen "));
        assert!(e.contains("line 4") && e.contains("unknown field `lisen`"), "{e}");
        let e = err(&LEAF.replace("key     =", "keyfile ="));
        assert!(e.contains("keyfile"), "{e}");
        let e = err(&LEAF.replace("data_dir = \"data/guanshanhu\"", ""));
        assert!(e.contains("missing field `data_dir`"), "{e}");
        let e = err("node_id = ");
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn addresses_are_checked() {
        let e = err(&LEAF.replace("10.0.1.1:7400", "10.0.1.1"));
        assert!(e.contains("parent.addr: \"10.0.1.1\": no port"), "{e}");
        let e = err(&LEAF.replace("10.0.1.1:7400", "zunyi.example"));
        assert!(e.contains("parent.addr: \"zunyi.example\": no port"), "{e}");
        let e = err(&LEAF.replace("10.0.1.1:7400", "zun yi:7400"));
        assert!(e.contains("parent.addr") && e.contains("neither an IP address nor a DNS name"), "{e}");
        let e = err(&LEAF.replace("10.0.1.1:7400", "zunyi:0"));
        assert!(e.contains("port 0"), "{e}");
        let e = err(&LEAF.replace("0.0.0.0:7400", "nowhere"));
        assert!(e.contains(": listen: "), "{e}");
    }

    #[test]
    fn parent_addresses_may_be_dns_names() {
        let c = parse(&LEAF.replace("10.0.1.1:7400", "zunyi.jobmesh.example:7400")).unwrap();
        let addr = c.parent.unwrap().addr;
        assert_eq!(addr, PeerAddr::Name { host: "zunyi.jobmesh.example".into(), port: 7400 });
        assert_eq!(addr.to_string(), "zunyi.jobmesh.example:7400");
        let c = parse(&LEAF.replace("10.0.1.1:7400", "[::1]:7400")).unwrap();
        assert_eq!(c.parent.unwrap().addr, PeerAddr::Ip("[::1]:7400".parse().unwrap()));
        let c = parse(&LEAF.replace("10.0.1.1:7400", "localhost:7400")).unwrap();
        assert!(matches!(c.parent.unwrap().addr, PeerAddr::Name { port: 7400, .. }));
    }

    #[test]
    fn a_public_api_needs_a_token_file() {
        let e = err(&LEAF.replace("127.0.0.1:7480", "0.0.0.0:7480"));
        assert!(e.contains(": api: 0.0.0.0:7480 is not a loopback address"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        let public = LEAF.replace("127.0.0.1:7480", "0.0.0.0:7480");
        let with_token = format!("api_token_file = \"token\"\n{public}");
        std::fs::write(dir.path().join("token"), "  \n").unwrap();
        let e = Config::parse(&with_token, &file).unwrap_err().to_string();
        assert!(e.contains("api_token_file") && e.contains("empty"), "{e}");
        std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
        let c = Config::parse(&with_token, &file).unwrap();
        assert_eq!(c.api_token.as_deref(), Some("s3cret"));
        std::fs::remove_file(dir.path().join("token")).unwrap();
        let e = Config::parse(&with_token, &file).unwrap_err().to_string();
        assert!(e.contains(": api_token_file: ") && e.contains("token"), "{e}");
    }

    /// A side file that is a device or a pipe would never end (or block):
    /// it is refused before it is read.
    #[test]
    fn side_files_must_be_regular_files() {
        for (key, line) in
            [("topology", "topology = \"/dev/zero\""), ("api_token_file", "api_token_file = \"/dev/zero\"")]
        {
            let e = err(&format!("{line}\n{LEAF}"));
            assert!(e.contains(&format!(": {key}: ")) && e.contains("not a regular file"), "{e}");
        }
    }

    #[test]
    fn topology_is_loaded_and_must_list_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        let tsv = "id\tparent\ttier\tname\tname_zh\ngz\t\tprovince\tHQ\t\ngz/guiyang\tgz\tcity\tGuiyang\t\n\
                   gz/guiyang/guanshanhu\tgz/guiyang\tcounty\tGuanshanhu\t\n";
        std::fs::write(dir.path().join("offices.tsv"), tsv).unwrap();
        let text = format!("topology = \"offices.tsv\"\n{LEAF}");
        let c = Config::parse(&text, &file).unwrap();
        assert_eq!(c.topology.unwrap().len(), 3);

        std::fs::write(dir.path().join("offices.tsv"), "gz\t\tprovince\tHQ\t\n").unwrap();
        let e = Config::parse(&text, &file).unwrap_err().to_string();
        assert!(e.contains("topology") && e.contains("does not list this node"), "{e}");
        std::fs::write(dir.path().join("offices.tsv"), "gz/x\tgz\tcity\n").unwrap();
        let e = Config::parse(&text, &file).unwrap_err().to_string();
        assert!(e.contains(": topology: ") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn tuning_limits() {
        let e = err(&format!("reconnect_max_ms = 10\n{LEAF}"));
        assert!(e.contains("reconnect_max_ms: must be at least"), "{e}");
        let e = err(&format!("stale_after_s = 0\n{LEAF}"));
        assert!(e.contains("stale_after_s"), "{e}");
    }

    #[test]
    fn the_deploy_example_configs_parse() {
        // Example configs in deploy/ are part of the documentation: they must
        // stay valid. Side files they name (topology, token) may be absent in
        // a checkout, so only syntax and local rules are checked here.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        let Ok(entries) = std::fs::read_dir(&dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                match Config::parse(&text, &path) {
                    Ok(_) => {}
                    Err(e) if e.key == "topology" || e.key == "api_token_file" => {}
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
}
