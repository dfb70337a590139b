//! The state in a compacted topic (`[state] store = "kafka"`): every
//! instance of a deployment reads it to its end before it serves, and a
//! change is a record appended there, acknowledged by every in-sync
//! replica before the change switches anything. What the records are and
//! how they fold into the state is [`records`]'s.
//!
//! The topic has one partition, so every instance reads the records in
//! the same order. A deployment that ran on a state file brings it along:
//! the first instance to find the topic empty copies the file's flips and
//! group moves into it, and says so.

pub mod records;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::records::{Entry, Event, Fold, Lease, Proposal, Run};
use crate::config::{Config, ConfigError, KafkaStateConfig};
use crate::domain::offsets::UpstreamOffset;
use crate::domain::producer_ids::Claim;
use crate::ops::state::{InstanceStatus, State, StateError, StateStore, StoreFuture};
use crate::upstream::{Cluster, LogRead, UpstreamConn, UpstreamError};

/// How long an instance waits for another one's import of a state file
/// to finish.
const IMPORT_WAIT: Duration = Duration::from_secs(30);
/// How long a producer segment's claim may take to be read back.
const CLAIM_WAIT: Duration = Duration::from_secs(10);
/// How long a gap in the topic's offsets may be records still being
/// written (a broker may answer with later records first) before it is
/// taken as compacted away.
const GAP_WAIT: Duration = Duration::from_secs(2);
/// Pause before reading again at a gap.
const GAP_RETRY: Duration = Duration::from_millis(20);

/// Where a reader of the topic goes on after one read.
enum Reading {
    To(UpstreamOffset),
    /// At a gap that may still fill: read there again.
    AtGap,
    /// Nothing more there yet.
    End,
}

