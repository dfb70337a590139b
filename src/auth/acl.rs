//! Per-user allow-lists (`[[users]]` `topics` and `groups`), checked on
//! each request of an authenticated client before it is served.
//!
//! A user without allow-lists costs nothing here: no body is read. A
//! refused request is answered the way a Kafka broker answers a missing
//! ACL: TOPIC_AUTHORIZATION_FAILED (29) per denied topic or partition,
//! GROUP_AUTHORIZATION_FAILED (30) for a denied group. Where an answer
//! cannot carry that error, the connection is closed instead: the proxy
//! fails closed, never open.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{
    ApiKey, HeartbeatResponse, JoinGroupResponse, LeaveGroupResponse, MetadataResponse,
    OffsetFetchResponse, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::ResponseError;

use super::{AuthError, ClientAuth, User};
use crate::runtime::proxy::Proxy;
use crate::wire::codec;
use crate::wire::partition_errors::{partition_error_response_by, topic_error_response};
use crate::wire::requests::{self, MetadataRequestView, ProduceView, TopicPartitions};
use crate::wire::{Frame, Reader, RequestHeader};

impl User {
    /// Whether any allow-list applies: without one, requests are not read.
    pub fn restricted(&self) -> bool {
        self.topics.is_some() || self.groups.is_some()
    }

    pub fn may_use_topic(&self, topic: &str) -> bool {
        self.topics
            .as_ref()
            .is_none_or(|list| list.iter().any(|p| p.matches(topic)))
    }

    pub fn may_use_group(&self, group: &str) -> bool {
        self.groups
            .as_ref()
            .is_none_or(|list| list.iter().any(|p| p.matches(group)))
    }
}

/// `Ok(None)`: serve the request. `Ok(Some(answer))`: send `answer`
/// instead. `Err`: close the connection.
pub fn check(
    user: &User,
    api: ApiKey,
    header: &RequestHeader,
    body: &[u8],
) -> Result<Option<Bytes>, AuthError> {
    if !user.restricted() {
        return Ok(None);
    }
    if user.topics.is_some() {
        if let Some(answer) = check_topics(user, api, header, body)? {
            return Ok(Some(answer));
        }
    }
    if user.groups.is_some() {
        return check_groups(user, api, header, body);
    }
    Ok(None)
}

fn denied(user: &User, what: String) -> AuthError {
    AuthError::Denied {
        user: user.name.clone(),
        what,
    }
}

fn check_topics(
    user: &User,
    api: ApiKey,
    header: &RequestHeader,
    body: &[u8],
) -> Result<Option<Bytes>, AuthError> {
    let (topics, acks): (TopicPartitions, i16) = match api {
        ApiKey::Produce => {
            let view = ProduceView::parse(header, body)?;
            (view.topics, view.acks)
        }
        ApiKey::Fetch => (requests::fetch_topics(header, body)?, 1),
        ApiKey::ListOffsets => (requests::list_offsets_topics(header, body)?, 1),
        ApiKey::OffsetForLeaderEpoch => {
            (requests::offset_for_leader_epoch_topics(header, body)?, 1)
        }
        ApiKey::CreateTopics | ApiKey::DeleteTopics | ApiKey::CreatePartitions => {
            let names = requests::admin_topic_names(header, body)?;
            let Some(bad) = names.iter().find(|n| !user.may_use_topic(n)) else {
                return Ok(None);
            };
            let message = format!(
                "topic '{bad}' is not in the allow-list of user '{}'",
                user.name
            );
            return Ok(Some(topic_error_response(
                api,
                header.api_version,
                header.correlation_id,
                &names,
                ResponseError::TopicAuthorizationFailed.code(),
                &message,
            )?));
        }
        _ => return Ok(None),
    };
    let Some((bad, _)) = topics.0.iter().find(|(t, _)| !user.may_use_topic(t)) else {
        return Ok(None);
    };
    if acks == 0 {
        // acks=0 has no answer to carry the error: close, as Kafka does.
        return Err(denied(user, format!("acks=0 Produce to topic '{bad}'")));
    }
    let code = |t: &str| {
        if user.may_use_topic(t) {
            ResponseError::NotLeaderOrFollower.code()
        } else {
            ResponseError::TopicAuthorizationFailed.code()
        }
    };
    Ok(Some(partition_error_response_by(
        api,
        header.api_version,
        header.correlation_id,
        &topics,
        &code,
    )?))
}

