//! Certificates made for each test (rcgen), a blocking TLS client for
//! handshake-level assertions, and a SASL login for the raw client.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use switchyard::auth::credentials::{users_block, Credential, Mechanism};
use switchyard::auth::scram::{new_nonce, ScramClient};
use switchyard::wire::{codec, Frame};

use super::raw::RawClient;
use super::Scratch;

/// A CA, a server certificate for 127.0.0.1 and localhost, a client
/// certificate from the same CA, and a client certificate from an
/// unrelated CA; all as PEM files in a scratch directory.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub stranger_cert: PathBuf,
    pub stranger_key: PathBuf,
    pub dir: Scratch,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA cert")
}

/// (certificate PEM, key PEM) signed by `issuer`.
fn leaf(issuer: &CertifiedIssuer<'static, KeyPair>, name: &str) -> (String, String) {
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, issuer).expect("sign leaf");
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    pub fn new() -> Pki {
        let dir = Scratch::new("pki");
        let write = |file: &str, pem: &str| {
            let path = dir.path(file);
            std::fs::write(&path, pem).expect("write PEM");
            path
        };
        let ca_issuer = ca("switchyard test CA");
        let stranger_ca = ca("some other CA");
        let (server_cert, server_key) = leaf(&ca_issuer, "proxy");
        let (client_cert, client_key) = leaf(&ca_issuer, "client");
        let (stranger_cert, stranger_key) = leaf(&stranger_ca, "stranger");
        Pki {
            ca: write("ca.pem", &ca_issuer.pem()),
            server_cert: write("server.pem", &server_cert),
            server_key: write("server-key.pem", &server_key),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client-key.pem", &client_key),
            stranger_cert: write("stranger.pem", &stranger_cert),
            stranger_key: write("stranger-key.pem", &stranger_key),
            dir,
        }
    }

    /// `[proxy.tls]` for the `[proxy]` table; `mtls` requires client
    /// certificates from this CA.
    pub fn proxy_tls_toml(&self, mtls: bool) -> String {
        let mut t = format!(
            "\n[proxy.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            self.server_cert.display(),
            self.server_key.display()
        );
        if mtls {
            t += &format!("client_ca = \"{}\"\n", self.ca.display());
        }
        t
    }
}

/// A `[[users]]` block, made the way `switchyard user add` makes it.
pub fn user_toml(name: &str, mechanism: Mechanism, password: &str) -> String {
    users_block(name, &Credential::generate(mechanism, password, 4096))
}

/// Connects with TLS (trusting `pki.ca`, presenting `client` when given)
/// and asks for ApiVersions. An error means the handshake or the first
/// exchange failed.
pub fn tls_api_versions(
    addr: &str,
    pki: &Pki,
    client: Option<(&PathBuf, &PathBuf)>,
) -> std::io::Result<ApiVersionsResponse> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&pki.ca).expect("CA file") {
        roots.add(cert.expect("CA PEM")).expect("CA cert");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .expect("client cert")
                    .collect::<Result<Vec<_>, _>>()
                    .expect("client cert PEM"),
                PrivateKeyDer::from_pem_file(key).expect("client key"),
            )
            .expect("client cert and key"),
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    let conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let frame = codec::request_frame(ApiKey::ApiVersions, 3, 1, &ApiVersionsRequest::default())
        .map_err(std::io::Error::other)?;
    tls.write_all(&frame)?;
    tls.flush()?;
    let mut size = [0u8; 4];
    tls.read_exact(&mut size)?;
    let mut buf = vec![0u8; 4 + i32::from_be_bytes(size).clamp(0, 1 << 20) as usize];
    buf[..4].copy_from_slice(&size);
    tls.read_exact(&mut buf[4..])?;
    codec::decode_response(ApiKey::ApiVersions, 3, &Frame(Bytes::from(buf)))
        .map_err(std::io::Error::other)
}

/// SaslHandshake v1 for `mechanism`; panics unless it is accepted.
pub fn sasl_handshake(client: &mut RawClient, mechanism: &str) {
    let resp: SaslHandshakeResponse = client.call(
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.into())),
    );
    assert_eq!(resp.error_code, 0, "{mechanism} accepted by the proxy");
}

pub fn sasl_authenticate(client: &mut RawClient, token: &[u8]) -> SaslAuthenticateResponse {
    client.call(
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token)),
    )
}

/// A full SCRAM-SHA-512 login; returns the last SaslAuthenticate answer
/// (error code 0 and the server's signature checked when it succeeded).
pub fn scram_login(client: &mut RawClient, user: &str, password: &str) -> SaslAuthenticateResponse {
    sasl_handshake(client, "SCRAM-SHA-512");
    let (mut scram, first) = ScramClient::start(
        switchyard::auth::scram::ScramHash::Sha512,
        user,
        password,
        &new_nonce(),
    );
    let resp = sasl_authenticate(client, first.as_bytes());
    assert_eq!(resp.error_code, 0, "server-first is sent for any user");
    let server_first = std::str::from_utf8(&resp.auth_bytes).expect("server-first is text");
    let client_final = scram
        .respond(server_first)
        .expect("server-first is well formed");
    let resp = sasl_authenticate(client, client_final.as_bytes());
    if resp.error_code == 0 {
        let server_final = std::str::from_utf8(&resp.auth_bytes).expect("server-final is text");
        scram
            .verify(server_final)
            .expect("the proxy proves it knows the user");
    }
    resp
}
