//! A scripted upstream broker on loopback, for scales no real broker
//! reaches quickly (10,000 topics of 10 partitions) and faults no real
//! broker shows on demand: it answers ApiVersions, Metadata,
//! FindCoordinator and ListGroups from a fixed list of topics, and Fetch
//! from scripted logs ([`FakeBroker::with_logs`]), one thread per
//! connection. Any other request is noted (see [`FakeBroker::unanswered`])
//! and its connection closed.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, ListGroupsResponse, MetadataRequest, MetadataResponse, RequestHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::RecordBatchEncoder;
use switchyard::upstream::cluster::log::{plain_record, PLAIN};
use switchyard::wire::codec;

use super::TANSU_NODE_ID;

/// The APIs offered, with their versions: those answered, and Produce and
/// ListOffsets, offered (as every broker does, and as clients look for
/// before they fetch) and not answered.
const APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::Fetch, 4, 12),
];

/// One batch of a scripted log: its first offset, how many records it
/// holds, and how long after its partition is first fetched it stays
/// hidden (a broker that has given the offsets out and not yet stored the
/// batch answers with the batches after it).
#[derive(Clone, Copy)]
pub struct FakeBatch {
    pub base: i64,
    pub count: i64,
    pub hidden_for: Duration,
}

impl FakeBatch {
    pub fn at(base: i64, count: i64) -> FakeBatch {
        FakeBatch {
            base,
            count,
            hidden_for: Duration::ZERO,
        }
    }
}

pub struct FakeBroker {
    pub port: u16,
    catalog: Arc<Catalog>,
    stop: Arc<AtomicBool>,
}

/// What the broker knows: its address and its topics, and the logs of its
/// partitions that Fetch reads (by partition index, the same for every
/// topic), with when each was first fetched.
struct Catalog {
    port: u16,
    cluster_id: String,
    topics: Vec<MetadataResponseTopic>,
    by_name: HashMap<String, usize>,
    unanswered: Mutex<BTreeSet<i16>>,
    logs: Vec<Vec<FakeBatch>>,
    first_fetched: Mutex<HashMap<i32, Instant>>,
}

impl FakeBroker {
    /// A one-broker cluster (node id [`TANSU_NODE_ID`], as tansu reports)
    /// holding `topics` topics `prefix.00000`, `prefix.00001`, … of
    /// `partitions` partitions each.
    pub fn start(prefix: &str, topics: usize, partitions: i32) -> FakeBroker {
        FakeBroker::serving(prefix, topics, partitions, Vec::new())
    }

    /// A one-broker cluster holding one topic, `prefix.00000`, whose
    /// partitions hold `logs` (one per partition) for Fetch to read.
    pub fn with_logs(prefix: &str, logs: Vec<Vec<FakeBatch>>) -> FakeBroker {
        let partitions = i32::try_from(logs.len()).expect("partitions");
        FakeBroker::serving(prefix, 1, partitions, logs)
    }

    fn serving(
        prefix: &str,
        topics: usize,
        partitions: i32,
        logs: Vec<Vec<FakeBatch>>,
    ) -> FakeBroker {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a fake broker");
        let port = listener.local_addr().expect("local address").port();
        let mut catalog = Catalog::new(port, prefix, topics, partitions);
        catalog.logs = logs;
        let catalog = Arc::new(catalog);
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (catalog.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let c = c.clone();
                std::thread::spawn(move || c.serve(stream));
            }
        });
        FakeBroker {
            port,
            catalog,
            stop,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The api keys asked for that this broker does not answer.
    pub fn unanswered(&self) -> Vec<i16> {
        let asked = self.catalog.unanswered.lock().unwrap();
        asked.iter().copied().collect()
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so that it sees the stop.
        let _ = TcpStream::connect(self.addr());
    }
}

fn name(s: String) -> Option<TopicName> {
    Some(TopicName(StrBytes::from_string(s)))
}

