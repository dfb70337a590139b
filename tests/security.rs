//! TLS and SASL on both sides of the proxy, with real clients (librdkafka,
//! kafka-python) and real brokers (tansu, one of them requiring SASL):
//! who gets in, who does not, and that nothing unauthenticated reaches an
//! upstream broker.

mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use harness::clients::{
    create_topic_with, kafka_python_consume_secured, kafka_python_produce_secured, produce_range,
    producer, value_for,
};
use harness::raw::RawClient;
use harness::security::{
    sasl_authenticate, sasl_handshake, scram_login, tls_api_versions, user_toml, Pki,
};
use harness::{Broker, Proxy, ProxySetup};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::Producer;
use rdkafka::{Message, Offset, TopicPartitionList};
use switchyard::auth::credentials::Mechanism;

const ALICE_PW: &str = "alice-Pa55word";
const BOB_PW: &str = "bob-0ther-pass";

/// One tansu cluster behind a proxy whose clients need TLS or SASL.
fn secured_setup(broker: &Broker) -> ProxySetup<'_> {
    let mut setup = ProxySetup::two(broker, broker);
    setup.clusters.truncate(1);
    setup.secured = true;
    setup
}

/// One tansu cluster behind a proxy whose clients must authenticate
/// (alice: SCRAM-SHA-512, bob: PLAIN), over TLS when `pki` is given.
fn sasl_proxy<'a>(broker: &'a Broker, pki: Option<&Pki>, proxy_extra: &str) -> ProxySetup<'a> {
    let mut setup = secured_setup(broker);
    setup.proxy_extra = format!(
        "{proxy_extra}\n{}\n[proxy.sasl]\nmechanisms = [\"SCRAM-SHA-512\", \"SCRAM-SHA-256\", \"PLAIN\"]\n",
        pki.map(|p| p.proxy_tls_toml(false)).unwrap_or_default(),
    );
    setup.extra = format!(
        "{}\n{}",
        user_toml("alice", Mechanism::ScramSha512, ALICE_PW),
        user_toml("bob", Mechanism::Plain, BOB_PW)
    );
    setup
}

/// librdkafka settings for alice over SASL_SSL with SCRAM-SHA-512.
fn alice_rdkafka(pki: &Pki) -> Vec<(&'static str, String)> {
    vec![
        ("security.protocol", "SASL_SSL".into()),
        ("sasl.mechanism", "SCRAM-SHA-512".into()),
        ("sasl.username", "alice".into()),
        ("sasl.password", ALICE_PW.into()),
        ("ssl.ca.location", pki.ca.display().to_string()),
    ]
}

fn as_refs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Reads `count` records of `topic` from the beginning with librdkafka;
/// returns each record's key index, checking every value byte for byte.
fn rdkafka_consume(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    count: usize,
    extra: &[(&str, &str)],
) -> Vec<u64> {
    let mut config = harness::clients::client_config(bootstrap, extra);
    config
        .set("group.id", "security-test")
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = config.create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    while seen.len() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "read {} of {count} records",
            seen.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(e)) => panic!("librdkafka consumer error: {e}"),
            Some(Ok(m)) => {
                let key: u64 = std::str::from_utf8(m.key().expect("key"))
                    .expect("utf-8 key")
                    .parse()
                    .expect("numeric key");
                assert_eq!(m.payload(), Some(&value_for(key)[..]), "record {key} bytes");
                seen.push(key);
            }
        }
    }
    seen
}

