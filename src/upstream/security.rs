//! How the proxy reaches one upstream cluster securely: TLS (system roots
//! or a CA file, SNI, optional client certificate) and SASL with the
//! proxy's own credentials, done right after connecting and before any
//! request is forwarded on the connection.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rustls::pki_types::ServerName;
use rustls::RootCertStore;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use zeroize::Zeroizing;

use super::error::UpstreamError;
use crate::auth::credentials::Mechanism;
use crate::auth::scram::{self, ScramClient};
use crate::auth::tls::{load_certs, load_key, load_roots, provider, MaybeTls};
use crate::config::{ClusterConfig, ConfigError, PasswordSource, UpstreamSaslConfig};
use crate::wire::codec;
use crate::wire::read_frame;

/// A password held in memory: never printed, wiped when dropped.
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Reads the password from where `[clusters.NAME.sasl]` says it is.
pub fn read_password(cluster: &str, source: &PasswordSource) -> Result<Secret, ConfigError> {
    let password = source.read(cluster).map_err(|p| ConfigError::Invalid {
        key: p.key,
        message: p.message,
    })?;
    Ok(Secret(Zeroizing::new(password)))
}

struct Sasl {
    mechanism: Mechanism,
    username: String,
    password: Secret,
}

/// TLS and SASL settings of one cluster, ready to use on each connection.
pub struct UpstreamSecurity {
    cluster: String,
    tls: Option<(TlsConnector, Option<ServerName<'static>>)>,
    sasl: Option<Sasl>,
    /// Whether the broker's request to re-authenticate has been reported.
    warned_lifetime: AtomicBool,
}

impl fmt::Debug for UpstreamSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamSecurity")
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl.as_ref().map(|s| s.mechanism))
            .finish()
    }
}

