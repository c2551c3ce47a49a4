"""The benchmark's results as Markdown: headline ratios, one table per case, the issue's targets
with a verdict each, and the Skylane-only measurements (auth + limits, CPU per chunk, cold start,
layer size, memory, profiles)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["render", "verdicts"]

PEERS = ("portkey", "litellm")
ORDER = ("upstream", "skylane", "skylane_fast", "portkey", "litellm")
PROFILE_LABELS = {"skylane_fast-openai": "Experiment: httptools + uvloop, OpenAI passthrough, non-streaming",
                  "auth": "Auth + limits on, non-streaming (DynamoDB Local; samples of the thread holding the GIL, "
                           "so the DynamoDB worker threads' Python work counts and their waiting does not)"}
CASE_LABELS = {
    "openai": "OpenAI passthrough, non-streaming",
    "openai_stream": "OpenAI passthrough, streaming 200 chunks",
    "anthropic": "Anthropic translation, non-streaming",
    "anthropic_stream": "Anthropic translation, streaming 200 chunks",
}


def _f(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:,.{digits}f}"


def _get(d: dict[str, Any], *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def _overhead(res: dict[str, Any], case: str, target: str) -> float | None:
    m = res.get("matrix", {}).get(case, {})
    up = _get(m, "upstream", "c1", "p50_ms")
    t = _get(m, target, "c1", "p50_ms")
    return None if up is None or t is None else t - up


def _ttfb_added(res: dict[str, Any], case: str, target: str) -> float | None:
    m = res.get("matrix", {}).get(case, {})
    up = _get(m, "upstream", "ttfb", "ttfb_p50_ms")
    t = _get(m, target, "ttfb", "ttfb_p50_ms")
    return None if up is None or t is None else t - up


def _rps(res: dict[str, Any], case: str, target: str) -> float | None:
    return _get(res.get("matrix", {}).get(case, {}), target, "c16", "rps")


def verdicts(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) rows for the issue's targets."""
    rows: list[tuple[str, str, str]] = []

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "**missed**")

    sky_o = _overhead(res, "openai", "skylane")
    pk_o = _overhead(res, "openai", "portkey")
    ok = None if sky_o is None or pk_o is None else sky_o <= 0.5 * pk_o
    rows.append(("Overhead p50 at c=1 (auth off) ≤ ½ Portkey's",
                 f"Skylane +{_f(sky_o)} ms vs Portkey +{_f(pk_o)} ms"
                 + (f" (ratio {_f(sky_o / pk_o)})" if sky_o is not None and pk_o else ""), verdict(ok)))
    sky_r = _rps(res, "openai", "skylane")
    pk_r = _rps(res, "openai", "portkey")
    ok = None if not sky_r or not pk_r else sky_r >= 1.2 * pk_r
    rows.append(("Throughput at c=16 ≥ 1.2× Portkey's",
                 f"Skylane {_f(sky_r, 0)} req/s vs Portkey {_f(pk_r, 0)} req/s"
                 + (f" ({_f(sky_r / pk_r)}×)" if sky_r and pk_r else ""), verdict(ok)))
    tr = next((t for t in res.get("translation", []) if t.get("protocol") == "anthropic"), None)
    us = tr.get("full_us_per_chunk") if tr else None
    alone = tr.get("translate_us_per_chunk") if tr else None
    rows.append(("Anthropic → OpenAI streaming ≤ 25 µs CPU per chunk",
                 f"{_f(us, 1)} µs (decode + translate + encode; translator alone {_f(alone, 1)} µs)"
                 if us is not None else (tr or {}).get("error", "not measured"),
                 verdict(None if us is None else us <= 25)))
    cpu = _get(res.get("matrix", {}), "anthropic_stream", "skylane", "cpu_ms_per_req")
    if cpu is not None:
        rows.append(("(context) whole-process CPU per streamed chunk, Anthropic stream under load",
                     f"{_f(cpu / 202 * 1000, 1)} µs per chunk ({_f(cpu, 2)} ms per 200-chunk request: "
                     "HTTP in and out, ASGI, event loop included)", "info"))
    for case in ("openai_stream", "anthropic_stream"):
        added = _ttfb_added(res, case, "skylane")
        rows.append((f"Time to first byte added ≤ 1 ms ({CASE_LABELS[case].split(',')[0]})",
                     f"+{_f(added)} ms (p50, c=1)" if added is not None else "not measured",
                     verdict(None if added is None else added <= 1.0)))
    auth = res.get("auth") or {}
    order = auth.get("ordering")
    if order:
        reads = order.get("requests_with_read_before_upstream", 0)
        ttl = order.get("cache_ttl_s") or 0
        # the cached record expires every `ttl` seconds: one refresh read per expiry is expected
        allowed = math.ceil(order.get("seconds", 0) / ttl) + 1 if ttl else 1
        writes = order.get("max_writes_before_upstream", 0)
        rows.append(("Auth on: no DynamoDB read on the hot path while the key is cached",
                     f"{reads} of {order['requests']} requests read the key before the upstream call "
                     f"(run {_f(order.get('seconds'), 1)} s, key cache TTL {_f(ttl, 0)} s)",
                     verdict(reads <= allowed)))
        rows.append(("Auth on: ≤ 1 conditional write before the upstream call",
                     f"at most {writes} write(s) before the upstream call in any request", verdict(writes <= 1)))

        def tail(o: dict[str, Any]) -> float:
            return sum((o.get("per_request", {}).get("during_response") or {}).values())

        io = (auth.get("inline") or {}).get("ordering")
        text = (f"settled after the response (local default): {tail(order):.1f} writes per request (non-streaming "
                "and streaming alternating) before the response ended — the streams': they settle before their "
                "last bytes")
        ok = tail(order) == 0
        if io:
            text += (f"; settled inline (`SKYLANE_SETTLE_INLINE`, the Lambda default): {tail(io):.1f} — every "
                     "non-streaming answer waits for its 3 writes")
            ok = ok and tail(io) == 0
        rows.append(("Auth on: usage, credits, TPM reconcile after the response or off the critical path",
                     text, verdict(ok)))
    else:
        rows.append(("Auth + limits (DynamoDB Local)", auth.get("skip", "not run"), "n/a"))
    limits = {"functions.completions.app": 1.0, "functions.models.app": 0.6}
    for c in res.get("cold", []):
        if not c.get("auth"):
            continue
        mod = c["module"]
        if "error" in c:
            rows.append((f"Cold import {mod}", c["error"], "n/a"))
            continue
        rows.append((f"Cold import of {mod} ≤ {limits[mod]} s, peak RSS ≤ 100 MB",
                     f"{_f(c['import_s'], 3)} s import ({_f(c['wall_s'], 3)} s with interpreter start), "
                     f"{_f(c['maxrss_mb'], 1)} MB",
                     verdict(c["import_s"] <= limits[mod] and c["maxrss_mb"] <= 100)))
    mem = res.get("memory")
    if mem:
        rows.append(("RSS flat (±5%) over 20,000 requests, streaming included",
                     f"{_f(mem['rss_kb'][1][1] / 1024, 1)} → {_f(mem['rss_kb'][-1][1] / 1024, 1)} MB over "
                     f"{mem['requests']:,} requests (max drift {_f(mem['max_drift_pct'], 1)}%)",
                     verdict(mem["max_drift_pct"] <= 5)))
    return rows


