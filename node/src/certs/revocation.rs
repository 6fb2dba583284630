//! Revocation lists: which certificates the province no longer trusts.
//!
//! `jobmesh ca revoke` writes a list signed with the CA key (ECDSA P-256,
//! the CA's own key, through ring). The file is JSON an operator can read:
//!
//! ```json
//! {"format": "jobmesh-revocations/1",
//!  "body": "{\"issued_at_ms\":…,\"entries\":[{\"serial\":\"…\",\"node_id\":\"gz/…\",\"revoked_at_ms\":…}]}",
//!  "signature": "<hex of the DER ECDSA signature over the bytes of body>"}
//! ```
//!
//! The signature covers the `body` string's bytes exactly, so nothing is
//! re-encoded before checking. A node accepts a list only if one of the CA
//! certificates it trusts verifies the signature (never because of who sent
//! it) and it was issued later than the list it holds; the newest list
//! replaces the older one whole. Lists reach the nodes from the root's
//! config key `revocations` and then down the tree in
//! [`FrameV2::Revocations`](jobmesh_protocol::wire::FrameV2::Revocations)
//! frames (capability [`CAP_REVOCATION`](jobmesh_protocol::wire::CAP_REVOCATION)).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

/// The `format` field of a revocation list file.
pub const FORMAT: &str = "jobmesh-revocations/1";
/// Largest list accepted, in bytes (a frame carries it whole).
pub const MAX_LIST_BYTES: usize = 4 * 1024 * 1024;
/// Most entries in one list.
pub const MAX_ENTRIES: usize = 100_000;

/// Serials (lowercase hex) refused at every handshake and on every live
/// link. Shared by all TLS configs a node builds.
#[derive(Debug, Default)]
pub struct RevokedSet {
    serials: RwLock<HashSet<String>>,
}

impl RevokedSet {
    /// True if `serial` is revoked.
    pub fn contains(&self, serial: &str) -> bool {
        !serial.is_empty() && self.serials.read().unwrap_or_else(|p| p.into_inner()).contains(serial)
    }

    /// Replace the whole set (a newer list supersedes the older one).
    pub fn replace(&self, serials: HashSet<String>) {
        *self.serials.write().unwrap_or_else(|p| p.into_inner()) = serials;
    }

    /// How many serials are revoked.
    pub fn len(&self) -> usize {
        self.serials.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// Serial number, lowercase hex.
    pub serial: String,
    /// The office it was issued to, when known (`""` for `--serial`).
    pub node_id: String,
    /// When it was revoked (Unix milliseconds).
    pub revoked_at_ms: u64,
}

/// The signed contents of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationList {
    /// When the CA signed this list (Unix milliseconds): a later list
    /// replaces an earlier one.
    pub issued_at_ms: u64,
    pub entries: Vec<Revoked>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedFile {
    format: String,
    body: String,
    signature: String,
}

/// Why a list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("the revocation list is {0} bytes, more than {MAX_LIST_BYTES}")]
    TooLarge(usize),
    #[error("not a jobmesh revocation list: {0}")]
    Malformed(String),
    #[error("the revocation list's signature does not verify with any trusted CA certificate (tampered, or signed by another CA)")]
    BadSignature,
    #[error("cannot sign the revocation list: {0}")]
    Sign(String),
}

/// Sign `list` with the CA key (PKCS#8 PEM of an ECDSA P-256 key).
pub fn sign(list: &RevocationList, ca_key_pem: &str) -> Result<Vec<u8>, ListError> {
    let key = rustls_pemfile::private_key(&mut ca_key_pem.as_bytes())
        .map_err(|e| ListError::Sign(e.to_string()))?
        .ok_or_else(|| ListError::Sign("no private key in the CA key file".into()))?;
    let rustls_pki_types::PrivateKeyDer::Pkcs8(pkcs8) = key else {
        return Err(ListError::Sign("the CA key is not PKCS#8".into()));
    };
    let rng = ring::rand::SystemRandom::new();
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        pkcs8.secret_pkcs8_der(),
        &rng,
    )
    .map_err(|e| ListError::Sign(e.to_string()))?;
    let body = serde_json::to_string(list).map_err(|e| ListError::Sign(e.to_string()))?;
    let sig = pair.sign(&rng, body.as_bytes()).map_err(|e| ListError::Sign(e.to_string()))?;
    let file = SignedFile { format: FORMAT.into(), body, signature: hex(sig.as_ref()) };
    let mut out = serde_json::to_vec_pretty(&file).map_err(|e| ListError::Sign(e.to_string()))?;
    out.push(b'\n');
    Ok(out)
}

