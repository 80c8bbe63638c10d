#!/usr/bin/env python3
"""Modelgate's side-by-side benchmark (driven by bench/run.sh, which builds).

Measures, in one run on one machine, each target against the same fast mock
upstream: the mock itself (direct), Modelgate as a bare proxy (master key
only), Modelgate with full governance (virtual key, RPM/TPM limits, a budget
reservation, cost, the request log), and with --peers the LiteLLM proxy and
the Portkey gateway.

For every target: latency at fixed rates (with latency correction) and the
difference from direct, maximum throughput, the gateway's CPU time per
request (from /proc), resident memory idle and at peak, time to first token
and inter-chunk gap for streams, and for Modelgate the memory of many
concurrent slow streams. The gateway is pinned to core 0, the mock and the
load generator to the other cores, where the machine allows.

Writes bench/results/<stamp>.json (raw) and .md (tables), and latest.*.
Standard library only.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MASTER = "mg-bench-master-key"
# LiteLLM refuses to start without a master key (and a weak one).
LITELLM_KEY = "sk-bench-7f3c9a1e5d2b8046c1e9f7a3b5d2c8e4"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# ---------------------------------------------------------------- processes


def cores():
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return list(range(os.cpu_count() or 1))


def pin(cmd, which):
    """Prefixes `cmd` with taskset for `which` ('gateway' or 'load')."""
    cs = cores()
    if len(cs) < 2 or not shutil.which("taskset"):
        return cmd
    mask = str(cs[0]) if which == "gateway" else ",".join(str(c) for c in cs[1:])
    return ["taskset", "-c", mask] + cmd


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Proc:
    def __init__(self, name, cmd, env=None, cwd=None, log_dir=None):
        self.name = name
        self.log = open(os.path.join(log_dir, f"{name}.log"), "w") if log_dir else subprocess.DEVNULL
        e = dict(os.environ)
        e.update(env or {})
        self.p = subprocess.Popen(
            cmd, env=e, cwd=cwd, stdout=subprocess.PIPE, stderr=self.log, text=True,
            start_new_session=True,
        )

    def first_line(self, prefix, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.p.stdout.readline()
            if not line:
                break
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        raise RuntimeError(f"{self.name} did not print {prefix!r}")

    @property
    def pid(self):
        return self.p.pid

    def stop(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
                self.p.wait(timeout=10)
            except Exception:
                try:
                    os.killpg(self.p.pid, signal.SIGKILL)
                except Exception:
                    pass


def tree(pid):
    """`pid` and its descendants (LiteLLM and Node spawn workers)."""
    out = [pid]
    try:
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    except FileNotFoundError:
        kids = []
    for k in kids:
        out += tree(int(k))
    return out


def cpu_seconds(pid):
    total = 0.0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
            total += (int(parts[11]) + int(parts[12])) / CLK_TCK
        except (OSError, IndexError, ValueError):
            pass
    return total


def memory_mb(pid, field="VmRSS"):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return round(total / 1024, 1)


def wait_http(url, headers=None, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=2) as r:
                if r.status < 500:
                    return
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def post_json(url, body, headers):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", **headers})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


# ---------------------------------------------------------------- load


def chat_body(model, stream=False):
    return json.dumps({
        "model": model,
        "messages": [{"role": "user", "content": "Write one short sentence about benchmarks."}],
        "max_tokens": 64,
        "stream": stream,
    })


def tool_auth(target):
    """modelgate-bench arguments for a target's headers."""
    out = []
    for k, v in target["headers"].items():
        if k == "authorization":
            out += ["--key", v.split(" ", 1)[1]]
        else:
            out += ["--header", f"{k}: {v}"]
    return out


