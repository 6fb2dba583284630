//! The province's private PKI: one CA per province, one certificate per
//! office (`jobmesh ca init`, `jobmesh ca issue`).
//!
//! A node certificate names its office in a subject alternative name of type
//! URI, `jobmesh://node/<id>` (a node id has slashes, so it cannot be a DNS
//! name). It is valid for both server and client authentication, because an
//! office accepts its children and dials its parent with the same identity.
//! Keys are ECDSA P-256. File names are a **contract**: `ca.pem`, `ca.key`,
//! and `<id with / as _>.pem` / `.key` (e.g. `gz_guiyang_guanshanhu.pem`).
//! Private keys are written with mode 0600; no file is ever overwritten
//! unless the caller passes `force`.

use std::io::Write;
use std::path::{Path, PathBuf};

use jobmesh_protocol::node_id::NodeIdError;
use jobmesh_protocol::NodeId;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

/// The CA certificate's file name in a PKI folder (**contract**).
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA key's file name in a PKI folder (**contract**).
pub const CA_KEY_FILE: &str = "ca.key";
/// The revocation list's default file name in a PKI folder.
pub const REVOCATIONS_FILE: &str = "revoked.crl";
/// Scheme and authority of the URI that carries a node id in a certificate.
pub const NODE_URI_PREFIX: &str = "jobmesh://node/";
/// Validity of a new CA, in days.
pub const DEFAULT_CA_DAYS: u32 = 7300;
/// Validity of a new node certificate, in days.
pub const DEFAULT_NODE_DAYS: u32 = 825;
/// Longest validity accepted, in days (100 years).
pub const MAX_DAYS: u32 = 36_500;
/// Certificates start being valid this long before they are made, so that an
/// office whose clock runs a little behind still accepts them.
const BACKDATE: time::Duration = time::Duration::hours(1);

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The file exists and `force` was not given.
    #[error("{} already exists; pass --force to overwrite it", .path.display())]
    Exists { path: PathBuf },
    /// Reading, writing or creating a file or folder failed.
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// A file holds something other than what it should.
    #[error("{}: {problem}", .path.display())]
    Invalid { path: PathBuf, problem: String },
    /// A validity outside 1..=[`MAX_DAYS`].
    #[error("a validity of {0} days is outside 1..={MAX_DAYS}")]
    Days(u32),
    /// A validity in seconds of 0 or beyond [`MAX_DAYS`].
    #[error("a validity of {0} seconds is outside 1 second..{MAX_DAYS} days")]
    Seconds(u64),
    /// Key or certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Why a certificate does not name exactly one node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertIdError {
    /// The bytes are not an X.509 certificate.
    #[error("not a valid X.509 certificate: {0}")]
    Parse(String),
    /// No `jobmesh://node/...` URI in the subject alternative names.
    #[error("the certificate names no node (no {NODE_URI_PREFIX}... subject alternative name)")]
    NoNodeId,
    /// More than one node URI: the identity would be ambiguous.
    #[error("the certificate names several nodes: {0:?}")]
    Several(Vec<String>),
    /// The URI does not carry a valid node id.
    #[error("the certificate's node URI {uri:?} is invalid: {source}")]
    BadId { uri: String, source: NodeIdError },
}

