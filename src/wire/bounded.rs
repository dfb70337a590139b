//! A bounded walk over an upstream response body, done before
//! `kafka-protocol` decodes it.
//!
//! `kafka-protocol` sizes every array from the count on the wire before it
//! reads a single element, and a failed allocation aborts the whole
//! process. So a broken or hostile broker could take the proxy down with
//! one answer. This walk reads the same fields, in the same order and
//! encoding, as the generated decoder (the layouts in
//! [`super::response_layouts`] are read off that decoder), and refuses
//! the body when any count claims more elements than the bytes left could
//! hold. What passes can be decoded without a count ever outgrowing the
//! frame it came in. The same walk tells a [`Visit`] where each field
//! sits, for what reads or patches a few fields of an answer in place of
//! decoding it (the error codes counted, a Fetch answer's offsets).

use std::ops::Range;

use kafka_protocol::messages::ApiKey;

use super::layout::{Kind, Layout};
use super::reader::{Reader, WireError};
use super::response_layouts::response_layout;

fn holds(mask: u32, version: i16) -> bool {
    (0..32).contains(&version) && mask & (1 << version) != 0
}

/// Checks an upstream response body for `api` at `version` before any
/// decoder sees it: every string, bytes and array length is weighed against
/// the bytes left. Trailing bytes are left alone, as the decoder leaves
/// them.
pub fn check_response(api: ApiKey, version: i16, body: &[u8]) -> Result<(), WireError> {
    checked_walk(api, version, body, &mut Walked)
}

/// [`visit_response`], its errors saying the body was refused unread.
pub fn checked_walk(
    api: ApiKey,
    version: i16,
    body: &[u8],
    visit: &mut dyn Visit,
) -> Result<(), WireError> {
    layout_of(api)?;
    visit_response(api, version, body, visit).map_err(|e| WireError {
        what: e.what,
        detail: format!(
            "{} (refused before decoding; check that the upstream is a healthy Kafka broker)",
            e.detail
        ),
    })
}

/// Every non-zero `error_code` a response body for `api` at `version`
/// carries (the top-level one and each topic's, partition's, group's...),
/// each passed to `found`, in wire order. `false` when the proxy has no
/// layout for `api` or the body does not walk (nothing is counted then
/// beyond what was found).
pub fn error_codes(api: ApiKey, version: i16, body: &[u8], found: &mut dyn FnMut(i16)) -> bool {
    let mut codes = ErrorCodes { body, found };
    visit_response(api, version, body, &mut codes).is_ok()
}

/// Where a field the walk read sits in the body walked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Its first byte: a string's or bytes' length prefix, if it has one.
    pub start: usize,
    /// Its value, past any length prefix; `None` for a null string or
    /// bytes.
    pub value: Option<Range<usize>>,
}

/// What a bounded walk tells, in wire order, to whoever reads or patches
/// the fields it passes.
pub trait Visit {
    /// A struct of `layout` begins.
    fn enter(&mut self, _layout: &'static Layout) {}

    /// A fixed-width, string or bytes field `name` of `layout` was read at
    /// `span` (each element of an array of them, under the array's name);
    /// an error stops the walk.
    fn field(
        &mut self,
        _layout: &'static Layout,
        _name: &'static str,
        _span: Span,
    ) -> Result<(), WireError> {
        Ok(())
    }
}

/// A walk that only checks.
struct Walked;

impl Visit for Walked {}

/// Passes each non-zero `error_code` on.
struct ErrorCodes<'a> {
    body: &'a [u8],
    found: &'a mut dyn FnMut(i16),
}

impl Visit for ErrorCodes<'_> {
    fn field(
        &mut self,
        _: &'static Layout,
        name: &'static str,
        span: Span,
    ) -> Result<(), WireError> {
        if name != "error_code" {
            return Ok(());
        }
        let code = span
            .value
            .and_then(|v| self.body.get(v))
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(i16::from_be_bytes);
        if let Some(code) = code.filter(|c| *c != 0) {
            (self.found)(code);
        }
        Ok(())
    }
}

