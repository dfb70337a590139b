"""Demo traffic through the proxy with kafka-python: create a topic, write
records, read them back, and show where they landed upstream."""

import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

proxy, old_cluster, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


def read_all(bootstrap):
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
    brokers = sorted((b.node_id, b.host, b.port) for b in consumer._client.cluster.brokers())
    consumer.close()
    return records, brokers


admin = KafkaAdminClient(bootstrap_servers=proxy)
try:
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    print(f"  created topic '{topic}' (3 partitions) through the proxy")
except TopicAlreadyExistsError:
    pass
admin.close()

producer = KafkaProducer(bootstrap_servers=proxy, acks="all")
for i in range(count):
    producer.send(topic, key=str(i).encode(), value=f"order {i}".encode())
producer.flush()
producer.close()
print(f"  produced {count} records through the proxy (acks=all)")

records, brokers = read_all(proxy)
print(f"  consumed {len(records)} records back through the proxy")
print("  brokers the client sees (virtual; every address is the proxy's):")
for node, host, port in brokers:
    print(f"    node {node:>5}  {host}:{port}")
direct, _ = read_all(old_cluster)
print(f"  reading cluster 'old' directly finds {len(direct)} records in '{topic}'")
ok = len(records) == count and len(direct) == count
print("  OK" if ok else "  MISMATCH")
sys.exit(0 if ok else 1)