fn invalid(key: String, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

impl UpstreamSecurity {
    /// Loads certificates and reads the password; errors name the key.
    pub fn from_config(cluster: &ClusterConfig) -> Result<UpstreamSecurity, ConfigError> {
        let name = &cluster.name;
        let tls = match &cluster.tls {
            None => None,
            Some(t) => {
                let roots = match &t.ca {
                    Some(ca) => load_roots(ca, &format!("clusters.{name}.tls.ca"))?,
                    None => system_roots(name)?,
                };
                let builder = rustls::ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .map_err(|e| invalid(format!("clusters.{name}.tls"), e.to_string()))?
                    .with_root_certificates(roots);
                let config = match (&t.cert, &t.key) {
                    (Some(cert), Some(key)) => builder
                        .with_client_auth_cert(
                            load_certs(cert, &format!("clusters.{name}.tls.cert"))?,
                            load_key(key, &format!("clusters.{name}.tls.key"))?,
                        )
                        .map_err(|e| {
                            invalid(
                                format!("clusters.{name}.tls.key"),
                                format!("does not fit clusters.{name}.tls.cert: {e}"),
                            )
                        })?,
                    _ => builder.with_no_client_auth(),
                };
                let server_name = t
                    .server_name
                    .as_ref()
                    .map(|n| {
                        ServerName::try_from(n.clone()).map_err(|_| {
                            invalid(
                                format!("clusters.{name}.tls.server_name"),
                                format!("'{n}' is not a DNS name or IP address"),
                            )
                        })
                    })
                    .transpose()?;
                Some((TlsConnector::from(Arc::new(config)), server_name))
            }
        };
        let sasl = cluster
            .sasl
            .as_ref()
            .map(|s: &UpstreamSaslConfig| {
                Ok::<_, ConfigError>(Sasl {
                    mechanism: s.mechanism,
                    username: s.username.clone(),
                    password: read_password(name, &s.password)?,
                })
            })
            .transpose()?;
        Ok(UpstreamSecurity {
            cluster: name.clone(),
            tls,
            sasl,
            warned_lifetime: AtomicBool::new(false),
        })
    }

    /// Plain TCP, no SASL: what a cluster without security settings uses.
    pub fn none(cluster: &str) -> UpstreamSecurity {
        UpstreamSecurity {
            cluster: cluster.to_owned(),
            tls: None,
            sasl: None,
            warned_lifetime: AtomicBool::new(false),
        }
    }

    /// Turns a fresh TCP connection to `addr` into one ready for requests:
    /// TLS handshake, then SASL, both within `timeout`.
    pub async fn secure(
        &self,
        tcp: TcpStream,
        addr: &str,
        timeout: Duration,
        max_frame: usize,
    ) -> Result<UpstreamStream, UpstreamError> {
        let fail = |reason: String| UpstreamError::Connect {
            addr: addr.to_owned(),
            reason,
        };
        let work = async {
            let mut stream = match &self.tls {
                None => MaybeTls::Plain(tcp),
                Some((connector, fixed)) => {
                    let name = match fixed {
                        Some(n) => n.clone(),
                        None => host_name(addr).map_err(&fail)?,
                    };
                    let tls = connector.connect(name, tcp).await.map_err(|e| {
                        fail(format!(
                            "TLS handshake with cluster '{}' failed: {e}; check [clusters.{}.tls]",
                            self.cluster, self.cluster
                        ))
                    })?;
                    MaybeTls::Tls(Box::new(tls))
                }
            };
            if let Some(sasl) = &self.sasl {
                self.authenticate(&mut stream, sasl, max_frame)
                    .await
                    .map_err(&fail)?;
            }
            Ok(stream)
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| fail(format!("TLS and SASL did not finish within {timeout:?}")))?
    }

    async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        sasl: &Sasl,
        max_frame: usize,
    ) -> Result<(), String> {
        let cluster = &self.cluster;
        let mechanism = sasl.mechanism;
        let handshake: SaslHandshakeResponse = exchange(
            stream,
            ApiKey::SaslHandshake,
            1,
            &SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_static_str(mechanism.name())),
            max_frame,
        )
        .await?;
        if handshake.error_code != 0 {
            let offered: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(format!(
                "cluster '{cluster}' does not accept SASL mechanism {mechanism} (error code {}; it \
                 offers: {}); check [clusters.{cluster}.sasl].mechanism",
                handshake.error_code,
                offered.join(", ")
            ));
        }
        let refused_because = |why: &str| {
            format!(
                "cluster '{cluster}' refused the proxy's {mechanism} login as '{}' ({why}); check \
                 [clusters.{cluster}.sasl] username and password",
                sasl.username,
            )
        };
        let refused = |resp: &SaslAuthenticateResponse| {
            refused_because(&format!(
                "error code {}: {}",
                resp.error_code,
                resp.error_message.as_deref().unwrap_or("no message")
            ))
        };
        // A SCRAM server may refuse inside the exchange (e=...) instead of
        // with an error code; say the same thing either way.
        let scram_failed = |e: scram::ScramError| match e {
            scram::ScramError::ServerError(why) => refused_because(&why),
            other => format!("SCRAM with cluster '{cluster}': {other}"),
        };
        let last = match mechanism.scram_hash() {
            None => {
                let mut token = Vec::new();
                token.push(0);
                token.extend_from_slice(sasl.username.as_bytes());
                token.push(0);
                token.extend_from_slice(sasl.password.expose().as_bytes());
                let resp = authenticate_step(stream, token, max_frame).await?;
                if resp.error_code != 0 {
                    return Err(refused(&resp));
                }
                resp
            }
            Some(hash) => {
                let (mut client, first) = ScramClient::start(
                    hash,
                    &sasl.username,
                    sasl.password.expose(),
                    &scram::new_nonce(),
                );
                // client-first → server-first, then client-final →
                // server-final, which must carry the server's signature.
                let mut message = first;
                let mut round = 0;
                loop {
                    let resp = authenticate_step(stream, message.into_bytes(), max_frame).await?;
                    if resp.error_code != 0 {
                        return Err(refused(&resp));
                    }
                    let text = std::str::from_utf8(&resp.auth_bytes).map_err(|_| {
                        format!("cluster '{cluster}' sent a SCRAM message that is not UTF-8")
                    })?;
                    if round == 1 {
                        client.verify(text).map_err(scram_failed)?;
                        break resp;
                    }
                    message = client.respond(text).map_err(scram_failed)?;
                    round += 1;
                }
            }
        };
        if last.session_lifetime_ms > 0 && !self.warned_lifetime.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                cluster = %cluster,
                lifetime_ms = last.session_lifetime_ms,
                "the cluster limits SASL sessions; the proxy does not re-authenticate, so a broker \
                 that enforces the limit closes the connection when it ends"
            );
        }
        Ok(())
    }
}

async fn authenticate_step<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    token: Vec<u8>,
    max_frame: usize,
) -> Result<SaslAuthenticateResponse, String> {
    // The PLAIN token holds the password: wiped once copied into the frame.
    let token = Zeroizing::new(token);
    let request =
        SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(&token));
    exchange(stream, ApiKey::SaslAuthenticate, 1, &request, max_frame).await
}

/// One request and its answer on a connection nothing else uses yet.
async fn exchange<S, Req, Resp>(
    stream: &mut S,
    api: ApiKey,
    version: i16,
    request: &Req,
    max_frame: usize,
) -> Result<Resp, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
    Req: Encodable,
    Resp: Decodable,
{
    let frame = codec::request_frame(api, version, 0, request).map_err(|e| e.to_string())?;
    stream
        .write_all(&frame)
        .await
        .map_err(|e| format!("sending {api:?}: {e}"))?;
    stream
        .flush()
        .await
        .map_err(|e| format!("sending {api:?}: {e}"))?;
    let answer = read_frame(stream, max_frame)
        .await
        .map_err(|e| format!("reading the {api:?} answer: {e}"))?
        .ok_or_else(|| format!("the broker closed the connection instead of answering {api:?}"))?;
    codec::decode_response(api, version, &answer).map_err(|e| e.to_string())
}

fn host_name(addr: &str) -> Result<ServerName<'static>, String> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|_| {
        format!("'{host}' is not a DNS name or IP address to check a TLS certificate against")
    })
}

