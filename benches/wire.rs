//! Benchmarks of the work the proxy does on every request it forwards.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, FetchResponse, MetadataRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use switchyard::config::{RoutesConfig, TopicRouteConfig};
use switchyard::domain::ids::ClusterIdx;
use switchyard::domain::pattern::Pattern;
use switchyard::domain::routes::{Route, RouteTable};
use switchyard::wire::requests::{MetadataRequestView, ProduceView};
use switchyard::wire::{codec, read_frame, Frame, RequestHeader};

/// A Produce v9 request frame (flexible header v2, acks = -1).
fn produce_frame() -> Frame {
    let body = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000);
    Frame(codec::request_frame(ApiKey::Produce, 9, 7, &body).unwrap())
}

fn header_parse(c: &mut Criterion) {
    // Every request's header is parsed before the proxy can route it.
    let frame = produce_frame();
    c.bench_function("header_parse_produce_v9", |b| {
        b.iter(|| RequestHeader::parse(black_box(frame.body())).unwrap())
    });
}

fn produce_view_bench(c: &mut Criterion) {
    // Every Produce is walked for its topics, partitions and record ranges
    // (routing, fence gates, producer ids); 3 topics × 4 partitions × 16 KiB.
    let records = bytes::Bytes::from(vec![0u8; 16 * 1024]);
    let topics = (0..3)
        .map(|t| {
            let partitions = (0..4)
                .map(|p| {
                    PartitionProduceData::default()
                        .with_index(p)
                        .with_records(Some(records.clone()))
                })
                .collect();
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(format!("orders-{t}"))))
                .with_partition_data(partitions)
        })
        .collect();
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(topics);
    let frame = Frame(codec::request_frame(ApiKey::Produce, 9, 7, &request).unwrap());
    let header = RequestHeader::parse(frame.body()).unwrap();
    let body = &frame.body()[header.body_offset..];
    c.bench_function("produce_view_v9_12_partitions", |b| {
        b.iter(|| ProduceView::parse(black_box(&header), black_box(body)).unwrap())
    });
}

fn metadata_view(c: &mut Criterion) {
    // Every Metadata request is read to rewrite its topics' routes; clients send them often.
    let topics = (0..100)
        .map(|i| {
            let name = StrBytes::from_string(format!("orders.region-{i:03}"));
            MetadataRequestTopic::default().with_name(Some(TopicName(name)))
        })
        .collect();
    let request = MetadataRequest::default().with_topics(Some(topics));
    let frame = Frame(codec::request_frame(ApiKey::Metadata, 12, 7, &request).unwrap());
    let header = RequestHeader::parse(frame.body()).unwrap();
    let body = &frame.body()[header.body_offset..];
    c.bench_function("metadata_view_v12_100_topics", |b| {
        b.iter(|| MetadataRequestView::parse(black_box(&header), black_box(body)).unwrap())
    });
}

fn read_frame_bench(c: &mut Criterion) {
    // Every request and response passes through read_frame; 1 MiB is a typical produce batch ceiling.
    const SIZE: usize = 1 << 20;
    let mut stream = (SIZE as i32).to_be_bytes().to_vec();
    stream.resize(Frame::PREFIX + SIZE, 0xAB);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("read_frame");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("1MiB", |b| {
        b.iter(|| {
            let mut r = black_box(&stream[..]);
            rt.block_on(read_frame(&mut r, 2 * SIZE)).unwrap().unwrap()
        })
    });
    group.finish();
}

/// A migration's route table at scale: 20,000 exact-name rules, 100
/// globs (`team-N.*`), 2,000 topics flipped at runtime (each flip copies
/// the runtime routes: 20,000 built one by one would take the bench long).
fn route_table() -> RouteTable {
    let (old, new) = (ClusterIdx(0), ClusterIdx(1));
    let rule = |pattern: &str| TopicRouteConfig {
        pattern: Pattern::new(pattern).unwrap(),
        produce: new,
        fetch: new,
    };
    let topics = (0..20_000)
        .map(|i| rule(&format!("exact-{i}")))
        .chain((0..100).map(|i| rule(&format!("team-{i}.*"))))
        .collect();
    let mut table = RouteTable::new(&RoutesConfig {
        default: old,
        topics,
        groups: Vec::new(),
        transactions: Vec::new(),
    });
    for i in 0..2_000 {
        let route = Route {
            produce: new,
            fetch: new,
        };
        table = table.with_runtime_route(&format!("flipped-{i}"), route);
    }
    table
}

fn route_lookup(c: &mut Criterion) {
    let table = route_table();
    let mut group = c.benchmark_group("route_lookup_20000_rules");
    for (name, topic) in [
        ("runtime_route", "flipped-1234"),
        ("exact_rule", "exact-19999"),
        ("last_glob", "team-99.orders"),
        ("default", "unrouted"),
    ] {
        group.bench_function(name, |b| b.iter(|| table.route(black_box(topic))));
    }
    group.finish();
}