/// Paths of a certificate and its key, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate and its private key, PEM-encoded.
#[derive(Debug, Clone)]
pub struct IssuedPem {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A CA able to issue node certificates.
pub struct Ca {
    /// The CA certificate as rcgen needs it for signing (issuer name and key
    /// identifier come from the loaded certificate).
    cert: rcgen::Certificate,
    key: KeyPair,
    /// The CA certificate as stored (what nodes trust).
    cert_pem: String,
}

impl Ca {
    /// A new self-signed CA (ECDSA P-256), valid for `days`.
    pub fn generate(days: u32) -> Result<Ca, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "jobmesh");
        // A distinct name per CA: peers find a certificate's issuer by name,
        // so a certificate from another province's CA is then reported as
        // "unknown issuer" rather than as a bad signature.
        dn.push(DnType::CommonName, format!("jobmesh province CA {:016x}", random_u64()));
        params.distinguished_name = dn;
        // Path length 0: the CA signs node certificates directly, never an
        // intermediate CA.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        set_validity(&mut params, days)?;
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        Ok(Ca { cert, key, cert_pem })
    }

    /// A CA from its PEM certificate and key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, rcgen::Error> {
        let key = KeyPair::from_pem(key_pem)?;
        let params = CertificateParams::from_ca_cert_pem(cert_pem)?;
        // Re-signing the parsed parameters gives rcgen an issuer with the
        // stored certificate's name and key identifier; the result itself is
        // only used to sign, never written.
        let cert = params.self_signed(&key)?;
        Ok(Ca { cert, key, cert_pem: cert_pem.to_owned() })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA key, PEM (PKCS#8).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Issue a certificate for `node`, valid for `days`, with a fresh key.
    pub fn issue(&self, node: &NodeId, days: u32) -> Result<IssuedPem, PkiError> {
        self.issue_valid(node, Validity::Days(days))
    }

    /// Issue a certificate for `node` with a fresh key and a random serial.
    pub fn issue_valid(&self, node: &NodeId, validity: Validity) -> Result<IssuedPem, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "jobmesh");
        dn.push(DnType::CommonName, node.as_str());
        params.distinguished_name = dn;
        let uri = node_uri(node);
        params.subject_alt_names = vec![SanType::URI(uri.as_str().try_into()?)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        // A random serial: a renewed certificate must differ from the one it
        // replaces, so that a revocation of one never hits the other.
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&random_serial()));
        match validity {
            Validity::Days(days) => set_validity(&mut params, days)?,
            Validity::Seconds(secs) => {
                if secs == 0 || secs > u64::from(MAX_DAYS) * 86_400 {
                    return Err(PkiError::Seconds(secs));
                }
                let now = time::OffsetDateTime::now_utc();
                params.not_before = now - BACKDATE;
                params.not_after = now + time::Duration::seconds(secs as i64);
            }
        }
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(IssuedPem { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

/// How long a new node certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    Days(u32),
    /// For drills and tests of expiry: a certificate that expires within
    /// the hour.
    Seconds(u64),
}

/// 16 random bytes, the first one positive and non-zero in its top half so
/// that the DER integer keeps all 16 bytes.
fn random_serial() -> [u8; 16] {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        // No system randomness: fall back to the hasher's keys and the clock.
        b[..8].copy_from_slice(&random_u64().to_le_bytes());
        b[8..].copy_from_slice(&random_u64().to_le_bytes());
    }
    b[0] = (b[0] & 0x3f) | 0x40;
    b
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish()
}

fn set_validity(params: &mut CertificateParams, days: u32) -> Result<(), PkiError> {
    if days == 0 || days > MAX_DAYS {
        return Err(PkiError::Days(days));
    }
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + time::Duration::days(i64::from(days));
    Ok(())
}

/// The URI that names `node` in its certificate.
pub fn node_uri(node: &NodeId) -> String {
    format!("{NODE_URI_PREFIX}{node}")
}

/// The paths of `node`'s certificate and key in the PKI folder `dir`.
pub fn node_cert_paths(dir: &Path, node: &NodeId) -> CertFiles {
    let stem = node.file_stem();
    CertFiles { cert: dir.join(format!("{stem}.pem")), key: dir.join(format!("{stem}.key")) }
}

/// The paths of the CA's certificate and key in the PKI folder `dir`.
pub fn ca_paths(dir: &Path) -> CertFiles {
    CertFiles { cert: dir.join(CA_CERT_FILE), key: dir.join(CA_KEY_FILE) }
}

/// `jobmesh ca init`: create `dir` if needed and write a new CA into it.
pub fn init_ca(dir: &Path, days: u32, force: bool) -> Result<CertFiles, PkiError> {
    let files = ca_paths(dir);
    refuse_existing(&[&files.cert, &files.key], force)?;
    let ca = Ca::generate(days)?;
    create_dir(dir)?;
    write_file(&files.key, ca.key_pem().as_bytes(), true)?;
    write_file(&files.cert, ca.cert_pem().as_bytes(), false)?;
    Ok(files)
}

