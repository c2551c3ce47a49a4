"""In-process and fresh-interpreter measurements: CPU per streamed chunk, cold import, layer size.

Run pieces alone for a quick look:
    .venv/bin/python bench/micro.py translate     # µs of CPU per chunk
    .venv/bin/python bench/micro.py cold          # import wall time and peak RSS
    .venv/bin/python bench/micro.py layer         # unzipped layer size
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from fake_upstream import anthropic_answers, openai_answers  # noqa: E402

__all__ = ["baseline_tree", "client_cpu", "cold_start", "import_profile", "layer_size", "translation_cpu"]

CHUNKS = 200
MODELS = {"openai": "gpt-4o-mini", "anthropic": "anthropic/claude-3-5-haiku-20241022"}


def _sse_body(http_response: bytes) -> list[bytes]:
    """The SSE bytes of a pre-rendered chunked response, one piece per HTTP chunk."""
    body = http_response.split(b"\r\n\r\n", 1)[1]
    pieces = []
    pos = 0
    while True:
        nl = body.index(b"\r\n", pos)
        n = int(body[pos:nl], 16)
        if n == 0:
            return pieces
        pieces.append(body[nl + 2:nl + 2 + n])
        pos = nl + 2 + n + 2


async def _aiter(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for p in pieces:
        yield p


def translation_cpu(protocol: str, streams: int = 300) -> dict[str, Any]:
    """CPU per chunk of turning an upstream stream into OpenAI SSE bytes, as the gateway does:
    SSE decode → adapter translator → stamp id/object/created/model → encode. Also the translator
    alone. process_time over `streams` streams of CHUNKS content chunks each."""
    env = {"SKYLANE_AUTH": "disabled", "OPENAI_API_KEY": "x", "ANTHROPIC_API_KEY": "x"}
    from skylane.core.catalog import load_catalog
    from skylane.core.request import parse_request
    from skylane.core.settings import Settings
    from skylane.providers import get_adapter
    from skylane.transport.sse import decode_sse, encode_event

    settings = Settings.from_env(env)
    catalog = load_catalog(settings)
    target = catalog.target(MODELS[protocol])
    adapter = get_adapter(target.provider.protocol)
    req = parse_request(json.dumps({"model": MODELS[protocol], "stream": True,
                                    "stream_options": {"include_usage": True},
                                    "messages": [{"role": "user", "content": "Say hello"}]}).encode())
    rendered = (openai_answers(CHUNKS)[0]["stream_usage"] if protocol == "openai"
                else anthropic_answers(CHUNKS)[0]["stream"])
    pieces = _sse_body(rendered)

    async def decode_all() -> list[Any]:
        return [ev async for ev in decode_sse(_aiter(pieces))]

    events = asyncio.run(decode_all())

    def translate_only() -> int:
        tr = adapter.stream_translator(req, target)
        n = 0
        for ev in events:
            n += len(tr.feed(ev))
        n += len(tr.finish())
        return n

    async def full_path() -> int:
        tr = adapter.stream_translator(req, target)
        n = 0
        size = 0
        async for ev in decode_sse(_aiter(pieces)):
            for c in tr.feed(ev):
                c["id"] = "chatcmpl-x"
                c["object"] = "chat.completion.chunk"
                c["created"] = 1700000000
                c["model"] = MODELS[protocol]
                size += len(encode_event(c))
                n += 1
        return n

    emitted = translate_only()  # warm-up, and the chunk count
    t0 = time.process_time()
    for _ in range(streams):
        translate_only()
    translate_s = time.process_time() - t0

    async def many() -> None:
        for _ in range(streams):
            await full_path()

    asyncio.run(full_path())
    t0 = time.process_time()
    asyncio.run(many())
    full_s = time.process_time() - t0
    total = emitted * streams
    return {
        "protocol": protocol,
        "chunks_per_stream": emitted,
        "upstream_events_per_stream": len(events),
        "streams": streams,
        "translate_us_per_chunk": translate_s / total * 1e6,
        "full_us_per_chunk": full_s / total * 1e6,
    }


_COLD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import importlib
importlib.import_module(sys.argv[1])
t = time.perf_counter() - t0
# peak RSS of this interpreter: VmHWM (ru_maxrss would carry the parent's peak across fork + exec)
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    with open("/proc/self/status") as f:
        peak_kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    pass
print(json.dumps({"import_s": t, "maxrss_kb": peak_kb, "modules": len(sys.modules)}))
"""


def _cold_env(auth: bool, root: Path = ROOT) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SKYLANE_", "OPENAI_", "ANTHROPIC_"))}
    env.update({"SKYLANE_AUTH": "enabled" if auth else "disabled", "OPENAI_API_KEY": "x", "ANTHROPIC_API_KEY": "x",
                "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x",
                "AWS_SECRET_ACCESS_KEY": "x", "PYTHONDONTWRITEBYTECODE": "1",
                # this tree's skylane package ahead of the venv's editable install (the baseline's tree too)
                "PYTHONPATH": f"{root / 'layers' / 'skylane'}{os.pathsep}{root}"})
    return env


def baseline_tree(commit: str) -> Path | None:
    """The layer and functions of `commit` unpacked under bench/.peers/ (None when this clone lacks
    the commit, e.g. a shallow one): the code the issue's figures were measured on, to measure again
    on this machine with this venv."""
    dest = BENCH / ".peers" / f"baseline-{commit[:12]}"
    if (dest / "functions").is_dir():
        return dest
    if subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=ROOT, capture_output=True).returncode:
        return None
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", commit, "layers", "functions"], cwd=ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
    tmp.rename(dest)
    return dest