/// Walks a response body for `api` at `version` as its decoder would read
/// it, every count bounded by the bytes left, telling `visit` each field.
pub fn visit_response(
    api: ApiKey,
    version: i16,
    body: &[u8],
    visit: &mut dyn Visit,
) -> Result<(), WireError> {
    let layout = layout_of(api)?;
    let mut r = Reader::new(body, layout.name);
    walk_struct(&mut r, layout, version, visit)
}

fn layout_of(api: ApiKey) -> Result<&'static Layout, WireError> {
    response_layout(api).ok_or_else(|| WireError {
        what: "upstream response",
        detail: format!(
            "the proxy has no bounded layout for {api:?} responses, so it will not decode one; \
             add {api:?} to scripts/gen_response_layouts.py"
        ),
    })
}

fn in_field(name: &'static str) -> impl FnOnce(WireError) -> WireError {
    move |e| WireError {
        what: e.what,
        detail: format!("{name}: {}", e.detail),
    }
}

/// Walks one struct, telling `visit` of it and of each field.
fn walk_struct(
    r: &mut Reader<'_>,
    layout: &'static Layout,
    version: i16,
    visit: &mut dyn Visit,
) -> Result<(), WireError> {
    let (low, high) = layout.versions;
    if !(low..=high).contains(&version) {
        return Err(r.error(format!(
            "{} has no version {version} (known: {low}..={high})",
            layout.name
        )));
    }
    visit.enter(layout);
    for field in layout.fields {
        let Some((_, kind)) = field.alts.iter().find(|(m, _)| holds(*m, version)) else {
            continue;
        };
        let at = (layout, field.name);
        walk(r, at, kind, version, visit).map_err(in_field(field.name))?;
    }
    if holds(layout.flexible, version) {
        let count = r.unsigned_varint()?;
        for _ in 0..count {
            let tag = r.unsigned_varint()?;
            let size = r.unsigned_varint()? as usize;
            match layout
                .tagged
                .iter()
                .find(|t| t.tag == tag && holds(t.versions, version))
            {
                Some(t) => walk(r, (layout, "tagged field"), &t.kind, version, visit)
                    .map_err(in_field("tagged field"))?,
                // Unknown to the decoder at this version: it keeps the
                // bytes whole (or refuses the tag) and reads nothing inside.
                None => {
                    r.bytes(size)?;
                }
            }
        }
    }
    Ok(())
}

/// Walks one field of kind `kind`, named `at` (its struct's layout and
/// its name).
fn walk(
    r: &mut Reader<'_>,
    at: (&'static Layout, &'static str),
    kind: &Kind,
    version: i16,
    visit: &mut dyn Visit,
) -> Result<(), WireError> {
    let start = r.position();
    let value = match *kind {
        Kind::Fixed(n) => {
            r.bytes(n)?;
            Some(start..r.position())
        }
        Kind::String { compact } => skip_sized(r, compact, false)?,
        Kind::Bytes { compact } => skip_sized(r, compact, true)?,
        Kind::Array { compact, of } => {
            let n = r.array_len(compact, min_size(of, version))?.unwrap_or(0);
            for _ in 0..n {
                walk(r, at, of, version, visit)?;
            }
            return Ok(());
        }
        Kind::Struct(layout) => return walk_struct(r, layout, version, visit),
    };
    visit.field(at.0, at.1, Span { start, value })
}

/// Skips a nullable string (`int16` length) or bytes (`int32` length), or
/// their compact forms: where its value sits, `None` for null.
fn skip_sized(
    r: &mut Reader<'_>,
    compact: bool,
    wide: bool,
) -> Result<Option<Range<usize>>, WireError> {
    let len = if compact {
        match r.unsigned_varint()? {
            0 => return Ok(None),
            n => (n - 1) as usize,
        }
    } else {
        let n = if wide { r.i32()? } else { i32::from(r.i16()?) };
        match n {
            -1 => return Ok(None),
            n if n < 0 => return Err(r.error(format!("length {n} is negative"))),
            n => n as usize,
        }
    };
    let start = r.position();
    r.bytes(len)?;
    Ok(Some(start..r.position()))
}

