"""Validate gateway output against OpenAI's published OpenAPI document (shared/specs).

The document is OpenAPI 3.0-flavoured; for a JSON Schema 2020-12 validator we drop every
`discriminator` (no mapping given) and turn `nullable: true` into anyOf [schema, null].
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml

_CANDIDATES = [
    os.environ.get("SKYLANE_OPENAI_SPEC", ""),
    str(Path(__file__).resolve().parents[2] / "shared" / "specs" / "openai-openapi.yaml"),
    str(Path(__file__).resolve().parent / "data" / "openai-openapi.yaml"),
]


def _spec_path() -> Path:
    for c in _CANDIDATES:
        if c and Path(c).is_file():
            return Path(c)
    raise FileNotFoundError("OpenAI spec not found; set SKYLANE_OPENAI_SPEC")


def _normalize(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _normalize(v) for k, v in node.items() if k != "discriminator"}
        if node.pop("nullable", False) is True:
            return {"anyOf": [node, {"type": "null"}]}
        return node
    if isinstance(node, list):
        return [_normalize(v) for v in node]
    return node


@functools.cache
def _document() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with _spec_path().open() as f:
        return _normalize(yaml.load(f, Loader=loader))  # noqa: S506 - a safe loader


@functools.cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    doc = _document()
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    return jsonschema.Draft202012Validator(schema)


def validate(name: str, instance: Any) -> None:
    """Raise jsonschema.ValidationError when `instance` does not match components.schemas[name]."""
    _validator(name).validate(instance)


@functools.cache
def _event_schemas() -> dict[str, str]:
    """Responses stream event type -> its schema name (the members of ResponseStreamEvent)."""
    doc = _document()
    schemas = doc["components"]["schemas"]
    out = {}
    for ref in schemas["ResponseStreamEvent"]["anyOf"]:
        name = ref["$ref"].rsplit("/", 1)[1]
        for kind in schemas[name].get("properties", {}).get("type", {}).get("enum", []):
            out[kind] = name
    return out


def validate_response_event(event: dict[str, Any]) -> None:
    """Validate one Responses stream event against its own member of ResponseStreamEvent (clear errors)."""
    name = _event_schemas().get(event.get("type", ""))
    if name is None:
        raise jsonschema.ValidationError(f"unknown Responses stream event type {event.get('type')!r}")
    validate(name, event)