/// Load the CA from the PKI folder `dir`.
pub fn load_ca(dir: &Path) -> Result<Ca, PkiError> {
    let files = ca_paths(dir);
    let cert = read(&files.cert)?;
    let key = read(&files.key)?;
    let ca = Ca::from_pem(&cert, &key)
        .map_err(|e| PkiError::Invalid { path: dir.to_owned(), problem: format!("cannot load the CA: {e}") })?;
    // A key that does not belong to the certificate would issue certificates
    // that no node accepts: refuse it here, where the cause is clear.
    let stored = ca_public_key(&files.cert, &cert)?;
    if stored != ca.key.public_key_der() {
        return Err(PkiError::Invalid {
            path: files.key.clone(),
            problem: format!("this key does not belong to the certificate {}", files.cert.display()),
        });
    }
    Ok(ca)
}

/// `jobmesh ca issue`: write `node`'s certificate and key into `dir`.
pub fn issue_node_cert(ca: &Ca, dir: &Path, node: &NodeId, days: u32, force: bool) -> Result<CertFiles, PkiError> {
    issue_node_cert_valid(ca, dir, node, Validity::Days(days), force)
}

/// [`issue_node_cert`] with any [`Validity`]. A renewal is this with
/// `force`: a new key and certificate under the same names. The key is
/// written first; a node that reloads between the two writes sees a key
/// that does not match its certificate, refuses it and keeps its old pair
/// until the certificate follows (its watcher then loads both).
pub fn issue_node_cert_valid(
    ca: &Ca,
    dir: &Path,
    node: &NodeId,
    validity: Validity,
    force: bool,
) -> Result<CertFiles, PkiError> {
    let files = node_cert_paths(dir, node);
    refuse_existing(&[&files.cert, &files.key], force)?;
    let issued = ca.issue_valid(node, validity)?;
    create_dir(dir)?;
    write_file(&files.key, issued.key_pem.as_bytes(), true)?;
    write_file(&files.cert, issued.cert_pem.as_bytes(), false)?;
    Ok(files)
}

/// The node named by a certificate (DER): its one `jobmesh://node/` URI.
pub fn node_id_of_cert(der: &[u8]) -> Result<NodeId, CertIdError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| CertIdError::Parse(e.to_string()))?;
    let san = cert.subject_alternative_name().map_err(|e| CertIdError::Parse(e.to_string()))?;
    let uris: Vec<&str> = san
        .iter()
        .flat_map(|s| s.value.general_names.iter())
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) if u.starts_with(NODE_URI_PREFIX) => Some(*u),
            _ => None,
        })
        .collect();
    match uris.as_slice() {
        [] => Err(CertIdError::NoNodeId),
        [uri] => NodeId::parse(&uri[NODE_URI_PREFIX.len()..])
            .map_err(|source| CertIdError::BadId { uri: uri.to_string(), source }),
        many => Err(CertIdError::Several(many.iter().map(|s| s.to_string()).collect())),
    }
}

/// "serial S, valid until T" of a certificate file, for the CLI.
pub fn describe_cert_file(path: &Path) -> Result<String, PkiError> {
    let invalid = |problem: String| PkiError::Invalid { path: path.to_owned(), problem };
    let pem = std::fs::read(path).map_err(|source| PkiError::Io { path: path.to_owned(), source })?;
    let der = rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .ok_or_else(|| invalid("no certificate in the file".into()))?
        .map_err(|e| invalid(e.to_string()))?;
    let serial = crate::certs::serial_of(&der).ok_or_else(|| invalid("not an X.509 certificate".into()))?;
    let (_, not_after) = crate::certs::validity_of(&der).unwrap_or((0, 0));
    Ok(format!("serial {serial}, valid until {}", crate::certs::iso_seconds(not_after)))
}

fn ca_public_key(path: &Path, pem: &str) -> Result<Vec<u8>, PkiError> {
    let invalid = |problem: String| PkiError::Invalid { path: path.to_owned(), problem };
    let der = rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .ok_or_else(|| invalid("no certificate in the file".into()))?
        .map_err(|e| invalid(e.to_string()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| invalid(e.to_string()))?;
    Ok(cert.public_key().raw.to_vec())
}

fn refuse_existing(paths: &[&PathBuf], force: bool) -> Result<(), PkiError> {
    if force {
        return Ok(());
    }
    for p in paths {
        if p.exists() {
            return Err(PkiError::Exists { path: p.to_path_buf() });
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io { path: path.to_owned(), source })
}

fn create_dir(dir: &Path) -> Result<(), PkiError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        // The folder holds private keys: only its owner may list it.
        b.mode(0o700);
    }
    b.create(dir).map_err(|source| PkiError::Io { path: dir.to_owned(), source })
}

