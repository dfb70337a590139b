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

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::producer_ids::Claim;
use crate::ops::state::{FlipRecord, GroupMoveRecord, State, StepTiming};

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
    /// Counts the instance's renewals since it started.
    #[serde(default)]
    pub renewal: u64,
}

/// What a fleet run moves: a topic (a flip) or a consumer group (a group
/// move). In a proposal's JSON, `"topic": NAME` or `"group": ID`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    Topic(String),
    Group(String),
}

impl Subject {
    /// The topic name or group id.
    pub fn name(&self) -> &str {
        match self {
            Subject::Topic(name) | Subject::Group(name) => name,
        }
    }
}

/// A fleet run (a flip or a group move), proposed by `initiator`: every
/// instance that reads it fences the topic's Produce or the group's
/// requests; `participants` (the instances whose leases were live) each
/// confirm their fence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub id: String,
    #[serde(flatten)]
    pub subject: Subject,
    pub initiator: String,
    pub participants: Vec<String>,
    /// False for a fetch-only flip: nothing to fence.
    pub moves_produce: bool,
    pub at_ms: u64,
}

/// One instance done with one step of a fleet flip, and how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepDone {
    pub id: String,
    pub instance: String,
    pub ms: f64,
}

/// A fleet flip called off by `instance`, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Abort {
    pub id: String,
    pub instance: String,
    pub reason: String,
}

/// The keys of a fleet run's records.
pub fn propose_key(id: &str) -> String {
    format!("run/{id}/propose")
}
pub fn fenced_key(id: &str, instance: &str) -> String {
    format!("run/{id}/fenced/{instance}")
}
pub fn switched_key(id: &str, instance: &str) -> String {
    format!("run/{id}/switched/{instance}")
}
pub fn abort_key(id: &str, instance: &str) -> String {
    format!("run/{id}/abort/{instance}")
}

/// The key of `instance`'s claim number `n` for a producer's segment
/// `segment` (see [`crate::domain::producer_ids::Segment::key`]): a key of
/// its own for every claim, so compaction keeps the first.
pub fn claim_key(instance: &str, segment: &str, n: &str) -> String {
    format!("producer/{instance}/{segment}/{n}")
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
    Propose(Proposal),
    Fenced(StepDone),
    Switched(StepDone),
    Abort(Abort),
    /// A claim for a producer's segment (`key`: the segment's), by the
    /// record `record`.
    Claim {
        key: String,
        record: String,
        claim: Claim,
    },
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
    let value = value.ok_or_else(|| bad("has no value".to_owned()));
    let json = |make: fn(&[u8]) -> serde_json::Result<Entry>| {
        make(value.as_ref().map_err(|e| bad(e.message.clone()))?).map_err(|e| bad(e.to_string()))
    };
    let mut parts = key.split('/');
    Ok(match (parts.next().unwrap_or_default(), parts.nth(1)) {
        ("flip", _) => json(|v| serde_json::from_slice(v).map(Entry::Flip))?,
        ("group-move", _) => json(|v| serde_json::from_slice(v).map(Entry::GroupMove))?,
        ("lease", _) => json(|v| serde_json::from_slice(v).map(Entry::Lease))?,
        ("run", Some("propose")) => json(|v| serde_json::from_slice(v).map(Entry::Propose))?,
        ("run", Some("fenced")) => json(|v| serde_json::from_slice(v).map(Entry::Fenced))?,
        ("run", Some("switched")) => json(|v| serde_json::from_slice(v).map(Entry::Switched))?,
        ("run", Some("abort")) => json(|v| serde_json::from_slice(v).map(Entry::Abort))?,
        (IMPORT, _) => Entry::Import {
            instance: String::from_utf8_lossy(value?).into_owned(),
        },
        (IMPORTED, _) => Entry::Imported,
        ("producer", _) => match value.as_ref() {
            // A claim pruned once its topic was flipped again.
            Err(_) => Entry::Other,
            Ok(v) => Entry::Claim {
                key: key
                    .splitn(3, '/')
                    .nth(2)
                    .and_then(|rest| rest.rsplit_once('/'))
                    .map_or("", |(segment, _)| segment)
                    .to_owned(),
                record: key.clone(),
                claim: serde_json::from_slice(v).map_err(|e| bad(e.to_string()))?,
            },
        },
        _ => Entry::Other,
    })
}

/// How a fleet run ended: the first decision in the log wins.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Commit(Change),
    Abort(Abort),
}

/// The record that commits a fleet run.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Flip(FlipRecord),
    GroupMove(GroupMoveRecord),
}

