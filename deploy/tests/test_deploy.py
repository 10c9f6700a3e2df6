"""Offline checks of the deployment: the template's promises, and the outputs helper against moto."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import boto3
import pytest
from cfnlint.decode import cfn_yaml
from moto import mock_aws

DEPLOY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(DEPLOY))

from outputs import main, stack_outputs  # noqa: E402


@pytest.fixture(scope="module")
def template() -> dict[str, object]:
    # cfn-lint's own loader understands the short-form intrinsics (!Ref, !Sub, ...).
    loaded: dict[str, object] = cfn_yaml.loads((DEPLOY / "template.yaml").read_text())
    return loaded


def test_function_times_out_before_api_gateway(template: dict) -> None:  # type: ignore[type-arg]
    assert template["Globals"]["Function"]["Timeout"] < 29
    env = template["Resources"]["FlowersFunction"]["Properties"]["Environment"]["Variables"]
    assert float(env["FLOWERS_FETCH_TOTAL_TIMEOUT"]) < template["Globals"]["Function"]["Timeout"]
    assert "FLOWERS_ALLOW_LOOPBACK_URLS" not in env  # the local-test switch never reaches AWS


def test_image_built_from_our_dockerfile(template: dict) -> None:  # type: ignore[type-arg]
    function = template["Resources"]["FlowersFunction"]
    assert function["Properties"]["PackageType"] == "Image"
    assert function["Metadata"]["Dockerfile"] == "docker/Dockerfile"
    assert (DEPLOY / function["Metadata"]["DockerContext"] / function["Metadata"]["Dockerfile"]).is_file()


def test_routes_and_outputs(template: dict) -> None:  # type: ignore[type-arg]
    """POST /predict and GET /health on both APIs (a function URL sends every path to the function)."""
    resources = template["Resources"]
    http_routes = {r["Properties"]["RouteKey"] for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Route"}
    assert http_routes == {"POST /predict", "GET /health", "GET /", "GET /web/{asset+}"}
    rest_paths = resources["FlowersRestApi"]["Properties"]["DefinitionBody"]["paths"]
    assert {(m, p) for p, methods in rest_paths.items() for m in methods} == {
        ("post", "/predict"),
        ("get", "/health"),
        ("get", "/"),  # the web page (flowers_serving.web) and its files, public like /health
        ("get", "/web/{asset+}"),
    }
    assert {"PredictUrl", "HealthUrl", "WebPageUrl", "FunctionName", "FunctionArn"} <= set(template["Outputs"])


def test_memory_default_is_512_mb_and_arm64(template: dict) -> None:  # type: ignore[type-arg]
    assert template["Parameters"]["MemorySize"]["Default"] == 512
    assert template["Parameters"]["Architecture"]["Default"] == "arm64"
    assert set(template["Parameters"]["Architecture"]["AllowedValues"]) == {"arm64", "x86_64"}


@mock_aws
def test_outputs_helper_reads_the_stack(capsys: pytest.CaptureFixture[str]) -> None:
    client = boto3.client("cloudformation", region_name="us-east-1")
    stack = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {
            "PredictUrl": {"Value": "https://abc123.execute-api.us-east-1.amazonaws.com/prod/predict"},
            "FunctionName": {"Value": "flowers-FlowersFunction-XYZ"},
        },
    }
    client.create_stack(StackName="flowers", TemplateBody=json.dumps(stack))
    outputs = stack_outputs("flowers", client=client)
    assert outputs["PredictUrl"].endswith("/prod/predict")
    assert main(["flowers", "--region", "us-east-1"]) == 0
    assert "flowers classify --endpoint https://abc123" in capsys.readouterr().out


@mock_aws
def test_outputs_helper_missing_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-stack", "--region", "us-east-1"]) == 1
    assert "no-such-stack" in capsys.readouterr().err
