//! The proxy's SASL server: SaslHandshake (v0-1) and SaslAuthenticate
//! (v0-2), or after a v0 handshake the raw size-prefixed SASL tokens of
//! Kafka before 1.0. Sans-IO: a frame in, the frame to send and what to do
//! next out, so tests and the fuzzer drive it without sockets.
//!
//! Requests are read with the bounded [`Reader`], never with a
//! `kafka-protocol` decoder: these are the bytes of a client nobody has
//! authenticated yet.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, SaslAuthenticateResponse, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::credentials::{Credential, Mechanism, DEFAULT_ITERATIONS};
use super::scram::{self, ScramError, ScramHash, ScramKeys, ScramServer};
use super::{AuthError, User, Users};
use crate::wire::codec;
use crate::wire::{Frame, Reader, RequestHeader, WireError};

const HANDSHAKE_VERSIONS: std::ops::RangeInclusive<i16> = 0..=1;
const AUTHENTICATE_VERSIONS: std::ops::RangeInclusive<i16> = 0..=2;

/// What the session does with a frame the SASL server has read.
#[derive(Debug)]
pub enum Step {
    /// Send this answer; the exchange goes on.
    Continue(Bytes),
    /// Send this answer; from now on the client is `user`.
    Authenticated(Bytes, Arc<User>),
    /// Send this answer, then close the connection: `reason` is for the
    /// log (it never holds a secret).
    Refuse(Bytes, String),
}

enum State {
    /// Waiting for SaslHandshake.
    Start,
    /// Mechanism chosen; waiting for the first token. `raw` after a v0
    /// handshake: tokens come without Kafka headers.
    Chosen { mechanism: Mechanism, raw: bool },
    /// SCRAM server-first sent; waiting for client-final.
    ScramFinal {
        mechanism: Mechanism,
        raw: bool,
        exchange: Box<ScramServer>,
        user: Option<Arc<User>>,
        name: String,
    },
    /// Finished, one way or the other: nothing more is read in this state.
    Over,
}

/// One client connection's SASL exchange.
pub struct SaslServer {
    users: Arc<Users>,
    mechanisms: Vec<Mechanism>,
    state: State,
}

/// How a SaslAuthenticate came: in a Kafka request, or raw after a v0
/// handshake (answered raw, with no error code to carry a failure).
enum Envelope {
    Kafka { version: i16, correlation_id: i32 },
    Raw,
}

impl SaslServer {
    pub fn new(users: Arc<Users>, mechanisms: Vec<Mechanism>) -> SaslServer {
        SaslServer {
            users,
            mechanisms,
            state: State::Start,
        }
    }

    /// Whether the next frame is a raw token (after a v0 handshake) rather
    /// than a Kafka request.
    fn expects_raw_token(&self) -> bool {
        matches!(
            self.state,
            State::Chosen { raw: true, .. } | State::ScramFinal { raw: true, .. }
        )
    }

    /// Reads one frame of a client that has not authenticated yet:
    /// `None` lets it through (ApiVersions), a SASL request or raw token
    /// gives the step to take, anything else is an error that closes the
    /// connection, as a Kafka broker does.
    pub fn screen(&mut self, frame: &Frame) -> Result<Option<Step>, AuthError> {
        if self.expects_raw_token() {
            return Ok(Some(self.authenticate(Envelope::Raw, frame.body())));
        }
        let header = RequestHeader::parse(frame.body())?;
        let body = &frame.body()[header.body_offset..];
        match ApiKey::try_from(header.api_key) {
            Ok(ApiKey::ApiVersions) => Ok(None),
            Ok(ApiKey::SaslHandshake) => self.handshake(&header, body).map(Some),
            Ok(ApiKey::SaslAuthenticate) => self.authenticate_request(&header, body).map(Some),
            Ok(other) => Err(AuthError::NotAuthenticated {
                api: format!("{other:?}"),
            }),
            Err(_) => Err(AuthError::NotAuthenticated {
                api: format!("API key {}", header.api_key),
            }),
        }
    }

