//! An upstream broker's answer to anything the proxy decodes, through the
//! two ways it is decoded: whole (`decode_response`, as the proxy's own
//! calls do) and topic by topic (a partitioned API's merge, as split requests do).
//! Both go through the bounded walk first, so a hostile count must come
//! back as an error: an abort here is a hole in the walk.
#![no_main]

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use libfuzzer_sys::fuzz_target;
use switchyard::plan::partitioned::Family;
use switchyard::plan::split;
use switchyard::wire::codec::decode_response;
use switchyard::wire::requests::TopicPartitions;
use switchyard::wire::Frame;

fn decode<R: Decodable>(api: ApiKey, version: i16, frame: &Frame) {
    let _ = decode_response::<R>(api, version, frame);
}

fuzz_target!(|data: &[u8]| {
    let [which, version, body @ ..] = data else {
        return;
    };
    if body.len() > 4096 {
        return;
    }
    let version = (version % 19) as i16;
    let mut framed = Vec::with_capacity(Frame::PREFIX + body.len());
    framed.extend_from_slice(&(body.len() as i32).to_be_bytes());
    framed.extend_from_slice(body);
    let frame = Frame(Bytes::from(framed));
    let api = match which % 22 {
        0 => ApiKey::Metadata,
        1 => ApiKey::ApiVersions,
        2 => ApiKey::FindCoordinator,
        3 => ApiKey::ListOffsets,
        4 => ApiKey::CreateTopics,
        5 => ApiKey::DeleteTopics,
        6 => ApiKey::InitProducerId,
        7 => ApiKey::OffsetFetch,
        8 => ApiKey::OffsetCommit,
        9 => ApiKey::DescribeGroups,
        10 => ApiKey::DescribeConfigs,
        11 => ApiKey::Fetch,
        12 => ApiKey::Produce,
        13 => ApiKey::OffsetForLeaderEpoch,
        14 => ApiKey::SaslHandshake,
        15 => ApiKey::SaslAuthenticate,
        16 => ApiKey::CreatePartitions,
        17 => ApiKey::DescribeCluster,
        18 => ApiKey::Heartbeat,
        19 => ApiKey::JoinGroup,
        20 => ApiKey::SyncGroup,
        _ => ApiKey::LeaveGroup,
    };
    match api {
        ApiKey::Metadata => decode::<MetadataResponse>(api, version, &frame),
        ApiKey::ApiVersions => decode::<ApiVersionsResponse>(api, version, &frame),
        ApiKey::FindCoordinator => decode::<FindCoordinatorResponse>(api, version, &frame),
        ApiKey::ListOffsets => decode::<ListOffsetsResponse>(api, version, &frame),
        ApiKey::CreateTopics => decode::<CreateTopicsResponse>(api, version, &frame),
        ApiKey::DeleteTopics => decode::<DeleteTopicsResponse>(api, version, &frame),
        ApiKey::InitProducerId => decode::<InitProducerIdResponse>(api, version, &frame),
        ApiKey::OffsetFetch => decode::<OffsetFetchResponse>(api, version, &frame),
        ApiKey::OffsetCommit => decode::<OffsetCommitResponse>(api, version, &frame),
        ApiKey::DescribeGroups => decode::<DescribeGroupsResponse>(api, version, &frame),
        ApiKey::DescribeConfigs => decode::<DescribeConfigsResponse>(api, version, &frame),
        ApiKey::Fetch => decode::<FetchResponse>(api, version, &frame),
        ApiKey::Produce => decode::<ProduceResponse>(api, version, &frame),
        ApiKey::OffsetForLeaderEpoch => {
            decode::<OffsetForLeaderEpochResponse>(api, version, &frame)
        }
        ApiKey::SaslHandshake => decode::<SaslHandshakeResponse>(api, version, &frame),
        ApiKey::SaslAuthenticate => decode::<SaslAuthenticateResponse>(api, version, &frame),
        ApiKey::CreatePartitions => decode::<CreatePartitionsResponse>(api, version, &frame),
        ApiKey::DescribeCluster => decode::<DescribeClusterResponse>(api, version, &frame),
        ApiKey::Heartbeat => decode::<HeartbeatResponse>(api, version, &frame),
        ApiKey::JoinGroup => decode::<JoinGroupResponse>(api, version, &frame),
        ApiKey::SyncGroup => decode::<SyncGroupResponse>(api, version, &frame),
        _ => decode::<LeaveGroupResponse>(api, version, &frame),
    }
    // The split path decodes each part's topics one by one.
    if let Some(family) = Family::of_api(api) {
        let order = TopicPartitions::default();
        let merge = split::Merge {
            version,
            correlation_id: 7,
            order: &order,
            shifts: &[],
            fetched: None,
        };
        let _ = family.merge(&merge, &[frame]);
    }
});
