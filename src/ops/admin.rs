//! The admin socket: a Unix socket taking one JSON object per line and
//! answering one per line. The `switchyard` CLI is its client; scripts may
//! speak it directly.
//!
//! Requests: `{"cmd":"routes"}`, `{"cmd":"status"}`,
//! `{"cmd":"flip","topic":"T","to":"CLUSTER","side":"both"|"produce-only"|"fetch-only",
//! "mirrored":false}`,
//! `{"cmd":"flip-topics","pattern":"GLOB"|"topics":["T",…],"to":"CLUSTER",…}`
//! (as flip, for many topics in one fence and one record),
//! `{"cmd":"flip-group","group":"G","to":"CLUSTER"}`,
//! `{"cmd":"flip-groups","pattern":"GLOB","to":"CLUSTER"}` (many groups in one hold),
//! `{"cmd":"detach","group":"G","cluster":"CLUSTER"}`.
//! Answers: `{"ok":true,"result":…}` or `{"ok":false,"error":"…"}`.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::{detach, group_move, steps};
use crate::domain::ids::ClusterIdx;
use crate::ops::fleet::Fleet;
use crate::ops::flip::{self, Side};
use crate::ops::journal::FailedMove;
use crate::ops::state::RouteEntry;
use crate::runtime::proxy::Proxy;
use crate::runtime::reload;

/// Longest request line accepted: room for a flip of 20,000 topics named
/// one by one.
const MAX_LINE: u64 = 8 * 1024 * 1024;

/// A request to the admin socket, as the CLI sends it and the proxy reads
/// it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum AdminRequest {
    Routes,
    Status,
    Flip {
        topic: String,
        to: String,
        #[serde(default)]
        side: Side,
        /// MirrorMaker 2 copies the topic to the target: stitch after it.
        #[serde(default)]
        mirrored: bool,
        /// Say what the flip would do, and do nothing.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        dry_run: bool,
    },
    /// Moves many topics in one fence, one stillness window and one
    /// record, all or none: those matching `pattern` on the clusters they
    /// leave, or the names in `topics`.
    #[serde(rename = "flip-topics")]
    FlipTopics {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pattern: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        topics: Vec<String>,
        to: String,
        #[serde(default)]
        side: Side,
        #[serde(default)]
        mirrored: bool,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        dry_run: bool,
    },
    /// Moves a consumer group's coordinator (and committed offsets).
    #[serde(rename = "flip-group")]
    FlipGroup {
        group: String,
        to: String,
        /// Say what the move would do, and do nothing.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        dry_run: bool,
    },
    /// Moves every consumer group matching `pattern` on the clusters other
    /// than `to`, in one hold and one record, all or none.
    #[serde(rename = "flip-groups")]
    FlipGroups {
        pattern: String,
        to: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        dry_run: bool,
    },
    /// Writes a group's committed offsets into one cluster's own offsets.
    Detach {
        group: String,
        cluster: String,
    },
    /// Reads the config file again and applies what can change live.
    Reload,
}

/// The admin socket's answer to one request: its result, or why it failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Answer {
    pub fn done(result: impl Serialize) -> Answer {
        Answer {
            ok: true,
            result: Some(serde_json::to_value(result).unwrap_or(Value::Null)),
            error: None,
        }
    }

    pub fn refused(error: impl std::fmt::Display) -> Answer {
        Answer {
            ok: false,
            result: None,
            error: Some(error.to_string()),
        }
    }

    /// A command's answer: its report, or why it failed.
    fn outcome<T: Serialize, E: std::fmt::Display>(result: Result<T, E>) -> Answer {
        match result {
            Ok(report) => Answer::done(report),
            Err(e) => Answer::refused(e),
        }
    }
}

/// One configured rule or runtime route, as `routes` lists it.
#[derive(Debug, Serialize, Deserialize)]
pub struct RouteLine {
    pub pattern: String,
    pub produce: String,
    pub fetch: String,
    /// "runtime" (a flip, kept in the state file) or "config".
    pub source: String,
}

