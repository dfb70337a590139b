#!/usr/bin/env bash
# Installs what the tests and the demo need, each only when missing:
#   - tansu 0.6.0, a Kafka-compatible broker (memory and sqlite storage)
#   - a Python venv with kafka-python, an independent Kafka client
#   - OpenSSL headers and pkg-config (Debian packages), which librdkafka
#     needs for the tests' SASL_SSL and SCRAM clients (rdkafka's ssl feature)
# Everything goes under $SWITCHYARD_TOOLS (default ~/.cache/switchyard/tools).
# Prints the two paths the test harness reads, as shell exports.
set -euo pipefail

tools="${SWITCHYARD_TOOLS:-$HOME/.cache/switchyard/tools}"
mkdir -p "$tools"

if ! pkg-config --exists openssl 2>/dev/null; then
  echo "installing libssl-dev and pkg-config (apt)..." >&2
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq >&2
  $sudo apt-get install -y -qq libssl-dev pkg-config >&2
fi

tansu="$tools/bin/tansu"
if [ ! -x "$tansu" ]; then
  echo "installing tansu 0.6.0 into $tools (about 10 minutes on 2 cores)..." >&2
  cargo install tansu --locked --version 0.6.0 --features dynostore,libsql --root "$tools" >&2
fi

venv="$tools/venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import kafka' 2>/dev/null; then
  echo "creating Python venv with kafka-python in $venv..." >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'kafka-python==3.0.12' >&2
fi

echo "export SWITCHYARD_TANSU='$tansu'"
echo "export SWITCHYARD_PYTHON='$venv/bin/python'"
