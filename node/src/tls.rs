//! Mutual TLS for the node's QUIC links (rustls 0.23, ring, TLS 1.3 only).
//!
//! Both sides present a certificate from the province CA (see [`crate::pki`]).
//! A node id is a slash path, not a DNS name, so names are not matched the
//! web way: each side verifies the chain to the CA, then reads the peer's id
//! from its `jobmesh://node/` URI SAN and checks it against the tree:
//!
//! - as a server (accepting), a node takes only clients whose id is in its
//!   subtree below itself ([`NodeId::is_ancestor_of`]): its children, and
//!   descendants further down that attach directly while their own parent
//!   is down (failover);
//! - as a client (dialing), a node takes only a server whose id is the
//!   peer it dials (its configured parent, or a `[[fallback]]`). The TLS server name sent is the fixed
//!   [`SERVER_NAME`] and is never compared with anything.
//!
//! The id a link runs under always comes from the certificate, never from
//! what the peer says (the engine then checks the peer's hello against it).
//! Session resumption is off on both sides so that every connection is
//! checked against the certificates as they are now.

use std::fmt;
use std::sync::Arc;

use jobmesh_protocol::wire::ALPNS;
use jobmesh_protocol::NodeId;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::certs::revocation::RevokedSet;
use crate::config::{Config, ConfigError};
use crate::pki::{node_id_of_cert, CertIdError};

/// The TLS server name a node sends when dialing its parent. Not checked:
/// the parent's identity is its certificate's node URI.
pub const SERVER_NAME: &str = "jobmesh";

/// Why the node's TLS material is unusable.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file holds no usable certificate.
    #[error("{0}")]
    CaCert(String),
    /// The node's certificate file is unusable.
    #[error("{0}")]
    Cert(String),
    /// The node's key file is unusable.
    #[error("{0}")]
    Key(String),
    /// The certificate names another node than the config's `node_id`.
    #[error("the certificate is for node {cert_id}, but node_id is {node_id}: use the certificate issued for {node_id} (jobmesh ca issue --node {node_id})")]
    WrongNode { cert_id: NodeId, node_id: NodeId },
    /// The certificate was not issued by the configured CA.
    #[error("the certificate is not signed by the configured CA ({0})")]
    NotFromCa(String),
    /// rustls refused the configuration.
    #[error("TLS setup failed: {0}")]
    Setup(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("TLS setup failed: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

impl TlsError {
    /// The config key a problem belongs to.
    pub fn config_key(&self) -> &'static str {
        match self {
            TlsError::CaCert(_) => "tls.ca_cert",
            TlsError::Key(_) => "tls.key",
            TlsError::Cert(_) | TlsError::WrongNode { .. } | TlsError::NotFromCa(_) => "tls.cert",
            TlsError::Setup(_) | TlsError::Verifier(_) => "tls",
        }
    }
}

/// A node's TLS identity and trust: its certificate chain and key, and the
/// province CA. Builds the rustls configs of both link directions.
pub struct NodeTls {
    node_id: NodeId,
    provider: Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// The CA certificates as loaded (DER), several during a CA rollover:
    /// revocation lists are checked against them.
    ca_certs: Vec<CertificateDer<'static>>,
    /// Serials refused at every handshake; shared by every config this node
    /// builds, so that a new list takes effect without rebuilding them.
    revoked: Arc<RevokedSet>,
}

impl fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeTls").field("node_id", &self.node_id).finish_non_exhaustive()
    }
}

impl NodeTls {
    /// Load the files named in the config's `[tls]` table and check that the
    /// certificate is this node's and was issued by the CA.
    pub fn load(cfg: &Config) -> Result<NodeTls, ConfigError> {
        let read = |key: &str, path: &std::path::Path| {
            std::fs::read(path).map_err(|e| cfg.error(key, format!("{}: {e}", path.display())))
        };
        let ca = read("tls.ca_cert", &cfg.tls.ca_cert)?;
        let cert = read("tls.cert", &cfg.tls.cert)?;
        let key = read("tls.key", &cfg.tls.key)?;
        NodeTls::from_pem(&cfg.node_id, &ca, &cert, &key).map_err(|e| {
            let path = match e.config_key() {
                "tls.ca_cert" => &cfg.tls.ca_cert,
                "tls.key" => &cfg.tls.key,
                _ => &cfg.tls.cert,
            };
            cfg.error(e.config_key(), format!("{}: {e}", path.display()))
        })
    }

