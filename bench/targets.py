"""Issue 18's targets, each with the measured figures and a verdict (met / **missed** / n/a / info),
and the earlier checks of issue 7 that are still measured. Reads the results dict of bench/run.py."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["CASE_LABELS", "earlier_checks", "f", "get", "overhead", "rps", "ttfb_added", "verdicts"]

CASE_LABELS = {
    "openai": "OpenAI passthrough, non-streaming",
    "openai_stream": "OpenAI passthrough, streaming 200 chunks",
    "anthropic": "Anthropic translation, non-streaming",
    "anthropic_stream": "Anthropic translation, streaming 200 chunks",
}
OVERHEAD_VS_PORTKEY = 0.5  # Skylane's overhead ≤ this × Portkey's
RPS_VS_PORTKEY = 1.2  # Skylane's throughput ≥ this × Portkey's
STREAM_ADDED_MS = 3.0  # a 200-chunk stream adds at most this at c=1
CHUNK_SLACK = 3  # HTTP chunks the client may get beyond the upstream's writes (head, role, [DONE], …)
EVENT_DELAY_MS = 3.0  # an event leaves at most this long after the upstream wrote it (p50, and the last event)
CPU_MS_PER_REQ = 0.5  # gateway CPU (user + sys) per non-streamed request
COLD_LIMITS = {"functions.completions.app": (0.38, 52.0)}  # import s, peak RSS MB; other apps: info
# the code whose `make bench` run issue 18 quotes ("today's figures": 0.376 s, 52.1 MB on that machine): its
# cold import is measured again in the same run, interleaved, on this machine with this venv
BASELINE_COMMIT = "80eab6b4151412c8ed1c15dcf98e0072c31ac8d5"
# what that run measured for the baseline (bench/results/latest.json at BASELINE_COMMIT), per case: the
# issue's absolute targets (≤ 0.5 ms CPU, ≤ 3 ms for a stream) were set against these on that machine
BASELINE_THEN = {"cpu_ms_per_req": {"openai": 1.938, "anthropic": 2.518},
                 "added_ms": {"openai_stream": 14.728, "anthropic_stream": 14.948}}


def f(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:,.{digits}f}"


def get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def overhead(res: dict[str, Any], case: str, target: str) -> float | None:
    m = res.get("matrix", {}).get(case, {})
    up = get(m, "upstream", "c1", "p50_ms")
    t = get(m, target, "c1", "p50_ms")
    return None if up is None or t is None else t - up


def ttfb_added(res: dict[str, Any], case: str, target: str) -> float | None:
    m = res.get("matrix", {}).get(case, {})
    up = get(m, "upstream", "ttfb", "ttfb_p50_ms")
    t = get(m, target, "ttfb", "ttfb_p50_ms")
    return None if up is None or t is None else t - up


def rps(res: dict[str, Any], case: str, target: str) -> float | None:
    v = get(res.get("matrix", {}).get(case, {}), target, "c16", "rps")
    return float(v) if isinstance(v, int | float) else None


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def _short(case: str) -> str:
    return CASE_LABELS[case].split(",")[0]


def _prev(value: float | None, unit: str, sign: str = "") -> str:
    return f"; previous stack {sign}{f(value, 0 if unit == 'req/s' else 2)} {unit}" if value is not None else ""


def _base_value(res: dict[str, Any], metric: str, case: str) -> float | None:
    if metric == "cpu_ms_per_req":
        v = get(res.get("matrix", {}), case, "skylane_base", "cpu_ms_per_req")
        return float(v) if v is not None else None
    return overhead(res, case, "skylane_base")


def _limit_here(res: dict[str, Any], metric: str, case: str, limit: float) -> tuple[float, str]:
    """An absolute target of the issue on this machine: `limit` scaled by how much slower (or faster)
    the issue's baseline runs here than where the issue was filed, both measured the same way. Without
    the baseline in this run, the limit as stated."""
    then, here = BASELINE_THEN[metric][case], _base_value(res, metric, case)
    if here is None or here <= 0:
        return limit, ""
    k = here / then
    return limit * k, (f"the issue's baseline measures {f(here)} ms here vs {f(then)} ms where it was filed "
                       f"(×{k:.2f}): {f(limit, 1)} ms there is {f(limit * k)} ms here")


def _vs_portkey(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    for case in ("openai", "anthropic"):
        sky, pk = overhead(res, case, "skylane"), overhead(res, case, "portkey")
        ok = None if sky is None or pk is None or pk <= 0 else sky <= OVERHEAD_VS_PORTKEY * pk
        ratio = f" (ratio {f(sky / pk)})" if sky is not None and pk else ""
        rows.append((f"Overhead p50 at c=1 ≤ {OVERHEAD_VS_PORTKEY}× Portkey's — {_short(case)}",
                     f"Skylane +{f(sky)} ms vs Portkey +{f(pk)} ms{ratio}"
                     + _prev(overhead(res, case, "skylane_prev"), "ms", "+"), _verdict(ok)))
    for case in ("openai", "anthropic"):
        sky, pk = rps(res, case, "skylane"), rps(res, case, "portkey")
        ok = None if not sky or not pk else sky >= RPS_VS_PORTKEY * pk
        ratio = f" ({f(sky / pk)}×)" if sky and pk else ""
        rows.append((f"Throughput at c=16 ≥ {RPS_VS_PORTKEY}× Portkey's — {_short(case)}",
                     f"Skylane {f(sky, 0)} req/s vs Portkey {f(pk, 0)} req/s{ratio}"
                     + _prev(rps(res, case, "skylane_prev"), "req/s"), _verdict(ok)))
    return rows


def _streams(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    for case in ("openai_stream", "anthropic_stream"):
        added = overhead(res, case, "skylane")
        limit, scaled = _limit_here(res, "added_ms", case, STREAM_ADDED_MS)
        rows.append((f"A 200-chunk stream adds ≤ {f(STREAM_ADDED_MS, 0)} ms at c=1 — {_short(case)}",
                     (f"+{f(added)} ms (p50 to the last byte, minus the upstream's)" if added is not None
                      else "not measured") + _prev(overhead(res, case, "skylane_prev"), "ms", "+")
                     + (f"; {scaled}" if scaled else ""),
                     _verdict(None if added is None else added <= limit)))
    for case in ("openai_stream", "anthropic_stream"):
        r = get(res, "sse_writes", case, "skylane")
        label = f"SSE events arriving in one read leave in one write — {_short(case)}"
        if not r or "error" in r:
            rows.append((label, (r or {}).get("error", "not measured"), "n/a"))
            continue
        ups = r.get("upstream_writes")
        ok = None if ups is None else r["chunks_p50"] <= ups + CHUNK_SLACK
        rows.append((label, f"upstream {f(ups, 0)} writes ({r['burst_gap_ms']:g} ms apart) → {f(r['chunks_p50'], 0)} "
                     f"HTTP chunks p50 (max {f(r['chunks_max'], 0)}, {f(r['reads_p50'], 0)} client reads) of "
                     f"{r['streams']} streams; allowed ≤ writes + {CHUNK_SLACK}", _verdict(ok)))
    for case in ("openai_stream", "anthropic_stream"):
        r = get(res, "sse_writes", case, "skylane")
        label = f"…without delaying any event (one event per write, {EVENT_DELAY_MS:g} ms) — {_short(case)}"
        if not r or "error" in r:
            rows.append((label, (r or {}).get("error", "not measured"), "n/a"))
            continue
        up = get(res, "sse_writes", case, "upstream") or {}
        d50, last = r.get("delay_p50_ms"), r.get("last_delay_p50_ms")
        ok = None if d50 is None or last is None or math.isnan(d50) or math.isnan(last) \
            else d50 <= EVENT_DELAY_MS and last <= EVENT_DELAY_MS
        base = f" (upstream directly: {f(up.get('delay_p50_ms'))} / {f(up.get('last_delay_p50_ms'))} ms)" if up else ""
        rows.append((label, f"arrival − upstream write: p50 {f(d50)} ms, p99 {f(r.get('delay_p99_ms'))} ms, last "
                     f"event {f(last)} ms (p50 of {r['paced_streams']} streams, {r['pace_ms']:g} ms between "
                     f"events){base}", _verdict(ok)))
    return rows


def _cpu(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    names = {"skylane": "Skylane", "skylane_prev": "Skylane, previous stack",
             "skylane_base": "Skylane at the issue's baseline", "portkey": "Portkey", "litellm": "LiteLLM"}
    for t, name in names.items():
        vals = {c: get(res.get("matrix", {}), c, t, "cpu_ms_per_req") for c in ("openai", "anthropic")}
        if t != "skylane" and all(v is None for v in vals.values()):
            continue
        text = ", ".join(f"{_short(c)} {f(v, 3)} ms" for c, v in vals.items())
        if t == "skylane":
            limits = {c: _limit_here(res, "cpu_ms_per_req", c, CPU_MS_PER_REQ) for c in vals}
            known = [(v, limits[c][0]) for c, v in vals.items() if v is not None]
            ok = None if not known else all(v <= lim for v, lim in known)
            scaled = "; ".join(f"{_short(c)}: {why}" for c, (_, why) in limits.items() if why)
            rows.append((f"Gateway CPU per non-streamed request ≤ {CPU_MS_PER_REQ} ms — {name}",
                         text + " (user + sys from /proc over the c=16 run)" + (f"; {scaled}" if scaled else ""),
                         _verdict(ok)))
        else:
            rows.append((f"Gateway CPU per non-streamed request — {name}", text, "info"))
    q = res.get("quota")
    label = "Overhead p50 at c=1 at a 256 MB Lambda function's CPU share (cgroup quota 14.5% of a core)"
    if not q:
        rows.append((label, "not run", "n/a"))
    elif q.get("skip") and not any(c in q for c in CASE_LABELS):
        rows.append((label, q["skip"], "n/a"))
    else:
        parts = []
        for case in CASE_LABELS:
            r = q.get(case)
            up = get(res, "matrix", case, "upstream", "c1", "p50_ms")
            if not r or up is None:
                continue
            free = overhead(res, case, "skylane")
            parts.append(f"{CASE_LABELS[case]}: +{f(r['p50_ms'] - up)} ms (p99 {f(r['p99_ms'])} ms; unthrottled "
                         f"+{f(free)} ms)")
        rows.append((label, "; ".join(parts) + f" — cpu quota {q.get('quota_read_back', q.get('quota'))} "
                     f"({q.get('cgroup', '?')})", "info"))
    return rows


def _auth(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    auth = res.get("auth") or {}
    order = auth.get("ordering")
    if not order:
        return [("Auth on (DynamoDB Local)", auth.get("skip", "not run"), "n/a")]
    reads = order.get("requests_with_read_before_upstream", 0)
    ttl = order.get("cache_ttl_s") or 0
    # the cached record expires every `ttl` seconds: one refresh read per expiry is expected
    allowed = math.ceil(order.get("seconds", 0) / ttl) + 1 if ttl else 1
    writes = order.get("max_writes_before_upstream", 0)
    rows = [("Auth on: no DynamoDB read on the hot path while the key is cached",
             f"{reads} of {order['requests']} requests read the key before the upstream call "
             f"(run {f(order.get('seconds'), 1)} s, key cache TTL {f(ttl, 0)} s)", _verdict(reads <= allowed)),
            ("Auth on: ≤ 1 conditional write before the upstream call",
             f"at most {writes} write(s) before the upstream call in any request", _verdict(writes <= 1))]
    up = get(res, "matrix", "openai", "upstream", "c1", "p50_ms")
    on = get(auth, "c1", "p50_ms")
    off = overhead(res, "openai", "skylane")
    if up is not None and on is not None:
        rows.append(("Auth on: overhead p50 at c=1 (OpenAI passthrough, DynamoDB Local on the same cores)",
                     f"+{f(on - up)} ms with auth on vs +{f(off)} ms with auth off", "info"))
    return rows


def _cold(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The issue asks that cold import and RSS stay within the figures of the code it was filed on
    (0.38 s / 52 MB on that machine). Absolute seconds differ between machines several-fold, so the
    verdict compares with that code measured again here, in the same run; without it (a clone lacking
    the commit) with the issue's absolute figures."""
    rows = []
    for c in res.get("cold", []):
        if not c.get("auth"):
            continue
        mod = c["module"]
        if "error" in c:
            rows.append((f"Cold import of {mod}", c["error"], "n/a"))
            continue
        text = (f"{f(c['import_s'], 3)} s import ({f(c['wall_s'], 3)} s with interpreter start), "
                f"{f(c['maxrss_mb'], 1)} MB peak RSS")
        if mod not in COLD_LIMITS:
            rows.append((f"Cold import of {mod}", text, "info"))
            continue
        s, mb = COLD_LIMITS[mod]
        base = c.get("baseline")
        if base:
            text += (f"; the issue's baseline ({str(res.get('cold_baseline_commit'))[:7]}, {s} s / {f(mb, 0)} MB "
                     f"where it was filed) measured here interleaved: {f(base['import_s'], 3)} s, "
                     f"{f(base['maxrss_mb'], 1)} MB (import {c['import_s'] / base['import_s']:.2f}× the baseline's)")
            rows.append((f"Cold import of {mod} and its peak RSS within the issue's baseline (same run)", text,
                         _verdict(c["import_s"] <= base["import_s"] and c["maxrss_mb"] <= base["maxrss_mb"])))
        else:
            # "within today's figures" as the issue states them: compared at that precision (0.376 s, 52.1 MB pass)
            rows.append((f"Cold import of {mod} ≤ {s} s, peak RSS ≤ {f(mb, 0)} MB", text,
                         _verdict(round(c["import_s"], 2) <= s and round(c["maxrss_mb"]) <= mb)))
    return rows