    /// Handles a SaslHandshake request.
    pub fn handshake(&mut self, header: &RequestHeader, body: &[u8]) -> Result<Step, AuthError> {
        if !HANDSHAKE_VERSIONS.contains(&header.api_version) {
            return Err(AuthError::Version {
                api: "SaslHandshake",
                version: header.api_version,
            });
        }
        let mut r = Reader::new(body, "SaslHandshake request");
        let requested = r.string(false)?;
        let offered: Vec<StrBytes> = self
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect();
        let answer = |error_code| {
            codec::response_frame(
                ApiKey::SaslHandshake,
                header.api_version,
                header.correlation_id,
                &SaslHandshakeResponse::default()
                    .with_error_code(error_code)
                    .with_mechanisms(offered.clone()),
            )
        };
        if !matches!(self.state, State::Start) {
            self.state = State::Over;
            return Ok(Step::Refuse(
                answer(ResponseError::IllegalSaslState.code())?,
                "a second SaslHandshake".into(),
            ));
        }
        let chosen = requested
            .parse::<Mechanism>()
            .ok()
            .filter(|m| self.mechanisms.contains(m));
        match chosen {
            Some(mechanism) => {
                self.state = State::Chosen {
                    mechanism,
                    raw: header.api_version == 0,
                };
                Ok(Step::Continue(answer(0)?))
            }
            None => {
                self.state = State::Over;
                Ok(Step::Refuse(
                    answer(ResponseError::UnsupportedSaslMechanism.code())?,
                    format!("asked for SASL mechanism {requested:?}, which is not enabled"),
                ))
            }
        }
    }

    /// Handles a SaslAuthenticate request.
    pub fn authenticate_request(
        &mut self,
        header: &RequestHeader,
        body: &[u8],
    ) -> Result<Step, AuthError> {
        if !AUTHENTICATE_VERSIONS.contains(&header.api_version) {
            return Err(AuthError::Version {
                api: "SaslAuthenticate",
                version: header.api_version,
            });
        }
        let token = read_auth_bytes(body, header.api_version >= 2)?;
        let envelope = Envelope::Kafka {
            version: header.api_version,
            correlation_id: header.correlation_id,
        };
        if matches!(self.state, State::Chosen { raw: true, .. } | State::Start) {
            // Before a handshake, or after a v0 one (which promised raw
            // tokens), a SaslAuthenticate is out of turn.
            self.state = State::Over;
            return Ok(Step::Refuse(
                authenticate_response(
                    &envelope,
                    ResponseError::IllegalSaslState.code(),
                    Some("SaslAuthenticate before SaslHandshake v1"),
                    b"",
                )?,
                "SaslAuthenticate out of turn".into(),
            ));
        }
        Ok(self.authenticate(envelope, token))
    }

    fn authenticate(&mut self, envelope: Envelope, token: &[u8]) -> Step {
        match self.advance(token) {
            Ok(Advance::Challenge(bytes)) => {
                match authenticate_response(&envelope, 0, None, &bytes) {
                    Ok(frame) => Step::Continue(frame),
                    Err(e) => Step::Refuse(Bytes::new(), e.to_string()),
                }
            }
            Ok(Advance::Done(user, bytes)) => {
                match authenticate_response(&envelope, 0, None, &bytes) {
                    Ok(frame) => Step::Authenticated(frame, user),
                    Err(e) => Step::Refuse(Bytes::new(), e.to_string()),
                }
            }
            Err(failure) => {
                self.state = State::Over;
                let message = format!(
                    "Authentication failed: {} with SASL mechanism {}",
                    failure.public, failure.mechanism
                );
                let frame = match envelope {
                    // A raw exchange has no way to carry an error: closing
                    // is the answer, as Kafka does.
                    Envelope::Raw => Bytes::new(),
                    _ => authenticate_response(
                        &envelope,
                        ResponseError::SaslAuthenticationFailed.code(),
                        Some(&message),
                        b"",
                    )
                    .unwrap_or_default(),
                };
                Step::Refuse(
                    frame,
                    format!(
                        "authentication failed for user {:?} ({}): {}",
                        failure.user, failure.mechanism, failure.detail
                    ),
                )
            }
        }
    }

