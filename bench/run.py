"""`make bench`: Skylane against the upstream itself and its peers, one machine, one run.

    .venv/bin/python bench/run.py [--quick] [--only upstream,skylane,skylane_prev,skylane_base,portkey,litellm]
                                  [--skip auth,memory,quota,sse,...] [--no-write]

1. A fast fake upstream (bench/fake_upstream.py: OpenAI and Anthropic formats, streams of 200 chunks).
2. For each target (the upstream directly; Skylane started by functions/completions/run.sh as the
   Lambda Web Adapter starts it — uvloop + httptools, its own upstream client transport/h1.py; `skylane_prev`,
   the same code on the previous stack — asyncio + h11, SKYLANE_HTTP_TRANSPORT=httpx; `skylane_base`, the
   code issue 18 was filed on (targets.BASELINE_COMMIT) as it ran then; Portkey's
   gateway, the LiteLLM proxy — peers where installed) and each case:
   wrk at concurrency 1 and 16 (p50/p90/p99, requests/s; gateway CPU per request from /proc), for
   streams the time to first byte at concurrency 1 (bench/loadgen.py), and the SSE-writes case
   (bench/sse_writes.py: events arriving in a few large writes, and one event per write).
3. Skylane only: a py-spy profile under load, RSS over 20,000 requests, the overhead at c=1 under
   a cgroup CPU quota of a 256 MB Lambda function's share (bench/cpuquota.py), auth + limits against
   DynamoDB Local with every DynamoDB call counted and placed before/after the upstream call,
   (also with SKYLANE_SETTLE_INLINE, the Lambda default), CPU per streamed chunk, the upstream
   HTTP client's CPU per request, cold import time and peak RSS, the unzipped layer size.
4. The table goes to stdout and bench/results/latest.md (+ latest.json), and its summary (headline
   and issue 18's targets) into README.md's Performance section and docs/performance.md, between
   their `<!-- results:start -->` / `<!-- results:end -->` markers (bench/publish.py).

Settings: BENCH_DURATION (s per wrk run, default 5), BENCH_WARMUP (1), BENCH_TTFB_SECONDS (2),
BENCH_MEMORY_REQUESTS (20000). Logs and raw profiles: bench/results/run.tmp/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import httpx  # noqa: E402
import micro  # noqa: E402
import parts  # noqa: E402
import publish  # noqa: E402
import report  # noqa: E402
import sse_writes  # noqa: E402
from cases import (  # noqa: E402
    ANTHROPIC_MODEL,
    CASES,
    CHUNKS,
    HOST,
    OPENAI_MODEL,
    PEERS,
    PY,
    RESULTS,
    RUN_DIR,
    Case,
    Endpoint,
    Target,
    anthropic_native_body,
    chat_body,
)
from fake_upstream import ANSWER  # noqa: E402
from loadgen import Request, run_load, summarize  # noqa: E402
from procs import Proc, free_port, wait_http, wrk, wrk_version  # noqa: E402
from profiles import summarize_raw  # noqa: E402
from targets import BASELINE_COMMIT, COLD_LIMITS  # noqa: E402


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        quick = args.quick
        self.duration = float(os.environ.get("BENCH_DURATION", "2" if quick else "5"))
        self.warmup = float(os.environ.get("BENCH_WARMUP", "1"))
        self.ttfb_seconds = float(os.environ.get("BENCH_TTFB_SECONDS", "1" if quick else "2"))
        self.memory_requests = int(os.environ.get("BENCH_MEMORY_REQUESTS", "2000" if quick else "20000"))
        self.only = {t for t in (args.only or "").split(",") if t}
        self.skip_parts = {t for t in (args.skip or "").split(",") if t}
        self.procs: list[Proc] = []
        self.fake_port = 0
        self.fake: Proc | None = None
        self.results: dict[str, Any] = {"matrix": {}, "targets": {}, "notes": []}

    # ---- helpers ---------------------------------------------------------------------------

    def log(self, msg: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def note(self, msg: str) -> None:
        self.results["notes"].append(msg)
        self.log("note: " + msg)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              stdout_pipe: bool = False) -> Proc:
        p = Proc(name, argv, RUN_DIR, env=env, cwd=ROOT, stdout_pipe=stdout_pipe)
        self.procs.append(p)
        return p

    def stop(self, proc: Proc | None) -> None:
        if proc is not None:
            proc.stop()
            if proc in self.procs:
                self.procs.remove(proc)

    def start_fake(self, name: str, dynamo_target: str = "") -> tuple[Proc, dict[str, int]]:
        argv = [PY, str(BENCH / "fake_upstream.py"), "--port", "0", "--chunks", str(CHUNKS)]
        if dynamo_target:
            argv += ["--dynamo-target", dynamo_target]
        p = self.start(name, argv, stdout_pipe=True)
        assert p.popen.stdout is not None
        line = p.popen.stdout.readline()
        if not line:
            raise RuntimeError(f"the fake upstream did not start: {p.log_tail()}")
        return p, json.loads(line)

    def base_env(self) -> dict[str, str]:
        drop = ("SKYLANE_", "OPENAI_", "ANTHROPIC_", "AWS_", "LITELLM_", "PORTKEY_")
        return {k: v for k, v in os.environ.items() if not k.startswith(drop)}

    def skylane_env(self, fake_port: int, **extra: str) -> dict[str, str]:
        env = self.base_env()
        env.update({"SKYLANE_AUTH": "disabled", "OPENAI_API_KEY": "x",
                    "OPENAI_BASE_URL": f"http://{HOST}:{fake_port}/v1",
                    "ANTHROPIC_API_KEY": "x", "ANTHROPIC_BASE_URL": f"http://{HOST}:{fake_port}",
                    "PYTHONPATH": str(ROOT)})
        env.update(extra)
        return env

    def start_skylane(self, name: str, env: dict[str, str], python: str = PY, extra: tuple[str, ...] = (),
                      root: Path = ROOT) -> Proc:
        """Skylane's completions app as the Lambda Web Adapter runs it: functions/completions/run.sh
        (uvicorn, one process, its --loop/--http, unbuffered stdout); `extra` switches to a direct
        uvicorn command with those options (the previous stack: asyncio + h11). `root`: another tree
        of the code (the issue's baseline)."""
        port = free_port()
        run_sh = root / "functions" / "completions" / "run.sh"
        env = {**env, "AWS_LWA_PORT": str(port), "PYTHONUNBUFFERED": "1",
               "PATH": f"{Path(python).parent}:{env.get('PATH', os.defpath)}"}
        if run_sh.exists() and not extra:
            argv = ["bash", str(run_sh)]
        else:
            argv = [python, "-m", "uvicorn", "functions.completions.app:app", "--host", HOST, "--port", str(port),
                    "--workers", "1", "--lifespan", "on", "--timeout-keep-alive", "120", "--no-access-log",
                    "--log-level", "warning", *extra]
        p = self.start(name, argv, env=env)
        p.port = port  # type: ignore[attr-defined]
        if not wait_http(f"http://{HOST}:{port}/health", p, timeout=60):
            raise RuntimeError(f"Skylane did not start: {p.log_tail()}")
        return p

    # ---- targets ----------------------------------------------------------------------------

    def target_upstream(self) -> Target:
        t = Target("upstream", "fake upstream, directly", version="bench/fake_upstream.py")
        t.port = self.fake_port
        t.proc = self.fake

        def endpoint(case: Case) -> Endpoint:
            if case.protocol == "openai":
                return Endpoint("/v1/chat/completions", chat_body(OPENAI_MODEL, case.stream), native=True)
            return Endpoint("/v1/messages", anthropic_native_body(case.stream),
                            {"x-api-key": "x", "anthropic-version": "2023-06-01"}, native=True)

        t.endpoint = endpoint
        return t

    def target_skylane(self) -> Target:
        t = Target("skylane", "Skylane (uvicorn, 1 worker)", version=_git_version())
        check = subprocess.run([PY, "-c", "import skylane.providers.anthropic"], cwd=ROOT, capture_output=True,
                               text=True, env=self.skylane_env(self.fake_port))
        if check.returncode != 0:
            why = (check.stderr.strip().splitlines() or ["import failed"])[-1][:160]
            for c in CASES:
                if c.protocol == "anthropic":
                    t.case_skip[c.name] = f"providers/anthropic.py does not import yet ({why})"
        return self._started_skylane(t, self.skylane_env(self.fake_port))

    def target_skylane_base(self) -> Target:
        """The code issue 18 was filed on (BASELINE_COMMIT), as it ran then (its run.sh: asyncio + h11,
        httpx), from this venv: the same-run reference for the targets the issue states in absolute
        figures measured on another machine."""
        t = Target("skylane_base", f"Skylane at the issue's baseline ({BASELINE_COMMIT[:7]})",
                   version=BASELINE_COMMIT[:7])
        tree = micro.baseline_tree(BASELINE_COMMIT)
        if tree is None:
            t.skip = f"this clone lacks commit {BASELINE_COMMIT[:7]}"
            return t
        return self._started_skylane(t, self.skylane_env(
            self.fake_port, PYTHONPATH=f"{tree / 'layers' / 'skylane'}{os.pathsep}{tree}"), root=tree)

    def target_skylane_prev(self) -> Target:
        """The same code on the previous stack, for comparison: uvicorn on asyncio + h11, and httpx's
        own transport (httpcore) for the upstream calls; the project's venv, no other packages."""
        t = Target("skylane_prev", "Skylane, previous stack (asyncio + h11, httpx transport)",
                   version=_git_version())
        sky = self.results["targets"].get("skylane", {})
        t.case_skip.update(sky.get("case_skip", {}))
        return self._started_skylane(t, self.skylane_env(self.fake_port, SKYLANE_HTTP_TRANSPORT="httpx"),
                                     extra=("--loop", "asyncio", "--http", "h11"))

    def _started_skylane(self, t: Target, env: dict[str, str], **start: Any) -> Target:
        """`t` served by a Skylane process (start_skylane's options), posting chat completions to it."""
        try:
            t.proc = self.start_skylane(t.name, env, **start)
        except RuntimeError as exc:
            t.skip = str(exc)[:300]
            return t
        t.port = t.proc.port  # type: ignore[attr-defined]

        def endpoint(case: Case) -> Endpoint:
            model = OPENAI_MODEL if case.protocol == "openai" else f"anthropic/{ANTHROPIC_MODEL}"
            return Endpoint("/v1/chat/completions", chat_body(model, case.stream))

        t.endpoint = endpoint
        return t

    def target_portkey(self) -> Target:
        pkg = PEERS / "node_modules" / "@portkey-ai" / "gateway"
        entry = pkg / "build" / "start-server.js"
        t = Target("portkey", "Portkey gateway (node)")
        failed = PEERS / "portkey.failed"
        if failed.exists() or not entry.exists():
            t.skip = "not installed" + (f": {failed.read_text().strip()[-200:]}" if failed.exists() else "")
            return t
        t.version = json.loads((pkg / "package.json").read_text()).get("version", "?")
        port = free_port()
        env = self.base_env()
        t.proc = self.start("portkey", ["node", str(entry), f"--port={port}", "--headless"], env=env)
        if not wait_http(f"http://{HOST}:{port}/", t.proc, timeout=60):
            t.skip = f"did not start: {t.proc.log_tail(5)}"
            return t
        t.port = port

        def endpoint(case: Case) -> Endpoint:
            if case.protocol == "openai":
                return Endpoint("/v1/chat/completions", chat_body(OPENAI_MODEL, case.stream),
                                {"x-portkey-provider": "openai", "authorization": "Bearer x",
                                 "x-portkey-custom-host": f"http://{HOST}:{self.fake_port}/v1"})
            return Endpoint("/v1/chat/completions", chat_body(ANTHROPIC_MODEL, case.stream),
                            {"x-portkey-provider": "anthropic", "authorization": "Bearer x",
                             "x-portkey-custom-host": f"http://{HOST}:{self.fake_port}/v1"})

        t.endpoint = endpoint
        return t

    def target_litellm(self) -> Target:
        venv = PEERS / "litellm-venv"
        exe = venv / "bin" / "litellm"
        t = Target("litellm", "LiteLLM proxy (1 worker)")
        failed = PEERS / "litellm.failed"
        if failed.exists() or not exe.exists():
            t.skip = "not installed" + (f": {failed.read_text().strip()[-200:]}" if failed.exists() else "")
            return t
        marker = venv / ".bench-installed"
        t.version = marker.read_text().strip() if marker.exists() else "?"
        config = RUN_DIR / "litellm.yaml"
        config.write_text(_litellm_config(self.fake_port))
        port = free_port()
        env = self.base_env()
        # no master key: the proxy's own auth off, like Skylane's (the flag exists for local use like this)
        env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False",
                    "DISABLE_SCHEMA_UPDATE": "True", "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true"})
        t.proc = self.start("litellm", [str(exe), "--config", str(config), "--host", HOST, "--port", str(port),
                                        "--num_workers", "1", "--telemetry", "False"], env=env)
        if not wait_http(f"http://{HOST}:{port}/health/liveliness", t.proc, timeout=180):
            t.skip = f"did not start: {t.proc.log_tail(5)}"
            return t
        t.port = port

        def endpoint(case: Case) -> Endpoint:
            model = OPENAI_MODEL if case.protocol == "openai" else f"anthropic/{ANTHROPIC_MODEL}"
            return Endpoint("/v1/chat/completions", chat_body(model, case.stream))

        t.endpoint = endpoint
        return t

    # ---- measuring --------------------------------------------------------------------------

    def validate(self, t: Target, case: Case, ep: Endpoint) -> str | None:
        url = f"http://{HOST}:{t.port}{ep.path}"
        try:
            r = httpx.post(url, content=ep.body_bytes(), headers={"content-type": "application/json", **ep.headers},
                           timeout=60)
        except httpx.HTTPError as exc:
            return f"request failed: {type(exc).__name__}"
        if r.status_code != 200:
            return f"HTTP {r.status_code}: {r.text[:200]}"
        text = ""
        try:
            if not case.stream:
                data = r.json()
                if ep.native and case.protocol == "anthropic":
                    text = data["content"][0]["text"]
                else:
                    text = data["choices"][0]["message"]["content"]
                return None if ANSWER in text else f"unexpected answer: {r.text[:200]}"
            pieces = []
            done = False
            for line in r.text.splitlines():
                if not line.startswith("data:"):
                    continue
                data_s = line[5:].strip()
                if data_s == "[DONE]":
                    done = True
                    continue
                obj = json.loads(data_s)
                if ep.native and case.protocol == "anthropic":
                    if obj.get("type") == "content_block_delta":
                        pieces.append(obj["delta"]["text"])
                    done = done or obj.get("type") == "message_stop"
                else:
                    for ch in obj.get("choices") or []:
                        pieces.append((ch.get("delta") or {}).get("content") or "")
            text = "".join(pieces)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return f"unexpected body ({type(exc).__name__}): {r.text[:200]}"
        if f"tok{CHUNKS - 1} " not in text or "tok0 " not in text:
            return f"stream incomplete: {len(text)} characters of content"
        if not done:
            return "stream did not end with [DONE] / message_stop"
        return None

    def measure_case(self, t: Target, case: Case, ep: Endpoint) -> dict[str, Any]:
        url = f"http://{HOST}:{t.port}{ep.path}"
        body_file = RUN_DIR / f"body-{t.name}-{case.name}.json"
        body_file.write_bytes(ep.body_bytes())
        out: dict[str, Any] = {}
        if self.warmup:
            wrk(url, body_file, ep.headers, 16, self.warmup)
        mark = _log_mark(t)
        out["c1"] = wrk(url, body_file, ep.headers, 1, self.duration)
        if mark is not None:
            out["server_c1"] = _server_timings(t, mark)
        proc = t.proc
        cpu0 = proc.cpu_seconds() if proc else 0.0
        out["c16"] = wrk(url, body_file, ep.headers, 16, self.duration)
        cpu1 = proc.cpu_seconds() if proc else 0.0
        if proc and out["c16"]["requests"]:
            out["cpu_ms_per_req"] = (cpu1 - cpu0) / out["c16"]["requests"] * 1000
            out["cpu_cores"] = (cpu1 - cpu0) / self.duration
        if case.stream:
            req = Request(ep.path, ep.body_bytes(), tuple(ep.headers.items()))
            # 5 ms apart, so that the previous request's tail (logging, settling) is not counted
            mark = _log_mark(t)
            res = asyncio.run(run_load(HOST, t.port, [req], concurrency=1, duration=self.ttfb_seconds, pause=0.005))
            out["ttfb"] = summarize(res)
            if mark is not None:
                out["server_ttfb"] = _server_timings(t, mark)
        return out

    def run_target(self, make: Callable[[], Target]) -> Target | None:
        name = make.__name__.removeprefix("target_")
        if self.only and name not in self.only:
            return None
        self.log(f"target {name}: starting")
        t = make()
        self.results["targets"][t.name] = {"label": t.label, "version": t.version, "skip": t.skip,
                                           "case_skip": dict(t.case_skip)}
        if t.skip:
            self.log(f"target {name}: skipped ({t.skip})")
            if t.proc is not self.fake:
                self.stop(t.proc)
            return t
        assert t.endpoint is not None
        for case in CASES:
            if case.name in t.case_skip:
                self.log(f"  {case.name}: skipped ({t.case_skip[case.name]})")
                continue
            ep = t.endpoint(case)
            problem = self.validate(t, case, ep)
            if problem and t.proc is not None and t.proc is not self.fake:
                err = next((ln.strip() for ln in t.proc.log_tail(40).splitlines() if "Error" in ln), None)
                if err:
                    problem += f" — its log: {err[:160]}"
            if problem:
                t.case_skip[case.name] = f"answer check failed: {problem}"
                self.results["targets"][t.name]["case_skip"][case.name] = t.case_skip[case.name]
                self.log(f"  {case.name}: answer check failed: {problem}")
                continue
            try:
                r = self.measure_case(t, case, ep)
            except Exception as exc:  # a broken run must not end the benchmark
                t.case_skip[case.name] = f"measurement failed: {exc}"[:300]
                self.results["targets"][t.name]["case_skip"][case.name] = t.case_skip[case.name]
                self.log(f"  {case.name}: measurement failed: {exc}")
                continue
            self.results["matrix"].setdefault(case.name, {})[t.name] = r
            extra = f", TTFB p50 {r['ttfb']['ttfb_p50_ms']:.2f} ms" if "ttfb" in r else ""
            self.log(f"  {case.name}: c1 p50 {r['c1']['p50_ms']:.2f} ms, c16 {r['c16']['rps']:.0f} req/s{extra}")
            if case.stream and "sse" not in self.skip_parts:
                self.sse_case(t, case, ep)
        return t

    def sse_case(self, t: Target, case: Case, ep: Endpoint) -> None:
        """Events that arrive in one read leave in one write, and none waits (bench/sse_writes.py)."""
        req = Request(ep.path, ep.body_bytes(), tuple(ep.headers.items()))
        try:
            r = sse_writes.measure(HOST, t.port, req, f"http://{HOST}:{self.fake_port}",
                                   streams=5 if self.args.quick else 20, paced_streams=3 if self.args.quick else 10)
        except Exception as exc:
            r = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
            self.log(f"  {case.name} SSE writes: failed: {r['error']}")
        else:
            self.log(f"  {case.name} SSE writes: {r['upstream_writes']} upstream writes -> {r['chunks_p50']} chunks "
                     f"({r['reads_p50']} reads); one event per write: delay p50 {r['delay_p50_ms']:.2f} ms, "
                     f"last event {r['last_delay_p50_ms']:.2f} ms")
        self.results.setdefault("sse_writes", {}).setdefault(case.name, {})[t.name] = r

    def pyspy(self, pid: int, url: str, body_file: Path, headers: dict[str, str], name: str,
              gil: bool = False) -> dict[str, Any] | None:
        """Profile a process with py-spy while wrk loads it at c=16; a summary of the samples. `gil`:
        only the thread holding the GIL (Python CPU), for processes with worker threads."""
        pyspy = PEERS / "bench-venv" / "bin" / "py-spy"
        if not pyspy.exists():
            self.note("py-spy is not installed (bench/.peers/bench-venv): no profiles")
            return None
        raw = RUN_DIR / f"profile-{name}.txt"
        seconds = max(3, round(self.duration))
        spy = subprocess.Popen([str(pyspy), "record", "--pid", str(pid), "--duration", str(seconds),
                                "--rate", "200", "--format", "raw", "--nonblocking", "--output", str(raw),
                                *(["--gil"] if gil else [])],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.3)
        wrk(url, body_file, headers, 16, seconds)
        try:
            _, err = spy.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
        if spy.returncode != 0 or not raw.exists():
            self.note(f"py-spy failed: {err.decode(errors='replace')[-200:]}")
            return None
        summary = summarize_raw(raw)
        self.log(f"  profile {name}: {summary['samples']} samples")
        return summary

    def profile_skylane(self, t: Target) -> None:
        profiles = self.results.setdefault("profiles", {})
        for case in CASES:
            if case.name in t.case_skip or case.name not in ("openai", "openai_stream", "anthropic_stream"):
                continue
            assert t.endpoint is not None and t.proc is not None
            ep = t.endpoint(case)
            body_file = RUN_DIR / f"body-{t.name}-{case.name}.json"
            prof = self.pyspy(t.proc.pid, f"http://{HOST}:{t.port}{ep.path}", body_file, ep.headers,
                              f"skylane-{case.name}")
            if prof is None:
                return
            profiles[case.name] = prof

    def micro(self) -> None:
        if "translate" not in self.skip_parts:
            self.log("CPU per streamed chunk (in-process)")
            tr = []
            for proto in ("openai", "anthropic"):
                try:
                    tr.append(micro.translation_cpu(proto))
                except Exception as exc:
                    tr.append({"protocol": proto, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
            self.results["translation"] = tr
        if "cold" not in self.skip_parts:
            self.log("cold import (fresh interpreters)")
            cold = []
            baseline = micro.baseline_tree(BASELINE_COMMIT)
            for mod in ("functions.completions.app", "functions.models.app"):
                for auth in (True, False):
                    with_base = baseline if (mod in COLD_LIMITS and auth) else None
                    cold.append(micro.cold_start(PY, mod, auth, runs=9 if with_base else 5, baseline=with_base))
            self.results["cold"] = cold
            self.results["cold_baseline_commit"] = BASELINE_COMMIT if baseline else None
            self.results["cold_profile"] = {mod: micro.import_profile(PY, mod, True)
                                            for mod in ("functions.completions.app", "functions.models.app")}
        if "client" not in self.skip_parts:
            self.log("upstream HTTP client CPU per request (h1 vs httpx vs aiohttp vs bare asyncio)")
            self.results["client_cpu"] = micro.client_cpu(PY, str(PEERS / "bench-venv" / "bin" / "python"))
        if "layer" not in self.skip_parts:
            self.log("layer size (pip install --target)")
            self.results["layer"] = micro.layer_size(PY)

    # ---- the whole run --------------------------------------------------------------------------

    def run(self) -> int:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        if self.args.wait_idle:
            deadline = time.monotonic() + self.args.wait_idle
            while os.getloadavg()[0] > 0.5 and time.monotonic() < deadline:
                time.sleep(5)
            self.log(f"load average {os.getloadavg()[0]:.2f} at start")
        started = time.perf_counter()
        self.results["meta"] = _meta()
        self.results["settings"] = {"duration_s": self.duration, "warmup_s": self.warmup,
                                    "ttfb_seconds": self.ttfb_seconds, "chunks": CHUNKS,
                                    "memory_requests": self.memory_requests}
        try:
            self.fake, info = self.start_fake("fake-upstream")
            self.fake_port = info["port"]
            self.log(f"fake upstream on port {self.fake_port}")
            self.run_target(self.target_upstream)
            sky = self.run_target(self.target_skylane)
            if sky is not None and not sky.skip:
                if "profile" not in self.skip_parts:
                    self.profile_skylane(sky)
                self.stop(sky.proc)
            for make in (self.target_skylane_prev, self.target_skylane_base, self.target_portkey,
                         self.target_litellm):
                t = self.run_target(make)
                if t is not None and not t.skip and t.name == "skylane_prev" and "profile" not in self.skip_parts \
                        and "openai" not in t.case_skip and t.proc is not None and t.endpoint is not None:
                    ep = t.endpoint(CASES[0])
                    prof = self.pyspy(t.proc.pid, f"http://{HOST}:{t.port}{ep.path}",
                                      RUN_DIR / "body-skylane_prev-openai.json", ep.headers, "skylane_prev-openai")
                    if prof:
                        self.results.setdefault("profiles", {})["skylane_prev-openai"] = prof
                if t is not None:
                    self.stop(t.proc)
            if "memory" not in self.skip_parts and (not self.only or "skylane" in self.only):
                parts.memory(self)
            if "quota" not in self.skip_parts and (not self.only or "skylane" in self.only):
                parts.quota_case(self)
            if "auth" not in self.skip_parts and (not self.only or "skylane" in self.only):
                parts.auth_case(self)
        finally:
            for p in list(self.procs):
                self.stop(p)
        self.micro()
        self.results["meta"]["elapsed_s"] = time.perf_counter() - started
        (RUN_DIR / "results.json").write_text(json.dumps(self.results, indent=1, default=str) + "\n")
        md = report.render(self.results)
        print()
        print(md)
        if not self.args.no_write:
            (RESULTS / "latest.md").write_text(md)
            (RESULTS / "latest.json").write_text(json.dumps(self.results, indent=1, default=str) + "\n")
            self.log(f"wrote {RESULTS / 'latest.md'} and latest.json")
            for path in publish.publish(self.results, ROOT):
                self.log(f"updated the results section of {path.relative_to(ROOT)}")
        return 0


def _log_mark(t: Target) -> int | None:
    """Where Skylane's log (one JSON line per request) stands now; None for other targets."""
    if not t.name.startswith("skylane") or t.proc is None:
        return None
    time.sleep(0.2)  # let the previous run's lines land
    return t.proc.log_path.stat().st_size


def _server_timings(t: Target, mark: int) -> dict[str, float]:
    """Median latency_ms / ttft_ms that Skylane logged for the requests since `mark`: time inside
    the gateway's handler, as opposed to what the client saw."""
    assert t.proc is not None
    time.sleep(0.2)
    with open(t.proc.log_path, "rb") as f:
        f.seek(mark)
        lines = f.read().decode(errors="replace").splitlines()
    fields: dict[str, list[float]] = {"latency_ms": [], "ttft_ms": []}
    for line in lines:
        if not line.startswith("{") or '"latency_ms"' not in line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if obj.get("message") != "request":
            continue
        for k in fields:
            if isinstance(obj.get(k), int | float):
                fields[k].append(float(obj[k]))
    out = {"requests": float(len(fields["latency_ms"]))}
    for k, v in fields.items():
        if v:
            out[k + "_p50"] = statistics.median(v)
    return out


def _litellm_config(fake_port: int) -> str:
    return f"""model_list:
  - model_name: {OPENAI_MODEL}
    litellm_params:
      model: openai/{OPENAI_MODEL}
      api_base: http://{HOST}:{fake_port}/v1
      api_key: x
  - model_name: anthropic/{ANTHROPIC_MODEL}
    litellm_params:
      model: anthropic/{ANTHROPIC_MODEL}
      api_base: http://{HOST}:{fake_port}
      api_key: x
litellm_settings:
  drop_params: true
  telemetry: false
"""


def _git_version() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "layers", "functions"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def _meta() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("uvicorn", "fastapi", "starlette", "httpx", "pydantic", "h11", "httptools", "uvloop", "orjson"):
        try:
            from importlib.metadata import version

            versions[pkg] = version(pkg)
        except Exception:
            versions[pkg] = "not installed"
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip() or "?"
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu, "cores": os.cpu_count(), "load_avg_at_start": os.getloadavg(),
        "python": platform.python_version(), "node": node, "wrk": wrk_version(), "packages": versions,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs (a smoke test of the harness)")
    ap.add_argument("--only", help="comma-separated targets: upstream,skylane,skylane_prev,skylane_base,portkey,"
                                   "litellm")
    ap.add_argument("--skip", help="comma-separated parts: profile,memory,quota,sse,auth,translate,client,cold,layer")
    ap.add_argument("--no-write", action="store_true",
                    help="print the table only (no results/latest.*, README.md, docs/performance.md)")
    ap.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                    help="on a shared machine: wait up to this long for the 1-minute load average to drop below 0.5")
    return Bench(ap.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
