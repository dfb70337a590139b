#!/usr/bin/env bash
# Measures what the proxy costs: the perf example (Kafka's perf-test flags
# and lines on librdkafka) straight to one tansu broker and through the
# proxy in front of it, in interleaved rounds of one run, then prints a
# markdown table.
#
#   (a) full speed: RECORDS records of 1 KiB, acks=all, 6 partitions; each
#       path then reads its topic back with a fresh consumer group
#       (fetch.wait.max.ms=10, see below);
#   (b) a fixed rate of half the direct saturation measured in (a):
#       RECORDS/2 records, latency from the example's microsecond line.
#
# The proxy's CPU (utime+stime from /proc/PID/stat) is read before and after
# each of its rounds, per GB (10^9 bytes) of record payload moved, and its
# resident memory (VmRSS, VmHWM) at the end.
#
# Usage: scripts/perf-compare.sh [--records N] [--rounds N] [--also NAME=HOST:PORT]...
#   --records N  records of a full-speed round (SWITCHYARD_PERF_RECORDS, default 500000)
#   --rounds N   rounds of each kind (SWITCHYARD_PERF_ROUNDS, default 5)
#   --also NAME=HOST:PORT  one more path measured alongside, e.g. another
#                proxy in front of the same broker (topics are created through it)
# Needs tansu (bash scripts/install-deps.sh installs it): SWITCHYARD_TANSU, or
# ~/.cache/switchyard/tools/bin/tansu.
set -euo pipefail
. "$(dirname "$0")/one-cluster.sh"
cd "$(dirname "$0")/.."

