//! Whole messages the proxy builds or reads in full with `kafka-protocol`:
//! its own answers to clients, its own requests to upstream brokers and
//! their answers.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader as KpRequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::bounded;
use super::frame::Frame;
use super::reader::{Reader, WireError};

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("cannot encode {api:?} v{version}: {message}")]
    Encode {
        api: ApiKey,
        version: i16,
        message: String,
    },
    #[error("cannot decode {api:?} v{version} response: {message}")]
    Decode {
        api: ApiKey,
        version: i16,
        message: String,
    },
    #[error(transparent)]
    Wire(#[from] WireError),
}

impl CodecError {
    /// Why a frame of `api` at `version` cannot be built.
    pub fn encode(api: ApiKey, version: i16, message: impl Into<String>) -> CodecError {
        CodecError::Encode {
            api,
            version,
            message: message.into(),
        }
    }
}

fn with_size_prefix(
    build: impl FnOnce(&mut BytesMut) -> anyhow::Result<()>,
) -> anyhow::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    build(&mut buf)?;
    let size = i32::try_from(buf.len() - Frame::PREFIX)?;
    buf[..Frame::PREFIX].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// A response frame for a client: size, header (with the client's
/// correlation id), body in the client's version.
pub fn response_frame<R: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<Bytes, CodecError> {
    with_size_prefix(|buf| {
        buf.put_i32(correlation_id);
        if api.response_header_version(version) >= 1 {
            buf.put_u8(0); // no tagged fields
        }
        body.encode(buf, version)
    })
    .map_err(|e| CodecError::Encode {
        api,
        version,
        message: e.to_string(),
    })
}

/// A request frame the proxy sends upstream on its own behalf.
pub fn request_frame<R: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<Bytes, CodecError> {
    let header = KpRequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("switchyard")));
    with_size_prefix(|buf| {
        header.encode(buf, api.request_header_version(version))?;
        body.encode(buf, version)
    })
    .map_err(|e| CodecError::Encode {
        api,
        version,
        message: e.to_string(),
    })
}

/// The body of an upstream response frame, after its header, checked by
/// [`bounded::check_response`]: the only way to an upstream body meant for
/// a `kafka-protocol` decoder, so no count in it outgrows the frame.
pub fn response_body(api: ApiKey, version: i16, frame: &Frame) -> Result<Bytes, CodecError> {
    let body = frame.0.slice(body_start(api, version, frame)?..);
    bounded::check_response(api, version, &body)?;
    Ok(body)
}

/// Where a response frame's body starts, past its header (correlation id,
/// and tagged fields in flexible versions).
pub fn body_start(api: ApiKey, version: i16, frame: &Frame) -> Result<usize, WireError> {
    let mut r = Reader::new(frame.body(), "response header");
    r.i32()?;
    if api.response_header_version(version) >= 1 {
        r.skip_tagged_fields()?;
    }
    Ok(Frame::PREFIX + r.position())
}

/// Decodes the body of an upstream response frame.
pub fn decode_response<R: Decodable>(
    api: ApiKey,
    version: i16,
    frame: &Frame,
) -> Result<R, CodecError> {
    let mut rest = response_body(api, version, frame)?;
    let decoded = R::decode(&mut rest, version).map_err(|e| CodecError::Decode {
        api,
        version,
        message: e.to_string(),
    })?;
    if rest.has_remaining() {
        tracing::debug!(
            ?api,
            version,
            left = rest.remaining(),
            "response had trailing bytes"
        );
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::MetadataResponse;

    #[test]
    fn response_frame_round_trips() {
        let resp =
            MetadataResponse::default().with_cluster_id(Some(StrBytes::from_static_str("sy")));
        for version in [2, 9, 12] {
            let bytes = response_frame(ApiKey::Metadata, version, 42, &resp).unwrap();
            let frame = Frame(bytes);
            assert_eq!(frame.response_correlation_id(), Some(42));
            assert_eq!(frame.body().len() + 4, frame.0.len());
            let back: MetadataResponse =
                decode_response(ApiKey::Metadata, version, &frame).unwrap();
            assert_eq!(back.cluster_id.as_deref(), Some("sy"));
        }
    }
}
