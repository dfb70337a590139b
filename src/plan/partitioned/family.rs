//! The one table from API key to a partitioned API's unit, and a request of
//! that family parsed once: what the ACL checks, planning routes and the
//! split cuts up all read the same view.

use bytes::Bytes;
use kafka_protocol::messages::{
    AddPartitionsToTxnResponse, ApiKey, FetchRequest, ListOffsetsRequest,
    OffsetForLeaderEpochRequest, ProduceRequest,
};
use kafka_protocol::ResponseError;

use super::{refused_topics, Body, PartitionedApi};
use crate::plan::route::Seek;
use crate::plan::split::{merge_as, split_as, Merge, Parts};
use crate::wire::codec::{response_frame, CodecError};
use crate::wire::requests::{ProduceView, TopicPartitions};
use crate::wire::{Frame, RequestHeader, WireError};

/// An answer frame, or why it cannot be built.
type Answer = Result<Bytes, CodecError>;
/// One request frame per destination (`None`: no partition goes there).
type Cut = Result<Vec<Option<Bytes>>, CodecError>;
/// The error code each topic of a refusal gets.
type CodeOf<'a> = &'a dyn Fn(&str) -> i16;

/// What the proxy does with one partitioned API, as plain functions.
#[derive(Clone, Copy)]
pub struct Family {
    api: ApiKey,
    view: fn(&RequestHeader, &[u8]) -> Result<Body, WireError>,
    split: fn(&Bytes, &RequestHeader, &Parts<'_>) -> Cut,
    merge: fn(&Merge<'_>, &[Frame]) -> Answer,
    refusal: fn(i16, i32, &TopicPartitions, CodeOf<'_>) -> Answer,
}

impl std::fmt::Debug for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Family({:?})", self.api)
    }
}

impl Family {
    fn of<R: PartitionedApi>() -> Family {
        Family {
            api: R::API,
            view: R::view,
            split: split_as::<R>,
            merge: merge_as::<R>,
            refusal: refusal_as::<R>,
        }
    }

    /// The partitioned API `api` is, if it is one: the table.
    pub fn of_api(api: ApiKey) -> Option<Family> {
        Some(match api {
            ApiKey::Produce => Family::of::<ProduceRequest>(),
            ApiKey::Fetch => Family::of::<FetchRequest>(),
            ApiKey::ListOffsets => Family::of::<ListOffsetsRequest>(),
            ApiKey::OffsetForLeaderEpoch => Family::of::<OffsetForLeaderEpochRequest>(),
            _ => return None,
        })
    }

    pub fn api(&self) -> ApiKey {
        self.api
    }

    /// Reads a request body of this API: the one parse every later step
    /// uses.
    pub fn parse(
        self,
        header: &RequestHeader,
        body: &[u8],
    ) -> Result<PartitionedRequest, WireError> {
        Ok(PartitionedRequest {
            family: self,
            body: (self.view)(header, body)?,
        })
    }

    /// One request frame per destination, each carrying only the
    /// partitions `parts` gives it, under the client's own header; `None`
    /// for a destination that gets no partition.
    ///
    /// `frame` must have passed [`Family::parse`] first: that checks every
    /// count against the bytes present, so the full decode here cannot be
    /// made to over-allocate.
    pub fn split(
        &self,
        frame: &Bytes,
        header: &RequestHeader,
        parts: &Parts<'_>,
    ) -> Result<Vec<Option<Bytes>>, CodecError> {
        (self.split)(frame, header, parts)
    }

    /// The client's answer from the parts' answers (upstream response
    /// frames, in any order): every partition `merge` names, in request
    /// order, its offsets shifted into the client's log, with the worst
    /// throttle time of any part.
    pub fn merge(&self, merge: &Merge<'_>, parts: &[Frame]) -> Result<Bytes, CodecError> {
        (self.merge)(merge, parts)
    }

