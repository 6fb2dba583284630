//! A raw QUIC peer that speaks jobmesh's wire protocol by hand, to test what
//! a node's listener accepts from a hostile or broken neighbour.
//!
//! Server verification: the peer accepts any server certificate (it still
//! checks the handshake signatures, so the server must hold the key of the
//! certificate it shows). These tests are about what the SERVER accepts from
//! its clients, so the client side's trust decision is deliberately out of
//! scope; the client certificate and key are real ones, issued by
//! `jobmesh ca issue` from the right or a wrong CA.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jobmesh_protocol::wire::{check_len, decode_body, encode_frame, Frame, LEN_PREFIX};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Accepts any server certificate; checks handshake signatures with the
/// provider's algorithms. See the module doc for why.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut pem.as_slice()).collect();
    let certs = certs.map_err(|e| format!("parse {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", path.display()));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| format!("parse {}: {e}", path.display()))?
        .ok_or_else(|| format!("{}: no private key", path.display()))
}

/// A QUIC connection of a hand-driven peer (dialed by [`RawPeer::connect`]
/// or accepted by [`RawServer::accept`]), with its one bidirectional stream
/// once opened or accepted.
pub struct RawPeer {
    pub endpoint: quinn::Endpoint,
    pub conn: quinn::Connection,
    stream: Option<(quinn::SendStream, quinn::RecvStream)>,
}

/// What reading from the node ended with.
#[derive(Debug)]
pub enum ReadEnd {
    /// A whole frame.
    Frame(Frame),
    /// The node finished or reset the stream, or closed the connection.
    Closed(String),
    /// Nothing within the wait.
    Timeout,
}

impl RawPeer {
    /// Connect to `server` with ALPN `jobmesh/2`, presenting `cert`/`key`
    /// as the client certificate. `Err` if the handshake fails.
    pub async fn connect(server: SocketAddr, cert: &Path, key: &Path) -> Result<RawPeer, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| format!("tls versions: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| format!("client cert: {e}"))?;
        tls.alpn_protocols = vec![jobmesh_protocol::wire::ALPN_V2.to_vec()];
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| format!("quic tls: {e}"))?;
        let mut client = quinn::ClientConfig::new(Arc::new(quic));
        let mut transport = quinn::TransportConfig::default();
        transport.max_idle_timeout(Some(Duration::from_secs(30).try_into().map_err(|e| format!("idle: {e}"))?));
        client.transport_config(Arc::new(transport));
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?)
            .map_err(|e| format!("client endpoint: {e}"))?;
        endpoint.set_default_client_config(client);
        let connecting = endpoint.connect(server, "jobmesh").map_err(|e| format!("connect: {e}"))?;
        let conn = match tokio::time::timeout(Duration::from_secs(10), connecting).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(format!("handshake failed: {e}")),
            Err(_) => return Err("handshake did not finish within 10 s".into()),
        };
        Ok(RawPeer { endpoint, conn, stream: None })
    }

    /// Open the one bidirectional stream a dialer uses.
    pub async fn open(&mut self) -> Result<(), String> {
        let s = self.conn.open_bi().await.map_err(|e| format!("open_bi: {e}"))?;
        self.stream = Some(s);
        Ok(())
    }

    /// Write one length-prefixed frame.
    pub async fn send(&mut self, frame: &Frame) -> Result<(), String> {
        let (send, _) = self.stream.as_mut().ok_or("stream not open")?;
        send.write_all(&encode_frame(frame)).await.map_err(|e| format!("write: {e}"))
    }

    /// Write raw bytes on the stream (for malformed frames).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        let (send, _) = self.stream.as_mut().ok_or("stream not open")?;
        send.write_all(bytes).await.map_err(|e| format!("write: {e}"))
    }

    /// Read the next frame, waiting at most `wait`.
    pub async fn read(&mut self, wait: Duration) -> ReadEnd {
        let Some((_, recv)) = self.stream.as_mut() else { return ReadEnd::Closed("stream not open".into()) };
        let fut = async {
            let mut prefix = [0u8; LEN_PREFIX];
            recv.read_exact(&mut prefix).await.map_err(|e| format!("read: {e}"))?;
            let len = check_len(prefix).map_err(|e| format!("bad length from node: {e}"))?;
            let mut body = vec![0u8; len];
            recv.read_exact(&mut body).await.map_err(|e| format!("read: {e}"))?;
            decode_body(&body).map_err(|e| format!("bad frame from node: {e}"))
        };
        match tokio::time::timeout(wait, fut).await {
            Ok(Ok(f)) => ReadEnd::Frame(f),
            Ok(Err(e)) => ReadEnd::Closed(e),
            Err(_) => ReadEnd::Timeout,
        }
    }

    /// Read frames until the stream or connection ends or `wait` passes;
    /// returns the frames and how reading ended (`None`: still open).
    pub async fn read_until_closed(&mut self, wait: Duration) -> (Vec<Frame>, Option<String>) {
        let deadline = tokio::time::Instant::now() + wait;
        let mut frames = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read(left).await {
                ReadEnd::Frame(f) => frames.push(f),
                ReadEnd::Closed(e) => return (frames, Some(e)),
                ReadEnd::Timeout => return (frames, None),
            }
        }
    }

    /// Wait (bounded) for the connection to be closed; the reason, or
    /// `None` if it is still open after `wait`.
    pub async fn closed(&self, wait: Duration) -> Option<quinn::ConnectionError> {
        tokio::time::timeout(wait, self.conn.closed()).await.ok()
    }

    /// Close our side politely.
    pub async fn close(self) {
        self.conn.close(0u32.into(), b"test done");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}

