//! Topic, group and transactional-id patterns: an exact name, or a glob.
//! Compiled once, when the configuration is read.

use std::fmt;

use globset::{Glob, GlobMatcher};

/// A pattern from a route rule or an allow-list: an exact name, or a glob
/// when it holds any of `*?[{`.
#[derive(Debug, Clone)]
pub enum Pattern {
    Exact(String),
    Glob(GlobMatcher),
}

impl Pattern {
    pub fn new(text: &str) -> Result<Pattern, String> {
        if text.is_empty() {
            return Err("a topic pattern must not be empty".into());
        }
        if text.contains(['*', '?', '[', '{']) {
            Glob::new(text)
                .map(|g| Pattern::Glob(g.compile_matcher()))
                .map_err(|e| format!("'{text}' is not a valid glob: {e}"))
        } else {
            Ok(Pattern::Exact(text.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Pattern::Exact(name) => name,
            Pattern::Glob(glob) => glob.glob().glob(),
        }
    }

    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Pattern::Exact(name) => name == topic,
            Pattern::Glob(glob) => glob.is_match(topic),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
