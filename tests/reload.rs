//! `switchyard reload` and SIGHUP, with real brokers and real clients: what
//! a reload changes reaches connected clients without dropping them, and a
//! change that cannot apply while running is refused whole, with the
//! reason, changing nothing.

mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use harness::clients::{cluster_records, create_topic_with, indices, produce_range, producer};
use harness::raw::RawClient;
use harness::security::{scram_login, tls_api_versions, user_toml, Pki};
use harness::{wait_for, Broker, Proxy, ProxySetup};
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};
use rdkafka::producer::Producer;
use switchyard::auth::credentials::Mechanism;

const ALICE_PW: &str = "alice-Pa55word";
const CAROL_PW: &str = "carol-Pa55word";

/// Rewrites the proxy's config file with `edit`.
fn edit(proxy: &Proxy, edit: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(&proxy.config_path).expect("read proxy.toml");
    std::fs::write(&proxy.config_path, edit(text)).expect("write proxy.toml");
}

/// `switchyard reload`: whether it succeeded, and what it printed.
fn reload(proxy: &Proxy) -> (bool, String) {
    let out = proxy.cli(&["reload"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn scram(user: &'static str, password: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", user),
        ("sasl.password", password),
    ]
}

/// Whether `user` can log in to the proxy now (SCRAM-SHA-512).
fn logs_in(proxy: &Proxy, user: &str, password: &str) -> bool {
    let mut c = RawClient::connect(&proxy.bootstrap()).expect("connect");
    scram_login(&mut c, user, password).error_code == 0
}

/// The topics a Metadata request for all topics shows on `client`.
fn topics_shown(client: &mut RawClient) -> BTreeSet<String> {
    let answer: MetadataResponse = client.call(
        ApiKey::Metadata,
        9,
        &MetadataRequest::default().with_topics(None),
    );
    answer
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect()
}

#[test]
fn a_reload_changes_users_rules_and_clusters_under_connected_clients() {
    let (old, new, third) = (
        Broker::start("rl-old"),
        Broker::start("rl-new"),
        Broker::start("rl-third"),
    );
    let mut setup = ProxySetup::two(&old, &new);
    setup.secured = true;
    setup.proxy_extra = "[proxy.sasl]\nmechanisms = [\"SCRAM-SHA-512\", \"PLAIN\"]\n".into();
    let carol = user_toml("carol", Mechanism::ScramSha512, CAROL_PW);
    setup.extra = format!(
        "{}\n{carol}topics = [\"kept*\", \"orders\"]\n",
        user_toml("alice", Mechanism::ScramSha512, ALICE_PW),
    );
    let proxy = Proxy::start(setup);
    let alice = scram("alice", ALICE_PW);
    create_topic_with(&proxy.bootstrap(), "kept", 2, &alice);
    create_topic_with(&proxy.bootstrap(), "orders", 1, &alice);

    // Carol, connected twice: a librdkafka producer writing through the
    // reload, and a raw connection that asks for metadata either side.
    let bootstrap = proxy.bootstrap();
    let writer = std::thread::spawn(move || {
        let mut settings = scram("carol", CAROL_PW);
        settings.extend([("acks", "all"), ("linger.ms", "2")]);
        let p = producer(&bootstrap, &settings);
        produce_range(&p, "kept", 0..3000, |i| {
            if i % 10 == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        p.flush(Duration::from_secs(60)).expect("flush");
        let failed = p.context().failed.lock().unwrap().clone();
        let delivered = p.context().delivered.lock().unwrap().len();
        (failed, delivered)
    });
    let mut raw = RawClient::connect(&proxy.bootstrap()).expect("connect");
    assert_eq!(scram_login(&mut raw, "carol", CAROL_PW).error_code, 0);
    let shown = topics_shown(&mut raw);
    assert!(
        shown.contains("kept") && shown.contains("orders"),
        "{shown:?}"
    );
    assert!(!logs_in(&proxy, "bob", "bob-pw"), "no bob yet");
    std::thread::sleep(Duration::from_millis(1000));

    // Carol's password and allow-list change (a reconnect would now fail
    // to log in), bob arrives, a third cluster and two rules come.
    let new_carol = user_toml("carol", Mechanism::ScramSha512, "carol-New-pw");
    edit(&proxy, |text| {
        let text = text.replace(
            &format!("{carol}topics = [\"kept*\", \"orders\"]\n"),
            &format!("{new_carol}topics = [\"kept*\"]\n"),
        );
        format!(
            "{text}\n{}\n[clusters.third]\nbootstrap = [\"{}\"]\nnode_id_base = 3000\n\n\
             [[routes.topic]]\npattern = \"third.*\"\nproduce = \"third\"\nfetch = \"third\"\n\n\
             [[routes.topic]]\npattern = \"fresh.*\"\nproduce = \"new\"\nfetch = \"new\"\n",
            user_toml("bob", Mechanism::ScramSha512, "bob-pw"),
            third.addr(),
        )
    });
    let (ok, out) = reload(&proxy);
    assert!(ok, "{out}");
    assert!(
        out.contains("config reloaded: ") && out.contains("users") && out.contains("routes.topic"),
        "{out}"
    );
    assert!(out.contains("cluster 'third' added"), "{out}");

    // The connected raw client sees carol's new allow-list at once.
    let shown = topics_shown(&mut raw);
    assert!(
        shown.contains("kept") && !shown.contains("orders"),
        "{shown:?}"
    );
    let (failed, delivered) = writer.join().expect("carol's producer");
    assert_eq!(failed, vec![], "no record of carol's failed");
    assert_eq!(delivered, 3000);
    assert_eq!(
        indices(&cluster_records(&old.addr(), "kept", 2)),
        (0..3000).collect(),
        "every record on 'old'"
    );
    assert!(logs_in(&proxy, "bob", "bob-pw"), "bob added");
    assert!(!logs_in(&proxy, "carol", CAROL_PW), "carol's old password");
    assert!(logs_in(&proxy, "carol", "carol-New-pw"));

    // The new rules and the new cluster carry traffic.
    let status = proxy.json("status");
    assert!(
        status["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "third"),
        "{status}"
    );
    // Node ids from 3000: its port (base + 3111) stays below the kernel's
    // ephemeral ports, where a client connection could take it first.
    let virtual_third = proxy.virtual_port(3000 + harness::TANSU_NODE_ID);
    wait_for(
        "the third cluster's virtual broker",
        Duration::from_secs(30),
        || std::net::TcpStream::connect(("127.0.0.1", virtual_third)).ok(),
    );
    for (topic, cluster, absent) in [("third.t", &third, &old), ("fresh.t", &new, &old)] {
        create_topic_with(&proxy.bootstrap(), topic, 1, &alice);
        let mut settings = alice.clone();
        settings.push(("acks", "all"));
        let p = producer(&proxy.bootstrap(), &settings);
        produce_range(&p, topic, 0..100, |_| {});
        p.flush(Duration::from_secs(60)).expect("flush");
        assert_eq!(*p.context().failed.lock().unwrap(), vec![], "{topic}");
        assert_eq!(
            indices(&cluster_records(&cluster.addr(), topic, 1)),
            (0..100).collect(),
            "{topic}"
        );
        assert!(
            cluster_records(&absent.addr(), topic, 1).is_empty(),
            "{topic} only where its rule says"
        );
    }

    // What cannot change live is refused, and nothing else changes with
    // it: dave, added alongside, cannot log in.
    let dave = user_toml("dave", Mechanism::ScramSha512, "dave-pw");
    let listen = format!("listen = \"{}\"", proxy.bootstrap());
    let elsewhere = format!("listen = \"127.0.0.1:{}\"", harness::free_port());
    edit(&proxy, |text| {
        format!("{}\n{dave}", text.replace(&listen, &elsewhere))
    });
    let (ok, out) = reload(&proxy);
    assert!(!ok, "{out}");
    assert!(
        out.contains("proxy.listen: cannot change while the proxy runs"),
        "{out}"
    );
    assert!(!logs_in(&proxy, "dave", "dave-pw"), "nothing changed");

    // A rule that would move a topic that exists is refused, naming it.
    edit(&proxy, |text| {
        format!(
            "{}\n[[routes.topic]]\npattern = \"kept\"\nproduce = \"new\"\nfetch = \"new\"\n",
            text.replace(&elsewhere, &listen)
        )
    });
    let (ok, out) = reload(&proxy);
    assert!(!ok, "{out}");
    assert!(out.contains("topic 'kept' exists"), "{out}");
    assert!(!logs_in(&proxy, "dave", "dave-pw"), "nothing changed");

    // SIGHUP reloads too.
    edit(&proxy, |text| {
        text.replace(
            "\n[[routes.topic]]\npattern = \"kept\"\nproduce = \"new\"\nfetch = \"new\"\n",
            "",
        )
    });
    proxy.signal(libc::SIGHUP);
    wait_for("dave, after SIGHUP", Duration::from_secs(10), || {
        logs_in(&proxy, "dave", "dave-pw").then_some(())
    });
    assert!(
        proxy.log().contains("config reloaded"),
        "the reload is logged"
    );
}

#[test]
fn renewed_certificates_and_passwords_apply_without_a_restart() {
    // Proxy A stands in for a cluster that needs TLS and SCRAM; proxy B
    // reaches it with a CA file and a password file. Both renew: A's
    // server certificate (from another CA) and the password it expects,
    // B's CA file and password file, each rewritten in place.
    let broker = Broker::start("rl-tls");
    let (before, after) = (Pki::new(), Pki::new());
    let mut a = ProxySetup::two(&broker, &broker);
    a.clusters.truncate(1);
    a.secured = true;
    a.proxy_extra = format!(
        "{}\n[proxy.sasl]\nmechanisms = [\"SCRAM-SHA-256\"]\n",
        before.proxy_tls_toml(false)
    );
    a.extra = user_toml("proxy-b", Mechanism::ScramSha256, "b-Pass");
    let a = Proxy::start(a);

    let scratch = harness::Scratch::new("rl-tls");
    let (ca_file, pw_file) = (scratch.path("ca.pem"), scratch.path("pw"));
    std::fs::copy(&before.ca, &ca_file).unwrap();
    std::fs::write(&pw_file, "b-Pass").unwrap();
    let mut b = ProxySetup::two(&broker, &broker);
    b.clusters.clear();
    b.upstreams = vec![("secured", a.bootstrap(), 0)];
    b.default_route = "secured";
    b.extra = format!(
        "[clusters.secured.tls]\nca = \"{}\"\nserver_name = \"localhost\"\n\n\
         [clusters.secured.sasl]\nmechanism = \"SCRAM-SHA-256\"\nusername = \"proxy-b\"\npassword_file = \"{}\"\n",
        ca_file.display(),
        pw_file.display()
    );
    let b = Proxy::start(b);
    harness::clients::create_topic(&b.bootstrap(), "renewed", 1);
    let first = producer(&b.bootstrap(), &[("acks", "all")]);
    produce_range(&first, "renewed", 0..500, |_| {});
    first.flush(Duration::from_secs(30)).unwrap();

    // A renews: the same files, another certificate; another password.
    std::fs::copy(&after.server_cert, &before.server_cert).unwrap();
    std::fs::copy(&after.server_key, &before.server_key).unwrap();
    let users_at = std::fs::read_to_string(&a.config_path)
        .unwrap()
        .find("[[users]]")
        .expect("a users block");
    edit(&a, |text| {
        format!(
            "{}{}",
            &text[..users_at],
            user_toml("proxy-b", Mechanism::ScramSha256, "b-Renewed")
        )
    });
    let (ok, out) = reload(&a);
    assert!(ok, "{out}");
    assert!(
        tls_api_versions(&a.bootstrap(), &after, None).is_ok(),
        "A presents the renewed certificate"
    );
    assert!(
        tls_api_versions(&a.bootstrap(), &before, None).is_err(),
        "and no longer the old one"
    );
    // B still trusts only the old CA: its connections to A opened before
    // carry the first client on, which a reconnect could not.
    produce_range(&first, "renewed", 1000..1200, |_| {});
    first.flush(Duration::from_secs(60)).unwrap();
    assert_eq!(*first.context().failed.lock().unwrap(), vec![]);
    assert_eq!(first.context().delivered.lock().unwrap().len(), 700);

    // B renews its files in place; a client that connects now gets new
    // upstream connections, which need both.
    std::fs::copy(&after.ca, &ca_file).unwrap();
    std::fs::write(&pw_file, "b-Renewed").unwrap();
    let (ok, out) = reload(&b);
    assert!(ok, "{out}");
    assert!(out.contains("no key changed"), "{out}");
    let second = producer(&b.bootstrap(), &[("acks", "all")]);
    produce_range(&second, "renewed", 500..1000, |_| {});
    second.flush(Duration::from_secs(60)).unwrap();
    assert_eq!(*second.context().failed.lock().unwrap(), vec![]);
    assert_eq!(
        indices(&cluster_records(&broker.addr(), "renewed", 1)),
        (0..1200).collect()
    );
}
