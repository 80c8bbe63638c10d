#!/usr/bin/env bash
# Modelgate's benchmark, side by side with direct calls (and, with --peers,
# LiteLLM and Portkey), on this machine. One command:
#
#   ./bench/run.sh                # full run (release build, oha installed if missing), ~6 min
#   ./bench/run.sh --peers        # also LiteLLM (PyPI) and Portkey (npm), installed on first use
#   ./bench/run.sh --smoke        # seconds: the debug binaries `cargo test` builds, built-in load
#                                 # generator, no installs (CI runs this; no timing is asserted)
#
# Other options are passed to bench/run.py (--secs, --rates, --streams, ...).
# Results: bench/results/<time>.{md,json} and bench/results/latest.{md,json}.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
cache="${MODELGATE_CACHE:-$HOME/.cache/modelgate}"

smoke=0
for a in "$@"; do
  [ "$a" = "--smoke" ] && smoke=1
done

if [ "$smoke" = 1 ]; then
  profile=debug
  # The debug binaries `cargo test` builds (a no-op right after the tests).
  cargo test --workspace --locked --no-run -q
  extra=(--secs 2 --rates 200 --conns 8 --max-conns 8 --stream-requests 20 --streams 200 --hold-secs 3)
  oha=""
else
  profile=release
  cargo build --locked --release -p modelgate -p modelgate-testkit -p modelgate-bench --bins
  extra=()
  oha="$(command -v oha || true)"
  if [ -z "$oha" ]; then
    oha="$cache/tools/bin/oha"
    if [ ! -x "$oha" ]; then
      echo "==> installing oha (the load generator) into $cache/tools"
      cargo install oha --version 1.16.0 --locked --root "$cache/tools"
    fi
  fi
fi

bin="$CARGO_TARGET_DIR/$profile"
args=()
for a in "$@"; do
  [ "$a" = "--smoke" ] || args+=("$a")
done
exec python3 "$repo/bench/run.py" \
  --gateway "$bin/modelgate" --upstream "$bin/modelgate-bench-upstream" --tool "$bin/modelgate-bench" \
  --oha "$oha" --cache "$cache" --command "./bench/run.sh $*" \
  "${extra[@]}" $([ "$smoke" = 1 ] && echo --smoke) "${args[@]}"
