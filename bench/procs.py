"""Processes the benchmark starts (each in its own process group, stopped by its own id), free
ports, readiness waits, /proc readings (CPU time, RSS) and the wrk runner."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

__all__ = ["Proc", "free_port", "proc_cpu_seconds", "proc_rss_kb", "wait_http", "wrk", "wrk_version"]

BENCH = Path(__file__).resolve().parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child process in its own session; its output goes to a log file."""

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None, stdout_pipe: bool = False) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env) if env is not None else None,
            stdout=subprocess.PIPE if stdout_pipe else self._log, stderr=self._log,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def group_pids(self) -> list[int]:
        """Every live process in this child's process group (the child and whatever it forked)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.getpgid(int(entry)) == self.pid:
                    pids.append(int(entry))
            except (ProcessLookupError, PermissionError):
                continue
        return pids or [self.pid]

    def cpu_seconds(self) -> float:
        return sum(proc_cpu_seconds(p) for p in self.group_pids())

    def rss_kb(self) -> int:
        return sum(proc_rss_kb(p) for p in self.group_pids())

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(5)
        else:
            # the leader is gone; children it left in its group still go
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._log.close()


def proc_cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def proc_rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def wait_http(url: str, proc: Proc | None = None, timeout: float = 60.0, method: str = "GET") -> bool:
    """Poll until the URL answers (any status below 500) or the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            return False
        try:
            r = httpx.request(method, url, timeout=2.0)
            if r.status_code < 500:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def wrk_version() -> str:
    try:
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0].split(" Copyright", 1)[0].strip() if text else "unknown"


def wrk(url: str, body_file: Path, headers: Mapping[str, str], concurrency: int, duration: float,
        threads: int = 1) -> dict[str, float]:
    """One wrk run; latencies in milliseconds, `rps` over the run, `errors` = non-2xx + socket errors."""
    env = dict(os.environ)
    env["BENCH_BODY_FILE"] = str(body_file)
    env["BENCH_HEADERS"] = "\n".join(f"{k}: {v}" for k, v in headers.items())
    argv = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--timeout", "10s",
            "-s", str(BENCH / "post.lua"), url]
    out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=duration + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {out.stdout[-500:]} {out.stderr[-500:]}")
    raw = json.loads(line[6:])
    errors = raw["err_connect"] + raw["err_read"] + raw["err_write"] + raw["err_status"] + raw["err_timeout"]
    seconds = raw["duration_us"] / 1e6
    if not raw["requests"]:  # nothing completed: no latency to report
        raw.update(p50_us=float("nan"), p90_us=float("nan"), p99_us=float("nan"), mean_us=float("nan"))
    return {
        "requests": raw["requests"],
        "errors": errors,
        "rps": raw["requests"] / seconds if seconds else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "mean_ms": raw["mean_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "bytes": raw["bytes"],
    }
