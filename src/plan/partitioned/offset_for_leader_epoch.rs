//! OffsetForLeaderEpoch (v2..=4): asked by a consumer checking its
//! position after a leader change; answered from the newest stretch of a
//! stitched partition, the epoch's end capped at the stretch's.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{ApiKey, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::{lists, topic_answer, Body, PartitionAnswer, PartitionedApi, Positions};
use crate::domain::stitch::{OffsetField, Shift};
use crate::wire::requests;
use crate::wire::{RequestHeader, WireError};

impl PartitionedApi for OffsetForLeaderEpochRequest {
    const API: ApiKey = ApiKey::OffsetForLeaderEpoch;
    type Response = OffsetForLeaderEpochResponse;
    type Topic = OffsetForLeaderTopicResult;

    fn view(header: &RequestHeader, body: &[u8]) -> Result<Body, WireError> {
        Ok(Body::Read {
            topics: requests::offset_for_leader_epoch_topics(header, body)?,
            positions: Positions::Newest,
        })
    }

    lists!(topics.partitions => topics);
}

topic_answer!(
    OffsetForLeaderTopicResult,
    topic,
    partitions,
    EpochEndOffset,
    partition
);

impl PartitionAnswer for EpochEndOffset {
    fn refused(index: i32, error_code: i16) -> Self {
        EpochEndOffset::default()
            .with_partition(index)
            .with_error_code(error_code)
            .with_leader_epoch(-1)
            .with_end_offset(-1)
    }

    fn shift(&mut self, shift: Shift) {
        self.end_offset = shift.answer(OffsetField::Offset, self.end_offset);
    }
}