    /// A whole answer frame giving every partition of `topics` the error
    /// code `code` names for its topic.
    pub fn refusal(
        &self,
        version: i16,
        correlation_id: i32,
        topics: &TopicPartitions,
        code: &dyn Fn(&str) -> i16,
    ) -> Result<Bytes, CodecError> {
        (self.refusal)(version, correlation_id, topics, code)
    }
}

fn refusal_as<R: PartitionedApi>(
    version: i16,
    correlation_id: i32,
    topics: &TopicPartitions,
    code: &dyn Fn(&str) -> i16,
) -> Result<Bytes, CodecError> {
    if version > R::NAMED_UP_TO {
        return Err(CodecError::encode(
            R::API,
            version,
            "topic ids (v13+) are not supported",
        ));
    }
    let mut answer = R::Response::default();
    *R::topics(&mut answer) = refused_topics(topics, code);
    response_frame(R::API, version, correlation_id, &answer)
}

/// A partitioned request, parsed once.
#[derive(Debug, Clone)]
pub struct PartitionedRequest {
    family: Family,
    body: Body,
}

impl PartitionedRequest {
    pub fn family(&self) -> Family {
        self.family
    }

    pub fn api(&self) -> ApiKey {
        self.family.api
    }

    /// The topics and partitions it names, in request order.
    pub fn topics(&self) -> &TopicPartitions {
        self.body.topics()
    }

    /// What picks the stretch each stitched partition is served from.
    pub fn seek(&self) -> Seek<'_> {
        self.body.seek()
    }

    /// A Fetch's fetch offsets, flattened in request order (none for
    /// other requests).
    pub fn fetch_offsets(&self) -> &[i64] {
        match self.body.seek() {
            Seek::Offsets(offsets) => offsets,
            _ => &[],
        }
    }

    /// A Produce's view.
    pub fn produce(&self) -> Option<&ProduceView> {
        match &self.body {
            Body::Write(view) => Some(view),
            Body::Read { .. } => None,
        }
    }

    /// False for an acks=0 Produce: the client expects no answer at all.
    pub fn expects_answer(&self) -> bool {
        self.produce().is_none_or(|view| view.acks != 0)
    }

    /// The answer giving every partition `error`.
    pub fn refusal(
        &self,
        header: &RequestHeader,
        error: ResponseError,
    ) -> Result<Bytes, CodecError> {
        self.refusal_by(header, &|_| error.code())
    }

    /// The answer giving each partition the code `code` names for its
    /// topic.
    pub fn refusal_by(
        &self,
        header: &RequestHeader,
        code: &dyn Fn(&str) -> i16,
    ) -> Result<Bytes, CodecError> {
        let (version, correlation_id) = (header.api_version, header.correlation_id);
        self.family
            .refusal(version, correlation_id, self.topics(), code)
    }
}