/// Binds the admin socket (mode 0660), replacing a stale socket file but
/// never a live one: a second proxy started with the same config must not
/// take the socket of the one serving (its flips would go to the wrong
/// process).
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        format!(
                            "another proxy is listening on {}; stop it first, or give this one \
                             its own proxy.admin_socket",
                            path.display()
                        ),
                    ))
                }
                // Nobody listens: a socket file left by a proxy that died.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(path)?;
                }
                Err(e) => return Err(e),
            }
        }
    }
    let listener = UnixListener::bind(path)?;
    // Whoever can connect can move traffic: owner and group only.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

/// Serves the admin socket. `fleet`: the instances sharing a state topic,
/// across which flips run.
pub async fn serve(proxy: Arc<Proxy>, fleet: Option<Arc<Fleet>>, listener: UnixListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(proxy.clone(), fleet.clone(), stream));
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(proxy: Arc<Proxy>, fleet: Option<Arc<Fleet>>, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = Vec::new();
        let n = match (&mut reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(n) => n,
            Err(_) => return,
        };
        if n == 0 {
            return;
        }
        let too_long = line.last() != Some(&b'\n') && n as u64 == MAX_LINE;
        let answer = if too_long {
            Answer::refused(format!("request longer than {MAX_LINE} bytes"))
        } else {
            answer(&proxy, fleet.as_ref(), &line).await
        };
        let mut out = serde_json::to_vec(&answer).unwrap_or_default();
        out.push(b'\n');
        if write.write_all(&out).await.is_err() || too_long {
            return;
        }
    }
}

/// Answers one request line; never panics, whatever the line holds.
pub async fn answer(proxy: &Arc<Proxy>, fleet: Option<&Arc<Fleet>>, line: &[u8]) -> Answer {
    match serde_json::from_slice(line) {
        Ok(request) => run(proxy, fleet, request).await,
        Err(e) => Answer::refused(format!(
            "malformed request ({e}); expected one JSON object per line, e.g. {{\"cmd\":\"routes\"}}"
        )),
    }
}

/// Carries out one request: the admin socket's, or the console's.
pub async fn run(proxy: &Arc<Proxy>, fleet: Option<&Arc<Fleet>>, request: AdminRequest) -> Answer {
    match request {
        AdminRequest::Routes => Answer::done(routes(proxy)),
        AdminRequest::Status => Answer::done(status(proxy).await),
        AdminRequest::Flip {
            topic,
            to,
            side,
            mirrored,
            dry_run,
        } => match flip::cluster_named(proxy, &to) {
            Ok(to) => {
                let asked = flip::FlipAsked {
                    topic,
                    to,
                    side,
                    mirrored,
                };
                if dry_run {
                    return Answer::outcome(flip::dry_run(proxy, &asked).await);
                }
                let result = match fleet {
                    Some(fleet) => fleet.flip(proxy, &asked).await,
                    None => flip::flip(proxy, &asked).await,
                };
                settle(proxy, "topic", &asked.topic, to, result, |r| r.changed)
            }
            Err(e) => Answer::refused(e),
        },
        AdminRequest::FlipTopics {
            pattern,
            topics,
            to,
            side,
            mirrored,
            dry_run,
        } => {
            let to = match flip::cluster_named(proxy, &to) {
                Ok(to) => to,
                Err(e) => return Answer::refused(e),
            };
            let topics = match flip::select_topics(proxy, pattern.as_deref(), topics, to).await {
                Ok(topics) => topics,
                Err(e) => return Answer::refused(e),
            };
            let asked = flip::FlipsAsked {
                topics,
                to,
                side,
                mirrored,
            };
            if dry_run {
                return Answer::outcome(flip::dry_run_topics(proxy, &asked).await);
            }
            if fleet.is_some() {
                return Answer::refused(
                    "a flip of many topics runs on one instance only; with [state] on a topic, \
                     flip the topics one at a time",
                );
            }
            let label = steps::batch_name(asked.topics.iter().map(String::as_str), "topics");
            let result = flip::flip_topics(proxy, &asked).await;
            settle(proxy, "topic", &label, to, result, |r| {
                r.topics.iter().any(|t| t.changed)
            })
        }
        AdminRequest::FlipGroup { group, to, dry_run } => match flip::cluster_named(proxy, &to) {
            Ok(to) if dry_run => Answer::outcome(group_move::dry_run(proxy, &group, to).await),
            Ok(to) => {
                let result = match fleet {
                    Some(fleet) => fleet.move_group(proxy, &group, to).await,
                    None => group_move::move_group(proxy, &group, to).await,
                };
                settle(proxy, "group", &group, to, result, |r| r.changed)
            }
            Err(e) => Answer::refused(e),
        },
        AdminRequest::FlipGroups {
            pattern,
            to,
            dry_run,
        } => {
            let to = match flip::cluster_named(proxy, &to) {
                Ok(to) => to,
                Err(e) => return Answer::refused(e),
            };
            let groups = match group_move::select_groups(proxy, &pattern, to).await {
                Ok(groups) => groups,
                Err(e) => return Answer::refused(e),
            };
            if dry_run {
                return Answer::outcome(group_move::dry_run_groups(proxy, &groups, to).await);
            }
            if fleet.is_some() {
                return Answer::refused(
                    "a move of many groups runs on one instance only; with [state] on a topic, \
                     move the groups one at a time",
                );
            }
            let result = group_move::move_groups(proxy, &groups, to).await;
            settle(proxy, "group", &pattern, to, result, |r| {
                r.groups.iter().any(|g| g.changed)
            })
        }
        AdminRequest::Detach { group, cluster } => match flip::cluster_named(proxy, &cluster) {
            Ok(to) => Answer::outcome(detach::detach(proxy, &group, to).await),
            Err(e) => Answer::refused(e),
        },
        AdminRequest::Reload => Answer::outcome(reload::reload(proxy).await),
    }
}

