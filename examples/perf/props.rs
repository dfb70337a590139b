//! Client properties as Kafka's tools take them: a java-properties file
//! first, then `name=value` pairs over it, then the tool's own settings;
//! handed to librdkafka, which shares the common names with the Java client.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use rdkafka::config::ClientConfig;

/// Java client settings librdkafka has under another name.
const RENAMED: &[(&str, &str)] = &[
    ("receive.buffer.bytes", "socket.receive.buffer.bytes"),
    ("send.buffer.bytes", "socket.send.buffer.bytes"),
];

/// Java client settings with no librdkafka counterpart: a config written for
/// Kafka's tools names them, and librdkafka would refuse to start.
const JAVA_ONLY: &[&str] = &[
    "key.serializer",
    "value.serializer",
    "key.deserializer",
    "value.deserializer",
    "buffer.memory",
    "max.block.ms",
    "partitioner.class",
    "interceptor.classes",
];

/// Properties in the order of precedence they were given, the last setting
/// of a name winning.
#[derive(Default)]
pub struct Props(BTreeMap<String, String>);

impl Props {
    /// The properties of `file` when one is given.
    pub fn from_file(file: Option<&Path>) -> anyhow::Result<Props> {
        let mut props = Props::default();
        if let Some(file) = file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading config file {}", file.display()))?;
            for (name, value) in parse_java_properties(&text) {
                props.set(&name, &value);
            }
        }
        Ok(props)
    }

    /// Adds `name=value` pairs, as `--producer-props` gives them.
    pub fn extend_pairs(&mut self, pairs: &[String]) -> anyhow::Result<()> {
        for pair in pairs {
            match pair.split_once('=') {
                Some((name, value)) if !name.is_empty() => self.set(name, value),
                _ => bail!("invalid property {pair:?}: expected NAME=VALUE"),
            }
        }
        Ok(())
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.0
            .insert(name.trim().to_owned(), value.trim().to_owned());
    }

    pub fn set_default(&mut self, name: &str, value: &str) {
        self.0
            .entry(name.to_owned())
            .or_insert_with(|| value.to_owned());
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The librdkafka config: Java-only names left out (said on stderr),
    /// renamed ones translated.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (name, value) in &self.0 {
            if JAVA_ONLY.contains(&name.as_str()) {
                eprintln!(
                    "note: {name} is a Java client setting librdkafka does not have; ignored"
                );
                continue;
            }
            let name = RENAMED
                .iter()
                .find(|(java, _)| java == name)
                .map_or(name.as_str(), |(_, librdkafka)| librdkafka);
            config.set(name, value);
        }
        config
    }
}

/// `name=value`, `name:value` or `name value` lines; `#` and `!` start a
/// comment line; a line ending in a backslash goes on on the next.
fn parse_java_properties(text: &str) -> Vec<(String, String)> {
    let mut entries = Vec::new();
    let mut logical = String::new();
    for line in text.lines() {
        let line = line.trim_start();
        if logical.is_empty() && (line.is_empty() || line.starts_with(['#', '!'])) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => logical.push_str(head),
            None => {
                logical.push_str(line);
                let entry = std::mem::take(&mut logical);
                let cut = entry.find(['=', ':', ' ', '\t']).unwrap_or(entry.len());
                let (name, rest) = entry.split_at(cut);
                let value = rest
                    .trim_start()
                    .strip_prefix(['=', ':'])
                    .unwrap_or(rest.trim_start());
                entries.push((name.to_owned(), value.trim().to_owned()));
            }
        }
    }
    entries
}
