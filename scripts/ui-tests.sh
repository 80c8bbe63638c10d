#!/usr/bin/env bash
# Runs the dashboard's headless-browser test (tests/ui) against a locally built
# gateway: installs what is missing (Chromium from Debian packages,
# playwright-core from npm), starts the gateway on a free loopback port with a
# master key and the built-in mock provider, then runs tests/ui/dashboard.test.mjs,
# which drives real traffic through /v1/chat/completions and checks the
# dashboard in Chromium.
#
# Environment:
#   MODELGATE_BIN      gateway binary (default: ${CARGO_TARGET_DIR:-<repo>/target}/debug/modelgate;
#                      built with `cargo build -p modelgate` when that default is missing)
#   CHROMIUM           browser (default: /usr/bin/chromium; installed with apt-get when missing)
#   UPDATE_SCREENSHOT  1: write docs/dashboard.png (and docs/dashboard-request.png) from the run
#   UI_ARTIFACTS       directory for screenshots of every view (default: a temporary directory,
#                      kept and printed when the test fails)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ui_dir="$repo/tests/ui"
say() { echo "ui-tests: $*" >&2; }
die() { say "ERROR: $*"; exit 2; }

# --- Tools ---------------------------------------------------------------------
as_root() {
    if [[ "$(id -u)" == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM" ]]; then
    [[ "$CHROMIUM" == /usr/bin/chromium ]] || die "CHROMIUM=$CHROMIUM is not an executable"
    command -v apt-get >/dev/null 2>&1 || die "Chromium is missing and apt-get is not available: install Chromium and set CHROMIUM"
    say "installing Chromium (apt-get install -y chromium)"
    export DEBIAN_FRONTEND=noninteractive
    if ! as_root apt-get install -y chromium >/dev/null; then
        say "apt-get install failed; refreshing the package lists and retrying"
        as_root apt-get update >/dev/null
        as_root apt-get install -y chromium >/dev/null
    fi
    [[ -x "$CHROMIUM" ]] || die "Chromium was installed but $CHROMIUM is still missing"
fi
export CHROMIUM

command -v node >/dev/null 2>&1 || die "node (18 or later) is required: apt-get install -y nodejs npm"
command -v npm >/dev/null 2>&1 || die "npm is required: apt-get install -y npm"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
(( node_major >= 18 )) || die "node 18 or later is required (found $(node --version))"

# playwright-core, exactly as locked; reinstalled when the lock file changes.
stamp="$ui_dir/node_modules/.modelgate-lock"
if [[ ! -f "$stamp" ]] || ! cmp -s "$ui_dir/package-lock.json" "$stamp"; then
    say "installing tests/ui dependencies (npm ci)"
    (cd "$ui_dir" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$ui_dir/package-lock.json" "$stamp"
fi

# --- Gateway binary ----------------------------------------------------------------
default_bin="${CARGO_TARGET_DIR:-$repo/target}/debug/modelgate"
MODELGATE_BIN="${MODELGATE_BIN:-$default_bin}"
if [[ ! -x "$MODELGATE_BIN" && "$MODELGATE_BIN" == "$default_bin" ]]; then
    say "building the gateway (cargo build -p modelgate)"
    (cd "$repo" && cargo build -p modelgate)
fi
[[ -x "$MODELGATE_BIN" ]] || die "gateway binary not found or not executable: $MODELGATE_BIN"

# --- Start the gateway ----------------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/modelgate-ui.XXXXXX")"
artifacts="${UI_ARTIFACTS:-$work/artifacts}"
mkdir -p "$artifacts"
gateway_pid=""
status=1
cleanup() {
    if [[ -n "$gateway_pid" ]] && kill -0 "$gateway_pid" 2>/dev/null; then
        kill -TERM "$gateway_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$gateway_pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$gateway_pid" 2>/dev/null || true
        wait "$gateway_pid" 2>/dev/null || true
    fi
    if [[ "$status" != 0 ]]; then
        say "gateway log (last 30 lines of $work/gateway.log):"
        tail -n 30 "$work/gateway.log" >&2 2>/dev/null || true
        say "screenshots and logs kept in $artifacts and $work"
    else
        rm -rf "$work" # UI_ARTIFACTS, when set, lives outside it
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

master_key="mg-ui-test-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
# Priced mock models (so spend shows), different speeds (so percentiles
# differ), and an alias whose first deployment always fails (so requests show
# a failover in their attempts).
cat >"$work/modelgate.yaml" <<'YAML'
server:
  shutdown_grace_seconds: 5
env_providers: false
deployments:
  - { name: primary-east, provider: mock, model: error-500 }
  - { name: backup-west, provider: mock, model: "echo?ttft_ms=60", priority: 1 }
models:
  - name: gpt-4o-mini
    provider: mock
    model: "text?words=80&ttft_ms=25"
    price: { input: 0.15, output: 0.60 }
  - name: gpt-4o-mini-stream
    provider: mock
    model: "text?words=60&chunks=6&delay_ms=15&ttft_ms=40"
    price: { input: 0.15, output: 0.60 }
  - name: claude-sonnet
    provider: mock
    model: "text?words=160&ttft_ms=120"
    price: { input: 3.00, output: 15.00 }
  - name: support-bot
    deployments: [primary-east, backup-west]
    retry: { backoff_ms: 1 }
YAML

port="$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
url="http://127.0.0.1:$port"
say "starting $MODELGATE_BIN on $url"
env -u MODELGATE_CONFIG -u MODELGATE_LISTEN -u MODELGATE_DB \
    -u OPENAI_API_KEY -u ANTHROPIC_API_KEY \
    MODELGATE_MASTER_KEY="$master_key" RUST_LOG="${RUST_LOG:-info}" \
    "$MODELGATE_BIN" serve --listen "127.0.0.1:$port" --db "$work/modelgate.db" \
    --config "$work/modelgate.yaml" --log-format json \
    </dev/null >"$work/gateway.log" 2>&1 &
gateway_pid=$!

ready=""
for _ in $(seq 1 100); do
    if ! kill -0 "$gateway_pid" 2>/dev/null; then
        die "the gateway exited during start (see the log above)"
    fi
    if node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "$url/readyz" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.2
done
[[ -n "$ready" ]] || die "the gateway did not become ready within 20 s"

# --- Run -----------------------------------------------------------------------
screenshot_dir=""
if [[ "${UPDATE_SCREENSHOT:-}" == 1 ]]; then
    screenshot_dir="$repo/docs"
fi
set +e
GATEWAY_URL="$url" MASTER_KEY="$master_key" UI_ARTIFACTS="$artifacts" \
    SCREENSHOT_DIR="$screenshot_dir" node "$ui_dir/dashboard.test.mjs"
status=$?
set -e
if [[ "$status" == 0 ]]; then
    say "passed"
else
    say "FAILED (exit status $status)"
fi
exit "$status"
