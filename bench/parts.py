"""The Skylane-only parts of `make bench`, run by bench/run.py with its Bench: memory (RSS over
many requests), the Lambda-like CPU share (a cgroup CPU quota), auth + limits against DynamoDB
Local with every DynamoDB call counted and placed against the upstream call."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any

import httpx
from cases import ANTHROPIC_MODEL, CASES, HOST, OPENAI_MODEL, ROOT, RUN_DIR, Endpoint, Target, chat_body
from cpuquota import LAMBDA_256MB_QUOTA_US, PERIOD_US, CpuQuota, QuotaUnavailable
from loadgen import Request, run_load
from procs import wrk

if TYPE_CHECKING:
    from run import Bench

__all__ = ["auth_case", "memory", "place_dynamo_calls", "quota_case"]


def memory(bench: Bench) -> None:
    bench.log("memory: RSS over many requests (fresh Skylane)")
    p = bench.start_skylane("skylane-memory", bench.skylane_env(bench.fake_port))
    port = p.port  # type: ignore[attr-defined]
    try:
        skipped = bench.results["targets"].get("skylane", {}).get("case_skip", {})
        ok = {c.name: c for c in CASES if c.name not in skipped}
        # one request in eight streams (200 chunks each): streams are ~8x slower, this keeps the run ~1 min
        plan = ["openai", "anthropic", "openai", "anthropic", "openai", "anthropic", "openai", "openai_stream",
                "openai", "anthropic", "openai", "anthropic", "openai", "anthropic", "openai", "anthropic_stream"]
        cases = [ok.get(n) or ok["openai"] for n in plan]
        reqs = []
        for c in cases:
            model = OPENAI_MODEL if c.protocol == "openai" else f"anthropic/{ANTHROPIC_MODEL}"
            reqs.append(Request("/v1/chat/completions", json.dumps(chat_body(model, c.stream)).encode()))
        rss = [("started", p.rss_kb())]
        warm = 1000 if bench.memory_requests >= 10000 else 200
        res = asyncio.run(run_load(HOST, port, reqs, concurrency=16, count=warm))
        rss.append((f"after {warm} warm-up", p.rss_kb()))
        done = 0
        errors = sum(n for s, n in res.statuses.items() if s != 200)
        batch = max(1, bench.memory_requests // 4)
        t0 = time.perf_counter()
        while done < bench.memory_requests:
            n = min(batch, bench.memory_requests - done)
            res = asyncio.run(run_load(HOST, port, reqs, concurrency=16, count=n))
            errors += sum(k for s, k in res.statuses.items() if s != 200)
            done += n
            rss.append((f"+{done}", p.rss_kb()))
        mix = {n: sum(1 for c in cases if c.name == n) for n in dict.fromkeys(c.name for c in cases)}
        bench.results["memory"] = {"rss_kb": rss, "requests": done, "errors": errors,
                                  "mix": [f"{n} {k}/{len(cases)}" for n, k in mix.items()],
                                  "seconds": time.perf_counter() - t0}
        base = rss[1][1]
        drift = max(abs(v - base) for _, v in rss[1:]) / base * 100 if base else 0
        bench.results["memory"]["max_drift_pct"] = drift
        bench.log(f"  RSS {rss[1][1] / 1024:.1f} MB → {rss[-1][1] / 1024:.1f} MB ({drift:.1f}% max drift)")
    finally:
        bench.stop(p)


def quota_case(bench: Bench) -> None:
    """Skylane at a 256 MB Lambda function's CPU share (a cgroup CPU quota): overhead at c=1."""
    share = f"{LAMBDA_256MB_QUOTA_US} {PERIOD_US}"
    bench.log(f"Lambda-like CPU share: a cgroup CPU quota of {share} (256 MB of 1,769 MB per vCPU)")
    out: dict[str, Any] = {"quota": share}
    bench.results["quota"] = out
    try:
        quota = CpuQuota.create(f"skylane-bench-{os.getpid()}")
    except QuotaUnavailable as exc:
        out["skip"] = f"the CPU quota cannot be applied on this machine: {exc}"[:400]
        bench.log("  " + out["skip"])
        return
    out["cgroup"] = f"v{quota.version} {quota.path}"
    p = None
    try:
        p = bench.start_skylane("skylane-quota", bench.skylane_env(bench.fake_port))
        for pid in p.group_pids():
            quota.add(pid)
        port = p.port  # type: ignore[attr-defined]
        skipped = bench.results["targets"].get("skylane", {}).get("case_skip", {})
        for case in CASES:
            if case.name in skipped:
                continue
            model = OPENAI_MODEL if case.protocol == "openai" else f"anthropic/{ANTHROPIC_MODEL}"
            ep = Endpoint("/v1/chat/completions", chat_body(model, case.stream))
            body_file = RUN_DIR / f"body-quota-{case.name}.json"
            body_file.write_bytes(ep.body_bytes())
            url = f"http://{HOST}:{port}{ep.path}"
            wrk(url, body_file, ep.headers, 1, bench.warmup)
            throttled0, cpu0 = quota.throttled_ms(), p.cpu_seconds()
            r = wrk(url, body_file, ep.headers, 1, bench.duration)
            r["cpu_ms_per_req"] = (p.cpu_seconds() - cpu0) / r["requests"] * 1000 if r["requests"] else 0
            r["throttled_ms"] = quota.throttled_ms() - throttled0
            out[case.name] = r
            bench.log(f"  {case.name}: c1 p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
                     f"throttled {r['throttled_ms']:.0f} ms")
        out["quota_read_back"] = quota.quota()
    except Exception as exc:
        out["skip"] = f"failed: {type(exc).__name__}: {str(exc)[:300]}"
        bench.log("  " + out["skip"])
    finally:
        bench.stop(p)
        quota.remove()

