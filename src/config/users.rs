//! `[[users]]`: who clients may authenticate as, each with credentials one of
//! `proxy.sasl.mechanisms` can check and optional topic and group
//! allow-lists, compiled here.

use crate::auth::credentials::Credential;
use crate::domain::pattern::Pattern;

use super::error::{invalid, ConfigError, Problems};
use super::raw::RawUser;
use super::typed::{ClientSaslConfig, UserConfig};

/// Users and `[proxy.sasl]` go together: either without the other is
/// refused. `raw`: `None` for a user whose shape is wrong (recorded); every
/// user's problems are recorded.
pub(super) fn validate(
    raw: Vec<Option<RawUser>>,
    sasl: Option<&ClientSaslConfig>,
    problems: &mut Problems,
) -> Option<Vec<UserConfig>> {
    let Some(sasl) = sasl else {
        if raw.is_empty() {
            return Some(Vec::new());
        }
        problems.push(
            "users",
            "users are configured but [proxy.sasl] is not, so clients would not be asked to \
             authenticate; add [proxy.sasl] with mechanisms = [...]",
        );
        return None;
    };
    if raw.is_empty() {
        problems.push(
            "proxy.sasl",
            "SASL is on but no [[users]] are configured; add one with `switchyard user add NAME`",
        );
        return None;
    }
    let mut names: Vec<&str> = Vec::with_capacity(raw.len());
    let mut users = Vec::with_capacity(raw.len());
    for (i, u) in raw.iter().enumerate() {
        let user = u
            .as_ref()
            .and_then(|u| problems.take(user(i, u, sasl, &names)));
        if let Some(u) = u {
            names.push(&u.name);
        }
        users.push(user);
    }
    users.into_iter().collect()
}

/// `[[users]]` number `i`, checked against the names of the users before it.
fn user(
    i: usize,
    u: &RawUser,
    sasl: &ClientSaslConfig,
    earlier: &[&str],
) -> Result<UserConfig, ConfigError> {
    let key = |field: &str| format!("users[{i}].{field}");
    if u.name.is_empty() {
        return Err(invalid(key("name"), "must not be empty"));
    }
    if earlier.contains(&u.name.as_str()) {
        return Err(invalid(
            key("name"),
            format!("user '{}' is listed twice", u.name),
        ));
    }
    let credential = credential(&key("credentials"), u, sasl)?;
    let patterns = |field: &str, list: &Option<Vec<String>>| {
        list.as_ref()
            .map(|l| {
                l.iter()
                    .map(|p| Pattern::new(p).map_err(|e| invalid(key(field), e)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
    };
    Ok(UserConfig {
        name: u.name.clone(),
        credential,
        topics: patterns("topics", &u.topics)?,
        groups: patterns("groups", &u.groups)?,
    })
}

/// The user's credentials, parsed; refused when no enabled mechanism can
/// check them.
fn credential(key: &str, u: &RawUser, sasl: &ClientSaslConfig) -> Result<Credential, ConfigError> {
    let credential: Credential = u.credentials.parse().map_err(|e: String| invalid(key, e))?;
    if !sasl.mechanisms.iter().any(|m| credential.allows(*m)) {
        return Err(invalid(
            key,
            format!(
                "user '{}' has {} credentials, which none of proxy.sasl.mechanisms can check; \
                 enable {} or PLAIN",
                u.name,
                credential.mechanism(),
                credential.mechanism()
            ),
        ));
    }
    Ok(credential)
}

#[cfg(test)]
mod tests {
    use crate::auth::credentials::{Credential, Mechanism};
    use crate::config::fixtures::{alice, err_of, with_security, GOOD};

    #[test]
    fn users_and_sasl_need_each_other() {
        let e = err_of(&format!("{GOOD}\n{}", alice()));
        assert!(
            e.starts_with("users: users are configured but [proxy.sasl] is not"),
            "{e}"
        );
        let e = err_of(&with_security(""));
        assert!(
            e.starts_with("proxy.sasl: SASL is on but no [[users]]"),
            "{e}"
        );
    }

    #[test]
    fn bad_credentials_name_the_user_key_without_the_value() {
        let e = err_of(&with_security(
            "[[users]]\nname = \"bob\"\ncredentials = \"PLAIN:hunter2\"\n",
        ));
        assert!(
            e.starts_with("users[0].credentials: PLAIN field without '='"),
            "{e}"
        );
        assert!(!e.contains("hunter2"));
        let sha256 = Credential::derive(Mechanism::ScramSha256, "pw", vec![1; 16], 4096).encode();
        let e = err_of(
            &with_security(&format!(
                "[[users]]\nname = \"c\"\ncredentials = \"{sha256}\"\n"
            ))
            .replace("\"SCRAM-SHA-512\", \"PLAIN\"", "\"SCRAM-SHA-512\""),
        );
        assert!(
            e.contains("has SCRAM-SHA-256 credentials, which none of"),
            "{e}"
        );
    }
}
