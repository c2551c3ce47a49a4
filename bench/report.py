"""The benchmark's results as Markdown: headline ratios, one table per case, the issue's targets
with a verdict each, and the Skylane-only measurements (auth + limits, CPU per chunk, cold start,
layer size, memory, profiles)."""

from __future__ import annotations

from typing import Any

from targets import CASE_LABELS, earlier_checks, verdicts
from targets import f as _f
from targets import get as _get
from targets import overhead as _overhead
from targets import rps as _rps
from targets import ttfb_added as _ttfb_added

__all__ = ["earlier_checks", "render", "summary", "verdicts"]

PEERS = ("portkey", "litellm")
ORDER = ("upstream", "skylane", "skylane_prev", "skylane_base", "portkey", "litellm")
PROFILE_LABELS = {"skylane_prev-openai": "Previous stack (asyncio + h11, httpx transport), OpenAI passthrough, "
                                         "non-streaming",
                  "auth": "Auth + limits on, non-streaming (DynamoDB Local; samples of the thread holding the GIL, "
                           "so the DynamoDB worker threads' Python work counts and their waiting does not)"}


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
            sky_r, peer_r, sky_o, peer_o = r["skylane"], r[peer], o["skylane"], o[peer]
            if not sky_r or not peer_r:
                return "–"
            parts = [f"{sky_r / peer_r:.2f}× req/s"]
            if sky_o is not None and peer_o:
                parts.append(f"{sky_o / peer_o:.2f}× overhead")
            return ", ".join(parts)

        lines.append(f"| {label} | " + " | ".join(
            f"+{_f(o[t])} ms" if o[t] is not None else "–" for t in ("skylane", *PEERS)) + " | " + " | ".join(
            _f(r[t], 0) for t in ("skylane", *PEERS)) + f" | {vs('portkey')} | {vs('litellm')} |")
    prev = [(label, _overhead(res, case, "skylane_prev"), _rps(res, case, "skylane_prev"))
            for case, label in CASE_LABELS.items() if _rps(res, case, "skylane_prev")]
    if prev:
        lines += ["", "Comparison — the same Skylane code on the previous stack (uvicorn on asyncio + h11, "
                  "`SKYLANE_HTTP_TRANSPORT=httpx`): " + "; ".join(f"{label}: +{_f(o)} ms, {_f(r, 0)} req/s"
                                                               for label, o, r in prev) + "."]
    return lines


