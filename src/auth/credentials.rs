//! SASL mechanisms and the stored form of a user's password
//! (`[[users]].credentials`), as `switchyard user add` prints it.
//!
//! Nothing stored here lets anyone log in: SCRAM keeps Kafka's
//! salt/StoredKey/ServerKey, PLAIN keeps a salted PBKDF2-SHA-512 hash.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use subtle::ConstantTimeEq;

use super::scram::{fill_random, ScramHash, ScramKeys, MAX_ITERATIONS, MIN_ITERATIONS};

/// A SASL mechanism the proxy speaks, on either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    pub const ALL: [Mechanism; 3] = [
        Mechanism::ScramSha512,
        Mechanism::ScramSha256,
        Mechanism::Plain,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    pub fn scram_hash(self) -> Option<ScramHash> {
        match self {
            Mechanism::Plain => None,
            Mechanism::ScramSha256 => Some(ScramHash::Sha256),
            Mechanism::ScramSha512 => Some(ScramHash::Sha512),
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mechanism {
    type Err = String;

    fn from_str(s: &str) -> Result<Mechanism, String> {
        Mechanism::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                format!("'{s}' is not a SASL mechanism the proxy speaks (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")
            })
    }
}

/// The iteration count `switchyard user add` uses: twice Kafka's default,
/// within the range every Kafka client accepts.
pub const DEFAULT_ITERATIONS: u32 = 8192;
const SALT_BYTES: usize = 24;

/// A user's stored password, as one mechanism checks it.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Scram(ScramHash, ScramKeys),
    /// PBKDF2-HMAC-SHA-512 of the password.
    Plain {
        salt: Vec<u8>,
        iterations: u32,
        hash: Vec<u8>,
    },
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the salt or the keys: a Debug print ends up in logs.
        write!(f, "Credential({})", self.mechanism())
    }
}

impl Credential {
    /// Salts and hashes `password` for `mechanism` with a fresh salt.
    pub fn generate(mechanism: Mechanism, password: &str, iterations: u32) -> Credential {
        let mut salt = vec![0u8; SALT_BYTES];
        fill_random(&mut salt);
        Credential::derive(mechanism, password, salt, iterations)
    }

    pub fn derive(
        mechanism: Mechanism,
        password: &str,
        salt: Vec<u8>,
        iterations: u32,
    ) -> Credential {
        match mechanism.scram_hash() {
            Some(h) => Credential::Scram(
                h,
                ScramKeys::derive(h, password.as_bytes(), &salt, iterations),
            ),
            None => Credential::Plain {
                hash: ScramHash::Sha512.salted_password(password.as_bytes(), &salt, iterations),
                salt,
                iterations,
            },
        }
    }

    pub fn mechanism(&self) -> Mechanism {
        match self {
            Credential::Scram(ScramHash::Sha256, _) => Mechanism::ScramSha256,
            Credential::Scram(ScramHash::Sha512, _) => Mechanism::ScramSha512,
            Credential::Plain { .. } => Mechanism::Plain,
        }
    }

    /// Whether a client may log in with `mechanism` against this
    /// credential. PLAIN works against every kind, since the password it
    /// carries can be hashed either way; SCRAM needs its own keys.
    pub fn allows(&self, mechanism: Mechanism) -> bool {
        mechanism == Mechanism::Plain || mechanism == self.mechanism()
    }

    /// Checks a password sent in the clear (SASL PLAIN). Costs one PBKDF2.
    pub fn verify_password(&self, password: &str) -> bool {
        match self {
            Credential::Scram(h, keys) => keys.matches_password(*h, password.as_bytes()),
            Credential::Plain {
                salt,
                iterations,
                hash,
            } => {
                let got = ScramHash::Sha512.salted_password(password.as_bytes(), salt, *iterations);
                bool::from(got.ct_eq(hash))
            }
        }
    }

    /// The `credentials = "..."` string.
    pub fn encode(&self) -> String {
        match self {
            Credential::Scram(_, k) => format!(
                "{}:salt={},stored_key={},server_key={},iterations={}",
                self.mechanism(),
                B64.encode(&k.salt),
                B64.encode(&k.stored_key),
                B64.encode(&k.server_key),
                k.iterations
            ),
            Credential::Plain {
                salt,
                iterations,
                hash,
            } => format!(
                "PLAIN:salt={},hash={},iterations={iterations}",
                B64.encode(salt),
                B64.encode(hash)
            ),
        }
    }
}

impl FromStr for Credential {
    type Err = String;

