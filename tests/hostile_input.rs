//! Bytes that are not Kafka, or Kafka that lies about its sizes: each such
//! connection is closed on its own, nothing else notices, and memory does
//! not jump.

mod harness;

use std::net::Shutdown;
use std::time::Duration;

use harness::raw::RawClient;
use harness::{Broker, Proxy, ProxySetup};
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};

const MAX_FRAME: usize = 1024 * 1024;

/// A request frame: size prefix, then `header_and_body`.
fn frame(header_and_body: &[u8]) -> Vec<u8> {
    let mut out = (header_and_body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(header_and_body);
    out
}

/// Metadata v4 whose topic array claims 2^31-1 entries and holds none:
/// a decoder that trusts the count tries to allocate tens of GiB.
fn metadata_bomb() -> Vec<u8> {
    let mut body = vec![0, 3, 0, 4, 0, 0, 0, 1, 0xff, 0xff]; // Metadata v4, corr 1, null client id
    body.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff, 1]);
    frame(&body)
}

/// The same lie in the flexible (compact) encoding of Metadata v12.
fn compact_metadata_bomb() -> Vec<u8> {
    let mut body = vec![0, 3, 0, 12, 0, 0, 0, 1, 0xff, 0xff, 0]; // header v2, no tags
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x07, 1, 0, 0]);
    frame(&body)
}

fn pseudo_random(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 56) as u8
        })
        .collect()
}

fn still_served(good: &mut RawClient) {
    let m: MetadataResponse = good.call(
        ApiKey::Metadata,
        1,
        &MetadataRequest::default().with_topics(Some(vec![])),
    );
    assert_eq!(
        m.brokers.len(),
        2,
        "the well-behaved client is still served"
    );
}

#[test]
fn hostile_frames_close_only_their_own_connection() {
    let old = Broker::start("hi-old");
    let new = Broker::start("hi-new");
    let mut setup = ProxySetup::two(&old, &new);
    setup.proxy_extra = format!("max_frame_bytes = {MAX_FRAME}");
    let mut proxy = Proxy::start(setup);
    let mut good = RawClient::connect(&proxy.bootstrap()).unwrap();
    still_served(&mut good);

    let mut produce_v99 = vec![0, 0, 0, 99, 0, 0, 0, 1, 0xff, 0xff];
    produce_v99.extend_from_slice(&[0; 16]);
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        (
            "HTTP request",
            b"GET / HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
            false,
        ),
        ("random bytes", pseudo_random(4096, 7), false),
        (
            "size over the limit by one",
            ((MAX_FRAME + 1) as i32).to_be_bytes().to_vec(),
            false,
        ),
        ("size 2^31-1", vec![0x7f, 0xff, 0xff, 0xff], false),
        ("negative size", vec![0xff, 0xff, 0xff, 0xfe], false),
        (
            "frame cut short",
            frame(&[0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 0])[..9].to_vec(),
            true,
        ),
        ("header cut short", frame(&[0, 3, 0, 1, 0, 0]), false),
        (
            "unknown API key",
            frame(&[0x27, 0x0f, 0, 0, 0, 0, 0, 1, 0xff, 0xff]),
            false,
        ),
        ("unsupported Produce version", frame(&produce_v99), false),
        ("Metadata bomb", metadata_bomb(), false),
        ("compact Metadata bomb", compact_metadata_bomb(), false),
        (
            "random body after a Metadata header",
            frame(
                &[
                    &[0, 3, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0][..],
                    &pseudo_random(64, 3),
                ]
                .concat(),
            ),
            false,
        ),
    ];
    for (what, bytes, then_close_write) in &cases {
        let mut bad = RawClient::connect(&proxy.bootstrap()).unwrap();
        bad.send_bytes(bytes).unwrap();
        if *then_close_write {
            bad.shutdown(Shutdown::Write);
        }
        assert!(
            bad.closed_by_peer(Duration::from_secs(5)),
            "{what}: connection closed by the proxy"
        );
        still_served(&mut good);
    }
    assert_eq!(
        proxy.metric("switchyard_client_protocol_errors_total"),
        cases.len() as f64,
        "each hostile connection counted once as a protocol error"
    );

    // Hundreds of bombs, on virtual broker listeners too: memory stays flat.
    let rss_before = proxy.rss_kib();
    let targets = [
        proxy.bootstrap(),
        format!("127.0.0.1:{}", proxy.virtual_port(111)),
    ];
    for i in 0..300 {
        let mut bad = RawClient::connect(&targets[i % 2]).unwrap();
        let bomb = if i % 3 == 0 {
            compact_metadata_bomb()
        } else {
            metadata_bomb()
        };
        bad.send_bytes(&bomb).unwrap();
        assert!(
            bad.closed_by_peer(Duration::from_secs(5)),
            "bomb {i} closed"
        );
    }
    still_served(&mut good);
    let rss_after = proxy.rss_kib();
    assert!(
        rss_after < rss_before + 16 * 1024,
        "RSS went from {rss_before} KiB to {rss_after} KiB"
    );
    assert!(proxy.is_running());
}