fn system_roots(cluster: &str) -> Result<RootCertStore, ConfigError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(invalid(
            format!("clusters.{cluster}.tls.ca"),
            "not set, and no system root certificates were found; set it to the cluster's CA \
             (PEM)",
        ));
    }
    Ok(roots)
}

/// A connection to an upstream broker, in the clear or inside TLS.
pub type UpstreamStream = MaybeTls<TcpStream, Box<tokio_rustls::client::TlsStream<TcpStream>>>;

pub type UpstreamRead = Box<dyn AsyncRead + Send + Unpin>;
pub type UpstreamWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Read and write halves for the connection's reader task and senders.
pub fn split(stream: UpstreamStream) -> (UpstreamRead, UpstreamWrite) {
    let (r, w) = stream.halves();
    (Box::new(r), Box::new(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_comes_from_env_or_file_and_is_never_printed() {
        std::env::set_var("SWITCHYARD_TEST_PW_A", "s3cret");
        let p = read_password("new", &PasswordSource::Env("SWITCHYARD_TEST_PW_A".into())).unwrap();
        assert_eq!(p.expose(), "s3cret");
        assert_eq!(format!("{p:?}"), "Secret(***)");

        let e = read_password(
            "new",
            &PasswordSource::Env("SWITCHYARD_TEST_PW_UNSET".into()),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("clusters.new.sasl.password_env: environment variable SWITCHYARD_TEST_PW_UNSET is not set"),
            "{e}"
        );

        let dir = std::env::temp_dir().join(format!("sy-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let p = read_password("old", &PasswordSource::File(file.clone())).unwrap();
        assert_eq!(p.expose(), "from-file");
        std::fs::write(&file, "\n").unwrap();
        let e = read_password("old", &PasswordSource::File(file)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "clusters.old.sasl.password_file: the password is empty"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The proxy's upstream login against the proxy's own SASL server, over
    /// an in-memory stream: every mechanism, right and wrong passwords.
    #[tokio::test]
    async fn upstream_login_against_the_proxys_own_sasl_server() {
        use crate::auth::credentials::Credential;
        use crate::auth::sasl::{SaslServer, Step};
        use crate::auth::{User, Users};
        use tokio::io::AsyncWriteExt;

        let users = Arc::new(
            Users::new(vec![
                User::new("p", Credential::generate(Mechanism::Plain, "pw-p", 4096)),
                User::new(
                    "s256",
                    Credential::generate(Mechanism::ScramSha256, "pw-256", 4096),
                ),
                User::new(
                    "s512",
                    Credential::generate(Mechanism::ScramSha512, "pw-512", 4096),
                ),
            ])
            .unwrap(),
        );
        for (mechanism, user, password, ok) in [
            (Mechanism::Plain, "p", "pw-p", true),
            (Mechanism::Plain, "s512", "pw-512", true),
            (Mechanism::ScramSha256, "s256", "pw-256", true),
            (Mechanism::ScramSha512, "s512", "pw-512", true),
            (Mechanism::Plain, "p", "wrong", false),
            (Mechanism::ScramSha512, "s512", "wrong", false),
            (Mechanism::ScramSha256, "s512", "pw-512", false),
        ] {
            let (mut proxy_end, mut broker_end) = tokio::io::duplex(64 * 1024);
            let mut server = SaslServer::new(users.clone(), Mechanism::ALL.to_vec());
            let broker = tokio::spawn(async move {
                while let Ok(Some(frame)) = read_frame(&mut broker_end, 8192).await {
                    let answer = match server.screen(&frame) {
                        Ok(Some(Step::Continue(a))) => a,
                        Ok(Some(Step::Authenticated(a, user))) => {
                            broker_end.write_all(&a).await.unwrap();
                            return Some(user.name.clone());
                        }
                        Ok(Some(Step::Refuse(a, _))) => {
                            broker_end.write_all(&a).await.unwrap();
                            return None;
                        }
                        other => panic!("unexpected {other:?}"),
                    };
                    broker_end.write_all(&answer).await.unwrap();
                }
                None
            });
            let security = UpstreamSecurity {
                cluster: "new".into(),
                tls: None,
                sasl: None,
                warned_lifetime: AtomicBool::new(false),
            };
            let sasl = Sasl {
                mechanism,
                username: user.into(),
                password: Secret(Zeroizing::new(password.into())),
            };
            let result = security.authenticate(&mut proxy_end, &sasl, 8192).await;
            let logged_in = broker.await.unwrap();
            assert_eq!(result.is_ok(), ok, "{mechanism} {user}: {result:?}");
            assert_eq!(logged_in.is_some(), ok);
            if let Err(e) = result {
                assert!(
                    e.starts_with(&format!(
                        "cluster 'new' refused the proxy's {mechanism} login as '{user}'"
                    )),
                    "{e}"
                );
                assert!(!e.contains(password), "{e}");
            }
        }
    }

    #[test]
    fn sni_name_is_the_host_of_the_address() {
        assert!(matches!(
            host_name("b-1.example.com:9096"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(matches!(
            host_name("127.0.0.1:9093"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(host_name("bad name:1").is_err());
    }
}