#[test]
fn sasl_ssl_clients_produce_and_consume_through_the_proxy() {
    let broker = Broker::start("sec-a");
    let pki = Pki::new();
    let proxy = Proxy::start(sasl_proxy(&broker, Some(&pki), ""));
    let alice = alice_rdkafka(&pki);
    let alice = as_refs(&alice);
    create_topic_with(&proxy.bootstrap(), "secure", 3, &alice);

    // librdkafka: SASL_SSL, SCRAM-SHA-512.
    let mut settings = alice.clone();
    settings.extend([("acks", "all"), ("linger.ms", "5")]);
    let p = producer(&proxy.bootstrap(), &settings);
    produce_range(&p, "secure", 0..2000, |_| {});
    p.flush(Duration::from_secs(30)).expect("flush");
    assert_eq!(
        *p.context().failed.lock().unwrap(),
        vec![],
        "no delivery fails"
    );
    assert_eq!(p.context().delivered.lock().unwrap().len(), 2000);

    // kafka-python: SASL PLAIN over TLS.
    let bob = serde_json::json!({
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "bob",
        "sasl_plain_password": BOB_PW,
        "ssl_cafile": pki.ca.display().to_string(),
    })
    .to_string();
    let acked = kafka_python_produce_secured(&proxy.bootstrap(), "secure", 2000, 500, &bob);
    assert_eq!(acked.len(), 500, "kafka-python records acknowledged");

    let all: BTreeSet<u64> = (0..2500).collect();
    let read = kafka_python_consume_secured(&proxy.bootstrap(), "secure", 2500, &bob);
    assert_eq!(
        read.len(),
        2500,
        "kafka-python reads exactly what was written"
    );
    assert!(read.iter().all(|c| c.value_ok), "every value intact");
    assert_eq!(read.iter().map(|c| c.index).collect::<BTreeSet<_>>(), all);

    let read = rdkafka_consume(&proxy.bootstrap(), "secure", 3, 2500, &alice);
    assert_eq!(read.len(), 2500);
    assert_eq!(read.into_iter().collect::<BTreeSet<_>>(), all);
    assert_eq!(proxy.metric("switchyard_client_auth_failures_total"), 0.0);
}

#[test]
fn wrong_password_is_refused_and_never_reaches_upstream() {
    let broker = Broker::start("sec-b");
    let proxy = Proxy::start(sasl_proxy(&broker, None, ""));
    let upstream_before = proxy.metric("switchyard_upstream_connections");

    // ApiVersions is served before authentication, and lists SASL.
    let mut c = RawClient::connect(&proxy.bootstrap()).unwrap();
    let versions: ApiVersionsResponse =
        c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let keys: Vec<i16> = versions.api_keys.iter().map(|k| k.api_key).collect();
    assert!(
        keys.contains(&17) && keys.contains(&36),
        "SaslHandshake and SaslAuthenticate advertised: {keys:?}"
    );

    // SCRAM with a wrong password.
    let resp = scram_login(&mut c, "alice", "not-alices-password");
    assert_eq!(resp.error_code, 58, "SASL_AUTHENTICATION_FAILED");
    assert_eq!(
        resp.error_message.as_deref(),
        Some("Authentication failed: invalid credentials with SASL mechanism SCRAM-SHA-512")
    );
    assert!(
        c.closed_by_peer(Duration::from_secs(5)),
        "closed after the failure"
    );

    // PLAIN with a wrong password, and an unknown user: the same answer.
    for token in [&b"\0bob\0guess"[..], b"\0nobody\0guess"] {
        let mut c = RawClient::connect(&proxy.bootstrap()).unwrap();
        sasl_handshake(&mut c, "PLAIN");
        let resp = sasl_authenticate(&mut c, token);
        assert_eq!(resp.error_code, 58);
        assert_eq!(
            resp.error_message.as_deref(),
            Some("Authentication failed: invalid credentials with SASL mechanism PLAIN")
        );
        assert!(c.closed_by_peer(Duration::from_secs(5)));
    }

    // Metadata before authentication: no answer, connection closed.
    let mut c = RawClient::connect(&proxy.bootstrap()).unwrap();
    let frame =
        switchyard::wire::codec::request_frame(ApiKey::Metadata, 1, 9, &MetadataRequest::default())
            .unwrap();
    c.send_bytes(&frame).unwrap();
    assert!(
        c.closed_by_peer(Duration::from_secs(5)),
        "Metadata before SASL closes the connection"
    );

    assert_eq!(proxy.metric("switchyard_client_auth_failures_total"), 3.0);
    assert_eq!(
        proxy.metric("switchyard_upstream_connections"),
        upstream_before,
        "no upstream connection was opened for a client that did not authenticate"
    );

    // The right password gets in, and is served.
    let mut c = RawClient::connect(&proxy.bootstrap()).unwrap();
    assert_eq!(scram_login(&mut c, "alice", ALICE_PW).error_code, 0);
    let m: MetadataResponse = c.call(
        ApiKey::Metadata,
        1,
        &MetadataRequest::default().with_topics(Some(vec![])),
    );
    assert_eq!(m.brokers.len(), 1);

    let log = proxy.log();
    for secret in ["not-alices-password", "guess", ALICE_PW, BOB_PW] {
        assert!(!log.contains(secret), "the proxy log shows a password");
    }
    assert!(
        log.contains("client authentication refused"),
        "failures are logged:\n{log}"
    );
}