impl Change {
    /// The steps the change was made in, kept with its record.
    pub fn with_steps(mut self, steps: &[StepTiming]) -> Change {
        match &mut self {
            Change::Flip(flip) => flip.steps = steps.to_vec(),
            Change::GroupMove(moved) => moved.steps = steps.to_vec(),
        }
        self
    }

    /// This change as the commit of run `id`: its key and record.
    pub fn committing(mut self, id: &str) -> (String, Change) {
        let key = match &mut self {
            Change::Flip(flip) => {
                flip.run = Some(id.to_owned());
                format!("flip/{}/{id}", flip.topic)
            }
            Change::GroupMove(moved) => {
                moved.run = Some(id.to_owned());
                format!("group-move/{}/{id}", moved.group)
            }
        };
        (key, self)
    }
}

impl Serialize for Change {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Change::Flip(flip) => flip.serialize(s),
            Change::GroupMove(moved) => moved.serialize(s),
        }
    }
}

/// A fleet flip as the log tells it so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub proposal: Proposal,
    pub fenced: BTreeMap<String, f64>,
    pub switched: BTreeMap<String, f64>,
    pub decision: Option<Decision>,
}

/// What an entry changed, for an instance to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A flip was proposed: fence its topic.
    Proposed(Proposal),
    /// A flip was decided: switch (commit) or release the fence (abort).
    Decided(String, Decision),
    /// A participant confirmed a step of run `0`.
    Progress(String),
    Lease(Lease),
    /// Nothing to act on.
    None,
}

/// What stands for one producer segment (each part as first claimed), and
/// every record that claimed any of it (pruned together).
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub claim: Claim,
    pub records: Vec<String>,
}

/// The state and the fleet flips, folded from the log in order.
#[derive(Debug, Clone, Default)]
pub struct Fold {
    pub state: State,
    pub runs: BTreeMap<String, Run>,
    /// Producer segments' claims, by segment key: the first stands.
    pub claims: BTreeMap<String, Claimed>,
    /// Records of claims whose run a flip ended: to be pruned (each
    /// instance prunes its own).
    pub ended: Vec<String>,
}

impl Fold {
    /// Takes the next entry of the log.
    pub fn take(&mut self, entry: Entry) -> Event {
        match entry {
            Entry::Flip(flip) => match flip.run.clone() {
                Some(id) => self.decide(id, Decision::Commit(Change::Flip(flip))),
                None => {
                    // A change this instance saved is read back once more.
                    if !self.state.flips.contains(&flip) {
                        let topic = flip.topic.clone();
                        apply_flip(&mut self.state, flip);
                        self.end_claims(&topic);
                    }
                    Event::None
                }
            },
            Entry::Abort(abort) => self.decide(abort.id.clone(), Decision::Abort(abort)),
            Entry::GroupMove(moved) => match moved.run.clone() {
                Some(id) => self.decide(id, Decision::Commit(Change::GroupMove(moved))),
                None => {
                    if !self.state.group_moves.contains(&moved) {
                        apply_group_move(&mut self.state, moved);
                    }
                    Event::None
                }
            },
            Entry::Propose(proposal) => {
                let run = Run {
                    proposal: proposal.clone(),
                    fenced: BTreeMap::new(),
                    switched: BTreeMap::new(),
                    decision: None,
                };
                self.runs.insert(proposal.id.clone(), run);
                Event::Proposed(proposal)
            }
            Entry::Fenced(step) => self.progress(step, |run| &mut run.fenced),
            Entry::Switched(step) => self.progress(step, |run| &mut run.switched),
            Entry::Lease(lease) => Event::Lease(lease),
            Entry::Claim { key, record, claim } => {
                let held = self.claims.entry(key).or_insert(Claimed {
                    claim: Claim::default(),
                    records: Vec::new(),
                });
                held.claim.merge(&claim);
                held.records.push(record);
                Event::None
            }
            Entry::Import { .. } | Entry::Imported | Entry::Other => Event::None,
        }
    }

    fn progress(
        &mut self,
        step: StepDone,
        steps: fn(&mut Run) -> &mut BTreeMap<String, f64>,
    ) -> Event {
        match self.runs.get_mut(&step.id) {
            Some(run) => {
                steps(run).insert(step.instance, step.ms);
                Event::Progress(step.id)
            }
            None => Event::None,
        }
    }

