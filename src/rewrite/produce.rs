//! Produce on its way upstream: batches of idempotent producers get the
//! producer id their destination cluster knows them by (see
//! [`crate::domain::producer_ids`]). Everything else about a Produce is the fast
//! path: forwarded untouched.

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
    if !view.topics.0.iter().any(|(topic, _)| needs_own_ids(topic)) {
        // The common case, the fast path: nothing to look at.
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
    let cluster_name = proxy.cluster(cluster).name();
    let mut ids = Vec::with_capacity(found.len());
    for rewrite in &found {
        let id = match proxy.producer_ids().id(&rewrite.segment) {
            Some(held) => held,
            None => {
                let id = shared_id(proxy, &rewrite.segment, cluster_name).await?;
                proxy.producer_ids().set_id(rewrite.segment.clone(), id)
            }
        };
        let base = match proxy
            .producer_ids()
            .base(&rewrite.segment, rewrite.partition)
        {
            Some(held) => held,
            None => {
                let key = rewrite.segment.key(cluster_name, Some(rewrite.partition));
                let seen = Claim::Base {
                    base: rewrite.base_sequence,
                };
                let base = match shared_claim(proxy, &key, seen).await? {
                    Claim::Base { base } => base,
                    Claim::Id { .. } => rewrite.base_sequence,
                };
                proxy
                    .producer_ids()
                    .set_base(&rewrite.segment, rewrite.partition, base)
            }
        };
        ids.push((id, base));
    }
    let mut copy = BytesMut::from(frame);
    for (rewrite, ((id, epoch), base)) in found.into_iter().zip(ids) {
        producer_ids::rewrite(
            &mut copy[rewrite.range],
            id,
            epoch,
            producer_ids::rebase(rewrite.base_sequence, base),
        );
    }
    Ok(Some(copy))
}

/// The id `segment` goes by on `cluster`: the one instances sharing the
/// state claimed already, else a fresh one from the cluster, claimed
/// (where another instance claimed first, its id stands).
async fn shared_id(
    proxy: &Proxy,
    segment: &Segment,
    cluster: &str,
) -> Result<(i64, i16), ProduceError> {
    let key = segment.key(cluster, None);
    if let Some(Claim::Id { id, epoch }) = proxy.store().claimed(&key) {
        return Ok((id, epoch));
    }
    let (id, epoch) = proxy.cluster(segment.cluster).init_producer_id().await?;
    Ok(
        match shared_claim(proxy, &key, Claim::Id { id, epoch }).await? {
            Claim::Id { id, epoch } => (id, epoch),
            Claim::Base { .. } => (id, epoch),
        },
    )
}

/// What stands for `key` among the instances sharing the state: what was
/// claimed already, else `claim` once claimed.
async fn shared_claim(proxy: &Proxy, key: &str, claim: Claim) -> Result<Claim, ProduceError> {
    if let Some(held) = proxy.store().claimed(key) {
        return Ok(held);
    }
    Ok(proxy.store().claim(key, claim).await?)
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
