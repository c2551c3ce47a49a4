"""The tables `skylane tables create` makes are the tables template.yaml deploys (no drift)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from skylane.accounts.store import KEYS_TABLE, LIMITS_TABLE, RESPONSES_TABLE, TableSpec, create_tables
from skylane.core.settings import Settings

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


_CfnLoader.add_multi_constructor("!", _tag)


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    if not TEMPLATE.exists():
        pytest.fail("template.yaml is missing: the tables must be defined there")
    return yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)["Resources"]  # noqa: S506 (SafeLoader subclass)


def _norm(rows: list[dict[str, str]]) -> list[tuple[str, ...]]:
    return sorted(tuple(sorted(r.items())) for r in rows)


@pytest.mark.parametrize("spec", [KEYS_TABLE, LIMITS_TABLE, RESPONSES_TABLE], ids=lambda s: s.logical_id)
def test_table_definitions_match_template(resources, spec: TableSpec):
    res = resources[spec.logical_id]
    assert res["Type"] == "AWS::DynamoDB::Table"
    props = res["Properties"]
    args = spec.create_args("x")
    assert _norm(props["KeySchema"]) == _norm(args["KeySchema"])
    assert _norm(props["AttributeDefinitions"]) == _norm(args["AttributeDefinitions"])
    assert props["BillingMode"] == args["BillingMode"] == "PAY_PER_REQUEST"
    ttl = props.get("TimeToLiveSpecification")
    if spec.ttl_attribute:
        assert ttl == {"AttributeName": spec.ttl_attribute, "Enabled": True}
    else:
        assert not ttl or not ttl.get("Enabled")
    pitr = (props.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled", False)
    assert bool(pitr) is spec.point_in_time_recovery


def test_template_passes_the_table_names_the_code_reads(resources):
    text = TEMPLATE.read_text()
    assert "SKYLANE_KEYS_TABLE" in text and "SKYLANE_LIMITS_TABLE" in text and "SKYLANE_RESPONSES_TABLE" in text


def test_tables_create_is_idempotent_and_enables_ttl_and_pitr():
    settings = Settings.from_env({"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"})
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        lines = create_tables(client, settings)
        assert lines[0].startswith("created  skylane-keys") and lines[1].startswith("created  skylane-limits")
        assert lines[2].startswith("created  skylane-responses")
        assert [line.split()[0] for line in create_tables(client, settings)] == ["exists", "exists", "exists"]
        ttl = client.describe_time_to_live(TableName="skylane-limits")["TimeToLiveDescription"]
        assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}
        backups = client.describe_continuous_backups(TableName="skylane-keys")["ContinuousBackupsDescription"]
        assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
