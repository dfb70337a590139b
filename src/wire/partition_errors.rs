//! Error answers to partitioned requests, built by the proxy itself so that
//! it can refuse a request without forwarding it.

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::fetch_response::{
    FetchResponse, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderEpochResponse, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::produce_response::{
    PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnResponse, ApiKey, BrokerId, CreatePartitionsResponse, CreateTopicsResponse,
    DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::codec::{response_frame, CodecError};
use super::requests::TopicPartitions;

/// A whole response frame for `api` (Produce, Fetch, ListOffsets or
/// OffsetForLeaderEpoch) at `version`, carrying `error_code` for every
/// partition in `topics`, so the proxy can refuse a request without
/// forwarding it.
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
    partition_error_response_by(api, version, correlation_id, topics, &|_| error_code)
}

/// [`partition_error_response`] with an error code chosen per topic, for
/// refusals that concern only some topics of a request.
pub fn partition_error_response_by(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    topics: &TopicPartitions,
    code: &dyn Fn(&str) -> i16,
) -> Result<Bytes, CodecError> {
    let refuse = |message: &str| CodecError::Encode {
        api,
        version,
        message: message.to_owned(),
    };
    let name = |topic: &str| TopicName(StrBytes::from_string(topic.to_owned()));
    if matches!(api, ApiKey::Produce | ApiKey::Fetch) && version > 12 {
        return Err(refuse("topic ids (v13+) are not supported"));
    }
    match api {
        ApiKey::Produce => {
            let responses = per_partition(
                topics,
                |topic, partitions| {
                    TopicProduceResponse::default()
                        .with_name(name(topic))
                        .with_partition_responses(partitions)
                },
                |t, p| {
                    PartitionProduceResponse::default()
                        .with_index(p)
                        .with_error_code(code(t))
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1)
                },
            );
            let body = ProduceResponse::default().with_responses(responses);
            response_frame(api, version, correlation_id, &body)
        }
        ApiKey::Fetch => {
            let responses = per_partition(
                topics,
                |topic, partitions| {
                    FetchableTopicResponse::default()
                        .with_topic(name(topic))
                        .with_partitions(partitions)
                },
                |t, p| {
                    PartitionData::default()
                        .with_partition_index(p)
                        .with_error_code(code(t))
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                        .with_preferred_read_replica(BrokerId(-1))
                        .with_records(None)
                },
            );
            let body = FetchResponse::default()
                .with_error_code(0)
                .with_session_id(0)
                .with_responses(responses);
            response_frame(api, version, correlation_id, &body)
        }
        ApiKey::ListOffsets => {
            let responses = per_partition(
                topics,
                |topic, partitions| {
                    ListOffsetsTopicResponse::default()
                        .with_name(name(topic))
                        .with_partitions(partitions)
                },
                |t, p| {
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(p)
                        .with_error_code(code(t))
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1)
                },
            );
            let body = ListOffsetsResponse::default().with_topics(responses);
            response_frame(api, version, correlation_id, &body)
        }
        ApiKey::OffsetForLeaderEpoch => {
            let responses = per_partition(
                topics,
                |topic, partitions| {
                    OffsetForLeaderTopicResult::default()
                        .with_topic(name(topic))
                        .with_partitions(partitions)
                },
                |t, p| {
                    EpochEndOffset::default()
                        .with_partition(p)
                        .with_error_code(code(t))
                        .with_leader_epoch(-1)
                        .with_end_offset(-1)
                },
            );
            let body = OffsetForLeaderEpochResponse::default().with_topics(responses);
            response_frame(api, version, correlation_id, &body)
        }
        ApiKey::AddPartitionsToTxn if version <= 3 => {
            let results = per_partition(
                topics,
                |topic, partitions| {
                    AddPartitionsToTxnTopicResult::default()
                        .with_name(name(topic))
                        .with_results_by_partition(partitions)
                },
                |t, p| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(p)
                        .with_partition_error_code(code(t))
                },
            );
            let body =
                AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
            response_frame(api, version, correlation_id, &body)
        }
        _ => Err(refuse("not a partitioned API")),
    }
}