/// A Fetch v12 answer from one broker: 16 partitions of topic "events",
/// each 64 KiB of records in 16 batches (1 MiB in all), a high watermark
/// past the last one.
fn fetch_answer() -> Frame {
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    let records: Vec<u8> = (0..16i64)
        .flat_map(|b| {
            // A v2 batch header of 100 records, each batch where the one
            // before it ends.
            let mut batch = (1_000 + 100 * b).to_be_bytes().to_vec();
            batch.extend_from_slice(&(4096 - 12i32).to_be_bytes());
            batch.extend_from_slice(&0i32.to_be_bytes());
            batch.push(2);
            batch.extend_from_slice(&[0; 6]);
            batch.extend_from_slice(&99i32.to_be_bytes());
            batch.resize(4096, 0xab);
            batch
        })
        .collect();
    let records = bytes::Bytes::from(records);
    let partitions = (0..16)
        .map(|p| {
            PartitionData::default()
                .with_partition_index(p)
                .with_high_watermark(2_600)
                .with_last_stable_offset(2_600)
                .with_log_start_offset(0)
                .with_records(Some(records.clone()))
        })
        .collect();
    let topic = FetchableTopicResponse::default()
        .with_topic(TopicName(StrBytes::from_static_str("events")))
        .with_partitions(partitions);
    let answer = FetchResponse::default().with_responses(vec![topic]);
    Frame(codec::response_frame(ApiKey::Fetch, 12, 7, &answer).unwrap())
}

/// The answer to a client of a stitched Fetch (every partition read from
/// the new cluster, Δ = 5,000) sent whole to one broker, as the proxy
/// gives it (offsets patched in its bytes), against decoding, shifting and
/// encoding it (as it was given before); and an answer that waited across
/// a flip, cut where its stretch ended (the only patch that changes the
/// answer's length), or, with nothing stitched, walked and passed on.
fn fetch_answer_shift(c: &mut Criterion) {
    use switchyard::domain::stitch::{Shift, UpstreamOffset};
    use switchyard::plan::partitioned::{self, Family, PartitionAnswer};
    use switchyard::plan::split::Merge;
    use switchyard::wire::requests::TopicPartitions;
    let frame = fetch_answer();
    let order = TopicPartitions(vec![("events".into(), (0..16).collect())]);
    let shift = Shift {
        delta: 5_000,
        ..Shift::NONE
    };
    let shifts = vec![vec![shift; 16]];
    let merge = Merge {
        version: 12,
        correlation_id: 7,
        order: &order,
        shifts: &shifts,
        fetched: None,
    };
    let family = Family::of_api(ApiKey::Fetch).unwrap();
    let decoded_and_encoded = |frame: &Frame| {
        let mut answer: FetchResponse = codec::decode_response(ApiKey::Fetch, 12, frame).unwrap();
        for partition in answer.responses.iter_mut().flat_map(|t| &mut t.partitions) {
            partition.shift(shift);
        }
        codec::response_frame(ApiKey::Fetch, 12, 7, &answer).unwrap()
    };
    assert_eq!(
        family.merge(&merge, std::slice::from_ref(&frame)).unwrap(),
        decoded_and_encoded(&frame)
    );
    let (old, new) = (ClusterIdx(0), ClusterIdx(1));
    let routes = RouteTable::new(&RoutesConfig {
        default: old,
        topics: Vec::new(),
        groups: Vec::new(),
        transactions: Vec::new(),
    });
    let moved = routes.with_stitch(
        "events",
        old,
        new,
        1,
        (0..16).map(|p| (p, UpstreamOffset(1_800), UpstreamOffset(0))),
    );
    let mut group = c.benchmark_group("fetch_answer_1MiB_16_partitions");
    group.throughput(Throughput::Bytes(frame.0.len() as u64));
    group.bench_function("stitched_patched", |b| {
        b.iter(|| family.merge(black_box(&merge), std::slice::from_ref(&frame)))
    });
    group.bench_function("stitched_decoded_and_encoded", |b| {
        b.iter(|| decoded_and_encoded(black_box(&frame)))
    });
    let (offsets, gaps) = (vec![1_000; 16], partitioned::GapHolds::default());
    let answered = |now: Option<&RouteTable>, frame: &Frame| {
        let fetched = (&order, &offsets[..]);
        partitioned::answered(now.map(|r| (r, old)), (12, 7), fetched, &gaps, frame).unwrap()
    };
    assert_eq!(answered(None, &frame), None, "no gap: as it came");
    group.bench_function("unstitched_checked_for_gaps", |b| {
        b.iter(|| answered(None, black_box(&frame)))
    });
    group.bench_function("waited_across_a_flip_cut", |b| {
        b.iter(|| answered(Some(&moved), black_box(&frame)))
    });
    group.bench_function("waited_across_a_flip_nothing_stitched", |b| {
        b.iter(|| answered(Some(&routes), black_box(&frame)))
    });
    group.finish();
}

criterion_group!(
    benches,
    header_parse,
    produce_view_bench,
    metadata_view,
    read_frame_bench,
    route_lookup,
    fetch_answer_shift
);
criterion_main!(benches);
