//! ListOffsets (v1..=10): routed by the partitions it asks about, each to
//! the stretch of the stitched log its timestamp picks (the oldest for
//! earliest, the newest for latest); the offsets found come back in the
//! client's log.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};

use super::{lists, topic_answer, Body, PartitionAnswer, PartitionedApi, Positions};
use crate::domain::stitch::Shift;
use crate::wire::requests;
use crate::wire::{RequestHeader, WireError};

impl PartitionedApi for ListOffsetsRequest {
    const API: ApiKey = ApiKey::ListOffsets;
    type Response = ListOffsetsResponse;
    type Topic = ListOffsetsTopicResponse;

    fn view(header: &RequestHeader, body: &[u8]) -> Result<Body, WireError> {
        let (topics, timestamps) = requests::list_offsets_positions(header, body)?;
        Ok(Body::Read {
            topics,
            positions: Positions::Timestamps(timestamps),
        })
    }

    lists!(topics.partitions => topics);
}

topic_answer!(
    ListOffsetsTopicResponse,
    name,
    partitions,
    ListOffsetsPartitionResponse,
    partition_index
);

impl PartitionAnswer for ListOffsetsPartitionResponse {
    fn refused(index: i32, error_code: i16) -> Self {
        ListOffsetsPartitionResponse::default()
            .with_partition_index(index)
            .with_error_code(error_code)
            .with_timestamp(-1)
            .with_offset(-1)
            .with_leader_epoch(-1)
    }

    fn shift(&mut self, shift: Shift) {
        self.offset = shift.listed(self.offset, self.error_code == 0);
    }
}
