"""Integration fixtures: DynamoDB Local (see conftest_dynamo.py for what each fixture gives)."""

from pathlib import Path

import pytest

from tests.integration.conftest_dynamo import (  # noqa: F401 (fixtures)
    auth_gateway,
    dynamo_env,
    dynamo_tables,
    dynamodb_local,
    make_key,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration needs real parts (servers, DynamoDB Local, SDKs, agents)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)
