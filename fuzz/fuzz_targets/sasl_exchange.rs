//! A client's byte stream before authentication, through the proxy's SASL
//! server: frames, headers, SaslHandshake, SaslAuthenticate, raw v0
//! tokens, SCRAM and PLAIN messages. Errors and refusals are fine; panics
//! are not.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use switchyard::auth::credentials::{Credential, Mechanism};
use switchyard::auth::sasl::{SaslServer, Step};
use switchyard::auth::{User, Users};
use switchyard::wire::read_frame;

#[path = "runtime.rs"]
mod runtime;
use runtime::runtime;

/// alice (SCRAM-SHA-512, password "alice") and bob (PLAIN, "bob"); made
/// once, since deriving keys is slow.
fn users() -> Arc<Users> {
    static USERS: OnceLock<Arc<Users>> = OnceLock::new();
    USERS
        .get_or_init(|| {
            let salt = b"fuzz-salt".to_vec();
            Arc::new(
                Users::new(vec![
                    User::new(
                        "alice",
                        Credential::derive(Mechanism::ScramSha512, "alice", salt.clone(), 4096),
                    ),
                    User::new("bob", Credential::derive(Mechanism::Plain, "bob", salt, 4096)),
                ])
                .unwrap(),
            )
        })
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let mut stream = data;
    let mut server = SaslServer::new(users(), Mechanism::ALL.to_vec());
    runtime().block_on(async {
        while let Ok(Some(frame)) = read_frame(&mut stream, 8 * 1024).await {
            match server.screen(&frame) {
                Ok(None) | Ok(Some(Step::Continue(_))) => {}
                // Authenticated, refused or broken: the session would stop
                // screening here.
                Ok(Some(_)) | Err(_) => return,
            }
        }
    });
});
