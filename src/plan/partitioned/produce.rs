//! Produce (v3..=12): routed by the topics it writes; its records travel
//! untouched (but for producer ids, see [`crate::rewrite`]), so a part
//! for one broker is re-encoded only when a split cuts it up.

use bytes::Buf;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};

use super::{lists, topic_answer, Body, PartitionAnswer, PartitionedApi};
use crate::domain::stitch::{OffsetField, Shift};
use crate::plan::split::topic_array;
use crate::wire::codec::{response_body, CodecError};
use crate::wire::requests::ProduceView;
use crate::wire::{Frame, Reader, RequestHeader, WireError};

impl PartitionedApi for ProduceRequest {
    const API: ApiKey = ApiKey::Produce;
    // v13 names topics by id.
    const NAMED_UP_TO: i16 = 12;
    type Response = ProduceResponse;
    type Topic = TopicProduceResponse;

    fn view(header: &RequestHeader, body: &[u8]) -> Result<Body, WireError> {
        ProduceView::parse(header, body).map(Body::Write)
    }

    lists!(topic_data.partition_data => responses);

    fn decode_answer(version: i16, frame: &Frame) -> Result<ProduceResponse, CodecError> {
        let mut body = response_body(Self::API, version, frame)?;
        let responses = topic_array(Self::API, version, &mut body, version >= 9)?;
        let mut r = Reader::new(body.chunk(), "Produce response");
        let throttle_time_ms = r.i32()?;
        Ok(ProduceResponse::default()
            .with_responses(responses)
            .with_throttle_time_ms(throttle_time_ms))
    }

    fn fold(merged: &mut ProduceResponse, _part: &ProduceResponse) {
        merged.node_endpoints.clear();
    }
}

topic_answer!(
    TopicProduceResponse,
    name,
    partition_responses,
    PartitionProduceResponse,
    index
);

impl PartitionAnswer for PartitionProduceResponse {
    fn refused(index: i32, error_code: i16) -> Self {
        PartitionProduceResponse::default()
            .with_index(index)
            .with_error_code(error_code)
            .with_base_offset(-1)
            .with_log_append_time_ms(-1)
            .with_log_start_offset(-1)
    }

    fn shift(&mut self, shift: Shift) {
        self.base_offset = shift.answer(OffsetField::Offset, self.base_offset);
        self.log_start_offset = shift.answer(OffsetField::LogStart, self.log_start_offset);
    }

    fn forget_leader(&mut self) {
        self.current_leader = Default::default();
    }
}
