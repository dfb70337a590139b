//! A blocking, byte-level Kafka client for assertions no real client can
//! make: exact responses, hostile frames, connection-closed checks. It
//! encodes and decodes with the proxy's own codec.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::protocol::{Decodable, Encodable};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use switchyard::wire::codec;
use switchyard::wire::Frame;

pub struct RawClient {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl RawClient {
    pub fn connect(addr: &str) -> std::io::Result<RawClient> {
        RawClient::wrap(TcpStream::connect(addr)?)
    }

    /// Connects from another loopback address (`127.0.0.2`, say), as a
    /// different client machine would.
    pub fn connect_from(local_ip: &str, addr: &str) -> std::io::Result<RawClient> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let local: std::net::SocketAddr = format!("{local_ip}:0")
            .parse()
            .map_err(std::io::Error::other)?;
        let remote: std::net::SocketAddr = addr.parse().map_err(std::io::Error::other)?;
        let stream = runtime.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(local)?;
            socket.connect(remote).await
        })?;
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        RawClient::wrap(stream)
    }

    fn wrap(stream: TcpStream) -> std::io::Result<RawClient> {
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(RawClient {
            stream,
            next_correlation_id: 1,
        })
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// A second handle on the same connection, so that one thread can
    /// send while another reads.
    pub fn try_clone(&self) -> std::io::Result<RawClient> {
        Ok(RawClient {
            stream: self.stream.try_clone()?,
            next_correlation_id: self.next_correlation_id,
        })
    }

    pub fn read_frame(&mut self) -> std::io::Result<Frame> {
        self.next_frame()?.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            )
        })
    }

    /// The next frame, or `None` when the peer closed the connection
    /// between two frames; a connection that ends inside a frame, or is
    /// reset, is an error.
    pub fn next_frame(&mut self) -> std::io::Result<Option<Frame>> {
        let mut size = [0u8; 4];
        loop {
            match self.stream.read(&mut size[..1]) {
                Ok(0) => return Ok(None),
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.stream.read_exact(&mut size[1..])?;
        let len = i32::from_be_bytes(size);
        if !(0..=64 * 1024 * 1024).contains(&len) {
            return Err(std::io::Error::other(format!("bad response size {len}")));
        }
        let mut buf = vec![0u8; 4 + len as usize];
        buf[..4].copy_from_slice(&size);
        self.stream.read_exact(&mut buf[4..])?;
        Ok(Some(Frame(Bytes::from(buf))))
    }

    /// Sends a request and decodes its answer.
    pub fn try_call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> std::io::Result<Resp> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let frame = codec::request_frame(api, version, correlation_id, request)
            .map_err(std::io::Error::other)?;
        self.send_bytes(&frame)?;
        let response = self.read_frame()?;
        if response.response_correlation_id() != Some(correlation_id) {
            return Err(std::io::Error::other(format!(
                "correlation id {:?}, expected {correlation_id}",
                response.response_correlation_id()
            )));
        }
        codec::decode_response(api, version, &response).map_err(std::io::Error::other)
    }

    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> Resp {
        self.try_call(api, version, request)
            .unwrap_or_else(|e| panic!("{api:?} v{version} failed: {e}"))
    }

    /// Whether the peer closes the connection (EOF or reset) within
    /// `timeout` without sending anything.
    pub fn closed_by_peer(&mut self, timeout: Duration) -> bool {
        self.stream
            .set_read_timeout(Some(timeout))
            .expect("set timeout");
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ),
        }
    }
}

impl RawClient {
    /// Writes `bytes` over and over, never reading, until a write makes no
    /// progress for `stall` (the peer stopped reading) or `limit` bytes
    /// have gone out; returns how many bytes went out.
    pub fn send_until_stalled(&mut self, bytes: &[u8], limit: usize, stall: Duration) -> usize {
        self.stream
            .set_write_timeout(Some(stall))
            .expect("set write timeout");
        let mut sent = 0;
        while sent < limit {
            // Resume where the last write stopped, so frames stay whole.
            match self.stream.write(&bytes[sent % bytes.len()..]) {
                Ok(0) => break,
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.stream
            .set_write_timeout(None)
            .expect("clear write timeout");
        sent
    }

    pub fn shutdown(&mut self, how: std::net::Shutdown) {
        self.stream.shutdown(how).expect("shutdown");
    }
}

/// One record batch, idempotent when `producer_id` is not -1: records
/// `indices` (keys the index, values [`super::clients::value_for`]),
/// sequences from `sequence`.
pub fn batch_of(
    producer_id: i64,
    producer_epoch: i16,
    sequence: i32,
    indices: std::ops::Range<u64>,
) -> Bytes {
    encode_batch(producer_id, producer_epoch, sequence, indices, false)
}

/// [`batch_of`], written inside the producer's open transaction.
pub fn transactional_batch_of(
    producer_id: i64,
    producer_epoch: i16,
    sequence: i32,
    indices: std::ops::Range<u64>,
) -> Bytes {
    encode_batch(producer_id, producer_epoch, sequence, indices, true)
}

fn encode_batch(
    producer_id: i64,
    producer_epoch: i16,
    sequence: i32,
    indices: std::ops::Range<u64>,
    transactional: bool,
) -> Bytes {
    let records: Vec<Record> = indices
        .enumerate()
        .map(|(i, index)| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: sequence + i as i32,
            timestamp: 0,
            key: Some(Bytes::from(index.to_string())),
            value: Some(Bytes::from(super::clients::value_for(index))),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).expect("encode batch");
    buf.freeze()
}

/// Every record of `partition` of `topic` on the broker at `addr`, read
/// with Fetch as the broker stores them: (offset, producer id, sequence).
pub fn stored_records(addr: &str, topic: &str, partition: i32) -> Vec<(i64, i64, i32)> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::RecordBatchDecoder;

    let mut client = RawClient::connect(addr).expect("connect to the broker");
    let mut out: Vec<(i64, i64, i32)> = Vec::new();
    loop {
        let at = out.last().map_or(0, |r| r.0 + 1);
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(100)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(at)
                    .with_partition_max_bytes(1 << 20)])]);
        let response: FetchResponse = client.call(ApiKey::Fetch, 4, &request);
        let records = response
            .responses
            .first()
            .and_then(|t| t.partitions.first())
            .and_then(|p| p.records.clone())
            .filter(|r| !r.is_empty());
        let Some(mut records) = records else {
            return out;
        };
        let before = out.len();
        // One batch a call; a batch cut short at the end of the answer is
        // read again next time.
        while !records.is_empty() {
            let Ok(set) = RecordBatchDecoder::decode(&mut records) else {
                break;
            };
            out.extend(
                set.records
                    .iter()
                    .filter(|r| r.offset >= at)
                    .map(|r| (r.offset, r.producer_id, r.sequence)),
            );
        }
        if out.len() == before {
            return out;
        }
    }
}

/// A producer id asked of `addr` (a connection of its own).
pub fn init_producer_id(addr: &str) -> InitProducerIdResponse {
    let pid: InitProducerIdResponse = RawClient::connect(addr).unwrap().call(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default().with_transaction_timeout_ms(60_000),
    );
    assert_eq!(pid.error_code, 0, "InitProducerId at {addr}");
    pid
}

/// Produces one batch to partition 0 of `topic` at `addr` (a connection
/// of its own); the error code.
pub fn produce(addr: &str, topic: &'static str, batch: Bytes) -> i16 {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])]);
    let response: ProduceResponse =
        RawClient::connect(addr)
            .unwrap()
            .call(ApiKey::Produce, 7, &request);
    response.responses[0].partition_responses[0].error_code
}