class Loader:
    def __init__(self, oha, bench_tool, log_dir):
        self.oha = oha
        self.tool = bench_tool
        self.log_dir = log_dir

    def run(self, target, rate, secs, conns):
        """Non-streaming load; rate None = as fast as possible."""
        headers = {"content-type": "application/json", **target["headers"]}
        if self.oha:
            cmd = [self.oha, "-z", f"{secs}s", "-c", str(conns), "--no-tui", "--output-format", "json",
                   "-m", "POST", "-d", chat_body(target["model"])]
            for k, v in headers.items():
                cmd += ["-H", f"{k}: {v}"]
            if rate:
                cmd += ["-q", str(rate), "--latency-correction"]
            cmd.append(target["url"])
            out = subprocess.run(pin(cmd, "load"), capture_output=True, text=True, timeout=secs + 120)
            if out.returncode != 0:
                raise RuntimeError(f"oha failed: {out.stderr[-500:]}")
            j = json.loads(out.stdout)
            s = j["summary"]
            p = j.get("latencyPercentiles") or {}
            codes = j.get("statusCodeDistribution") or {}
            ok = sum(v for k, v in codes.items() if str(k).startswith("2"))
            total = sum(codes.values())
            # Requests still in flight when the run's time is up are cut by
            # oha itself; they are not the target's errors.
            errs = {k: v for k, v in (j.get("errorDistribution") or {}).items() if "deadline" not in k}
            ms = lambda v: None if v is None else round(v * 1000, 3)
            return {
                "rps": round(s.get("requestsPerSec") or 0, 1),
                "ok": ok, "errors": total - ok + sum(errs.values()), "error_kinds": errs,
                "p50": ms(p.get("p50")), "p90": ms(p.get("p90")), "p99": ms(p.get("p99")),
                "p999": ms(p.get("p99.9")),
            }
        # The built-in generator (smoke runs): open loop at `rate`.
        cmd = [self.tool, "load", "--url", target["url"], "--model", target["model"],
               "--rate", str(rate or 2000), "--secs", str(secs), "--connections", str(conns)]
        cmd += tool_auth(target)
        out = subprocess.run(pin(cmd, "load"), capture_output=True, text=True, timeout=secs + 120)
        if out.returncode != 0:
            raise RuntimeError(f"load failed: {out.stderr[-500:]}")
        j = json.loads(out.stdout.strip().splitlines()[-1])
        lat = j["latency_ms"] or {}
        return {"rps": j["rps"], "ok": j["requests"] - j["errors"], "errors": j["errors"],
                "p50": lat.get("p50"), "p90": lat.get("p90"), "p99": lat.get("p99"), "p999": lat.get("p999")}

    def streams(self, target, model, requests):
        cmd = [self.tool, "streams", "--url", target["url"], "--model", model, "--requests", str(requests)]
        cmd += tool_auth(target)
        out = subprocess.run(pin(cmd, "load"), capture_output=True, text=True, timeout=600,
                             env={**os.environ, **target.get("tool_env", {})})
        if out.returncode != 0:
            raise RuntimeError(f"streams failed: {out.stderr[-500:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- targets


def gateway_config(mock, governed):
    price = "\n    price: { input: 0.15, output: 0.60 }" if governed else ""
    return f"""
models:
  - name: bench
    provider: openai_compatible
    model: bench
    base_url: {mock}/v1
    retry: {{ max_attempts: 1 }}{price}
  - name: stream
    provider: openai_compatible
    model: "tokens=64,chunks=16"
    base_url: {mock}/v1
    retry: {{ max_attempts: 1 }}{price}
  - name: paced
    provider: openai_compatible
    model: "tokens=64,chunks=16,gap_ms=10"
    base_url: {mock}/v1
    retry: {{ max_attempts: 1 }}{price}
  - name: slow
    provider: openai_compatible
    model: "tokens=60,chunks=60,gap_ms=1000"
    base_url: {mock}/v1
    retry: {{ max_attempts: 1 }}
    timeouts: {{ idle_ms: 30000 }}{price}
"""


def start_gateway(args, name, mock, governed, work):
    port = free_port()
    cfg = os.path.join(work, f"{name}.yaml")
    with open(cfg, "w") as f:
        f.write(gateway_config(mock, governed))
    env = {
        "MODELGATE_MASTER_KEY": MASTER,
        "TOKIO_WORKER_THREADS": "1",
        "RUST_LOG": "warn",
    }
    cmd = pin([args.gateway, "serve", "--config", cfg, "--listen", f"127.0.0.1:{port}",
               "--db", os.path.join(work, f"{name}.db")], "gateway")
    p = Proc(name, cmd, env=env, log_dir=work)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz")
    key = MASTER
    if governed:
        made = post_json(base + "/admin/keys", {
            "name": "bench", "models": ["*"], "rpm": 100000000, "tpm": 100000000000,
            "max_budget_usd": 1000000, "budget_period": "monthly",
        }, {"authorization": f"Bearer {MASTER}"})
        key = made["key"]
    return p, {
        "name": name, "url": base + "/v1/chat/completions", "model": "bench",
        "headers": {"authorization": f"Bearer {key}"}, "pid": p.pid, "stream_models": True,
    }


def start_litellm(args, mock, work):
    venv = os.path.join(args.cache, "peers", "litellm-venv")
    exe = os.path.join(venv, "bin", "litellm")
    if not os.path.exists(exe):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "litellm[proxy]==1.108.7"], check=True)
    port = free_port()
    cfg = os.path.join(work, "litellm.yaml")
    with open(cfg, "w") as f:
        f.write(f"""model_list:
  - model_name: bench
    litellm_params: {{ model: openai/bench, api_base: "{mock}/v1", api_key: "sk-bench" }}
  - model_name: stream
    litellm_params: {{ model: "openai/tokens=64,chunks=16", api_base: "{mock}/v1", api_key: "sk-bench" }}
  - model_name: paced
    litellm_params: {{ model: "openai/tokens=64,chunks=16,gap_ms=10", api_base: "{mock}/v1", api_key: "sk-bench" }}
litellm_settings: {{ drop_params: true, set_verbose: false }}
general_settings: {{ master_key: "{LITELLM_KEY}" }}
""")
    # No network at start (the price map is read from the package) and no telemetry.
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False", "LITELLM_LOG": "ERROR"}
    p = Proc("litellm", pin([exe, "--config", cfg, "--port", str(port), "--host", "127.0.0.1",
                             "--num_workers", "1"], "gateway"), env=env, log_dir=work)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/health/liveliness", timeout=300)
    return p, {"name": "litellm", "url": base + "/v1/chat/completions", "model": "bench",
               "headers": {"authorization": f"Bearer {LITELLM_KEY}"}, "pid": p.pid, "stream_models": True}


