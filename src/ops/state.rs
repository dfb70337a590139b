//! The state file: runtime routes and the record of every flip, written
//! before a flip is acknowledged so that a restarted proxy comes back with
//! them and a config change never silently undoes them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::domain::offsets::UpstreamOffset;
use crate::domain::producer_ids::Claim;

/// Where a topic's traffic goes, by cluster name (as the config names them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteEntry {
    pub produce: String,
    pub fetch: String,
}

/// One partition's offsets at the moment Produce moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StitchPoint {
    pub partition: i32,
    /// End of the log on the cluster Produce left.
    pub l_old: UpstreamOffset,
    /// End of the log on the cluster Produce moved to.
    pub l_new: UpstreamOffset,
}

/// One completed flip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlipRecord {
    pub topic: String,
    pub from: RouteEntry,
    pub to: RouteEntry,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Empty when Produce did not move.
    pub stitch: Vec<StitchPoint>,
    /// The fleet flip this record decides (instances sharing a state
    /// topic); absent for a flip of one instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// How long each step up to the record took (prepare, fence, check);
    /// the record and switch steps come after it is written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepTiming>,
}

/// How long one step of a flip or group move took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepTiming {
    pub step: String,
    pub ms: f64,
}

/// A duration is never NaN, so equality is total.
impl Eq for StepTiming {}

/// One completed move of a consumer group's coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMoveRecord {
    pub group: String,
    pub from: String,
    pub to: String,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Committed offsets copied to the target, one per partition.
    pub offsets: usize,
    /// The fleet move this record decides (instances sharing a state
    /// topic); absent for a move of one instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// How long each step up to the record took (prepare, hold, copy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepTiming>,
}

impl FlipRecord {
    /// Each partition's stitch point, in upstream offsets.
    pub fn stitch_points(
        &self,
    ) -> impl Iterator<Item = (i32, UpstreamOffset, UpstreamOffset)> + '_ {
        self.stitch.iter().map(|p| (p.partition, p.l_old, p.l_new))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Runtime routes by exact topic name; they override config rules.
    pub routes: BTreeMap<String, RouteEntry>,
    pub flips: Vec<FlipRecord>,
    /// Moved consumer groups: group id → coordinating cluster's name; they
    /// override group rules.
    #[serde(default)]
    pub groups: BTreeMap<String, String>,
    #[serde(default)]
    pub group_moves: Vec<GroupMoveRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "state file {path} is not valid: {message}; fix or move it aside (it holds runtime routes)"
    )]
    Parse { path: String, message: String },
    #[error("cannot write state file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("state topic '{topic}' on cluster '{cluster}': {message}")]
    Topic {
        topic: String,
        cluster: String,
        message: String,
    },
}

impl State {
    /// Reads the state file; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<State, StateError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(source) => {
                return Err(StateError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        serde_json::from_str(&text).map_err(|e| StateError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Writes the state durably: a temporary file beside it, fsync, rename
    /// over the old one, fsync the directory.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let err = |source| StateError::Write {
            path: path.display().to_string(),
            source,
        };
        let text = serde_json::to_vec_pretty(self).map_err(|e| err(std::io::Error::other(e)))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => std::path::PathBuf::from("."),
        };
        let tmp = dir.join(format!(
            ".{}.tmp",
            path.file_name()
                .map_or("state".into(), |n| n.to_string_lossy())
        ));
        let mut file = std::fs::File::create(&tmp).map_err(err)?;
        file.write_all(&text).map_err(err)?;
        file.sync_all().map_err(err)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(err)?;
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
        Ok(())
    }
}

/// What a store's work ends with.
pub type StoreFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, StateError>> + Send + 'a>>;

