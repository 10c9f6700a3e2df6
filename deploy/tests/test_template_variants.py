"""Every front door, auth and architecture variant of the SAM template, rendered as CloudFormation would see it.

Each variant goes through the real SAM transform (aws-sam-translator), has its Conditions resolved for its
parameters (deploy/render.py) and must then be clean under cfn-lint, with exactly the resources it promises.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint

DEPLOY = Path(__file__).resolve().parents[1]
ROOT = DEPLOY.parent
sys.path.insert(0, str(DEPLOY))

from render import RuleViolation, load_template, render  # noqa: E402

JWT = {"Auth": "JWT", "JwtIssuer": "https://issuer.example.com/pool", "JwtAudience": "client-a,client-b"}
VARIANTS: dict[str, dict[str, str]] = {
    "defaults": {},
    "url-iam-x86-cors": {"Auth": "AWS_IAM", "Architecture": "x86_64", "CorsAllowOrigin": "https://example.com"},
    "http": {"FrontDoor": "HttpApi"},
    "http-jwt": {"FrontDoor": "HttpApi", **JWT},
    "http-iam-cors": {"FrontDoor": "HttpApi", "Auth": "AWS_IAM", "CorsAllowOrigin": "https://example.com"},
    "rest-today": {"FrontDoor": "RestApi", "Architecture": "x86_64", "MemorySize": "1024", "Tracing": "Active"},
    "rest-api-key": {"FrontDoor": "RestApi", "Auth": "API_KEY"},
    "rest-iam": {"FrontDoor": "RestApi", "Auth": "AWS_IAM"},
    "guards-and-mail": {
        "AlarmEmail": "ops@example.com",
        "ProvisionedConcurrency": "2",
        "ReservedConcurrency": "0",
        "DeploymentType": "AllAtOnce",
    },
}
FRONT_DOOR_TYPES = {
    "FunctionUrl": {"AWS::Lambda::Url"},
    "HttpApi": {"AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Route", "AWS::ApiGatewayV2::Stage"},
    "RestApi": {"AWS::ApiGateway::RestApi", "AWS::ApiGateway::Stage", "AWS::ApiGateway::Deployment"},
}


@pytest.fixture(scope="module")
def source() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def rendered(source: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: render(params, template=source) for name, params in VARIANTS.items()}


def _param(template: dict[str, Any], node: Any) -> Any:
    """A property's value: a Ref to a parameter becomes the value this variant was rendered with."""
    if isinstance(node, dict) and set(node) == {"Ref"} and node["Ref"] in template["Parameters"]:
        return template["Parameters"][node["Ref"]]["Default"]
    return node


def _of_type(template: dict[str, Any], *types: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] in types}


def _one(template: dict[str, Any], type_: str) -> dict[str, Any]:
    (resource,) = _of_type(template, type_).values()
    return resource


def _setting(name: str, parameter: str) -> str:
    defaults = {"FrontDoor": "FunctionUrl", "Auth": "NONE", "Architecture": "arm64", "MemorySize": "512"}
    return VARIANTS[name].get(parameter, defaults[parameter])


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_is_clean_under_cfn_lint(rendered: dict[str, dict[str, Any]], name: str) -> None:
    matches = lint(json.dumps(rendered[name]), config=ManualArgs(regions=["us-east-1"]))
    assert [str(m) for m in matches] == []


@pytest.mark.parametrize("name", VARIANTS)
def test_exactly_the_chosen_front_door(rendered: dict[str, dict[str, Any]], name: str) -> None:
    template, door = rendered[name], _setting(name, "FrontDoor")
    types = {r["Type"] for r in template["Resources"].values()}
    assert FRONT_DOOR_TYPES[door] <= types
    for other, other_types in FRONT_DOOR_TYPES.items():
        if other != door:
            assert not other_types & types, other
    # Whatever the door, it calls the live alias (so CodeDeploy's traffic shifting applies), never $LATEST.
    alias = {"Ref": "FlowersFunctionAliaslive"}
    for permission in _of_type(template, "AWS::Lambda::Permission").values():
        assert permission["Properties"]["FunctionName"] == alias
    outputs = template["Outputs"]
    assert {"PredictUrl", "HealthUrl", "FunctionName", "LiveAliasArn", "DashboardUrl"} <= set(outputs)
    predict = json.dumps(outputs["PredictUrl"]["Value"])
    assert predict.endswith('predict"}')
    assert {"FunctionUrl": "FlowersFunctionUrl", "HttpApi": "FlowersHttpApi"}.get(door, "FlowersRestApi") in predict