/// A whole response frame refusing every topic of a topic-administration
/// request (CreateTopics, DeleteTopics or CreatePartitions) with
/// `error_code` and `message`, so the proxy can refuse one it cannot route.
pub fn topic_error_response(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    names: &[String],
    error_code: i16,
    message: &str,
) -> Result<Bytes, CodecError> {
    let name = |topic: &str| TopicName(StrBytes::from_string(topic.to_owned()));
    let message = Some(StrBytes::from_string(message.to_owned()));
    match api {
        ApiKey::CreateTopics => {
            let topics = names
                .iter()
                .map(|n| {
                    CreatableTopicResult::default()
                        .with_name(name(n))
                        .with_error_code(error_code)
                        .with_error_message(message.clone())
                        .with_num_partitions(-1)
                        .with_replication_factor(-1)
                })
                .collect();
            let body = CreateTopicsResponse::default().with_topics(topics);
            response_frame(api, version, correlation_id, &body)
        }
        ApiKey::DeleteTopics => {
            let responses = names
                .iter()
                .map(|n| {
                    DeletableTopicResult::default()
                        .with_name(Some(name(n)))
                        .with_error_code(error_code)
                        .with_error_message(message.clone())
                })
                .collect();
            let body = DeleteTopicsResponse::default().with_responses(responses);
            response_frame(api, version, correlation_id, &body)
        }
        ApiKey::CreatePartitions => {
            let results = names
                .iter()
                .map(|n| {
                    CreatePartitionsTopicResult::default()
                        .with_name(name(n))
                        .with_error_code(error_code)
                        .with_error_message(message.clone())
                })
                .collect();
            let body = CreatePartitionsResponse::default().with_results(results);
            response_frame(api, version, correlation_id, &body)
        }
        _ => Err(CodecError::Encode {
            api,
            version,
            message: "not a topic-administration API".to_owned(),
        }),
    }
}

/// One response entry per topic, each holding one entry per partition, in
/// request order.
fn per_partition<T, P>(
    topics: &TopicPartitions,
    topic: impl Fn(&str, Vec<P>) -> T,
    partition: impl Fn(&str, i32) -> P,
) -> Vec<T> {
    topics
        .0
        .iter()
        .map(|(name, partitions)| {
            topic(
                name,
                partitions.iter().map(|&p| partition(name, p)).collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::codec::decode_response;
    use crate::wire::frame::Frame;
    use kafka_protocol::ResponseError;

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
}

#[cfg(test)]
mod topic_error_tests {
    use super::*;
    use crate::wire::codec::decode_response;
    use crate::wire::frame::Frame;

    #[test]
    fn every_topic_carries_the_error_and_message() {
        let names = vec!["a".to_owned(), "b".to_owned()];
        for v in 2..=6 {
            let f =
                Frame(topic_error_response(ApiKey::CreateTopics, v, 9, &names, 42, "why").unwrap());
            assert_eq!(f.response_correlation_id(), Some(9));
            let r: CreateTopicsResponse = decode_response(ApiKey::CreateTopics, v, &f).unwrap();
            assert!(r.topics.iter().all(|t| t.error_code == 42));
            assert_eq!(r.topics[1].name.as_str(), "b");
            assert_eq!(r.topics[0].error_message.as_deref(), Some("why"));
        }
        for v in 1..=5 {
            let f =
                Frame(topic_error_response(ApiKey::DeleteTopics, v, 9, &names, 42, "why").unwrap());
            let r: DeleteTopicsResponse = decode_response(ApiKey::DeleteTopics, v, &f).unwrap();
            assert_eq!(r.responses.len(), 2);
            assert!(r.responses.iter().all(|t| t.error_code == 42));
        }
        for v in 0..=3 {
            let f = Frame(
                topic_error_response(ApiKey::CreatePartitions, v, 9, &names, 42, "why").unwrap(),
            );
            let r: CreatePartitionsResponse =
                decode_response(ApiKey::CreatePartitions, v, &f).unwrap();
            assert!(r
                .results
                .iter()
                .all(|t| t.error_code == 42 && t.error_message.as_deref() == Some("why")));
        }
        assert!(topic_error_response(ApiKey::Produce, 7, 9, &names, 42, "why").is_err());
    }
}