impl Catalog {
    fn new(port: u16, prefix: &str, topics: usize, partitions: i32) -> Catalog {
        let node = BrokerId(TANSU_NODE_ID);
        let topics: Vec<MetadataResponseTopic> = (0..topics)
            .map(|i| {
                MetadataResponseTopic::default()
                    .with_name(name(format!("{prefix}.{i:05}")))
                    .with_topic_id(uuid::Uuid::from_u128(
                        ((port as u128) << 64) | (i as u128 + 1),
                    ))
                    .with_partitions(
                        (0..partitions)
                            .map(|p| {
                                MetadataResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_leader_epoch(-1)
                                    .with_leader_id(node)
                                    .with_replica_nodes(vec![node])
                                    .with_isr_nodes(vec![node])
                            })
                            .collect(),
                    )
            })
            .collect();
        let by_name = topics
            .iter()
            .enumerate()
            .filter_map(|(i, t)| Some((t.name.as_ref()?.to_string(), i)))
            .collect();
        Catalog {
            port,
            cluster_id: format!("fake-{prefix}"),
            topics,
            by_name,
            unanswered: Mutex::new(BTreeSet::new()),
            logs: Vec::new(),
            first_fetched: Mutex::new(HashMap::new()),
        }
    }

    /// Answers one connection's requests in order until it closes or asks
    /// for something unanswered.
    fn serve(&self, mut stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        while let Some(request) = read_request(&mut stream) {
            let Some(answer) = self.answer(request) else {
                return;
            };
            if stream.write_all(&answer).is_err() {
                return;
            }
        }
    }

    fn answer(&self, mut request: Bytes) -> Option<Bytes> {
        if request.len() < 4 {
            return None;
        }
        let key = i16::from_be_bytes([request[0], request[1]]);
        let version = i16::from_be_bytes([request[2], request[3]]);
        let offered_only = [ApiKey::Produce, ApiKey::ListOffsets];
        let Some(api) = ApiKey::try_from(key)
            .ok()
            .filter(|a| APIS.iter().any(|(k, _, _)| k == a) && !offered_only.contains(a))
        else {
            self.unanswered.lock().unwrap().insert(key);
            return None;
        };
        let header =
            RequestHeader::decode(&mut request, api.request_header_version(version)).ok()?;
        let id = header.correlation_id;
        match api {
            ApiKey::Metadata => {
                let asked = MetadataRequest::decode(&mut request, version).ok()?;
                encode(api, version, id, &self.metadata(&asked))
            }
            ApiKey::FindCoordinator => {
                let asked = FindCoordinatorRequest::decode(&mut request, version).ok()?;
                encode(api, version, id, &self.coordinator(&asked, version))
            }
            ApiKey::ListGroups => encode(api, version, id, &ListGroupsResponse::default()),
            ApiKey::ApiVersions => encode(api, version, id, &api_versions()),
            ApiKey::Fetch => {
                let asked = FetchRequest::decode(&mut request, version).ok()?;
                encode(api, version, id, &self.fetch(&asked))
            }
            _ => None,
        }
    }