#[test]
fn client_certificates_are_required_when_client_ca_is_set() {
    let broker = Broker::start("sec-c");
    let pki = Pki::new();
    let mut setup = secured_setup(&broker);
    setup.proxy_extra = pki.proxy_tls_toml(true);
    let proxy = Proxy::start(setup);
    let addr = proxy.bootstrap();

    let no_cert = tls_api_versions(&addr, &pki, None);
    assert!(
        no_cert.is_err(),
        "a client without a certificate is refused"
    );
    let stranger = tls_api_versions(&addr, &pki, Some((&pki.stranger_cert, &pki.stranger_key)));
    assert!(
        stranger.is_err(),
        "a certificate from another CA is refused"
    );
    let good = tls_api_versions(&addr, &pki, Some((&pki.client_cert, &pki.client_key)))
        .expect("a certificate from client_ca is served");
    assert_eq!(good.error_code, 0);
    assert!(
        !good.api_keys.iter().any(|k| k.api_key == 17),
        "no SASL without [proxy.sasl]"
    );
    assert_eq!(proxy.metric("switchyard_client_tls_failures_total"), 2.0);

    // A real client with its certificate produces and reads back.
    let ssl = [
        ("security.protocol", "SSL"),
        ("ssl.ca.location", pki.ca.to_str().unwrap()),
        (
            "ssl.certificate.location",
            pki.client_cert.to_str().unwrap(),
        ),
        ("ssl.key.location", pki.client_key.to_str().unwrap()),
    ];
    create_topic_with(&addr, "mtls", 1, &ssl);
    let p = producer(&addr, &ssl);
    produce_range(&p, "mtls", 0..300, |_| {});
    p.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(p.context().delivered.lock().unwrap().len(), 300);
    let read = rdkafka_consume(&addr, "mtls", 1, 300, &ssl);
    assert_eq!(read, (0..300).collect::<Vec<_>>(), "in order, exactly once");
}

#[test]
fn oversized_frame_before_auth_closes_only_that_connection() {
    let broker = Broker::start("sec-e");
    let proxy = Proxy::start(sasl_proxy(&broker, None, "max_preauth_frame_bytes = 1024"));
    let mut good = RawClient::connect(&proxy.bootstrap()).unwrap();
    assert_eq!(scram_login(&mut good, "alice", ALICE_PW).error_code, 0);

    let mut bad = RawClient::connect(&proxy.bootstrap()).unwrap();
    let mut frame = 2000i32.to_be_bytes().to_vec();
    frame.extend_from_slice(&[0, 18, 0, 3, 0, 0, 0, 1]);
    frame.resize(4 + 2000, b'x');
    bad.send_bytes(&frame).unwrap();
    assert!(
        bad.closed_by_peer(Duration::from_secs(5)),
        "a 2000-byte frame before auth closes"
    );
    assert_eq!(proxy.metric("switchyard_client_protocol_errors_total"), 1.0);

    // After authentication the full limit applies: a Metadata request of
    // about 5 KiB (300 topic names) is answered.
    let topics = (0..300)
        .map(|i| {
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(
                Some(kafka_protocol::messages::TopicName(
                    kafka_protocol::protocol::StrBytes::from_string(format!("topic-{i:05}")),
                )),
            )
        })
        .collect();
    let m: MetadataResponse = good.call(
        ApiKey::Metadata,
        4,
        &MetadataRequest::default()
            .with_topics(Some(topics))
            .with_allow_auto_topic_creation(false),
    );
    assert_eq!(m.topics.len(), 300);
    let m: MetadataResponse = good.call(
        ApiKey::Metadata,
        1,
        &MetadataRequest::default().with_topics(Some(vec![])),
    );
    assert_eq!(
        m.brokers.len(),
        1,
        "the well-behaved client is served throughout"
    );
}

