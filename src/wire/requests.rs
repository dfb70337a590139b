//! Shallow views of the requests the proxy reads: only the fields it acts
//! on, parsed with [`Reader`] so that no count is trusted.

use super::header::RequestHeader;
use super::reader::{Reader, WireError};

/// A topic named in a Metadata request: by name, or (v10+) by id alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataTopic {
    pub id: [u8; 16],
    pub name: Option<String>,
}

/// What a client asks of Metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataRequestView {
    /// `None` asks for every topic.
    pub topics: Option<Vec<MetadataTopic>>,
    pub allow_auto_topic_creation: bool,
    pub include_topic_authorized_operations: bool,
}

impl MetadataRequestView {
    pub fn parse(header: &RequestHeader, body: &[u8]) -> Result<Self, WireError> {
        let v = header.api_version;
        let flexible = v >= 9;
        let mut r = Reader::new(body, "Metadata request");
        // Smallest encoding of one topic entry: id (v10+), name length,
        // tagged-field count (flexible).
        let min_topic = if v >= 10 { 18 } else { 2 };
        let topics = match r.array_len(flexible, min_topic)? {
            None => None,
            // Before v1 an empty list means every topic.
            Some(0) if v == 0 => None,
            Some(n) => {
                let mut topics = Vec::with_capacity(n);
                for _ in 0..n {
                    let id = if v >= 10 { r.uuid()? } else { [0; 16] };
                    let name = r.nullable_string(flexible)?.map(str::to_owned);
                    if flexible {
                        r.skip_tagged_fields()?;
                    }
                    if name.is_none() && id == [0; 16] {
                        return Err(r.error("topic with neither a name nor an id"));
                    }
                    topics.push(MetadataTopic { id, name });
                }
                Some(topics)
            }
        };
        let allow_auto_topic_creation = if v >= 4 { r.bool()? } else { true };
        if (8..=10).contains(&v) {
            r.bool()?; // include_cluster_authorized_operations
        }
        let include_topic_authorized_operations = if v >= 8 { r.bool()? } else { false };
        if flexible {
            r.skip_tagged_fields()?;
        }
        Ok(MetadataRequestView {
            topics,
            allow_auto_topic_creation,
            include_topic_authorized_operations,
        })
    }
}

/// What a client asks of FindCoordinator: one key before v4, a batch after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindCoordinatorView {
    /// 0 = consumer group, 1 = transactional id.
    pub key_type: i8,
    pub keys: Vec<String>,
}

impl FindCoordinatorView {
    pub fn parse(header: &RequestHeader, body: &[u8]) -> Result<Self, WireError> {
        let v = header.api_version;
        let flexible = v >= 3;
        let mut r = Reader::new(body, "FindCoordinator request");
        let view = if v >= 4 {
            let key_type = r.i8()?;
            let n = r.array_len(true, 1)?.unwrap_or(0);
            let mut keys = Vec::with_capacity(n);
            for _ in 0..n {
                keys.push(r.string(true)?.to_owned());
            }
            FindCoordinatorView { key_type, keys }
        } else {
            let key = r.string(flexible)?.to_owned();
            let key_type = if v >= 1 { r.i8()? } else { 0 };
            FindCoordinatorView {
                key_type,
                keys: vec![key],
            }
        };
        if flexible {
            r.skip_tagged_fields()?;
        }
        Ok(view)
    }
}

/// What a client asks of DescribeCluster (always flexible).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeClusterView {
    /// 1 = brokers, 2 = controllers (v1+).
    pub endpoint_type: i8,
}

impl DescribeClusterView {
    pub fn parse(header: &RequestHeader, body: &[u8]) -> Result<Self, WireError> {
        let v = header.api_version;
        let mut r = Reader::new(body, "DescribeCluster request");
        r.bool()?; // include_cluster_authorized_operations
        let endpoint_type = if v >= 1 { r.i8()? } else { 1 };
        if v >= 2 {
            r.bool()?; // include_fenced_brokers
        }
        r.skip_tagged_fields()?;
        Ok(DescribeClusterView { endpoint_type })
    }
}

/// The `acks` of a Produce request: 0 means the client expects no response.
pub fn produce_acks(header: &RequestHeader, body: &[u8]) -> Result<i16, WireError> {
    let v = header.api_version;
    let mut r = Reader::new(body, "Produce request");
    if v >= 3 {
        r.nullable_string(v >= 9)?; // transactional_id
    }
    r.i16()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(api_key: i16, api_version: i16) -> RequestHeader {
        RequestHeader {
            api_key,
            api_version,
            correlation_id: 1,
            client_id: None,
            body_offset: 0,
        }
    }

    #[test]
    fn metadata_bomb_is_refused() {
        // topics count 2^31-1 with nothing behind it.
        let body = [0x7f, 0xff, 0xff, 0xff, 0x01];
        let e = MetadataRequestView::parse(&header(3, 4), &body).unwrap_err();
        assert!(
            e.to_string().contains("array claims 2147483647 elements"),
            "{e}"
        );
        // The compact (flexible) form of the same lie.
        let body = [0xff, 0xff, 0xff, 0xff, 0x07, 0x01];
        assert!(MetadataRequestView::parse(&header(3, 12), &body).is_err());
    }

    #[test]
    fn metadata_v1_null_is_all_and_v0_empty_is_all() {
        let all = MetadataRequestView::parse(&header(3, 1), &[0xff, 0xff, 0xff, 0xff]).unwrap();
        assert_eq!(all.topics, None);
        let v0 = MetadataRequestView::parse(&header(3, 0), &[0, 0, 0, 0]).unwrap();
        assert_eq!(v0.topics, None);
        let none = MetadataRequestView::parse(&header(3, 1), &[0, 0, 0, 0]).unwrap();
        assert_eq!(none.topics, Some(vec![]));
    }

    #[test]
    fn metadata_v12_topic_by_name() {
        let mut body = vec![2]; // one topic
        body.extend_from_slice(&[0; 16]);
        body.extend_from_slice(&[4, b'a', b'b', b'c', 0]); // name "abc", no tags
        body.extend_from_slice(&[1, 0, 0]); // auto-create, topic ops, no tags
        let m = MetadataRequestView::parse(&header(3, 12), &body).unwrap();
        let topics = m.topics.unwrap();
        assert_eq!(topics[0].name.as_deref(), Some("abc"));
        assert!(m.allow_auto_topic_creation);
    }

    #[test]
    fn find_coordinator_single_and_batched() {
        let body = [0, 1, b'g', 0];
        let v1 = FindCoordinatorView::parse(&header(10, 1), &body).unwrap();
        assert_eq!((v1.key_type, v1.keys), (0, vec!["g".to_owned()]));
        let body = [1, 3, 2, b'a', 2, b'b', 0];
        let v4 = FindCoordinatorView::parse(&header(10, 4), &body).unwrap();
        assert_eq!(
            (v4.key_type, v4.keys),
            (1, vec!["a".to_owned(), "b".to_owned()])
        );
    }

    #[test]
    fn produce_acks_by_version() {
        assert_eq!(produce_acks(&header(0, 2), &[0xff, 0xff]).unwrap(), -1);
        assert_eq!(produce_acks(&header(0, 7), &[0xff, 0xff, 0, 0]).unwrap(), 0);
        assert_eq!(produce_acks(&header(0, 9), &[0, 0, 1]).unwrap(), 1);
    }
}
