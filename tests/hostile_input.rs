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
    assert_eq!(
        proxy.metric("switchyard_client_protocol_errors_total"),
        2.0,
        "the slow and dripping clients"
    );
}
