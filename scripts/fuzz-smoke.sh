#!/usr/bin/env bash
# Smoke-runs every fuzz target in fuzz/ for a short time (cargo-fuzz, libFuzzer).
#
#   scripts/fuzz-smoke.sh                    # every target, 20 s each
#   FUZZ_SECONDS=60 scripts/fuzz-smoke.sh    # longer
#   scripts/fuzz-smoke.sh sse_parser config  # only these targets
#
# Not part of .ci/run (it does not fit the CI time budget); run it by hand
# after touching a decoder. Exits non-zero if any target crashes, and prints
# where the crashing inputs are and how to replay them.
#
# Environment:
#   FUZZ_SECONDS     seconds per target (default 20), libFuzzer -max_total_time
#   FUZZ_SANITIZER   cargo-fuzz --sanitizer (default address; `none` is faster)
#   FUZZ_ARGS        extra libFuzzer flags, e.g. "-jobs=2" or "-only_ascii=1"
#   CARGO_TARGET_DIR where to build (cargo-fuzz honours it; default fuzz/target)
#
# The pinned stable toolchain is enough: libFuzzer needs `-Zsanitizer` and
# other nightly flags, which stable accepts with RUSTC_BOOTSTRAP=1 (set here,
# for cargo-fuzz's build only). Seeds are read from fuzz/corpus/<target>/
# (committed); what the fuzzer discovers goes to fuzz/corpus-generated/<target>/,
# crashes to fuzz/artifacts/<target>/ and each run's log to
# fuzz/artifacts/<target>.log (all git-ignored).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo/fuzz"

seconds="${FUZZ_SECONDS:-20}"
sanitizer="${FUZZ_SANITIZER:-address}"
case "$seconds" in
  '' | *[!0-9]*) echo "FUZZ_SECONDS must be a whole number of seconds, got '$seconds'" >&2; exit 2 ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz (cargo install cargo-fuzz --locked)"
  cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

echo "==> building ${#targets[@]} fuzz targets (sanitizer: $sanitizer)"
if [ "$#" -gt 0 ]; then
  for t in "${targets[@]}"; do
    cargo fuzz build --sanitizer "$sanitizer" "$t"
  done
else
  cargo fuzz build --sanitizer "$sanitizer"
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# Crash files newer than this marker are this run's.
marker="$tmp/start"
touch "$marker"

failed=()
for t in "${targets[@]}"; do
  seeds="corpus/$t"
  generated="corpus-generated/$t"
  artifacts="artifacts/$t"
  mkdir -p "$seeds" "$generated" "$artifacts"
  echo "==> fuzzing $t for ${seconds}s"
  log="artifacts/$t.log"
  # The first corpus directory receives new inputs; the seeds are only read.
  if cargo fuzz run --sanitizer "$sanitizer" "$t" "$generated" "$seeds" -- \
      -max_total_time="$seconds" -timeout=30 -print_final_stats=1 ${FUZZ_ARGS:-} >"$log" 2>&1; then
    grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done )' "$log" || true
  else
    # The panic message (or sanitizer report), then cargo-fuzz's summary.
    grep -E -m 5 "panicked at|^==[0-9]+==ERROR|^SUMMARY|deadly signal|out-of-memory|timeout after" "$log" || true
    sed -n '/^Failing input:/,/^Output of/p' "$log"
    echo "    (full log: $repo/fuzz/$log)"
    failed+=("$t")
  fi
done

echo
if [ "${#failed[@]}" -eq 0 ]; then
  echo "fuzz smoke run: all ${#targets[@]} targets ran ${seconds}s without a crash"
  exit 0
fi
echo "fuzz smoke run: ${#failed[@]} target(s) FAILED: ${failed[*]}"
for t in "${failed[@]}"; do
  echo "  $t: crashing inputs in $repo/fuzz/artifacts/$t/:"
  find "$repo/fuzz/artifacts/$t" -type f -newer "$marker" -printf '    %p\n' 2>/dev/null || true
  echo "    replay: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $t artifacts/$t/<file>)"
done
exit 1
