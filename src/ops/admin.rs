//! The admin socket: a Unix socket taking one JSON object per line and
//! answering one per line. The `switchyard` CLI is its client; scripts may
//! speak it directly.
//!
//! Requests: `{"cmd":"routes"}`, `{"cmd":"status"}`,
//! `{"cmd":"flip","topic":"T","to":"CLUSTER","side":"both"|"produce-only"|"fetch-only",
//! "mirrored":false}`,
//! `{"cmd":"flip-group","group":"G","to":"CLUSTER"}`,
//! `{"cmd":"detach","group":"G","cluster":"CLUSTER"}`.
//! Answers: `{"ok":true,"result":…}` or `{"ok":false,"error":"…"}`.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::{detach, group_move};
use crate::ops::flip::{self, Side};
use crate::ops::state::RouteEntry;
use crate::runtime::proxy::Proxy;

/// Longest request line accepted.
const MAX_LINE: u64 = 64 * 1024;

#[derive(Debug, Deserialize)]
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
    },
    /// Moves a consumer group's coordinator (and committed offsets).
    #[serde(rename = "flip-group")]
    FlipGroup {
        group: String,
        to: String,
    },
    /// Writes a group's committed offsets into one cluster's own offsets.
    Detach {
        group: String,
        cluster: String,
    },
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

/// Binds the admin socket (mode 0660), replacing a stale socket file.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(path)?;
        }
    }
    let listener = UnixListener::bind(path)?;
    // Whoever can connect can move traffic: owner and group only.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

pub async fn serve(proxy: Arc<Proxy>, listener: UnixListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(proxy.clone(), stream));
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(proxy: Arc<Proxy>, stream: UnixStream) {
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
            json!({"ok": false, "error": format!("request longer than {MAX_LINE} bytes")})
        } else {
            answer(&proxy, &line).await
        };
        let mut out = answer.to_string().into_bytes();
        out.push(b'\n');
        if write.write_all(&out).await.is_err() || too_long {
            return;
        }
    }
}

/// Answers one request line; never panics, whatever the line holds.
pub async fn answer(proxy: &Arc<Proxy>, line: &[u8]) -> Value {
    let request: AdminRequest = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) => {
            return json!({"ok": false, "error": format!(
                "malformed request ({e}); expected one JSON object per line, e.g. {{\"cmd\":\"routes\"}}"
            )})
        }
    };
    match request {
        AdminRequest::Routes => json!({"ok": true, "result": routes(proxy)}),
        AdminRequest::Status => json!({"ok": true, "result": status(proxy).await}),
        AdminRequest::Flip {
            topic,
            to,
            side,
            mirrored,
        } => match flip::cluster_named(proxy, &to) {
            Ok(to) => outcome(flip::flip(proxy, &topic, to, side, mirrored).await),
            Err(e) => outcome::<(), _>(Err(e)),
        },
        AdminRequest::FlipGroup { group, to } => match flip::cluster_named(proxy, &to) {
            Ok(to) => outcome(group_move::move_group(proxy, &group, to).await),
            Err(e) => outcome::<(), _>(Err(e)),
        },
        AdminRequest::Detach { group, cluster } => match flip::cluster_named(proxy, &cluster) {
            Ok(to) => outcome(detach::detach(proxy, &group, to).await),
            Err(e) => outcome::<(), _>(Err(e)),
        },
    }
}

/// A command's answer line: its report, or why it failed.
fn outcome<T: Serialize, E: std::fmt::Display>(result: Result<T, E>) -> Value {
    match result {
        Ok(report) => json!({"ok": true, "result": report}),
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    }
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

async fn status(proxy: &Proxy) -> Value {
    let clusters: Vec<Value> = proxy
        .clusters
        .iter()
        .map(|c| {
            c.with_view(|v| {
                let brokers: Vec<Value> = v
                    .brokers
                    .iter()
                    .map(|(id, addr)| {
                        let virtual_id = proxy.topology.to_virtual(c.idx, *id);
                        json!({
                            "node": id.0,
                            "virtual_node": virtual_id.0,
                            "port": proxy.topology.port(virtual_id),
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
        let state = proxy.state.lock().await;
        (state.flips.clone(), state.group_moves.clone())
    };
    json!({
        "cluster_id": proxy.config.proxy.cluster_id,
        "listen": proxy.config.proxy.listen.to_string(),
        "clusters": clusters,
        "listening": proxy.listening().iter().map(|v| v.0).collect::<Vec<_>>(),
        "flips": flips,
        "group_moves": group_moves,
        "drain": drain,
    })
}