def test_function_url_auth_and_public_permissions(rendered: dict[str, dict[str, Any]]) -> None:
    public = rendered["defaults"]
    assert _one(public, "AWS::Lambda::Url")["Properties"]["AuthType"] == "NONE"
    statements = {
        p["Properties"]["Action"]: p["Properties"] for p in _of_type(public, "AWS::Lambda::Permission").values()
    }
    assert statements["lambda:InvokeFunctionUrl"]["FunctionUrlAuthType"] == "NONE"
    # The second statement of the October 2025 model, limited to calls through the URL.
    assert statements["lambda:InvokeFunction"]["InvokedViaFunctionUrl"] is True
    signed = rendered["url-iam-x86-cors"]
    url = _one(signed, "AWS::Lambda::Url")["Properties"]
    assert url["AuthType"] == "AWS_IAM"
    assert url["Cors"]["AllowOrigins"] == [{"Ref": "CorsAllowOrigin"}]
    assert not _of_type(signed, "AWS::Lambda::Permission")  # IAM callers bring their own identity policy
    assert "Cors" not in _one(public, "AWS::Lambda::Url")["Properties"]


def test_http_api_auth_variants(rendered: dict[str, dict[str, Any]]) -> None:
    def predict_route(template: dict[str, Any]) -> dict[str, Any]:
        routes = _of_type(template, "AWS::ApiGatewayV2::Route").values()
        (route,) = [r["Properties"] for r in routes if r["Properties"]["RouteKey"] == "POST /predict"]
        return route

    assert predict_route(rendered["http"])["AuthorizationType"] == "NONE"
    jwt = predict_route(rendered["http-jwt"])
    assert jwt["AuthorizationType"] == "JWT"
    assert jwt["AuthorizerId"] == {"Ref": "FlowersHttpJwtAuthorizer"}
    authorizer = _one(rendered["http-jwt"], "AWS::ApiGatewayV2::Authorizer")["Properties"]
    assert authorizer["AuthorizerType"] == "JWT"
    assert _param(rendered["http-jwt"], authorizer["JwtConfiguration"]["Issuer"]) == JWT["JwtIssuer"]
    assert predict_route(rendered["http-iam-cors"])["AuthorizationType"] == "AWS_IAM"
    assert not _of_type(rendered["http"], "AWS::ApiGatewayV2::Authorizer")
    # Health stays open; the integration speaks payload 2.0 (what the handler parses as v2).
    for name in ("http", "http-jwt", "http-iam-cors"):
        routes = {
            r["Properties"]["RouteKey"]: r["Properties"]
            for r in _of_type(rendered[name], "AWS::ApiGatewayV2::Route").values()
        }
        assert routes["GET /health"].get("AuthorizationType", "NONE") == "NONE"
        integration = _one(rendered[name], "AWS::ApiGatewayV2::Integration")["Properties"]
        assert integration["PayloadFormatVersion"] == "2.0"
        assert integration["IntegrationType"] == "AWS_PROXY"
        stage = _one(rendered[name], "AWS::ApiGatewayV2::Stage")["Properties"]
        assert _param(rendered[name], stage["DefaultRouteSettings"]["ThrottlingRateLimit"]) == "50"
    cors = _one(rendered["http-iam-cors"], "AWS::ApiGatewayV2::Api")["Properties"]["CorsConfiguration"]
    assert cors["AllowOrigins"] == [{"Ref": "CorsAllowOrigin"}]


def test_rest_api_auth_variants(rendered: dict[str, dict[str, Any]]) -> None:
    def predict_security(template: dict[str, Any]) -> Any:
        body = _one(template, "AWS::ApiGateway::RestApi")["Properties"]["Body"]
        assert set(body["paths"]) == {"/predict", "/health", "/", "/web/{asset+}"}  # + the web page's files
        for public in ("/health", "/", "/web/{asset+}"):
            assert "security" not in body["paths"][public]["get"]
        return body["paths"]["/predict"]["post"].get("security")

    assert predict_security(rendered["rest-today"]) == []
    assert predict_security(rendered["rest-api-key"]) == [{"api_key": []}]
    assert predict_security(rendered["rest-iam"]) == [{"sigv4": []}]
    keyed = rendered["rest-api-key"]
    assert {"AWS::ApiGateway::ApiKey", "AWS::ApiGateway::UsagePlan", "AWS::ApiGateway::UsagePlanKey"} <= {
        r["Type"] for r in keyed["Resources"].values()
    }
    assert "ApiKeyId" in keyed["Outputs"]
    assert not _of_type(rendered["rest-today"], "AWS::ApiGateway::ApiKey", "AWS::ApiGateway::UsagePlan")
    # Gateway-made errors keep the service's error shape.
    responses = _one(keyed, "AWS::ApiGateway::RestApi")["Properties"]["Body"]["x-amazon-apigateway-gateway-responses"]
    assert '"payload_too_large"' in responses["REQUEST_TOO_LARGE"]["responseTemplates"]["application/json"]