    /// Build from PEM texts. Checks that the certificate names `node_id`,
    /// chains to the CA, and that the key belongs to it. An expired (or not
    /// yet valid) certificate is only warned about: the office keeps serving
    /// its own users while its links are refused.
    pub fn from_pem(node_id: &NodeId, ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<NodeTls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());

        // The file may hold several CA certificates (a rollover trusts the
        // old and the new CA until every office has a new certificate).
        let mut roots = RootCertStore::empty();
        let mut ca_certs = Vec::new();
        for der in rustls_pemfile::certs(&mut &ca_pem[..]) {
            let der = der.map_err(|e| TlsError::CaCert(format!("not a PEM file: {e}")))?;
            ca_certs.push(der.clone());
            roots.add(der).map_err(|e| TlsError::CaCert(format!("not a usable CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(TlsError::CaCert("no certificate in the file".into()));
        }

        let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &cert_pem[..])
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Cert(format!("not a PEM file: {e}")))?;
        let Some(leaf) = chain.first() else { return Err(TlsError::Cert("no certificate in the file".into())) };
        let key = rustls_pemfile::private_key(&mut &key_pem[..])
            .map_err(|e| TlsError::Key(format!("not a PEM file: {e}")))?
            .ok_or_else(|| TlsError::Key("no private key in the file".into()))?;

        let cert_id = node_id_of_cert(leaf).map_err(|e| TlsError::Cert(e.to_string()))?;
        if &cert_id != node_id {
            return Err(TlsError::WrongNode { cert_id, node_id: node_id.clone() });
        }
        rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider)
            .map_err(|e| TlsError::Key(format!("does not belong to the certificate ({e})")))?;

        let tls = NodeTls {
            node_id: node_id.clone(),
            provider,
            roots: Arc::new(roots),
            chain,
            key,
            ca_certs,
            revoked: Arc::new(RevokedSet::default()),
        };
        tls.check_own_chain()?;
        Ok(tls)
    }

    fn check_own_chain(&self) -> Result<(), TlsError> {
        let leaf = &self.chain[0];
        let parsed = ParsedCertificate::try_from(leaf).map_err(|e| TlsError::Cert(e.to_string()))?;
        let verdict = rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            &self.chain[1..],
            UnixTime::now(),
            self.provider.signature_verification_algorithms.all,
        );
        match verdict {
            Ok(()) => Ok(()),
            Err(rustls::Error::InvalidCertificate(
                e @ (CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. }),
            )) => {
                tracing::warn!(node_id = %self.node_id, "this node's certificate is outside its validity ({e}); peers will refuse its links until it is reissued");
                Ok(())
            }
            Err(rustls::Error::InvalidCertificate(e)) => Err(TlsError::NotFromCa(e.to_string())),
            Err(e) => Err(TlsError::NotFromCa(e.to_string())),
        }
    }

    /// When this node's certificate expires (Unix seconds), for status and
    /// monitoring; `None` if the certificate cannot be parsed (it was
    /// checked at load, so only a build mismatch would do that).
    pub fn cert_not_after(&self) -> Option<i64> {
        let (_, cert) = x509_parser::parse_x509_certificate(&self.chain[0]).ok()?;
        Some(cert.validity().not_after.timestamp())
    }

    /// This node's certificate's serial number, lowercase hex.
    pub fn serial(&self) -> String {
        crate::certs::serial_of(&self.chain[0]).unwrap_or_default()
    }

    /// The CA certificates this node trusts (DER).
    pub fn ca_certs(&self) -> &[CertificateDer<'static>] {
        &self.ca_certs
    }

    /// Share `revoked` with every config built from now on (a reloaded
    /// identity keeps the running node's revocations).
    pub fn with_revoked(mut self, revoked: Arc<RevokedSet>) -> NodeTls {
        self.revoked = revoked;
        self
    }

    /// The node id the certificate carries (equal to the config's).
    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    /// The keys of this node's QUIC endpoint: the stateless reset key and
    /// the connection-id validation key. They are derived from the node's
    /// private key so that they survive a restart: after a crash, the
    /// restarted node recognises the peers' packets for the dead connection
    /// as its own and answers with a reset they can verify, so they redial
    /// at once instead of waiting out the idle timeout. (HMAC outputs reveal
    /// nothing of the key; the labels keep these uses apart from any other.)
    pub fn quic_endpoint_keys(&self) -> (ring::hmac::Key, u64) {
        let derive = |label: &[u8]| {
            let label = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, label);
            ring::hmac::sign(&label, self.key.secret_der())
        };
        let reset = derive(b"jobmesh/1 QUIC stateless reset key");
        let cid = derive(b"jobmesh/1 QUIC connection id key");
        let mut cid_key = [0u8; 8];
        cid_key.copy_from_slice(&cid.as_ref()[..8]);
        (ring::hmac::Key::new(ring::hmac::HMAC_SHA256, reset.as_ref()), u64::from_le_bytes(cid_key))
    }

    /// The server side: accepts only clients whose certificate chains to the
    /// CA and names a direct child of this node.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let webpki = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), self.provider.clone()).build()?;
        let verifier = Arc::new(ChildVerifier { me: self.node_id.clone(), webpki, revoked: self.revoked.clone() });
        let mut cfg = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        // Every protocol this build speaks, newest first: the server picks
        // the first of its list the client offers (see `wire::ALPNS`).
        cfg.alpn_protocols = ALPNS.iter().map(|a| a.to_vec()).collect();
        cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        cfg.send_tls13_tickets = 0;
        Ok(cfg)
    }

    /// The client side: accepts only a server whose certificate chains to
    /// the CA and names `parent`.
    pub fn client_config(&self, parent: &NodeId) -> Result<rustls::ClientConfig, TlsError> {
        let verifier = Arc::new(ParentVerifier {
            parent: parent.clone(),
            roots: self.roots.clone(),
            provider: self.provider.clone(),
            revoked: self.revoked.clone(),
        });
        let mut cfg = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        // Every protocol this build speaks, newest first: the server picks
        // the first of its list the client offers (see `wire::ALPNS`).
        cfg.alpn_protocols = ALPNS.iter().map(|a| a.to_vec()).collect();
        cfg.resumption = rustls::client::Resumption::disabled();
        Ok(cfg)
    }
}