/// A move's answer, once its outcome is counted and, when it failed,
/// kept in the journal for the console.
fn settle<T: Serialize, E: steps::MoveError + std::fmt::Display>(
    proxy: &Proxy,
    kind: &'static str,
    name: &str,
    to: ClusterIdx,
    result: Result<T, E>,
    changed: impl FnOnce(&T) -> bool,
) -> Answer {
    steps::count_outcome(kind, &result, changed);
    if let Err(e) = &result {
        proxy.journal().failed(FailedMove {
            kind,
            name: name.to_owned(),
            to: proxy.cluster(to).name().to_owned(),
            at_ms: steps::now_ms(),
            outcome: e.outcome().0,
            reason: e.to_string(),
        });
    }
    Answer::outcome(result)
}

fn routes(proxy: &Proxy) -> Value {
    let table = proxy.routes();
    let name = |route| proxy.route_entry(route);
    let mut lines: Vec<RouteLine> = Vec::new();
    let mut runtime: Vec<_> = table.runtime_routes().collect();
    runtime.sort_by_key(|(t, _)| *t);
    for (topic, route) in runtime {
        let RouteEntry { produce, fetch } = name(route);
        lines.push(RouteLine {
            pattern: topic.to_owned(),
            produce,
            fetch,
            source: "runtime".into(),
        });
    }
    for (pattern, route) in table.rules() {
        let RouteEntry { produce, fetch } = name(route);
        lines.push(RouteLine {
            pattern: pattern.to_string(),
            produce,
            fetch,
            source: "config".into(),
        });
    }
    let group_line = |pattern: String, cluster, source: &str| json!({"pattern": pattern, "cluster": proxy.cluster(cluster).name(), "source": source});
    let mut moved: Vec<_> = table.runtime_groups().collect();
    moved.sort_by_key(|(g, _)| *g);
    let groups: Vec<Value> = moved
        .into_iter()
        .map(|(group, cluster)| group_line(group.to_owned(), cluster, "runtime"))
        .chain(
            table
                .group_rules()
                .map(|(pattern, cluster)| group_line(pattern.to_string(), cluster, "config")),
        )
        .collect();
    json!({
        "default": proxy.cluster(table.default_cluster()).name(),
        "routes": lines,
        "groups": groups,
    })
}

