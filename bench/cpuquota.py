"""A CPU quota for one process tree: the gateway at a Lambda-like share of a core.

Lambda gives a function CPU in proportion to its memory: one vCPU at 1,769 MB, so a 256 MB
function gets 256 / 1,769 ≈ 14.5% of a core — as a CFS quota, 14,500 µs per 100,000 µs period.

Tried in order (as root): cgroup v2 (a child of /sys/fs/cgroup with +cpu in the parent's
cgroup.subtree_control, `cpu.max`), cgroup v1 (the cpu controller's hierarchy,
`cpu.cfs_quota_us` / `cpu.cfs_period_us`). A process joins by writing its pid to `cgroup.procs`;
children it starts afterwards inherit the group. `CpuQuota.create` raises QuotaUnavailable with
the reasons when neither works (not root, no cpu controller, read-only cgroupfs).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["LAMBDA_256MB_QUOTA_US", "PERIOD_US", "CpuQuota", "QuotaUnavailable"]

PERIOD_US = 100_000
LAMBDA_256MB_QUOTA_US = 14_500  # 256 MB / 1,769 MB of one vCPU
CGROUP = Path("/sys/fs/cgroup")


class QuotaUnavailable(RuntimeError):
    """No way to apply a CPU quota on this machine."""


class CpuQuota:
    def __init__(self, path: Path, version: int) -> None:
        self.path = path
        self.version = version

    @classmethod
    def create(cls, name: str, quota_us: int = LAMBDA_256MB_QUOTA_US, period_us: int = PERIOD_US,
               root: Path = CGROUP) -> CpuQuota:
        reasons: list[str] = []
        for version, make in ((2, cls._create_v2), (1, cls._create_v1)):
            try:
                return make(root, name, quota_us, period_us)
            except (OSError, QuotaUnavailable) as exc:
                reasons.append(f"cgroup v{version}: {exc}")
        raise QuotaUnavailable("; ".join(reasons))

    @classmethod
    def _create_v2(cls, root: Path, name: str, quota_us: int, period_us: int) -> CpuQuota:
        controllers = root / "cgroup.controllers"
        if not controllers.exists():
            raise QuotaUnavailable(f"{root} is not a cgroup v2 mount")
        if "cpu" not in controllers.read_text().split():
            raise QuotaUnavailable("no cpu controller in cgroup.controllers")
        subtree = root / "cgroup.subtree_control"
        if "cpu" not in subtree.read_text().split():
            subtree.write_text("+cpu")  # fails (EBUSY) if the root has processes and is not the real root
        path = root / name
        path.mkdir(exist_ok=True)
        q = cls(path, 2)
        try:
            (path / "cpu.max").write_text(f"{quota_us} {period_us}")
        except OSError:
            q.remove()
            raise
        return q

    @classmethod
    def _create_v1(cls, root: Path, name: str, quota_us: int, period_us: int) -> CpuQuota:
        hierarchy = next((root / d for d in ("cpu", "cpu,cpuacct") if (root / d / "cpu.cfs_quota_us").exists()), None)
        if hierarchy is None:
            raise QuotaUnavailable("no cpu controller hierarchy (cpu.cfs_quota_us) under " + str(root))
        path = hierarchy / name
        path.mkdir(exist_ok=True)
        q = cls(path, 1)
        try:
            (path / "cpu.cfs_period_us").write_text(str(period_us))
            (path / "cpu.cfs_quota_us").write_text(str(quota_us))
        except OSError:
            q.remove()
            raise
        return q

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def quota(self) -> str:
        if self.version == 2:
            return (self.path / "cpu.max").read_text().strip()
        quota = (self.path / "cpu.cfs_quota_us").read_text().strip()
        return f"{quota} {(self.path / 'cpu.cfs_period_us').read_text().strip()}"

    def stat(self) -> dict[str, int]:
        """cpu.stat: nr_periods, nr_throttled, and throttled time (µs on v2, ns on v1)."""
        out: dict[str, int] = {}
        try:
            for line in (self.path / "cpu.stat").read_text().splitlines():
                k, _, v = line.partition(" ")
                if v.strip().isdigit():
                    out[k] = int(v)
        except OSError:
            pass
        return out

    def throttled_ms(self) -> float:
        st = self.stat()
        if "throttled_usec" in st:
            return st["throttled_usec"] / 1000
        return st.get("throttled_time", 0) / 1e6

    def remove(self) -> None:
        """Remove the group once its processes are gone (any left are moved back to the parent)."""
        try:
            for pid in (self.path / "cgroup.procs").read_text().split():
                try:
                    (self.path.parent / "cgroup.procs").write_text(pid)
                except OSError:
                    pass
            os.rmdir(self.path)
        except OSError:
            pass
