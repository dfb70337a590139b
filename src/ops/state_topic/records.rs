//! What the state topic holds, as keys and JSON values, and how a log of
//! them folds into the [`State`]: pure, no IO.
//!
//! Every change is one self-contained record, so a crash between two
//! records never leaves half a change: a flip record carries the route it
//! set (and its stitch points), a group move the cluster the group moved
//! to. Their keys are unique (`flip/TOPIC/N@INSTANCE`,
//! `group-move/GROUP/N@INSTANCE`, N counting that topic's or group's
//! changes as the writing instance knows them), so compaction keeps every
//! one; keys that are renewed (`lease/INSTANCE`) keep only their latest.

use serde::{Deserialize, Serialize};

use crate::ops::state::{FlipRecord, GroupMoveRecord, State};

/// An instance's membership lease, renewed every lease interval under the
/// key `lease/INSTANCE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub instance: String,
    /// Where its clients connect (advertised host and bootstrap port).
    pub address: String,
    /// The state topic offset it had applied when it wrote this.
    pub applied: i64,
    /// Client connections it held.
    pub connections: usize,
    /// Milliseconds since the Unix epoch, by its clock.
    pub at_ms: u64,
}

/// The key of `instance`'s lease.
pub fn lease_key(instance: &str) -> String {
    format!("lease/{instance}")
}

/// The state file was copied into the topic by `instance`, from `path`.
pub const IMPORT: &str = "import";
/// Written once an import is complete.
pub const IMPORTED: &str = "import-done";

/// One record of the state topic, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Flip(FlipRecord),
    GroupMove(GroupMoveRecord),
    /// Claims the import of a state file: the first claim in the log wins.
    Import {
        instance: String,
    },
    Imported,
    Lease(Lease),
    /// A key this version does not know (a newer instance wrote it), or a
    /// record of the fleet the state does not hold (leases).
    Other,
}

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
#[error("state topic record '{key}': {message}")]
pub struct BadRecord {
    pub key: String,
    pub message: String,
}

/// Decodes the record `key` = `value`.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Entry, BadRecord> {
    let key = String::from_utf8_lossy(key).into_owned();
    let bad = |message: String| BadRecord {
        key: key.clone(),
        message,
    };
    let value = || value.ok_or_else(|| bad("has no value".to_owned()));
    let kind = key.split('/').next().unwrap_or_default();
    Ok(match kind {
        "flip" => Entry::Flip(serde_json::from_slice(value()?).map_err(|e| bad(e.to_string()))?),
        "group-move" => {
            Entry::GroupMove(serde_json::from_slice(value()?).map_err(|e| bad(e.to_string()))?)
        }
        IMPORT => Entry::Import {
            instance: String::from_utf8_lossy(value()?).into_owned(),
        },
        IMPORTED => Entry::Imported,
        "lease" => Entry::Lease(serde_json::from_slice(value()?).map_err(|e| bad(e.to_string()))?),
        _ => Entry::Other,
    })
}

/// Applies one entry to `state`.
pub fn apply(state: &mut State, entry: Entry) {
    match entry {
        Entry::Flip(flip) => {
            state.routes.insert(flip.topic.clone(), flip.to.clone());
            state.flips.push(flip);
        }
        Entry::GroupMove(moved) => {
            state.groups.insert(moved.group.clone(), moved.to.clone());
            state.group_moves.push(moved);
        }
        Entry::Import { .. } | Entry::Imported | Entry::Lease(_) | Entry::Other => {}
    }
}

/// The records that take the topic from `known` to `next`, written by
/// `instance`: one for each flip and group move `next` adds. `None` when
/// `next` is not `known` plus flips and group moves (the only changes the
/// state has).
pub fn changes(known: &State, next: &State, instance: &str) -> Option<Vec<(String, Vec<u8>)>> {
    let flips = next.flips.strip_prefix(known.flips.as_slice())?;
    let moves = next
        .group_moves
        .strip_prefix(known.group_moves.as_slice())?;
    let mut check = known.clone();
    let mut out = Vec::new();
    for flip in flips {
        let n = check.flips.iter().filter(|f| f.topic == flip.topic).count();
        out.push((
            format!("flip/{}/{n}@{instance}", flip.topic),
            serde_json::to_vec(flip).ok()?,
        ));
        apply(&mut check, Entry::Flip(flip.clone()));
    }
    for moved in moves {
        let n = check
            .group_moves
            .iter()
            .filter(|m| m.group == moved.group)
            .count();
        out.push((
            format!("group-move/{}/{n}@{instance}", moved.group),
            serde_json::to_vec(moved).ok()?,
        ));
        apply(&mut check, Entry::GroupMove(moved.clone()));
    }
    (check == *next).then_some(out)
}