def _sse(res: dict[str, Any]) -> list[str]:
    sw = res.get("sse_writes")
    if not sw:
        return []
    lines = ["## SSE writes: events that arrive together, and events that arrive one by one", "",
             "bench/sse_writes.py. *Burst*: the fake upstream sends each 200-chunk stream in a few writes (a few ms "
             "apart); the client counts the HTTP chunks (chunked encoding; uvicorn frames each ASGI body message as "
             "one chunk, so ≈ the gateway's body writes) and its socket reads. *Paced*: one event per write, 1 ms "
             "apart; each content token's arrival at the client minus the upstream's write of it (CLOCK_MONOTONIC "
             "in both processes).", "",
             "| case | target | upstream writes | HTTP chunks p50 (max) | client reads p50 | paced: delay p50 ms "
             "| p99 ms | max ms | last event p50 ms |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for case, by_target in sw.items():
        for t in ORDER:
            r = by_target.get(t)
            if r is None:
                continue
            if "error" in r:
                lines.append(f"| {CASE_LABELS.get(case, case)} | {t} | {r['error'].replace('|', '/')} | | | | | | |")
                continue
            lines.append(f"| {CASE_LABELS.get(case, case)} | {t} | {_f(r['upstream_writes'], 0)} | "
                         f"{_f(r['chunks_p50'], 0)} ({_f(r['chunks_max'], 0)}) | {_f(r['reads_p50'], 0)} | "
                         f"{_f(r['delay_p50_ms'])} | {_f(r['delay_p99_ms'])} | {_f(r['delay_max_ms'])} | "
                         f"{_f(r['last_delay_p50_ms'])} |")
    return [*lines, "", "The upstream row is the floor: the fake frames one event per chunk, so its chunk count "
            "is the number of events; its reads show how the writes arrive.", ""]


def _quota(res: dict[str, Any]) -> list[str]:
    q = res.get("quota")
    if not q:
        return []
    lines = ["## Skylane at a Lambda-like CPU share", "",
             "Lambda gives 1 vCPU at 1,769 MB: a 256 MB function has ≈ 14.5% of a core. Skylane (a fresh process) "
             "runs in a cgroup with a CPU quota of that share (bench/cpuquota.py); wrk at c=1.", ""]
    if q.get("skip") and not any(c in q for c in CASE_LABELS):
        return [*lines, f"Not measured: {q['skip']}", ""]
    lines += [f"Quota: `{q.get('quota_read_back', q.get('quota'))}` (quota µs, period µs; {q.get('cgroup', '?')}).", "",
              "| case | p50 ms | p99 ms | overhead p50 | unthrottled overhead p50 | req/s | CPU ms/req "
              "| throttled ms |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for case, label in CASE_LABELS.items():
        r = q.get(case)
        if not r:
            continue
        up = _get(res, "matrix", case, "upstream", "c1", "p50_ms")
        lines.append(f"| {label} | {_f(r['p50_ms'])} | {_f(r['p99_ms'])} | "
                     f"{'–' if up is None else '+' + _f(r['p50_ms'] - up)} | +{_f(_overhead(res, case, 'skylane'))} | "
                     f"{_f(r['rps'], 0)} | {_f(r.get('cpu_ms_per_req'), 3)} | {_f(r.get('throttled_ms'), 0)} |")
    if q.get("skip"):
        lines += ["", f"Note: {q['skip']}"]
    return [*lines, ""]


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
        names = {"h1": "Skylane's HTTP/1.1 client (transport/h1.py: what the gateway uses)",
                 "httpx": "httpx AsyncClient (SKYLANE_HTTP_TRANSPORT=httpx)", "aiohttp": "aiohttp ClientSession",
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
        lines += ["## Cold start (fresh interpreter per run, median of the runs after one warm-up run; bytecode "
                  "compiled first, as `make sam-build` ships it)", "",
                  "| module | SKYLANE_AUTH | import s | interpreter + import s | peak RSS MB |",
                  "|---|---|---:|---:|---:|"]
        for c in cold:
            auth = "enabled" if c.get("auth") else "disabled"
            if "error" in c:
                lines.append(f"| {c['module']} | {auth} | {c['error']} | | |")
            else:
                lines.append(f"| {c['module']} | {auth} | {_f(c['import_s'], 3)} | {_f(c['wall_s'], 3)} | "
                             f"{_f(c['maxrss_mb'], 1)} |")
                b = c.get("baseline")
                if b:  # measured interleaved with the row above (median of its runs)
                    commit = str(res.get("cold_baseline_commit") or "")[:7]
                    lines.append(f"| {c['module']} at the issue's baseline {commit} (interleaved, {c.get('runs')} "
                                 f"runs each) | {auth} | {_f(b['import_s'], 3)} | {_f(b['wall_s'], 3)} | "
                                 f"{_f(b['maxrss_mb'], 1)} |")
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


def _targets_table(res: dict[str, Any], level: str) -> list[str]:
    return [f"{level} Targets (issue 18)", "", "| target | measured | verdict |", "|---|---|---|",
            *(f"| {a} | {b.replace('|', '/')} | {c} |" for a, b, c in verdicts(res))]


def _meta_line(res: dict[str, Any]) -> str:
    meta = res.get("meta", {})
    st = res.get("settings", {})
    pk = meta.get("packages", {})
    return (
        f"{meta.get('date', '?')} · {meta.get('cpu', '?')}, {meta.get('cores', '?')} cores · load average at start "
        f"{', '.join(f'{x:.2f}' for x in meta.get('load_avg_at_start', []))} · Python {meta.get('python', '?')} "
        f"(uvicorn {pk.get('uvicorn', '?')}, h11 {pk.get('h11', '?')}, httptools {pk.get('httptools', '?')}, "
        f"uvloop {pk.get('uvloop', '?')}, fastapi {pk.get('fastapi', '?')}, starlette {pk.get('starlette', '?')}, "
        f"httpx {pk.get('httpx', '?')}) · node {meta.get('node', '?')} · {meta.get('wrk', '?')} · "
        f"{_f(st.get('duration_s'), 0)} s per wrk run after a {_f(st.get('warmup_s'), 0)} s warm-up · run took "
        f"{_f(meta.get('elapsed_s', 0) / 60, 1)} min.")


def summary(res: dict[str, Any], level: str = "###") -> str:
    """The headline and the targets, for README.md and docs/performance.md (headings at `level`)."""
    head = _headline(res)
    head[0] = f"{level} Headline"
    return "\n".join([_meta_line(res), "", *head, "", *_targets_table(res, level), ""])


def render(res: dict[str, Any]) -> str:
    lines = [
        "# Skylane benchmark",
        "",
        _meta_line(res),
        "",
        "Reproduce: `make bench` (installs wrk, Portkey and LiteLLM under bench/.peers/ on first use). All "
        "processes share the machine's cores: absolute numbers vary between machines, ratios much less.",
        "",
    ]
    lines += _headline(res)
    lines += ["", *_targets_table(res, "##"), ""]
    lines += ["## Earlier checks (issue 7)", "", "| check | measured | verdict |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in earlier_checks(res)]
    lines.append("")
    lines += _case_tables(res)
    lines += _sse(res)
    lines += _quota(res)
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
