//! `[state]`: where the runtime state lives. Absent, or `store = "file"`:
//! the state file, for one instance. `store = "kafka"`: a compacted topic
//! on one of the configured clusters, shared by every instance.

use std::time::Duration;

use super::error::{invalid, ConfigError};
use super::raw::RawState;
use super::routes::lookup;
use super::typed::{KafkaStateConfig, StateConfig};

/// `clusters`: every configured cluster's name, in name order.
pub(super) fn validate(
    raw: Option<RawState>,
    clusters: &[&str],
) -> Result<StateConfig, ConfigError> {
    let Some(raw) = raw else {
        return Ok(StateConfig::File);
    };
    match raw.store.as_str() {
        "file" => Ok(StateConfig::File),
        "kafka" => {
            let name = raw.cluster.as_deref().ok_or_else(|| {
                invalid(
                    "state.cluster",
                    "store = \"kafka\" needs the cluster that holds the state topic",
                )
            })?;
            let cluster = lookup(clusters, "state.cluster".to_owned(), name)?;
            if raw.topic.trim().is_empty() {
                return Err(invalid("state.topic", "must not be empty"));
            }
            if raw.lease_interval_ms == 0 {
                return Err(invalid("state.lease_interval_ms", "must be greater than 0"));
            }
            if raw.lease_expiry_ms < raw.lease_interval_ms.saturating_mul(3) {
                return Err(invalid(
                    "state.lease_expiry_ms",
                    "must be at least three lease intervals, so that one late heartbeat does not expire a lease",
                ));
            }
            Ok(StateConfig::Kafka(KafkaStateConfig {
                cluster,
                topic: raw.topic,
                lease_interval: Duration::from_millis(raw.lease_interval_ms),
                lease_expiry: Duration::from_millis(raw.lease_expiry_ms),
            }))
        }
        other => Err(invalid(
            "state.store",
            format!("'{other}' is not a store; use \"file\" or \"kafka\""),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{err_of, GOOD};
    use super::super::Config;
    use super::*;

    #[test]
    fn no_state_section_is_the_state_file() {
        assert_eq!(Config::parse(GOOD).unwrap().state, StateConfig::File);
    }

    #[test]
    fn a_kafka_store_names_its_cluster_and_takes_defaults() {
        let c = Config::parse(&format!(
            "{GOOD}\n[state]\nstore = \"kafka\"\ncluster = \"new\"\n"
        ))
        .unwrap();
        let StateConfig::Kafka(k) = c.state else {
            panic!("{:?}", c.state)
        };
        assert_eq!(c.clusters[k.cluster.0].name, "new");
        assert_eq!(k.topic, "__switchyard_state");
        assert_eq!(
            (k.lease_interval, k.lease_expiry),
            (Duration::from_secs(1), Duration::from_secs(10))
        );
    }

    #[test]
    fn a_kafka_store_is_checked() {
        for (section, key, says) in [
            ("store = \"etcd\"", "state.store", "not a store"),
            ("store = \"kafka\"", "state.cluster", "needs the cluster"),
            ("store = \"kafka\"\ncluster = \"nope\"", "state.cluster", "not configured"),
            (
                "store = \"kafka\"\ncluster = \"new\"\nlease_interval_ms = 1000\nlease_expiry_ms = 2000",
                "state.lease_expiry_ms",
                "three lease intervals",
            ),
        ] {
            let e = err_of(&format!("{GOOD}\n[state]\n{section}\n"));
            assert!(e.contains(key) && e.contains(says), "{section}: {e}");
        }
    }
}
