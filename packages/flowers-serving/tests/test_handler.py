"""The Lambda adapter: every event shape, every error path, and fuzzed events that must never escape."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowers_serving import handler as handler_module
from flowers_serving.handler import lambda_handler


@dataclass
class FakeContext:
    """What the Lambda runtime passes; only the request id is read."""

    aws_request_id: str = "test-request-id"
    function_name: str = "flowers-predict"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def rest_event(
    body: str | None,
    *,
    content_type: str = "application/json",
    b64_body: bool = False,
    method: str = "POST",
    path: str = "/predict",
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": content_type},
        "queryStringParameters": query,
        "requestContext": {"requestId": "apigw", "stage": "prod"},
        "body": body,
        "isBase64Encoded": b64_body,
    }


def test_direct_invoke_with_image(flower_bytes: bytes) -> None:
    body = lambda_handler({"image": b64(flower_bytes), "top_k": 3}, FakeContext())
    assert body["predictions"][0]["class_id"] == 54
    assert len(body["predictions"]) == 3
    assert body["request_id"] == "test-request-id"
    assert body["model"]
    assert body["model_version"]


def test_default_top_k_is_ten(flower_bytes: bytes) -> None:
    assert len(lambda_handler({"image": b64(flower_bytes)}, FakeContext())["predictions"]) == 10


def test_rest_event_json_body(flower_bytes: bytes) -> None:
    reply = lambda_handler(rest_event(json.dumps({"image": b64(flower_bytes), "top_k": 2})), FakeContext())
    assert reply["statusCode"] == 200
    assert reply["headers"]["Content-Type"] == "application/json"
    assert len(json.loads(reply["body"])["predictions"]) == 2


def test_rest_event_binary_body_with_query_top_k(flower_bytes: bytes) -> None:
    event = rest_event(b64(flower_bytes), content_type="image/jpeg", b64_body=True, query={"top_k": "4"})
    reply = lambda_handler(event, FakeContext())
    assert reply["statusCode"] == 200
    assert len(json.loads(reply["body"])["predictions"]) == 4


def test_http_api_v2_event(flower_bytes: bytes) -> None:
    event = {
        "version": "2.0",
        "rawPath": "/predict",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": "POST", "path": "/predict"}},
        "body": json.dumps({"image": b64(flower_bytes)}),
        "isBase64Encoded": False,
    }
    reply = lambda_handler(event, FakeContext())
    assert reply["statusCode"] == 200


@pytest.mark.parametrize("event", [{"ping": True}, {"warmup": True}, {"source": "aws.events", "detail": {}}])
def test_warm_up_answers_without_network(event: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fetch(url: str) -> bytes:
        raise AssertionError("a ping must not fetch")

    monkeypatch.setattr(handler_module.FETCHER, "fetch", no_fetch)
    body = lambda_handler(event, FakeContext())
    assert body["status"] == "ok"
    assert body["model_version"]


def test_health_route() -> None:
    reply = lambda_handler(rest_event(None, method="GET", path="/health"), FakeContext())
    assert reply["statusCode"] == 200
    assert json.loads(reply["body"])["status"] == "ok"


@pytest.mark.parametrize(
    ("event", "status", "code"),
    [
        ("not a dict", 400, "bad_request"),
        ({}, 400, "bad_request"),
        ({"url": ""}, 400, "bad_request"),
        ({"image": ""}, 400, "bad_request"),
        ({"image": "!!!"}, 400, "bad_request"),
        ({"image": b64(b"x"), "top_k": True}, 400, "bad_request"),
        ({"image": b64(b"x"), "top_k": 1.5}, 400, "bad_request"),
        ({"image": b64(b"hello")}, 415, "unsupported_media_type"),
        ({"url": "ftp://example.com/a.jpg"}, 400, "forbidden_url"),
        ({"url": "http://169.254.169.254/"}, 400, "forbidden_url"),
    ],
)
def test_direct_invoke_errors(event: object, status: int, code: str) -> None:
    body = lambda_handler(event, FakeContext())
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert body["request_id"] == "test-request-id"


@pytest.mark.parametrize(
    ("event", "status", "code"),
    [
        (rest_event("{not json"), 400, "bad_request"),
        (rest_event(None), 400, "bad_request"),
        (rest_event("[1, 2]"), 400, "bad_request"),
        (rest_event("{}", method="PUT"), 400, "bad_request"),
        (rest_event(b64(b"\0" * 100), content_type="image/jpeg", b64_body=True), 415, "unsupported_media_type"),
        (rest_event("not base64 at all", content_type="image/jpeg", b64_body=True), 400, "bad_request"),
    ],
)
def test_proxy_errors_get_a_status(event: dict[str, Any], status: int, code: str) -> None:
    reply = lambda_handler(event, FakeContext())
    assert reply["statusCode"] == status
    assert json.loads(reply["body"])["error"]["code"] == code


def test_oversized_inline_image(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handler_module, "MAX_IMAGE_BYTES", 1000)
    body = lambda_handler({"image": b64(b"\xff" * 2000)}, FakeContext())
    assert body["error"]["code"] == "payload_too_large"
    reply = lambda_handler(rest_event(b64(b"\xff" * 2000), content_type="image/jpeg", b64_body=True), FakeContext())
    assert reply["statusCode"] == 413


def test_unexpected_exceptions_become_500(
    monkeypatch: pytest.MonkeyPatch, flower_bytes: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(image: bytes, top_k: int) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(handler_module.CLASSIFIER, "classify", broken)
    reply = lambda_handler(rest_event(json.dumps({"image": b64(flower_bytes)})), FakeContext())
    assert reply["statusCode"] == 500
    assert json.loads(reply["body"])["error"]["code"] == "internal_error"
    assert "simulated bug" not in reply["body"]  # internals stay in the logs
    assert "simulated bug" in capsys.readouterr().out


def test_one_structured_log_line_per_request(flower_bytes: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    lambda_handler({"image": b64(flower_bytes)}, FakeContext(aws_request_id="log-check"))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    request_lines = [line for line in lines if line.get("request_id") == "log-check"]
    assert len(request_lines) == 1
    line = request_lines[0]
    assert line["input_kind"] == "image"
    assert line["status"] == 200
    assert line["latency_ms"] > 0
    assert line["cold_start"] in (True, False)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
event_keys = st.sampled_from(
    [
        "url",
        "image",
        "top_k",
        "body",
        "httpMethod",
        "requestContext",
        "headers",
        "isBase64Encoded",
        "version",
        "rawPath",
        "queryStringParameters",
        "ping",
    ]
)
fuzzed_events = st.dictionaries(event_keys, json_values, max_size=8) | json_values


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=fuzzed_events)
def test_fuzzed_events_never_escape(event: object) -> None:
    reply = lambda_handler(event, FakeContext())
    assert isinstance(reply, dict)
    if "statusCode" in reply:
        assert reply["statusCode"] in (200, 400, 413, 415, 422, 500, 502, 504)
        json.loads(reply["body"])
    else:
        assert "error" in reply or "status" in reply or "predictions" in reply
    if "error" in reply:
        assert reply["error"]["code"] != "internal_error", reply


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=2048), top_k=st.one_of(st.integers(-5, 200), st.text(max_size=5)))
def test_fuzzed_binary_bodies(body: bytes, top_k: object) -> None:
    event = rest_event(b64(body), content_type="image/jpeg", b64_body=True, query={"top_k": str(top_k)})
    reply = lambda_handler(event, FakeContext())
    assert reply["statusCode"] in (200, 400, 413, 415, 422)


def test_still_answers_after_the_fuzzing(flower_bytes: bytes) -> None:
    body = lambda_handler({"image": b64(flower_bytes)}, FakeContext())
    assert body["predictions"][0]["class_id"] == 54
