#!/usr/bin/env bash
# Switchyard end to end on one machine: starts two local Kafka-compatible
# clusters (tansu), the proxy in front of them, and some traffic through
# it, then shows what happened and stops everything. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(bash scripts/install-deps.sh --demo)"
# The prebuilt broker when it could be had, else tansu 0.6.0 (built).
broker="$SWITCHYARD_TANSU_MAIN"
if [ ! -x "$broker" ]; then broker="$SWITCHYARD_TANSU"; fi
if [ -z "${SWITCHYARD_BIN:-}" ]; then
  cargo build --release --bin switchyard
  SWITCHYARD_BIN="${CARGO_TARGET_DIR:-target}/release/switchyard"
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { "$SWITCHYARD_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listening on port $1; logs in $work" >&2
  tail -n 20 "$work"/*.log >&2
  return 1
}

old_port=$(free_port); new_port=$(free_port); proxy_port=$(free_port)
# Virtual brokers listen on broker_port_base + node id (tansu brokers are
# node 111, so 111 for 'old' and 1111 for 'new'). Each cluster's 1000 ports
# stay below the ephemeral ports (32768 up) the proxy's own port came from.
base=$(( 20000 + RANDOM % 9000 ))

echo "1. starting two upstream clusters (tansu): old on $old_port, new on $new_port"
for c in old:$old_port new:$new_port; do
  name=${c%%:*}; port=${c##*:}
  "$broker" broker --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "memory://$name/" >"$work/$name.log" 2>&1 &
  pids+=($!)
  wait_port "$port"
done

cat >"$work/proxy.toml" <<TOML
[proxy]
listen = "127.0.0.1:$proxy_port"
advertised_host = "127.0.0.1"
broker_port_base = $base
cluster_id = "switchyard-demo"
admin_socket = "$work/switchyard.sock"
state_file = "$work/switchyard.state.json"

[clusters.old]
bootstrap = ["127.0.0.1:$old_port"]
node_id_base = 0

[clusters.new]
bootstrap = ["127.0.0.1:$new_port"]
node_id_base = 1000

[routes]
default = "old"
TOML

echo "2. starting switchyard on 127.0.0.1:$proxy_port in front of both"
"$SWITCHYARD_BIN" run -c "$work/proxy.toml" >"$work/proxy.log" 2>&1 &
pids+=($!)
wait_port "$proxy_port"
wait_port $(( base + 111 ))
wait_port $(( base + 1111 ))
grep -E "virtual broker listening" "$work/proxy.log" | sed 's/^/   proxy: /' || true

echo "3. traffic through the proxy with kafka-python"
"$SWITCHYARD_PYTHON" scripts/demo_traffic.py before "127.0.0.1:$proxy_port" "127.0.0.1:$old_port" orders 1000

echo "4. moving topic 'orders' to cluster 'new' at runtime (no client restarts)"
"$SWITCHYARD_BIN" flip orders --to new -c "$work/proxy.toml" | sed 's/^/   /'
"$SWITCHYARD_BIN" routes -c "$work/proxy.toml" | sed 's/^/   /'

echo "5. the same client settings, same bootstrap address: writes now land on 'new'"
"$SWITCHYARD_PYTHON" scripts/demo_traffic.py after "127.0.0.1:$proxy_port" "127.0.0.1:$old_port" "127.0.0.1:$new_port" orders 1000

echo "6. live: a producer keeps writing 'payments' and a consumer group reads it while it moves"
"$SWITCHYARD_PYTHON" scripts/demo_traffic.py live "127.0.0.1:$proxy_port" payments \
  "$work/reading" "$work/flipped" >"$work/live.out" 2>&1 &
live=$!
for _ in $(seq 1 300); do [ -e "$work/reading" ] && break; sleep 0.1; done
sleep 2
"$SWITCHYARD_BIN" flip payments --to new -c "$work/proxy.toml" | sed 's/^/   /'
sleep 2
touch "$work/flipped"
if ! wait "$live"; then cat "$work/live.out"; echo "   MISMATCH"; exit 1; fi
cat "$work/live.out"
echo "  the group crossed from 'old' to 'new' with its offsets running on, no restart"

echo "7. done: the clients only ever talked to 127.0.0.1:$proxy_port and its virtual brokers."
