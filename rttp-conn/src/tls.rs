//! TLS for every RTTP link that goes through [`crate::FrameConn`]: the
//! client library's connections and the peer links. [`Stream`] is a TCP
//! stream with or without TLS, so one frame connection type serves both;
//! the PEM loaders, the crypto provider and the client side's
//! configuration ([`TlsClient`]) live here too, so that the server, the
//! client library and the tests build TLS the same way.
//!
//! The server's client port does not use [`Stream`]: its hot path is
//! readiness-based and drives rustls itself (`rttp-server`'s transport).

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::ConnError;

/// The TLS versions every RTTP endpoint speaks: 1.3, and 1.2 for older peers.
pub static VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The one crypto provider of the tree (ring: small, no C toolchain beyond cc).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(what: impl std::fmt::Display) -> ConnError {
    ConnError::Tls(what.to_string())
}

/// Every certificate in a PEM file (a chain: the leaf first).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConnError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_err(format!("{}: {e}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(tls_err(format!("{}: no certificate in the file", path.display())));
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, ConnError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| tls_err(format!("{}: no usable private key: {e}", path.display())))
}

/// Trust anchors: the certificates of `ca`, or the system's roots without one.
pub fn roots(ca: Option<&Path>) -> Result<RootCertStore, ConnError> {
    let mut store = RootCertStore::empty();
    match ca {
        Some(path) => {
            for c in load_certs(path)? {
                store.add(c).map_err(|e| tls_err(format!("{}: {e}", path.display())))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(tls_err("no system root certificates found: give a CA file"));
            }
        }
    }
    Ok(store)
}

/// How a client names the server it verifies.
#[derive(Debug, Clone)]
pub enum Verify {
    /// One name for every server of the farm (the service name).
    Name(ServerName<'static>),
    /// Each server by the IP address it is reached at (a farm addressed
    /// directly, without a service name).
    Address,
}

/// What a client needs to speak TLS: a configuration and how to name servers.
#[derive(Debug, Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    verify: Verify,
}

impl TlsClient {
    /// Trusts `ca` (the system roots without it); verifies `name` if given,
    /// else each server's IP address.
    pub fn new(ca: Option<&Path>, name: Option<&str>) -> Result<TlsClient, ConnError> {
        let config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .map_err(tls_err)?
            .with_root_certificates(roots(ca)?)
            .with_no_client_auth();
        TlsClient::with_config(Arc::new(config), name)
    }

    /// A client over a configuration built elsewhere (a peer link's, with
    /// its own certificate).
    pub fn with_config(config: Arc<ClientConfig>, name: Option<&str>) -> Result<TlsClient, ConnError> {
        let verify = match name {
            Some(n) => Verify::Name(ServerName::try_from(n.to_string()).map_err(|e| tls_err(format!("{n:?}: {e}")))?),
            None => Verify::Address,
        };
        Ok(TlsClient { config, verify })
    }

    /// The configuration (for a blocking client built on rustls directly).
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// The name a server at `addr` is verified by.
    pub fn name_for(&self, addr: SocketAddr) -> ServerName<'static> {
        match &self.verify {
            Verify::Name(n) => n.clone(),
            Verify::Address => ServerName::IpAddress(addr.ip().into()),
        }
    }

    /// The TLS handshake over a connected stream.
    pub async fn handshake(&self, tcp: TcpStream, addr: SocketAddr) -> Result<Stream, ConnError> {
        let tls = tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(self.name_for(addr), tcp)
            .await
            .map_err(|e| tls_err(format!("TLS handshake with {addr}: {e}")))?;
        Ok(Stream::Tls(Box::new(tls.into())))
    }

    /// Connects to `addr` and, with `tls`, shakes hands, all within `d`.
    pub async fn connect(tls: Option<&TlsClient>, addr: SocketAddr, d: Duration) -> Result<Stream, ConnError> {
        let go = async {
            let tcp = TcpStream::connect(addr).await?;
            let _ = tcp.set_nodelay(true);
            match tls {
                Some(t) => t.handshake(tcp, addr).await,
                None => Ok(Stream::Plain(tcp)),
            }
        };
        tokio::time::timeout(d, go).await.map_err(|_| ConnError::Timeout(d))?
    }
}

/// A TCP stream, in the clear or inside TLS.
#[derive(Debug)]
pub enum Stream {
    /// No TLS.
    Plain(TcpStream),
    /// TLS, either side (boxed: the TLS state is large and links are few).
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl Stream {
    /// Whether the stream is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// `len` bytes of keying material exported from the TLS session
    /// (RFC 5705/8446), the same on both ends; `None` in the clear. A peer
    /// handshake puts it in its MACs, so that a relay in the middle, which
    /// holds two different TLS sessions, cannot splice an authenticated link.
    pub fn exporter(&self, label: &[u8], len: usize) -> Option<Vec<u8>> {
        let Stream::Tls(t) = self else { return None };
        let out = vec![0u8; len];
        match t.as_ref() {
            tokio_rustls::TlsStream::Client(c) => c.get_ref().1.export_keying_material(out, label, None).ok(),
            tokio_rustls::TlsStream::Server(s) => s.get_ref().1.export_keying_material(out, label, None).ok(),
        }
    }
}

impl From<TcpStream> for Stream {
    fn from(s: TcpStream) -> Stream {
        Stream::Plain(s)
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