/// Metadata on a fresh connection from another address: the proxy still
/// serves well-behaved clients.
fn fresh_client_served(proxy: &Proxy) {
    let mut good = RawClient::connect_from("127.0.0.2", &proxy.bootstrap()).unwrap();
    still_served(&mut good);
}

/// Once a connection from 127.0.0.1 closes, a new one from there is served
/// again (the cap counts open connections, not attempts).
fn a_place_frees_up(proxy: &Proxy) {
    harness::wait_for("a place to free up", Duration::from_secs(5), || {
        let mut again = RawClient::connect(&proxy.bootstrap()).ok()?;
        again
            .try_call::<_, MetadataResponse>(
                ApiKey::Metadata,
                1,
                &MetadataRequest::default().with_topics(Some(vec![])),
            )
            .ok()
    });
}

#[test]
fn slow_idle_and_crowding_clients_are_cut_off_and_others_still_served() {
    let old = Broker::start("sl-old");
    let new = Broker::start("sl-new");
    let mut setup = ProxySetup::two(&old, &new);
    setup.proxy_extra =
        "client_idle_timeout_ms = 2000\nclient_frame_timeout_ms = 500\nmax_connections_per_ip = 20"
            .into();
    let proxy = Proxy::start(setup);

    // A frame begun and never finished: dropped after the frame timeout.
    let mut slow = RawClient::connect(&proxy.bootstrap()).unwrap();
    slow.send_bytes(&[0, 0, 0]).unwrap();
    assert!(
        slow.closed_by_peer(Duration::from_secs(5)),
        "half-sent frame dropped"
    );
    // One byte every 200 ms: each byte is progress, the frame never ends.
    let mut dripping = RawClient::connect(&proxy.bootstrap()).unwrap();
    let mut dropped = false;
    for byte in frame(&[0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 0]) {
        if dripping.send_bytes(&[byte]).is_err() {
            dropped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        dropped || dripping.closed_by_peer(Duration::from_secs(5)),
        "dripping client dropped"
    );
    fresh_client_served(&proxy);
    // Silence: dropped after the idle timeout.
    let mut idle = RawClient::connect(&proxy.bootstrap()).unwrap();
    assert!(
        idle.closed_by_peer(Duration::from_secs(6)),
        "idle client dropped"
    );
    fresh_client_served(&proxy);

    // Twenty connections from one address are allowed, the next is not;
    // another address is unaffected.
    let crowd: Vec<RawClient> = (0..20)
        .map(|_| RawClient::connect(&proxy.bootstrap()).unwrap())
        .collect();
    let mut one_more = RawClient::connect(&proxy.bootstrap()).unwrap();
    assert!(
        one_more.closed_by_peer(Duration::from_secs(2)),
        "21st connection from one address refused"
    );
    fresh_client_served(&proxy);
    assert_eq!(
        proxy.metric("switchyard_client_connections_refused_total"),
        1.0
    );
    drop(crowd);
    a_place_frees_up(&proxy);
    assert_eq!(
        proxy.metric("switchyard_client_protocol_errors_total"),
        2.0,
        "the slow and dripping clients"
    );
}

/// ApiVersions v3 requests, `n` of them back to back, correlation ids from 1.
fn api_versions_requests(n: i32) -> Vec<u8> {
    (1..=n)
        .flat_map(|corr| {
            let mut body = vec![0, 18, 0, 3];
            body.extend(corr.to_be_bytes());
            body.extend([0xff, 0xff, 0]); // null client id, no header tags
            body.extend([2, b's', b'y', 2, b'1', 0]); // software name, version, tags
            frame(&body)
        })
        .collect()
}

#[test]
fn a_client_that_never_reads_its_answers_holds_bounded_memory() {
    let old = Broker::start("nr-old");
    let new = Broker::start("nr-new");
    let mut proxy = Proxy::start(ProxySetup::two(&old, &new));
    let mut good = RawClient::connect_from("127.0.0.2", &proxy.bootstrap()).unwrap();
    still_served(&mut good);
    let rss_before = proxy.rss_kib();

    // A client pipelining requests and reading nothing: once `max_in_flight`
    // answers wait and the socket buffers are full, the proxy stops reading
    // it, so its writes stall long before 256 MiB have gone out.
    const LIMIT: usize = 256 * 1024 * 1024;
    let batch = api_versions_requests(1000);
    let mut greedy = RawClient::connect(&proxy.bootstrap()).unwrap();
    let mut sent = 0;
    for _ in 0..4 {
        sent += greedy.send_until_stalled(&batch, LIMIT - sent, Duration::from_secs(2));
        still_served(&mut good);
    }
    assert!(
        sent < 64 * 1024 * 1024,
        "the proxy kept reading a client that reads nothing: {sent} bytes taken"
    );
    fresh_client_served(&proxy);
    let rss_after = proxy.rss_kib();
    eprintln!("non-reading client: {sent} bytes taken, RSS {rss_before} -> {rss_after} KiB");
    assert!(
        rss_after < rss_before + 16 * 1024,
        "RSS went from {rss_before} KiB to {rss_after} KiB while {sent} bytes of requests waited"
    );

    // Its answers were held back, not dropped: they come in order once it reads.
    for corr in 1..=3 {
        let answer = greedy.read_frame().unwrap();
        assert_eq!(answer.response_correlation_id(), Some(corr));
    }
    drop(greedy);
    still_served(&mut good);
    assert!(proxy.is_running());
    assert_eq!(
        proxy.metric("switchyard_client_protocol_errors_total"),
        0.0,
        "a slow reader is not a protocol error"
    );
}

#[test]
fn ten_thousand_connections_from_one_address_are_capped_and_counted() {
    const CAP: usize = 50;
    const ATTEMPTS: usize = 10_000;
    let old = Broker::start("cc-old");
    let new = Broker::start("cc-new");
    let mut setup = ProxySetup::two(&old, &new);
    setup.proxy_extra = format!("max_connections_per_ip = {CAP}");
    let mut proxy = Proxy::start(setup);
    let mut other = RawClient::connect_from("127.0.0.2", &proxy.bootstrap()).unwrap();
    still_served(&mut other);
    let rss_before = proxy.rss_kib();

    // The first CAP connections from 127.0.0.1 are admitted and stay open;
    // every later attempt is closed by the proxy without a byte, while
    // 127.0.0.2 is served all along.
    let mut admitted: Vec<RawClient> = (0..CAP)
        .map(|_| RawClient::connect(&proxy.bootstrap()).unwrap())
        .collect();
    still_served(&mut admitted[0]);
    still_served(&mut admitted[CAP - 1]);
    for attempt in CAP..ATTEMPTS {
        let mut refused = RawClient::connect(&proxy.bootstrap()).unwrap();
        assert!(
            refused.closed_by_peer(Duration::from_secs(5)),
            "attempt {attempt} over the cap of {CAP} was not closed"
        );
        if attempt % 1000 == 0 {
            still_served(&mut other);
            fresh_client_served(&proxy);
        }
    }
    assert_eq!(
        proxy.metric("switchyard_client_connections_refused_total"),
        (ATTEMPTS - CAP) as f64,
        "every attempt over the cap counted once"
    );
    still_served(&mut admitted[CAP / 2]);
    fresh_client_served(&proxy);
    let rss_after = proxy.rss_kib();
    eprintln!("{ATTEMPTS} connection attempts: RSS {rss_before} -> {rss_after} KiB");
    assert!(
        rss_after < rss_before + 16 * 1024,
        "RSS went from {rss_before} KiB to {rss_after} KiB over {ATTEMPTS} attempts"
    );

    // Closing an admitted connection frees its place for the next one.
    admitted.truncate(CAP - 1);
    a_place_frees_up(&proxy);
    assert!(proxy.is_running());
    assert_eq!(proxy.metric("switchyard_client_protocol_errors_total"), 0.0);
}

/// A broker that answers ApiVersions properly and every Metadata request
/// with a broker array claiming the most entries its encoding can, and
/// nothing behind it; counts the Metadata answers it sent.
fn hostile_broker() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::ApiVersionsResponse;
    use kafka_protocol::protocol::Encodable;
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let bombs = std::sync::Arc::new(AtomicUsize::new(0));
    let sent = bombs.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let sent = sent.clone();
            std::thread::spawn(move || loop {
                let mut size = [0; 4];
                if stream.read_exact(&mut size).is_err() {
                    return;
                }
                let mut request = vec![0; i32::from_be_bytes(size).clamp(0, 1 << 20) as usize];
                if stream.read_exact(&mut request).is_err() || request.len() < 8 {
                    return;
                }
                let api = i16::from_be_bytes([request[0], request[1]]);
                let version = i16::from_be_bytes([request[2], request[3]]);
                let mut answer = request[4..8].to_vec(); // correlation id
                match ApiKey::try_from(api) {
                    Ok(ApiKey::ApiVersions) => {
                        let keys =
                            [(ApiKey::Metadata, 12), (ApiKey::ApiVersions, 3)].map(|(key, max)| {
                                ApiVersion::default()
                                    .with_api_key(key as i16)
                                    .with_max_version(max)
                            });
                        let mut body = bytes::BytesMut::new();
                        ApiVersionsResponse::default()
                            .with_api_keys(keys.to_vec())
                            .encode(&mut body, version.min(3))
                            .unwrap();
                        answer.extend_from_slice(&body);
                    }
                    Ok(ApiKey::Metadata) => {
                        if version >= 9 {
                            answer.push(0); // response header tags
                        }
                        if version >= 3 {
                            answer.extend([0; 4]); // throttle
                        }
                        if version >= 9 {
                            answer.extend([0xff, 0xff, 0xff, 0xff, 0x0f]);
                        } else {
                            answer.extend(i32::MAX.to_be_bytes());
                        }
                        sent.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => return,
                }
                let framed = [&(answer.len() as i32).to_be_bytes()[..], &answer].concat();
                if stream.write_all(&framed).is_err() {
                    return;
                }
            });
        }
    });
    (addr, bombs)
}

