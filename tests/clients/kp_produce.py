"""Produces records start..start+count with kafka-python (acks=all), keys the
decimal index and values the 1 KiB the consumer side checks, and prints one
line per acknowledged record: `index partition offset`. Any failed delivery
is printed to stderr and fails the run."""

import argparse
import json
import os
import sys
import time

from kafka import KafkaProducer


def security() -> dict:
    """Extra client settings (TLS, SASL) as JSON in KP_SECURITY, so the
    same script runs against a plain or a secured listener."""
    return json.loads(os.environ.get("KP_SECURITY", "{}"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--pause-every", type=int, default=10)
    ap.add_argument("--no-idempotence", action="store_true")
    ap.add_argument("--pause-ms", type=float, default=20)
    ap.add_argument(
        "--stop-file",
        help="stop sending (before --count is reached) once this file exists",
    )
    args = ap.parse_args()

    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap,
        acks="all",
        enable_idempotence=not args.no_idempotence,
        retries=2**31 - 1,
        max_in_flight_requests_per_connection=1 if args.no_idempotence else 5,
        delivery_timeout_ms=120000,
        linger_ms=5,
        **security(),
    )
    futures = []
    for i in range(args.start, args.start + args.count):
        if args.stop_file and os.path.exists(args.stop_file):
            break
        value = (b"%08d" % i) * 128
        futures.append((i, producer.send(args.topic, key=str(i).encode(), value=value)))
        if args.pause_every and i % args.pause_every == 0:
            time.sleep(args.pause_ms / 1000)
    producer.flush()
    failed = 0
    for i, f in futures:
        try:
            md = f.get(timeout=120)
            print("%d %d %d" % (i, md.partition, md.offset))
        except Exception as e:  # every failure is reported, none is swallowed
            failed += 1
            print("record %d failed: %r" % (i, e), file=sys.stderr)
    producer.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
