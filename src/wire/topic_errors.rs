//! Error answers to topic-administration requests, built by the proxy
//! itself so that it can refuse a request without forwarding it.

use bytes::Bytes;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsResponse, CreateTopicsResponse, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::codec::{response_frame, CodecError};

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
        _ => Err(CodecError::encode(
            api,
            version,
            "not a topic-administration API",
        )),
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
