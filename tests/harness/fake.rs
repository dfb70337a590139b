//! A scripted upstream broker on loopback, for scales no real broker
//! reaches quickly (10,000 topics of 10 partitions): it answers
//! ApiVersions, Metadata, FindCoordinator and ListGroups from a fixed list
//! of topics, one thread per connection. Any other request is noted (see
//! [`FakeBroker::unanswered`]) and its connection closed.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse,
    ListGroupsResponse, MetadataRequest, MetadataResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use switchyard::wire::codec;

use super::TANSU_NODE_ID;

/// The APIs answered, with the versions offered.
const APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::ListGroups, 0, 4),
];

pub struct FakeBroker {
    pub port: u16,
    catalog: Arc<Catalog>,
    stop: Arc<AtomicBool>,
}

/// What the broker knows: its address and its topics.
struct Catalog {
    port: u16,
    cluster_id: String,
    topics: Vec<MetadataResponseTopic>,
    by_name: HashMap<String, usize>,
    unanswered: Mutex<BTreeSet<i16>>,
}

impl FakeBroker {
    /// A one-broker cluster (node id [`TANSU_NODE_ID`], as tansu reports)
    /// holding `topics` topics `prefix.00000`, `prefix.00001`, … of
    /// `partitions` partitions each.
    pub fn start(prefix: &str, topics: usize, partitions: i32) -> FakeBroker {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a fake broker");
        let port = listener.local_addr().expect("local address").port();
        let catalog = Arc::new(Catalog::new(port, prefix, topics, partitions));
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
        let Some(api) = ApiKey::try_from(key)
            .ok()
            .filter(|a| APIS.iter().any(|(k, _, _)| k == a))
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
            _ => None,
        }
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
