//! Every shallow view the proxy reads, chosen by api_key, shared by the
//! request fuzz targets. Errors are fine; panics are not.

use kafka_protocol::messages::ApiKey;
use switchyard::domain::producer_ids;
use switchyard::plan::partitioned::Family;
use switchyard::wire::requests::{
    admin_topic_names, DescribeClusterView, FindCoordinatorView, MetadataRequestView,
};
use switchyard::wire::RequestHeader;

pub fn parse_view(header: &RequestHeader, body: &[u8]) {
    // The partitioned APIs, read as the session reads them.
    if let Some(family) = ApiKey::try_from(header.api_key).ok().and_then(Family::of_api) {
        if let Some(view) = family.parse(header, body).ok().as_ref().and_then(|r| r.produce()) {
            rewrite_batches(body, &view.records);
        }
        return;
    }
    match header.api_key {
        3 => drop(MetadataRequestView::parse(header, body)),
        10 => drop(FindCoordinatorView::parse(header, body)),
        19 | 20 | 37 => drop(admin_topic_names(header, body)),
        60 => drop(DescribeClusterView::parse(header, body)),
        _ => {}
    }
}

/// What the proxy does to idempotent batches on their way out.
fn rewrite_batches(body: &[u8], records: &[std::ops::Range<usize>]) {
    let mut copy = body.to_vec();
    for records in records {
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
