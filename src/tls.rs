//! TLS for NNTP (RFC 4642, updated by RFC 8143): the server's certificate
//! and key, read from PEM files and swapped on reload; the stream a session
//! runs on, plain or TLS; and the client side used to feed a peer over NNTPS.
//!
//! rustls runs on the ring provider, named explicitly, so a second provider
//! pulled in by some other crate can never make the choice ambiguous.
//! rustls offers TLS 1.2 and 1.3 only, with no compression (RFC 8143 §3).

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::TlsConfig;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: no PEM certificate in it")]
    NoCertificate { path: PathBuf },
    #[error("{path}: no PEM private key in it (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: PathBuf },
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    #[error("no trusted certificates found (set the peer's tls_ca)")]
    NoTrustAnchors,
    #[error("{0:?} is not a valid TLS server name")]
    BadName(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate in a PEM file, in order (leaf first for a chain).
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    // A block that is not a certificate (a key in the same file) is skipped.
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The server's TLS configuration from `[tls]`; `None` when no certificate
/// is configured (TLS is then not offered at all).
pub fn server_config(tls: &TlsConfig) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    let (Some(cert_path), Some(key_path)) = (&tls.certificate, &tls.key) else {
        return Ok(None);
    };
    let certs = certificates(cert_path)?;
    let key = PrivateKeyDer::from_pem_slice(&read(key_path)?).map_err(|_| TlsError::NoKey {
        path: key_path.clone(),
    })?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Some(Arc::new(config)))
}

/// The acceptor in force: a reload replaces it, and each handshake takes
/// the one current when it starts. Sessions already in TLS keep the
/// configuration they were made with, so a reload drops no connection.
pub struct Certificates {
    current: RwLock<Option<TlsAcceptor>>,
}

impl Certificates {
    /// Loads `[tls]`; an unreadable certificate or key stops start-up.
    pub fn load(tls: &TlsConfig) -> Result<Certificates, TlsError> {
        let acceptor = server_config(tls)?.map(TlsAcceptor::from);
        Ok(Certificates {
            current: RwLock::new(acceptor),
        })
    }

    /// The acceptor for a new handshake; `None` when TLS is not configured.
    pub fn acceptor(&self) -> Option<TlsAcceptor> {
        match self.current.read() {
            Ok(a) => a.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the files again. On error the running certificate stays.
    pub fn reload(&self, tls: &TlsConfig) -> Result<(), TlsError> {
        let acceptor = server_config(tls)?.map(TlsAcceptor::from);
        match self.current.write() {
            Ok(mut a) => *a = acceptor,
            Err(poisoned) => *poisoned.into_inner() = acceptor,
        }
        Ok(())
    }
}

/// A session's byte stream: plain TCP, or TLS over TCP (NNTPS, or after
/// STARTTLS).
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Stream {
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }
}

impl crate::wire::connection::QuickAck for Stream {
    /// Has the kernel acknowledge what the client sent at once, not up to
    /// 40 ms later (see `Connection::fill`).
    fn quick_ack(&self) {
        use std::os::fd::AsRawFd;
        let one: libc::c_int = 1;
        // SAFETY: a valid descriptor (the stream owns it) and an option
        // value of the size given; a failure only leaves ACKs delayed.
        unsafe {
            libc::setsockopt(
                self.tcp().as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
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

/// Runs the server side of a handshake on a plain stream. A stream that is
/// already TLS, or a failed handshake, is an error; the connection is then
/// unusable and must be dropped.
pub async fn accept(acceptor: &TlsAcceptor, stream: Stream) -> io::Result<Stream> {
    match stream {
        Stream::Plain(tcp) => Ok(Stream::Tls(Box::new(acceptor.accept(tcp).await?))),
        Stream::Tls(_) => Err(io::Error::other("already in TLS")),
    }
}

/// Where a system keeps its bundle of trusted CA certificates (Debian,
/// Fedora, openSUSE, Alpine); `SSL_CERT_FILE` comes first, as in OpenSSL.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// A client configuration for feeding a peer over TLS: it trusts the CA
/// certificates in `ca` (PEM), or the system's bundle when `ca` is `None`.
pub fn client_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let certs = match ca {
        Some(path) => certificates(path)?,
        None => {
            let env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
            let found = env
                .into_iter()
                .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
                .find(|p| p.is_file())
                .ok_or(TlsError::NoTrustAnchors)?;
            certificates(&found)?
        }
    };
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsError::NoTrustAnchors);
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The name a peer's certificate must carry: `name`, or else the host part
/// of its `host:port` address (an IP address is checked against the
/// certificate's IP addresses).
pub fn server_name(name: Option<&str>, address: &str) -> Result<ServerName<'static>, TlsError> {
    let host = match name {
        Some(n) => n,
        None => address
            .rsplit_once(':')
            .map_or(address, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']'),
    };
    ServerName::try_from(host.to_owned()).map_err(|_| TlsError::BadName(host.to_owned()))
}

/// Connects TLS on `tcp` as a client.
pub async fn connect(
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    tcp: TcpStream,
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    TlsConnector::from(config).connect(name, tcp).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_name_comes_from_its_address() {
        let n = server_name(None, "news.example:563").unwrap();
        assert_eq!(n.to_str(), "news.example");
        let n = server_name(None, "[::1]:563").unwrap();
        assert_eq!(n.to_str(), "::1");
        let n = server_name(Some("hub.example"), "192.0.2.1:563").unwrap();
        assert_eq!(n.to_str(), "hub.example");
    }

    #[test]
    fn no_certificate_means_no_tls() {
        assert!(server_config(&TlsConfig::default()).unwrap().is_none());
    }

    #[test]
    fn a_missing_file_is_named() {
        let tls = TlsConfig {
            certificate: Some("/nonexistent/cert.pem".into()),
            key: Some("/nonexistent/key.pem".into()),
            ..TlsConfig::default()
        };
        let err = server_config(&tls).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/cert.pem"), "{err}");
    }
}
