"""The Lambda adapter: every event shape, every error path, and fuzzed events that must never escape."""

from __future__ import annotations

import base64
import io
import json
import struct
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import FIXTURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowers_serving import handler as handler_module
from flowers_serving.events import MAX_DIRECT_INVOKE_BYTES, MAX_PROXY_BODY_BYTES
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
        assert reply["statusCode"] in (200, 400, 413, 415, 422, 502, 504)
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


def repr_short(value: object) -> str:
    return type(value).__name__ if isinstance(value, int) and abs(value) > 10**9 else repr(value)


# --- Strict parsing: wrong types are 400s that name the field, never 500s ---------------------------
@pytest.mark.parametrize(
    "top_k",
    ["²", "٥", "５", "1" * 5000, "5.0", " 5", "5 ", "+5", "-1", "0", "103", "", "0x5", "1e2", "5,6"],
)
def test_query_top_k_is_ascii_digits_in_range(flower_bytes: bytes, top_k: str) -> None:
    event = rest_event(b64(flower_bytes), content_type="image/jpeg", b64_body=True, query={"top_k": top_k})
    reply = lambda_handler(event, FakeContext())
    assert reply["statusCode"] == 400
    error = json.loads(reply["body"])["error"]
    assert error["code"] == "bad_request"
    assert "top_k" in error["message"]


@pytest.mark.parametrize(
    "top_k", ["5", 5.0, True, False, None, [5], {"n": 5}, 10**5000, -5, 0, 103, float("nan")], ids=repr_short
)
def test_json_top_k_is_an_integer_in_range(flower_bytes: bytes, top_k: object) -> None:
    body = lambda_handler({"image": b64(flower_bytes), "top_k": top_k}, FakeContext())
    assert body["error"]["code"] == "bad_request"
    assert "top_k" in body["error"]["message"]


@pytest.mark.parametrize(("query", "expected"), [("1", 1), ("007", 7), ("102", 102)])
def test_valid_query_top_k(flower_bytes: bytes, query: str, expected: int) -> None:
    event = rest_event(b64(flower_bytes), content_type="image/jpeg", b64_body=True, query={"top_k": query})
    reply = lambda_handler(event, FakeContext())
    assert reply["statusCode"] == 200
    assert len(json.loads(reply["body"])["predictions"]) == expected


def test_deeply_nested_json_is_a_400() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    for body in (deep, '{"image": ' + deep + "}", '{"a": ' + "[" * 40 + "]" * 40 + "}"):
        reply = lambda_handler(rest_event(body), FakeContext())
        assert reply["statusCode"] == 400, body[:20]
        assert "nested" in json.loads(reply["body"])["error"]["message"]


def test_a_json_body_that_repeats_a_key_is_a_400(flower_bytes: bytes) -> None:
    # Which "image" wins differs between parsers (and between a proxy in front and us): refuse both.
    good = base64.b64encode(flower_bytes).decode()
    bodies = [
        '{"image": "AAAA", "image": "' + good + '"}',
        '{"url": "https://example.com/a.jpg", "top_k": 1, "top_k": 5}',
    ]
    for body in bodies:
        reply = lambda_handler(rest_event(body), FakeContext())
        assert reply["statusCode"] == 400, body[:40]
        assert "repeats a key" in json.loads(reply["body"])["error"]["message"]


def test_deeply_nested_direct_event_is_a_400() -> None:
    nested: object = "x"
    for _ in range(100_000):
        nested = [nested]
    body = lambda_handler({"url": "https://example.com/a.jpg", "extra": nested}, FakeContext())
    assert body["error"]["code"] == "bad_request"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("headers", ["Content-Type", "application/json"]),
        ("headers", "Content-Type: application/json"),
        ("headers", {"Content-Type": ["application/json"]}),
        ("headers", {"Content-Type": None}),
        ("queryStringParameters", ["top_k", "5"]),
        ("queryStringParameters", {"top_k": 5}),
        ("isBase64Encoded", "false"),
        ("isBase64Encoded", "true"),
        ("isBase64Encoded", 1),
        ("isBase64Encoded", None),
        ("httpMethod", ["POST"]),
        ("path", {"p": "/predict"}),
        ("body", {"image": "x"}),
    ],
)
def test_proxy_event_field_types_are_checked(flower_bytes: bytes, field: str, value: object) -> None:
    event = rest_event(json.dumps({"image": b64(flower_bytes)}))
    event[field] = value
    reply = lambda_handler(event, FakeContext())
    assert reply["statusCode"] == 400, reply
    assert json.loads(reply["body"])["error"]["code"] == "bad_request"


