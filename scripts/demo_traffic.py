"""Demo traffic through the proxy with kafka-python.

`before PROXY OLD TOPIC N`: create the topic through the proxy, write N
records, read them back, show the brokers the client sees and where the
records landed. `after PROXY OLD NEW TOPIC N`: after the topic moved to the
new cluster, write N more with the same client settings and show where they
landed."""

import sys
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


phase = sys.argv[1]
if phase == "before":
    ok = before(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
else:
    ok = after(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))
print("  OK" if ok else "  MISMATCH")
sys.exit(0 if ok else 1)
