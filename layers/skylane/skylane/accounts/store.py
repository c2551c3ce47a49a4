"""DynamoDB for keys, limits and usage: table definitions, the boto3 client, error mapping.

The two tables (the same definitions as `template.yaml`'s KeysTable and LimitsTable; a test
keeps them from drifting):

    keys    pk (S) = key id                       on-demand, point-in-time recovery
    limits  pk (S) = "key#<id>", sk (S)          on-demand, TTL on `ttl`
            sk "rate#<epoch minute>"             requests, tokens, ttl    (one item per key per minute)
            sk "usage#<YYYY-MM-DD>#<model id>"   requests, prompt_tokens, completion_tokens,
                                                 cached_tokens, cost_micros

One boto3 client per process (per endpoint/region/credentials), created on first use; every
call from async code goes through `call()`, which runs it on a small thread pool so the event
loop is never blocked. `map_error()` is the one place where botocore errors become Skylane
errors: the message is safe to send to a client, `detail` is for operators (logs, the CLI).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from skylane.core.errors import GatewayMisconfigured, SkylaneError
from skylane.core.settings import Settings
from skylane.transport.aws import THREADS, aws_client, run_blocking

__all__ = [
    "KEYS_TABLE",
    "LIMITS_TABLE",
    "RESPONSES_TABLE",
    "KeyStoreMisconfigured",
    "KeyStoreUnavailable",
    "TableSpec",
    "call",
    "create_tables",
    "dynamodb_client",
    "error_code",
    "map_error",
    "table_names",
]

@dataclass(frozen=True)
class TableSpec:
    logical_id: str  # the resource name in template.yaml
    partition_key: str
    sort_key: str | None = None
    ttl_attribute: str | None = None
    point_in_time_recovery: bool = False

    def key_schema(self) -> list[dict[str, str]]:
        schema = [{"AttributeName": self.partition_key, "KeyType": "HASH"}]
        if self.sort_key:
            schema.append({"AttributeName": self.sort_key, "KeyType": "RANGE"})
        return schema

    def attribute_definitions(self) -> list[dict[str, str]]:
        return [{"AttributeName": k["AttributeName"], "AttributeType": "S"} for k in self.key_schema()]

    def create_args(self, name: str) -> dict[str, Any]:
        return {
            "TableName": name,
            "KeySchema": self.key_schema(),
            "AttributeDefinitions": self.attribute_definitions(),
            "BillingMode": "PAY_PER_REQUEST",
        }


KEYS_TABLE = TableSpec(logical_id="KeysTable", partition_key="pk", point_in_time_recovery=True)
LIMITS_TABLE = TableSpec(logical_id="LimitsTable", partition_key="pk", sort_key="sk", ttl_attribute="ttl")
# stored Responses API responses: pk = key id ("anonymous" with auth off), sk = response id (+ "#<n>" chunks)
RESPONSES_TABLE = TableSpec(logical_id="ResponsesTable", partition_key="pk", sort_key="sk", ttl_attribute="ttl")


def table_names(settings: Settings) -> list[tuple[str, TableSpec]]:
    return [(settings.keys_table, KEYS_TABLE), (settings.limits_table, LIMITS_TABLE),
            (settings.responses_table, RESPONSES_TABLE)]


# ---- errors ------------------------------------------------------------------------------------


class KeyStoreUnavailable(SkylaneError):
    """DynamoDB could not be reached or throttled us: worth retrying."""

    status = 503
    type = "service_unavailable"
    code = "key_store_unavailable"

    def __init__(self, message: str, *, detail: str = "", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.detail = detail or message


class KeyStoreMisconfigured(GatewayMisconfigured):
    """A table is missing, credentials are missing or not allowed: an operator has to act."""

    code = "key_store_misconfigured"

    def __init__(self, message: str, *, detail: str = "", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.detail = detail or message


_RETRYABLE = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "LimitExceededException",
}
_DENIED = {
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "MissingAuthenticationTokenException",
    "InvalidClientTokenId",
}


def error_code(exc: BaseException) -> str | None:
    """The DynamoDB error code of a botocore ClientError (None for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def map_error(exc: BaseException, table: str | None = None) -> SkylaneError:
    """A botocore error as a Skylane error (safe message) with an operator `detail`."""
    if isinstance(exc, SkylaneError):
        return exc
    from botocore import exceptions as bx

    where = f"DynamoDB table '{table}'" if table else "DynamoDB"
    code = error_code(exc)
    if code == "ResourceNotFoundException":
        return KeyStoreMisconfigured(
            "The gateway's key store is not set up.",
            detail=f"{where} does not exist at this endpoint. Create the tables with `skylane tables create` "
            "(or deploy template.yaml) and check SKYLANE_KEYS_TABLE / SKYLANE_LIMITS_TABLE.",
        )
    if code in _DENIED:
        return KeyStoreMisconfigured(
            "The gateway may not use its key store.",
            detail=f"Access to {where} was refused ({code}): check the AWS credentials and their permissions.",
        )
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return KeyStoreMisconfigured(
            "The gateway has no credentials for its key store.",
            detail="No AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            "(any values for DynamoDB Local).",
        )
    if isinstance(exc, bx.NoRegionError):
        return KeyStoreMisconfigured(
            "The gateway's key store has no region.",
            detail="No AWS region configured: set AWS_REGION (or AWS_DEFAULT_REGION).",
        )
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError | bx.ReadTimeoutError):
        return KeyStoreUnavailable(
            "The gateway's key store is unavailable; try again.",
            detail=f"Could not reach {where} ({type(exc).__name__}): check AWS_ENDPOINT_URL_DYNAMODB / the network.",
            retry_after=1,
        )
    if code in _RETRYABLE:
        return KeyStoreUnavailable(
            "The gateway's key store is busy; try again.", detail=f"{where} answered {code}.", retry_after=1
        )
    return KeyStoreUnavailable(
        "The gateway's key store failed.", detail=f"{where} failed: {code or type(exc).__name__}."
    )


