//! A client request, read once: its frame, its header, its entry in the
//! API table and, for a partitioned API, its view. Auth, planning and the
//! split all read this one parse.

use super::end::SessionEnd;
use crate::plan::classify::{self, ApiSpec, RouteClass};
use crate::plan::partitioned::{Family, PartitionedRequest};
use crate::wire::{Frame, RequestHeader};

pub(super) struct Request {
    pub frame: Frame,
    pub header: RequestHeader,
    pub spec: &'static ApiSpec,
    /// The view of a partitioned request (its class says which).
    pub partitioned: Option<PartitionedRequest>,
}

impl Request {
    /// Reads `frame`: an API or version the proxy does not speak, or a
    /// body its view refuses, ends the session.
    pub fn read(frame: Frame) -> Result<Request, SessionEnd> {
        let header = RequestHeader::parse(frame.body())?;
        let unsupported = || SessionEnd::Unsupported {
            api_key: header.api_key,
            version: header.api_version,
        };
        let spec = classify::spec(header.api_key).ok_or_else(unsupported)?;
        // ApiVersions must answer any version (with an error when too new).
        if spec.key != kafka_protocol::messages::ApiKey::ApiVersions
            && !(spec.min..=spec.max).contains(&header.api_version)
        {
            return Err(unsupported());
        }
        let partitioned = match spec.class {
            RouteClass::Partitioned(_) => {
                let family = Family::of_api(spec.key).ok_or_else(unsupported)?;
                let body = &frame.body()[header.body_offset..];
                Some(family.parse(&header, body)?)
            }
            _ => None,
        };
        Ok(Request {
            frame,
            header,
            spec,
            partitioned,
        })
    }

    /// The request body, after the header.
    pub fn body(&self) -> &[u8] {
        &self.frame.body()[self.header.body_offset..]
    }
}