    /// Parses a stored credential. Errors describe the shape expected and
    /// never repeat the value.
    fn from_str(s: &str) -> Result<Credential, String> {
        let (mech, fields) = s.split_once(':').ok_or(
            "expected MECHANISM:fields as printed by `switchyard user add` (e.g. \"SCRAM-SHA-512:salt=…\")",
        )?;
        let mechanism: Mechanism = mech.parse()?;
        let mut salt = None;
        let mut stored_key = None;
        let mut server_key = None;
        let mut hash = None;
        let mut iterations = None;
        for field in fields.split(',') {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| format!("{mechanism} field without '=': expected key=value"))?;
            let bytes = || {
                B64.decode(v)
                    .map_err(|_| format!("{mechanism} field '{k}' is not base64"))
            };
            match k {
                "salt" => salt = Some(bytes()?),
                "stored_key" => stored_key = Some(bytes()?),
                "server_key" => server_key = Some(bytes()?),
                "hash" => hash = Some(bytes()?),
                "iterations" => {
                    iterations = Some(
                        v.parse::<u32>()
                            .map_err(|_| format!("{mechanism} iterations is not a whole number"))?,
                    )
                }
                other => return Err(format!("{mechanism} has no field '{other}'")),
            }
        }
        let need = |name: &str, v: Option<Vec<u8>>, len: usize| -> Result<Vec<u8>, String> {
            match v {
                None => Err(format!("{mechanism} credentials need a '{name}' field")),
                Some(b) if len > 0 && b.len() != len => Err(format!(
                    "{mechanism} '{name}' is {} bytes, expected {len}",
                    b.len()
                )),
                Some(b) if b.is_empty() => Err(format!("{mechanism} '{name}' is empty")),
                Some(b) => Ok(b),
            }
        };
        let iterations = iterations
            .ok_or_else(|| format!("{mechanism} credentials need an 'iterations' field"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(format!(
                "{mechanism} iterations {iterations} is outside {MIN_ITERATIONS}..={MAX_ITERATIONS}"
            ));
        }
        let salt = need("salt", salt, 0)?;
        match mechanism.scram_hash() {
            Some(h) => {
                let len = h.hash(b"").len();
                if hash.is_some() {
                    return Err(format!("{mechanism} has no field 'hash'"));
                }
                Ok(Credential::Scram(
                    h,
                    ScramKeys {
                        salt,
                        iterations,
                        stored_key: need("stored_key", stored_key, len)?,
                        server_key: need("server_key", server_key, len)?,
                    },
                ))
            }
            None => {
                if stored_key.is_some() || server_key.is_some() {
                    return Err("PLAIN has a 'hash' field, not SCRAM keys".into());
                }
                Ok(Credential::Plain {
                    salt,
                    iterations,
                    hash: need("hash", hash, 64)?,
                })
            }
        }
    }
}

/// The `[[users]]` block `switchyard user add` prints.
pub fn users_block(name: &str, credential: &Credential) -> String {
    // A TOML basic string: quotes and backslashes escaped.
    let quoted = name.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "[[users]]\nname = \"{quoted}\"\ncredentials = \"{}\"\n",
        credential.encode()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mechanism_round_trips_through_its_text_form() {
        for m in Mechanism::ALL {
            let c = Credential::generate(m, "hunter2", 4096);
            let text = c.encode();
            assert!(text.starts_with(&format!("{m}:")), "{text}");
            assert!(!text.contains("hunter2"));
            let back: Credential = text.parse().unwrap();
            assert_eq!(back, c);
            assert!(back.verify_password("hunter2"));
            assert!(!back.verify_password("hunter3"));
        }
    }

    #[test]
    fn known_scram_sha256_credential_matches_rfc7677() {
        // The RFC 7677 user's keys, stored the way the config holds them.
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let c = Credential::derive(Mechanism::ScramSha256, "pencil", salt, 4096);
        let back: Credential = c.encode().parse().unwrap();
        assert!(back.verify_password("pencil"));
        assert_eq!(back.mechanism(), Mechanism::ScramSha256);
        assert!(back.allows(Mechanism::Plain));
        assert!(!back.allows(Mechanism::ScramSha512));
    }

    #[test]
    fn malformed_credentials_say_what_is_expected_without_echoing() {
        let good = Credential::generate(Mechanism::ScramSha512, "pw", 4096).encode();
        for (text, want) in [
            ("nocolon", "expected MECHANISM:fields"),
            ("MD5:salt=AA", "'MD5' is not a SASL mechanism"),
            (
                "SCRAM-SHA-512:salt=AAAA,iterations=4096",
                "need a 'stored_key' field",
            ),
            (
                "PLAIN:salt=AAAA,hash=AAAA,iterations=4096",
                "'hash' is 3 bytes, expected 64",
            ),
            (
                "PLAIN:salt=AAAA,hash=!!,iterations=4096",
                "'hash' is not base64",
            ),
            ("PLAIN:salt=AAAA,iterations=12", "outside 4096..=16384"),
            ("PLAIN:secret", "field without '='"),
        ] {
            let e = text.parse::<Credential>().unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
            assert!(!e.contains("AAAA"), "{e}");
        }
        let swapped = good.replacen("SCRAM-SHA-512", "SCRAM-SHA-256", 1);
        let e = swapped.parse::<Credential>().unwrap_err();
        assert!(e.contains("bytes, expected 32"), "{e}");
    }

    #[test]
    fn users_block_is_valid_toml_naming_the_user() {
        let c = Credential::generate(Mechanism::Plain, "pw", 4096);
        let block = users_block("al\"ice", &c);
        let v: toml::Value = toml::from_str(&block).unwrap();
        assert_eq!(v["users"][0]["name"].as_str(), Some("al\"ice"));
        let back: Credential = v["users"][0]["credentials"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(back, c);
    }
}