    /// The first decision of run `id` stands; later ones are void. A
    /// commit whose proposal is gone (compacted away long after) stands as
    /// well; an abort of an unknown run says nothing.
    fn decide(&mut self, id: String, decision: Decision) -> Event {
        let run = self.runs.get_mut(&id);
        match (&run, &decision) {
            (Some(r), _) if r.decision.is_some() => return Event::None,
            (None, Decision::Abort(_)) => return Event::None,
            _ => {}
        }
        if let Some(run) = run {
            run.decision = Some(decision.clone());
        }
        match &decision {
            Decision::Commit(Change::Flip(flip)) => {
                apply_flip(&mut self.state, flip.clone());
                self.end_claims(&flip.topic);
            }
            Decision::Commit(Change::GroupMove(moved)) => {
                apply_group_move(&mut self.state, moved.clone())
            }
            Decision::Abort(_) => {}
        }
        Event::Decided(id, decision)
    }

    /// Drops the claims of `topic`'s segments from before its latest flip
    /// (a segment's key is `CLUSTER/TOPIC/GENERATION/…`): that flip ended
    /// their run.
    fn end_claims(&mut self, topic: &str) {
        let flips = self.state.flips.iter().filter(|f| f.topic == topic).count() as u64;
        let ended = |key: &str| {
            let mut parts = key.split('/').skip(1);
            parts.next() == Some(topic)
                && parts
                    .next()
                    .and_then(|g| g.parse::<u64>().ok())
                    .is_some_and(|g| g < flips)
        };
        let keys: Vec<String> = self.claims.keys().filter(|k| ended(k)).cloned().collect();
        for key in keys {
            if let Some(claimed) = self.claims.remove(&key) {
                self.ended.extend(claimed.records);
            }
        }
    }

    /// Fleet flips proposed and not decided yet.
    pub fn undecided(&self) -> impl Iterator<Item = &Proposal> {
        self.runs
            .values()
            .filter(|r| r.decision.is_none())
            .map(|r| &r.proposal)
    }
}

/// A flip's effect on the state: its route, and its record.
pub fn apply_flip(state: &mut State, flip: FlipRecord) {
    state.routes.insert(flip.topic.clone(), flip.to.clone());
    state.flips.push(flip);
}

