//! Produce on its way upstream: batches of idempotent producers get the
//! producer id their destination cluster knows them by (see
//! [`crate::domain::producer_ids`]). Everything else about a Produce is the fast
//! path: forwarded untouched.

use std::collections::BTreeMap;

use bytes::BytesMut;

use crate::domain::ids::ClusterIdx;
use crate::domain::producer_ids::{self, Claim, Segment};
use crate::ops::state::StateError;
use crate::runtime::proxy::Proxy;
use crate::upstream::UpstreamError;
use crate::wire::requests::ProduceView;
use crate::wire::WireError;

#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("producer id for cluster: {0}")]
    Upstream(#[from] UpstreamError),
    #[error("producer id shared with the other instances: {0}")]
    Shared(#[from] StateError),
    #[error("producer ids for '{0}' dropped by a flip of it meanwhile")]
    Dropped(String),
    #[error("a batch for '{0}' partition {1} came before an earlier one refused by a flip")]
    OutOfOrder(String, i32),
}

/// The frame to send to `cluster`: `None` when it can go as it came (every
/// batch's producer id is valid there), else a copy with batches rewritten.
/// `body_at` is where the request body starts in `frame`.
///
/// Three steps: find the batches that need this cluster's ids (reading
/// only their headers), get every id they need (asking the cluster for
/// the ones not held yet), then rewrite the bytes, with nothing left to
/// wait for.
pub async fn for_cluster(
    proxy: &Proxy,
    frame: &[u8],
    body_at: usize,
    view: &ProduceView,
    cluster: ClusterIdx,
) -> Result<Option<BytesMut>, ProduceError> {
    if view.transactional_id.is_some() {
        // Transactions are not advertised; their ids are the coordinator's.
        return Ok(None);
    }
    let routes = proxy.routes();
    let issuer = routes.default_cluster();
    let needs_own_ids = |topic: &str| cluster != issuer || routes.generation(topic) != 0;
    let ids = proxy.producer_ids();
    if !view.topics.0.iter().any(|(topic, _)| needs_own_ids(topic)) {
        // The common case, the fast path: nothing to look at, unless a
        // flip refused batches lately.
        if ids.any_refused() {
            for (key, sequence) in idempotent_batches(frame, body_at, view) {
                ids.forwarded(&key, sequence);
            }
        }
        return Ok(None);
    }
    let mut found: Vec<Rewrite> = Vec::new();
    let partitions = view
        .topics
        .0
        .iter()
        .flat_map(|(topic, indices)| indices.iter().map(move |p| (topic.as_str(), *p)));
    for ((topic, partition), records) in partitions.zip(&view.records) {
        if !needs_own_ids(topic) {
            continue; // the ids the client holds are this cluster's own
        }
        let generation = routes.generation(topic);
        let start = body_at + records.start;
        for batch in producer_ids::batches(&frame[start..body_at + records.end])? {
            let range = start + batch.start..start + batch.end;
            let producer = producer_ids::producer_of(&frame[range.clone()]);
            if producer.producer_id < 0 || producer.transactional {
                continue; // not idempotent
            }
            let segment = Segment {
                client_pid: producer.producer_id,
                client_epoch: producer.producer_epoch,
                cluster,
                topic: topic.to_owned(),
                generation,
            };
            found.push(Rewrite {
                range,
                segment,
                partition,
                base_sequence: producer.base_sequence,
            });
        }
    }
    if found.is_empty() {
        return Ok(None);
    }
    // Each batch's id and base as this instance holds them; a segment
    // that lacks any gets them claimed at once (one claim per segment).
    let held = |r: &Rewrite| Some((ids.id(&r.segment)?, ids.base(&r.segment, r.partition)?));
    let mut known: Vec<_> = found.iter().map(held).collect();
    if known.iter().any(Option::is_none) {
        for (i, rewrite) in found.iter().enumerate() {
            let segment = &rewrite.segment;
            let claimed_before = found[..i]
                .iter()
                .zip(&known[..i])
                .any(|(r, k)| k.is_none() && r.segment == *segment);
            if known[i].is_some() || claimed_before {
                continue; // held, or claimed with an earlier batch
            }
            let mut lacking: BTreeMap<i32, i32> = BTreeMap::new();
            for (r, k) in found[i..].iter().zip(&known[i..]) {
                if r.segment == *segment && k.is_none() && ids.base(segment, r.partition).is_none()
                {
                    if ids.out_of_order(&r.unwritten(), r.base_sequence) {
                        return Err(ProduceError::OutOfOrder(segment.topic.clone(), r.partition));
                    }
                    lacking.entry(r.partition).or_insert(r.base_sequence);
                }
            }
            let has_id = ids.id(segment).is_some();
            let claim = shared(proxy, segment, !has_id, lacking.clone()).await?;
            if let (false, Some(id)) = (has_id, claim.id) {
                ids.set_id(segment.clone(), id);
            }
            for (partition, seen) in lacking {
                let base = claim.bases.get(&partition).copied().unwrap_or(seen);
                ids.set_base(segment, partition, base);
            }
        }
        known = found.iter().map(held).collect();
    }
    if ids.any_refused() {
        for rewrite in &found {
            ids.forwarded(&rewrite.unwritten(), rewrite.base_sequence);
        }
    }
    let mut copy = BytesMut::from(frame);
    for (rewrite, known) in found.into_iter().zip(known) {
        let Some(((id, epoch), base)) = known else {
            // Only a flip of the topic, since, drops what was just set.
            return Err(ProduceError::Dropped(rewrite.segment.topic));
        };
        producer_ids::rewrite(
            &mut copy[rewrite.range],
            id,
            epoch,
            producer_ids::rebase(rewrite.base_sequence, base),
        );
    }
    Ok(Some(copy))
}

/// What stands for `segment` among the instances sharing the state, with
/// an id (when `id`) and the bases of `lacking` partitions (first
/// sequences seen here): what was claimed already, else what this
/// instance claims (a fresh id from the cluster), merged with whatever
/// another instance claimed first.
async fn shared(
    proxy: &Proxy,
    segment: &Segment,
    id: bool,
    lacking: BTreeMap<i32, i32>,
) -> Result<Claim, ProduceError> {
    let key = segment.key(proxy.cluster(segment.cluster).name());
    let known = proxy.store().claimed(&key).unwrap_or_default();
    let need_id = id && known.id.is_none();
    let bases: BTreeMap<i32, i32> = lacking
        .into_iter()
        .filter(|(p, _)| !known.bases.contains_key(p))
        .collect();
    if !need_id && bases.is_empty() {
        return Ok(known);
    }
    let fresh = match need_id {
        true => Some(proxy.cluster(segment.cluster).init_producer_id().await?),
        false => None,
    };
    let mine = Claim { id: fresh, bases };
    let standing = proxy.store().claim(&key, mine).await.inspect_err(|e| {
        tracing::warn!(
            segment = key,
            error = %e,
            "cannot share a producer id with the other instances; the connection closes and the client retries"
        )
    })?;
    Ok(standing)
}

/// Notes the idempotent batches of a Produce refused by a flip's fence
/// (see [`crate::domain::producer_ids::ProducerIds::refused`]).
pub fn note_refused(proxy: &Proxy, frame: &[u8], body_at: usize, view: &ProduceView) {
    let ids = proxy.producer_ids();
    for (key, sequence) in idempotent_batches(frame, body_at, view) {
        ids.refused(key, sequence);
    }
}

/// The idempotent (not transactional) batches of a Produce: each one's
/// producer partition and first sequence. A batch the view cannot read
/// is left out: the proxy reads it again when it goes upstream.
fn idempotent_batches<'a>(
    frame: &'a [u8],
    body_at: usize,
    view: &'a ProduceView,
) -> impl Iterator<Item = (producer_ids::Unwritten, i32)> + 'a {
    let transactional = view.transactional_id.is_some();
    let partitions = view
        .topics
        .0
        .iter()
        .flat_map(|(topic, indices)| indices.iter().map(move |p| (topic.as_str(), *p)));
    partitions
        .zip(&view.records)
        .filter(move |_| !transactional)
        .flat_map(move |((topic, partition), records)| {
            let blob = &frame[body_at + records.start..body_at + records.end];
            let batches = producer_ids::batches(blob).unwrap_or_default();
            batches.into_iter().filter_map(move |batch| {
                let producer = producer_ids::producer_of(&blob[batch]);
                let key = (
                    producer.producer_id,
                    producer.producer_epoch,
                    topic.to_owned(),
                    partition,
                );
                (producer.producer_id >= 0 && !producer.transactional)
                    .then_some((key, producer.base_sequence))
            })
        })
}

/// One batch that gets its destination cluster's producer id.
struct Rewrite {
    /// Where the batch sits in the frame.
    range: std::ops::Range<usize>,
    segment: Segment,
    partition: i32,
    /// The batch's first sequence number as the client wrote it.
    base_sequence: i32,
}

impl Rewrite {
    /// Its client producer's partition.
    fn unwritten(&self) -> producer_ids::Unwritten {
        let s = &self.segment;
        (
            s.client_pid,
            s.client_epoch,
            s.topic.clone(),
            self.partition,
        )
    }
}
