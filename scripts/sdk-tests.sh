#!/usr/bin/env bash
# Runs the OpenAI Python SDK compatibility suite (tests/sdk) against a locally
# built gateway.
#
# Environment:
#   MODELGATE_BIN     gateway binary (default: ${CARGO_TARGET_DIR:-<repo>/target}/debug/modelgate;
#                     built with `cargo build -p modelgate` when that default is missing)
#   SDK_VENV          virtualenv to create/reuse (default: <repo>/.venv)
#   PYTHON            interpreter used to create the virtualenv (default: python3)
# Extra arguments are passed to pytest (e.g. `scripts/sdk-tests.sh -k streaming`).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SDK_VENV:-$repo/.venv}"
python="${PYTHON:-python3}"
requirements="$repo/tests/sdk/requirements.txt"

# --- Python environment -----------------------------------------------------
if [[ ! -x "$venv/bin/python" ]]; then
    echo "sdk-tests: creating virtualenv at $venv" >&2
    "$python" -m venv "$venv"
fi
stamp="$venv/.modelgate-sdk-requirements"
if [[ ! -f "$stamp" ]] || ! cmp -s "$requirements" "$stamp"; then
    echo "sdk-tests: installing $requirements" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$stamp"
fi

# --- Gateway binary ---------------------------------------------------------
default_bin="${CARGO_TARGET_DIR:-$repo/target}/debug/modelgate"
MODELGATE_BIN="${MODELGATE_BIN:-$default_bin}"
# Build only when the missing binary is the one `cargo build` would produce.
if [[ ! -x "$MODELGATE_BIN" && "$MODELGATE_BIN" == "$default_bin" ]]; then
    echo "sdk-tests: building the gateway (cargo build -p modelgate)" >&2
    (cd "$repo" && cargo build -p modelgate)
fi
# The mock upstream (OpenAI + Anthropic wire formats) sits beside it; `cargo test`
# builds it, and so does this fallback.
MOCK_UPSTREAM_BIN="${MOCK_UPSTREAM_BIN:-$(dirname "$MODELGATE_BIN")/modelgate-mock-upstream}"
if [[ ! -x "$MOCK_UPSTREAM_BIN" ]]; then
    echo "sdk-tests: building the mock upstream (cargo build -p modelgate-testkit)" >&2
    (cd "$repo" && cargo build -p modelgate-testkit --bin modelgate-mock-upstream)
fi
# pytest runs from tests/sdk: make both paths absolute.
abspath() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
MOCK_UPSTREAM_BIN="$(abspath "$MOCK_UPSTREAM_BIN")"
export MOCK_UPSTREAM_BIN
if [[ ! -x "$MODELGATE_BIN" ]]; then
    echo "sdk-tests: gateway binary not found or not executable: $MODELGATE_BIN" >&2
    exit 2
fi
MODELGATE_BIN="$(abspath "$MODELGATE_BIN")"
export MODELGATE_BIN

# --- Run ----------------------------------------------------------------------
cd "$repo/tests/sdk"
log="$(mktemp "${TMPDIR:-/tmp}/modelgate-sdk-tests.XXXXXX")"
trap 'rm -f "$log"' EXIT
set +e
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@" . 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
summary="$(grep -E '^=*\s*[0-9]+ (passed|failed|error|skipped|deselected)|^=*\s*no tests ran' "$log" | tail -n 1 || true)"
echo "sdk-tests: ${summary:-no pytest summary line (exit status $status)}"
exit "$status"
