"""`skylane tables create`, `skylane keys create|list|show|revoke|update`, `skylane usage`.

The commands talk to DynamoDB through boto3 with the usual AWS configuration (profile or
environment credentials, AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB for DynamoDB Local) and the
table names of SKYLANE_KEYS_TABLE / SKYLANE_LIMITS_TABLE, so the same commands manage a local
gateway and a deployed stack. The full key is printed once, by `keys create`, and nowhere else.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from skylane.accounts.admin import (
    DEFAULT_RPM,
    DEFAULT_TPM,
    AdminError,
    create_key,
    get_key,
    list_keys,
    revoke_key,
    update_key,
    usage_rows,
)
from skylane.accounts.admin import UNCHANGED as _MISSING
from skylane.accounts.keys import KeyRecord
from skylane.accounts.store import create_tables, dynamodb_client, map_error
from skylane.core.errors import SkylaneError
from skylane.core.settings import Settings

__all__ = [
    "create_key",
    "get_key",
    "list_keys",
    "register",
    "revoke_key",
    "update_key",
    "usage_rows",
]

UNLIMITED = ("unlimited", "none", "off")


# the operations (create_key, get_key, list_keys, revoke_key, update_key, usage_rows) live in
# skylane.accounts.admin: the CLI and the admin API (http/admin.py) share one copy
CLIError = AdminError


# ---- argument parsing ------------------------------------------------------------------------------


def _limit(text: str) -> int | None:
    if text.strip().lower() in UNLIMITED:
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number or 'unlimited', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("limits are at least 1 (use 'unlimited' for no limit)")
    return value


def _usd(text: str) -> int | None:
    if text.strip().lower() in UNLIMITED:
        return None
    try:
        value = Decimal(text.strip().lstrip("$"))
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"expected an amount in USD (e.g. 5 or 0.25), got {text!r}") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError("expected a finite amount")
    return int((value * 1_000_000).to_integral_value())


def _topup(text: str) -> int:
    value = _usd(text)
    if value is None:
        raise argparse.ArgumentTypeError("a top-up is an amount in USD")
    return value


_RELATIVE = re.compile(r"^(\d+)\s*([dhm])$")


def _when(text: str, *, future: bool) -> int | None:
    """YYYY-MM-DD, an ISO date-time, or a relative '30d' / '12h' / '45m' (ahead or back)."""
    text = text.strip()
    if text.lower() in ("never", "none"):
        return None
    m = _RELATIVE.match(text.lower())
    if m:
        delta = timedelta(**{{"d": "days", "h": "hours", "m": "minutes"}[m.group(2)]: int(m.group(1))})
        return int((datetime.now(UTC) + (delta if future else -delta)).timestamp())
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, an ISO date-time or e.g. 30d, got {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def _expires(text: str) -> int | None:
    return _when(text, future=True)


def _day(text: str) -> str:
    ts = _when(text, future=False)
    if ts is None:
        raise argparse.ArgumentTypeError("expected a date")
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def _iso(ts: int | None) -> str:
    return "never" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _money(micros: int | None) -> str:
    if micros is None:
        return "unlimited"
    text = f"${abs(micros) / 1_000_000:,.6f}".rstrip("0").rstrip(".")
    return "-" + text if micros < 0 else text


def _budget(micros: int | None) -> str:
    return "none" if micros is None else _money(micros)


def _lim(value: int | None) -> str:
    return "unlimited" if value is None else str(value)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line.rstrip(), "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(out)


def _describe(record: KeyRecord) -> str:
    pairs = [
        ("key id", record.key_id), ("name", record.name), ("status", record.status),
        ("created", _iso(record.created_at)), ("expires", _iso(record.expires_at)),
        ("requests/min", _lim(record.rpm)), ("tokens/min", _lim(record.tpm)),
        ("credits", _money(record.credits_micros)), ("spent", _money(record.spent_micros)),
        ("monthly budget", _budget(record.monthly_budget_micros)),
        ("models", ", ".join(record.models) or "all"),
        ("role", "admin" if record.admin else "api"),
    ]
    return "\n".join(f"{k + ':':14}{v}" for k, v in pairs)


# ---- commands ----------------------------------------------------------------------------------------


def _context() -> tuple[Any, Settings]:
    settings = Settings.from_env()
    return dynamodb_client(settings), settings


def _cmd_tables_create(args: argparse.Namespace) -> int:
    client, settings = _context()
    for line in create_tables(client, settings):
        print(line)
    return 0


def _cmd_create(args: argparse.Namespace) -> int:
    client, settings = _context()
    key, record = create_key(client, settings, args.name, rpm=args.rpm, tpm=args.tpm, credits_micros=args.credits,
                             monthly_budget_micros=args.monthly_budget, models=args.models or (),
                             expires_at=args.expires, admin=args.admin)
    if args.json:
        print(json.dumps({"key": key, **record.public()}))
    else:
        print(_describe(record))
        print()
        print(f"API key (shown once, store it now): {key}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    client, settings = _context()
    records = [r for r in list_keys(client, settings) if args.all or r.status == "active"]
    if args.json:
        print(json.dumps([r.public() for r in records]))
        return 0
    rows = [[r.key_id, r.name, r.status, _lim(r.rpm), _lim(r.tpm), _money(r.credits_micros), _money(r.spent_micros),
             _budget(r.monthly_budget_micros), _iso(r.expires_at), ",".join(r.models) or "all"] for r in records]
    print(_table(["KEY ID", "NAME", "STATUS", "RPM", "TPM", "CREDITS", "SPENT", "MONTHLY BUDGET", "EXPIRES", "MODELS"],
                 rows))
    return 0


def _show(record: KeyRecord, as_json: bool) -> None:
    print(json.dumps(record.public()) if as_json else _describe(record))


def _cmd_show(args: argparse.Namespace) -> int:
    client, settings = _context()
    record = get_key(client, settings, args.key_id)
    if record is None:
        raise CLIError(f"no key with id '{args.key_id}'")
    _show(record, args.json)
    return 0


def _cmd_revoke(args: argparse.Namespace) -> int:
    client, settings = _context()
    record = revoke_key(client, settings, args.key_id)
    print(f"revoked {record.key_id} ({record.name}); gateways stop accepting it within their auth cache TTL")
    return 0


def _cmd_update(args: argparse.Namespace) -> int:
    client, settings = _context()
    changes: dict[str, Any] = {}
    for attr in ("rpm", "tpm", "expires_at"):
        if getattr(args, attr) is not _MISSING:
            changes[attr] = getattr(args, attr)
    if args.credits is not _MISSING:
        changes["credits_micros"] = args.credits
    if args.add_credits is not None:
        changes["add_credits_micros"] = args.add_credits
    if args.monthly_budget is not _MISSING:
        changes["monthly_budget_micros"] = args.monthly_budget
    if args.clear_models:
        changes["models"] = ()
    elif args.models:
        changes["models"] = args.models
    if args.name:
        changes["name"] = args.name
    if args.unrevoke:
        changes["revoked"] = False
    record = update_key(client, settings, args.key_id, **changes)
    _show(record, args.json)
    return 0


def _cmd_usage(args: argparse.Namespace) -> int:
    client, settings = _context()
    rows = usage_rows(client, settings, key_id=args.key, since=args.since, until=args.until)
    if args.json:
        print(json.dumps(rows))
        return 0
    table = [[r["day"], r["key_id"], r["model"], str(r["requests"]), str(r["prompt_tokens"]),
              str(r["completion_tokens"]), f"{r['cost_usd']:.6f}"] for r in rows]
    total = [sum(r[k] for r in rows) for k in ("requests", "prompt_tokens", "completion_tokens")]
    table.append(["total", "", "", *(str(t) for t in total), f"{sum(r['cost_usd'] for r in rows):.6f}"])
    print(_table(["DAY (UTC)", "KEY ID", "MODEL", "REQUESTS", "PROMPT TOKENS", "COMPLETION TOKENS", "COST USD"],
                 table))
    return 0


def _guarded(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Clear one-line errors (missing table, credentials, endpoint) instead of tracebacks."""

    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except CLIError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except Exception as exc:
            err = map_error(exc)
            if type(exc).__module__.startswith(("botocore", "boto3")) or isinstance(exc, SkylaneError):
                print(f"error: {getattr(err, 'detail', err.message)}", file=sys.stderr)
                return 2
            raise

    return run