/// Check `bytes` against the trusted CA certificates and return the list.
pub fn verify(bytes: &[u8], cas: &[CertificateDer<'_>]) -> Result<RevocationList, ListError> {
    if bytes.len() > MAX_LIST_BYTES {
        return Err(ListError::TooLarge(bytes.len()));
    }
    let file: SignedFile = serde_json::from_slice(bytes).map_err(|e| ListError::Malformed(e.to_string()))?;
    if file.format != FORMAT {
        return Err(ListError::Malformed(format!("format {:?}, expected {FORMAT:?}", file.format)));
    }
    let sig = unhex(&file.signature).ok_or_else(|| ListError::Malformed("the signature is not hex".into()))?;
    let signed_by_a_ca = cas.iter().any(|ca| {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(ca) else { return false };
        let key = cert.public_key().subject_public_key.data.as_ref();
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, key)
            .verify(file.body.as_bytes(), &sig)
            .is_ok()
    });
    if !signed_by_a_ca {
        return Err(ListError::BadSignature);
    }
    let list: RevocationList = serde_json::from_str(&file.body).map_err(|e| ListError::Malformed(e.to_string()))?;
    if list.entries.len() > MAX_ENTRIES {
        return Err(ListError::Malformed(format!("{} entries, more than {MAX_ENTRIES}", list.entries.len())));
    }
    Ok(list)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// The list a node holds and where it came from.
#[derive(Debug, Clone)]
pub struct Held {
    pub list: RevocationList,
    /// The signed file, as it travels.
    pub bytes: Vec<u8>,
}

/// A node's revocation list state: the list held, where it is kept, where
/// the root reads it, and how many lists were refused.
#[derive(Debug)]
pub struct ListState {
    held: Mutex<Option<Held>>,
    /// `data_dir/revocations.json`: the accepted list survives a restart.
    keep: PathBuf,
    /// The config's `revocations` file (usually only the root's).
    pub source: Option<PathBuf>,
    source_seen: Mutex<Option<Vec<u8>>>,
    refused: AtomicU64,
}

impl ListState {
    pub fn new(data_dir: &Path, source: Option<PathBuf>) -> ListState {
        ListState {
            held: Mutex::new(None),
            keep: data_dir.join("revocations.json"),
            source,
            source_seen: Mutex::new(None),
            refused: AtomicU64::new(0),
        }
    }

    /// The list held now.
    pub fn held(&self) -> Option<Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Lists refused since start (bad signature, other CA, malformed).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub(crate) fn count_refusal(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// The kept list's bytes, if any.
    pub(crate) fn kept_bytes(&self) -> Option<Vec<u8>> {
        std::fs::read(&self.keep).ok()
    }

    /// The source file's bytes if they changed since the last call.
    pub(crate) fn source_changed(&self) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.source.as_ref()?).ok()?;
        let mut seen = self.source_seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.as_deref() == Some(bytes.as_slice()) {
            return None;
        }
        *seen = Some(bytes.clone());
        Some(bytes)
    }

    /// Take `held` if it is newer than the list held; true if taken. The
    /// list is written to the data dir first, so that a restart keeps it.
    pub(crate) fn take_if_newer(&self, held: Held) -> Result<bool, std::io::Error> {
        let mut cur = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if cur.as_ref().is_some_and(|c| c.list.issued_at_ms >= held.list.issued_at_ms) {
            return Ok(false);
        }
        let tmp = self.keep.with_extension("json.tmp");
        std::fs::write(&tmp, &held.bytes)?;
        std::fs::rename(&tmp, &self.keep)?;
        *cur = Some(held);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::Ca;

    fn ca_der(ca: &Ca) -> CertificateDer<'static> {
        rustls_pemfile::certs(&mut ca.cert_pem().as_bytes()).next().unwrap().unwrap()
    }

    fn list() -> RevocationList {
        RevocationList {
            issued_at_ms: 5,
            entries: vec![Revoked { serial: "4a01".into(), node_id: "gz/a/x".into(), revoked_at_ms: 5 }],
        }
    }

    #[test]
    fn a_list_verifies_with_its_ca_only_and_any_change_breaks_it() {
        let ca = Ca::generate(10).unwrap();
        let other = Ca::generate(10).unwrap();
        let signed = sign(&list(), &ca.key_pem()).unwrap();
        assert_eq!(verify(&signed, &[ca_der(&ca)]).unwrap(), list());
        // A rollover bundle: either CA may have signed it.
        assert_eq!(verify(&signed, &[ca_der(&other), ca_der(&ca)]).unwrap(), list());
        assert_eq!(verify(&signed, &[ca_der(&other)]), Err(ListError::BadSignature));
        let by_other = sign(&list(), &other.key_pem()).unwrap();
        assert_eq!(verify(&by_other, &[ca_der(&ca)]), Err(ListError::BadSignature));
        let tampered = String::from_utf8(signed).unwrap().replace("4a01", "4a02");
        assert_eq!(verify(tampered.as_bytes(), &[ca_der(&ca)]), Err(ListError::BadSignature));
        assert!(matches!(verify(b"not json", &[ca_der(&ca)]), Err(ListError::Malformed(_))));
    }
}
