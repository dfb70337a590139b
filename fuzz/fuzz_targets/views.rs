//! Every shallow view the proxy reads, chosen by api_key, shared by the
//! request fuzz targets. Errors are fine; panics are not.

use switchyard::domain::producer_ids;
use switchyard::wire::requests::{
    admin_topic_names, fetch_topics, list_offsets_topics, offset_for_leader_epoch_topics,
    DescribeClusterView, FindCoordinatorView, MetadataRequestView, ProduceView,
};
use switchyard::wire::RequestHeader;

pub fn parse_view(header: &RequestHeader, body: &[u8]) {
    match header.api_key {
        0 => {
            if let Ok(view) = ProduceView::parse(header, body) {
                // What the proxy does to idempotent batches on their way out.
                let mut copy = body.to_vec();
                for records in view.records {
                    let Ok(batches) = producer_ids::batches(&body[records.clone()]) else {
                        continue;
                    };
                    for batch in batches {
                        let at = records.start + batch.start..records.start + batch.end;
                        let producer = producer_ids::producer_of(&copy[at.clone()]);
                        let sequence = producer_ids::rebase(producer.base_sequence, 7);
                        producer_ids::rewrite(&mut copy[at], 42, 0, sequence);
                    }
                }
            }
        }
        1 => drop(fetch_topics(header, body)),
        2 => drop(list_offsets_topics(header, body)),
        3 => drop(MetadataRequestView::parse(header, body)),
        10 => drop(FindCoordinatorView::parse(header, body)),
        19 | 20 | 37 => drop(admin_topic_names(header, body)),
        23 => drop(offset_for_leader_epoch_topics(header, body)),
        60 => drop(DescribeClusterView::parse(header, body)),
        _ => {}
    }
}
