//! The one error of config loading, the [`Problem`]s it lists, and the
//! collector every section validator records them in. Its own module so the
//! validators need nothing from `mod.rs`, which calls them.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// One mistake in the config: the key at fault and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The key as the file spells it (`clusters.new.node_id_base`,
    /// `routes.topic[0].produce`); a table's name when the table as a
    /// whole is at fault; `config` when the file cannot be read or parsed.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why a configuration could not be used; each variant names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not TOML at all.
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// One key at fault (what the TLS and SASL set-up reports).
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    /// Every mistake validation found, in the order of the file's sections.
    #[error("{}", list(.0))]
    Problems(Vec<Problem>),
}

fn list(problems: &[Problem]) -> String {
    match problems {
        [one] => one.to_string(),
        many => {
            let lines: Vec<String> = many.iter().map(|p| format!("  {p}")).collect();
            format!("{} problems:\n{}", many.len(), lines.join("\n"))
        }
    }
}

impl ConfigError {
    /// The error as a list of problems, each naming its key.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            ConfigError::Problems(all) => all.clone(),
            ConfigError::Invalid { key, message } => vec![Problem {
                key: key.clone(),
                message: message.clone(),
            }],
            other => vec![Problem {
                key: "config".to_owned(),
                message: other.to_string(),
            }],
        }
    }
}

pub(super) fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// The problems found so far. Validators record what is wrong here and go
/// on, so that one run of `switchyard check` lists every mistake.
#[derive(Debug, Default)]
pub(super) struct Problems(Vec<Problem>);

impl Problems {
    pub(super) fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    /// The value of `result`, or `None` with its error recorded.
    pub(super) fn take<T>(&mut self, result: Result<T, ConfigError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.0.extend(e.problems());
                None
            }
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn into_vec(self) -> Vec<Problem> {
        self.0
    }
}