def test_is_base64_encoded_false_string_is_not_taken_as_true(flower_bytes: bytes) -> None:
    event = rest_event(b64(flower_bytes), content_type="image/jpeg")
    event["isBase64Encoded"] = "false"
    assert lambda_handler(event, FakeContext())["statusCode"] == 400


# --- Payload limits of each front door: 413 with the limit in the message -------------------------
def test_direct_invoke_over_lambdas_payload_limit() -> None:
    image = "A" * (MAX_DIRECT_INVOKE_BYTES + 4)
    body = lambda_handler({"image": image}, FakeContext())
    assert body["error"]["code"] == "payload_too_large"
    assert "6,291,456" in body["error"]["message"]


def test_proxy_body_over_api_gateways_limit() -> None:
    raw = b"\xff" * (MAX_PROXY_BODY_BYTES + 1024)
    reply = lambda_handler(rest_event(b64(raw), content_type="image/jpeg", b64_body=True), FakeContext())
    assert reply["statusCode"] == 413
    assert "10,485,760" in json.loads(reply["body"])["error"]["message"]
    reply = lambda_handler(rest_event("{" + " " * MAX_PROXY_BODY_BYTES + "}"), FakeContext())
    assert reply["statusCode"] == 413


def test_image_over_the_image_limit_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handler_module, "MAX_IMAGE_BYTES", 1000)
    reply = lambda_handler(rest_event(b64(b"\xff" * 2000), content_type="image/jpeg", b64_body=True), FakeContext())
    assert reply["statusCode"] == 413
    assert "1,000" in json.loads(reply["body"])["error"]["message"]


# --- Logs: every line is one JSON object; image problems make one line per request ----------------
def _exif_with_broken_tags(count: int) -> bytes:
    """A little-endian TIFF/EXIF block whose ``count`` tags all point past its end."""
    entries = b"".join(struct.pack("<HHII", 0x9000 + i, 4, 64, 0xFFFF0) for i in range(count))
    return b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + struct.pack("<H", count) + entries + b"\x00" * 4