/// Requires a client certificate and accepts any (checking only the
/// handshake signatures): the parent-side tests are about what the NODE, as
/// a client, accepts from a server.
#[derive(Debug)]
struct AnyClient(Arc<CryptoProvider>);

impl rustls::server::danger::ClientCertVerifier for AnyClient {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A hand-driven QUIC server that plays a node's parent, presenting
/// `cert`/`key` (from the right or a wrong CA).
pub struct RawServer {
    endpoint: quinn::Endpoint,
}

impl RawServer {
    /// Bind on `addr` (loopback; port 0 for any).
    pub fn bind(addr: SocketAddr, cert: &Path, key: &Path) -> Result<RawServer, String> {
        let server = Self::server_config(cert, key)?;
        let endpoint = quinn::Endpoint::server(server, addr).map_err(|e| format!("bind {addr}: {e}"))?;
        Ok(RawServer { endpoint })
    }

    /// Present another certificate to connections accepted from now on
    /// (same socket, so the node's dial address stays valid).
    pub fn set_identity(&self, cert: &Path, key: &Path) -> Result<(), String> {
        self.endpoint.set_server_config(Some(Self::server_config(cert, key)?));
        Ok(())
    }

    fn server_config(cert: &Path, key: &Path) -> Result<quinn::ServerConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| format!("tls versions: {e}"))?
            .with_client_cert_verifier(Arc::new(AnyClient(provider)))
            .with_single_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| format!("server cert: {e}"))?;
        tls.alpn_protocols = vec![jobmesh_protocol::wire::ALPN_V2.to_vec()];
        let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| format!("quic tls: {e}"))?;
        Ok(quinn::ServerConfig::with_crypto(Arc::new(quic)))
    }

    pub fn addr(&self) -> SocketAddr {
        self.endpoint.local_addr().unwrap_or_else(|e| panic!("local_addr: {e}"))
    }

    /// Accept the next connection and the stream the dialer opens, within
    /// `wait`. `Err` describes a failed handshake or a timeout.
    pub async fn accept(&self, wait: Duration) -> Result<RawPeer, String> {
        let fut = async {
            let incoming = self.endpoint.accept().await.ok_or("endpoint closed")?;
            let conn = incoming.await.map_err(|e| format!("handshake failed: {e}"))?;
            let stream = conn.accept_bi().await.map_err(|e| format!("accept_bi: {e}"))?;
            Ok(RawPeer { endpoint: self.endpoint.clone(), conn, stream: Some(stream) })
        };
        tokio::time::timeout(wait, fut).await.unwrap_or_else(|_| Err(format!("nothing accepted within {wait:?}")))
    }

    /// Close the endpoint and wait (bounded) until it is idle.
    pub async fn shutdown(self) {
        self.endpoint.close(0u32.into(), b"test server done");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}