#[test]
fn a_broker_answering_with_hostile_counts_fails_only_its_own_cluster() {
    use std::sync::atomic::Ordering;
    let old = Broker::start("hb-old");
    let new = Broker::start("hb-new");
    let (hostile, bombs) = hostile_broker();
    let mut setup = ProxySetup::two(&old, &new);
    setup.upstreams = vec![("hostile", hostile, 2000)];
    let mut proxy = Proxy::spawn(setup);
    // The good clusters come up while the hostile one is refused, again
    // and again (it is retried every second).
    let mut good = harness::wait_for("the proxy to serve", Duration::from_secs(30), || {
        RawClient::connect_from("127.0.0.2", &proxy.bootstrap()).ok()
    });
    harness::wait_for("three hostile answers", Duration::from_secs(30), || {
        (bombs.load(Ordering::SeqCst) >= 3).then_some(())
    });
    let rss_before = proxy.rss_kib();
    harness::wait_for("three more", Duration::from_secs(30), || {
        (bombs.load(Ordering::SeqCst) >= 6).then_some(())
    });
    assert!(
        proxy.is_running(),
        "the proxy survived; its log:\n{}",
        proxy.log()
    );
    still_served(&mut good);
    fresh_client_served(&proxy);
    let log = proxy.log();
    assert!(
        log.contains("malformed MetadataResponse: brokers: array claims"),
        "the refusal says what was wrong; log:\n{log}"
    );
    let rss_after = proxy.rss_kib();
    assert!(
        rss_after < rss_before + 16 * 1024,
        "RSS went from {rss_before} KiB to {rss_after} KiB"
    );
}