    fn advance(&mut self, token: &[u8]) -> Result<Advance, Failure> {
        match std::mem::replace(&mut self.state, State::Over) {
            State::Chosen { mechanism, raw } => match mechanism.scram_hash() {
                None => self.plain(token),
                Some(hash) => {
                    let text = utf8(token, mechanism)?;
                    let first = scram::parse_client_first(text)
                        .map_err(|e| Failure::scram(mechanism, "", e))?;
                    let user = self
                        .users
                        .get(&first.user)
                        .filter(|u| u.credential.allows(mechanism));
                    let keys = match user.as_ref().map(|u| &u.credential) {
                        Some(Credential::Scram(_, keys)) => keys.clone(),
                        _ => self.users.decoy_keys(hash, &first.user),
                    };
                    let (exchange, server_first) =
                        ScramServer::start(hash, &first, keys, &scram::new_nonce());
                    self.state = State::ScramFinal {
                        mechanism,
                        raw,
                        exchange: Box::new(exchange),
                        user,
                        name: first.user.clone(),
                    };
                    Ok(Advance::Challenge(server_first.into_bytes()))
                }
            },
            State::ScramFinal {
                mechanism,
                exchange,
                user,
                name,
                ..
            } => {
                let text = utf8(token, mechanism)?;
                let server_final = exchange
                    .finish(text)
                    .map_err(|e| Failure::scram(mechanism, &name, e))?;
                // A decoy exchange cannot succeed (its keys belong to no
                // password), but an unknown user must not pass even so.
                let user =
                    user.ok_or_else(|| Failure::invalid(mechanism, &name, "no such user"))?;
                Ok(Advance::Done(user, server_final.into_bytes()))
            }
            State::Start | State::Over => Err(Failure {
                mechanism: Mechanism::Plain,
                user: String::new(),
                public: "SASL exchange is over".into(),
                detail: "a token after the exchange ended".into(),
            }),
        }
    }

    /// PLAIN (RFC 4616): `authzid NUL authcid NUL password`.
    fn plain(&mut self, token: &[u8]) -> Result<Advance, Failure> {
        let m = Mechanism::Plain;
        let mut parts = token.split(|b| *b == 0);
        let (Some(authzid), Some(authcid), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Failure::malformed(
                m,
                "",
                "expected authzid NUL user NUL password",
            ));
        };
        let name = utf8(authcid, m)?;
        let password = utf8(password, m)?;
        if !authzid.is_empty() && authzid != authcid {
            return Err(Failure::invalid(
                m,
                name,
                "authorization identity differs from the user",
            ));
        }
        match self.users.get(name) {
            Some(user) if user.credential.verify_password(password) => {
                Ok(Advance::Done(user, Vec::new()))
            }
            Some(_) => Err(Failure::invalid(m, name, "wrong password")),
            None => {
                // As costly as a real check, so timing does not tell which
                // names exist.
                let _ = self.users.decoy_plain().verify_password(password);
                Err(Failure::invalid(m, name, "no such user"))
            }
        }
    }
}

enum Advance {
    Challenge(Vec<u8>),
    Done(Arc<User>, Vec<u8>),
}

/// A failed exchange: `public` goes to the client (the same for a wrong
/// password and an unknown user), `detail` to the proxy's log.
struct Failure {
    mechanism: Mechanism,
    user: String,
    public: String,
    detail: String,
}