def register(sub: Any) -> None:
    """Add the admin commands to `skylane`'s subparsers."""
    tables = sub.add_parser("tables", help="manage the DynamoDB tables")
    tsub = tables.add_subparsers(dest="tables_command", required=True)
    tsub.add_parser("create", help="create the keys and limits tables if missing (TTL, point-in-time recovery)"
                    ).set_defaults(func=_guarded(_cmd_tables_create))

    keys = sub.add_parser("keys", help="create, list, show, revoke and update API keys")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    create = ksub.add_parser("create", help="create a key (printed once)")
    create.add_argument("--name", required=True)
    create.add_argument("--rpm", type=_limit, default=DEFAULT_RPM, help=f"requests per minute (default {DEFAULT_RPM})")
    create.add_argument("--tpm", type=_limit, default=DEFAULT_TPM, help=f"tokens per minute (default {DEFAULT_TPM})")
    create.add_argument("--credits", type=_usd, default=None, metavar="USD", help="credit balance (default unlimited)")
    create.add_argument("--monthly-budget", type=_usd, default=None, metavar="USD",
                        help="spend cap per UTC month (default none)")
    create.add_argument("--models", nargs="+", metavar="PATTERN", help="allowed models, e.g. 'openai/*'")
    create.add_argument("--expires", type=_expires, default=None, metavar="DATE", help="YYYY-MM-DD, ISO time or 30d")
    create.add_argument("--admin", action="store_true",
                        help="an admin key: may use the admin API (/admin/v1) and the console (/console)")
    create.add_argument("--json", action="store_true", help="print one JSON object (with `key` and `key_id`)")
    create.set_defaults(func=_guarded(_cmd_create))

    lst = ksub.add_parser("list", help="list keys (active ones unless --all)")
    lst.add_argument("--all", action="store_true", help="include revoked and expired keys")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_guarded(_cmd_list))

    show = ksub.add_parser("show", help="show one key")
    show.add_argument("key_id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_guarded(_cmd_show))

    revoke = ksub.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=_guarded(_cmd_revoke))

    update = ksub.add_parser("update", help="change limits, credits, models, expiry")
    update.add_argument("key_id")
    update.add_argument("--name")
    update.add_argument("--rpm", type=_limit, default=_MISSING, help="N or 'unlimited'")
    update.add_argument("--tpm", type=_limit, default=_MISSING, help="N or 'unlimited'")
    money = update.add_mutually_exclusive_group()
    money.add_argument("--credits", type=_usd, default=_MISSING, metavar="USD", help="set the balance ('unlimited')")
    money.add_argument("--add-credits", type=_topup, default=None, metavar="USD", help="top up the balance")
    update.add_argument("--monthly-budget", type=_usd, default=_MISSING, metavar="USD",
                        help="spend cap per UTC month ('unlimited' or 'none' removes it)")
    models = update.add_mutually_exclusive_group()
    models.add_argument("--models", nargs="+", metavar="PATTERN", help="replace the allow-list")
    models.add_argument("--all-models", dest="clear_models", action="store_true", help="allow every model")
    update.add_argument("--expires", dest="expires_at", type=_expires, default=_MISSING, metavar="DATE",
                        help="YYYY-MM-DD, ISO time, 30d or 'never'")
    update.add_argument("--unrevoke", action="store_true", help="make a revoked key usable again")
    update.add_argument("--json", action="store_true")
    update.set_defaults(func=_guarded(_cmd_update))

    usage = sub.add_parser("usage", help="usage per day, key and model")
    usage.add_argument("--key", metavar="KEY_ID", help="one key (default: all keys)")
    usage.add_argument("--since", type=_day, default=_day("30d"), metavar="DATE",
                       help="first day, YYYY-MM-DD or e.g. 7d (default: 30 days ago)")
    usage.add_argument("--until", type=_day, default=None, metavar="DATE", help="last day (default: today)")
    usage.add_argument("--json", action="store_true")
    usage.set_defaults(func=_guarded(_cmd_usage))
