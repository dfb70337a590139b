#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (60 s each unless
# SWITCHYARD_FUZZ_SECONDS says otherwise; 0 skips), starting from the corpus
# kept under the tool cache and the seeds in fuzz/seeds. Any crash, leak,
# timeout or oversized allocation stops the run with a non-zero status, the
# reproducer's path and the command to replay it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${SWITCHYARD_FUZZ_SECONDS:-60}"
if [ "$seconds" = 0 ]; then
    echo "fuzz: skipped (SWITCHYARD_FUZZ_SECONDS=0)"
    exit 0
fi
tools="${SWITCHYARD_TOOLS:-$HOME/.cache/switchyard/tools}"
# The fuzz build uses other flags (sanitizer, coverage) than the tests: a
# target dir of its own (a sibling of CARGO_TARGET_DIR, or target/fuzz)
# keeps both builds cached instead of rebuilding each.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR%/}-fuzz"
else
    export CARGO_TARGET_DIR="$PWD/target/fuzz"
fi
# cargo-fuzz needs nightly flags; the stable toolchain accepts them so.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

cargo fuzz build
for target in $(cargo fuzz list); do
    corpus="$tools/fuzz/corpus/$target"
    artifacts="$tools/fuzz/artifacts/$target"
    mkdir -p "$corpus" "$artifacts"
    seeds=()
    [ -d "fuzz/seeds/$target" ] && seeds=("fuzz/seeds/$target")
    log="$tools/fuzz/$target.log"
    # libFuzzer's default 2 GiB malloc limit turns any allocation sized
    # from a hostile count into a reported crash, not a silent pass.
    if ! cargo fuzz run "$target" "$corpus" "${seeds[@]}" -- \
        -max_total_time="$seconds" -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo >&2
        echo "FUZZ FAILURE in target '$target': see the report above (full log: $log)." >&2
        echo "Reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run $target $artifacts/<file>" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    entries=$(find "$corpus" -type f | wc -l)
    echo "fuzz $target: ${runs:-?} runs in ${seconds} s, $entries corpus entries, no crash"
done
