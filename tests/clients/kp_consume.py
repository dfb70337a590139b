"""Reads topics (one, or several separated by commas) from the beginning with kafka-python (a pure-Python Kafka
client, independent of librdkafka) and prints one line per record:
`partition offset key value_ok`, where value_ok says the value is exactly
the 1 KiB the producer side derives from the key."""

import argparse
import json
import os
import sys
import time

from kafka import KafkaConsumer, TopicPartition


def security() -> dict:
    """Extra client settings (TLS, SASL) as JSON in KP_SECURITY, so the
    same script runs against a plain or a secured listener."""
    return json.loads(os.environ.get("KP_SECURITY", "{}"))


def expected(key: bytes) -> bytes:
    return (b"%08d" % int(key)) * 128


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True, help="topic, or topics separated by commas")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument(
        "--until-idle",
        type=float,
        help="with --count 0: read at least --at-least records, then until no "
        "record has come for this many seconds (a count taken from watermarks "
        "is too low where a broker misreports its log ends)",
    )
    ap.add_argument("--at-least", type=int, default=0)
    ap.add_argument(
        "--group",
        help="read as a member of this consumer group (subscribed, committing "
        "after each poll) instead of assigning every partition",
    )
    args = ap.parse_args()

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **security(),
    )
    deadline = time.monotonic() + args.timeout
    tps = partitions_of(consumer, args.topic, deadline)
    if args.group:
        # Subscribed once the topics' partitions are known, so the first
        # assignment already covers them (a rejoin for them is a second
        # round some coordinators answer without a new generation).
        consumer.subscribe(args.topic.split(","))
    else:
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)

    seen = 0
    out = sys.stdout
    last_record = time.monotonic()
    while seen < args.count or (args.count == 0 and args.until_idle):
        idle = time.monotonic() - last_record
        if args.count == 0 and seen >= args.at_least and idle > args.until_idle:
            break
        if time.monotonic() > deadline:
            print("timed out after %d of %d records" % (seen, args.count), file=sys.stderr)
            out.flush()
            return 1
        batches = consumer.poll(timeout_ms=500, max_records=10000)
        if batches:
            last_record = time.monotonic()
        for tp, records in sorted(batches.items(), key=lambda kv: kv[0].partition):
            for r in records:
                ok = 1 if r.value == expected(r.key) else 0
                out.write("%d %d %s %d\n" % (r.partition, r.offset, r.key.decode(), ok))
                seen += 1
        if args.group and batches:
            consumer.commit()
    out.flush()
    consumer.close()
    return 0


def partitions_of(consumer, topics, deadline):
    """Every partition of `topics` (comma-separated), once metadata has them."""
    tps = []
    for topic in topics.split(","):
        partitions = None
        while not partitions:
            if time.monotonic() > deadline:
                raise SystemExit("no partitions for topic %s" % topic)
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                time.sleep(0.2)
        tps += [TopicPartition(topic, p) for p in sorted(partitions)]
    return tps


if __name__ == "__main__":
    sys.exit(main())