/// The node id of a connected peer, from the certificates the handshake
/// verified (the end-entity certificate comes first).
pub fn peer_node_id(certs: &[CertificateDer<'_>]) -> Result<NodeId, CertIdError> {
    let leaf = certs.first().ok_or(CertIdError::NoNodeId)?;
    node_id_of_cert(leaf)
}

/// A certificate that chains to the CA but names the wrong node. Its Debug is
/// its message, because rustls shows a custom certificate error via Debug.
struct WrongPeer(String);

impl fmt::Debug for WrongPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for WrongPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WrongPeer {}

/// Refuse a certificate whose serial the node's revocation list names.
fn check_revoked(revoked: &RevokedSet, cert: &CertificateDer<'_>, peer: &NodeId) -> Result<(), rustls::Error> {
    let serial = crate::certs::serial_of(cert).unwrap_or_default();
    if revoked.contains(&serial) {
        return Err(refuse(format!("the certificate of {peer} (serial {serial}) is revoked")));
    }
    Ok(())
}

/// An expired (or not yet valid) certificate's error names whose
/// certificate it is and when it stopped (or starts) being valid, so that
/// the operator on either side knows which file to replace.
fn explain_expiry(e: rustls::Error, cert: &CertificateDer<'_>, peer: &NodeId) -> rustls::Error {
    let expired = matches!(
        e,
        rustls::Error::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. })
    );
    let early = matches!(
        e,
        rustls::Error::InvalidCertificate(CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. })
    );
    if !expired && !early {
        return e;
    }
    let serial = crate::certs::serial_of(cert).unwrap_or_default();
    let (not_before, not_after) = crate::certs::validity_of(cert).unwrap_or((0, 0));
    if expired {
        refuse(format!(
            "the certificate of {peer} (serial {serial}) expired at {}",
            crate::certs::iso_seconds(not_after)
        ))
    } else {
        refuse(format!(
            "the certificate of {peer} (serial {serial}) is not valid before {}",
            crate::certs::iso_seconds(not_before)
        ))
    }
}

fn refuse(problem: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(WrongPeer(problem)))))
}

