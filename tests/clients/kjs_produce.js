// Produces records start..start+count with KafkaJS (a third Kafka client,
// independent of librdkafka and kafka-python, that batches by default):
// keys the decimal index, values the 1 KiB the consumer side checks, sent
// in batches of --batch records spread over --partitions partitions. Prints
// one line per acknowledged record: `index partition offset`. Any failed
// send is printed to stderr and fails the run.
'use strict';

const { Kafka, logLevel } = require('kafkajs');

function args() {
  const out = { start: 0, batch: 100, pauseMs: 5, idempotent: false };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    switch (flag) {
      case '--bootstrap': out.bootstrap = value; break;
      case '--topic': out.topic = value; break;
      case '--start': out.start = Number(value); break;
      case '--count': out.count = Number(value); break;
      case '--partitions': out.partitions = Number(value); break;
      case '--batch': out.batch = Number(value); break;
      case '--pause-ms': out.pauseMs = Number(value); break;
      case '--idempotent': out.idempotent = value === 'true'; break;
      default: throw new Error(`unknown flag ${flag}`);
    }
  }
  for (const required of ['bootstrap', 'topic', 'count', 'partitions']) {
    if (out[required] === undefined) throw new Error(`--${required} is required`);
  }
  return out;
}

const valueFor = (i) => String(i).padStart(8, '0').repeat(128);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const a = args();
  const kafka = new Kafka({
    clientId: 'switchyard-test-kafkajs',
    brokers: [a.bootstrap],
    logLevel: logLevel.ERROR,
    retry: { retries: 50, initialRetryTime: 100, maxRetryTime: 2000 },
  });
  const producer = kafka.producer({
    allowAutoTopicCreation: false,
    idempotent: a.idempotent,
    maxInFlightRequests: 1,
  });
  await producer.connect();
  const lines = [];
  for (let first = a.start; first < a.start + a.count; first += a.batch) {
    const last = Math.min(first + a.batch, a.start + a.count);
    const byPartition = new Map();
    const messages = [];
    for (let i = first; i < last; i++) {
      const partition = i % a.partitions;
      messages.push({ key: String(i), value: valueFor(i), partition });
      if (!byPartition.has(partition)) byPartition.set(partition, []);
      byPartition.get(partition).push(i);
    }
    // One acknowledgement per partition: the batch's base offset; its
    // records follow it in the order they were sent.
    const acks = await producer.send({ topic: a.topic, acks: -1, messages });
    for (const ack of acks) {
      if (ack.errorCode !== 0) throw new Error(`partition ${ack.partition}: error ${ack.errorCode}`);
      const base = BigInt(ack.baseOffset);
      byPartition.get(ack.partition).forEach((i, k) => {
        lines.push(`${i} ${ack.partition} ${base + BigInt(k)}`);
      });
      byPartition.delete(ack.partition);
    }
    if (byPartition.size !== 0) {
      throw new Error(`no acknowledgement for partitions ${[...byPartition.keys()]}`);
    }
    if (a.pauseMs > 0) await sleep(a.pauseMs);
  }
  await producer.disconnect();
  process.stdout.write(lines.join('\n') + (lines.length ? '\n' : ''));
}

main().catch((e) => {
  process.stderr.write(`kafkajs producer failed: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