# ---- Skylane-only parts -------------------------------------------------------------------


def auth_case(bench: Bench) -> None:
    """Auth + limits on, against DynamoDB Local behind the counting proxy."""
    bench.log("auth + limits against DynamoDB Local")
    out: dict[str, Any] = {}
    bench.results["auth"] = out
    sys.path.insert(0, str(ROOT))
    try:
        from skylane.accounts.store import create_tables, dynamodb_client
        from skylane.cli.keys import create_key
        from skylane.core.settings import Settings
        from tests.dynamodb_local import DynamoDBLocal
    except Exception as exc:
        out["skip"] = f"auth/limits or tests/dynamodb_local.py not available yet ({type(exc).__name__}: {exc})"
        bench.log("  skipped: " + out["skip"])
        return
    ddb = None
    fake = sky = None
    try:
        ddb = DynamoDBLocal().start()
        fake, info = bench.start_fake("fake-auth", dynamo_target=f"{HOST}:{ddb.port}")
        env_direct = {**bench.skylane_env(info["port"]), **ddb.env(), "SKYLANE_AUTH": "enabled"}
        settings = Settings.from_env(env_direct)
        client = dynamodb_client(settings)
        create_tables(client, settings)
        key, _ = create_key(client, settings, "bench", rpm=10_000_000, tpm=10**12,
                            credits_micros=10**12)
        env = {**env_direct, "AWS_ENDPOINT_URL_DYNAMODB": f"http://{HOST}:{info['dynamo_port']}"}
        sky = bench.start_skylane("skylane-auth", env)
        port = sky.port  # type: ignore[attr-defined]
        headers = {"authorization": f"Bearer {key}"}
        ep = Endpoint("/v1/chat/completions", chat_body(OPENAI_MODEL, False), headers)
        t = Target("skylane-auth", "Skylane, auth + limits on", port=port, proc=sky)
        problem = bench.validate(t, CASES[0], ep)
        if problem:
            out["skip"] = f"answer check failed: {problem}"
            bench.log("  skipped: " + out["skip"])
            return
        fake_url = f"http://{HOST}:{info['port']}"
        out["dynamodb_local_update_ms"] = {
            "direct": _probe_update_ms(client, settings),
            "via_proxy": _probe_update_ms(dynamodb_client(Settings.from_env(env)), settings),
        }
        # 1. ordering: sequential requests, each DynamoDB call placed before / after the upstream call
        seq = []
        for c in (CASES[0], CASES[1]):
            seq.append(Request(ep.path, json.dumps(chat_body(OPENAI_MODEL, c.stream)).encode(),
                               tuple(headers.items())))
        asyncio.run(run_load(HOST, port, seq, concurrency=1, count=20, pause=0.05))  # warm-up, key cached
        time.sleep(0.5)
        httpx.post(fake_url + "/_reset")
        n_seq = 60 if bench.args.quick else 200
        t_seq = time.perf_counter()
        res = asyncio.run(run_load(HOST, port, seq, concurrency=1, count=n_seq, pause=0.05))
        t_seq = time.perf_counter() - t_seq
        time.sleep(0.5)
        trace = httpx.get(fake_url + "/_trace").json()
        out["ordering"] = place_dynamo_calls(res.spans, trace["upstream"], trace["dynamo"])
        out["ordering"]["errors"] = sum(k for s, k in res.statuses.items() if s != 200)
        out["ordering"]["seconds"] = t_seq
        out["ordering"].update(_span_medians(res.spans))
        out["ordering"]["cache_ttl_s"] = settings.auth_cache_ttl
        # 2. load: wrk at concurrency 1 and 16, DynamoDB calls per gateway request
        body_file = RUN_DIR / "body-skylane-auth.json"
        body_file.write_bytes(ep.body_bytes())
        url = f"http://{HOST}:{port}{ep.path}"
        wrk(url, body_file, headers, 16, bench.warmup)
        for conc in (1, 16):
            httpx.post(fake_url + "/_reset")
            cpu0 = sky.cpu_seconds()
            r: dict[str, Any] = dict(wrk(url, body_file, headers, conc, bench.duration))
            cpu1 = sky.cpu_seconds()
            time.sleep(1.0)  # let settle() finish
            counts = httpx.get(fake_url + "/_stats").json()["counts"]
            r["cpu_ms_per_req"] = (cpu1 - cpu0) / r["requests"] * 1000 if r["requests"] else 0
            r["dynamo_per_request"] = {k.removeprefix("dynamo_"): v / max(1, r["requests"])
                                       for k, v in sorted(counts.items()) if k.startswith("dynamo_")}
            out[f"c{conc}"] = r
            bench.log(f"  c{conc}: p50 {r['p50_ms']:.2f} ms, {r['rps']:.0f} req/s, "
                     f"DynamoDB/request {r['dynamo_per_request']}")
        if "profile" not in bench.skip_parts:
            prof = bench.pyspy(sky.pid, url, body_file, headers, "auth", gil=True)
            if prof:
                bench.results.setdefault("profiles", {})["auth"] = prof
        # 3. as on Lambda: SKYLANE_SETTLE_INLINE (on when AWS_LAMBDA_FUNCTION_NAME is set) settles a
        # non-streaming answer before sending it, since Lambda may freeze the instance right after
        bench.stop(sky)
        sky = bench.start_skylane("skylane-auth-inline", {**env, "SKYLANE_SETTLE_INLINE": "true"})
        port = sky.port  # type: ignore[attr-defined]
        asyncio.run(run_load(HOST, port, seq, concurrency=1, count=20, pause=0.05))
        time.sleep(0.5)
        httpx.post(fake_url + "/_reset")
        res = asyncio.run(run_load(HOST, port, seq, concurrency=1, count=n_seq // 2, pause=0.05))
        time.sleep(0.5)
        trace = httpx.get(fake_url + "/_trace").json()
        inline: dict[str, Any] = {"ordering": place_dynamo_calls(res.spans, trace["upstream"], trace["dynamo"])}
        inline["ordering"].update(_span_medians(res.spans))
        out["inline"] = inline
        a, b = inline["ordering"]["nonstream_p50_ms"], out["ordering"]["nonstream_p50_ms"]
        bench.log(f"  settle inline (as on Lambda): non-streaming p50 {a:.2f} ms vs {b:.2f} ms settled after")
    except Exception as exc:
        out["skip"] = f"failed: {type(exc).__name__}: {str(exc)[:300]}"
        bench.log("  " + out["skip"])
        traceback.print_exc()
    finally:
        bench.stop(sky)
        bench.stop(fake)
        if ddb is not None:
            ddb.stop()


def place_dynamo_calls(spans: list[tuple[float, float]], upstream: list[float],
                        dynamo: list[list[Any]]) -> dict[str, Any]:
    """Put each DynamoDB call in one of: before the upstream call (on the critical path), between
    the upstream call and the end of the response, after the response (off the critical path).
    Clocks: time.monotonic() in both processes (CLOCK_MONOTONIC is system-wide)."""
    ups = sorted(upstream)
    calls = sorted(dynamo)
    buckets: dict[str, dict[str, int]] = {"before_upstream": {}, "during_response": {}, "after_response": {}}
    reads = ("GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems")
    reads_before: list[int] = []
    writes_before: list[int] = []
    unplaced = 0
    j = 0
    for i, (start, end) in enumerate(spans):
        nxt = spans[i + 1][0] if i + 1 < len(spans) else float("inf")
        u = next((x for x in ups if start <= x <= end), None)
        if u is None:
            unplaced += 1
            continue
        r_before = w_before = 0
        while j < len(calls) and calls[j][0] < start:
            j += 1
        k = j
        while k < len(calls) and calls[k][0] < nxt:
            ts, op, conditional = calls[k]
            name = op + (" (conditional)" if conditional else "")
            where = "before_upstream" if ts < u else "during_response" if ts <= end else "after_response"
            buckets[where][name] = buckets[where].get(name, 0) + 1
            if where == "before_upstream":
                if op in reads:
                    r_before += 1
                else:
                    w_before += 1
            k += 1
        j = k
        reads_before.append(r_before)
        writes_before.append(w_before)
    n = len(reads_before)
    return {
        "requests": n,
        "unplaced": unplaced,
        "per_request": {where: {op: v / n for op, v in ops.items()} for where, ops in buckets.items()} if n else {},
        "totals": buckets,
        "max_writes_before_upstream": max(writes_before, default=0),
        "requests_with_read_before_upstream": sum(1 for r in reads_before if r),
    }


def _span_medians(spans: list[tuple[float, float]]) -> dict[str, float]:
    """Median latency (ms, to the last byte) of the non-streaming (even) and streaming (odd) requests
    of a sequential run that alternates the two."""
    ms = [(e - s) * 1000 for s, e in spans]
    return {"nonstream_p50_ms": statistics.median(ms[0::2]) if ms[0::2] else float("nan"),
            "stream_p50_ms": statistics.median(ms[1::2]) if ms[1::2] else float("nan")}


def _probe_update_ms(client: Any, settings: Any, n: int = 40) -> float:
    """p50 latency of a conditional UpdateItem from this process (DynamoDB Local's own speed here)."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.update_item(TableName=settings.limits_table, Key={"pk": {"S": "bench#probe"}, "sk": {"S": "probe"}},
                           UpdateExpression="ADD n :one", ConditionExpression="attribute_not_exists(n) OR n < :max",
                           ExpressionAttributeValues={":one": {"N": "1"}, ":max": {"N": "1000000000"}})
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] * 1000
