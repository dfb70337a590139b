//! ApiVersions: answered by the proxy, advertising only what it can route.

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::ResponseError;

use super::advertised_range;
use crate::plan::classify::APIS;
use crate::runtime::proxy::Proxy;
use crate::wire::codec::{self, CodecError};
use crate::wire::RequestHeader;

const NEWEST: i16 = 4;

pub fn answer(proxy: &Proxy, header: &RequestHeader) -> Result<Bytes, CodecError> {
    let api_keys = APIS
        .iter()
        .filter_map(|spec| {
            let (min, max) = advertised_range(proxy, spec)?;
            Some(
                ApiVersion::default()
                    .with_api_key(spec.key as i16)
                    .with_min_version(min)
                    .with_max_version(max),
            )
        })
        .chain(crate::auth::sasl::advertised_apis(
            proxy.security().sasl_enabled(),
        ))
        .collect();
    // A client that asks in a version the proxy does not speak gets the v0
    // form with UNSUPPORTED_VERSION, and retries with a version from the list.
    let (version, error_code) = if header.api_version > NEWEST || header.api_version < 0 {
        (0, ResponseError::UnsupportedVersion.code())
    } else {
        (header.api_version, 0)
    };
    let response = ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys);
    codec::response_frame(
        ApiKey::ApiVersions,
        version,
        header.correlation_id,
        &response,
    )
}