/// Server side: the WebPKI client verifier (chain to the CA, client-auth
/// usage, validity), then "the id is a direct child of mine".
#[derive(Debug)]
struct ChildVerifier {
    me: NodeId,
    webpki: Arc<dyn ClientCertVerifier>,
    revoked: Arc<RevokedSet>,
}

impl ClientCertVerifier for ChildVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verdict = self.webpki.verify_client_cert(end_entity, intermediates, now);
        let peer = node_id_of_cert(end_entity).map_err(|e| refuse(e.to_string()))?;
        verdict.map_err(|e| explain_expiry(e, end_entity, &peer))?;
        if !self.me.is_ancestor_of(&peer) {
            return Err(refuse(format!(
                "the client's certificate is for {peer}, which is not a child of {} nor below one",
                self.me
            )));
        }
        check_revoked(&self.revoked, end_entity, &peer)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Client side: chain to the CA with server-auth usage (as WebPKI does for
/// any server), then "the id is my parent" instead of a DNS name match.
#[derive(Debug)]
struct ParentVerifier {
    parent: NodeId,
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    revoked: Arc<RevokedSet>,
}

impl ServerCertVerifier for ParentVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        let verdict = rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        );
        let peer = node_id_of_cert(end_entity).map_err(|e| refuse(e.to_string()))?;
        verdict.map_err(|e| explain_expiry(e, end_entity, &peer))?;
        if peer != self.parent {
            return Err(refuse(format!(
                "the server's certificate is for {peer}, but the configured parent is {}",
                self.parent
            )));
        }
        check_revoked(&self.revoked, end_entity, &peer)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pki::Ca;

    pub(crate) fn id(s: &str) -> NodeId {
        NodeId::parse(s).unwrap()
    }

    /// A node's TLS identity issued by `ca`.
    pub(crate) fn node_tls(ca: &Ca, node: &str) -> NodeTls {
        let issued = ca.issue(&id(node), 10).unwrap();
        NodeTls::from_pem(&id(node), ca.cert_pem().as_bytes(), issued.cert_pem.as_bytes(), issued.key_pem.as_bytes())
            .unwrap()
    }

    /// A node that trusts `trusted` but holds a certificate from `issuer`
    /// (which [`NodeTls::from_pem`] would refuse to build).
    pub(crate) fn forged(trusted: &Ca, issuer: &Ca, node: &str) -> NodeTls {
        let real = node_tls(trusted, node);
        let issued = issuer.issue(&id(node), 10).unwrap();
        let chain = rustls_pemfile::certs(&mut issued.cert_pem.as_bytes()).collect::<Result<_, _>>().unwrap();
        let key = rustls_pemfile::private_key(&mut issued.key_pem.as_bytes()).unwrap().unwrap();
        NodeTls { chain, key, ..real }
    }

    /// Run a TLS handshake in memory between `client` (dialing `parent`) and
    /// `server`; returns the client's and the server's view of the outcome.
    fn handshake(client: &NodeTls, parent: &str, server: &NodeTls) -> Result<NodeId, String> {
        let mut c = rustls::ClientConnection::new(
            Arc::new(client.client_config(&id(parent)).unwrap()),
            ServerName::try_from(SERVER_NAME).unwrap(),
        )
        .unwrap();
        let mut s = rustls::ServerConnection::new(Arc::new(server.server_config().unwrap())).unwrap();
        let mut buf = Vec::new();
        for _ in 0..10 {
            buf.clear();
            while c.wants_write() {
                c.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                s.read_tls(&mut buf.as_slice()).unwrap();
                s.process_new_packets().map_err(|e| format!("server: {e}"))?;
            }
            buf.clear();
            while s.wants_write() {
                s.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                c.read_tls(&mut buf.as_slice()).unwrap();
                c.process_new_packets().map_err(|e| format!("client: {e}"))?;
            }
            if !c.is_handshaking() && !s.is_handshaking() {
                let certs = s.peer_certificates().ok_or("server saw no client certificate")?;
                return peer_node_id(certs).map_err(|e| e.to_string());
            }
        }
        Err("handshake did not finish".into())
    }

    #[test]
    fn parent_and_child_of_one_ca_connect_and_the_id_comes_from_the_cert() {
        let ca = Ca::generate(10).unwrap();
        let parent = node_tls(&ca, "gz/a");
        let child = node_tls(&ca, "gz/a/x");
        assert_eq!(handshake(&child, "gz/a", &parent).unwrap(), id("gz/a/x"));
    }

    #[test]
    fn a_certificate_from_another_ca_is_refused_both_ways() {
        let ca = Ca::generate(10).unwrap();
        let other = Ca::generate(10).unwrap();
        let parent = node_tls(&ca, "gz/a");
        let child = node_tls(&ca, "gz/a/x");
        // Rogues that trust the province CA (so they go on with the
        // handshake) but hold certificates from another CA.
        let rogue_child = forged(&ca, &other, "gz/a/x");
        let rogue_parent = forged(&ca, &other, "gz/a");
        let e = handshake(&rogue_child, "gz/a", &parent).unwrap_err();
        assert!(e.starts_with("server: ") && e.contains("UnknownIssuer"), "{e}");
        let e = handshake(&child, "gz/a", &rogue_parent).unwrap_err();
        assert!(e.starts_with("client: ") && e.contains("UnknownIssuer"), "{e}");
        // A rogue that trusts its own CA stops at the real parent's certificate.
        let e = handshake(&node_tls(&other, "gz/a/x"), "gz/a", &parent).unwrap_err();
        assert!(e.starts_with("client: ") && e.contains("UnknownIssuer"), "{e}");
    }

    #[test]
    fn a_client_outside_the_subtree_is_refused_and_a_descendant_may_attach() {
        let ca = Ca::generate(10).unwrap();
        let parent = node_tls(&ca, "gz/a");
        // A grandchild attaches directly while its own parent is down.
        assert_eq!(handshake(&node_tls(&ca, "gz/a/x/y"), "gz/a", &parent).unwrap(), id("gz/a/x/y"));
        for who in ["gz/ab/x", "gz/b/x", "gz", "gz/a"] {
            let client = node_tls(&ca, who);
            let e = handshake(&client, "gz/a", &parent).unwrap_err();
            assert!(e.starts_with("server: ") && e.contains("not a child of gz/a"), "{who}: {e}");
        }
    }

    #[test]
    fn a_server_that_is_not_the_configured_parent_is_refused() {
        let ca = Ca::generate(10).unwrap();
        let child = node_tls(&ca, "gz/a/x");
        let sibling_parent = node_tls(&ca, "gz/b");
        let e = handshake(&child, "gz/a", &sibling_parent).unwrap_err();
        assert!(e.starts_with("client: ") && e.contains("configured parent is gz/a"), "{e}");
    }

    #[test]
    fn own_certificate_must_match_node_id_and_ca_and_key() {
        let ca = Ca::generate(10).unwrap();
        let other = Ca::generate(10).unwrap();
        let a = ca.issue(&id("gz/a"), 10).unwrap();
        let b = ca.issue(&id("gz/b"), 10).unwrap();
        let foreign = other.issue(&id("gz/a"), 10).unwrap();
        let ca_pem = ca.cert_pem().as_bytes();

        let e = NodeTls::from_pem(&id("gz/b"), ca_pem, a.cert_pem.as_bytes(), a.key_pem.as_bytes()).unwrap_err();
        assert_eq!(e.config_key(), "tls.cert");
        assert!(e.to_string().contains("the certificate is for node gz/a, but node_id is gz/b"), "{e}");

        let e = NodeTls::from_pem(&id("gz/a"), ca_pem, foreign.cert_pem.as_bytes(), foreign.key_pem.as_bytes())
            .unwrap_err();
        assert!(matches!(e, TlsError::NotFromCa(_)), "{e}");

        let e = NodeTls::from_pem(&id("gz/a"), ca_pem, a.cert_pem.as_bytes(), b.key_pem.as_bytes()).unwrap_err();
        assert_eq!(e.config_key(), "tls.key", "{e}");

        let e = NodeTls::from_pem(&id("gz/a"), b"", a.cert_pem.as_bytes(), a.key_pem.as_bytes()).unwrap_err();
        assert_eq!(e.config_key(), "tls.ca_cert", "{e}");
        let e = NodeTls::from_pem(&id("gz/a"), ca_pem, a.key_pem.as_bytes(), a.key_pem.as_bytes()).unwrap_err();
        assert_eq!(e.config_key(), "tls.cert", "{e}");
    }
}
