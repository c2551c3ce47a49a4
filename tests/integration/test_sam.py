"""template.yaml: `sam validate --lint` and `sam build` (no container), and what the template promises.

SAM CLI lives in its own virtualenv (.venv-sam, installed by `make sam-deps`): its pins (boto3,
pydantic, jsonschema) clash with the gateway's. `sam build` needs `python3.13` on PATH: the project's
own interpreter is put first. The build is done twice: for the template's default architecture
(arm64: the layer must carry aarch64 wheels) and for this machine's, whose output is then imported
in an isolated interpreter exactly as Lambda lays it out (/var/task = the function's folder,
/opt/python = the layer), which catches a dependency missing from layers/skylane/requirements.txt.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
LAYER_SRC = ROOT / "layers" / "skylane"


# ---- the template as data (CloudFormation's short tags kept as {"Fn::X": ...}) -------------------------


class _CfnLoader(yaml.SafeLoader):
    pass


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass


def test_tables_are_exactly_the_fixed_shapes(template: dict[str, Any]) -> None:
    res = template["Resources"]
    keys = res["KeysTable"]["Properties"]
    assert res["KeysTable"]["Type"] == "AWS::DynamoDB::Table"
    assert keys["BillingMode"] == "PAY_PER_REQUEST"
    assert keys["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert keys["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]
    assert keys["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    limits = res["LimitsTable"]["Properties"]
    assert limits["BillingMode"] == "PAY_PER_REQUEST"
    assert limits["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"},
                                   {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert sorted(a["AttributeName"] for a in limits["AttributeDefinitions"]) == ["pk", "sk"]
    assert limits["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}


def test_completions_function_is_wired_for_the_web_adapter(template: dict[str, Any]) -> None:
    fn = template["Resources"]["CompletionsFunction"]["Properties"]
    env = fn["Environment"]["Variables"]
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert env["AWS_LWA_READINESS_CHECK_PATH"] == "/health"
    assert fn["FunctionUrlConfig"] == {"AuthType": "NONE", "InvokeMode": "RESPONSE_STREAM"}
    code_uri = template["Globals"]["Function"]["CodeUri"]
    assert (ROOT / code_uri / fn["Handler"]) == ROOT / "functions" / "completions" / "run.sh"
    # the function outlives the gateway's own total budget, so the gateway ends requests, not Lambda
    total = template["Parameters"]["TotalTimeout"]
    assert fn["Timeout"] > total["MaxValue"] >= total["Default"]
    layers = fn["Layers"][0]["Fn::If"]
    assert layers[0] == "IsArm64" and "LwaLayerArm64" in layers[1]["Fn::Sub"] and "LwaLayerX86" in layers[2]["Fn::Sub"]
    params = template["Parameters"]
    assert params["Architecture"]["Default"] == "arm64"
    assert re.fullmatch(params["LwaLayerArm64"]["AllowedPattern"], params["LwaLayerArm64"]["Default"])
    assert "LambdaAdapterLayerArm64" in params["LwaLayerArm64"]["Default"]
    assert "LambdaAdapterLayerX86" in params["LwaLayerX86"]["Default"]


def test_models_function_is_buffered_mangum_and_traced(template: dict[str, Any]) -> None:
    fn = template["Resources"]["ModelsFunction"]["Properties"]
    assert fn["FunctionUrlConfig"]["InvokeMode"] == "BUFFERED"
    assert fn["Tracing"] == "Active"
    module, attr = fn["Handler"].rsplit(".", 1)
    assert (ROOT / template["Globals"]["Function"]["CodeUri"] / (module + ".py")).is_file() and attr == "handler"


def _allowed_actions(function: dict[str, Any]) -> set[str]:
    actions: set[str] = set()
    for policy in function["Properties"]["Policies"]:
        docs = [policy]
        if "Fn::If" in policy:
            docs = [d for d in policy["Fn::If"][1:] if isinstance(d, dict) and "Statement" in d]
        for doc in docs:
            for st in doc["Statement"]:
                acts = st["Action"]
                actions.update([acts] if isinstance(acts, str) else acts)
    return actions


def _dynamodb_calls(*modules: str, pattern: str = r"self\.client\.(\w+)") -> set[str]:
    calls: set[str] = set()
    for name in modules:
        src = (LAYER_SRC / "skylane" / name).read_text()
        for op in re.findall(pattern, src):
            calls.add("dynamodb:" + "".join(part.capitalize() for part in op.split("_")))
    return calls


def test_iam_covers_exactly_what_the_functions_call(template: dict[str, Any]) -> None:
    res = template["Resources"]
    completions = _allowed_actions(res["CompletionsFunction"])
    models = _allowed_actions(res["ModelsFunction"])
    runtime = _dynamodb_calls("accounts/keys.py", "accounts/limits.py")  # the gate the completions app uses
    # stored Responses API responses (accounts/responses.py: `client.<op>` through store.call)
    runtime |= _dynamodb_calls("accounts/responses.py", pattern=r"\bclient\.(\w+)")
    assert runtime, "no DynamoDB calls found: the scan is broken"
    assert runtime <= completions, f"CompletionsFunction lacks {runtime - completions}"
    assert {a for a in completions if a.startswith("dynamodb:")} == runtime, "a table action nothing uses"
    auth_only = _dynamodb_calls("accounts/keys.py")
    # the admin API (http/admin.py through accounts/admin.py and accounts/usage_agg.py) runs on the models function
    admin = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Scan", "dynamodb:BatchGetItem", "dynamodb:GetItem",
             "dynamodb:Query"}
    assert {a for a in models if a.startswith("dynamodb:")} == auth_only | admin
    assert {"bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream", "bedrock:Converse",
            "bedrock:ConverseStream"} <= completions
    assert not any(a.startswith("bedrock:") for a in models)
    assert "secretsmanager:GetSecretValue" in completions and "secretsmanager:GetSecretValue" in models
    assert not any("*" in a for a in completions | models)


def test_settings_named_in_the_template_exist() -> None:
    text = TEMPLATE.read_text()
    settings_src = (LAYER_SRC / "skylane" / "core" / "settings.py").read_text()
    for name in sorted(set(re.findall(r"\b(SKYLANE_[A-Z_]+):", text))):
        assert f'"{name}"' in settings_src, f"{name} is set by template.yaml but settings.py never reads it"


def test_layer_requirements_cover_the_runtime_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {re.split(r"[<>=\[ ;]", d, maxsplit=1)[0].lower() for d in project["dependencies"]}
    lines = (LAYER_SRC / "requirements.txt").read_text().splitlines()
    listed = {re.split(r"[<>=\[ ;]", x, maxsplit=1)[0].lower() for x in lines if x.strip() and not x.startswith("#")}
    assert wanted == listed
    assert "aws-lambda-powertools[tracer]" in (LAYER_SRC / "requirements.txt").read_text()


# ---- SAM CLI ---------------------------------------------------------------------------------------------


def _sam() -> str:
    for candidate in (os.environ.get("SKYLANE_SAM", ""), str(ROOT / ".venv-sam" / "bin" / "sam"), shutil.which("sam")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    if os.environ.get("CI"):
        pytest.fail("SAM CLI not installed: `make sam-deps` (make test does it)")
    pytest.skip("SAM CLI not installed: run `make sam-deps`")


def _run_sam(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "SAM_CLI_POLL_DELAY": "1",
           # sam build's python3.13 workflow looks for python3.13 on PATH: the project's interpreter
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([_sam(), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_sam_validate_lint_has_no_findings() -> None:
    r = _run_sam("validate", "--lint")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "is a valid SAM Template" in out
    assert not re.search(r"\b[EWI]\d{4}\b", out), out  # no cfn-lint error, warning or info


def _build(tmp: Path, arch: str) -> Path:
    build = tmp / f"build-{arch}"
    r = _run_sam("build", "--build-dir", str(build), "--cache-dir", str(tmp / f"cache-{arch}"),
                 "--parameter-overrides", f"Architecture={arch}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Build Succeeded" in r.stdout
    # what `make sam-build` does next: the build's Python to bytecode (Lambda cannot write it)
    c = subprocess.run([sys.executable, str(ROOT / "scripts" / "compile_build.py"), str(build)],
                       capture_output=True, text=True, timeout=600)
    assert c.returncode == 0, c.stdout + c.stderr
    return build


@pytest.fixture(scope="module")
def default_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("sam"), "arm64")


def _host_arch() -> str:
    return {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine().lower()]


@pytest.fixture(scope="module")
def host_build(tmp_path_factory: pytest.TempPathFactory, default_build: Path) -> Path:
    if _host_arch() == "arm64":
        return default_build
    return _build(tmp_path_factory.mktemp("sam-host"), _host_arch())


def test_sam_build_lays_out_layer_and_functions(default_build: Path) -> None:
    layer = default_build / "SkylaneLayer" / "python"
    assert (layer / "skylane" / "core" / "catalog.json").is_file()
    for package in ("fastapi", "httpx", "boto3", "mangum", "aws_lambda_powertools", "aws_xray_sdk", "uvicorn",
                    "pydantic_core"):
        assert (layer / package).is_dir(), f"{package} missing from the layer"
    native = list(layer.rglob("*.so"))
    assert native and all("aarch64" in p.name for p in native), [p.name for p in native]
    run_sh = default_build / "CompletionsFunction" / "completions" / "run.sh"
    assert run_sh.is_file() and os.access(run_sh, os.X_OK)
    assert (default_build / "ModelsFunction" / "models" / "app.py").is_file()
    # the functions' code is just functions/: the package comes from the layer only
    assert not (default_build / "CompletionsFunction" / "skylane").exists()
    size = sum(p.stat().st_size for p in (default_build / "CompletionsFunction").rglob("*") if p.is_file())
    assert size < 100_000
    built = (default_build / "template.yaml").read_text()
    assert "BuildMethod" not in built or "python3.13" in built


def test_built_functions_import_as_on_lambda(host_build: Path) -> None:
    """/var/task + /opt/python only (no site-packages): the layer must be complete."""
    layer = host_build / "SkylaneLayer" / "python"
    script = (
        "import sys\n"
        f"sys.path[:0] = [{str(host_build / 'ModelsFunction')!r}, {str(layer)!r}]\n"
        "import models.app\n"
        "assert callable(models.app.handler)\n"
        f"sys.path[0] = {str(host_build / 'CompletionsFunction')!r}\n"
        "import completions.app\n"
        "assert any(r.path == '/v1/chat/completions' for r in completions.app.app.routes)\n"
        "assert all(m.__file__ is None or not m.__file__.startswith(" + repr(str(ROOT / '.venv')) + ")"
        " for m in list(sys.modules.values()) if getattr(m, '__file__', None))\n"
        "import importlib.util, os\n"  # every module of the build came with its bytecode (none compiled now)
        "srcs = [m.__file__ for m in list(sys.modules.values()) if (getattr(m, '__file__', None) or '').endswith('.py')"
        " and m.__file__.startswith(" + repr(str(host_build)) + ")]\n"
        "assert srcs and all(os.path.exists(importlib.util.cache_from_source(f)) for f in srcs), "
        "[f for f in srcs if not os.path.exists(importlib.util.cache_from_source(f))][:5]\n"
        "print('imported')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SKYLANE_", "PYTHON"))}
    env.update({"SKYLANE_AUTH": "enabled", "AWS_DEFAULT_REGION": "us-east-1", "PYTHONDONTWRITEBYTECODE": "1"})
    r = subprocess.run([sys.executable, "-S", "-c", script], env=env, capture_output=True, text=True, timeout=120,
                       cwd=host_build)
    assert r.returncode == 0 and "imported" in r.stdout, r.stdout + r.stderr
