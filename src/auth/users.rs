//! The users clients authenticate as, with their allow-lists.

use std::collections::HashMap;
use std::sync::Arc;

use super::credentials::Credential;
use super::scram;
use crate::domain::pattern::Pattern;

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
    pub(super) decoy_secret: [u8; 32],
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