def _headline(res: dict[str, Any]) -> list[str]:
    lines = ["## Headline", "",
             "Overhead = p50 latency at concurrency 1 minus the upstream's own p50 for the same case; "
             "throughput = requests/s at concurrency 16.", "",
             "| case | Skylane overhead | Portkey overhead | LiteLLM overhead | Skylane req/s | Portkey req/s "
             "| LiteLLM req/s | Skylane vs Portkey | Skylane vs LiteLLM |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for case, label in CASE_LABELS.items():
        if case not in res.get("matrix", {}):
            continue
        o = {t: _overhead(res, case, t) for t in ("skylane", *PEERS)}
        r = {t: _rps(res, case, t) for t in ("skylane", *PEERS)}

        def vs(peer: str) -> str:
            if not r["skylane"] or not r[peer]:
                return "–"
            parts = [f"{r['skylane'] / r[peer]:.2f}× req/s"]
            if o["skylane"] is not None and o[peer]:
                parts.append(f"{o['skylane'] / o[peer]:.2f}× overhead")
            return ", ".join(parts)

        lines.append(f"| {label} | " + " | ".join(
            f"+{_f(o[t])} ms" if o[t] is not None else "–" for t in ("skylane", *PEERS)) + " | " + " | ".join(
            _f(r[t], 0) for t in ("skylane", *PEERS)) + f" | {vs('portkey')} | {vs('litellm')} |")
    fast = [(label, _overhead(res, case, "skylane_fast"), _rps(res, case, "skylane_fast"))
            for case, label in CASE_LABELS.items() if _rps(res, case, "skylane_fast")]
    if fast:
        lines += ["", "Experiment — the same Skylane code on uvicorn with httptools + uvloop (`uvicorn[standard]`, not "
                  "in the layer today): " + "; ".join(f"{label}: +{_f(o)} ms, {_f(r, 0)} req/s" for label, o, r in fast)
                  + "."]
    return lines


def _case_tables(res: dict[str, Any]) -> list[str]:
    lines = ["## Latency and throughput", "",
             "wrk, one connection (c=1) and 16 connections (c=16); latencies in ms (to the last byte); "
             "CPU = the target process's CPU time per request during the c=16 run; TTFB = time to the first "
             "body byte at c=1 (bench/loadgen.py).", ""]
    targets = res.get("targets", {})
    for case, label in CASE_LABELS.items():
        m = res.get("matrix", {}).get(case, {})
        stream = case.endswith("_stream")
        lines += [f"### {label}", ""]
        head = ("| target | p50 c=1 | p90 c=1 | p99 c=1 | added p50 | req/s c=1 | p50 c=16 | p99 c=16 | req/s c=16 "
                "| CPU ms/req")
        sep = "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:"
        if stream:
            head += " | TTFB p50 | TTFB p99 | TTFB added"
            sep += "|---:|---:|---:"
        lines += [head + " |", sep + "|"]
        for t in ORDER:
            info = targets.get(t)
            if info is None:
                continue
            name = f"{t} {info.get('version') or ''}".strip()
            if t in m:
                r = m[t]
                added = _overhead(res, case, t)
                row = (f"| {name} | {_f(r['c1']['p50_ms'])} | {_f(r['c1']['p90_ms'])} | {_f(r['c1']['p99_ms'])} | "
                       f"{'–' if t == 'upstream' or added is None else '+' + _f(added)} | {_f(r['c1']['rps'], 0)} | "
                       f"{_f(r['c16']['p50_ms'])} | {_f(r['c16']['p99_ms'])} | {_f(r['c16']['rps'], 0)} | "
                       f"{_f(r.get('cpu_ms_per_req'), 3)}")
                errs = r["c1"]["errors"] + r["c16"]["errors"]
                if stream:
                    tt = r.get("ttfb", {})
                    ta = _ttfb_added(res, case, t)
                    row += (f" | {_f(tt.get('ttfb_p50_ms'))} | {_f(tt.get('ttfb_p99_ms'))} | "
                            f"{'–' if t == 'upstream' or ta is None else '+' + _f(ta)}")
                row += " |"
                if errs:
                    row += f" ({errs} errors)"
                lines.append(row)
            else:
                why = info.get("skip") or info.get("case_skip", {}).get(case) or "not run"
                cols = 12 if stream else 9
                lines.append(f"| {name} | {why.replace('|', '/')[:160]} |" + " |" * (cols - 1))
        lines.append("")
    return lines


def _inside(res: dict[str, Any]) -> list[str]:
    rows = []
    for case, label in CASE_LABELS.items():
        r = _get(res.get("matrix", {}), case, "skylane")
        if not r or "server_c1" not in r:
            continue
        sc = r["server_c1"]
        client = r["c1"]["p50_ms"]
        logged = sc.get("latency_ms_p50")
        row = f"| {label} | {_f(client)} | {_f(logged)} | {_f(None if logged is None else client - logged)} |"
        st = r.get("server_ttfb") or {}
        tt = _get(r, "ttfb", "ttfb_p50_ms")
        ttft = st.get("ttft_ms_p50")
        row += f" {_f(tt)} | {_f(ttft)} | {_f(None if tt is None or ttft is None else tt - ttft)} |"
        rows.append(row)
    if not rows:
        return []
    return ["## Inside Skylane's handler vs what the client saw (c=1, medians)", "",
            "`latency_ms` / `ttft_ms` are what Skylane logs for each request (from the start of its handler); the "
            "rest is uvicorn, the ASGI stack before the handler, and the sockets.", "",
            "| case | client p50 ms | logged latency_ms | outside the handler | client TTFB ms | logged ttft_ms "
            "| outside the handler |", "|---|---:|---:|---:|---:|---:|---:|", *rows, ""]


def _auth(res: dict[str, Any]) -> list[str]:
    auth = res.get("auth")
    lines = ["## Auth + limits on (DynamoDB Local)", ""]
    if not auth:
        return [*lines, "Not run.", ""]
    if auth.get("skip") and not auth.get("ordering"):
        return [*lines, f"Skipped: {auth['skip']}", ""]
    order = auth.get("ordering", {})
    lines += ["Every DynamoDB call goes through a counting proxy; in a sequential run "
              f"({order.get('requests')} requests, non-streaming and streaming alternating, 50 ms apart, after a "
              "warm-up that cached the key) each "
              "call is placed against the upstream call of its request:", "",
              "| when | calls per gateway request |", "|---|---|"]
    for where, label in (("before_upstream", "before the upstream call (critical path)"),
                         ("during_response", "after the upstream call, before the response ended"),
                         ("after_response", "after the response (off the critical path)")):
        ops = order.get("per_request", {}).get(where, {})
        text = ", ".join(f"{op} {v:.2f}" for op, v in sorted(ops.items())) or "none"
        lines.append(f"| {label} | {text} |")
    probe = auth.get("dynamodb_local_update_ms")
    if probe:
        lines += ["", f"DynamoDB Local's own speed here: a conditional UpdateItem takes {_f(probe['direct'])} ms p50 "
                  f"from boto3 ({_f(probe['via_proxy'])} ms through the counting proxy)."]
    inline = auth.get("inline")
    if inline:
        io = inline.get("ordering", {})
        lines += ["", "With `SKYLANE_SETTLE_INLINE=true` (the default on Lambda, where the instance may be frozen "
                  "as soon as a response is complete, so a non-streaming answer is settled before it is sent): "
                  f"{io.get('requests')} requests, same sequence:", "",
                  "| when | calls per gateway request |", "|---|---|"]
        for where, label in (("before_upstream", "before the upstream call (critical path)"),
                             ("during_response", "after the upstream call, before the response ended"),
                             ("after_response", "after the response (off the critical path)")):
            ops = io.get("per_request", {}).get(where, {})
            text = ", ".join(f"{op} {v:.2f}" for op, v in sorted(ops.items())) or "none"
            lines.append(f"| {label} | {text} |")
        if "nonstream_p50_ms" in io and "nonstream_p50_ms" in order:
            lines += ["", f"Sequential requests 50 ms apart, p50 to the last byte: non-streaming "
                      f"{_f(io['nonstream_p50_ms'])} ms settled inline vs {_f(order['nonstream_p50_ms'])} ms settled "
                      f"after the response; 200-chunk streams {_f(io['stream_p50_ms'])} ms vs "
                      f"{_f(order['stream_p50_ms'])} ms (streams settle before their end either way)."]
    lines += ["", "| load | p50 ms | p99 ms | req/s | CPU ms/req | DynamoDB calls per request |",
              "|---|---:|---:|---:|---:|---|"]
    for conc in ("c1", "c16"):
        r = auth.get(conc)
        if not r:
            continue
        dyn = ", ".join(f"{k} {v:.2f}" for k, v in r.get("dynamo_per_request", {}).items())
        lines.append(f"| {conc.replace('c', 'c=')} | {_f(r['p50_ms'])} | {_f(r['p99_ms'])} | {_f(r['rps'], 0)} | "
                     f"{_f(r.get('cpu_ms_per_req'), 3)} | {dyn} |")
    plain = _get(res, "matrix", "openai", "skylane", "c1", "p50_ms")
    if plain is not None and auth.get("c1"):
        lines += ["", f"Auth + limits add {_f(auth['c1']['p50_ms'] - plain)} ms p50 at c=1 over Skylane with auth "
                  "off; DynamoDB Local runs on the same 2 cores (a real table answers a conditional write in a "
                  "few ms from inside the region)."]
    if auth.get("skip"):
        lines += ["", f"Note: {auth['skip']}"]
    return [*lines, ""]


def _micro(res: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    tr = res.get("translation")
    if tr:
        lines += ["## CPU per streamed chunk (in-process, time.process_time)", "",
                  "| upstream format | chunks/stream | translator only µs/chunk "
                  "| decode + translate + encode µs/chunk |",
                  "|---|---:|---:|---:|"]
        for t in tr:
            if "error" in t:
                lines.append(f"| {t['protocol']} | {t['error']} | | |")
            else:
                lines.append(f"| {t['protocol']} | {t['chunks_per_stream']} | {_f(t['translate_us_per_chunk'], 1)} | "
                             f"{_f(t['full_us_per_chunk'], 1)} |")
        lines.append("")
    cc = res.get("client_cpu")
    if cc:
        lines += ["## The upstream HTTP client alone (CPU per request, posting to the fake upstream)", "",
                  "| client | c=1 µs | c=16 µs |", "|---|---:|---:|"]
        names = {"httpx": "httpx AsyncClient (what upstream.py uses)", "aiohttp": "aiohttp ClientSession",
                 "asyncio": "bare asyncio streams (bench/loadgen.py: the floor)"}
        for key, label in names.items():
            v = cc.get(key)
            if isinstance(v, dict) and "c1" in v:
                lines.append(f"| {label} | {_f(v['c1'], 0)} | {_f(v['c16'], 0)} |")
        errs = [f"{k}: {v['error']}" for k, v in cc.items() if isinstance(v, dict) and "error" in v]
        vers = ", ".join(f"{k} {v}" for k, v in cc.get("versions", {}).items())
        lines += ["", f"Versions: {vers}." + (" Not measured: " + "; ".join(errs) if errs else ""), ""]
    cold = res.get("cold")
    if cold:
        lines += ["## Cold start (fresh interpreter per run, median of 5 after one warm-up run)", "",
                  "| module | SKYLANE_AUTH | import s | interpreter + import s | peak RSS MB |",
                  "|---|---|---:|---:|---:|"]
        for c in cold:
            auth = "enabled" if c.get("auth") else "disabled"
            if "error" in c:
                lines.append(f"| {c['module']} | {auth} | {c['error']} | | |")
            else:
                lines.append(f"| {c['module']} | {auth} | {_f(c['import_s'], 3)} | {_f(c['wall_s'], 3)} | "
                             f"{_f(c['maxrss_mb'], 1)} |")
        prof = res.get("cold_profile") or {}
        for mod, rows in prof.items():
            if rows:
                lines += ["", f"Import self-time by package for {mod} (-X importtime): "
                          + ", ".join(f"{name} {s * 1000:.0f} ms" for name, s in rows)]
        lines.append("")
    layer = res.get("layer")
    if layer:
        lines += ["## Layer size", ""]
        if "error" in layer:
            lines += [f"Not measured: {layer['error']}", ""]
        else:
            lines += [f"Unzipped: **{_f(layer['total_mb'], 1)} MB** (dependencies {', '.join(layer['deps'])} + the "
                      f"skylane package, {_f(layer['package_kb'], 0)} kB); "
                      f"{_f(layer['without_runtime_boto3_mb'], 1)} MB "
                      "without boto3/botocore and their dependencies, which the Lambda Python runtime already has. "
                      "Largest: " + ", ".join(f"{n} {s:.1f} MB" for n, s in layer["largest"]) + ".", ""]
    mem = res.get("memory")
    if mem:
        lines += ["## Memory (Skylane RSS, one fresh process)", "",
                  f"{mem['requests']:,} requests at c=16 cycling through {', '.join(mem['mix'])} "
                  f"({mem['errors']} errors, {_f(mem['seconds'], 1)} s):", "",
                  "| point | RSS MB |", "|---|---:|"]
        for label, kb in mem["rss_kb"]:
            lines.append(f"| {label} | {_f(kb / 1024, 1)} |")
        lines += ["", f"Largest drift from the post-warm-up value: {_f(mem['max_drift_pct'], 1)}%.", ""]
    return lines


def _profiles(res: dict[str, Any]) -> list[str]:
    prof = res.get("profiles")
    if not prof:
        return []
    lines = ["## Where Skylane spends its CPU (py-spy, c=16 under wrk)", ""]
    for case, p in prof.items():
        label = CASE_LABELS.get(case) or PROFILE_LABELS.get(case, case)
        lines += [f"### {label} — {p['samples']} samples", "",
                  "By component (self time): " + ", ".join(f"{n} {v:.0f}%" for n, v in p["components"] if v >= 0.5),
                  "", "| top functions, self time | % |", "|---|---:|"]
        lines += [f"| `{n}` | {v:.1f} |" for n, v in p["self"]]
        lines += ["", "| top functions, inclusive (framework and gateway code) | % |", "|---|---:|"]
        lines += [f"| `{n}` | {v:.1f} |" for n, v in p["inclusive"]]
        lines.append("")
    return lines


def render(res: dict[str, Any]) -> str:
    meta = res.get("meta", {})
    st = res.get("settings", {})
    pk = meta.get("packages", {})
    lines = [
        "# Skylane benchmark",
        "",
        f"{meta.get('date', '?')} · {meta.get('cpu', '?')}, {meta.get('cores', '?')} cores · load average at start "
        f"{', '.join(f'{x:.2f}' for x in meta.get('load_avg_at_start', []))} · Python {meta.get('python', '?')} "
        f"(uvicorn {pk.get('uvicorn', '?')}, h11 {pk.get('h11', '?')}, httptools {pk.get('httptools', '?')}, "
        f"uvloop {pk.get('uvloop', '?')}, fastapi {pk.get('fastapi', '?')}, starlette {pk.get('starlette', '?')}, "
        f"httpx {pk.get('httpx', '?')}) · node {meta.get('node', '?')} · {meta.get('wrk', '?')} · "
        f"{_f(st.get('duration_s'), 0)} s per wrk run after a {_f(st.get('warmup_s'), 0)} s warm-up · run took "
        f"{_f(meta.get('elapsed_s', 0) / 60, 1)} min.",
        "",
        "Reproduce: `make bench` (installs wrk, Portkey and LiteLLM under bench/.peers/ on first use). All "
        "processes share the machine's cores: absolute numbers vary between machines, ratios much less.",
        "",
    ]
    lines += _headline(res)
    lines += ["", "## Targets (issue 7)", "", "| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in verdicts(res)]
    lines.append("")
    lines += _case_tables(res)
    lines += _inside(res)
    lines += _auth(res)
    lines += _micro(res)
    lines += _profiles(res)
    notes = res.get("notes") or []
    skipped = [(t, info.get("skip")) for t, info in res.get("targets", {}).items() if info.get("skip")]
    if notes or skipped:
        lines += ["## Notes", ""]
        lines += [f"- {t}: {why}" for t, why in skipped]
        lines += [f"- {n}" for n in notes]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # re-render a saved run: python bench/report.py bench/results/latest.json
    import json
    import sys

    with open(sys.argv[1] if len(sys.argv) > 1 else "bench/results/latest.json") as f:
        print(render(json.load(f)))