    /// Each asked partition's batches from its fetch offset on, as far as
    /// they are visible now; when none is, the answer waits a little (up
    /// to the request's wait), as a broker's does.
    fn fetch(&self, asked: &FetchRequest) -> FetchResponse {
        let mut any = false;
        let responses = asked
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let answer = PartitionData::default().with_partition_index(p.partition);
                        let Some(log) = usize::try_from(p.partition)
                            .ok()
                            .and_then(|i| self.logs.get(i))
                        else {
                            let unknown = kafka_protocol::ResponseError::UnknownTopicOrPartition;
                            return answer.with_error_code(unknown.code());
                        };
                        let first = *self
                            .first_fetched
                            .lock()
                            .unwrap()
                            .entry(p.partition)
                            .or_insert_with(Instant::now);
                        let end = log.iter().map(|b| b.base + b.count).max().unwrap_or(0);
                        let shown: Vec<&FakeBatch> = log
                            .iter()
                            .filter(|b| b.base + b.count > p.fetch_offset)
                            .filter(|b| first.elapsed() >= b.hidden_for)
                            .collect();
                        any |= !shown.is_empty();
                        answer
                            .with_high_watermark(end)
                            .with_last_stable_offset(end)
                            .with_log_start_offset(0)
                            .with_records(Some(batches(&shown)))
                    })
                    .collect();
                FetchableTopicResponse::default()
                    .with_topic(t.topic.clone())
                    .with_partitions(partitions)
            })
            .collect();
        if !any {
            let wait = u64::try_from(asked.max_wait_ms).unwrap_or(0).min(100);
            std::thread::sleep(Duration::from_millis(wait));
        }
        FetchResponse::default().with_responses(responses)
    }

    fn broker(&self) -> MetadataResponseBroker {
        MetadataResponseBroker::default()
            .with_node_id(BrokerId(TANSU_NODE_ID))
            .with_host(StrBytes::from_static_str("127.0.0.1"))
            .with_port(i32::from(self.port))
    }

    fn metadata(&self, asked: &MetadataRequest) -> MetadataResponse {
        let topics = match &asked.topics {
            None => self.topics.clone(),
            Some(names) => names
                .iter()
                .map(|t| {
                    let known = t.name.as_ref().and_then(|n| self.by_name.get(n.as_str()));
                    match known {
                        Some(i) => self.topics[*i].clone(),
                        None => MetadataResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_error_code(
                                kafka_protocol::ResponseError::UnknownTopicOrPartition.code(),
                            ),
                    }
                })
                .collect(),
        };
        MetadataResponse::default()
            .with_brokers(vec![self.broker()])
            .with_cluster_id(Some(StrBytes::from_string(self.cluster_id.clone())))
            .with_controller_id(BrokerId(TANSU_NODE_ID))
            .with_topics(topics)
    }

    /// This broker coordinates everything.
    fn coordinator(&self, asked: &FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
        let b = self.broker();
        let answer = FindCoordinatorResponse::default();
        if version < 4 {
            return answer
                .with_node_id(b.node_id)
                .with_host(b.host)
                .with_port(b.port);
        }
        answer.with_coordinators(
            asked
                .coordinator_keys
                .iter()
                .map(|k| {
                    Coordinator::default()
                        .with_key(k.clone())
                        .with_node_id(b.node_id)
                        .with_host(b.host.clone())
                        .with_port(b.port)
                })
                .collect(),
        )
    }
}

fn api_versions() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(
        APIS.iter()
            .map(|(k, min, max)| {
                ApiVersion::default()
                    .with_api_key(*k as i16)
                    .with_min_version(*min)
                    .with_max_version(*max)
            })
            .collect(),
    )
}

/// `shown` as v2 record batches, written now; each record's value names
/// its offset (`record 12`).
fn batches(shown: &[&FakeBatch]) -> Bytes {
    let mut out = bytes::BytesMut::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    for batch in shown {
        let records: Vec<_> = (batch.base..batch.base + batch.count)
            .map(|offset| {
                let value = Bytes::from(format!("record {offset}"));
                plain_record((offset, now), None, Some(value))
            })
            .collect();
        RecordBatchEncoder::encode(&mut out, &records, &PLAIN).expect("encode a batch");
    }
    out.freeze()
}

fn encode<R: Encodable>(api: ApiKey, version: i16, id: i32, body: &R) -> Option<Bytes> {
    codec::response_frame(api, version, id, body).ok()
}

/// One request's header and body, without the size prefix.
fn read_request(stream: &mut TcpStream) -> Option<Bytes> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).ok()?;
    let len = usize::try_from(i32::from_be_bytes(size)).ok()?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).ok()?;
    Some(Bytes::from(body))
}
