"""Put the run's summary (headline and issue 18's targets, bench/report.py `summary`) into the
documents that show it: README.md's Performance section and docs/performance.md, between their
`<!-- results:start -->` and `<!-- results:end -->` markers. The rest of each file is left as it is;
a file without both markers is left alone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import report

__all__ = ["DOCS", "END", "START", "publish", "replace_between"]

START = "<!-- results:start -->"
END = "<!-- results:end -->"
# file (relative to the repository) -> heading level of the summary's sections, and the text after it
DOCS = {
    "README.md": ("####", "The full table of that run: [bench/results/latest.md](bench/results/latest.md)."),
    "docs/performance.md": ("###", "The full table of that run — every case with p50/p90/p99 at both concurrencies, "
                                   "CPU per request, time to first byte, the SSE writes, the Lambda-like CPU share, "
                                   "the auth case, cold start, layer size, memory and the profiles — is\n"
                                   "[bench/results/latest.md](../bench/results/latest.md)."),
}


def replace_between(text: str, body: str) -> str | None:
    """`text` with what lies between the markers replaced by `body`; None without both markers."""
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        return None
    return pattern.sub(lambda _: f"{START}\n{body.rstrip()}\n{END}", text, count=1)


def publish(res: dict[str, Any], root: Path) -> list[Path]:
    """Update every document in DOCS that has the markers; the paths updated."""
    done = []
    for rel, (level, tail) in DOCS.items():
        path = root / rel
        try:
            text = path.read_text()
        except OSError:
            continue
        heading = "" if rel == "README.md" else "## Latest results\n\n"
        new = replace_between(text, heading + report.summary(res, level) + "\n" + tail)
        if new is not None and new != text:
            path.write_text(new)
            done.append(path)
    return done
