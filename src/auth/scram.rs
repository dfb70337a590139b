//! SCRAM (RFC 5802, with the SHA-2 hashes of RFC 7677), sans-IO: messages
//! in, messages and decisions out. The proxy's SASL server uses the server
//! half for its clients; the upstream side uses the client half with the
//! proxy's own credentials.
//!
//! Passwords are used as UTF-8 bytes without SASLprep, as Kafka's own
//! implementation does, so a password that works with a Kafka broker works
//! here.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The hash a SCRAM mechanism is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    Sha256,
    Sha512,
}

/// Iteration counts outside this range are refused: Kafka's own bounds.
/// Fewer makes a stolen credential cheap to crack; more lets a peer make
/// the proxy burn CPU on a single login.
pub const MIN_ITERATIONS: u32 = 4096;
pub const MAX_ITERATIONS: u32 = 16384;

impl ScramHash {
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length, so new_from_slice cannot fail.
        match self {
            ScramHash::Sha256 => {
                let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            ScramHash::Sha512 => {
                let mut m = <Hmac<Sha512> as Mac>::new_from_slice(key).expect("any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
            ScramHash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// `Hi()` of RFC 5802: PBKDF2 with this hash's HMAC, one block.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => {
                let mut out = vec![0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out
            }
            ScramHash::Sha512 => {
                let mut out = vec![0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out
            }
        }
    }
}

/// What a server keeps of a SCRAM password: enough to check a proof and
/// to prove itself, not enough to log in as the user.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramKeys {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramKeys")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramKeys {
    pub fn derive(hash: ScramHash, password: &[u8], salt: &[u8], iterations: u32) -> ScramKeys {
        let salted = hash.salted_password(password, salt, iterations);
        let client_key = hash.hmac(&salted, b"Client Key");
        ScramKeys {
            salt: salt.to_vec(),
            iterations,
            stored_key: hash.hash(&client_key),
            server_key: hash.hmac(&salted, b"Server Key"),
        }
    }

    /// Whether `password` is the one these keys were made from.
    pub fn matches_password(&self, hash: ScramHash, password: &[u8]) -> bool {
        let other = ScramKeys::derive(hash, password, &self.salt, self.iterations);
        bool::from(other.stored_key.ct_eq(&self.stored_key))
    }
}

/// Why a SCRAM exchange failed. The messages name the rule that was
/// broken, never a key, a proof or a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("channel binding is not supported")]
    ChannelBinding,
    #[error("SCRAM extensions (such as delegation tokens) are not supported")]
    Extension,
    #[error("the nonce does not continue the exchange")]
    Nonce,
    #[error("invalid credentials")]
    BadProof,
    #[error("the server's signature does not match: it does not know the credentials")]
    BadServerSignature,
    #[error("the server asks for {0} iterations; expected {MIN_ITERATIONS}..={MAX_ITERATIONS}")]
    Iterations(u32),
    #[error("the server refused: {0}")]
    ServerError(String),
}

/// Splits `a=value` attributes, in order.
fn attributes(msg: &str) -> impl Iterator<Item = (u8, &str)> {
    msg.split(',').map(|part| {
        let b = part.as_bytes();
        if b.len() >= 2 && b[1] == b'=' {
            (b[0], &part[2..])
        } else {
            (0, part)
        }
    })
}

/// RFC 5802 `saslname`: `=2C` is ',' and `=3D` is '='; any other '=' is
/// an error.
fn decode_name(raw: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in user name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

fn encode_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn printable_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// A fresh nonce: 24 random bytes, base64 (printable, no commas).
pub fn new_nonce() -> String {
    let mut raw = [0u8; 24];
    fill_random(&mut raw);
    B64.encode(raw)
}

/// Random bytes from the operating system. Without them no nonce or salt
/// is safe, so failing to get them is not an error the proxy can go on
/// from.
pub fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random source is available");
}

/// The client's first message, as the server reads it.
#[derive(Debug)]
pub struct ClientFirst<'a> {
    pub gs2_header: &'a str,
    pub user: String,
    pub nonce: &'a str,
    pub bare: &'a str,
}