@pytest.mark.parametrize("name", VARIANTS)
def test_architecture_memory_and_concurrency(rendered: dict[str, dict[str, Any]], name: str) -> None:
    template = rendered[name]
    function = template["Resources"]["FlowersFunction"]["Properties"]
    assert [_param(template, a) for a in function["Architectures"]] == [_setting(name, "Architecture")]
    assert _param(template, function["MemorySize"]) == _setting(name, "MemorySize")
    assert _param(template, function["TracingConfig"]["Mode"]) == VARIANTS[name].get("Tracing", "PassThrough")
    reserved = VARIANTS[name].get("ReservedConcurrency", "10")
    if reserved == "0":
        assert "ReservedConcurrentExecutions" not in function
    else:
        assert _param(template, function["ReservedConcurrentExecutions"]) == reserved
    alias = template["Resources"]["FlowersFunctionAliaslive"]["Properties"]
    provisioned = VARIANTS[name].get("ProvisionedConcurrency", "0")
    if provisioned == "0":
        assert "ProvisionedConcurrencyConfig" not in alias
    else:
        assert _param(template, alias["ProvisionedConcurrencyConfig"]["ProvisionedConcurrentExecutions"]) == provisioned


@pytest.mark.parametrize("name", VARIANTS)
def test_canary_rolled_back_by_the_alarms(rendered: dict[str, dict[str, Any]], name: str) -> None:
    template = rendered[name]
    alias = template["Resources"]["FlowersFunctionAliaslive"]
    group_ref = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["DeploymentGroupName"]["Ref"]
    group = template["Resources"][group_ref]["Properties"]
    deployment = VARIANTS[name].get("DeploymentType", "Canary10Percent5Minutes")
    assert json.dumps(group["DeploymentConfigName"]).count(deployment) == 1
    assert group["AutoRollbackConfiguration"]["Enabled"] is True
    assert "DEPLOYMENT_STOP_ON_ALARM" in group["AutoRollbackConfiguration"]["Events"]
    rollback = {a["Name"]["Ref"] for a in group["AlarmConfiguration"]["Alarms"]}
    assert rollback == {"FlowersErrorsAlarm", "FlowersServerErrorRateAlarm", "FlowersLatencyAlarm"}
    alarms = _of_type(template, "AWS::CloudWatch::Alarm")
    assert rollback | {"FlowersThrottlesAlarm"} == set(alarms)
    assert alarms["FlowersLatencyAlarm"]["Properties"]["ExtendedStatistic"] == "p99"
    assert alarms["FlowersThrottlesAlarm"]["Properties"]["MetricName"] == "Throttles"
    assert alarms["FlowersServerErrorRateAlarm"]["Properties"]["Statistic"] == "Average"
    assert _of_type(template, "AWS::CloudWatch::Dashboard")
    mail = "AlarmEmail" in VARIANTS[name]
    assert bool(_of_type(template, "AWS::SNS::Topic")) == mail
    for alarm in alarms.values():
        assert alarm["Properties"].get("AlarmActions") == ([{"Ref": "FlowersAlarmTopic"}] if mail else None)


def test_rules_refuse_combinations_that_cannot_work(source: dict[str, Any]) -> None:
    for params in (
        {"Auth": "API_KEY"},  # function URL has no API keys
        {"FrontDoor": "HttpApi", "Auth": "API_KEY"},
        {"FrontDoor": "RestApi", "Auth": "JWT", "JwtIssuer": "https://issuer.example.com"},
        {"FrontDoor": "HttpApi", "Auth": "JWT"},  # no issuer
        {"FrontDoor": "RestApi", "CorsAllowOrigin": "https://example.com"},
    ):
        with pytest.raises(RuleViolation):
            render(params, template=source)


def test_alarms_and_dashboard_use_the_metrics_the_handler_emits(source: dict[str, Any]) -> None:
    """The template's EMF metric names and the names flowers_serving.metrics emits are the same set."""
    code = (ROOT / "packages" / "flowers-serving" / "src" / "flowers_serving" / "metrics.py").read_text()
    emitted = set(re.findall(r'(?:add_metric|single_metric)\(name="([A-Za-z]+)"', code)) | set(
        re.findall(r'"[a-z_]+_ms": "([A-Za-z]+)"', code)
    )
    function_env = source["Resources"]["FlowersFunction"]["Properties"]["Environment"]["Variables"]
    namespace = function_env["POWERTOOLS_METRICS_NAMESPACE"]
    used = {
        r["Properties"]["MetricName"]
        for r in source["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"]["Namespace"] == namespace
    }
    dashboard = source["Resources"]["FlowersDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    used |= set(re.findall(rf'\["{namespace}", "([A-Za-z]+)"', dashboard))
    used |= set(re.findall(r'MetricName=\\"([A-Za-z]+)\\"', dashboard))
    assert used, "no EMF metric found in the template"
    assert used <= emitted, used - emitted
    # ...and every metric the handler pays to emit is graphed or alarmed on somewhere.
    assert emitted <= used, emitted - used
    assert {"ServerError", "Latency", "InferenceLatency", "Errors", "NotFlower", "ColdStart"} <= used


def test_dashboard_body_is_json_once_substituted(source: dict[str, Any]) -> None:
    body, variables = source["Resources"]["FlowersDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    names = set(re.findall(r"\$\{([^}]+)\}", body))
    assert names <= {"AWS::Region", "AWS::StackName", *variables}, names - {"AWS::Region", "AWS::StackName"}
    dashboard = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))
    kinds = [widget["type"] for widget in dashboard["widgets"]]
    assert kinds.count("alarm") == 1
    assert kinds.count("metric") >= 4
