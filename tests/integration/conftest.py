"""Integration fixtures: DynamoDB Local (see conftest_dynamo.py for what each fixture gives)."""

from tests.integration.conftest_dynamo import (  # noqa: F401 (fixtures)
    auth_gateway,
    dynamo_env,
    dynamo_tables,
    dynamodb_local,
    make_key,
)