/// Where the proxy's runtime state lives. One instance keeps it in the
/// state file ([`StateFile`]); instances that share it keep it in a topic
/// ([`crate::ops::state_topic::StateTopic`]).
pub trait StateStore: Send + Sync {
    /// The state as last saved; empty when nothing was saved yet.
    fn load(&self) -> StoreFuture<'_, State>;
    /// Saves `state` durably: when this returns, a restart loads it.
    fn save<'a>(&'a self, state: &'a State) -> StoreFuture<'a, ()>;
    /// The instances sharing this state, as their leases last said; none
    /// for a store only one instance uses.
    fn instances(&self) -> Vec<InstanceStatus> {
        Vec::new()
    }
    /// True while this instance may not write to topics a flip could
    /// move (its lease in a shared store may have expired).
    fn closed(&self) -> bool {
        false
    }
    /// What the instances sharing this store claimed for `key` (a
    /// producer's segment, see [`Claim`]); always `None` for a store one
    /// instance uses.
    fn claimed(&self, _key: &str) -> Option<Claim> {
        None
    }
    /// Claims `claim` for `key`; the claim that stands (the first in the
    /// store), once this instance has read up to its own. A store one
    /// instance uses keeps nothing: the claim stands.
    fn claim<'a>(&'a self, _key: &'a str, claim: Claim) -> StoreFuture<'a, Claim> {
        Box::pin(async move { Ok(claim) })
    }
}

/// One instance of a deployment, as `status` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub instance: String,
    pub address: String,
    /// The state topic offset it had applied at its last heartbeat.
    pub applied: i64,
    /// Since its last heartbeat was read here.
    pub lease_age_ms: u64,
    /// False once its lease has expired.
    pub live: bool,
    pub connections: usize,
}

/// The state file: one JSON document, replaced atomically on every save.
pub struct StateFile {
    path: std::path::PathBuf,
}

impl StateFile {
    pub fn new(path: impl Into<std::path::PathBuf>) -> StateFile {
        StateFile { path: path.into() }
    }
}

impl StateStore for StateFile {
    fn load(&self) -> StoreFuture<'_, State> {
        Box::pin(async move { State::load(&self.path) })
    }

    fn save<'a>(&'a self, state: &'a State) -> StoreFuture<'a, ()> {
        Box::pin(async move { state.save(&self.path) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_state_file_is_a_store() {
        let dir = std::env::temp_dir().join(format!("sy-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store: Box<dyn StateStore> = Box::new(StateFile::new(dir.join("state.json")));
        assert_eq!(store.load().await.unwrap(), State::default());
        let mut state = State::default();
        state.groups.insert("billing".into(), "new".into());
        store.save(&state).await.unwrap();
        assert_eq!(store.load().await.unwrap(), state);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stitch_points_are_kept_as_plain_numbers() {
        let line = r#"{"topic":"t","from":{"produce":"old","fetch":"old"},"to":{"produce":"new","fetch":"new"},"at_ms":7,"stitch":[{"partition":0,"l_old":100,"l_new":20}]}"#;
        let record: FlipRecord = serde_json::from_str(line).unwrap();
        assert_eq!(
            record.stitch,
            [StitchPoint {
                partition: 0,
                l_old: UpstreamOffset(100),
                l_new: UpstreamOffset(20),
            }]
        );
        assert_eq!(serde_json::to_string(&record).unwrap(), line);
        let points: Vec<_> = record.stitch_points().collect();
        assert_eq!(points, [(0, UpstreamOffset(100), UpstreamOffset(20))]);
    }

    #[test]
    fn a_flip_record_keeps_its_steps_and_older_records_have_none() {
        let old = r#"{"topic":"t","from":{"produce":"old","fetch":"old"},"to":{"produce":"new","fetch":"new"},"at_ms":7,"stitch":[]}"#;
        let mut record: FlipRecord = serde_json::from_str(old).unwrap();
        assert!(record.steps.is_empty());
        record.steps = vec![
            StepTiming {
                step: "fence".into(),
                ms: 1.5,
            },
            StepTiming {
                step: "check".into(),
                ms: 502.0,
            },
        ];
        let line = serde_json::to_string(&record).unwrap();
        assert!(
            line.ends_with(r#""steps":[{"step":"fence","ms":1.5},{"step":"check","ms":502.0}]}"#),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<FlipRecord>(&line).unwrap(), record);
    }

    #[test]
    fn save_then_load_round_trips_and_missing_is_empty() {
        let dir = std::env::temp_dir().join(format!("sy-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        assert_eq!(State::load(&path).unwrap(), State::default());
        let mut state = State::default();
        state.routes.insert(
            "orders".into(),
            RouteEntry {
                produce: "new".into(),
                fetch: "old".into(),
            },
        );
        state.save(&path).unwrap();
        assert_eq!(State::load(&path).unwrap(), state);
        std::fs::write(&path, "{not json").unwrap();
        let e = State::load(&path).unwrap_err().to_string();
        assert!(e.contains("is not valid"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
