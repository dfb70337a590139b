//! `[[users]]`: who clients may authenticate as, each with credentials one of
//! `proxy.sasl.mechanisms` can check and optional topic and group
//! allow-lists, compiled here.

use crate::auth::credentials::Credential;
use crate::domain::pattern::Pattern;

use super::error::{invalid, ConfigError};
use super::raw::RawUser;
use super::typed::{ClientSaslConfig, UserConfig};

/// Users and `[proxy.sasl]` go together: either without the other is refused.
pub(super) fn validate(
    raw: Vec<RawUser>,
    sasl: Option<&ClientSaslConfig>,
) -> Result<Vec<UserConfig>, ConfigError> {
    let Some(sasl) = sasl else {
        if raw.is_empty() {
            return Ok(Vec::new());
        }
        return Err(invalid(
            "users",
            "users are configured but [proxy.sasl] is not, so clients would not be asked to \
             authenticate; add [proxy.sasl] with mechanisms = [...]",
        ));
    };
    if raw.is_empty() {
        return Err(invalid(
            "proxy.sasl",
            "SASL is on but no [[users]] are configured; add one with `switchyard user add NAME`",
        ));
    }
    let mut users: Vec<UserConfig> = Vec::with_capacity(raw.len());
    for (i, u) in raw.into_iter().enumerate() {
        let user = user(i, u, sasl, &users)?;
        users.push(user);
    }
    Ok(users)
}

/// `[[users]]` number `i`, checked against the users before it.
fn user(
    i: usize,
    u: RawUser,
    sasl: &ClientSaslConfig,
    earlier: &[UserConfig],
) -> Result<UserConfig, ConfigError> {
    let key = |field: &str| format!("users[{i}].{field}");
    if u.name.is_empty() {
        return Err(invalid(key("name"), "must not be empty"));
    }
    if earlier.iter().any(|o| o.name == u.name) {
        return Err(invalid(
            key("name"),
            format!("user '{}' is listed twice", u.name),
        ));
    }
    let credential = credential(&key("credentials"), &u, sasl)?;
    let patterns = |field: &str, list: Option<Vec<String>>| {
        list.map(|l| {
            l.iter()
                .map(|p| Pattern::new(p).map_err(|e| invalid(key(field), e)))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
    };
    Ok(UserConfig {
        name: u.name,
        credential,
        topics: patterns("topics", u.topics)?,
        groups: patterns("groups", u.groups)?,
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
