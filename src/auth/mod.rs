//! Client-side security: TLS on accept, then SASL before any other request.
//!
//! The accept loop hands each connection to [`ClientSecurity::accept`]
//! (TLS handshake, when `[proxy.tls]` is set); the session then shows every
//! frame to its [`ClientAuth`] first, which answers the SASL exchange
//! itself and lets nothing but ApiVersions through until it succeeds.

pub mod acl;
pub mod credentials;
pub mod sasl;
pub mod scram;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, ConfigError, ProxyConfig};
use crate::domain::pattern::Pattern;
use crate::wire::codec::CodecError;
use crate::wire::{Frame, WireError};
pub use credentials::{Credential, Mechanism};
use sasl::{SaslServer, Step};
pub use tls::{ClientRead, ClientStream, ClientWrite, MaybeTls};

/// Why a client connection was closed by the security layer.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "{api} request before authentication; a client must finish SASL \
         (SaslHandshake, SaslAuthenticate) first: check its security.protocol and sasl settings"
    )]
    NotAuthenticated { api: String },
    #[error("{api} v{version} is not supported (the proxy speaks SaslHandshake v0-1, SaslAuthenticate v0-2)")]
    Version { api: &'static str, version: i16 },
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error("TLS handshake did not finish within {0:?}")]
    TlsTimeout(Duration),
    /// Closed without sending a byte: a port probe or a health check, not
    /// a failed client.
    #[error("closed before the TLS handshake began")]
    ClosedBeforeTls,
    #[error("user '{user}' may not use {what}: not in its [[users]] allow-list")]
    Denied { user: String, what: String },
    #[error("{0}")]
    Internal(String),
}

impl AuthError {
    /// The label of `switchyard_client_protocol_errors_total`, or `None`
    /// when the client did nothing wrong.
    pub fn client_fault(&self) -> Option<&'static str> {
        match self {
            AuthError::NotAuthenticated { .. } => Some("unauthenticated"),
            AuthError::Version { .. } => Some("unsupported"),
            AuthError::Wire(_) => Some("malformed"),
            AuthError::Tls(_) | AuthError::TlsTimeout(_) | AuthError::ClosedBeforeTls => {
                Some("tls")
            }
            AuthError::Denied { .. } => Some("unauthorized"),
            AuthError::Codec(_) | AuthError::Internal(_) => None,
        }
    }
}

/// A user clients can authenticate as, with what it may touch.
#[derive(Debug)]
pub struct User {
    pub name: String,
    pub credential: Credential,
    /// `None`: every topic (no allow-list configured).
    pub topics: Option<Vec<Pattern>>,
    pub groups: Option<Vec<Pattern>>,
}

impl User {
    pub fn new(name: &str, credential: Credential) -> User {
        User {
            name: name.to_owned(),
            credential,
            topics: None,
            groups: None,
        }
    }
}

/// The configured users, by name.
pub struct Users {
    by_name: HashMap<String, Arc<User>>,
    /// Per-process secret that makes the made-up SCRAM keys of unknown
    /// users unpredictable and stable.
    decoy_secret: [u8; 32],
}

impl Users {
    pub fn new(users: Vec<User>) -> Result<Users, String> {
        let mut by_name = HashMap::with_capacity(users.len());
        for u in users {
            let name = u.name.clone();
            if by_name.insert(name.clone(), Arc::new(u)).is_some() {
                return Err(format!("user '{name}' is listed twice"));
            }
        }
        let mut decoy_secret = [0u8; 32];
        scram::fill_random(&mut decoy_secret);
        Ok(Users {
            by_name,
            decoy_secret,
        })
    }

    pub fn get(&self, name: &str) -> Option<Arc<User>> {
        self.by_name.get(name).cloned()
    }
}

/// What the proxy requires of clients, built once at start-up.
pub struct ClientSecurity {
    tls: Option<TlsAcceptor>,
    sasl: Option<(Arc<Users>, Vec<Mechanism>)>,
    handshake_timeout: Duration,
}

impl ClientSecurity {
    /// Loads certificates and keys and compiles the users; errors name the
    /// config key at fault.
    pub fn from_config(config: &Config) -> Result<ClientSecurity, ConfigError> {
        let tls = config
            .proxy
            .tls
            .as_ref()
            .map(tls::server_config)
            .transpose()?
            .map(TlsAcceptor::from);
        let sasl = match &config.proxy.sasl {
            None => None,
            Some(s) => {
                let mut users = Vec::with_capacity(config.users.len());
                for u in &config.users {
                    users.push(User {
                        name: u.name.clone(),
                        credential: u.credential.clone(),
                        topics: u.topics.clone(),
                        groups: u.groups.clone(),
                    });
                }
                let users = Users::new(users).map_err(|message| ConfigError::Invalid {
                    key: "users".into(),
                    message,
                })?;
                Some((Arc::new(users), s.mechanisms.clone()))
            }
        };
        Ok(ClientSecurity {
            tls,
            sasl,
            handshake_timeout: config.proxy.client_frame_timeout,
        })
    }

