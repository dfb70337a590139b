"""Demo traffic through the proxy with kafka-python.

`before PROXY OLD TOPIC N`: create the topic through the proxy, write N
records, read them back, show the brokers the client sees and where the
records landed. `after PROXY OLD NEW TOPIC N`: after the topic moved to the
new cluster, write N more with the same client settings and show where they
landed. `live PROXY TOPIC READY DONE`: a producer keeps writing to TOPIC and a
consumer group reads it, both through the proxy, while the topic is flipped
(the script writes file READY once the group reads, and stops writing once
file DONE exists); then checks the group read every acknowledged record
once, at offsets that run on without a gap across the flip."""

import os
import sys
import threading
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError


def read_all(bootstrap, topic, count):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = None
    deadline = time.monotonic() + 30
    while not partitions and time.monotonic() < deadline:
        partitions = consumer.partitions_for_topic(topic)
    tps = [TopicPartition(topic, p) for p in sorted(partitions or [])]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    records = []
    while len(records) < count and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    # A little longer, to be sure nothing beyond `count` is there.
    for batch in consumer.poll(timeout_ms=1000).values():
        records.extend(batch)
    brokers = sorted((b.node_id, b.host, b.port) for b in consumer._client.cluster.brokers())
    consumer.close()
    return records, brokers


def produce(proxy, topic, start, count):
    producer = KafkaProducer(bootstrap_servers=proxy, acks="all")
    for i in range(start, start + count):
        producer.send(topic, key=str(i).encode(), value=f"order {i}".encode())
    producer.flush()
    producer.close()
    print(f"  produced {count} records through the proxy (acks=all)")


def before(proxy, old, topic, count):
    admin = KafkaAdminClient(bootstrap_servers=proxy)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        print(f"  created topic '{topic}' (3 partitions) through the proxy")
    except TopicAlreadyExistsError:
        pass
    admin.close()
    produce(proxy, topic, 0, count)
    records, brokers = read_all(proxy, topic, count)
    print(f"  consumed {len(records)} records back through the proxy")
    print("  brokers the client sees (virtual; every address is the proxy's):")
    for node, host, port in brokers:
        print(f"    node {node:>5}  {host}:{port}")
    direct, _ = read_all(old, topic, count)
    print(f"  cluster 'old', read directly, holds {len(direct)} records of '{topic}'")
    return len(records) == count and len(direct) == count


def after(proxy, old, new, topic, count):
    produce(proxy, topic, count, count)
    on_new, _ = read_all(new, topic, count)
    on_old, _ = read_all(old, topic, count)
    print(f"  cluster 'new', read directly, holds {len(on_new)} records of '{topic}'")
    print(f"  cluster 'old', read directly, still holds {len(on_old)}")
    return len(on_new) == count and len(on_old) == count


def live(proxy, topic, ready, done):
    admin = KafkaAdminClient(bootstrap_servers=proxy)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    admin.close()
    acked, failed = set(), []
    stop = threading.Event()

    def write():
        producer = KafkaProducer(bootstrap_servers=proxy, acks="all", retries=100, linger_ms=5)
        i = 0
        while not stop.is_set():
            future = producer.send(topic, key=str(i).encode(), value=f"payment {i}".encode())
            future.add_callback(lambda _, i=i: acked.add(i))
            future.add_errback(lambda e, i=i: failed.append((i, str(e))))
            i += 1
            time.sleep(0.01)
        producer.flush()
        producer.close()

    writer = threading.Thread(target=write)
    writer.start()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=proxy,
        group_id="demo-readers",
        auto_offset_reset="earliest",
        enable_auto_commit=True,
    )
    seen = {}  # key -> (partition, offset)
    duplicates = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=200).values():
            for r in batch:
                key = int(r.key)
                duplicates += key in seen
                seen[key] = (r.partition, r.offset)
        if seen and not os.path.exists(ready):
            open(ready, "w").close()
        if os.path.exists(done) and not stop.is_set():
            stop.set()
            writer.join()
        if stop.is_set() and acked <= set(seen):
            break
    consumer.close()
    stop.set()
    writer.join()
    by_partition = {}
    for partition, offset in seen.values():
        by_partition.setdefault(partition, []).append(offset)
    gapless = all(sorted(o) == list(range(min(o), min(o) + len(o))) for o in by_partition.values())
    missing = acked - set(seen)
    print(f"  the producer wrote {len(acked)} records through the flip, none failed: {not failed}")
    print(f"  group 'demo-readers' read {len(seen)} records, {duplicates} twice, "
          f"{len(missing)} missing")
    for partition in sorted(by_partition):
        offsets = by_partition[partition]
        print(f"    partition {partition}: offsets {min(offsets)}..{max(offsets)}, "
              f"{'no gap' if gapless else 'GAPS'}")
    return not failed and not missing and duplicates == 0 and gapless


phase = sys.argv[1]
if phase == "before":
    ok = before(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
elif phase == "live":
    ok = live(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
else:
    ok = after(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))
print("  OK" if ok else "  MISMATCH")
sys.exit(0 if ok else 1)
