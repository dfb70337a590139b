//! `[routes]`: the default cluster, `[[routes.topic]]` rules, and the
//! `[[routes.group]]` and `[[routes.transaction]]` rules; cluster names
//! become [`ClusterIdx`] here.

use crate::domain::ids::ClusterIdx;
use crate::domain::pattern::Pattern;

use super::error::{invalid, ConfigError, Problems};
use super::raw::{RawGroupRoute, RawRoutes, RawTopicRoute};
use super::typed::{GroupRouteConfig, RoutesConfig, TopicRouteConfig};

/// `clusters`: every configured cluster's name, in name order (including
/// those with problems of their own, so that a rule naming one is not
/// reported as well). Every rule's problems are recorded.
pub(super) fn validate(
    raw: RawRoutes,
    clusters: &[&str],
    problems: &mut Problems,
) -> Option<RoutesConfig> {
    let default = problems.take(lookup(clusters, "routes.default".into(), &raw.default));
    let topics: Vec<Option<TopicRouteConfig>> = raw
        .topic
        .into_iter()
        .enumerate()
        .map(|(i, t)| problems.take(topic_rule(clusters, default, i, t)))
        .collect();
    let groups = coordinator_rules(clusters, "group", raw.group, problems);
    let transactions = coordinator_rules(clusters, "transaction", raw.transaction, problems);
    Some(RoutesConfig {
        default: default?,
        topics: topics.into_iter().collect::<Option<_>>()?,
        groups: groups?,
        transactions: transactions?,
    })
}

/// The index of the cluster a rule names; `key` is the rule's key, for the
/// error.
pub(super) fn lookup(
    clusters: &[&str],
    key: String,
    name: &str,
) -> Result<ClusterIdx, ConfigError> {
    clusters
        .iter()
        .position(|c| *c == name)
        .map(ClusterIdx)
        .ok_or_else(|| {
            invalid(
                key,
                format!(
                    "names cluster '{name}', which is not configured (known: {})",
                    clusters.join(", ")
                ),
            )
        })
}

/// `[[routes.topic]]` number `i`; a side it leaves out goes to `default`
/// (`None` when the default itself is wrong: then only the sides it names
/// are checked).
fn topic_rule(
    clusters: &[&str],
    default: Option<ClusterIdx>,
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
        // The default's own problem is already recorded.
        None => default.ok_or_else(|| ConfigError::Problems(Vec::new())),
    };
    let produce = side("produce", &t.produce);
    let fetch = side("fetch", &t.fetch);
    match (produce, fetch) {
        (Ok(produce), Ok(fetch)) => Ok(TopicRouteConfig {
            pattern,
            produce,
            fetch,
        }),
        (produce, fetch) => {
            let problems = [produce.err(), fetch.err()]
                .into_iter()
                .flatten()
                .flat_map(|e| e.problems())
                .collect();
            Err(ConfigError::Problems(problems))
        }
    }
}

/// Group and transactional-id rules: a pattern and a cluster each.
fn coordinator_rules(
    clusters: &[&str],
    table: &str,
    raw: Vec<RawGroupRoute>,
    problems: &mut Problems,
) -> Option<Vec<GroupRouteConfig>> {
    let rules: Vec<Option<GroupRouteConfig>> = raw
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            let pattern = problems.take(
                Pattern::new(&g.pattern)
                    .map_err(|e| invalid(format!("routes.{table}[{i}].pattern"), e)),
            );
            let cluster = problems.take(lookup(
                clusters,
                format!("routes.{table}[{i}].cluster"),
                &g.cluster,
            ));
            Some(GroupRouteConfig {
                pattern: pattern?,
                cluster: cluster?,
            })
        })
        .collect();
    rules.into_iter().collect()
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
    fn every_rule_with_an_unknown_cluster_is_listed() {
        let e = err_of(&format!(
            "{GOOD}\n[[routes.topic]]\npattern = \"a\"\nproduce = \"mars\"\nfetch = \"venus\"\n\
             [[routes.transaction]]\npattern = \"t\"\ncluster = \"pluto\"\n"
        ));
        for expected in [
            "routes.topic[1].produce: names cluster 'mars'",
            "routes.topic[1].fetch: names cluster 'venus'",
            "routes.transaction[0].cluster: names cluster 'pluto'",
        ] {
            assert!(e.contains(expected), "{expected} in {e}");
        }
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
