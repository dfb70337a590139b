//! Metadata and DescribeCluster: the virtual cluster as clients see it.
//!
//! Each topic's partitions come from the cluster its route names, asked
//! live or from a cache of bounded age, with concurrent requests batched
//! (see [`crate::upstream::cluster::metadata`]; falling back to the last
//! known view when that cluster is down),
//! with every node id turned virtual and every address the proxy's own.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeClusterResponse, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::task::JoinSet;

use crate::domain::ids::ClusterIdx;
use crate::domain::topology::virtual_topic_id;
use crate::runtime::proxy::{Proxy, VirtualBroker};
use crate::upstream::UpstreamError;
use crate::wire::codec::{self, CodecError};
use crate::wire::requests::{DescribeClusterView, MetadataRequestView};
use crate::wire::RequestHeader;

/// What one cluster said about the topics asked of it (`None`: all).
type ClusterAnswer = (
    ClusterIdx,
    Option<Vec<String>>,
    Result<Vec<MetadataResponseTopic>, UpstreamError>,
);

/// An answer, and the virtual brokers it names: the session has each of
/// them listening before the answer goes out.
#[derive(Debug)]
pub struct Announced {
    pub answer: Bytes,
    pub brokers: Vec<VirtualBroker>,
}

pub async fn metadata(
    proxy: Arc<Proxy>,
    header: RequestHeader,
    request: MetadataRequestView,
) -> Result<Announced, CodecError> {
    let routes = proxy.routes();
    let mut topics_out = Vec::new();
    // Which clusters to ask, and for what (`None` = all their topics).
    let mut asks: BTreeMap<ClusterIdx, Option<Vec<String>>> = BTreeMap::new();
    match &request.topics {
        None => {
            for c in proxy.clusters() {
                asks.insert(c.idx, None);
            }
        }
        Some(topics) => {
            for t in topics {
                let name = match &t.name {
                    Some(name) => name.clone(),
                    None => match topic_name_by_id(&proxy, &t.id) {
                        Some(name) => name,
                        None => {
                            topics_out.push(
                                MetadataResponseTopic::default()
                                    .with_error_code(ResponseError::UnknownTopicId.code())
                                    .with_topic_id(uuid(t.id)),
                            );
                            continue;
                        }
                    },
                };
                let cluster = routes.metadata_cluster(&name);
                if let Some(names) = asks.entry(cluster).or_insert_with(|| Some(Vec::new())) {
                    names.push(name);
                }
            }
        }
    }

    let mut queries: JoinSet<ClusterAnswer> = JoinSet::new();
    for (idx, names) in asks {
        let cluster = proxy.cluster(idx).clone();
        let auto_create = request.allow_auto_topic_creation;
        queries.spawn(async move {
            let answer = cluster.client_metadata(names.as_deref(), auto_create).await;
            (idx, names, answer)
        });
    }
    let mut answers: Vec<ClusterAnswer> = Vec::new();
    while let Some(joined) = queries.join_next().await {
        // A query task returns its errors; it does not panic.
        if let Ok(answer) = joined {
            answers.push(answer);
        }
    }
    answers.sort_by_key(|(idx, _, _)| *idx);

    for (idx, names, answer) in answers {
        let upstream_topics = match answer {
            Ok(topics) => topics,
            Err(e) => {
                tracing::debug!(cluster = proxy.cluster(idx).name(), error = %e, "metadata from cache");
                cached_topics(&proxy, idx, names.as_deref())
            }
        };
        for t in upstream_topics {
            let routed_here = t
                .name
                .as_ref()
                .is_none_or(|n| routes.metadata_cluster(n) == idx);
            if routed_here {
                topics_out.push(virtual_topic(&proxy, idx, t));
            }
        }
    }

    let default = routes.default_cluster();
    let brokers = proxy.virtual_brokers();
    let response = MetadataResponse::default()
        .with_brokers(brokers.iter().map(|b| metadata_broker(&proxy, b)).collect())
        .with_cluster_id(Some(StrBytes::from_string(
            proxy.config().proxy.cluster_id.clone(),
        )))
        .with_controller_id(BrokerId(proxy.virtual_controller(default).0))
        .with_topics(topics_out)
        .with_cluster_authorized_operations(i32::MIN);
    let answer = codec::response_frame(
        ApiKey::Metadata,
        header.api_version,
        header.correlation_id,
        &response,
    )?;
    Ok(Announced { answer, brokers })
}

