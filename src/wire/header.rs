//! The request header: enough of every request to decide what to do with it.

use kafka_protocol::messages::ApiKey;

use super::reader::{Reader, WireError};

/// A parsed request header; `body_offset` is where the request body starts
/// inside the frame body (after the size prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    pub body_offset: usize,
}

impl RequestHeader {
    /// Parses a header from a frame body. API keys this crate does not know
    /// are parsed as header v1, which every Kafka request header starts with.
    pub fn parse(body: &[u8]) -> Result<RequestHeader, WireError> {
        let mut r = Reader::new(body, "request header");
        let api_key = r.i16()?;
        let api_version = r.i16()?;
        let correlation_id = r.i32()?;
        let header_version = ApiKey::try_from(api_key)
            .map(|k| k.request_header_version(api_version))
            .unwrap_or(1);
        let client_id = if header_version >= 1 {
            // client_id stays a classic nullable string even in header v2.
            r.nullable_string(false)?.map(str::to_owned)
        } else {
            None
        };
        if header_version >= 2 {
            r.skip_tagged_fields()?;
        }
        Ok(RequestHeader {
            api_key,
            api_version,
            correlation_id,
            client_id,
            body_offset: r.position(),
        })
    }

    /// Whether the request body uses the flexible (compact) encoding.
    pub fn is_flexible(&self) -> bool {
        ApiKey::try_from(self.api_key)
            .map(|k| k.request_header_version(self.api_version) >= 2)
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v1_and_v2_headers() {
        // Metadata v1: header v1.
        let v1 = [0, 3, 0, 1, 0, 0, 0, 7, 0, 2, b'c', b'1', 0xAA];
        let h = RequestHeader::parse(&v1).unwrap();
        assert_eq!((h.api_key, h.api_version, h.correlation_id), (3, 1, 7));
        assert_eq!(h.client_id.as_deref(), Some("c1"));
        assert_eq!(h.body_offset, 12);
        assert!(!h.is_flexible());
        // Metadata v9: header v2, null client id, no tagged fields.
        let v2 = [0, 3, 0, 9, 0, 0, 0, 8, 0xff, 0xff, 0, 0xBB];
        let h = RequestHeader::parse(&v2).unwrap();
        assert_eq!(h.client_id, None);
        assert_eq!(h.body_offset, 11);
        assert!(h.is_flexible());
    }

    #[test]
    fn truncated_header_is_an_error_not_a_panic() {
        for len in 0..10 {
            let bytes = [0, 3, 0, 1, 0, 0, 0, 7, 0, 5][..len].to_vec();
            assert!(RequestHeader::parse(&bytes).is_err(), "len {len}");
        }
    }
}