def test_broken_exif_makes_one_warning_line(flower_bytes: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.open(io.BytesIO(flower_bytes)).save(buf, format="JPEG", exif=_exif_with_broken_tags(4000))
    capsys.readouterr()
    body = lambda_handler({"image": b64(buf.getvalue())}, FakeContext(aws_request_id="exif"))
    assert body["predictions"][0]["class_id"] == 54
    out, err = capsys.readouterr()
    assert err == ""
    lines = [json.loads(line) for line in out.splitlines()]  # every line is JSON
    warnings_lines = [line for line in lines if line["level"] == "WARNING"]
    assert len(warnings_lines) == 1
    assert warnings_lines[0]["image_warnings"] >= 1
    assert len(out) < 64 * 1024


def test_codec_stderr_is_captured_into_the_json_line(capfd: pytest.CaptureFixture[str]) -> None:
    """libtiff prints its errors to stderr itself; they must end up inside our one JSON line."""
    sys.path.insert(0, str(FIXTURES.parent))
    from hostile import tiff

    data = bytearray(tiff(64, 64))
    at = bytes(data).find(struct.pack("<HHI", 259, 3, 1))
    data[at + 8 : at + 10] = struct.pack("<H", 7)  # claim JPEG compression over deflate data
    capfd.readouterr()
    body = lambda_handler({"image": b64(bytes(data))}, FakeContext())
    assert body["error"]["code"] == "undecodable_image"
    out, err = capfd.readouterr()
    assert err == ""
    lines = [json.loads(line) for line in out.splitlines()]
    assert sum(line["level"] == "WARNING" for line in lines) <= 1


_EVERY_LINE_SCRIPT = """
import base64, logging, warnings
from flowers_serving.handler import lambda_handler
logging.getLogger("requests_hardened.ip_filter").warning("Forbidden IP address: %s", "10.0.0.1")
logging.getLogger("urllib3.connectionpool").warning("Retrying after a broken connection")
warnings.warn("a stray library warning", UserWarning, stacklevel=1)
lambda_handler({"image": base64.b64encode(b"GIF89a").decode()}, None)
lambda_handler({"url": "http://[::ffff:0:7f00:1]/"}, None)
"""


def test_every_line_the_process_writes_is_json() -> None:
    """In a fresh process, as in Lambda: the model's start-up output, third-party loggers and warnings."""
    result = subprocess.run(
        [sys.executable, "-c", _EVERY_LINE_SCRIPT], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stderr == ""
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    loggers = [line["logger"] for line in lines]
    assert "requests_hardened.ip_filter" in loggers
    assert "urllib3.connectionpool" in loggers
    assert "py.warnings" in loggers
    assert sum(line.get("message") == "request" for line in lines) == 2


@pytest.mark.parametrize(
    "event",
    [
        {"image": b64(b"x"), "reject": "true"},
        {"image": b64(b"x"), "reject": 1},
        {"image": b64(b"x"), "reject": None},
        rest_event(b64(b"x"), content_type="image/jpeg", b64_body=True, query={"reject": "yes"}),
    ],
)
def test_reject_must_be_a_boolean(event: dict[str, Any]) -> None:
    reply = lambda_handler(event, FakeContext())
    body = json.loads(reply["body"]) if "statusCode" in reply else reply
    assert body["error"]["code"] == "bad_request"
    assert "reject" in body["error"]["message"]


def _scorer_for(classifier: Any, *, accept_everything: bool) -> Any:
    """A scorer on the real model's features whose threshold accepts every photo, or none."""
    import numpy as np

    from flowers_serving.flower_score import FlowerScorer

    size = int(classifier._features["shape"][-1])
    # Cosine similarities lie in [-1, 1]: a threshold below accepts every photo, one above none.
    return FlowerScorer(
        mean=None,
        projection=np.eye(size, 8, dtype=np.float32),
        bank=(np.eye(8) * 127).astype(np.int8),
        bank_scales=np.full(8, 1 / 127, np.float32),
        feature_size=size,
        k=1,
        threshold=-2.0 if accept_everything else 2.0,
        slope=1.0,
    )


@pytest.mark.parametrize("accept_everything", [True, False])
def test_every_result_says_whether_it_is_a_flower(
    flower_bytes: bytes, monkeypatch: pytest.MonkeyPatch, accept_everything: bool
) -> None:
    classifier = handler_module.CLASSIFIER
    if classifier._features is None:
        pytest.skip("the shipped model has no features output")
    monkeypatch.setattr(classifier, "scorer", _scorer_for(classifier, accept_everything=accept_everything))
    body = lambda_handler({"image": b64(flower_bytes), "top_k": 3}, FakeContext())
    assert body["is_flower"] is accept_everything
    assert 0.0 <= body["flower_score"] <= 1.0
    assert (body["flower_score"] >= 0.5) is accept_everything
    assert len(body["predictions"]) == 3  # the top-k stay as they are


def test_reject_turns_a_non_flower_into_422(flower_bytes: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    classifier = handler_module.CLASSIFIER
    if classifier._features is None:
        pytest.skip("the shipped model has no features output")
    monkeypatch.setattr(classifier, "scorer", _scorer_for(classifier, accept_everything=False))
    body = lambda_handler({"image": b64(flower_bytes), "top_k": 2, "reject": True}, FakeContext())
    assert body["error"]["code"] == "not_a_flower"
    assert body["error"]["flower_score"] < 0.5
    assert len(body["error"]["predictions"]) == 2
    reply = lambda_handler(
        rest_event(b64(flower_bytes), content_type="image/jpeg", b64_body=True, query={"reject": "true"}),
        FakeContext(),
    )
    assert reply["statusCode"] == 422
    assert json.loads(reply["body"])["error"]["code"] == "not_a_flower"
    # Without reject, the same photo is a 200 that says so.
    assert lambda_handler({"image": b64(flower_bytes), "reject": False}, FakeContext())["is_flower"] is False


def test_undecodable_stays_undecodable_with_reject() -> None:
    body = lambda_handler(
        {"image": b64(FIXTURES.joinpath("hostile", "truncated.jpg").read_bytes()), "reject": True}, FakeContext()
    )
    assert body["error"]["code"] == "undecodable_image"