/// Metadata for a user with a topic allow-list, as Kafka answers it: a
/// request for every topic lists only the allowed ones; a topic asked for
/// by name that is not allowed comes back TOPIC_AUTHORIZATION_FAILED, and
/// is never asked of (or auto-created on) a cluster.
pub async fn metadata(
    proxy: Arc<Proxy>,
    user: &User,
    header: &RequestHeader,
    body: &[u8],
) -> Result<Bytes, AuthError> {
    let mut view = MetadataRequestView::parse(header, body)?;
    let every_topic = view.topics.is_none();
    let mut refused = Vec::new();
    if let Some(topics) = &mut view.topics {
        topics.retain(|t| match &t.name {
            Some(name) if !user.may_use_topic(name) => {
                refused.push(name.clone());
                false
            }
            _ => true,
        });
    }
    let (version, corr) = (header.api_version, header.correlation_id);
    let answer = crate::handlers::metadata::metadata(proxy, header.clone(), view).await?;
    // The proxy's own answer, decoded again to be filtered: no client
    // byte is in it.
    let mut resp: MetadataResponse =
        codec::decode_response(ApiKey::Metadata, version, &Frame(answer))?;
    let denied =
        |t: &MetadataResponseTopic| t.name.as_ref().is_some_and(|n| !user.may_use_topic(n));
    if every_topic {
        resp.topics.retain(|t| !denied(t));
    } else {
        // Topics asked for by id only are judged by the name they turn
        // out to have.
        for t in resp.topics.iter_mut().filter(|t| denied(t)) {
            *t = refusal(t.name.clone());
        }
        resp.topics.extend(
            refused
                .into_iter()
                .map(|n| refusal(Some(TopicName(StrBytes::from_string(n))))),
        );
    }
    Ok(codec::response_frame(
        ApiKey::Metadata,
        version,
        corr,
        &resp,
    )?)
}

fn refusal(name: Option<TopicName>) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name)
        .with_error_code(ResponseError::TopicAuthorizationFailed.code())
}

/// The group ids a group request names: the first field of the
/// single-group APIs, or the list of DescribeGroups, DeleteGroups and
/// OffsetFetch v8+.
fn group_ids<'a>(
    api: ApiKey,
    header: &RequestHeader,
    body: &'a [u8],
) -> Result<Vec<&'a str>, AuthError> {
    let flexible = header.is_flexible();
    let mut r = Reader::new(body, "group request");
    let list = |r: &mut Reader<'a>| -> Result<Vec<&'a str>, AuthError> {
        let n = r.array_len(flexible, 1)?.unwrap_or(0);
        (0..n).map(|_| Ok(r.string(flexible)?)).collect()
    };
    Ok(match api {
        ApiKey::JoinGroup
        | ApiKey::SyncGroup
        | ApiKey::Heartbeat
        | ApiKey::LeaveGroup
        | ApiKey::OffsetCommit => vec![r.string(flexible)?],
        ApiKey::OffsetFetch if header.api_version < 8 => vec![r.string(flexible)?],
        ApiKey::DescribeGroups | ApiKey::DeleteGroups => list(&mut r)?,
        ApiKey::OffsetFetch => {
            // v8+: groups [group_id, topics [...]]; only the ids matter,
            // and each entry's topics are skipped by reading them.
            let n = r.array_len(flexible, 2)?.unwrap_or(0);
            let mut ids = Vec::with_capacity(n);
            for _ in 0..n {
                ids.push(r.string(flexible)?);
                if let Some(topics) = r.array_len(flexible, 2)? {
                    for _ in 0..topics {
                        r.string(flexible)?;
                        let partitions = r.array_len(flexible, 4)?.unwrap_or(0);
                        r.bytes(partitions * 4)?;
                        r.skip_tagged_fields()?;
                    }
                }
                r.skip_tagged_fields()?;
            }
            ids
        }
        _ => Vec::new(),
    })
}

/// The answer to `header`'s request, in its version.
fn reply<R: Encodable>(api: ApiKey, header: &RequestHeader, body: &R) -> Result<Bytes, AuthError> {
    Ok(codec::response_frame(
        api,
        header.api_version,
        header.correlation_id,
        body,
    )?)
}

fn check_groups(
    user: &User,
    api: ApiKey,
    header: &RequestHeader,
    body: &[u8],
) -> Result<Option<Bytes>, AuthError> {
    let ids = group_ids(api, header, body)?;
    let Some(bad) = ids.into_iter().find(|g| !user.may_use_group(g)) else {
        return Ok(None);
    };
    let e = ResponseError::GroupAuthorizationFailed.code();
    let answer = match api {
        ApiKey::JoinGroup => reply(
            api,
            header,
            &JoinGroupResponse::default()
                .with_error_code(e)
                .with_generation_id(-1),
        )?,
        ApiKey::SyncGroup => reply(
            api,
            header,
            &SyncGroupResponse::default().with_error_code(e),
        )?,
        ApiKey::Heartbeat => reply(
            api,
            header,
            &HeartbeatResponse::default().with_error_code(e),
        )?,
        ApiKey::LeaveGroup => reply(
            api,
            header,
            &LeaveGroupResponse::default().with_error_code(e),
        )?,
        ApiKey::OffsetFetch if (2..8).contains(&header.api_version) => reply(
            api,
            header,
            &OffsetFetchResponse::default().with_error_code(e),
        )?,
        // OffsetCommit answers per partition, OffsetFetch v0-1 and v8+,
        // DescribeGroups and DeleteGroups per group: not built here yet,
        // so the connection is closed instead.
        _ => return Err(denied(user, format!("{api:?} for group '{bad}'"))),
    };
    Ok(Some(answer))
}

