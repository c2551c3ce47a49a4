"""`make run`: DynamoDB Local (data kept under .local/dynamodb), the tables, a development key on
first start, then `skylane serve` with auth enabled. Ctrl-C stops both.

    .venv/bin/python scripts/run_local.py [--host 127.0.0.1] [--port 4200] [--dynamodb-port 8000]

The AWS settings for the CLI in another terminal are written to .local/dynamodb.env
(`source .local/dynamodb.env`, then `.venv/bin/skylane keys create --name me`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.dynamodb_local import LOCAL_ENV, DynamoDBLocal, DynamoDBLocalError  # noqa: E402

DEV_KEY_NAME = "dev"


def _has_aws_credentials() -> bool:
    env = os.environ
    if env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_PROFILE"):
        return True
    path = Path(env.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")).expanduser()
    return path.is_file()


def _bootstrap() -> None:
    from skylane.accounts.store import create_tables, dynamodb_client
    from skylane.cli.keys import create_key, list_keys
    from skylane.core.settings import Settings

    settings = Settings.from_env()
    client = dynamodb_client(settings)
    for line in create_tables(client, settings):
        print("table", line)
    if any(r.name == DEV_KEY_NAME for r in list_keys(client, settings)):
        print(f"Development key '{DEV_KEY_NAME}' exists (it was printed on the first start; "
              "create another with `skylane keys create --name NAME`).")
        return
    key, record = create_key(client, settings, DEV_KEY_NAME, rpm=600, tpm=1_000_000)
    bar = "=" * 78
    print(f"\n{bar}\nDevelopment API key (shown once; key id {record.key_id}, 600 RPM, 1M TPM, unlimited credits):\n"
          f"\n    {key}\n\n{bar}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4200)
    parser.add_argument("--dynamodb-port", type=int, default=int(os.environ.get("DYNAMODB_PORT", "8000")))
    parser.add_argument("--data", default=str(ROOT / ".local" / "dynamodb"), help="DynamoDB Local's data folder")
    args = parser.parse_args(argv)

    ddb = DynamoDBLocal(port=args.dynamodb_port, db_path=args.data)
    try:
        ddb.start()
    except DynamoDBLocalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        # point boto3's DynamoDB (only) at the local instance; keep real AWS credentials if there
        # are any (Bedrock may use them), else any value will do for DynamoDB Local
        local = {"AWS_ENDPOINT_URL_DYNAMODB": ddb.endpoint}
        if not _has_aws_credentials():
            local.update(LOCAL_ENV)
        os.environ.update(local)
        os.environ.setdefault("SKYLANE_AUTH", "enabled")
        env_file = ROOT / ".local" / "dynamodb.env"
        env_file.parent.mkdir(parents=True, exist_ok=True)
        env_file.write_text("".join(f"export {k}={v}\n" for k, v in local.items()))
        print(f"DynamoDB Local at {ddb.endpoint}, data in {ddb.db_path}")
        print(f"For the CLI in another terminal: source {env_file.relative_to(ROOT)}")
        _bootstrap()
        from skylane.cli import main as skylane

        return skylane(["serve", "--host", args.host, "--port", str(args.port)])
    except KeyboardInterrupt:
        return 0
    finally:
        ddb.stop()


if __name__ == "__main__":
    raise SystemExit(main())
