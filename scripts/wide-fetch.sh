#!/usr/bin/env bash
# What full fetches cost the proxy for a consumer of 1,000 partitions: the
# proxy answers every Fetch outside a fetch session (KIP-227), so each one
# names every partition the consumer reads, and each answer names them all
# again. One tansu broker, the proxy in front of it, a topic of 1,000
# partitions; a librdkafka consumer (examples/perf) reads RECORDS records of
# 1 KiB through the proxy, then stays subscribed with nothing to read for
# IDLE seconds. Prints the Fetch requests the proxy forwarded, their bytes
# each way, and the proxy's CPU-seconds, for the reading and the idle part.
# Bounded: RECORDS (default 200,000) and IDLE (default 10 s).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/one-cluster.sh
records=${RECORDS:-200000}
idle=${IDLE:-10}
target=${CARGO_TARGET_DIR:-target}
tools=${SWITCHYARD_TOOLS:-$HOME/.cache/switchyard/tools}
tansu=${SWITCHYARD_TANSU:-$tools/bin/tansu}
cargo build --release --bin switchyard --example perf >&2
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
broker=127.0.0.1:$(port)
"$tansu" broker --listener-url "tcp://$broker" --advertised-listener-url "tcp://$broker" \
    --storage-engine memory://wide/ >"$work/tansu.log" 2>&1 &
for _ in $(seq 300); do # up to 30 s for the broker to listen
    python3 -c "import socket; socket.create_connection(('${broker%:*}', ${broker#*:}))" 2>/dev/null && break
    sleep 0.1
done
listen=127.0.0.1:$(port)
metrics=127.0.0.1:$(port)
base=$(python3 -c 'import random; print(random.randrange(20000, 50000))')
one_cluster_config "$work/proxy.toml" "$listen" "$base" "$broker" "$work" wide "$metrics"
"$target/release/switchyard" run -c "$work/proxy.toml" >"$work/proxy.log" 2>&1 &
pid=$!
for _ in $(seq 300); do # up to 30 s for the proxy to serve
    python3 -c "import urllib.request; urllib.request.urlopen('http://$metrics/ready')" 2>/dev/null && break
    kill -0 "$pid" || { tail -5 "$work/proxy.log" >&2; exit 1; }
    sleep 0.1
done
"$tansu" topic create wide --partitions "${PARTITIONS:-1000}" --broker "tcp://$broker" >/dev/null
"$target/release/examples/perf" produce --topic wide --num-records "$records" --record-size 1024 \
    --throughput -1 --bootstrap-server "$broker" --producer-props acks=1 linger.ms=20 >/dev/null
reading() { # fetches forwarded, bytes sent, bytes received, proxy CPU-seconds
    python3 - "$metrics" "$pid" <<'PY'
import os, sys, urllib.request
text = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics").read().decode()
def total(name, need=""):
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
               if l.startswith(name) and need in l)
fields = open(f"/proc/{sys.argv[2]}/stat").read().rsplit(")", 1)[1].split()
cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
print(total("switchyard_upstream_requests_total", 'api="Fetch"'),
      total("switchyard_upstream_sent_bytes_total"),
      total("switchyard_upstream_received_bytes_total"), cpu)
PY
}
before=$(reading)
"$target/release/examples/perf" consume --bootstrap-server "$listen" --topic wide \
    --messages "$records" --timeout 20000 >"$work/consume.out"
read_done=$(reading)
sleep "$idle" &
"$target/release/examples/perf" consume --bootstrap-server "$listen" --topic wide \
    --messages 1 --from-latest --timeout $((idle * 1000)) >/dev/null 2>&1 || true
idle_done=$(reading)
python3 - "$before" "$read_done" "$idle_done" "$records" "$idle" <<'PY'
import sys
b, r, i = ([float(x) for x in a.split()] for a in sys.argv[1:4])
records, idle = int(sys.argv[4]), int(sys.argv[5])
def part(name, x, y, per):
    fetches, sent, got, cpu = (y[k] - x[k] for k in range(4))
    print(f"{name}: {fetches:.0f} Fetch requests forwarded ({per(fetches)}), "
          f"{sent / max(fetches, 1) / 1024:.1f} KiB sent upstream per Fetch, "
          f"{got / 1e6:.1f} MB received, proxy CPU {cpu:.2f} s")
part(f"reading {records:,} records of 1 KiB from 1,000 partitions", b, r,
     lambda f: f"{records / max(f, 1):.0f} records per Fetch")
part(f"subscribed, nothing to read, {idle} s", r, i, lambda f: f"{f / idle:.1f} per second")
PY