    /// Whether clients must authenticate with SASL.
    pub fn sasl_enabled(&self) -> bool {
        self.sasl.is_some()
    }

    /// The connection as the session will use it: after the TLS handshake
    /// when TLS is on (bounded, so a silent client cannot hold a slot).
    pub async fn accept(&self, stream: TcpStream) -> Result<ClientStream, AuthError> {
        let Some(acceptor) = &self.tls else {
            return Ok(MaybeTls::Plain(stream));
        };
        let handshake = async {
            let mut first = [0u8; 1];
            if stream.peek(&mut first).await.map_err(AuthError::Tls)? == 0 {
                return Err(AuthError::ClosedBeforeTls);
            }
            acceptor.accept(stream).await.map_err(AuthError::Tls)
        };
        match tokio::time::timeout(self.handshake_timeout, handshake).await {
            Err(_) => Err(AuthError::TlsTimeout(self.handshake_timeout)),
            Ok(Err(e)) => Err(e),
            Ok(Ok(tls)) => Ok(MaybeTls::Tls(Box::new(tls))),
        }
    }
}

/// What the session does with a frame after [`ClientAuth::screen`].
pub enum Gate {
    /// Serve it as usual.
    Pass,
    /// Send this answer instead; keep reading.
    Answer(Bytes),
    /// Send this answer, then close the connection.
    Close(Bytes),
}

/// One client connection's authentication state.
pub struct ClientAuth {
    /// `Some` while the client still has to authenticate.
    sasl: Option<SaslServer>,
    user: Option<Arc<User>>,
    peer: SocketAddr,
}

impl ClientAuth {
    pub fn new(security: &ClientSecurity, peer: SocketAddr) -> ClientAuth {
        ClientAuth {
            sasl: security
                .sasl
                .as_ref()
                .map(|(users, mechanisms)| SaslServer::new(users.clone(), mechanisms.clone())),
            user: None,
            peer,
        }
    }

    /// The user this connection authenticated as (`None` without SASL).
    pub fn user(&self) -> Option<&Arc<User>> {
        self.user.as_ref()
    }

    /// Checks an authenticated client's request against its user's
    /// allow-lists: `Some(answer)` answers it instead (a refusal, or
    /// Metadata filtered to what the user may see), an error closes the
    /// connection. Costs nothing for users without lists.
    pub async fn authorize(
        &self,
        proxy: &Arc<crate::proxy::Proxy>,
        api: kafka_protocol::messages::ApiKey,
        header: &crate::wire::RequestHeader,
        body: &[u8],
    ) -> Result<Option<Bytes>, AuthError> {
        match &self.user {
            // Answered here, in the read loop: a restricted user's
            // Metadata waits for the cluster before the next request is
            // read, which keeps the answers in order.
            Some(user)
                if user.topics.is_some() && api == kafka_protocol::messages::ApiKey::Metadata =>
            {
                acl::metadata(proxy.clone(), user, header, body)
                    .await
                    .map(Some)
            }
            Some(user) if user.restricted() => acl::check(user, api, header, body),
            _ => Ok(None),
        }
    }

    /// The largest frame the client may send now: small until it has
    /// authenticated.
    pub fn max_frame(&self, config: &ProxyConfig) -> usize {
        if self.sasl.is_some() {
            config.max_preauth_frame_bytes
        } else {
            config.max_frame_bytes
        }
    }

    /// Looks at a frame before the session does. After authentication (or
    /// without SASL) everything passes; before, only ApiVersions does, the
    /// SASL requests are answered here, and anything else is an error that
    /// closes the connection, as a Kafka broker does.
    pub async fn screen(&mut self, frame: &Frame) -> Result<Gate, AuthError> {
        let Some(mut server) = self.sasl.take() else {
            return Ok(Gate::Pass);
        };
        // Checking a PLAIN password costs a PBKDF2: off the async threads.
        // Only the few frames before authentication come this way.
        let frame = frame.clone();
        let (server, step) = tokio::task::spawn_blocking(move || {
            let step = server.screen(&frame);
            (server, step)
        })
        .await
        .map_err(|e| AuthError::Internal(format!("SASL check failed: {e}")))?;
        self.sasl = Some(server);
        Ok(match step? {
            None => Gate::Pass,
            Some(step) => self.after(step),
        })
    }

    fn after(&mut self, step: Step) -> Gate {
        match step {
            Step::Continue(answer) => Gate::Answer(answer),
            Step::Authenticated(answer, user) => {
                tracing::debug!(peer = %self.peer, user = %user.name, "client authenticated");
                self.user = Some(user);
                self.sasl = None;
                Gate::Answer(answer)
            }
            Step::Refuse(answer, reason) => {
                metrics::counter!(crate::metrics::CLIENT_AUTH_FAILURES).increment(1);
                tracing::info!(peer = %self.peer, %reason, "client authentication refused");
                // The SASL state stays "over": should anything else still
                // arrive, it is refused too, never let through.
                Gate::Close(answer)
            }
        }
    }
}