def _cold_run(python: str, module: str, auth: bool, root: Path) -> tuple[float, float, float] | str:
    """One fresh interpreter importing `module` from `root`: (import s, wall s, peak RSS kB), or the error."""
    t0 = time.perf_counter()
    out = subprocess.run([python, "-c", _COLD, module], capture_output=True, text=True, cwd=root,
                         env=_cold_env(auth, root), timeout=120)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        return (out.stderr.strip().splitlines() or ["failed"])[-1][:200]
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return data["import_s"], wall, data["maxrss_kb"]


def cold_start(python: str, module: str, auth: bool, runs: int = 5,
               baseline: Path | None = None) -> dict[str, Any]:
    """Import `module` in fresh interpreters: median import time, process wall time, peak RSS. The
    modules are compiled to bytecode first, as `make sam-build` ships them (the dependencies in the
    venv have theirs from pip; PYTHONDONTWRITEBYTECODE, set on some machines, would otherwise have
    every run compile the skylane package from source). With `baseline` (a tree from baseline_tree),
    each run is followed by one of the baseline's, so both see the same machine at the same moment."""
    roots = [ROOT] if baseline is None else [ROOT, baseline]
    for root in roots:
        subprocess.run([python, "-m", "compileall", "-q", "layers/skylane/skylane", "functions"], cwd=root,
                       capture_output=True, timeout=300, check=False)
    samples: dict[Path, list[tuple[float, float, float]]] = {r: [] for r in roots}
    for i in range(runs + 1):  # the first run warms the page cache and is not counted
        for root in roots:
            got = _cold_run(python, module, auth, root)
            if isinstance(got, str):
                return {"module": module, "auth": auth, "error": got if root == ROOT else f"baseline: {got}"}
            if i:
                samples[root].append(got)

    def stats(rows: list[tuple[float, float, float]]) -> dict[str, Any]:
        return {"import_s": statistics.median(r[0] for r in rows), "import_min_s": min(r[0] for r in rows),
                "wall_s": statistics.median(r[1] for r in rows), "maxrss_mb": max(r[2] for r in rows) / 1024}

    result = {"module": module, "auth": auth, "runs": runs, **stats(samples[ROOT])}
    if baseline is not None:
        result["baseline"] = stats(samples[baseline])
    return result


def import_profile(python: str, module: str, auth: bool, top: int = 10) -> list[tuple[str, float]]:
    """Where cold import time goes: self time from -X importtime summed per top-level package (s)."""
    out = subprocess.run([python, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True,
                         cwd=ROOT, env=_cold_env(auth), timeout=120)
    by_pkg: dict[str, float] = {}
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line or "cumulative" in line:
            continue
        self_us, _, name = line[len("import time:"):].split("|", 2)
        pkg = name.strip().split(".", 1)[0]
        by_pkg[pkg] = by_pkg.get(pkg, 0.0) + int(self_us) / 1e6
    return sorted(by_pkg.items(), key=lambda kv: -kv[1])[:top]


def client_cpu(python: str, bench_python: str | None) -> dict[str, Any]:
    """CPU per request of the upstream HTTP client alone (bench/client_cpu.py): Skylane's own, httpx
    and a bare asyncio client with the project's interpreter, aiohttp from the bench venv."""
    out: dict[str, Any] = {"versions": {}}
    runs = [(python, "h1,httpx,asyncio")]
    if bench_python and Path(bench_python).exists():
        runs.append((bench_python, "aiohttp"))
    for py, which in runs:
        res = subprocess.run([py, str(BENCH / "client_cpu.py"), which], capture_output=True, text=True, timeout=300)
        if res.returncode != 0:
            out[which] = {"error": (res.stderr.strip().splitlines() or ["failed"])[-1][:200]}
            continue
        data = json.loads(res.stdout.strip().splitlines()[-1])
        out["versions"].update(data.pop("versions", {}))
        out.update(data)
    return out


def _dir_size(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            fp = os.path.join(dirpath, f)
            if not os.path.islink(fp):
                total += os.path.getsize(fp)
    return total


def layer_size(python: str) -> dict[str, Any]:
    """pip install the layer's dependencies and the package into a temp dir (as the layer's
    python/ folder would hold them) and measure the unzipped size."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    with tempfile.TemporaryDirectory(prefix="skylane-layer-") as tmp:
        target = Path(tmp) / "python"
        out = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              "--target", str(target), *deps], capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            return {"error": (out.stderr.strip().splitlines() or ["pip failed"])[-1][:200]}
        shutil.copytree(ROOT / "layers" / "skylane" / "skylane", target / "skylane",
                        ignore=shutil.ignore_patterns("__pycache__"))
        total = _dir_size(target)
        by_top: dict[str, int] = {}
        for entry in target.iterdir():
            name = entry.name.split("-")[0] if entry.name.endswith((".dist-info", ".data")) else entry.name
            size = _dir_size(entry) if entry.is_dir() else entry.stat().st_size
            by_top[name] = by_top.get(name, 0) + size
        in_runtime = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py", "python_dateutil")
        runtime_bytes = sum(v for k, v in by_top.items() if k in in_runtime)
        largest = sorted(by_top.items(), key=lambda kv: -kv[1])[:8]
        return {"total_mb": total / 1e6, "without_runtime_boto3_mb": (total - runtime_bytes) / 1e6,
                "package_kb": _dir_size(target / "skylane") / 1e3,
                "largest": [(k, v / 1e6) for k, v in largest], "deps": deps}


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "translate"
    py = sys.executable
    if what == "translate":
        for proto in ("openai", "anthropic"):
            print(json.dumps(translation_cpu(proto)))
    elif what == "cold":
        for mod in ("functions.completions.app", "functions.models.app"):
            for auth in (True, False):
                print(json.dumps(cold_start(py, mod, auth)))
            print(import_profile(py, mod, True))
    elif what == "layer":
        print(json.dumps(layer_size(py)))