/// Topics of a down cluster as last seen; a named topic never seen gets
/// LEADER_NOT_AVAILABLE, which clients retry.
fn cached_topics(
    proxy: &Proxy,
    idx: ClusterIdx,
    names: Option<&[String]>,
) -> Vec<MetadataResponseTopic> {
    proxy.cluster(idx).with_view(|v| match names {
        None => v.topics.values().cloned().collect(),
        Some(names) => names
            .iter()
            .map(|n| {
                v.topics.get(n).cloned().unwrap_or_else(|| {
                    MetadataResponseTopic::default()
                        .with_error_code(ResponseError::LeaderNotAvailable.code())
                        .with_name(Some(TopicName(StrBytes::from_string(n.clone()))))
                })
            })
            .collect(),
    })
}

/// The topic a client names by (virtual) id, among topics the proxy has
/// seen on any cluster.
fn topic_name_by_id(proxy: &Proxy, id: &[u8; 16]) -> Option<String> {
    let id = uuid(*id);
    let cluster_id = &proxy.config().proxy.cluster_id;
    proxy.clusters().find_map(|c| {
        c.with_view(|v| {
            v.topics
                .keys()
                .find(|name| virtual_topic_id(cluster_id, name) == id)
                .cloned()
        })
    })
}

fn uuid(bytes: [u8; 16]) -> uuid::Uuid {
    uuid::Uuid::from_bytes(bytes)
}

/// An upstream topic description with every node id made virtual.
fn virtual_topic(
    proxy: &Proxy,
    idx: ClusterIdx,
    mut topic: MetadataResponseTopic,
) -> MetadataResponseTopic {
    let to_virtual = |id: BrokerId| {
        BrokerId(
            proxy
                .topology()
                .to_virtual(idx, crate::domain::ids::UpstreamNodeId(id.0))
                .0,
        )
    };
    topic.topic_authorized_operations = i32::MIN;
    if let Some(name) = &topic.name {
        if !topic.topic_id.is_nil() {
            topic.topic_id = virtual_topic_id(&proxy.config().proxy.cluster_id, name);
        }
    }
    topic.partitions = topic
        .partitions
        .into_iter()
        .map(|mut p: MetadataResponsePartition| {
            p.leader_id = to_virtual(p.leader_id);
            // Each cluster counts its own epochs; a flip would make them jump
            // or go down, and clients drop metadata whose epoch goes down.
            // -1 says "no epoch", which every client accepts.
            p.leader_epoch = -1;
            for ids in [
                &mut p.replica_nodes,
                &mut p.isr_nodes,
                &mut p.offline_replicas,
            ] {
                for id in ids.iter_mut() {
                    *id = to_virtual(*id);
                }
            }
            p
        })
        .collect();
    topic
}

fn advertised_host(proxy: &Proxy) -> StrBytes {
    StrBytes::from_string(proxy.config().proxy.advertised_host.clone())
}

fn metadata_broker(proxy: &Proxy, b: &VirtualBroker) -> MetadataResponseBroker {
    MetadataResponseBroker::default()
        .with_node_id(BrokerId(b.id.0))
        .with_host(advertised_host(proxy))
        .with_port(i32::from(b.port))
        .with_rack(b.rack.clone().map(StrBytes::from_string))
}

/// Refreshes every cluster's broker list (no topics) so that an answer
/// about brokers is current; a cluster that does not answer keeps its view.
pub async fn refresh_brokers(proxy: &Arc<Proxy>) {
    let mut queries = JoinSet::new();
    for cluster in proxy.clusters() {
        let cluster = cluster.clone();
        queries.spawn(async move { cluster.fetch_metadata(Some(&[]), false).await.is_ok() });
    }
    while queries.join_next().await.is_some() {}
}

pub async fn describe_cluster(
    proxy: Arc<Proxy>,
    header: RequestHeader,
    request: DescribeClusterView,
) -> Result<Announced, CodecError> {
    refresh_brokers(&proxy).await;
    let default = proxy.routes().default_cluster();
    let announced = proxy.virtual_brokers();
    let brokers = announced
        .iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id.0))
                .with_host(advertised_host(&proxy))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.clone().map(StrBytes::from_string))
        })
        .collect();
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(StrBytes::from_string(
            proxy.config().proxy.cluster_id.clone(),
        ))
        .with_controller_id(BrokerId(proxy.virtual_controller(default).0))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(i32::MIN);
    let answer = codec::response_frame(
        ApiKey::DescribeCluster,
        header.api_version,
        header.correlation_id,
        &response,
    )?;
    Ok(Announced {
        answer,
        brokers: announced,
    })
}
