#!/usr/bin/env bash
# The long flip storm: the topic flips old <-> new 100 times (or
# SWITCHYARD_STORM_FLIPS) while an idempotent librdkafka producer and a
# kafka-python producer write and a librdkafka consumer group reads, all
# through the proxy, against each tansu build in turn. Prints the storm's
# producer delivery latencies and flip times; fails on any record lost,
# duplicated or reordered, or any error reaching a client. The test suite
# runs the same storm with 30 flips.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(bash scripts/install-deps.sh)"
export SWITCHYARD_TANSU SWITCHYARD_TANSU_MAIN SWITCHYARD_PYTHON SWITCHYARD_NODE_MODULES
export SWITCHYARD_STORM_FLIPS="${SWITCHYARD_STORM_FLIPS:-100}"

for broker in 0.6.0 main; do
    echo "== flip storm against tansu $broker, $SWITCHYARD_STORM_FLIPS flips"
    SWITCHYARD_BROKER="$broker" cargo test --test storm -- --nocapture 2>&1 |
        grep -E '^(flip storm:|test |test result:)|panicked|failed'
done
