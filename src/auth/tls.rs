//! TLS for client connections (rustls), and the stream type a session
//! reads and writes whether or not TLS is on. PEM loading is shared with
//! the upstream side, which connects as a TLS client.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::config::{ClientTlsConfig, ConfigError};

/// The one crypto provider the proxy uses, on both sides.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn invalid(key: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message,
    }
}

/// Every certificate in a PEM file; `key` names the config key for errors.
pub fn load_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            invalid(
                key,
                format!("cannot read certificates from {}: {e}", path.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(invalid(
            key,
            format!(
                "{} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)",
                path.display()
            ),
        ));
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1). The error never
/// quotes the file's contents.
pub fn load_key(path: &Path, key: &str) -> Result<PrivateKeyDer<'static>, ConfigError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        invalid(
            key,
            format!(
                "cannot read a PEM private key from {}: {e}; expected a PKCS#8, PKCS#1 or SEC1 key",
                path.display()
            ),
        )
    })
}

/// A root store made of the certificates in a PEM file.
pub fn load_roots(path: &Path, key: &str) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path, key)? {
        roots.add(cert).map_err(|e| {
            invalid(
                key,
                format!(
                    "{} holds a certificate that is not a usable CA: {e}",
                    path.display()
                ),
            )
        })?;
    }
    Ok(roots)
}

/// The TLS server side of `[proxy.tls]`; client certificates are required
/// and checked against `client_ca` when it is set.
pub fn server_config(tls: &ClientTlsConfig) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    let provider = provider();
    let certs = load_certs(&tls.cert, "proxy.tls.cert")?;
    let key = load_key(&tls.key, "proxy.tls.key")?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("proxy.tls", e.to_string()))?;
    let builder = match &tls.client_ca {
        Some(ca) => {
            let roots = load_roots(ca, "proxy.tls.client_ca")?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| invalid("proxy.tls.client_ca", e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| invalid("proxy.tls.key", format!("does not fit proxy.tls.cert: {e}")))?;
    Ok(Arc::new(config))
}

/// A stream in the clear (`P`) or inside TLS (`T`): one type for the
/// code that reads and writes, whichever it is.
pub enum MaybeTls<P, T> {
    Plain(P),
    Tls(T),
}

impl<P: AsyncRead + Unpin, T: AsyncRead + Unpin> AsyncRead for MaybeTls<P, T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl<P: AsyncWrite + Unpin, T: AsyncWrite + Unpin> AsyncWrite for MaybeTls<P, T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A client connection, in the clear or inside TLS.
pub type ClientStream = MaybeTls<TcpStream, Box<TlsStream<TcpStream>>>;

/// The write half of a client connection. TLS buffers what it encrypts,
/// so writers flush after each answer.
pub type ClientWrite = MaybeTls<OwnedWriteHalf, WriteHalf<TlsStream<TcpStream>>>;

/// The halves of a TCP connection, or of the TLS stream over one.
pub type Halves<T> = (
    MaybeTls<OwnedReadHalf, ReadHalf<T>>,
    MaybeTls<OwnedWriteHalf, WriteHalf<T>>,
);

impl<T: AsyncRead + AsyncWrite> MaybeTls<TcpStream, Box<T>> {
    /// Read and write halves that can live in different tasks.
    pub fn halves(self) -> Halves<T> {
        match self {
            MaybeTls::Plain(s) => {
                let (r, w) = s.into_split();
                (MaybeTls::Plain(r), MaybeTls::Plain(w))
            }
            MaybeTls::Tls(s) => {
                let (r, w) = tokio::io::split(*s);
                (MaybeTls::Tls(r), MaybeTls::Tls(w))
            }
        }
    }
}

impl ClientStream {
    /// Read and write halves that can live in different tasks.
    pub fn into_split(self) -> (ClientRead, ClientWrite) {
        let (inner, write) = self.halves();
        (ClientRead::new(inner), write)
    }
}

/// How much a client connection reads ahead: a request's size prefix,
/// header and small body come in one read, where reading each exactly
/// took a system call apiece. Larger reads go straight to the caller.
const READ_AHEAD: usize = 8 * 1024;

/// The read half of a client connection, read ahead by up to
/// [`READ_AHEAD`] bytes (the buffer is taken when the first byte is
/// awaited, so a connection never read from holds none).
pub struct ClientRead {
    inner: MaybeTls<OwnedReadHalf, ReadHalf<TlsStream<TcpStream>>>,
    /// Bytes read and not yet handed out: `ahead[at..filled]`.
    ahead: Vec<u8>,
    at: usize,
    filled: usize,
}

impl ClientRead {
    fn new(inner: MaybeTls<OwnedReadHalf, ReadHalf<TlsStream<TcpStream>>>) -> ClientRead {
        ClientRead {
            inner,
            ahead: Vec::new(),
            at: 0,
            filled: 0,
        }
    }

    /// Waits for at least one byte without consuming it; `Ok(0)` is the
    /// end of the stream. Fills at most one byte of `buf`.
    pub async fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.at == self.filled {
            self.ahead.resize(READ_AHEAD, 0);
            let n = self.inner.read(&mut self.ahead).await?;
            (self.at, self.filled) = (0, n);
        }
        if self.at == self.filled {
            return Ok(0);
        }
        buf[0] = self.ahead[self.at];
        Ok(1)
    }
}

impl AsyncRead for ClientRead {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at == this.filled && buf.remaining() < READ_AHEAD {
            // Read ahead into the buffer, then hand out from it.
            this.ahead.resize(READ_AHEAD, 0);
            let mut ahead = ReadBuf::new(&mut this.ahead);
            match Pin::new(&mut this.inner).poll_read(cx, &mut ahead) {
                Poll::Ready(Ok(())) if ahead.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => (this.at, this.filled) = (0, ahead.filled().len()),
                other => return other,
            }
        }
        if this.at < this.filled {
            let n = (this.filled - this.at).min(buf.remaining());
            buf.put_slice(&this.ahead[this.at..this.at + n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}