impl Failure {
    fn invalid(mechanism: Mechanism, user: &str, detail: &str) -> Failure {
        Failure {
            mechanism,
            user: user.to_owned(),
            public: "invalid credentials".into(),
            detail: detail.into(),
        }
    }

    fn malformed(mechanism: Mechanism, user: &str, detail: &str) -> Failure {
        Failure {
            mechanism,
            user: user.to_owned(),
            public: format!("malformed message: {detail}"),
            detail: detail.into(),
        }
    }

    fn scram(mechanism: Mechanism, user: &str, e: ScramError) -> Failure {
        match e {
            ScramError::BadProof | ScramError::Nonce => {
                Failure::invalid(mechanism, user, &e.to_string())
            }
            other => Failure {
                mechanism,
                user: user.to_owned(),
                public: other.to_string(),
                detail: other.to_string(),
            },
        }
    }
}

fn utf8(token: &[u8], mechanism: Mechanism) -> Result<&str, Failure> {
    std::str::from_utf8(token).map_err(|_| Failure::malformed(mechanism, "", "not UTF-8"))
}

/// `auth_bytes`: BYTES (int32 length), or in v2 COMPACT_BYTES then the
/// request's tagged fields.
fn read_auth_bytes(body: &[u8], flexible: bool) -> Result<&[u8], WireError> {
    let mut r = Reader::new(body, "SaslAuthenticate request");
    let len = if flexible {
        match r.unsigned_varint()? {
            0 => return Err(r.error("auth_bytes is null")),
            n => (n - 1) as usize,
        }
    } else {
        let n = r.i32()?;
        usize::try_from(n).map_err(|_| r.error(format!("auth_bytes length {n} is negative")))?
    };
    let token = r.bytes(len)?;
    if flexible {
        r.skip_tagged_fields()?;
    }
    Ok(token)
}

fn authenticate_response(
    envelope: &Envelope,
    error_code: i16,
    message: Option<&str>,
    token: &[u8],
) -> Result<Bytes, AuthError> {
    match envelope {
        Envelope::Raw => {
            let mut out = Vec::with_capacity(4 + token.len());
            let len = i32::try_from(token.len())
                .map_err(|_| AuthError::Internal("token too long".into()))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(token);
            Ok(Bytes::from(out))
        }
        Envelope::Kafka {
            version,
            correlation_id,
        } => Ok(codec::response_frame(
            ApiKey::SaslAuthenticate,
            *version,
            *correlation_id,
            &SaslAuthenticateResponse::default()
                .with_error_code(error_code)
                .with_error_message(message.map(|m| StrBytes::from_string(m.to_owned())))
                .with_auth_bytes(Bytes::copy_from_slice(token))
                // 0: the proxy never asks clients to re-authenticate.
                .with_session_lifetime_ms(0),
        )?),
    }
}

/// The SASL APIs ApiVersions lists when clients must authenticate (a
/// client decides from this list whether to use SaslAuthenticate).
pub fn advertised_apis(
    sasl_enabled: bool,
) -> impl Iterator<Item = kafka_protocol::messages::api_versions_response::ApiVersion> {
    let apis = [
        (ApiKey::SaslHandshake, HANDSHAKE_VERSIONS),
        (ApiKey::SaslAuthenticate, AUTHENTICATE_VERSIONS),
    ];
    apis.into_iter()
        .filter(move |_| sasl_enabled)
        .map(|(key, versions)| {
            kafka_protocol::messages::api_versions_response::ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(*versions.start())
                .with_max_version(*versions.end())
        })
}

impl Users {
    /// Keys for a SCRAM exchange with a name that has no such credential:
    /// stable per name (a second try sees the same salt), belonging to no
    /// password.
    fn decoy_keys(&self, hash: ScramHash, name: &str) -> ScramKeys {
        let derive = |label: &str| {
            let mut data = label.as_bytes().to_vec();
            data.extend_from_slice(name.as_bytes());
            hash.hmac(&self.decoy_secret, &data)
        };
        let mut salt = derive("salt");
        salt.truncate(24);
        ScramKeys {
            salt,
            iterations: DEFAULT_ITERATIONS,
            stored_key: derive("stored"),
            server_key: derive("server"),
        }
    }

