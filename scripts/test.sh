#!/usr/bin/env bash
# Runs the whole test suite: installs the broker and clients the tests need
# (only when missing), then unit, integration and end-to-end tests against
# real tansu brokers with librdkafka and kafka-python clients, then the demo,
# then every fuzz target for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(bash scripts/install-deps.sh)"
export SWITCHYARD_TANSU SWITCHYARD_PYTHON

# Integration tests each start their own brokers and proxy; two at a time
# suits a 2-core machine.
cargo test -- --test-threads=2
SWITCHYARD_BIN="${CARGO_TARGET_DIR:-target}/debug/switchyard" bash scripts/demo.sh
bash scripts/fuzz.sh
