"""Fixtures for the OpenAI SDK compatibility suite.

One gateway process serves the whole session: it runs the binary named by
MODELGATE_BIN (default ``${CARGO_TARGET_DIR:-<repo>/target}/debug/modelgate``)
on a free loopback port, with a master key and a small config file that adds
the models the tests need. ``scripts/sdk-tests.sh`` builds the binary first.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Optional

import openai
import pytest

REPO = Path(__file__).resolve().parents[2]
MASTER_KEY = "sk-modelgate-sdk-tests"
# Small enough that the 413 test stays cheap, large enough for every normal
# request in the suite (the biggest is an image data URL of a few hundred bytes).
MAX_BODY_BYTES = 256 * 1024
READY_TIMEOUT_S = 20.0
SHUTDOWN_TIMEOUT_S = 15.0

UPSTREAM_KEY = "sk-upstream-sdk-tests"

# `{upstream}` is the mock upstream's URL (OpenAI, Anthropic and Gemini wire formats).
CONFIG_YAML = f"""\
server:
  max_body_bytes: {MAX_BODY_BYTES}
  shutdown_grace_seconds: 5
models:
  - name: up-gpt
    provider: openai
    model: gpt-4o-mini
    base_url: {{upstream}}/v1
    api_key: {UPSTREAM_KEY}
  - name: up-claude
    provider: anthropic
    model: claude-sonnet-4-5
    base_url: {{upstream}}
    api_key: {UPSTREAM_KEY}
  - name: up-gemini
    provider: gemini
    model: gemini-2.5-flash
    base_url: {{upstream}}
    api_key: {UPSTREAM_KEY}
  - name: slow
    provider: mock
    model: stall
    timeouts: {{ request_ms: 300 }}
  - name: echo-alias
    provider: mock
    model: echo
observability:
  # Only traces the client marks as sampled are exported (to the test's
  # collector), so the rest of the suite sends none.
  tracing:
    endpoint: {{otlp}}
    sample_ratio: 0