def start_portkey(args, mock, work):
    d = os.path.join(args.cache, "peers", "portkey")
    entry = os.path.join(d, "node_modules", "@portkey-ai", "gateway", "build", "start-server.js")
    if not os.path.exists(entry):
        os.makedirs(d, exist_ok=True)
        subprocess.run(["npm", "install", "--silent", "--prefix", d, "@portkey-ai/gateway@1.15.2"], check=True)
    port = free_port()
    p = Proc("portkey", pin(["node", entry, f"--port={port}", "--headless"], "gateway"),
             env={"PORT": str(port), "NODE_ENV": "production"}, log_dir=work)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/", timeout=120)
    return p, {"name": "portkey", "url": base + "/v1/chat/completions", "model": "bench",
               "headers": {"authorization": "Bearer sk-bench", "x-portkey-provider": "openai",
                           "x-portkey-custom-host": f"{mock}/v1"},
               "pid": p.pid, "stream_models": True, "raw_models": True}


# ---------------------------------------------------------------- scenarios


def measure(args, loader, t, results):
    r = {"name": t["name"]}
    pid = t.get("pid")
    if pid:
        time.sleep(1)
        r["rss_idle_mb"] = memory_mb(pid)
    # Warm up: connections, caches, the JIT of interpreted peers.
    loader.run(t, None, 2 if not args.smoke else 1, 16)
    r["rates"] = {}
    for rate in args.rates:
        c0 = cpu_seconds(pid) if pid else 0
        res = loader.run(t, rate, args.secs, args.conns)
        if pid:
            res["cpu_us_per_req"] = round((cpu_seconds(pid) - c0) / max(res["ok"], 1) * 1e6, 1)
        r["rates"][str(rate)] = res
        print(f"  {t['name']:>9} @ {rate:>5}/s: {res['rps']} req/s, p50 {res['p50']} ms, p99 {res['p99']} ms, "
              f"errors {res['errors']}" + (f", CPU {res.get('cpu_us_per_req')} µs/req" if pid else ""), flush=True)
    c0 = cpu_seconds(pid) if pid else 0
    res = loader.run(t, None, args.secs, args.max_conns)
    if pid:
        res["cpu_us_per_req"] = round((cpu_seconds(pid) - c0) / max(res["ok"], 1) * 1e6, 1)
        r["rss_peak_mb"] = memory_mb(pid, "VmHWM")
    r["max"] = res
    print(f"  {t['name']:>9} max: {res['rps']} req/s, p50 {res['p50']} ms, errors {res['errors']}"
          + (f", CPU {res.get('cpu_us_per_req')} µs/req, peak RSS {r['rss_peak_mb']} MB" if pid else ""), flush=True)
    # Streams: first token and gaps, unpaced and with a 10 ms gap upstream.
    if t.get("stream_models", True):
        raw = t["name"] == "direct" or t.get("raw_models")
        fast = dict(t, model="tokens=64,chunks=16" if raw else "stream")
        paced = dict(t, model="tokens=64,chunks=16,gap_ms=10" if raw else "paced")
        r["stream"] = loader.streams(fast, fast["model"], args.stream_requests)
        r["stream_paced"] = loader.streams(paced, paced["model"], max(args.stream_requests // 10, 10))
        if r["stream"]["ttft_ms"] and r["stream_paced"]["gap_ms"]:
            print(f"  {t['name']:>9} stream: TTFT p50 {r['stream']['ttft_ms']['p50']} ms p99 {r['stream']['ttft_ms']['p99']} ms; "
                  f"paced gap p50 {r['stream_paced']['gap_ms']['p50']} ms", flush=True)
        else:
            print(f"  {t['name']:>9} stream: every streamed request failed ({r['stream']['errors']} errors)", flush=True)
            r["stream_failed"] = True
    results["targets"].append(r)
    return r


def hold_streams(args, loader, t, results):
    """Many concurrent slow streams through the gateway; its memory while they are open."""
    cmd = [loader.tool, "hold", "--url", t["url"], "--model", "slow", "--streams", str(args.streams),
           "--connections", str(max(args.streams // 150, 1)), "--hold-secs", str(args.hold_secs)]
    cmd += tool_auth(t)
    before = memory_mb(t["pid"])
    p = subprocess.Popen(pin(cmd, "load"), stdout=subprocess.PIPE, text=True)
    first = json.loads(p.stdout.readline())
    time.sleep(min(2, args.hold_secs))
    during = memory_mb(t["pid"])
    cpu0 = cpu_seconds(t["pid"])
    time.sleep(max(args.hold_secs - 3, 1))
    cpu_hold = cpu_seconds(t["pid"]) - cpu0
    last = json.loads(p.stdout.read().strip().splitlines()[-1])
    p.wait()
    r = {"target": t["name"], "streams": args.streams, "opened": first["open"], "failed": first["failed"],
         "open_after_ms": first["open_after_ms"], "rss_before_mb": before, "rss_open_mb": during,
         "rss_peak_mb": memory_mb(t["pid"], "VmHWM"),
         "kb_per_stream": round((during - before) * 1024 / max(first["open"], 1), 1),
         "cpu_share_while_open": round(cpu_hold / max(args.hold_secs - 3, 1), 3), "end": last}
    results["held_streams"].append(r)
    print(f"  {t['name']:>9} {first['open']} open streams: RSS {during} MB ({r['kb_per_stream']} KB/stream), "
          f"failed {first['failed']}", flush=True)


# ---------------------------------------------------------------- report


def delta(a, b):
    return None if a is None or b is None else round(a - b, 3)


def render(results):
    by = {t["name"]: t for t in results["targets"]}
    direct = by.get("direct")
    lines = [f"# Modelgate benchmark — {results['started']}", "",
             f"Machine: {results['machine']}  ",
             f"Command: `{results['command']}`  ",
             f"Load generator: {results['loadgen']}; {results['secs']} s per step; "
             f"gateway pinned to core {cores()[0]}, mock and load generator to the others. "
             "Latency in milliseconds; added = target minus direct at the same percentile.", ""]
    names = [t["name"] for t in results["targets"]]
    lines += ["## Summary", "", "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]

    def row(label, f):
        lines.append(f"| {label} | " + " | ".join(str(f(by[n]) if f(by[n]) is not None else "—") for n in names) + " |")

    row("max throughput (req/s)", lambda t: t["max"]["rps"])
    row("CPU per request at max (µs)", lambda t: t["max"].get("cpu_us_per_req"))
    for rate in results["rates"]:
        k = str(rate)
        row(f"added p50 / p99 at {rate}/s (ms)", lambda t, k=k: None if t is direct or not direct else
            f"{delta(t['rates'][k]['p50'], direct['rates'][k]['p50'])} / {delta(t['rates'][k]['p99'], direct['rates'][k]['p99'])}")
    def ttft(t):
        if t is direct or "stream" not in t or not direct:
            return None
        if t.get("stream_failed"):
            return "failed"
        return (f"{delta(t['stream']['ttft_ms']['p50'], direct['stream']['ttft_ms']['p50'])} / "
                f"{delta(t['stream']['ttft_ms']['p99'], direct['stream']['ttft_ms']['p99'])}")

    row("added TTFT p50 / p99 (ms)", ttft)
    row("inter-chunk gap p50 / p99, 10 ms upstream (ms)", lambda t: None if "stream_paced" not in t else
        "failed" if t.get("stream_failed") else f"{t['stream_paced']['gap_ms']['p50']} / {t['stream_paced']['gap_ms']['p99']}")
    row("RSS idle / peak (MB)", lambda t: None if "rss_idle_mb" not in t else f"{t['rss_idle_mb']} / {t.get('rss_peak_mb')}")
    lines.append("")
    for rate in results["rates"]:
        k = str(rate)
        lines += [f"## Fixed rate {rate} req/s", "",
                  "| target | achieved req/s | p50 | p90 | p99 | p99.9 | added p50 | added p99 | errors | gateway CPU µs/req |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for n in names:
            s = by[n]["rates"][k]
            d = direct["rates"][k] if direct else None
            lines.append(f"| {n} | {s['rps']} | {s['p50']} | {s['p90']} | {s['p99']} | {s['p999']} | "
                         f"{delta(s['p50'], d['p50']) if d and by[n] is not direct else '—'} | "
                         f"{delta(s['p99'], d['p99']) if d and by[n] is not direct else '—'} | {s['errors']} | "
                         f"{s.get('cpu_us_per_req', '—')} |")
        lines.append("")
    lines += ["## Streams", "",
              "| target | TTFT p50 | TTFT p99 | gap p50 (unpaced) | gap p50 / p99 (10 ms upstream) | errors |",
              "|---|---|---|---|---|---|"]
    for n in names:
        t = by[n]
        if "stream" not in t:
            continue
        if t.get("stream_failed"):
            lines.append(f"| {n} | failed | failed | — | — | {t['stream']['errors'] + t['stream_paced']['errors']} |")
            continue
        lines.append(f"| {n} | {t['stream']['ttft_ms']['p50']} | {t['stream']['ttft_ms']['p99']} | "
                     f"{(t['stream']['gap_ms'] or {}).get('p50')} | {t['stream_paced']['gap_ms']['p50']} / "
                     f"{t['stream_paced']['gap_ms']['p99']} | {t['stream']['errors'] + t['stream_paced']['errors']} |")
    lines.append("")
    if results["held_streams"]:
        lines += ["## Concurrent slow streams", "",
                  "| target | streams | opened | failed | RSS before | RSS with all open | per stream | gateway CPU share while open |",
                  "|---|---|---|---|---|---|---|---|"]
        for h in results["held_streams"]:
            lines.append(f"| {h['target']} | {h['streams']} | {h['opened']} | {h['failed']} | {h['rss_before_mb']} MB | "
                         f"{h['rss_open_mb']} MB | {h['kb_per_stream']} KB | {h['cpu_share_while_open']} |")
        lines.append("")
    return "\n".join(lines)


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) // 1024 // 1024} GiB"
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), {mem}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--tool", required=True)
    ap.add_argument("--oha", default="")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--peers", action="store_true")
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--rates", default="100,1000,5000")
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--max-conns", type=int, default=64)
    ap.add_argument("--stream-requests", type=int, default=500)
    ap.add_argument("--streams", type=int, default=10000)
    ap.add_argument("--hold-secs", type=int, default=10)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/modelgate"))
    ap.add_argument("--command", default="")
    ap.add_argument("--targets", default="", help="comma-separated subset of direct,bare,governed,litellm,portkey")
    args = ap.parse_args()
    args.rates = [int(r) for r in args.rates.split(",") if r]
    work = tempfile.mkdtemp(prefix="modelgate-bench-")
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    results = {"started": started, "machine": machine(), "command": args.command or " ".join(sys.argv),
               "loadgen": "oha" if args.oha else "modelgate-bench load (built in)", "secs": args.secs,
               "rates": args.rates, "targets": [], "held_streams": []}
    procs = []
    try:
        mock = Proc("mock", pin([args.upstream, "--threads", "1"], "load"), log_dir=work)
        procs.append(mock)
        mock_url = mock.first_line("listening on ")
        loader = Loader(args.oha or None, args.tool, work)
        print(f"mock upstream at {mock_url}; logs in {work}", flush=True)
        wanted = set(args.targets.split(",")) if args.targets else {"direct", "bare", "governed"} | (
            {"litellm", "portkey"} if args.peers else set())
        if "direct" in wanted:
            direct = {"name": "direct", "url": mock_url + "/v1/chat/completions", "model": "bench", "headers": {}}
            measure(args, loader, direct, results)
        for name, governed in (("bare", False), ("governed", True)):
            if name not in wanted:
                continue
            p, t = start_gateway(args, name, mock_url, governed, work)
            procs.append(p)
            measure(args, loader, t, results)
            if args.streams and (governed or args.smoke):
                hold_streams(args, loader, t, results)
            p.stop()
        if wanted & {"litellm", "portkey"}:
            for start in [s for s in (start_litellm, start_portkey) if s.__name__[6:] in wanted]:
                try:
                    p, t = start(args, mock_url, work)
                except Exception as e:  # a peer that cannot install is reported, not fatal
                    print(f"  peer {start.__name__[6:]} skipped: {e}", flush=True)
                    results.setdefault("skipped", []).append(f"{start.__name__[6:]}: {e}")
                    continue
                procs.append(p)
                measure(args, loader, t, results)
                p.stop()
    finally:
        for p in procs:
            p.stop()
    os.makedirs(args.out, exist_ok=True)
    stamp = "smoke" if args.smoke else started.replace(":", "")
    md = render(results)
    for base in (stamp, "latest" if not args.smoke else None):
        if not base:
            continue
        with open(os.path.join(args.out, base + ".json"), "w") as f:
            json.dump(results, f, indent=1)
        with open(os.path.join(args.out, base + ".md"), "w") as f:
            f.write(md + "\n")
    print("\n" + md)
    bad = [t["name"] for t in results["targets"]
           if any(r["ok"] == 0 for r in t["rates"].values()) or t["max"]["ok"] == 0]
    if bad:
        print(f"FAILED: no successful requests for {bad}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