records=${SWITCHYARD_PERF_RECORDS:-500000}
rounds=${SWITCHYARD_PERF_ROUNDS:-5}
paths=(direct proxy)
declare -A bootstrap
while [ $# -gt 0 ]; do
    case "$1" in
    --records) records=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --also)
        name=${2%%=*}
        [ "$name" != "$2" ] && [ -n "$name" ] || { echo "--also wants NAME=HOST:PORT, got '$2'" >&2; exit 2; }
        paths+=("$name")
        bootstrap[$name]=${2#*=}
        shift 2 ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done

tansu=${SWITCHYARD_TANSU:-$HOME/.cache/switchyard/tools/bin/tansu}
[ -x "$tansu" ] || { echo "tansu not found at $tansu: run 'bash scripts/install-deps.sh' (or set SWITCHYARD_TANSU)" >&2; exit 1; }

echo "building (release)..." >&2
cargo build --release --bin switchyard --example perf >&2
target=${CARGO_TARGET_DIR:-target}
switchyard=$target/release/switchyard
perf=$target/release/examples/perf

work=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-perf.XXXXXX")
broker_pid=
proxy_pid=
cleanup() {
    [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null && wait "$proxy_pid" 2>/dev/null
    [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
    if [ "${SWITCHYARD_PERF_KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits up to 30 s for HOST:PORT to accept connections while process $2 runs.
wait_port() {
    for _ in $(seq 300); do
        (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || { echo "it stopped before listening on $1:" >&2; tail -5 "$3" >&2; exit 1; }
        sleep 0.1
    done
    echo "nothing listens on $1 after 30 s; see $work" >&2
    exit 1
}

# --- one broker, the proxy in front of it ---------------------------------

broker=127.0.0.1:$(free_port)
RUST_LOG=warn "$tansu" broker --listener-url "tcp://$broker" --advertised-listener-url "tcp://$broker" \
    --storage-engine memory://perf/ >"$work/tansu.log" 2>&1 &
broker_pid=$!
wait_port "$broker" "$broker_pid" "$work/tansu.log"

# Virtual broker n listens on the base + n (tansu's broker is node 111), and
# the bootstrap port must lie outside the base's 1000 ports.
read -r proxy_port port_base < <(python3 -c 'import random, socket
def free(port):
    try:
        socket.socket().bind(("127.0.0.1", port)); return True
    except OSError:
        return False
while True:
    base = random.randrange(20000, 50000)
    listen = socket.socket(); listen.bind(("127.0.0.1", 0)); port = listen.getsockname()[1]; listen.close()
    if free(base + 111) and not base <= port < base + 1000:
        print(port, base); break')
proxy=127.0.0.1:$proxy_port
one_cluster_config "$work/proxy.toml" "$proxy" "$port_base" "$broker" "$work" perf
SWITCHYARD_LOG=warn "$switchyard" run -c "$work/proxy.toml" >"$work/proxy.log" 2>&1 &
proxy_pid=$!
wait_port "$proxy" "$proxy_pid" "$work/proxy.log"
wait_port "127.0.0.1:$((port_base + 111))" "$proxy_pid" "$work/proxy.log"
bootstrap[direct]=$broker
bootstrap[proxy]=$proxy

cpu_seconds() { # utime + stime of the proxy, in seconds
    python3 - "$proxy_pid" <<'EOF'
import os, sys
fields = open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")", 1)[1].split()
print((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
EOF
}
memory_kib() { # VmRSS and VmHWM of the proxy
    awk '/^VmRSS:/ {r = $2} /^VmHWM:/ {h = $2} END {print r, h}' "/proc/$proxy_pid/status"
}

# --- rounds ---------------------------------------------------------------

# tansu holds a Fetch for its whole max wait even when records are ready:
# with librdkafka's 500 ms the consumer measures that wait, not the path.
echo "fetch.wait.max.ms=10" >"$work/consumer.properties"

results=$work/results.tsv # kind path round out-file cpu-seconds
: >"$results"

# Creates or deletes a topic of a path: on the broker for the proxy as for
# direct (it is the same broker), through their own bootstrap for --also paths.
topic() {
    local at=${bootstrap[$2]}
    [ "$2" = proxy ] && at=$broker
    "$tansu" topic "$1" --broker "tcp://$at" "${@:3}" >"$work/topic.log" 2>&1 || {
        echo "tansu topic $1 ${*:3} at $at failed:" >&2
        cat "$work/topic.log" >&2
        exit 1
    }
}

# Runs one perf command for one path and files its output; $1 kind, $2
# path, $3 round, the rest the example's arguments. A failed run stops the
# script, showing what it printed.
measure() {
    local kind=$1 path=$2 round=$3 out=$work/$1-$2-$3.out before=0 after=0
    shift 3
    if [ "$path" = proxy ]; then before=$(cpu_seconds); fi
    if ! "$perf" "$@" >"$out" 2>"$out.err"; then
        echo "$kind round $round via $path failed:" >&2
        cat "$out" "$out.err" >&2
        exit 1
    fi
    if [ "$path" = proxy ]; then after=$(cpu_seconds); fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$kind" "$path" "$round" "$out" \
        "$(python3 -c "print($after - $before)")" >>"$results"
}

# The order of the paths turns each round, so none always goes first.
order() {
    local n=${#paths[@]} i
    for ((i = 0; i < n; i++)); do echo "${paths[$(((i + $1) % n))]}"; done
}

# The example's produce arguments: path, topic, records, records/s (-1: no limit).
produce_args() {
    echo produce --topic "$2" --num-records "$3" --record-size 1024 --throughput "$4" \
        --bootstrap-server "${bootstrap[$1]}" --producer-props acks=all
}

echo "warming up..." >&2
for path in "${paths[@]}"; do
    topic create "$path" warmup-$path --partitions 6
    measure warmup "$path" 0 $(produce_args "$path" warmup-$path $((records / 5)) -1)
    topic delete "$path" warmup-$path
done

for round in $(seq "$rounds"); do
    echo "full-speed round $round of $rounds..." >&2
    for path in $(order "$round"); do
        topic create "$path" full-$path-$round --partitions 6
        measure produce "$path" "$round" $(produce_args "$path" full-$path-$round "$records" -1)
    done
    for path in $(order "$round"); do
        measure consume "$path" "$round" consume --topic full-$path-$round --messages "$records" \
            --group perf-$path-$round --bootstrap-server "${bootstrap[$path]}" --timeout 30000 \
            --consumer.config "$work/consumer.properties"
        topic delete "$path" full-$path-$round
    done
done

half=$(python3 - "$results" <<'EOF'
import re, statistics, sys
rates = []
for kind, path, _, out, _ in (l.rstrip("\n").split("\t") for l in open(sys.argv[1])):
    if kind == "produce" and path == "direct":
        total = [l for l in open(out) if " ms 99.9th." in l][0]
        rates.append(float(re.search(r", ([\d.]+) records/sec", total).group(1)))
print(round(statistics.median(rates) / 2))
EOF
)
for round in $(seq "$rounds"); do
    echo "half-rate round $round of $rounds ($half records/s)..." >&2
    for path in $(order "$round"); do
        topic create "$path" half-$path-$round --partitions 6
        measure half "$path" "$round" $(produce_args "$path" half-$path-$round $((records / 2)) "$half")
        topic delete "$path" half-$path-$round
    done
done

read -r rss hwm < <(memory_kib)

# --- the table --------------------------------------------------------------

python3 - "$results" "$records" "$rounds" "$half" "$rss" "$hwm" "${paths[@]}" <<'EOF'
import re, statistics, sys
results, records, rounds, half, rss, hwm = sys.argv[1:7]
paths = sys.argv[7:]
records, rounds, half = int(records), int(rounds), int(half)
RECORD = 1024

runs = {}  # (kind, path) -> list of parsed outputs
cpu = {}   # kind -> proxy CPU-seconds summed over rounds
for line in open(results):
    kind, path, _, out, seconds = line.rstrip("\n").split("\t")
    if kind == "warmup":
        continue
    text = open(out).read()
    if kind == "consume":
        data = text.strip().splitlines()[-1].split(", ")
        parsed = {"rate": float(data[9]), "mbs": float(data[8]), "join": int(data[6])}
    else:
        total = re.search(r"^\d+ records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\).*99\.9th\.$", text, re.M)
        us = re.search(r"^latency us: avg (\d+), p50 (\d+), p95 (\d+), p99 (\d+), p99\.9 (\d+), max (\d+)$", text, re.M)
        parsed = {"rate": float(total.group(1)), "mbs": float(total.group(2)),
                  "p50": int(us.group(2)) / 1000, "p99": int(us.group(4)) / 1000}
    runs.setdefault((kind, path), []).append(parsed)
    if path == "proxy":
        cpu[kind] = cpu.get(kind, 0.0) + float(seconds)

def median(kind, path, key):
    return statistics.median(r[key] for r in runs[(kind, path)])

gb = records * RECORD * rounds / 1e9
cpu_produce = cpu["produce"] / gb
cpu_consume = cpu["consume"] / gb

print(f"{records:,} records of 1 KiB a round, acks=all, 6 partitions, {rounds} rounds of each kind, "
      f"medians; latency at {half:,} records/s (half the direct produce rate), {records // 2:,} records a round.")
print()
print("| path | produce records/s | MB/s | × direct | consume records/s | MB/s | × direct "
      "| p50 ms at half rate | p99 ms | p50 vs direct | p99 vs direct |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for path in paths:
    p, c = median("produce", path, "rate"), median("consume", path, "rate")
    p50, p99 = median("half", path, "p50"), median("half", path, "p99")
    rel = lambda kind, v: v / median(kind, "direct", "rate")
    d50 = p50 - median("half", "direct", "p50")
    d99 = p99 - median("half", "direct", "p99")
    same = path == "direct"
    print(f"| {path} | {p:,.0f} | {median('produce', path, 'mbs'):.1f} | {rel('produce', p):.3f} "
          f"| {c:,.0f} | {median('consume', path, 'mbs'):.1f} | {rel('consume', c):.3f} "
          f"| {p50:.2f} | {p99:.2f} | {'–' if same else f'{d50:+.2f}'} | {'–' if same else f'{d99:+.2f}'} |")

print()
print(f"Proxy: {cpu_produce:.3f} CPU-s per GB produced, {cpu_consume:.3f} CPU-s per GB consumed; "
      f"RSS {int(rss) / 1024:.1f} MiB at the end, peak {int(hwm) / 1024:.1f} MiB.")
print()

def verdict(ok):
    return "met" if ok else "**missed**"

tp = median("produce", "proxy", "rate") / median("produce", "direct", "rate")
tc = median("consume", "proxy", "rate") / median("consume", "direct", "rate")
d50 = median("half", "proxy", "p50") - median("half", "direct", "p50")
d99 = median("half", "proxy", "p99") - median("half", "direct", "p99")
print("| target (proxy) | measured | |")
print("|---|---|---|")
print(f"| produce throughput ≥ 0.95× direct | {tp:.3f}× | {verdict(tp >= 0.95)} |")
print(f"| consume throughput ≥ 0.95× direct | {tc:.3f}× | {verdict(tc >= 0.95)} |")
print(f"| CPU ≤ 0.3 CPU-s per GB produced | {cpu_produce:.3f} | {verdict(cpu_produce <= 0.3)} |")
print(f"| CPU ≤ 0.2 CPU-s per GB consumed | {cpu_consume:.3f} | {verdict(cpu_consume <= 0.2)} |")
print(f"| added p50 at half rate ≤ 0.1 ms | {d50:+.2f} ms | {verdict(d50 <= 0.1)} |")
print(f"| added p99 at half rate ≤ 0.5 ms | {d99:+.2f} ms | {verdict(d99 <= 0.5)} |")
EOF