"""


def _binary() -> Path:
    explicit = os.environ.get("MODELGATE_BIN")
    if explicit:
        return Path(explicit)
    target = os.environ.get("CARGO_TARGET_DIR") or str(REPO / "target")
    return Path(target) / "debug" / "modelgate"


def _mock_upstream_binary() -> Path:
    explicit = os.environ.get("MOCK_UPSTREAM_BIN")
    if explicit:
        return Path(explicit)
    return _binary().parent / "modelgate-mock-upstream"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_status(host: str, port: int, path: str) -> Optional[int]:
    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


@dataclass
class Gateway:
    base_url: str  # e.g. http://127.0.0.1:12345 (no /v1)
    host: str
    port: int
    log_path: Path


def _start(
    binary: Path, workdir: Path, attempt: int, upstream: str, otlp: str
) -> tuple[subprocess.Popen, Gateway]:
    port = _free_port()
    config = workdir / "modelgate.yaml"
    config.write_text(CONFIG_YAML.replace("{upstream}", upstream).replace("{otlp}", otlp))
    log_path = workdir / f"gateway-{attempt}.log"
    env = dict(os.environ)
    env["MODELGATE_MASTER_KEY"] = MASTER_KEY
    # Never let a developer's real provider keys or config leak into the run.
    for var in ("MODELGATE_CONFIG", "MODELGATE_LISTEN", "MODELGATE_DB"):
        env.pop(var, None)
    # Zero-config providers, pointed (like the SDKs' own variables) at the mock.
    env["OPENAI_API_KEY"] = UPSTREAM_KEY
    env["OPENAI_BASE_URL"] = f"{upstream}/v1"
    env["ANTHROPIC_API_KEY"] = UPSTREAM_KEY
    env["ANTHROPIC_BASE_URL"] = upstream
    env["GEMINI_API_KEY"] = UPSTREAM_KEY
    env["GEMINI_BASE_URL"] = upstream
    env.pop("GOOGLE_API_KEY", None)
    env.setdefault("RUST_LOG", "info")
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [
            str(binary),
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--db",
            str(workdir / f"modelgate-{attempt}.db"),
            "--config",
            str(config),
            "--log-format",
            "json",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
        env=env,
    )
    log.close()
    return proc, Gateway(f"http://127.0.0.1:{port}", "127.0.0.1", port, log_path)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@pytest.fixture(scope="session")
def upstream() -> Iterator[str]:
    """The test kit's mock upstream: OpenAI, Anthropic and Gemini wire formats, strict
    request validation like the real APIs, tool calls when tools are offered."""
    binary = _mock_upstream_binary()
    if not binary.is_file():
        pytest.exit(
            f"mock upstream binary not found at {binary}; build it with "
            "`cargo build -p modelgate-testkit` or set MOCK_UPSTREAM_BIN",
            returncode=2,
        )
    proc = subprocess.Popen(
        [str(binary), "--listen", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip() if proc.stdout else ""
        if not line.startswith("listening on "):
            pytest.fail(f"mock upstream did not start: {line!r}", pytrace=False)
        yield line.removeprefix("listening on ")
    finally:
        proc.kill()
        proc.wait(timeout=5)


class OtlpCollector:
    """A minimal OTLP/HTTP trace receiver: keeps the raw protobuf bodies of
    every `POST /v1/traces` (tests decode them with the official
    opentelemetry-proto package)."""

    def __init__(self) -> None:
        import http.server
        import threading

        bodies: list[tuple[dict, bytes]] = []
        self.bodies = bodies

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                if self.path == "/v1/traces":
                    bodies.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    self.send_response(200)
                else:
                    self.send_response(404)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def otlp() -> Iterator[OtlpCollector]:
    c = OtlpCollector()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="session")
def gateway(upstream: str, otlp: OtlpCollector) -> Iterator[Gateway]:
    binary = _binary()
    if not binary.is_file():
        pytest.exit(
            f"gateway binary not found at {binary}; build it with "
            "`cargo build -p modelgate` or set MODELGATE_BIN",
            returncode=2,
        )
    with tempfile.TemporaryDirectory(prefix="modelgate-sdk-") as tmp:
        workdir = Path(tmp)
        last_error = ""
        # The free port is only reserved until we close the probe socket, so
        # another process could grab it: retry on an early exit.
        for attempt in range(3):
            proc, gw = _start(binary, workdir, attempt, upstream, otlp.url)
            deadline = time.monotonic() + READY_TIMEOUT_S
            ready = False
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                if _get_status(gw.host, gw.port, "/readyz") == 200:
                    ready = True
                    break
                time.sleep(0.1)
            if ready:
                try:
                    yield gw
                finally:
                    _stop(proc)
                    code = proc.returncode
                    if code not in (0, -signal.SIGTERM):
                        print(f"\ngateway exited with {code}; log tail:\n{_tail(gw.log_path)}")
                return
            _stop(proc)
            last_error = (
                f"gateway (attempt {attempt + 1}) not ready within {READY_TIMEOUT_S:.0f}s "
                f"(exit code {proc.returncode}); log tail:\n{_tail(gw.log_path)}"
            )
        pytest.fail(last_error, pytrace=False)


@pytest.fixture(scope="session")
def base_url(gateway: Gateway) -> str:
    return gateway.base_url


@pytest.fixture(scope="session")
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(
        base_url=f"{gateway.base_url}/v1",
        api_key=MASTER_KEY,
        max_retries=0,
        timeout=15.0,
    )
    yield c
    c.close()


@pytest.fixture(scope="session")
def master_key() -> str:
    return MASTER_KEY


@dataclass
class RawResponse:
    status: int
    headers: Mapping[str, str]  # lower-cased names
    body: bytes

    def json(self):
        return json.loads(self.body)


class RawHttp:
    """Bare HTTP/1.1 client (stdlib only) for requests the SDK cannot make:
    malformed JSON, missing credentials, oversize bodies, wire-level checks."""

    def __init__(self, gateway: Gateway):
        self.gateway = gateway

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | dict | None = None,
        headers: Optional[Mapping[str, str]] = None,
        auth: bool = True,
        timeout: float = 15.0,
    ) -> RawResponse:
        hdrs = {"Accept": "application/json"}
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        if auth:
            hdrs["Authorization"] = f"Bearer {MASTER_KEY}"
        hdrs.update(headers or {})
        conn = http.client.HTTPConnection(self.gateway.host, self.gateway.port, timeout=timeout)
        try:
            conn.request(method, urllib.parse.quote(path, safe="/?=&%"), body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return RawResponse(
                resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
            )
        finally:
            conn.close()

    def post(self, path: str, body, **kw) -> RawResponse:
        return self.request("POST", path, body, **kw)

    def get(self, path: str, **kw) -> RawResponse:
        return self.request("GET", path, None, **kw)


@pytest.fixture(scope="session")
def raw(gateway: Gateway) -> RawHttp:
    return RawHttp(gateway)
