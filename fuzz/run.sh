#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) and fails on any crash.
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). Uses nightly when installed,
# otherwise stable with RUSTC_BOOTSTRAP=1 (cargo fuzz passes unstable flags to rustc).
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH="${1:-60}"
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  TOOLCHAIN=(+nightly)
else
  TOOLCHAIN=()
  export RUSTC_BOOTSTRAP=1
fi
# A failing `fuzz list` must fail the run, not leave it with nothing to fuzz.
targets=$(cargo "${TOOLCHAIN[@]}" fuzz list)
if [ -z "$targets" ]; then
  echo "no fuzz targets found" >&2
  exit 1
fi
for target in $targets; do
  mkdir -p "corpus/$target"
  cp -n seeds/"$target"/* "corpus/$target/" 2>/dev/null || true
  echo "== fuzz $target for ${SECONDS_EACH}s"
  cargo "${TOOLCHAIN[@]}" fuzz run "$target" "corpus/$target" -- \
    -max_total_time="$SECONDS_EACH" -print_final_stats=1 2>&1 | tail -25
done
