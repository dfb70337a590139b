//! `[routes]`: the default cluster, `[[routes.topic]]` rules, and the
//! `[[routes.group]]` and `[[routes.transaction]]` rules; cluster names
//! become [`ClusterIdx`] here.

use crate::domain::ids::ClusterIdx;
use crate::domain::pattern::Pattern;

use super::error::{invalid, ConfigError};
use super::raw::{RawGroupRoute, RawRoutes, RawTopicRoute};
use super::typed::{ClusterConfig, GroupRouteConfig, RoutesConfig, TopicRouteConfig};

pub(super) fn validate(
    raw: RawRoutes,
    clusters: &[ClusterConfig],
) -> Result<RoutesConfig, ConfigError> {
    let default = lookup(clusters, "routes.default".into(), &raw.default)?;
    let topics = raw
        .topic
        .into_iter()
        .enumerate()
        .map(|(i, t)| topic_rule(clusters, default, i, t))
        .collect::<Result<Vec<_>, _>>()?;
    let groups = coordinator_rules(clusters, "group", raw.group)?;
    let transactions = coordinator_rules(clusters, "transaction", raw.transaction)?;
    Ok(RoutesConfig {
        default,
        topics,
        groups,
        transactions,
    })
}

/// The index of the cluster a rule names; `key` is the rule's key, for the
/// error.
pub(super) fn lookup(
    clusters: &[ClusterConfig],
    key: String,
    name: &str,
) -> Result<ClusterIdx, ConfigError> {
    clusters
        .iter()
        .position(|c| c.name == name)
        .map(ClusterIdx)
        .ok_or_else(|| {
            let known: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
            invalid(
                key,
                format!(
                    "names cluster '{name}', which is not configured (known: {})",
                    known.join(", ")
                ),
            )
        })
}

/// `[[routes.topic]]` number `i`; a side it leaves out goes to `default`.
fn topic_rule(
    clusters: &[ClusterConfig],
    default: ClusterIdx,
    i: usize,
    t: RawTopicRoute,
) -> Result<TopicRouteConfig, ConfigError> {
    let key = |field: &str| format!("routes.topic[{i}].{field}");
    let pattern = Pattern::new(&t.pattern).map_err(|e| invalid(key("pattern"), e))?;
    if t.produce.is_none() && t.fetch.is_none() {
        return Err(invalid(
            format!("routes.topic[{i}]"),
            format!(
                "rule for '{}' names neither produce nor fetch; set at least one",
                t.pattern
            ),
        ));
    }
    let side = |field: &str, name: &Option<String>| match name {
        Some(name) => lookup(clusters, key(field), name),
        None => Ok(default),
    };
    Ok(TopicRouteConfig {
        pattern,
        produce: side("produce", &t.produce)?,
        fetch: side("fetch", &t.fetch)?,
    })
}

/// Group and transactional-id rules: a pattern and a cluster each.
fn coordinator_rules(
    clusters: &[ClusterConfig],
    table: &str,
    raw: Vec<RawGroupRoute>,
) -> Result<Vec<GroupRouteConfig>, ConfigError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, g)| {
            let pattern = Pattern::new(&g.pattern)
                .map_err(|e| invalid(format!("routes.{table}[{i}].pattern"), e))?;
            let cluster = lookup(clusters, format!("routes.{table}[{i}].cluster"), &g.cluster)?;
            Ok(GroupRouteConfig { pattern, cluster })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::config::fixtures::{err_of, GOOD};
    use crate::config::Config;

    #[test]
    fn unknown_cluster_in_route_names_the_key_and_known_clusters() {
        let e = err_of(&GOOD.replace("produce = \"new\"", "produce = \"neww\""));
        assert_eq!(
            e,
            "routes.topic[0].produce: names cluster 'neww', which is not configured (known: new, old)"
        );
    }

    #[test]
    fn produce_and_fetch_may_name_different_clusters() {
        let c = Config::parse(&GOOD.replace("fetch = \"new\"", "fetch = \"old\"")).unwrap();
        let rule = &c.routes.topics[0];
        assert_eq!(c.cluster(rule.produce).name, "new");
        assert_eq!(c.cluster(rule.fetch).name, "old");
    }

    #[test]
    fn group_rule_names_a_known_cluster() {
        let c = Config::parse(&format!(
            "{GOOD}\n[[routes.group]]\npattern = \"billing-*\"\ncluster = \"new\"\n"
        ))
        .unwrap();
        assert_eq!(c.cluster(c.routes.groups[0].cluster).name, "new");
        let e = err_of(&format!(
            "{GOOD}\n[[routes.group]]\npattern = \"g\"\ncluster = \"mars\"\n"
        ));
        assert!(
            e.starts_with("routes.group[0].cluster: names cluster 'mars'"),
            "{e}"
        );
    }
}