# ---- the client --------------------------------------------------------------------------------

def dynamodb_client(settings: Settings) -> Any:
    """The process's DynamoDB client for these settings (created once, thread-safe)."""
    env = settings.env
    try:
        return aws_client("dynamodb", settings, default_region=None,
                          endpoint=env.get("AWS_ENDPOINT_URL_DYNAMODB") or env.get("AWS_ENDPOINT_URL") or None,
                          config={"connect_timeout": 2, "read_timeout": 5,
                                  "retries": {"mode": "standard", "max_attempts": 3},
                                  "max_pool_connections": THREADS, "tcp_keepalive": True})
    except Exception as exc:
        raise map_error(exc) from None


async def call[T](fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Run a blocking boto3 call on the worker threads (transport.aws.run_blocking)."""
    return await run_blocking(fn, **kwargs)


# ---- creating the tables -------------------------------------------------------------------------


def _ensure_ttl(client: Any, name: str, attribute: str) -> None:
    desc = client.describe_time_to_live(TableName=name).get("TimeToLiveDescription", {})
    if desc.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and desc.get("AttributeName") == attribute:
        return
    client.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute})


def _ensure_pitr(client: Any, name: str) -> str:
    try:
        client.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    except Exception as exc:
        if error_code(exc) in ("UnknownOperationException", "UnsupportedOperationException"):
            return "point-in-time recovery not supported by this endpoint (DynamoDB Local): skipped"
        if error_code(exc) == "ContinuousBackupsUnavailableException":  # table still being created
            time.sleep(2)
            return _ensure_pitr(client, name)
        raise
    return "point-in-time recovery on"


def create_tables(client: Any, settings: Settings, wait: bool = True) -> list[str]:
    """Create both tables if missing (idempotent); enable TTL and point-in-time recovery.

    Returns one human line per table. Raises KeyStoreMisconfigured/KeyStoreUnavailable."""
    lines = []
    for name, spec in table_names(settings):
        try:
            try:
                client.create_table(**spec.create_args(name))
                state = "created"
            except Exception as exc:
                if error_code(exc) != "ResourceInUseException":
                    raise
                state = "exists"
            if wait:
                client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
            notes = []
            if spec.ttl_attribute:
                _ensure_ttl(client, name, spec.ttl_attribute)
                notes.append(f"TTL on '{spec.ttl_attribute}'")
            if spec.point_in_time_recovery:
                notes.append(_ensure_pitr(client, name))
        except Exception as exc:
            raise map_error(exc, name) from None
        lines.append(f"{state:8} {name}  ({spec.logical_id}; {', '.join(notes) or 'on-demand'})")
    return lines