#[test]
fn proxy_logs_in_to_an_authenticating_tansu_with_its_own_scram_credentials() {
    let plain = Broker::start("sec-d-old");
    let secured = Broker::start_authenticated("sec-d-new", "switchyard", "upstream-Secret-1");
    let scratch = harness::Scratch::new("sec-d");
    let pw_file = scratch.path("new.password");
    std::fs::write(&pw_file, "upstream-Secret-1\n").unwrap();
    let sasl = |file: &std::path::Path| {
        format!(
            "[[routes.topic]]\npattern = \"guarded\"\nproduce = \"new\"\nfetch = \"new\"\n\n\
             [clusters.new.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"switchyard\"\n\
             password_file = \"{}\"\n",
            file.display()
        )
    };
    let mut setup = ProxySetup::two(&plain, &secured);
    setup.extra = sasl(&pw_file);
    // Ready means both clusters were reached: the control connection to
    // "new" logged in before its first Metadata.
    let proxy = Proxy::start(setup);
    harness::clients::create_topic(&proxy.bootstrap(), "guarded", 2);
    let p = producer(&proxy.bootstrap(), &[("acks", "all")]);
    produce_range(&p, "guarded", 0..1000, |_| {});
    p.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(*p.context().failed.lock().unwrap(), vec![]);
    assert_eq!(p.context().delivered.lock().unwrap().len(), 1000);
    let read = harness::clients::kafka_python_consume(&proxy.bootstrap(), "guarded", 1000);
    assert_eq!(read.len(), 1000);
    assert!(read.iter().all(|c| c.value_ok));
    assert_eq!(
        read.iter().map(|c| c.index).collect::<BTreeSet<_>>(),
        (0..1000).collect()
    );

    // The records are on the authenticating cluster: read it directly.
    let direct = [
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", "switchyard"),
        ("sasl.password", "upstream-Secret-1"),
    ];
    let read = rdkafka_consume(&secured.addr(), "guarded", 2, 1000, &direct);
    assert_eq!(
        read.into_iter().collect::<BTreeSet<_>>(),
        (0..1000).collect()
    );

    // With a wrong password the cluster is reported unreachable, saying
    // why, and the password appears nowhere.
    let wrong_file = scratch.path("wrong.password");
    std::fs::write(&wrong_file, "not-the-Secret\n").unwrap();
    let mut setup = ProxySetup::two(&plain, &secured);
    setup.extra = sasl(&wrong_file);
    let wrong = Proxy::spawn(setup);
    let status = harness::wait_for(
        "status naming the login failure",
        Duration::from_secs(30),
        || {
            let out = wrong.cli(&["status", "--json"]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let new = v["result"]["clusters"]
                .as_array()?
                .iter()
                .find(|c| c["name"] == "new")?
                .clone();
            new["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("refused"))
                .then_some(new)
        },
    );
    assert_eq!(status["reachable"], false);
    let error = status["last_error"].as_str().unwrap();
    assert!(
        error.contains("refused the proxy's SCRAM-SHA-512 login as 'switchyard'"),
        "{error}"
    );
    for text in [error.to_owned(), wrong.log()] {
        assert!(!text.contains("not-the-Secret") && !text.contains("upstream-Secret-1"));
    }

    // `check --connect` logs in as the proxy does: every cluster reached
    // with the right password, the login refused with the wrong one.
    let out = proxy.cli(&["check", "--connect", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{report}");
    let reached = report["connect"].as_array().unwrap();
    assert_eq!(reached.len(), 2);
    for r in reached {
        assert_eq!(r["ok"], true, "{r}");
        let base = if r["cluster"] == "old" { 0 } else { 1000 };
        assert_eq!(
            r["brokers"],
            serde_json::json!([[harness::TANSU_NODE_ID, base + harness::TANSU_NODE_ID]]),
            "{r}"
        );
    }
    let out = wrong.cli(&["check", "--connect"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: clusters.new: ") && stderr.contains("refused"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-Secret"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cluster old: reached and logged in"),
        "{stdout}"
    );
}

#[test]
fn upstream_tls_mtls_and_sasl_against_a_secured_listener() {
    // Proxy A stands in for a SASL_SSL cluster that requires client
    // certificates (tansu 0.6.0 accepts --cert/--key but never uses them):
    // proxy B reaches it with TLS, a client certificate and SCRAM-SHA-256.
    let broker = Broker::start("sec-f");
    let pki = Pki::new();
    let mut a = secured_setup(&broker);
    a.proxy_extra = format!(
        "{}\n[proxy.sasl]\nmechanisms = [\"SCRAM-SHA-256\"]\n",
        pki.proxy_tls_toml(true)
    );
    a.extra = user_toml("proxy-b", Mechanism::ScramSha256, "b-Pass");
    let a = Proxy::start(a);

    let scratch = harness::Scratch::new("sec-f");
    let pw_file = scratch.path("pw");
    std::fs::write(&pw_file, "b-Pass").unwrap();
    let mut b = ProxySetup::two(&broker, &broker);
    b.clusters.clear();
    b.upstreams = vec![("secured", a.bootstrap(), 0)];
    b.default_route = "secured";
    b.extra = format!(
        "[clusters.secured.tls]\nca = \"{}\"\nserver_name = \"localhost\"\ncert = \"{}\"\nkey = \"{}\"\n\n\
         [clusters.secured.sasl]\nmechanism = \"SCRAM-SHA-256\"\nusername = \"proxy-b\"\npassword_file = \"{}\"\n",
        pki.ca.display(),
        pki.client_cert.display(),
        pki.client_key.display(),
        pw_file.display()
    );
    let b = Proxy::start(b);

    harness::clients::create_topic(&b.bootstrap(), "chained", 2);
    let p = producer(&b.bootstrap(), &[("acks", "all")]);
    produce_range(&p, "chained", 0..1000, |_| {});
    p.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(*p.context().failed.lock().unwrap(), vec![]);
    assert_eq!(p.context().delivered.lock().unwrap().len(), 1000);
    let read = rdkafka_consume(&b.bootstrap(), "chained", 2, 1000, &[]);
    assert_eq!(
        read.into_iter().collect::<BTreeSet<_>>(),
        (0..1000).collect()
    );
    assert_eq!(a.metric("switchyard_client_auth_failures_total"), 0.0);
    assert_eq!(a.metric("switchyard_client_tls_failures_total"), 0.0);
}

#[test]
fn allow_lists_refuse_other_topics_and_groups() {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::{
        CreateTopicsRequest, CreateTopicsResponse, GroupId, HeartbeatRequest, HeartbeatResponse,
        TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    use rdkafka::producer::BaseRecord;

    let broker = Broker::start("sec-g");
    let mut setup = sasl_proxy(&broker, None, "");
    setup.extra += &format!(
        "{}topics = [\"allowed-*\"]\ngroups = [\"good-*\"]\n",
        user_toml("carol", Mechanism::ScramSha512, "carol-pw")
    );
    let proxy = Proxy::start(setup);
    let sasl = |user: &'static str, pw: &'static str| {
        vec![
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", user),
            ("sasl.password", pw),
        ]
    };
    let alice = sasl("alice", ALICE_PW);
    create_topic_with(&proxy.bootstrap(), "allowed-1", 1, &alice);
    create_topic_with(&proxy.bootstrap(), "secret", 1, &alice);

    // One producer, both topics: its requests mix an allowed and a denied
    // topic, and only the denied records fail.
    let mut carol = sasl("carol", "carol-pw");
    carol.push(("acks", "all"));
    let p = producer(&proxy.bootstrap(), &carol);
    for i in 0..200u64 {
        let topic = if i % 10 == 0 { "secret" } else { "allowed-1" };
        let (key, value) = (i.to_string(), value_for(i));
        let record = BaseRecord::with_opaque_to(topic, Box::new(i))
            .key(&key)
            .payload(&value);
        p.send(record).map_err(|(e, _)| e).expect("queue record");
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60)).expect("flush");
    let failed = p.context().failed.lock().unwrap().clone();
    let delivered = p.context().delivered.lock().unwrap().clone();
    assert_eq!(
        failed.iter().map(|f| f.0).collect::<BTreeSet<_>>(),
        (0..200).step_by(10).collect::<BTreeSet<_>>(),
        "exactly the records for 'secret' fail"
    );
    assert!(
        failed
            .iter()
            .all(|f| f.1.contains("Topic authorization failed")),
        "{failed:?}"
    );
    assert_eq!(delivered.len(), 180);
    let read = rdkafka_consume(&proxy.bootstrap(), "allowed-1", 1, 180, &alice);
    assert_eq!(read.len(), 180);

    // Raw requests as carol: a denied group, an allowed one, a denied topic.
    let mut c = RawClient::connect(&proxy.bootstrap()).unwrap();
    assert_eq!(scram_login(&mut c, "carol", "carol-pw").error_code, 0);
    let heartbeat = |group: &str| {
        HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_member_id(StrBytes::from_static_str("m"))
    };
    let r: HeartbeatResponse = c.call(ApiKey::Heartbeat, 4, &heartbeat("bad-group"));
    assert_eq!(r.error_code, 30, "GROUP_AUTHORIZATION_FAILED");
    let r: HeartbeatResponse = c.call(ApiKey::Heartbeat, 4, &heartbeat("good-group"));
    assert_ne!(r.error_code, 30, "an allowed group reaches the cluster");
    let create = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("secret-2")))
            .with_num_partitions(1)
            .with_replication_factor(1)])
        .with_timeout_ms(5000);
    // Metadata shows carol only her topics; one asked for by name that is
    // not hers comes back TOPIC_AUTHORIZATION_FAILED.
    let m: MetadataResponse = c.call(
        ApiKey::Metadata,
        1,
        &MetadataRequest::default().with_topics(None),
    );
    let names: Vec<String> = m
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect();
    assert_eq!(names, vec!["allowed-1".to_owned()]);
    let named = MetadataRequest::default().with_topics(Some(
        ["allowed-1", "secret"]
            .iter()
            .map(|n| {
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str(n))))
            })
            .collect(),
    ));
    let m: MetadataResponse = c.call(ApiKey::Metadata, 4, &named);
    let codes: Vec<(String, i16, usize)> = m
        .topics
        .iter()
        .map(|t| {
            let name = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
            (name, t.error_code, t.partitions.len())
        })
        .collect();
    assert_eq!(
        codes,
        vec![("allowed-1".to_owned(), 0, 1), ("secret".to_owned(), 29, 0)]
    );
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 5, &create);
    assert_eq!(r.topics[0].error_code, 29, "TOPIC_AUTHORIZATION_FAILED");
    assert_eq!(
        r.topics[0].error_message.as_deref(),
        Some("topic 'secret-2' is not in the allow-list of user 'carol'")
    );
}
