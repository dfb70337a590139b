//! One proxy's client security (TLS acceptor, SASL users and mechanisms)
//! and one connection's authentication state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::credentials::Mechanism;
use super::error::AuthError;
use super::sasl::{SaslServer, Step};
use super::tls::{self, ClientStream, MaybeTls};
use super::users::{User, Users};
use crate::config::{Config, ConfigError, ProxyConfig};
use crate::wire::Frame;

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

    /// The user `name` when `password` is theirs (one PBKDF2: run it off
    /// the async threads); `None` without SASL users or when it is not.
    pub fn login(&self, name: &str, password: &str) -> Option<Arc<User>> {
        let (users, _) = self.sasl.as_ref()?;
        let user = users.get(name)?;
        user.credential.verify_password(password).then_some(user)
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
    /// The reload of the client security `user` was last looked up in.
    generation: u64,
}

impl ClientAuth {
    /// A connection's authentication, against `security` as of reload
    /// `generation`.
    pub fn new(security: &ClientSecurity, generation: u64, peer: SocketAddr) -> ClientAuth {
        ClientAuth {
            sasl: security
                .sasl
                .as_ref()
                .map(|(users, mechanisms)| SaslServer::new(users.clone(), mechanisms.clone())),
            user: None,
            peer,
            generation,
        }
    }

    /// Whether the user was looked up in the client security of reload
    /// `generation` (the common case: nothing to do).
    pub fn is_current(&self, generation: u64) -> bool {
        self.generation == generation
    }

    /// Takes the authenticated user's allow-lists from reloaded
    /// `security`; false when the reload removed the user, whose
    /// connection then closes.
    pub fn renew(&mut self, security: &ClientSecurity, generation: u64) -> bool {
        self.generation = generation;
        let Some(user) = &self.user else {
            return true;
        };
        let renewed = security
            .sasl
            .as_ref()
            .and_then(|(users, _)| users.get(&user.name));
        match renewed {
            Some(renewed) => {
                self.user = Some(renewed);
                true
            }
            None => {
                tracing::info!(peer = %self.peer, user = %user.name, "user removed by a config reload; closing its connection");
                false
            }
        }
    }

    /// The user this connection authenticated as (`None` without SASL).
    pub fn user(&self) -> Option<&Arc<User>> {
        self.user.as_ref()
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