/// The records that put all of `state` into an empty topic.
pub fn import(state: &State, instance: &str) -> Option<Vec<(String, Vec<u8>)>> {
    changes(&State::default(), state, instance)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::offsets::UpstreamOffset;
    use crate::ops::state::{RouteEntry, StitchPoint};

    fn entry(produce: &str, fetch: &str) -> RouteEntry {
        RouteEntry {
            produce: produce.into(),
            fetch: fetch.into(),
        }
    }

    fn flip(topic: &str, to: &str, at_ms: u64) -> FlipRecord {
        FlipRecord {
            topic: topic.into(),
            from: entry("old", "old"),
            to: entry(to, to),
            at_ms,
            stitch: vec![StitchPoint {
                partition: 0,
                l_old: UpstreamOffset(10),
                l_new: UpstreamOffset(0),
            }],
        }
    }

    fn fold(records: &[(String, Vec<u8>)]) -> State {
        let mut state = State::default();
        for (key, value) in records {
            apply(&mut state, decode(key.as_bytes(), Some(value)).unwrap());
        }
        state
    }

    #[test]
    fn a_state_written_as_records_folds_back_to_itself() {
        let mut state = State::default();
        for f in [
            flip("orders", "new", 1),
            flip("audit", "new", 2),
            flip("orders", "old", 3),
        ] {
            state.routes.insert(f.topic.clone(), f.to.clone());
            state.flips.push(f);
        }
        state.groups.insert("billing".into(), "new".into());
        state.group_moves.push(GroupMoveRecord {
            group: "billing".into(),
            from: "old".into(),
            to: "new".into(),
            at_ms: 4,
            offsets: 3,
        });
        let records = import(&state, "sy-1").unwrap();
        let keys: Vec<&str> = records.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "flip/orders/0@sy-1",
                "flip/audit/0@sy-1",
                "flip/orders/1@sy-1",
                "group-move/billing/0@sy-1"
            ]
        );
        assert_eq!(fold(&records), state);
    }

    #[test]
    fn a_save_writes_only_what_it_adds() {
        let mut known = State::default();
        apply(&mut known, Entry::Flip(flip("orders", "new", 1)));
        let mut next = known.clone();
        apply(&mut next, Entry::Flip(flip("orders", "old", 2)));
        let records = changes(&known, &next, "sy-2").unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].0, "flip/orders/1@sy-2");
        assert_eq!(changes(&next, &next, "sy-2").unwrap(), Vec::new());
    }

    #[test]
    fn a_change_the_topic_cannot_record_is_refused() {
        let known = State::default();
        let mut next = State::default();
        next.routes.insert("orders".into(), entry("new", "new"));
        assert!(
            changes(&known, &next, "sy-1").is_none(),
            "a route without its flip"
        );
        let mut shorter = State::default();
        apply(&mut shorter, Entry::Flip(flip("orders", "new", 1)));
        assert!(
            changes(&shorter, &known, "sy-1").is_none(),
            "history cannot shrink"
        );
    }

    #[test]
    fn unknown_keys_pass_and_broken_values_are_named() {
        assert_eq!(decode(b"member/sy-1", Some(b"{}")).unwrap(), Entry::Other);
        let lease =
            br#"{"instance":"sy-1","address":"h:9092","applied":7,"connections":2,"at_ms":5}"#;
        let Entry::Lease(l) = decode(b"lease/sy-1", Some(lease)).unwrap() else {
            panic!("a lease")
        };
        assert_eq!((l.instance.as_str(), l.applied), ("sy-1", 7));
        let e = decode(b"flip/orders/0", Some(b"{nope")).unwrap_err();
        assert!(e.to_string().contains("flip/orders/0"), "{e}");
        assert!(decode(b"flip/orders/0", None).is_err());
    }
}