def verdicts(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) rows for issue 18's targets."""
    return [*_vs_portkey(res), *_streams(res), *_cpu(res), *_auth(res), *_cold(res)]


def earlier_checks(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Issue 7's targets that are still measured (no longer the headline)."""
    rows: list[tuple[str, str, str]] = []
    tr = next((t for t in res.get("translation", []) if t.get("protocol") == "anthropic"), None)
    us = tr.get("full_us_per_chunk") if tr else None
    alone = tr.get("translate_us_per_chunk") if tr else None
    rows.append(("Anthropic → OpenAI streaming ≤ 25 µs CPU per chunk",
                 f"{f(us, 1)} µs (decode + translate + encode; translator alone {f(alone, 1)} µs)"
                 if us is not None else (tr or {}).get("error", "not measured"),
                 _verdict(None if us is None else us <= 25)))
    for case in ("openai_stream", "anthropic_stream"):
        added = ttfb_added(res, case, "skylane")
        rows.append((f"Time to first byte added ≤ 1 ms ({_short(case)})",
                     f"+{f(added)} ms (p50, c=1)" if added is not None else "not measured",
                     _verdict(None if added is None else added <= 1.0)))
    mem = res.get("memory")
    if mem:
        rows.append(("RSS flat (±5%) over 20,000 requests, streaming included",
                     f"{f(mem['rss_kb'][1][1] / 1024, 1)} → {f(mem['rss_kb'][-1][1] / 1024, 1)} MB over "
                     f"{mem['requests']:,} requests (max drift {f(mem['max_drift_pct'], 1)}%)",
                     _verdict(mem["max_drift_pct"] <= 5)))
    return rows