/// The fewest bytes one element of `kind` can take at `version`: what an
/// array count is weighed against.
fn min_size(kind: &Kind, version: i16) -> usize {
    match *kind {
        Kind::Fixed(n) => n,
        Kind::String { compact } => {
            if compact {
                1
            } else {
                2
            }
        }
        Kind::Bytes { compact } | Kind::Array { compact, .. } => {
            if compact {
                1
            } else {
                4
            }
        }
        Kind::Struct(layout) => {
            let fields: usize = layout
                .fields
                .iter()
                .filter_map(|f| f.alts.iter().find(|(m, _)| holds(*m, version)))
                .map(|(_, k)| min_size(k, version))
                .sum();
            fields + usize::from(holds(layout.flexible, version))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::codec::{decode_response, CodecError};
    use crate::wire::layout::Tagged;
    use crate::wire::Frame;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

    /// A frame around `body`: size, correlation id, header tagged fields.
    fn frame(api: ApiKey, version: i16, body: &[u8]) -> Frame {
        let mut buf = BytesMut::new();
        let header: &[u8] = if api.response_header_version(version) >= 1 {
            &[0, 0, 0, 7, 0]
        } else {
            &[0, 0, 0, 7]
        };
        buf.put_i32((header.len() + body.len()) as i32);
        buf.put_slice(header);
        buf.put_slice(body);
        Frame(buf.freeze())
    }

    /// The smallest valid encoding of `layout`'s fields up to its first
    /// array (or, with no array, its first string or bytes), which then
    /// claims the most elements its form can: `i32::MAX`, or a compact
    /// count of `u32::MAX - 1`. Nothing follows.
    fn hostile_body(layout: &Layout, version: i16, out: &mut Vec<u8>) -> bool {
        let kinds: Vec<&Kind> = layout
            .fields
            .iter()
            .filter_map(|f| f.alts.iter().find(|(m, _)| holds(*m, version)))
            .map(|(_, k)| k)
            .collect();
        let has_array = kinds.iter().any(|k| matches!(k, Kind::Array { .. }));
        for kind in kinds {
            match *kind {
                Kind::Fixed(n) => out.extend(std::iter::repeat_n(0, n)),
                Kind::Array { compact, .. } => {
                    huge_count(out, compact, true);
                    return true;
                }
                Kind::String { compact } | Kind::Bytes { compact } if !has_array => {
                    huge_count(out, compact, matches!(kind, Kind::Bytes { .. }));
                    return true;
                }
                Kind::String { compact } => out.extend(if compact { &[1][..] } else { &[0, 0] }),
                Kind::Bytes { compact } => {
                    out.extend(if compact { &[1][..] } else { &[0, 0, 0, 0] })
                }
                Kind::Struct(inner) => {
                    if hostile_body(inner, version, out) {
                        return true;
                    }
                }
            }
        }
        false
    }

    /// `layout` at `version` with every field present: each array one
    /// element long, each string and bytes one byte, every tagged field the
    /// decoder reads. Decoding it checks the layout against the decoder.
    fn populated(layout: &Layout, version: i16, out: &mut Vec<u8>) {
        for field in layout.fields {
            if let Some((_, kind)) = field.alts.iter().find(|(m, _)| holds(*m, version)) {
                populated_kind(kind, version, out);
            }
        }
        if holds(layout.flexible, version) {
            let tags: Vec<&Tagged> = layout
                .tagged
                .iter()
                .filter(|t| holds(t.versions, version))
                .collect();
            out.push(tags.len() as u8);
            for t in tags {
                let mut content = Vec::new();
                populated_kind(&t.kind, version, &mut content);
                out.extend([t.tag as u8, content.len() as u8]);
                out.extend(content);
            }
        }
    }

    fn populated_kind(kind: &Kind, version: i16, out: &mut Vec<u8>) {
        match *kind {
            Kind::Fixed(n) => out.extend(std::iter::repeat_n(1, n)),
            Kind::String { compact: true } | Kind::Bytes { compact: true } => out.extend([2, b'x']),
            Kind::String { compact: false } => out.extend([0, 1, b'x']),
            Kind::Bytes { compact: false } => out.extend([0, 0, 0, 1, b'x']),
            Kind::Array { compact, of } => {
                out.extend(if compact { &[2][..] } else { &[0, 0, 0, 1] });
                populated_kind(of, version, out);
            }
            Kind::Struct(inner) => populated(inner, version, out),
        }
    }

    fn huge_count(out: &mut Vec<u8>, compact: bool, wide: bool) {
        match (compact, wide) {
            (true, _) => out.extend([0xff, 0xff, 0xff, 0xff, 0x0f]),
            (false, true) => out.extend(i32::MAX.to_be_bytes()),
            (false, false) => out.extend(i16::MAX.to_be_bytes()),
        }
    }

    /// Every version of `R`: a hostile count (or, with none, an empty body)
    /// is refused by the walk with a clear error (were it not, the decoder
    /// would abort this test); a body with every field present passes and
    /// decodes to its last byte; the default answer still decodes.
    #[test]
    fn error_codes_are_found_at_every_level_of_an_answer() {
        use kafka_protocol::messages::produce_response::{
            PartitionProduceResponse, TopicProduceResponse,
        };
        let partition = |index, error_code| {
            PartitionProduceResponse::default()
                .with_index(index)
                .with_error_code(error_code)
        };
        let answer = ProduceResponse::default().with_responses(vec![
            TopicProduceResponse::default()
                .with_name(TopicName(StrBytes::from_static_str("a")))
                .with_partition_responses(vec![partition(0, 6), partition(1, 0)]),
            TopicProduceResponse::default()
                .with_name(TopicName(StrBytes::from_static_str("b")))
                .with_partition_responses(vec![partition(0, 46)]),
        ]);
        for version in [3, 9, 12] {
            let mut body = BytesMut::new();
            answer.encode(&mut body, version).unwrap();
            let mut found = Vec::new();
            assert!(error_codes(ApiKey::Produce, version, &body, &mut |c| found.push(c)));
            assert_eq!(found, [6, 46], "v{version}");
            // Cut short: what was read before the cut is all there is.
            let mut found = Vec::new();
            let walked = error_codes(
                ApiKey::Produce,
                version,
                &body[..body.len() / 2],
                &mut |c| found.push(c),
            );
            assert!(!walked && found.len() <= 2);
        }
        let answer = HeartbeatResponse::default().with_error_code(27);
        let mut body = BytesMut::new();
        answer.encode(&mut body, 4).unwrap();
        let mut found = Vec::new();
        assert!(error_codes(ApiKey::Heartbeat, 4, &body, &mut |c| found.push(c)));
        assert_eq!(found, [27]);
    }

    fn layout_holds<R: Decodable + Encodable + Default>(api: ApiKey) {
        let layout = response_layout(api).expect("a layout");
        let (low, high) = layout.versions;
        for version in low..=high {
            let mut body = Vec::new();
            if !hostile_body(layout, version, &mut body) {
                // No count at this version (Heartbeat, say): a cut-short
                // answer is what is left to refuse.
                body.clear();
            }
            let err = decode_response::<R>(api, version, &frame(api, version, &body))
                .err()
                .unwrap_or_else(|| panic!("{api:?} v{version} decoded a hostile count"));
            let CodecError::Wire(e) = &err else {
                panic!("{api:?} v{version}: refused by the decoder, not the walk: {err}");
            };
            assert!(
                e.detail.contains("elements but only") || e.detail.contains("bytes at offset"),
                "{api:?} v{version}: {err}"
            );
            // The layout agrees with the decoder: a body with every field
            // present passes the walk and is decoded to its last byte.
            let mut full = Vec::new();
            populated(layout, version, &mut full);
            check_response(api, version, &full)
                .unwrap_or_else(|e| panic!("{api:?} v{version} populated refused: {e}"));
            let mut rest = bytes::Bytes::from(full);
            R::decode(&mut rest, version)
                .unwrap_or_else(|e| panic!("{api:?} v{version} populated undecodable: {e}"));
            assert!(
                rest.is_empty(),
                "{api:?} v{version}: {} bytes left",
                rest.len()
            );
            let mut good = BytesMut::new();
            if R::default().encode(&mut good, version).is_ok() {
                decode_response::<R>(api, version, &frame(api, version, &good))
                    .unwrap_or_else(|e| panic!("{api:?} v{version} default refused: {e}"));
            }
        }
    }

    #[test]
    fn every_decoded_response_matches_its_decoder_and_refuses_hostile_counts() {
        layout_holds::<AddOffsetsToTxnResponse>(ApiKey::AddOffsetsToTxn);
        layout_holds::<AddPartitionsToTxnResponse>(ApiKey::AddPartitionsToTxn);
        layout_holds::<ApiVersionsResponse>(ApiKey::ApiVersions);
        layout_holds::<CreatePartitionsResponse>(ApiKey::CreatePartitions);
        layout_holds::<CreateTopicsResponse>(ApiKey::CreateTopics);
        layout_holds::<DeleteTopicsResponse>(ApiKey::DeleteTopics);
        layout_holds::<DescribeClusterResponse>(ApiKey::DescribeCluster);
        layout_holds::<DescribeConfigsResponse>(ApiKey::DescribeConfigs);
        layout_holds::<DescribeGroupsResponse>(ApiKey::DescribeGroups);
        layout_holds::<EndTxnResponse>(ApiKey::EndTxn);
        layout_holds::<FetchResponse>(ApiKey::Fetch);
        layout_holds::<FindCoordinatorResponse>(ApiKey::FindCoordinator);
        layout_holds::<HeartbeatResponse>(ApiKey::Heartbeat);
        layout_holds::<InitProducerIdResponse>(ApiKey::InitProducerId);
        layout_holds::<JoinGroupResponse>(ApiKey::JoinGroup);
        layout_holds::<LeaveGroupResponse>(ApiKey::LeaveGroup);
        layout_holds::<ListGroupsResponse>(ApiKey::ListGroups);
        layout_holds::<ListOffsetsResponse>(ApiKey::ListOffsets);
        layout_holds::<MetadataResponse>(ApiKey::Metadata);
        layout_holds::<OffsetCommitResponse>(ApiKey::OffsetCommit);
        layout_holds::<OffsetFetchResponse>(ApiKey::OffsetFetch);
        layout_holds::<OffsetForLeaderEpochResponse>(ApiKey::OffsetForLeaderEpoch);
        layout_holds::<ProduceResponse>(ApiKey::Produce);
        layout_holds::<SaslAuthenticateResponse>(ApiKey::SaslAuthenticate);
        layout_holds::<SaslHandshakeResponse>(ApiKey::SaslHandshake);
        layout_holds::<SyncGroupResponse>(ApiKey::SyncGroup);
        layout_holds::<TxnOffsetCommitResponse>(ApiKey::TxnOffsetCommit);
    }

    fn refusal<R: Decodable>(api: ApiKey, version: i16, body: &[u8]) -> String {
        match decode_response::<R>(api, version, &frame(api, version, body)) {
            Err(CodecError::Wire(e)) => e.to_string(),
            Err(e) => panic!("refused by the decoder, not the walk: {e}"),
            Ok(_) => panic!("{api:?} v{version} decoded"),
        }
    }

    #[test]
    fn the_fuzzed_metadata_abort_is_an_error() {
        // Metadata v1 from `upstream_response`'s first crash: a broker
        // array of 0x0c00_0000 entries in 10 bytes.
        let body = [0x0c, 0x00, 0x00, 0x00, 0x7a, 0x00, 0x00, 0x00, 0x00, 0x00];
        assert_eq!(
            refusal::<MetadataResponse>(ApiKey::Metadata, 1, &body),
            "malformed MetadataResponse: brokers: array claims 201326592 elements \
             but only 6 bytes are left (refused before decoding; check that the upstream is a healthy \
             Kafka broker)"
        );
    }

    #[test]
    fn nested_counts_are_checked_with_each_elements_smallest_size() {
        // Fetch v4: one topic "t" whose partition array claims i32::MAX.
        let mut body = vec![0, 0, 0, 0, 0, 0, 0, 1, 0, 1, b't'];
        body.extend(i32::MAX.to_be_bytes());
        assert_eq!(
            refusal::<FetchResponse>(ApiKey::Fetch, 4, &body),
            "malformed FetchResponse: responses: partitions: array claims 2147483647 \
             elements but only 0 bytes are left (refused before decoding; check that the upstream is a healthy \
             Kafka broker)"
        );
        // Metadata v12: a partition's replica array (compact, int32
        // elements) claiming 3 entries with 8 bytes left.
        let mut body = vec![0; 4]; // throttle
        body.extend([1]); // no brokers
        body.extend([0]); // null cluster id
        body.extend([0, 0, 0, 0]); // controller
        body.extend([2, 0, 0, 2, b't']); // one topic: error, name
        body.extend([0; 16]); // topic id
        body.extend([0, 2]); // internal, one partition
        body.extend([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // error, index, leader, epoch
        body.extend([4, 0, 0, 0, 0, 0, 0, 0, 0]); // replicas: claims 3, 8 bytes
        assert_eq!(
            refusal::<MetadataResponse>(ApiKey::Metadata, 12, &body),
            "malformed MetadataResponse: topics: partitions: replica_nodes: array claims 3 \
             elements but only 8 bytes are left (refused before decoding; check that the upstream is a healthy \
             Kafka broker)"
        );
    }

    #[test]
    fn tagged_fields_the_decoder_reads_are_walked() {
        // Produce v10: no topics, throttle, then node_endpoints (tag 0),
        // which the decoder reads in place, claiming u32::MAX - 1 entries.
        let body = [1, 0, 0, 0, 0, 1, 0, 5, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(
            refusal::<ProduceResponse>(ApiKey::Produce, 10, &body),
            "malformed ProduceResponse: tagged field: array claims 4294967294 elements \
             but only 0 bytes are left (refused before decoding; check that the upstream is a healthy \
             Kafka broker)"
        );
    }

    #[test]
    fn tags_a_version_does_not_define_are_skipped_whole() {
        // tansu names its endpoints (tag 0) in Fetch v12 answers, where
        // the decoder does not know the tag: the walk skips its bytes.
        let mut body = vec![0; 10]; // throttle, error, session
        body.extend([1]); // no topics
        body.extend([1, 0, 3, 0xff, 0xff, 0x0f]); // tag 0, 3 bytes of junk
        check_response(ApiKey::Fetch, 12, &body).unwrap();
        // …but not past the end of the body.
        body[13] = 9;
        assert!(check_response(ApiKey::Fetch, 12, &body).is_err());
    }

    #[test]
    fn an_api_without_a_layout_is_refused() {
        let e = check_response(ApiKey::AlterPartition, 0, &[0; 6]).unwrap_err();
        assert!(
            e.detail.contains("no bounded layout for AlterPartition"),
            "{e}"
        );
    }

    #[test]
    fn split_answers_are_walked_before_their_topics_are_decoded() {
        use crate::plan::partitioned::Family;
        use crate::wire::requests::TopicPartitions;
        let merge = |api, version, correlation_id, order: &_, shifts: &[_], parts: &[_]| {
            let merge = crate::plan::split::Merge {
                version,
                correlation_id,
                order,
                shifts,
                fetched: None,
            };
            Family::of_api(api).unwrap().merge(&merge, parts)
        };
        // Compact (Fetch v12) and classic (Produce v8) topic arrays whose
        // one topic claims the most partitions its form can.
        let mut fetch = vec![0; 10];
        fetch.extend([2, 2, b't', 0xff, 0xff, 0xff, 0xff, 0x0f]);
        let mut produce = vec![0, 0, 0, 1, 0, 1, b't'];
        produce.extend(i32::MAX.to_be_bytes());
        for (api, version, body) in [(ApiKey::Fetch, 12, fetch), (ApiKey::Produce, 8, produce)] {
            let part = frame(api, version, &body);
            let order = TopicPartitions::default();
            match merge(api, version, 1, &order, &[], &[part]) {
                Err(CodecError::Wire(e)) => {
                    assert!(e.detail.contains("partition"), "{e}")
                }
                other => panic!("{api:?}: {other:?}"),
            }
        }
    }
}