/// Write a whole file through a temporary name and a rename, so that a crash
/// never leaves a half-written key or certificate under the real name.
pub(crate) fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), PkiError> {
    let io = |source| PkiError::Io { path: path.to_owned(), source };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        #[cfg(unix)]
        {
            // The mode given at creation is filtered by the umask, and a
            // leftover temporary file keeps its old mode: set it explicitly.
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(if private { 0o600 } else { 0o644 }))?;
        }
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::parse(s).unwrap()
    }

    #[test]
    fn init_and_issue_write_the_contract_file_names() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        let ca_files = init_ca(&dir, DEFAULT_CA_DAYS, false).unwrap();
        assert_eq!(ca_files.cert, dir.join("ca.pem"));
        assert_eq!(ca_files.key, dir.join("ca.key"));
        let ca = load_ca(&dir).unwrap();
        let node = id("gz/guiyang/guanshanhu");
        let files = issue_node_cert(&ca, &dir, &node, 30, false).unwrap();
        assert_eq!(files.cert, dir.join("gz_guiyang_guanshanhu.pem"));
        assert_eq!(files.key, dir.join("gz_guiyang_guanshanhu.key"));

        let pem = std::fs::read(&files.cert).unwrap();
        let der = rustls_pemfile::certs(&mut pem.as_slice()).next().unwrap().unwrap();
        assert_eq!(node_id_of_cert(&der).unwrap(), node);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        let left = cert.validity().time_to_expiration().unwrap();
        assert!(left.whole_days() >= 29 && left.whole_days() <= 30, "{left:?}");

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for key in [&ca_files.key, &files.key] {
                let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", key.display());
            }
        }
        // No temporary files are left behind.
        let names: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names.len(), 4, "{names:?}");
    }

    #[test]
    fn nothing_is_overwritten_without_force() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        init_ca(dir, DEFAULT_CA_DAYS, false).unwrap();
        let before = std::fs::read(dir.join("ca.key")).unwrap();
        let e = init_ca(dir, DEFAULT_CA_DAYS, false).unwrap_err().to_string();
        assert!(e.contains("ca.pem") && e.contains("--force"), "{e}");
        assert_eq!(std::fs::read(dir.join("ca.key")).unwrap(), before);

        let ca = load_ca(dir).unwrap();
        let node = id("gz/a");
        issue_node_cert(&ca, dir, &node, 10, false).unwrap();
        let e = issue_node_cert(&ca, dir, &node, 10, false).unwrap_err().to_string();
        assert!(e.contains("gz_a.pem") && e.contains("already exists"), "{e}");
        issue_node_cert(&ca, dir, &node, 10, true).unwrap();

        init_ca(dir, DEFAULT_CA_DAYS, true).unwrap();
        assert_ne!(std::fs::read(dir.join("ca.key")).unwrap(), before);
    }

    #[test]
    fn a_key_that_is_not_the_cas_is_refused() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        init_ca(a.path(), 10, false).unwrap();
        init_ca(b.path(), 10, false).unwrap();
        std::fs::copy(b.path().join("ca.key"), a.path().join("ca.key")).unwrap();
        let e = load_ca(a.path()).err().expect("mismatched key must be refused").to_string();
        assert!(e.contains("does not belong"), "{e}");
    }

    #[test]
    fn validity_is_bounded() {
        assert!(matches!(Ca::generate(0), Err(PkiError::Days(0))));
        let ca = Ca::generate(10).unwrap();
        assert!(matches!(ca.issue(&id("gz"), MAX_DAYS + 1), Err(PkiError::Days(_))));
    }

    #[test]
    fn certificates_without_a_node_uri_name_no_node() {
        let c = rcgen::generate_simple_self_signed(vec!["example.org".into()]).unwrap();
        assert_eq!(node_id_of_cert(c.cert.der()), Err(CertIdError::NoNodeId));
        assert!(matches!(node_id_of_cert(b"junk"), Err(CertIdError::Parse(_))));
    }
}