pub struct StateTopic {
    cluster: Cluster,
    topic: String,
    instance: String,
    /// The state file a deployment ran on before, imported once.
    file: PathBuf,
    /// Connections to the topic's leader, (re)opened on demand: one that
    /// reads and one that writes, since a broker answers one connection's
    /// requests in order and a read waits for records to come.
    reader: Leader,
    writer: Leader,
    /// The state and the fleet flips, as the topic holds them.
    fold: std::sync::Mutex<Fold>,
    /// The offset after the last record applied.
    position: std::sync::Mutex<UpstreamOffset>,
    /// The same, for those waiting to have read a record of their own.
    applied: tokio::sync::watch::Sender<UpstreamOffset>,
    /// Every instance's latest lease, and when it was read here.
    leases: std::sync::Mutex<BTreeMap<String, (Lease, Instant)>>,
    lease_interval: Duration,
    lease_expiry: Duration,
    /// When this instance last renewed its lease and had caught up with
    /// the topic up to that renewal.
    renewed: std::sync::Mutex<Instant>,
    /// This instance's renewals written and not read back yet: when each
    /// began, by its count; and the newest one read back.
    renewals: std::sync::Mutex<(BTreeMap<u64, Instant>, u64, Option<u64>)>,
    /// A gap in the topic's offsets met while reading: where it starts,
    /// and when it was first met there.
    gap: std::sync::Mutex<Option<(UpstreamOffset, Instant)>>,
    /// Produce was last refused here because the lease may have lapsed.
    refusing: std::sync::atomic::AtomicBool,
    /// Names this instance's claims apart: when it started, and a count.
    claims: (u64, std::sync::atomic::AtomicU64),
    /// Claims under way, by segment: one at a time each.
    claiming: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A connection to the state topic's leader, once opened.
type Leader = tokio::sync::Mutex<Option<Arc<UpstreamConn>>>;

impl StateTopic {
    pub fn new(config: &Config, state: &KafkaStateConfig) -> Result<StateTopic, ConfigError> {
        let cluster = Cluster::new(
            state.cluster,
            config.cluster(state.cluster).clone(),
            &config.proxy,
        )?;
        Ok(StateTopic {
            cluster,
            topic: state.topic.clone(),
            instance: config.proxy.instance_id.clone(),
            file: config.proxy.state_file.clone(),
            reader: Leader::default(),
            writer: Leader::default(),
            fold: std::sync::Mutex::new(Fold::default()),
            position: std::sync::Mutex::new(UpstreamOffset(0)),
            applied: tokio::sync::watch::channel(UpstreamOffset(0)).0,
            leases: std::sync::Mutex::new(BTreeMap::new()),
            lease_interval: state.lease_interval,
            lease_expiry: state.lease_expiry,
            renewed: std::sync::Mutex::new(Instant::now()),
            renewals: std::sync::Mutex::new((BTreeMap::new(), 0, None)),
            gap: std::sync::Mutex::new(None),
            refusing: std::sync::atomic::AtomicBool::new(false),
            claims: (
                crate::ops::steps::now_ms(),
                std::sync::atomic::AtomicU64::new(0),
            ),
            claiming: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// This instance's name among the instances sharing the topic.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Renews this instance's lease: clients reach it at `address`, it
    /// holds `connections`.
    pub async fn heartbeat(&self, address: &str, connections: usize) -> Result<(), StateError> {
        let renewal = {
            let mut renewals = lock(&self.renewals);
            renewals.1 += 1;
            let n = renewals.1;
            // Counted from before the write: the others may read the lease
            // from then on.
            renewals.0.insert(n, Instant::now());
            n
        };
        let lease = Lease {
            instance: self.instance.clone(),
            address: address.to_owned(),
            applied: lock(&self.position).0,
            connections,
            at_ms: crate::ops::steps::now_ms(),
            renewal,
        };
        self.write(&records::lease_key(&self.instance), &lease)
            .await
    }

    /// Called once what has been read is acted on: a renewal of this
    /// instance's lease read back means everything written before it has
    /// been applied, so the lease counts from that renewal.
    pub fn caught_up(&self) {
        let mut renewals = lock(&self.renewals);
        let Some(n) = renewals.2.take() else {
            return;
        };
        if let Some(started) = renewals.0.get(&n).copied() {
            *lock(&self.renewed) = started;
        }
        renewals.0 = renewals.0.split_off(&(n + 1));
    }

    /// Whether this instance's own lease may have expired in the others'
    /// eyes (not renewed, and caught up with, for an expiry less one
    /// interval): they no longer wait for it, so it must not write where a
    /// flip may have moved a topic, until it has renewed its lease and
    /// read everything written before that.
    pub fn lease_lapsed(&self) -> bool {
        lock(&self.renewed).elapsed() + self.lease_interval >= self.lease_expiry
    }

    /// Appends `value` as JSON under `key`.
    pub async fn write(&self, key: &str, value: &impl serde::Serialize) -> Result<(), StateError> {
        let json = serde_json::to_vec(value).map_err(|e| self.error(e))?;
        self.append(key, Some(&json)).await.map(|_| ())
    }

    /// Writes tombstones for this instance's claims that a flip ended, so
    /// that compaction removes them; in the background, so that reading
    /// the topic goes on meanwhile.
    pub fn prune_claims(self: &Arc<Self>) {
        let own = format!("producer/{}/", self.instance);
        let mine: Vec<String> = {
            let mut fold = lock(&self.fold);
            if fold.ended.is_empty() {
                return;
            }
            // Each instance prunes its own.
            std::mem::take(&mut fold.ended)
                .into_iter()
                .filter(|k| k.starts_with(&own))
                .collect()
        };
        let topic = self.clone();
        tokio::spawn(async move {
            for key in mine {
                if let Err(e) = topic.append(&key, None).await {
                    tracing::debug!(key, error = %e, "cannot prune an ended producer claim");
                }
            }
        });
    }

    /// Reads every record after the last one taken, and what each changed
    /// (leases are kept here).
    pub async fn poll(&self) -> Result<Vec<Event>, StateError> {
        let conn = self.leader(&self.reader).await.map_err(|e| self.error(e))?;
        let mut events = Vec::new();
        loop {
            let at = *lock(&self.position);
            let read = match self.cluster.read_log(&conn, &self.topic, at).await {
                Ok(read) => read,
                Err(e) => {
                    *self.reader.lock().await = None;
                    return Err(self.error(e));
                }
            };
            let next = match self.reading(at, &read) {
                Reading::To(next) => next,
                Reading::AtGap if events.is_empty() => {
                    tokio::time::sleep(GAP_RETRY).await;
                    return Ok(events);
                }
                Reading::AtGap | Reading::End => return Ok(events),
            };
            for (key, value) in read.records {
                let entry = records::decode(&key, value.as_deref()).map_err(|e| self.error(e))?;
                events.push(self.take(entry));
            }
            *lock(&self.position) = next;
            self.applied.send_replace(next);
        }
    }

    /// Where a reader at `at` goes on after `read`. At a gap in the
    /// topic's offsets it goes past once the records after the gap are
    /// older than [`GAP_WAIT`] (by their own timestamps: the offsets
    /// between were compacted away) or the gap has stood that long here;
    /// until then they may be records still being written.
    fn reading(&self, at: UpstreamOffset, read: &LogRead) -> Reading {
        let gap = match read.gap {
            _ if read.next > at => return Reading::To(read.next),
            None => return Reading::End,
            Some(gap) => gap,
        };
        let wait = GAP_WAIT.as_millis() as i64;
        let old = gap
            .max_timestamp
            .is_some_and(|t| t < crate::ops::steps::now_ms() as i64 - wait);
        let mut seen = lock(&self.gap);
        let since = match *seen {
            Some((seen_at, since)) if seen_at == at => since,
            _ => seen.insert((at, Instant::now())).1,
        };
        if !old && since.elapsed() < GAP_WAIT {
            return Reading::AtGap;
        }
        *seen = None;
        if !old {
            tracing::info!(
                topic = self.topic,
                from = at.0,
                to = gap.to,
                "state topic offsets missing for {GAP_WAIT:?}: taken as compacted away"
            );
        }
        Reading::To(UpstreamOffset(gap.to))
    }

    /// Takes one entry read from the topic.
    fn take(&self, entry: Entry) -> Event {
        match lock(&self.fold).take(entry) {
            Event::Lease(lease) => {
                if lease.instance == self.instance {
                    let mut renewals = lock(&self.renewals);
                    renewals.2 = renewals.2.max(Some(lease.renewal));
                }
                lock(&self.leases).insert(lease.instance.clone(), (lease, Instant::now()));
                Event::None
            }
            event => event,
        }
    }

    /// Run `id` as the log tells it so far.
    pub fn run(&self, id: &str) -> Option<Run> {
        lock(&self.fold).runs.get(id).cloned()
    }

    /// The fleet flips proposed and not decided, as of the last read.
    pub fn undecided(&self) -> Vec<Proposal> {
        lock(&self.fold).undecided().cloned().collect()
    }

    pub fn lease_interval(&self) -> Duration {
        self.lease_interval
    }

    /// Whether `instance` is this one or its lease is live.
    pub fn is_live(&self, instance: &str) -> bool {
        instance == self.instance
            || lock(&self.leases)
                .get(instance)
                .is_some_and(|(_, seen)| seen.elapsed() < self.lease_expiry)
    }

    /// The instances whose leases are live, this one among them.
    pub fn live_instances(&self) -> Vec<String> {
        let mut live: Vec<String> = lock(&self.leases)
            .values()
            .filter(|(_, seen)| seen.elapsed() < self.lease_expiry)
            .map(|(lease, _)| lease.instance.clone())
            .collect();
        if !live.contains(&self.instance) {
            live.push(self.instance.clone());
        }
        live.sort();
        live
    }

    fn error(&self, message: impl std::fmt::Display) -> StateError {
        StateError::Topic {
            topic: self.topic.clone(),
            cluster: self.cluster.name().to_owned(),
            message: message.to_string(),
        }
    }

    async fn leader(&self, slot: &Leader) -> Result<Arc<UpstreamConn>, UpstreamError> {
        let mut conn = slot.lock().await;
        if let Some(c) = conn.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let fresh = self.cluster.log_leader(&self.topic).await?;
        *conn = Some(fresh.clone());
        Ok(fresh)
    }

    /// Appends one record; on a failure the leader is looked up afresh
    /// next time.
    async fn append(&self, key: &str, value: Option<&[u8]>) -> Result<UpstreamOffset, StateError> {
        let conn = self.leader(&self.writer).await.map_err(|e| self.error(e))?;
        let appended = self
            .cluster
            .append(&conn, &self.topic, (key.as_bytes(), value))
            .await;
        if appended.is_err() {
            *self.writer.lock().await = None;
        }
        appended.map_err(|e| self.error(e))
    }

    /// Creates the topic when it is missing: one partition, compacted, the
    /// cluster's default replication factor.
    async fn ensure_topic(&self) -> Result<(), StateError> {
        let count = self
            .cluster
            .partition_count(&self.topic)
            .await
            .map_err(|e| self.error(e))?;
        match count {
            Some(1) => Ok(()),
            Some(n) => Err(self.error(format!(
                "has {n} partitions; the state topic must have exactly one, so that every instance reads its records in one order"
            ))),
            None => {
                let configs = [("cleanup.policy".to_owned(), Some("compact".to_owned()))];
                self.cluster
                    .create_topic(&self.topic, 1, &configs)
                    .await
                    .map_err(|e| self.error(e))?;
                tracing::info!(
                    topic = self.topic,
                    cluster = self.cluster.name(),
                    "created the state topic"
                );
                Ok(())
            }
        }
    }

    /// Every record of the topic, in order, up to its end (as verified by
    /// fetching there).
    async fn read_all(&self) -> Result<Vec<Entry>, StateError> {
        let ends = self
            .cluster
            .log_ends(&self.topic)
            .await
            .map_err(|e| self.error(e))?;
        let end = ends.get(&0).copied().unwrap_or(UpstreamOffset(0));
        let conn = self.leader(&self.reader).await.map_err(|e| self.error(e))?;
        let mut entries = Vec::new();
        let mut at = UpstreamOffset(0);
        while at < end {
            let read = self
                .cluster
                .read_log(&conn, &self.topic, at)
                .await
                .map_err(|e| self.error(e))?;
            let next = match self.reading(at, &read) {
                Reading::To(next) => next,
                Reading::AtGap => {
                    tokio::time::sleep(GAP_RETRY).await;
                    continue;
                }
                Reading::End => {
                    return Err(self.error(format!(
                        "reading stopped at offset {at}, before its end {end}"
                    )));
                }
            };
            for (key, value) in read.records {
                entries.push(records::decode(&key, value.as_deref()).map_err(|e| self.error(e))?);
            }
            at = next;
        }
        *lock(&self.position) = at;
        self.applied.send_replace(at);
        Ok(entries)
    }

    /// The state file's content, when there is one worth importing.
    fn file_state(&self) -> Result<Option<State>, StateError> {
        let state = State::load(&self.file)?;
        Ok((state != State::default()).then_some(state))
    }

    /// Copies the state file into the (empty) topic, unless another
    /// instance claimed the import first; then the state the topic holds.
    async fn import(&self, state: State) -> Result<Vec<Entry>, StateError> {
        self.append(records::IMPORT, Some(self.instance.as_bytes()))
            .await?;
        let entries = self.read_all().await?;
        let first_claim = entries.iter().find_map(|e| match e {
            Entry::Import { instance } => Some(instance.clone()),
            _ => None,
        });
        if first_claim.as_deref() != Some(self.instance.as_str()) {
            return self.await_import().await;
        }
        let changes = records::import(&state, &self.instance)
            .ok_or_else(|| self.error("the state file's routes do not follow from its flips"))?;
        for (key, value) in &changes {
            self.append(key, Some(value)).await?;
        }
        self.append(records::IMPORTED, Some(b"")).await?;
        tracing::info!(
            file = %self.file.display(),
            topic = self.topic,
            cluster = self.cluster.name(),
            flips = state.flips.len(),
            group_moves = state.group_moves.len(),
            "imported the state file into the state topic; the topic holds the state from now on"
        );
        self.read_all().await
    }

    /// The topic's records once an import another instance runs is done.
    async fn await_import(&self) -> Result<Vec<Entry>, StateError> {
        let deadline = tokio::time::Instant::now() + IMPORT_WAIT;
        loop {
            let entries = self.read_all().await?;
            if entries.contains(&Entry::Imported) {
                return Ok(entries);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(self.error(format!(
                    "another instance began importing its state file {IMPORT_WAIT:?} ago and has not finished; \
                     if it died, delete the topic's records and start one instance first"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn load_state(&self) -> Result<State, StateError> {
        self.ensure_topic().await?;
        let mut entries = self.read_all().await?;
        let file = self.file_state()?;
        let claimed = entries.iter().any(|e| matches!(e, Entry::Import { .. }));
        let imported = entries.contains(&Entry::Imported);
        match file {
            Some(state) if entries.is_empty() => entries = self.import(state).await?,
            _ if claimed && !imported => entries = self.await_import().await?,
            Some(_) => tracing::warn!(
                file = %self.file.display(),
                topic = self.topic,
                "the state file is not read: the state topic holds the state"
            ),
            None => {}
        }
        *lock(&self.fold) = Fold::default();
        for entry in entries {
            self.take(entry);
        }
        *lock(&self.renewed) = Instant::now();
        let state = lock(&self.fold).state.clone();
        tracing::info!(
            topic = self.topic,
            cluster = self.cluster.name(),
            flips = state.flips.len(),
            group_moves = state.group_moves.len(),
            "state read from the state topic"
        );
        Ok(state)
    }

    async fn save_state(&self, next: &State) -> Result<(), StateError> {
        let known = lock(&self.fold).state.clone();
        let changes = records::changes(&known, next, &self.instance)
            .ok_or_else(|| self.error("a change that is not a flip or a group move"))?;
        for (key, value) in &changes {
            self.append(key, Some(value)).await?;
        }
        lock(&self.fold).state = next.clone();
        Ok(())
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl StateTopic {
    /// Claims what `claim` holds that nobody claimed yet for segment
    /// `key`, and returns what stands once this instance has read its own
    /// claim back.
    async fn claim_once(&self, key: &str, mut claim: Claim) -> Result<Claim, StateError> {
        {
            let known = self.claimed(key).unwrap_or_default();
            if known.id.is_some() {
                claim.id = None;
            }
            claim.bases.retain(|p, _| !known.bases.contains_key(p));
            if claim.id.is_none() && claim.bases.is_empty() {
                return Ok(known);
            }
            let json = serde_json::to_vec(&claim).map_err(|e| self.error(e))?;
            let (started, count) = &self.claims;
            let n = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let record = records::claim_key(&self.instance, key, &format!("{started}-{n}"));
            let at = self.append(&record, Some(&json)).await?;
            // The first claim in the log stands: read up to this one.
            let mut applied = self.applied.subscribe();
            let read = tokio::time::timeout(CLAIM_WAIT, applied.wait_for(|end| *end > at)).await;
            if !matches!(read, Ok(Ok(_))) {
                return Err(self.error(format!(
                    "the claim for producer segment {key} was not read back within {CLAIM_WAIT:?}"
                )));
            }
            self.claimed(key).ok_or_else(|| {
                self.error(format!("the claim for producer segment {key} was pruned"))
            })
        }
    }
}

impl StateStore for StateTopic {
    fn load(&self) -> StoreFuture<'_, State> {
        Box::pin(self.load_state())
    }

    fn save<'a>(&'a self, state: &'a State) -> StoreFuture<'a, ()> {
        Box::pin(self.save_state(state))
    }

    fn closed(&self) -> bool {
        let lapsed = self.lease_lapsed();
        let was = self
            .refusing
            .swap(lapsed, std::sync::atomic::Ordering::Relaxed);
        if lapsed && !was {
            tracing::warn!(
                "this instance's lease in the state topic may have expired: Produce is refused (retriable) until it is renewed and the topic read"
            );
        } else if was && !lapsed {
            tracing::info!("lease renewed and the state topic read: Produce is accepted again");
        }
        lapsed
    }

    fn claimed(&self, key: &str) -> Option<Claim> {
        lock(&self.fold).claims.get(key).map(|c| c.claim.clone())
    }

    fn claim<'a>(&'a self, key: &'a str, claim: Claim) -> StoreFuture<'a, Claim> {
        Box::pin(async move {
            // One claim of a segment at a time here, in the order asked:
            // a later one takes what the earlier one found.
            let gate = lock(&self.claiming)
                .entry(key.to_owned())
                .or_default()
                .clone();
            let turn = gate.lock().await;
            let claimed = self.claim_once(key, claim).await;
            drop(turn);
            let mut claiming = lock(&self.claiming);
            if claiming.get(key).is_some_and(|g| Arc::strong_count(g) <= 2) {
                claiming.remove(key);
            }
            claimed
        })
    }

    fn instances(&self) -> Vec<InstanceStatus> {
        lock(&self.leases)
            .values()
            .map(|(lease, seen)| {
                let age = seen.elapsed();
                InstanceStatus {
                    instance: lease.instance.clone(),
                    address: lease.address.clone(),
                    applied: lease.applied,
                    lease_age_ms: age.as_millis() as u64,
                    live: age < self.lease_expiry,
                    connections: lease.connections,
                }
            })
            .collect()
    }
}