    fn decoy_plain(&self) -> Credential {
        Credential::Plain {
            salt: self.decoy_secret[..16].to_vec(),
            iterations: DEFAULT_ITERATIONS,
            hash: vec![0; 64],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scram::ScramClient;
    use kafka_protocol::messages::SaslAuthenticateRequest;
    use kafka_protocol::messages::SaslHandshakeRequest;

    fn users() -> Arc<Users> {
        Arc::new(
            Users::new(vec![
                User::new(
                    "alice",
                    Credential::generate(Mechanism::ScramSha512, "wonderland", 4096),
                ),
                User::new(
                    "bob",
                    Credential::generate(Mechanism::Plain, "builder", 4096),
                ),
            ])
            .unwrap(),
        )
    }

    fn request<R: kafka_protocol::protocol::Encodable>(
        api: ApiKey,
        version: i16,
        body: &R,
    ) -> (RequestHeader, Vec<u8>) {
        let frame = codec::request_frame(api, version, 7, body).unwrap();
        let header = RequestHeader::parse(&frame[4..]).unwrap();
        let body = frame[4 + header.body_offset..].to_vec();
        (header, body)
    }

    fn handshake(server: &mut SaslServer, mechanism: &str) -> Step {
        let (h, b) = request(
            ApiKey::SaslHandshake,
            1,
            &SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_string(mechanism.into())),
        );
        server.handshake(&h, &b).unwrap()
    }

    fn auth(
        server: &mut SaslServer,
        version: i16,
        token: &[u8],
    ) -> (Step, SaslAuthenticateResponse) {
        let (h, b) = request(
            ApiKey::SaslAuthenticate,
            version,
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token)),
        );
        let step = server.authenticate_request(&h, &b).unwrap();
        let bytes = match &step {
            Step::Continue(b) | Step::Authenticated(b, _) | Step::Refuse(b, _) => b.clone(),
        };
        let resp =
            codec::decode_response(ApiKey::SaslAuthenticate, version, &Frame(bytes)).unwrap();
        (step, resp)
    }

    fn all() -> Vec<Mechanism> {
        Mechanism::ALL.to_vec()
    }

    #[test]
    fn scram_sha512_login_succeeds_and_proves_the_server() {
        for version in [0, 1, 2] {
            let mut server = SaslServer::new(users(), all());
            assert!(matches!(
                handshake(&mut server, "SCRAM-SHA-512"),
                Step::Continue(_)
            ));
            let (mut client, first) = ScramClient::start(
                ScramHash::Sha512,
                "alice",
                "wonderland",
                &scram::new_nonce(),
            );
            let (step, resp) = auth(&mut server, version, first.as_bytes());
            assert!(matches!(step, Step::Continue(_)));
            let client_final = client
                .respond(std::str::from_utf8(&resp.auth_bytes).unwrap())
                .unwrap();
            let (step, resp) = auth(&mut server, version, client_final.as_bytes());
            let Step::Authenticated(_, user) = step else {
                panic!("expected success, got {step:?}")
            };
            assert_eq!(user.name, "alice");
            client
                .verify(std::str::from_utf8(&resp.auth_bytes).unwrap())
                .unwrap();
        }
    }

    #[test]
    fn wrong_password_and_unknown_user_fail_alike() {
        let mut messages = Vec::new();
        for (name, password) in [("alice", "wrong"), ("mallory", "wonderland")] {
            let mut server = SaslServer::new(users(), all());
            handshake(&mut server, "SCRAM-SHA-512");
            let (mut client, first) =
                ScramClient::start(ScramHash::Sha512, name, password, &scram::new_nonce());
            let (_, resp) = auth(&mut server, 1, first.as_bytes());
            assert_eq!(resp.error_code, 0, "server-first is sent either way");
            let client_final = client
                .respond(std::str::from_utf8(&resp.auth_bytes).unwrap())
                .unwrap();
            let (step, resp) = auth(&mut server, 1, client_final.as_bytes());
            let Step::Refuse(_, reason) = step else {
                panic!("{name} must fail")
            };
            assert!(!reason.contains(password));
            assert_eq!(
                resp.error_code,
                ResponseError::SaslAuthenticationFailed.code()
            );
            messages.push(resp.error_message.unwrap().to_string());
        }
        assert_eq!(messages[0], messages[1]);
        assert_eq!(
            messages[0],
            "Authentication failed: invalid credentials with SASL mechanism SCRAM-SHA-512"
        );
    }

    #[test]
    fn plain_checks_plain_and_scram_credentials() {
        for (token, ok) in [
            (&b"\0bob\0builder"[..], true),
            (b"bob\0bob\0builder", true),
            (b"\0alice\0wonderland", true),
            (b"\0bob\0wonderland", false),
            (b"eve\0bob\0builder", false),
            (b"\0nobody\0x", false),
            (b"no-nuls", false),
        ] {
            let mut server = SaslServer::new(users(), all());
            handshake(&mut server, "PLAIN");
            let (step, resp) = auth(&mut server, 2, token);
            assert_eq!(matches!(step, Step::Authenticated(..)), ok, "{token:?}");
            assert_eq!(resp.error_code == 0, ok);
        }
    }

    #[test]
    fn out_of_turn_and_unknown_mechanisms_are_refused() {
        let mut server = SaslServer::new(users(), vec![Mechanism::ScramSha256]);
        let (step, resp) = auth(&mut server, 1, b"n,,n=a,r=b");
        assert!(matches!(step, Step::Refuse(..)));
        assert_eq!(resp.error_code, ResponseError::IllegalSaslState.code());

        let mut server = SaslServer::new(users(), vec![Mechanism::ScramSha256]);
        let Step::Refuse(bytes, _) = handshake(&mut server, "PLAIN") else {
            panic!("PLAIN is not enabled")
        };
        let resp: SaslHandshakeResponse =
            codec::decode_response(ApiKey::SaslHandshake, 1, &Frame(bytes)).unwrap();
        assert_eq!(
            resp.error_code,
            ResponseError::UnsupportedSaslMechanism.code()
        );
        assert_eq!(
            resp.mechanisms,
            vec![StrBytes::from_static_str("SCRAM-SHA-256")]
        );
    }

    #[test]
    fn lying_auth_bytes_length_is_a_wire_error() {
        let mut server = SaslServer::new(users(), all());
        handshake(&mut server, "PLAIN");
        let (h, _) = request(
            ApiKey::SaslAuthenticate,
            1,
            &SaslAuthenticateRequest::default(),
        );
        let body = [0x7f, 0xff, 0xff, 0xff, 0];
        assert!(matches!(
            server.authenticate_request(&h, &body),
            Err(AuthError::Wire(_))
        ));
    }

    #[test]
    fn v0_handshake_then_raw_tokens() {
        let mut server = SaslServer::new(users(), all());
        let (h, b) = request(
            ApiKey::SaslHandshake,
            0,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        );
        assert!(matches!(
            server.handshake(&h, &b).unwrap(),
            Step::Continue(_)
        ));
        assert!(server.expects_raw_token());
        let token = b"\0bob\0builder";
        let mut frame = (token.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(token);
        let Ok(Some(Step::Authenticated(answer, user))) = server.screen(&Frame(Bytes::from(frame)))
        else {
            panic!("raw PLAIN should succeed")
        };
        assert_eq!(user.name, "bob");
        assert_eq!(&answer[..], &[0, 0, 0, 0]);
    }
}
