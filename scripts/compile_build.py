"""Compile a `sam build` output's Python to bytecode: python scripts/compile_build.py [BUILD_DIR]

SAM's python3.13 builder copies sources and unpacks wheels without compiling them, and Lambda's /opt
and /var/task are read-only: without this, every cold start compiles the whole import (Starlette,
pydantic, the skylane package) from source — about half of the completions function's import time.
The bytecode is checked by nothing but its presence (`unchecked-hash`: the zip's timestamps do not
matter); it is made by this interpreter, which must be the Lambda runtime's Python (3.13).
"""

from __future__ import annotations

import compileall
import py_compile
import sys
from pathlib import Path

PARTS = ("SkylaneLayer/python", "CompletionsFunction", "ModelsFunction")


def compile_build(build: Path) -> int:
    """Compile every part of the build; the number of parts compiled (0: not a SAM build)."""
    if sys.version_info[:2] != (3, 13):
        raise SystemExit(f"compile_build.py must run on Python 3.13 (the Lambda runtime), not {sys.version.split()[0]}")
    done = 0
    for part in PARTS:
        path = build / part
        if not path.is_dir():
            continue
        ok = compileall.compile_dir(path, quiet=1, workers=0,
                                    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        if not ok:
            raise SystemExit(f"compiling {path} failed")
        done += 1
    return done


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else ".aws-sam/build")
    if not compile_build(target):
        raise SystemExit(f"{target}: no SAM build there (run sam build first)")
