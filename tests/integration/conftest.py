"""Integration fixtures: DynamoDB Local (see conftest_dynamo.py for what each fixture gives)."""

import secrets
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


@pytest.fixture
def secret_file(tmp_path: Path) -> tuple[Path, str]:
    """A file in a fresh work folder holding a random secret word, for the coding agents to read."""
    word = "secret-" + secrets.token_hex(6)
    workdir = tmp_path / "work"
    workdir.mkdir()
    path = workdir / "notes.txt"
    path.write_text(f"Some notes.\nThe secret word is {word}\nEnd of notes.\n")
    return path, word