/// A whole response frame for `api` (Produce, Fetch, ListOffsets,
/// OffsetForLeaderEpoch, or AddPartitionsToTxn up to v3) at `version`,
/// carrying `error_code` for every partition in `topics`, so the proxy can
/// refuse a request without forwarding it.
///
/// Produce and Fetch past v12 name topics by id, which `topics` cannot
/// carry, so those versions are refused like any version the API lacks.
pub fn partition_error_response(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    topics: &TopicPartitions,
    error_code: i16,
) -> Result<Bytes, CodecError> {
    let code = |_: &str| error_code;
    match Family::of_api(api) {
        Some(family) => family.refusal(version, correlation_id, topics, &code),
        None if api == ApiKey::AddPartitionsToTxn && version <= 3 => {
            let answer = AddPartitionsToTxnResponse::default()
                .with_results_by_topic_v3_and_below(refused_topics(topics, &code));
            response_frame(api, version, correlation_id, &answer)
        }
        None => Err(CodecError::encode(api, version, "not a partitioned API")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::codec::decode_response;
    use kafka_protocol::messages::{
        BrokerId, FetchResponse, ListOffsetsResponse, OffsetForLeaderEpochResponse,
        ProduceResponse, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;

    fn topics() -> TopicPartitions {
        TopicPartitions(vec![
            ("orders".to_owned(), vec![0, 2, 1]),
            ("audit".to_owned(), vec![]),
            ("orders".to_owned(), vec![9]),
        ])
    }

    /// The error frame for `topics()`, checked for size and correlation id.
    fn frame(api: ApiKey, version: i16, correlation_id: i32) -> Frame {
        let bytes = partition_error_response(
            api,
            version,
            correlation_id,
            &topics(),
            ResponseError::NotLeaderOrFollower.code(),
        )
        .unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
        let frame = Frame(bytes);
        assert_eq!(frame.response_correlation_id(), Some(correlation_id));
        assert_eq!(frame.body().len() + Frame::PREFIX, frame.0.len());
        frame
    }

    /// The topics and partitions a decoded response answers, in order.
    fn names_of<'a>(names: impl Iterator<Item = (&'a TopicName, Vec<i32>)>) -> TopicPartitions {
        TopicPartitions(names.map(|(n, ps)| (n.0.to_string(), ps)).collect())
    }

    #[test]
    fn produce_errors_every_partition() {
        for v in [3, 5, 8, 9, 10, 12] {
            let resp: ProduceResponse = decode_response(
                ApiKey::Produce,
                v,
                &frame(ApiKey::Produce, v, 70 + i32::from(v)),
            )
            .unwrap();
            for p in resp.responses.iter().flat_map(|t| &t.partition_responses) {
                assert_eq!(
                    p.error_code,
                    ResponseError::NotLeaderOrFollower.code(),
                    "v{v}"
                );
                assert_eq!((p.base_offset, p.log_append_time_ms), (-1, -1));
                assert_eq!(p.log_start_offset, -1);
            }
            let got = names_of(resp.responses.iter().map(|t| {
                (
                    &t.name,
                    t.partition_responses.iter().map(|p| p.index).collect(),
                )
            }));
            assert_eq!(got, topics(), "v{v}");
        }
    }

    #[test]
    fn fetch_errors_every_partition() {
        for v in [4, 5, 7, 11, 12] {
            let resp: FetchResponse =
                decode_response(ApiKey::Fetch, v, &frame(ApiKey::Fetch, v, -5)).unwrap();
            assert_eq!((resp.error_code, resp.session_id), (0, 0));
            for p in resp.responses.iter().flat_map(|t| &t.partitions) {
                assert_eq!(
                    p.error_code,
                    ResponseError::NotLeaderOrFollower.code(),
                    "v{v}"
                );
                assert_eq!((p.high_watermark, p.last_stable_offset), (-1, -1));
                assert_eq!(p.records, None);
                if v >= 5 {
                    assert_eq!(p.log_start_offset, -1);
                }
                if v >= 11 {
                    assert_eq!(p.preferred_read_replica, BrokerId(-1));
                }
            }
            let got = names_of(resp.responses.iter().map(|t| {
                (
                    &t.topic,
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                )
            }));
            assert_eq!(got, topics(), "v{v}");
        }
    }

    #[test]
    fn list_offsets_errors_every_partition() {
        for v in [1, 2, 4, 6, 10] {
            let resp: ListOffsetsResponse =
                decode_response(ApiKey::ListOffsets, v, &frame(ApiKey::ListOffsets, v, 1)).unwrap();
            for p in resp.topics.iter().flat_map(|t| &t.partitions) {
                assert_eq!(
                    p.error_code,
                    ResponseError::NotLeaderOrFollower.code(),
                    "v{v}"
                );
                assert_eq!((p.timestamp, p.offset, p.leader_epoch), (-1, -1, -1));
            }
            let got = names_of(resp.topics.iter().map(|t| {
                (
                    &t.name,
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                )
            }));
            assert_eq!(got, topics(), "v{v}");
        }
    }

    #[test]
    fn offset_for_leader_epoch_errors_every_partition() {
        for v in [2, 3, 4] {
            let api = ApiKey::OffsetForLeaderEpoch;
            let resp: OffsetForLeaderEpochResponse =
                decode_response(api, v, &frame(api, v, i32::MAX)).unwrap();
            for p in resp.topics.iter().flat_map(|t| &t.partitions) {
                assert_eq!(
                    p.error_code,
                    ResponseError::NotLeaderOrFollower.code(),
                    "v{v}"
                );
                assert_eq!((p.leader_epoch, p.end_offset), (-1, -1));
            }
            let got = names_of(
                resp.topics
                    .iter()
                    .map(|t| (&t.topic, t.partitions.iter().map(|p| p.partition).collect())),
            );
            assert_eq!(got, topics(), "v{v}");
        }
    }

    #[test]
    fn other_apis_and_versions_are_refused() {
        let e = partition_error_response(ApiKey::Metadata, 12, 1, &topics(), 6).unwrap_err();
        assert!(e.to_string().contains("not a partitioned API"), "{e}");
        for (api, v) in [
            (ApiKey::Produce, 13),
            (ApiKey::Fetch, 13),
            (ApiKey::Produce, 2),
            (ApiKey::Fetch, 3),
            (ApiKey::ListOffsets, 0),
            (ApiKey::OffsetForLeaderEpoch, 1),
        ] {
            let r = partition_error_response(api, v, 1, &topics(), 6);
            assert!(matches!(r, Err(CodecError::Encode { .. })), "{api:?} v{v}");
        }
    }

    #[test]
    fn empty_request_gets_empty_answer() {
        let bytes =
            partition_error_response(ApiKey::Fetch, 12, 3, &TopicPartitions::default(), 6).unwrap();
        let resp: FetchResponse = decode_response(ApiKey::Fetch, 12, &Frame(bytes)).unwrap();
        assert!(resp.responses.is_empty());
    }

    #[test]
    fn the_families_are_the_partitioned_class_of_the_api_table() {
        use crate::plan::classify::{RouteClass, APIS};
        for spec in APIS {
            let partitioned = matches!(spec.class, RouteClass::Partitioned(_));
            let family = Family::of_api(spec.key);
            assert_eq!(family.is_some(), partitioned, "{:?}", spec.key);
            if let Some(family) = family {
                assert_eq!(family.api(), spec.key);
            }
        }
    }

    #[test]
    fn each_view_says_what_picks_a_stretch() {
        use kafka_protocol::messages::{FetchRequest, ListOffsetsRequest};
        use kafka_protocol::protocol::Encodable;
        let read = |api: ApiKey, version: i16, body: &dyn Fn(&mut bytes::BytesMut)| {
            let mut buf = bytes::BytesMut::new();
            body(&mut buf);
            let header = RequestHeader {
                api_key: api as i16,
                api_version: version,
                correlation_id: 1,
                client_id: None,
                body_offset: 0,
            };
            Family::of_api(api).unwrap().parse(&header, &buf).unwrap()
        };
        let fetch = read(ApiKey::Fetch, 12, &|buf| {
            use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
            let topic = FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(3)
                    .with_fetch_offset(42)]);
            FetchRequest::default()
                .with_topics(vec![topic])
                .encode(buf, 12)
                .unwrap();
        });
        assert!(matches!(fetch.seek(), Seek::Offsets([42])));
        assert_eq!(fetch.topics().0, vec![("t".to_owned(), vec![3])]);
        assert!(fetch.produce().is_none() && fetch.expects_answer());
        let list = read(ApiKey::ListOffsets, 7, &|buf| {
            use kafka_protocol::messages::list_offsets_request::{
                ListOffsetsPartition, ListOffsetsTopic,
            };
            let topic = ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-2)]);
            ListOffsetsRequest::default()
                .with_topics(vec![topic])
                .encode(buf, 7)
                .unwrap();
        });
        assert!(matches!(list.seek(), Seek::Timestamps([-2])));
    }
}
