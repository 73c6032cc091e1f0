//! TLS on the server: the client port's certificate, reloaded on SIGHUP
//! without dropping a session, and the peer links' mutual TLS with the
//! farm's own CA. The files are read when the configuration is resolved,
//! so a bad certificate stops the server at start, with the file's name.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rttp_conn::tls::{self as ctls, Stream, TlsClient};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::net::TcpStream;

use crate::error::{Error, Result};

/// Most plaintext bytes a TLS session buffers for the socket: the
/// session's outbound queue stays the place where a slow reader shows.
pub const TLS_SEND_BUFFER: usize = 64 * 1024;

fn tls_err(e: impl std::fmt::Display) -> Error {
    Error::Config(format!("tls: {e}"))
}

/// A certificate and its key, replaced in place by [`CertStore::reload`]:
/// new handshakes use the new pair, live sessions keep theirs.
#[derive(Debug)]
pub struct CertStore {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Loads the pair; the key must match the certificate.
    pub fn load(cert: &Path, key: &Path) -> Result<CertStore> {
        let pair = CertStore::read(cert, key)?;
        Ok(CertStore { cert: cert.to_path_buf(), key: key.to_path_buf(), current: RwLock::new(pair) })
    }

    fn read(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>> {
        let chain = ctls::load_certs(cert).map_err(tls_err)?;
        let der = ctls::load_key(key).map_err(tls_err)?;
        let pair = CertifiedKey::from_der(chain, der, &ctls::provider())
            .map_err(|e| tls_err(format!("{} and {}: {e}", cert.display(), key.display())))?;
        Ok(Arc::new(pair))
    }

    /// Reads the files again; on any error the old pair stays in use.
    pub fn reload(&self) -> Result<()> {
        let pair = CertStore::read(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = pair;
        Ok(())
    }

    /// The certificate file, for logs.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// The pair in use.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl rustls::client::ResolvesClientCert for CertStore {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The client port's TLS: `--tls-cert` and `--tls-key`.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// For the handshake.
    pub config: Arc<ServerConfig>,
    /// The pair, reloadable.
    pub certs: Arc<CertStore>,
}

impl ServerTls {
    /// Loads the pair; TLS 1.3 and 1.2, no client certificates.
    pub fn load(cert: &Path, key: &Path) -> Result<ServerTls> {
        let certs = Arc::new(CertStore::load(cert, key)?);
        let config = ServerConfig::builder_with_provider(ctls::provider())
            .with_protocol_versions(ctls::VERSIONS)
            .map_err(tls_err)?
            .with_no_client_auth()
            .with_cert_resolver(certs.clone());
        Ok(ServerTls { config: Arc::new(config), certs })
    }
}

/// The peer links' mutual TLS: `--peer-ca`, `--peer-cert`, `--peer-key`.
/// Both ends present a certificate from the farm's CA and accept only one
/// from it.
#[derive(Debug, Clone)]
pub struct PeerTls {
    server: Arc<ServerConfig>,
    client: TlsClient,
    /// Our own pair, reloadable.
    pub certs: Arc<CertStore>,
}

impl PeerTls {
    /// Loads the CA and our pair.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<PeerTls> {
        let roots = Arc::new(ctls::roots(Some(ca)).map_err(tls_err)?);
        let provider = ctls::provider();
        let certs = Arc::new(CertStore::load(cert, key)?);
        let verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone()).build().map_err(tls_err)?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(ctls::VERSIONS)
            .map_err(tls_err)?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(certs.clone());
        let client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(ctls::VERSIONS)
            .map_err(tls_err)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(FarmCa { roots, provider }))
            .with_client_cert_resolver(certs.clone());
        // The name is not checked (see FarmCa); any valid one will do.
        let client = TlsClient::with_config(Arc::new(client), Some("peer.rttp.invalid")).map_err(tls_err)?;
        Ok(PeerTls { server: Arc::new(server), client, certs })
    }

    /// The acceptor's TLS handshake.
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<Stream> {
        let s = tokio_rustls::TlsAcceptor::from(self.server.clone()).accept(tcp).await?;
        Ok(Stream::Tls(Box::new(s.into())))
    }

    /// The dialer's TLS handshake.
    pub async fn dial(&self, tcp: TcpStream, addr: std::net::SocketAddr) -> std::result::Result<Stream, String> {
        self.client.handshake(tcp, addr).await.map_err(|e| e.to_string())
    }
}

/// Verifies a peer's certificate by its chain to the farm's CA only. Peers
/// dial each other by address, and the peer handshake that follows proves
/// the server's identity (the cluster secret, bound to this TLS session),
/// so a host name would add a naming rule for operators and no safety.
/// The CA must therefore issue peer certificates only.
#[derive(Debug)]
struct FarmCa {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for FarmCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
