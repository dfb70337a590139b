//! Fetch on its way upstream. Every Fetch the proxy forwards runs outside
//! any fetch session (KIP-227): a session lives on one upstream broker, and
//! the proxy may send a client's next Fetch to another broker (after a
//! flip) or split it across several.

use bytes::BytesMut;

use crate::wire::RequestHeader;

/// Where session id and epoch sit in a Fetch v7+ body: after replica id,
/// max wait, min bytes, max bytes and isolation level.
const SESSION_AT: usize = 17;
/// The epoch that asks for a full fetch and no session.
const FINAL_EPOCH: i32 = -1;

/// A copy of `frame` that asks for no fetch session, or `None` when it
/// already does not create one (`body_at` is where the body starts).
///
/// A request that would open a session (id 0, epoch 0) gets epoch -1
/// instead, so the broker answers in full and keeps no session; the client
/// sees session id 0 in the answer and keeps sending full requests.
pub fn sessionless(frame: &[u8], header: &RequestHeader, body_at: usize) -> Option<BytesMut> {
    if header.api_version < 7 {
        return None; // sessions begin at v7
    }
    let at = body_at + SESSION_AT;
    let session = frame.get(at..at + 8)?;
    if session != [0, 0, 0, 0, 0, 0, 0, 0] {
        return None; // already sessionless (-1), or a session it holds
    }
    let mut copy = BytesMut::from(frame);
    copy[at + 4..at + 8].copy_from_slice(&FINAL_EPOCH.to_be_bytes());
    Some(copy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::messages::{ApiKey, FetchRequest};
    use kafka_protocol::protocol::{Decodable, Encodable};

    fn fetch(version: i16, session_id: i32, epoch: i32) -> (Bytes, RequestHeader) {
        let request = FetchRequest::default()
            .with_max_wait_ms(500)
            .with_session_id(session_id)
            .with_session_epoch(epoch);
        let mut body = BytesMut::new();
        request.encode(&mut body, version).unwrap();
        let header = RequestHeader {
            api_key: ApiKey::Fetch as i16,
            api_version: version,
            correlation_id: 7,
            client_id: None,
            body_offset: 0,
        };
        (body.freeze(), header)
    }

    #[test]
    fn a_request_opening_a_session_asks_for_none() {
        for version in [7, 11, 12] {
            let (frame, header) = fetch(version, 0, 0);
            let copy = sessionless(&frame, &header, 0).expect("rewritten");
            let back = FetchRequest::decode(&mut copy.freeze(), version).unwrap();
            assert_eq!((back.session_id, back.session_epoch), (0, -1));
            assert_eq!(back.max_wait_ms, 500);
        }
    }

    #[test]
    fn sessionless_and_old_requests_pass_untouched() {
        let (frame, header) = fetch(12, 0, -1);
        assert!(sessionless(&frame, &header, 0).is_none());
        let (frame, header) = fetch(6, 0, 0);
        assert!(sessionless(&frame, &header, 0).is_none());
    }
}
