//! Produce on its way upstream: batches of idempotent producers get the
//! producer id their destination cluster knows them by (see
//! [`crate::domain::producer_ids`]). Everything else about a Produce is the fast
//! path: forwarded untouched.

use bytes::BytesMut;

use crate::domain::ids::ClusterIdx;
use crate::domain::producer_ids::{self, Segment};
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
}

/// The frame to send to `cluster`: `None` when it can go as it came (every
/// batch's producer id is valid there), else a copy with batches rewritten.
/// `body_at` is where the request body starts in `frame`.
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
    let mut copy: Option<BytesMut> = None;
    // Collected first: no closure may live across the awaits below (their
    // borrowed captures would keep the session's future from being Send).
    let mut partitions: Vec<(&str, i32)> = Vec::with_capacity(view.records.len());
    for (topic, indices) in &view.topics.0 {
        for p in indices {
            partitions.push((topic.as_str(), *p));
        }
    }
    for (&(topic, partition), records) in partitions.iter().zip(&view.records) {
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
            let (id, epoch) = match proxy.producer_ids.id(&segment) {
                Some(found) => found,
                None => {
                    let fresh = proxy.cluster(cluster).init_producer_id().await?;
                    proxy.producer_ids.set_id(segment.clone(), fresh)
                }
            };
            let base =
                proxy
                    .producer_ids
                    .sequence_base(&segment, partition, producer.base_sequence);
            let bytes = copy.get_or_insert_with(|| BytesMut::from(frame));
            producer_ids::rewrite(
                &mut bytes[range],
                id,
                epoch,
                producer_ids::rebase(producer.base_sequence, base),
            );
        }
    }
    Ok(copy)
}