/// A group move's effect on the state: the group's cluster, and its
/// record.
pub fn apply_group_move(state: &mut State, moved: GroupMoveRecord) {
    state.groups.insert(moved.group.clone(), moved.to.clone());
    state.group_moves.push(moved);
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
        apply_flip(&mut check, flip.clone());
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
        apply_group_move(&mut check, moved.clone());
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
            run: None,
            steps: Vec::new(),
        }
    }

    fn fold(records: &[(String, Vec<u8>)]) -> State {
        let mut fold = Fold::default();
        for (key, value) in records {
            fold.take(decode(key.as_bytes(), Some(value)).unwrap());
        }
        fold.state
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
            run: None,
            steps: Vec::new(),
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
        apply_flip(&mut known, flip("orders", "new", 1));
        let mut next = known.clone();
        apply_flip(&mut next, flip("orders", "old", 2));
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
        apply_flip(&mut shorter, flip("orders", "new", 1));
        assert!(
            changes(&shorter, &known, "sy-1").is_none(),
            "history cannot shrink"
        );
    }

    fn proposal(id: &str) -> Entry {
        Entry::Propose(Proposal {
            id: id.into(),
            subject: Subject::Topic("orders".into()),
            initiator: "sy-a".into(),
            participants: vec!["sy-a".into(), "sy-b".into()],
            moves_produce: true,
            at_ms: 1,
        })
    }

    fn abort(id: &str, by: &str) -> Entry {
        Entry::Abort(Abort {
            id: id.into(),
            instance: by.into(),
            reason: "no fence".into(),
        })
    }

    fn commit(id: &str) -> FlipRecord {
        FlipRecord {
            run: Some(id.into()),
            ..flip("orders", "new", 2)
        }
    }

    #[test]
    fn the_first_decision_of_a_fleet_flip_stands() {
        let mut fold = Fold::default();
        assert!(matches!(fold.take(proposal("r1")), Event::Proposed(_)));
        assert_eq!(fold.undecided().count(), 1);
        let step = |by: &str| StepDone {
            id: "r1".into(),
            instance: by.into(),
            ms: 3.0,
        };
        assert_eq!(
            fold.take(Entry::Fenced(step("sy-b"))),
            Event::Progress("r1".into())
        );
        assert_eq!(fold.runs["r1"].fenced.len(), 1);
        // An abort first: the commit that follows it is void.
        assert!(matches!(
            fold.take(abort("r1", "sy-b")),
            Event::Decided(_, Decision::Abort(_))
        ));
        assert_eq!(fold.take(Entry::Flip(commit("r1"))), Event::None);
        assert!(fold.state.flips.is_empty() && fold.state.routes.is_empty());
        assert_eq!(fold.undecided().count(), 0);

        // A commit first: a late abort changes nothing.
        fold.take(proposal("r2"));
        let decided = fold.take(Entry::Flip(commit("r2")));
        assert!(matches!(decided, Event::Decided(_, Decision::Commit(_))));
        assert_eq!(fold.take(abort("r2", "sy-b")), Event::None);
        assert_eq!(fold.state.flips, [commit("r2")]);
        assert_eq!(fold.state.routes["orders"].produce, "new");
    }

    #[test]
    fn a_commit_whose_proposal_was_compacted_away_stands() {
        let mut fold = Fold::default();
        assert_eq!(fold.take(abort("gone", "sy-b")), Event::None);
        assert!(matches!(
            fold.take(Entry::Flip(commit("gone"))),
            Event::Decided(_, Decision::Commit(_))
        ));
        assert_eq!(fold.state.flips.len(), 1);
    }

    #[test]
    fn a_group_move_run_is_proposed_by_group_and_committed_by_its_record() {
        let mut fold = Fold::default();
        let proposal = Proposal {
            id: "g1".into(),
            subject: Subject::Group("billing".into()),
            initiator: "sy-a".into(),
            participants: vec!["sy-a".into()],
            moves_produce: true,
            at_ms: 1,
        };
        let json = serde_json::to_value(&proposal).unwrap();
        assert_eq!(json["group"], "billing");
        assert!(json.get("topic").is_none());
        let Entry::Propose(read) = decode(
            propose_key("g1").as_bytes(),
            Some(json.to_string().as_bytes()),
        )
        .unwrap() else {
            panic!("a proposal")
        };
        assert_eq!(read, proposal);
        fold.take(Entry::Propose(read));
        let moved = GroupMoveRecord {
            group: "billing".into(),
            from: "old".into(),
            to: "new".into(),
            at_ms: 2,
            offsets: 4,
            run: None,
            steps: Vec::new(),
        };
        let (key, change) = Change::GroupMove(moved).committing("g1");
        assert_eq!(key, "group-move/billing/g1");
        let value = serde_json::to_vec(&change).unwrap();
        let entry = decode(key.as_bytes(), Some(&value)).unwrap();
        assert!(matches!(
            fold.take(entry),
            Event::Decided(id, Decision::Commit(Change::GroupMove(_))) if id == "g1"
        ));
        assert_eq!(fold.state.groups["billing"], "new");
        assert_eq!(fold.undecided().count(), 0);
    }

    #[test]
    fn the_first_claim_for_a_producer_segment_stands_until_its_topic_flips_again() {
        let mut fold = Fold::default();
        let claim = |by: &str, n: &str, json: &str| {
            let key = claim_key(by, "new/orders/1/7/0", n);
            decode(key.as_bytes(), Some(json.as_bytes())).unwrap()
        };
        fold.take(claim("sy-b", "1", r#"{"id":[42,0],"bases":{"0":5}}"#));
        fold.take(claim("sy-a", "1", r#"{"id":[43,0],"bases":{"0":8,"1":2}}"#));
        let held = &fold.claims["new/orders/1/7/0"];
        assert_eq!(held.claim.id, Some((42, 0)), "the first id stands");
        assert_eq!(
            held.claim.bases,
            BTreeMap::from([(0, 5), (1, 2)]),
            "each partition's first base stands"
        );
        assert_eq!(held.records.len(), 2);
        // A pruned claim reads as nothing.
        assert_eq!(
            decode(claim_key("sy-a", "new/orders/0/7/0", "1").as_bytes(), None).unwrap(),
            Entry::Other
        );
        // The topic's first flip is generation 1: its claims stand.
        fold.take(Entry::Flip(flip("orders", "new", 1)));
        assert_eq!(fold.claims.len(), 1);
        // Flipped back: generation 1 has ended; both records are pruned.
        fold.take(Entry::Flip(flip("orders", "old", 2)));
        assert!(fold.claims.is_empty());
        assert_eq!(
            fold.ended,
            [
                "producer/sy-b/new/orders/1/7/0/1",
                "producer/sy-a/new/orders/1/7/0/1"
            ]
        );
    }

    #[test]
    fn fleet_records_are_read_by_their_keys() {
        let value = serde_json::to_vec(&StepDone {
            id: "r1".into(),
            instance: "sy-b".into(),
            ms: 1.5,
        })
        .unwrap();
        let key = fenced_key("r1", "sy-b");
        assert!(matches!(
            decode(key.as_bytes(), Some(&value)).unwrap(),
            Entry::Fenced(s) if s.instance == "sy-b"
        ));
        let key = switched_key("r1", "sy-b");
        assert!(matches!(
            decode(key.as_bytes(), Some(&value)).unwrap(),
            Entry::Switched(_)
        ));
        assert!(decode(abort_key("r1", "sy-b").as_bytes(), Some(&value)).is_err());
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