pub fn parse_client_first(msg: &str) -> Result<ClientFirst<'_>, ScramError> {
    // gs2-header = cbind-flag "," [authzid] ","
    let mut parts = msg.splitn(3, ',');
    let flag = parts.next().unwrap_or_default();
    let authzid = parts.next().ok_or(ScramError::Malformed("no GS2 header"))?;
    let bare = parts
        .next()
        .ok_or(ScramError::Malformed("no client-first-message-bare"))?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(ScramError::ChannelBinding),
        _ => return Err(ScramError::Malformed("bad channel binding flag")),
    }
    let gs2_header = &msg[..flag.len() + authzid.len() + 2];
    let mut attrs = attributes(bare);
    let user = match attrs.next() {
        Some((b'n', name)) => decode_name(name)?,
        Some((b'm', _)) => return Err(ScramError::Extension),
        _ => return Err(ScramError::Malformed("expected n=user")),
    };
    if let Some(authz) = authzid.strip_prefix("a=") {
        // Acting as another user is not offered: the authorization
        // identity, when given, must be the user itself.
        if decode_name(authz)? != user {
            return Err(ScramError::Malformed(
                "authorization identity differs from the user",
            ));
        }
    } else if !authzid.is_empty() {
        return Err(ScramError::Malformed("bad authorization identity"));
    }
    let nonce = match attrs.next() {
        Some((b'r', n)) if printable_nonce(n) => n,
        _ => return Err(ScramError::Malformed("expected r=nonce")),
    };
    // Kafka's extensions (tokenauth=true for delegation tokens) follow;
    // the proxy has no delegation tokens.
    if attrs.next().is_some() {
        return Err(ScramError::Extension);
    }
    Ok(ClientFirst {
        gs2_header,
        user,
        nonce,
        bare,
    })
}

/// The server's half of one exchange, after it has read client-first.
pub struct ScramServer {
    hash: ScramHash,
    keys: ScramKeys,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ScramServer {
    /// Answers client-first with server-first. `keys` are the user's, or
    /// made-up keys for an unknown user, so that an unknown name and a
    /// wrong password look the same from outside.
    pub fn start(
        hash: ScramHash,
        first: &ClientFirst<'_>,
        keys: ScramKeys,
        server_nonce: &str,
    ) -> (ScramServer, String) {
        let nonce = format!("{}{server_nonce}", first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&keys.salt),
            keys.iterations
        );
        let server = ScramServer {
            hash,
            keys,
            gs2_header: first.gs2_header.to_owned(),
            client_first_bare: first.bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
        };
        (server, server_first)
    }