/// Checks an authenticated client's request against its user's
/// allow-lists: `Some(answer)` answers it instead (a refusal, or
/// Metadata filtered to what the user may see), an error closes the
/// connection. Costs nothing for users without lists.
pub async fn authorize(
    auth: &ClientAuth,
    proxy: &Arc<Proxy>,
    api: kafka_protocol::messages::ApiKey,
    header: &crate::wire::RequestHeader,
    body: &[u8],
) -> Result<Option<Bytes>, AuthError> {
    match auth.user() {
        // Answered here, in the read loop: a restricted user's
        // Metadata waits for the cluster before the next request is
        // read, which keeps the answers in order.
        Some(user)
            if user.topics.is_some() && api == kafka_protocol::messages::ApiKey::Metadata =>
        {
            metadata(proxy.clone(), user, header, body).await.map(Some)
        }
        Some(user) if user.restricted() => check(user, api, header, body),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::credentials::{Credential, Mechanism};
    use crate::domain::pattern::Pattern;
    use crate::wire::codec::decode_response;
    use crate::wire::Frame;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, FetchResponse, HeartbeatRequest, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn carol() -> User {
        let mut u = User::new("carol", Credential::generate(Mechanism::Plain, "pw", 4096));
        u.topics = Some(vec![
            Pattern::new("orders").unwrap(),
            Pattern::new("pay.*").unwrap(),
        ]);
        u.groups = Some(vec![Pattern::new("billing-*").unwrap()]);
        u
    }

    fn request<R: Encodable>(api: ApiKey, version: i16, body: &R) -> (RequestHeader, Vec<u8>) {
        let frame = codec::request_frame(api, version, 5, body).unwrap();
        let header = RequestHeader::parse(&frame[4..]).unwrap();
        (header.clone(), frame[4 + header.body_offset..].to_vec())
    }

    fn fetch(topics: &[&str]) -> FetchRequest {
        FetchRequest::default().with_topics(
            topics
                .iter()
                .map(|t| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string((*t).to_owned())))
                        .with_partitions(vec![FetchPartition::default().with_partition(0)])
                })
                .collect(),
        )
    }

    #[test]
    fn denied_topic_gets_29_and_its_allowed_neighbours_a_retry() {
        let (h, b) = request(ApiKey::Fetch, 11, &fetch(&["pay.eu", "secret"]));
        let answer = check(&carol(), ApiKey::Fetch, &h, &b).unwrap().unwrap();
        let resp: FetchResponse = decode_response(ApiKey::Fetch, 11, &Frame(answer)).unwrap();
        let codes: Vec<(String, i16)> = resp
            .responses
            .iter()
            .map(|t| (t.topic.to_string(), t.partitions[0].error_code))
            .collect();
        assert_eq!(
            codes,
            vec![
                ("pay.eu".into(), ResponseError::NotLeaderOrFollower.code()),
                (
                    "secret".into(),
                    ResponseError::TopicAuthorizationFailed.code()
                )
            ]
        );
        let (h, b) = request(ApiKey::Fetch, 11, &fetch(&["orders", "pay.us"]));
        assert!(check(&carol(), ApiKey::Fetch, &h, &b).unwrap().is_none());
    }

    #[test]
    fn denied_group_gets_30_and_allowed_group_passes() {
        for (group, denied) in [("billing-eu", false), ("fraud", true)] {
            let (h, b) = request(
                ApiKey::Heartbeat,
                4,
                &HeartbeatRequest::default().with_group_id(kafka_protocol::messages::GroupId(
                    StrBytes::from_string(group.into()),
                )),
            );
            let answer = check(&carol(), ApiKey::Heartbeat, &h, &b).unwrap();
            assert_eq!(answer.is_some(), denied, "{group}");
            if let Some(a) = answer {
                let resp: HeartbeatResponse =
                    decode_response(ApiKey::Heartbeat, 4, &Frame(a)).unwrap();
                assert_eq!(
                    resp.error_code,
                    ResponseError::GroupAuthorizationFailed.code()
                );
            }
        }
    }

    #[test]
    fn unrestricted_user_is_not_read_at_all() {
        let u = User::new("dave", Credential::generate(Mechanism::Plain, "pw", 4096));
        // Not even a valid body: nothing is parsed for a user without lists.
        let h = RequestHeader::parse(&[0, 1, 0, 11, 0, 0, 0, 1, 0xff, 0xff]).unwrap();
        assert!(check(&u, ApiKey::Fetch, &h, &[0xff]).unwrap().is_none());
    }
}