/// What `switchyard status --json` prints, and `/status.json` serves.
pub async fn status(proxy: &Proxy) -> Value {
    let clusters: Vec<Value> = proxy
        .clusters()
        .map(|c| {
            c.with_view(|v| {
                let brokers: Vec<Value> = v
                    .brokers
                    .iter()
                    .map(|(id, addr)| {
                        let virtual_id = proxy.topology().to_virtual(c.idx, *id);
                        json!({
                            "node": id.0,
                            "virtual_node": virtual_id.0,
                            "port": proxy.topology().port(virtual_id),
                            "address": addr.address(),
                        })
                    })
                    .collect();
                json!({
                    "name": c.name(),
                    "bootstrap": c.config.bootstrap,
                    "reachable": v.reachable,
                    "last_error": v.last_error,
                    "brokers": brokers,
                })
            })
        })
        .collect();
    // Progress of groups on stitched topics, when the clusters can say.
    let drain = match crate::ops::drain::drains(proxy).await {
        Ok(d) => json!(d),
        Err(e) => json!({"error": e.to_string()}),
    };
    let (flips, group_moves) = {
        let state = proxy.state().lock().await;
        (state.flips.clone(), state.group_moves.clone())
    };
    json!({
        "cluster_id": proxy.config().proxy.cluster_id,
        "listen": proxy.config().proxy.listen.to_string(),
        "clusters": clusters,
        "listening": proxy.listening().iter().map(|v| v.0).collect::<Vec<_>>(),
        "instance": proxy.config().proxy.instance_id,
        "instances": proxy.store().instances(),
        "flips": flips,
        "group_moves": group_moves,
        "drain": drain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flip_of_many_topics_names_a_pattern_or_a_list() {
        let line = r#"{"cmd":"flip-topics","pattern":"payments.*","to":"new","dry_run":true}"#;
        let by_pattern = AdminRequest::FlipTopics {
            pattern: Some("payments.*".into()),
            topics: Vec::new(),
            to: "new".into(),
            side: Side::Both,
            mirrored: false,
            dry_run: true,
        };
        assert_eq!(
            serde_json::from_str::<AdminRequest>(line).unwrap(),
            by_pattern
        );
        let listed: AdminRequest = serde_json::from_str(
            r#"{"cmd":"flip-topics","topics":["a","b"],"to":"new","side":"produce-only"}"#,
        )
        .unwrap();
        assert!(matches!(
            listed,
            AdminRequest::FlipTopics { pattern: None, topics, side: Side::ProduceOnly, .. }
                if topics == ["a", "b"]
        ));
    }

    #[test]
    fn requests_read_and_write_the_documented_lines() {
        let flip = AdminRequest::Flip {
            topic: "orders".into(),
            to: "new".into(),
            side: Side::ProduceOnly,
            mirrored: true,
            dry_run: false,
        };
        let line =
            r#"{"cmd":"flip","topic":"orders","to":"new","side":"produce-only","mirrored":true}"#;
        assert_eq!(serde_json::to_string(&flip).unwrap(), line);
        assert_eq!(serde_json::from_str::<AdminRequest>(line).unwrap(), flip);
        let short: AdminRequest =
            serde_json::from_str(r#"{"cmd":"flip","topic":"orders","to":"new"}"#).unwrap();
        assert_eq!(
            short,
            AdminRequest::Flip {
                topic: "orders".into(),
                to: "new".into(),
                side: Side::Both,
                mirrored: false,
                dry_run: false,
            }
        );
        let dry: AdminRequest =
            serde_json::from_str(r#"{"cmd":"flip","topic":"orders","to":"new","dry_run":true}"#)
                .unwrap();
        assert!(matches!(dry, AdminRequest::Flip { dry_run: true, .. }));
        let group = AdminRequest::FlipGroup {
            group: "billing".into(),
            to: "new".into(),
            dry_run: false,
        };
        assert_eq!(
            serde_json::to_string(&group).unwrap(),
            r#"{"cmd":"flip-group","group":"billing","to":"new"}"#
        );
        assert_eq!(
            serde_json::to_string(&AdminRequest::Routes).unwrap(),
            r#"{"cmd":"routes"}"#
        );
        assert!(serde_json::from_str::<AdminRequest>(r#"{"cmd":"reboot"}"#).is_err());
        assert!(serde_json::from_str::<AdminRequest>(
            r#"{"cmd":"flip","topic":"t","to":"new","x":1}"#
        )
        .is_err());
    }

    #[test]
    fn answers_say_ok_with_a_result_or_not_with_an_error() {
        assert_eq!(
            serde_json::to_string(&Answer::done(json!({"changed": true}))).unwrap(),
            r#"{"ok":true,"result":{"changed":true}}"#
        );
        assert_eq!(
            serde_json::to_string(&Answer::refused("unknown cluster 'mars'")).unwrap(),
            r#"{"ok":false,"error":"unknown cluster 'mars'"}"#
        );
    }
}