    /// Checks client-final; on success returns server-final.
    pub fn finish(self, client_final: &str) -> Result<String, ScramError> {
        let (without_proof, proof) = client_final
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let mut attrs = attributes(without_proof);
        match attrs.next() {
            Some((b'c', binding)) => {
                let binding = B64
                    .decode(binding)
                    .map_err(|_| ScramError::Malformed("channel binding is not base64"))?;
                if binding != self.gs2_header.as_bytes() {
                    return Err(ScramError::Malformed(
                        "channel binding differs from the GS2 header",
                    ));
                }
            }
            _ => return Err(ScramError::Malformed("expected c=")),
        }
        match attrs.next() {
            Some((b'r', nonce)) if nonce == self.nonce => {}
            Some((b'r', _)) => return Err(ScramError::Nonce),
            _ => return Err(ScramError::Malformed("expected r=nonce")),
        }
        if attrs.next().is_some() {
            return Err(ScramError::Extension);
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let signature = self
            .hash
            .hmac(&self.keys.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(ScramError::BadProof);
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        if !bool::from(self.hash.hash(&client_key).ct_eq(&self.keys.stored_key)) {
            return Err(ScramError::BadProof);
        }
        let server_signature = self
            .hash
            .hmac(&self.keys.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

/// The client's half of one exchange.
pub struct ScramClient {
    hash: ScramHash,
    password: Zeroizing<Vec<u8>>,
    client_first_bare: String,
    nonce: String,
    expected_server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    /// Starts an exchange; returns the client and client-first.
    pub fn start(
        hash: ScramHash,
        user: &str,
        password: &str,
        nonce: &str,
    ) -> (ScramClient, String) {
        let client_first_bare = format!("n={},r={nonce}", encode_name(user));
        let first = format!("n,,{client_first_bare}");
        let client = ScramClient {
            hash,
            // The password should not outlive the exchange in freed memory.
            password: Zeroizing::new(password.as_bytes().to_vec()),
            client_first_bare,
            nonce: nonce.to_owned(),
            expected_server_signature: None,
        };
        (client, first)
    }

    /// Reads server-first and returns client-final.
    pub fn respond(&mut self, server_first: &str) -> Result<String, ScramError> {
        let mut attrs = attributes(server_first);
        let nonce = match attrs.next() {
            Some((b'r', n)) if n.starts_with(&self.nonce) && n.len() > self.nonce.len() => n,
            Some((b'r', _)) => return Err(ScramError::Nonce),
            Some((b'e', e)) => return Err(ScramError::ServerError(e.to_owned())),
            _ => return Err(ScramError::Malformed("expected r=nonce")),
        };
        let salt = match attrs.next() {
            Some((b's', s)) => B64
                .decode(s)
                .map_err(|_| ScramError::Malformed("salt is not base64"))?,
            _ => return Err(ScramError::Malformed("expected s=salt")),
        };
        let iterations = match attrs.next() {
            Some((b'i', i)) => i
                .parse::<u32>()
                .map_err(|_| ScramError::Malformed("iteration count is not a number"))?,
            _ => return Err(ScramError::Malformed("expected i=iterations")),
        };
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(ScramError::Iterations(iterations));
        }
        let salted = self.hash.salted_password(&self.password, &salt, iterations);
        let client_key = self.hash.hmac(&salted, b"Client Key");
        let stored_key = self.hash.hash(&client_key);
        let server_key = self.hash.hmac(&salted, b"Server Key");
        // c=biws is base64("n,,"): no channel binding, no authzid.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = self.hash.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        self.expected_server_signature = Some(self.hash.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Checks server-final: only a server that knows the credentials can
    /// produce it, so this is what makes the authentication mutual.
    pub fn verify(&self, server_final: &str) -> Result<(), ScramError> {
        let expected = self
            .expected_server_signature
            .as_ref()
            .ok_or(ScramError::Malformed("server-final before server-first"))?;
        match attributes(server_final).next() {
            Some((b'v', v)) => {
                let got = B64
                    .decode(v)
                    .map_err(|_| ScramError::Malformed("server signature is not base64"))?;
                if bool::from(got.ct_eq(expected)) {
                    Ok(())
                } else {
                    Err(ScramError::BadServerSignature)
                }
            }
            Some((b'e', e)) => Err(ScramError::ServerError(e.to_owned())),
            _ => Err(ScramError::Malformed("expected v=signature")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7677 section 3: user "user", password "pencil".
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc7677_keys() -> ScramKeys {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        ScramKeys::derive(ScramHash::Sha256, b"pencil", &salt, 4096)
    }

    #[test]
    fn client_side_matches_rfc7677_vector() {
        let (mut client, first) =
            ScramClient::start(ScramHash::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(first, CLIENT_FIRST);
        assert_eq!(client.respond(SERVER_FIRST).unwrap(), CLIENT_FINAL);
        client.verify(SERVER_FINAL).unwrap();
        assert_eq!(client.verify("v=AAAA"), Err(ScramError::BadServerSignature));
    }

    #[test]
    fn server_side_matches_rfc7677_vector() {
        let first = parse_client_first(CLIENT_FIRST).unwrap();
        assert_eq!(first.user, "user");
        let (server, server_first) = ScramServer::start(
            ScramHash::Sha256,
            &first,
            rfc7677_keys(),
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        );
        assert_eq!(server_first, SERVER_FIRST);
        assert_eq!(server.finish(CLIENT_FINAL).unwrap(), SERVER_FINAL);
    }

    #[test]
    fn wrong_proof_and_replayed_nonce_are_refused() {
        let first = parse_client_first(CLIENT_FIRST).unwrap();
        let (server, _) = ScramServer::start(ScramHash::Sha256, &first, rfc7677_keys(), "other");
        // The RFC's final message answers another server nonce: a replay.
        assert_eq!(server.finish(CLIENT_FINAL), Err(ScramError::Nonce));

        let (server, server_first) =
            ScramServer::start(ScramHash::Sha256, &first, rfc7677_keys(), "srv");
        let (mut client, _) =
            ScramClient::start(ScramHash::Sha256, "user", "pencil!", "rOprNGfwEbeRWgbNEkqO");
        let wrong = client.respond(&server_first).unwrap();
        assert_eq!(server.finish(&wrong), Err(ScramError::BadProof));
    }

    #[test]
    fn sha512_round_trip_with_escaped_name() {
        let keys = ScramKeys::derive(ScramHash::Sha512, b"s3cret", b"salty", 4096);
        let (mut client, first) =
            ScramClient::start(ScramHash::Sha512, "a,b=c", "s3cret", &new_nonce());
        let parsed = parse_client_first(&first).unwrap();
        assert_eq!(parsed.user, "a,b=c");
        let (server, server_first) =
            ScramServer::start(ScramHash::Sha512, &parsed, keys.clone(), &new_nonce());
        let client_final = client.respond(&server_first).unwrap();
        let server_final = server.finish(&client_final).unwrap();
        client.verify(&server_final).unwrap();
        assert!(keys.matches_password(ScramHash::Sha512, b"s3cret"));
        assert!(!keys.matches_password(ScramHash::Sha512, b"s3cret "));
    }

    #[test]
    fn client_first_shapes_that_are_refused() {
        for (msg, want) in [
            ("p=tls-unique,,n=u,r=x", ScramError::ChannelBinding),
            ("n,,n=u,r=x,tokenauth=true", ScramError::Extension),
            ("n,,m=ext,n=u,r=x", ScramError::Extension),
            ("n,,n=u", ScramError::Malformed("expected r=nonce")),
            (
                "n,,n=a=b,r=x",
                ScramError::Malformed("bad escape in user name"),
            ),
            (
                "x,,n=u,r=x",
                ScramError::Malformed("bad channel binding flag"),
            ),
            ("n,", ScramError::Malformed("no client-first-message-bare")),
            ("", ScramError::Malformed("no GS2 header")),
        ] {
            assert_eq!(parse_client_first(msg).unwrap_err(), want, "{msg}");
        }
        // An authzid naming the user itself is fine.
        assert!(parse_client_first("n,a=u,n=u,r=x").is_ok());
        assert!(parse_client_first("n,a=v,n=u,r=x").is_err());
    }

    #[test]
    fn client_refuses_weak_or_costly_iteration_counts() {
        let (mut client, _) = ScramClient::start(ScramHash::Sha256, "u", "p", "abc");
        assert_eq!(
            client.respond("r=abcdef,s=AAAA,i=1"),
            Err(ScramError::Iterations(1))
        );
        assert_eq!(
            client.respond("r=abcdef,s=AAAA,i=99999999"),
            Err(ScramError::Iterations(99999999))
        );
        assert_eq!(
            client.respond("r=zzz,s=AAAA,i=4096"),
            Err(ScramError::Nonce)
        );
        assert_eq!(
            client.respond("e=unknown-user"),
            Err(ScramError::ServerError("unknown-user".into()))
        );
    }
}
