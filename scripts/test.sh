#!/usr/bin/env bash
# Runs the whole test suite: installs the brokers and clients the tests need
# (only when missing), then unit, integration and end-to-end tests against
# real tansu brokers with librdkafka, kafka-python and KafkaJS clients, then
# the demo, then every fuzz target for a bounded time.
#
# The proxy must be right on both tansu builds the harness knows: every
# test runs against tansu 0.6.0, and the tests of the stitched log, flips
# (of one topic and of many), producer ids, consumer groups, the state
# topic, the drain, the metrics, the console and the flip storms (one
# instance and three) run again against the later build
# (SWITCHYARD_BROKER=main). scripts/flip-storm.sh runs longer storms.
set -euo pipefail
cd "$(dirname "$0")/.."

# No module may import one that imports it back (see src/lib.rs).
python3 scripts/module_cycles.py

eval "$(bash scripts/install-deps.sh)"
export SWITCHYARD_TANSU SWITCHYARD_TANSU_MAIN SWITCHYARD_PYTHON SWITCHYARD_NODE_MODULES

# Integration tests each start their own brokers and proxy; two at a time
# suits a 2-core machine (naming no target, this run also builds
# examples/perf, which tests/perf_harness.rs runs as a program). The fleet
# storm (three instances, their producers and group) loads the machine on
# its own: it runs alone, after the rest.
SWITCHYARD_BROKER=0.6.0 cargo test -- --test-threads=2 \
    --skip a_fleet_flip_storm_across_three_instances_keeps_one_exact_log
SWITCHYARD_BROKER=0.6.0 cargo test --test storm a_fleet_flip_storm -- --test-threads=1
# One at a time against the later build.
SWITCHYARD_BROKER=main cargo test --test stitched --test flips --test flip_topics --test producer_ids \
    --test consumer_group --test state_topic --test shutdown --test observability --test console \
    --test reload -- --test-threads=1
SWITCHYARD_BROKER=main cargo test --test storm -- --test-threads=1
SWITCHYARD_BIN="${CARGO_TARGET_DIR:-target}/debug/switchyard" bash scripts/demo.sh
bash scripts/fuzz.sh
