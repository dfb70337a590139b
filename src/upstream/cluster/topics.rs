//! Topic administration the control plane asks of a cluster: partition
//! counts, configs, creation, producer ids.

use super::*;

/// DescribeConfigs resource type of a topic.
const TOPIC_RESOURCE: i8 = 2;
/// DescribeConfigs config source: set on the topic itself.
const TOPIC_CONFIG_SOURCE: i8 = 1;

/// A topic's own configs, as name and value.
pub type TopicConfigs = Vec<(String, Option<String>)>;

impl Cluster {
    /// A fresh (non-transactional) producer id issued by this cluster.
    pub async fn init_producer_id(&self) -> Result<(i64, i16), UpstreamError> {
        let conn = self.control().await?;
        let version =
            self.version_for(ApiKey::InitProducerId, 4)
                .ok_or_else(|| UpstreamError::Protocol {
                    addr: conn.addr().to_owned(),
                    reason: format!("cluster '{}' does not support InitProducerId", self.name()),
                })?;
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000);
        let resp: InitProducerIdResponse = conn
            .call(
                ApiKey::InitProducerId,
                version,
                &request,
                self.request_timeout,
            )
            .await?;
        if resp.error_code != 0 {
            return Err(UpstreamError::Protocol {
                addr: conn.addr().to_owned(),
                reason: format!(
                    "InitProducerId on cluster '{}' failed with error code {}",
                    self.name(),
                    resp.error_code
                ),
            });
        }
        Ok((resp.producer_id.0, resp.producer_epoch))
    }

    /// Partition count of `topic` on this cluster, asked live; `None` when
    /// the cluster does not have it.
    pub async fn partition_count(&self, topic: &str) -> Result<Option<usize>, UpstreamError> {
        let mut counts = self.partition_counts(&[topic.to_owned()]).await?;
        Ok(counts.remove(topic))
    }

    /// Partition counts of `topics` on this cluster, from one live
    /// Metadata query; a topic the cluster does not have is left out.
    pub async fn partition_counts(
        &self,
        topics: &[String],
    ) -> Result<BTreeMap<String, usize>, UpstreamError> {
        let resp = self.fetch_metadata(Some(topics), false).await?;
        let asked: std::collections::HashSet<&str> = topics.iter().map(String::as_str).collect();
        Ok(resp
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .filter_map(|t| {
                let name = t.name.as_ref()?.as_str();
                asked
                    .contains(name)
                    .then(|| (name.to_owned(), t.partitions.len()))
            })
            .collect())
    }

    /// Every topic on this cluster, asked live.
    pub async fn topic_names(&self) -> Result<Vec<String>, UpstreamError> {
        let resp = self.fetch_metadata(None, false).await?;
        Ok(resp
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .filter_map(|t| Some(t.name.as_ref()?.to_string()))
            .collect())
    }

    /// The configs set on each of `topics` itself (not inherited
    /// defaults), as name and value, from one DescribeConfigs; empty for a
    /// topic the cluster cannot describe.
    pub async fn topic_configs_of(
        &self,
        topics: &[String],
    ) -> Result<BTreeMap<String, TopicConfigs>, UpstreamError> {
        let mut configs: BTreeMap<String, TopicConfigs> =
            topics.iter().map(|t| (t.clone(), Vec::new())).collect();
        // Config sources are reported from v1 on.
        let Some(version) = self
            .version_for(ApiKey::DescribeConfigs, 4)
            .filter(|v| *v >= 1)
        else {
            return Ok(configs);
        };
        let conn = self.control().await?;
        let request = DescribeConfigsRequest::default().with_resources(
            topics
                .iter()
                .map(|topic| {
                    DescribeConfigsResource::default()
                        .with_resource_type(TOPIC_RESOURCE)
                        .with_resource_name(StrBytes::from_string(topic.clone()))
                        .with_configuration_keys(None)
                })
                .collect(),
        );
        let resp: DescribeConfigsResponse = conn
            .call(
                ApiKey::DescribeConfigs,
                version,
                &request,
                self.request_timeout,
            )
            .await?;
        for result in resp.results.iter().filter(|r| r.error_code == 0) {
            let Some(of_topic) = configs.get_mut(result.resource_name.as_str()) else {
                continue; // not asked for
            };
            *of_topic = result
                .configs
                .iter()
                // Set on the topic itself; sensitive values come back
                // hidden, so they cannot be copied.
                .filter(|c| {
                    c.config_source == TOPIC_CONFIG_SOURCE && !c.is_sensitive && !c.read_only
                })
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect();
        }
        Ok(configs)
    }

    /// The configs set on `topic` itself (see [`Cluster::topic_configs_of`]).
    pub async fn topic_configs(&self, topic: &str) -> Result<TopicConfigs, UpstreamError> {
        let mut configs = self.topic_configs_of(&[topic.to_owned()]).await?;
        Ok(configs.remove(topic).unwrap_or_default())
    }

    /// Creates `topic` with `partitions` partitions, `configs` and the
    /// cluster's default replication factor; a topic that already exists is
    /// fine.
    pub async fn create_topic(
        &self,
        topic: &str,
        partitions: usize,
        configs: &[(String, Option<String>)],
    ) -> Result<(), UpstreamError> {
        let wanted = [(topic.to_owned(), partitions, configs.to_vec())];
        self.create_topics(&wanted).await
    }

    /// Creates each of `topics` (name, partitions, configs) with the
    /// cluster's default replication factor, in one CreateTopics; a topic
    /// that already exists is fine.
    pub async fn create_topics(
        &self,
        topics: &[(String, usize, TopicConfigs)],
    ) -> Result<(), UpstreamError> {
        let addr = self.controller_address();
        let conn = self.connect(&addr).await?;
        let version =
            self.version_for(ApiKey::CreateTopics, 5)
                .ok_or_else(|| UpstreamError::Protocol {
                    addr: addr.clone(),
                    reason: format!("cluster '{}' does not support CreateTopics", self.name()),
                })?;
        let creatable = |(topic, partitions, configs): &(String, usize, TopicConfigs)| {
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.clone())))
                .with_num_partitions(*partitions as i32)
                // -1: the cluster's default replication factor (v4+).
                .with_replication_factor(if version >= 4 { -1 } else { 1 })
                .with_configs(
                    configs
                        .iter()
                        .map(|(name, value)| {
                            CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(name.clone()))
                                .with_value(value.clone().map(StrBytes::from_string))
                        })
                        .collect(),
                )
        };
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(self.request_timeout.as_millis() as i32)
            .with_topics(topics.iter().map(creatable).collect());
        let resp: CreateTopicsResponse = conn
            .call(
                ApiKey::CreateTopics,
                version,
                &request,
                self.request_timeout,
            )
            .await?;
        for (topic, ..) in topics {
            let answer = resp.topics.iter().find(|t| t.name.as_str() == topic);
            match answer.map(|t| (t.error_code, t.error_message.clone())) {
                Some((code, _))
                    if code == 0 || code == ResponseError::TopicAlreadyExists.code() => {}
                Some((code, message)) => {
                    return Err(UpstreamError::Protocol {
                        addr,
                        reason: format!(
                        "creating topic '{topic}' on cluster '{}' failed with error code {code}{}",
                        self.name(),
                        message.map(|m| format!(": {m}")).unwrap_or_default()
                    ),
                    })
                }
                None => {
                    return Err(UpstreamError::Protocol {
                        addr,
                        reason: format!("CreateTopics answer does not name topic '{topic}'"),
                    })
                }
            }
        }
        Ok(())
    }
}
